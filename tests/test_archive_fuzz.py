"""The archive reader on random bytes and damaged archives (Hypothesis).

Whatever the bytes, reading an archive ends in one of two ways: every member is
read, or a BuildError (one line for the user). Never another exception, and never
a quiet success on a truncated gzip archive or one with an unsafe member anywhere.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dataset_builder.archive import iter_archive_clips, iter_files, read_member  # noqa: E402
from dataset_builder.errors import BuildError, UnsafeArchiveError  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

CLIPS = [(f"es/clips/w{i}/c{i}.opus", bytes([i]) * (100 + 37 * i)) for i in range(6)]


def archive(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return buf.getvalue()


GOOD = {mode: archive(CLIPS, mode) for mode in ("w:gz", "w:bz2", "w:xz", "w")}


def read_all(data: bytes) -> dict[str, bytes]:
    """Every member's bytes, or the reader's exception."""
    out = {}
    for path, tar, member in iter_files(io.BytesIO(data), "fuzz.tar.gz"):
        out[path] = read_member(tar, member, "fuzz.tar.gz")
    return out


def ends_cleanly(data: bytes) -> dict[str, bytes] | None:
    try:
        return read_all(data)
    except BuildError as e:
        assert "\n" not in str(e) and str(e).startswith("fuzz.tar.gz")
        return None


def test_the_intact_archives_read_back_whole():
    for data in GOOD.values():
        assert read_all(data) == dict(CLIPS)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_are_read_or_refused_with_a_build_error(data):
    ends_cleanly(data)


@FUZZ
@given(st.binary(min_size=1, max_size=4096))
def test_random_bytes_behind_a_gzip_header_are_read_or_refused(data):
    ends_cleanly(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + data)


@FUZZ
@given(mode=st.sampled_from(sorted(GOOD)), position=st.floats(0, 1, exclude_max=True),
       flip=st.integers(1, 255))
def test_a_flipped_byte_is_read_or_refused(mode, position, flip):
    data = bytearray(GOOD[mode])
    data[int(position * len(data))] ^= flip
    got = ends_cleanly(bytes(data))
    if got is not None and mode != "w":
        # Compressed archives carry checksums: what they accept is what was written.
        assert got == dict(CLIPS)


@FUZZ
@given(mode=st.sampled_from(["w:gz", "w:bz2", "w:xz"]), keep=st.floats(0, 1, exclude_max=True))
def test_a_truncated_compressed_archive_is_always_refused(mode, keep):
    data = GOOD[mode]
    with pytest.raises(BuildError):
        read_all(data[: int(keep * len(data))])


def unsafe(kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo({"sym": "es/clips/w9/s.opus", "hard": "es/clips/w9/h.opus",
                            "dotdot": "es/clips/../../x.opus", "fifo": "es/fifo"}[kind])
    if kind == "sym":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hard":
        info.type, info.linkname = tarfile.LNKTYPE, CLIPS[0][0]
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    return info


@FUZZ
@given(kind=st.sampled_from(["sym", "hard", "dotdot", "fifo"]), at=st.integers(0, len(CLIPS)))
def test_an_unsafe_member_anywhere_is_refused_even_after_the_wanted_clips(kind, at):
    data = archive(CLIPS[:at] + [unsafe(kind)] + CLIPS[at:])
    wanted = {"w0/c0.opus": 0}  # the first clip: everything after it is read only to be checked
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "audio.tar.gz")
        with open(path, "wb") as f:
            f.write(data)
        with pytest.raises(UnsafeArchiveError):
            list(iter_archive_clips(path, wanted))


def test_a_gzip_archive_with_a_wrong_checksum_is_refused():
    data = bytearray(GOOD["w:gz"])
    data[-8] ^= 0xFF  # the trailer's CRC-32
    with pytest.raises(BuildError, match="corrupt compressed data|CRC"):
        read_all(bytes(data))
    assert gzip.decompress(GOOD["w:gz"])  # the intact one is a valid gzip stream
