"""build-dataset from MSWC archives, local and served over HTTP from 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dataset_builder import cli
from dataset_builder.archive import iter_archive_clips
from dataset_builder.errors import BuildError
from protos import read_samples
from tests.test_archive_fetch import serve
from tests.test_build_dataset import LANG, SMALL_PROTOCOL, make_corpus


def pack(files: list[tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus_and_archives(tmp_path_factory):
    """The test corpus as a directory and as MSWC's two archives (bytes)."""
    root = make_corpus(tmp_path_factory.mktemp("mswc"))
    clips = sorted((root / LANG / "clips").rglob("*.opus"))
    audio = pack([(f"{LANG}/clips/{p.parent.name}/{p.name}", p.read_bytes()) for p in clips])
    splits = pack([(f"{LANG}_splits.csv", (root / f"{LANG}_splits.csv").read_bytes()),
                   (f"{LANG}_train.csv", b"unused")])
    return root, audio, splits


def run(out: Path, *source: str) -> int:
    return cli.main(["--lang", LANG, "--keyword", "año", "--keyword", "sí", "--out", str(out),
                     "--backend", "test-bands", "--workers", "0", "--quiet", *SMALL_PROTOCOL, *source])


@pytest.fixture(scope="module")
def from_directory(corpus_and_archives, tmp_path_factory):
    out = tmp_path_factory.mktemp("dir-build")
    assert run(out, "--mswc-root", str(corpus_and_archives[0])) == 0
    return out


def assert_same_dataset(a: Path, b: Path) -> None:
    for name in ("samples.pb", "eval.pb"):
        x, y = read_samples(a / name), read_samples(b / name)
        assert list(x.ids) == list(y.ids)
        np.testing.assert_array_equal(x.embeddings, y.embeddings)
        assert list(x.keywords) == list(y.keywords)


def test_local_archives_give_the_directory_dataset(corpus_and_archives, from_directory, tmp_path):
    _, audio, splits = corpus_and_archives
    (tmp_path / "audio.tar.gz").write_bytes(audio)
    (tmp_path / "splits.tar.gz").write_bytes(splits)
    assert run(tmp_path / "out", "--audio-archive", str(tmp_path / "audio.tar.gz"),
               "--splits-archive", str(tmp_path / "splits.tar.gz")) == 0
    assert_same_dataset(tmp_path / "out", from_directory)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["source"]["kind"] == "mswc-archive"
    # The splits list a clip the archive lacks: skipped as missing, like the directory build.
    assert {c["id"]: c["reason"] for c in manifest["skipped"]["clips"]}["año/missing.opus"] == "missing"


def test_http_archives_resume_after_drops_and_verify(corpus_and_archives, from_directory, tmp_path):
    _, audio, splits = corpus_and_archives
    with serve({"/audio/es.tar.gz": audio, "/splits/es.tar.gz": splits}) as server:
        server.drops, server.drop_after = 2, len(audio) // 3
        code = run(tmp_path / "out",
                   "--audio-archive", server.url("/audio/es.tar.gz"),
                   "--audio-sha256", hashlib.sha256(audio).hexdigest(),
                   "--splits-archive", server.url("/splits/es.tar.gz"))
        assert code == 0
        resumed = [r for path, r in server.requests if path == "/audio/es.tar.gz" and r]
        assert resumed, "the dropped audio download was not resumed with a Range request"
    assert_same_dataset(tmp_path / "out", from_directory)


def test_wrong_checksum_fails_before_writing(corpus_and_archives, tmp_path, capsys):
    _, audio, splits = corpus_and_archives
    with serve({"/a.tar.gz": audio, "/s.tar.gz": splits}) as server:
        code = run(tmp_path / "out", "--audio-archive", server.url("/a.tar.gz"),
                   "--audio-sha256", "0" * 64, "--splits-archive", server.url("/s.tar.gz"))
    assert code == 1
    err = capsys.readouterr().err
    assert "SHA-256 is" in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "samples.pb").exists()


