"""Streaming tar reading (dataset_builder.archive): unsafe members are refused."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from dataset_builder.archive import iter_files, link_of
from dataset_builder.errors import BuildError, UnsafeArchiveError


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], compress: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def regular(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def names(data: bytes) -> list[str]:
    return [path for path, _, _ in iter_files(io.BytesIO(data), "test.tar.gz")]


def test_regular_members_stream_in_order_with_normalised_names():
    data = tar_bytes([regular("./es/clips/año/a.opus"), special("es/clips", tarfile.DIRTYPE),
                      regular("es/clips/sí/b.opus")])
    assert names(data) == ["es/clips/año/a.opus", "es/clips/sí/b.opus"]
    assert names(tar_bytes([regular("a/b")], compress=False)) == ["a/b"]


@pytest.mark.parametrize("member, why", [
    (regular("/etc/passwd"), "absolute path"),
    (regular("es/clips/../../escape.opus"), r"'\.\.' in its path"),
    (regular("../escape.opus"), r"'\.\.' in its path"),
    (special("es/clips/w/link.opus", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link to '/etc/passwd'"),
    (special("es/clips/w/hard.opus", tarfile.LNKTYPE, "es/clips/w/a.opus"), "hard link"),
    (special("es/dev", tarfile.CHRTYPE), "device file"),
    (special("es/blk", tarfile.BLKTYPE), "device file"),
    (special("es/fifo", tarfile.FIFOTYPE), "FIFO"),
])
def test_unsafe_members_stop_the_run(member, why):
    data = tar_bytes([regular("es/clips/w/a.opus"), member])
    with pytest.raises(UnsafeArchiveError, match=f"test.tar.gz: refusing unsafe member .*{why}"):
        names(data)


def test_not_a_tar_and_truncated_archives_are_one_line_errors():
    with pytest.raises(BuildError, match="test.tar.gz: not a readable tar archive"):
        names(b"this is not an archive at all" * 100)
    data = tar_bytes([regular(f"es/clips/w/{i}.opus", bytes(5000)) for i in range(20)])
    with pytest.raises(BuildError, match="test.tar.gz: "):
        names(data[: len(data) // 2])
    with pytest.raises(BuildError, match="test.tar.gz: "):
        names(gzip.compress(b"\0" * 10)[:-4] + b"junk")


def test_link_of_takes_word_and_clip_after_clips():
    assert link_of("es/clips/año/common_voice_es_1.opus") == "año/common_voice_es_1.opus"
    assert link_of("data/mswc/es/clips/w/c.opus") == "w/c.opus"
    assert link_of("es/es_splits.csv") is None
    assert link_of("clips/w") is None


def test_member_data_cut_short_is_a_one_line_error(tmp_path):
    from dataset_builder.archive import iter_archive_clips

    data = tar_bytes([regular("es/clips/w/a.opus", bytes(range(256)) * 40)], compress=False)
    path = tmp_path / "cut.tar"
    path.write_bytes(data[:3000])
    with pytest.raises(BuildError, match=r"cut.tar: cannot read member 'es/clips/w/a.opus': damaged or truncated"):
        list(iter_archive_clips(path, {"w/a.opus": 0}))