def test_download_dir_keeps_verified_copies(corpus_and_archives, from_directory, tmp_path):
    _, audio, splits = corpus_and_archives
    with serve({"/audio/es.tar.gz": audio, "/splits/es.tar.gz": splits}) as server:
        server.drops, server.drop_after = 1, len(audio) // 2
        args = ["--audio-archive", server.url("/audio/es.tar.gz"),
                "--splits-archive", server.url("/splits/es.tar.gz"),
                "--download-dir", str(tmp_path / "dl")]
        assert run(tmp_path / "out", *args) == 0
        assert (tmp_path / "dl" / "audio" / "es.tar.gz").read_bytes() == audio
        assert (tmp_path / "dl" / "splits" / "es.tar.gz").read_bytes() == splits
        n_requests = len(server.requests)
        assert run(tmp_path / "out2", *args) == 0
        assert len(server.requests) == n_requests  # reused, not fetched again
    assert_same_dataset(tmp_path / "out", from_directory)


def test_unsafe_or_wrong_archives_are_refused(corpus_and_archives, tmp_path, capsys):
    _, audio, splits = corpus_and_archives
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{LANG}/clips/sí/c00.opus")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    (tmp_path / "evil.tar.gz").write_bytes(evil.getvalue())
    (tmp_path / "splits.tar.gz").write_bytes(splits)
    assert run(tmp_path / "out", "--audio-archive", str(tmp_path / "evil.tar.gz"),
               "--splits-archive", str(tmp_path / "splits.tar.gz")) == 1
    assert "refusing unsafe member 'es/clips/sí/c00.opus' (symbolic link" in capsys.readouterr().err

    (tmp_path / "nosplits.tar.gz").write_bytes(pack([("README", b"x")]))
    assert run(tmp_path / "out", "--audio-archive", str(tmp_path / "evil.tar.gz"),
               "--splits-archive", str(tmp_path / "nosplits.tar.gz")) == 1
    assert "no es_splits.csv inside" in capsys.readouterr().err
    assert run(tmp_path / "out", "--audio-archive", str(tmp_path / "evil.tar.gz")) == 1
    assert "--audio-archive needs --splits-archive" in capsys.readouterr().err


def test_damage_after_the_last_wanted_clip_still_stops_the_build(tmp_path):
    members = [(f"es/clips/w/{i}.opus", bytes([i]) * 600) for i in range(30)]
    data = pack(members, mode="w")
    # Damage the archive's last third: clips 0-2 come first, but the archive is
    # read to its end, so the damage behind them is found.
    path = tmp_path / "a.tar"
    path.write_bytes(data[: 2 * len(data) // 3] + b"\xff" * 4096)
    got = {}
    with pytest.raises(BuildError, match="a.tar: .*damaged or truncated"):
        for index, clip in iter_archive_clips(path, {"w/0.opus": 0, "w/2.opus": 1, "w/1.opus": 2}):
            got[index] = clip
    # The clips before the damage were read (and then the whole build stops).
    assert got == {0: bytes([0]) * 600, 1: bytes([2]) * 600, 2: bytes([1]) * 600}
    # The intact archive gives the same clips and no error.
    assert dict(iter_archive_clips(_write(tmp_path / "b.tar", data), {"w/0.opus": 0})) == {0: bytes([0]) * 600}


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_the_whole_archive_is_read_and_its_progress_shown(tmp_path, capsys):
    from dataset_builder.sources import MswcArchive

    members = [(f"es/clips/w/{i}.opus", bytes([i]) * 600) for i in range(30)]
    path = _write(tmp_path / "a.tar.gz", pack(members, mode="w:gz"))
    seen = []
    got = dict(iter_archive_clips(path, {"w/0.opus": 0}, on_bytes=seen.append))
    assert got == {0: bytes([0]) * 600}
    assert sum(seen) == path.stat().st_size  # to the last byte, though the clip came first
    source = MswcArchive(str(path), str(path), "es", progress=True)
    from dataset_builder.protocol import NONTARGET, ChosenClip

    clips = [ChosenClip("w/1.opus", "w", "TRAIN", "", NONTARGET)]
    assert list(source.iter_audio(clips)) == [(0, bytes([1]) * 600)]
    assert "archive" in capsys.readouterr().err
