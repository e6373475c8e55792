"""build-dataset under faults: unusable --out, full disk, Ctrl-C, concurrent builds, bad clips, bad archives.

Every case asserts the exit status, exactly one line on stderr, no traceback, and
that the dataset an earlier build left in --out is unchanged, with no staging
directory or lock left behind. Disk cases use a small tmpfs where this machine lets
the tests mount one; the injected-ENOSPC case runs everywhere.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus.layout import ClipRecord, read_splits, write_splits
from dataset_builder import cli
from dataset_builder.outputs import LocalOutput, verify_dataset
from tests.builder_helpers import make_tone_corpus

ROOT = Path(__file__).resolve().parent.parent
LANG = "es"
WORDS = ["año", "sí", *[f"w{i}" for i in range(5)]]
PROTOCOL = ["--known-words", "2", "--unknown-words", "2", "--clips-per-word", "6",
            "--min-word-clips", "10", "--min-target-train", "6", "--min-target-eval", "2"]
#: Runs build-dataset in a child process with the test backends registered.
CHILD = ("import sys, tests.builder_helpers; from dataset_builder.cli import main; "
         "sys.exit(main(sys.argv[1:]))")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_tone_corpus(tmp_path_factory.mktemp("faults_mswc"), LANG, WORDS, 12, n_train=8, n_dev=2,
                            n_speakers=3, seed=3, bad=("missing",))


def argv_for(corpus: Path, out: Path, *extra: str, backend: str = "test-bands") -> list[str]:
    return ["--lang", LANG, "--mswc-root", str(corpus), "--out", str(out), "--backend", backend,
            "--keyword", "año", "--keyword", "sí", "--quiet", "--workers", "0", *PROTOCOL, *extra]


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def leftovers(out: Path) -> list[str]:
    """Staging directories, journals and locks of ``out`` left in its parent."""
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))


def assert_one_error_line(code: int, err: str, expected: int, *fragments: str) -> None:
    assert code == expected, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and err.startswith("build-dataset: "), err
    for fragment in fragments:
        assert fragment in err, err


def built(corpus: Path, out: Path) -> dict[str, bytes]:
    """An earlier, complete build in ``out``; returns its files."""
    assert cli.main(argv_for(corpus, out)) == 0
    verify_dataset(out)
    return snapshot(out)


def child(argv: list[str], **kwargs) -> subprocess.Popen:
    from tests.conftest import as_from_a_shell

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_from_a_shell,
                            **kwargs)


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def wait_for(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


# ------------------------------------------------------------------ a small tmpfs, where possible


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int):
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-fault tests cover the logic")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(disk: Path, leave_bytes: int) -> None:
    """Fill the filesystem of ``disk`` until about ``leave_bytes`` are free."""
    import shutil

    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(free - leave_bytes, 0))


# ------------------------------------------------------------------ unusable --out


def test_out_naming_a_file_is_refused_before_the_model_loads(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("not a directory")
    # A missing model would exit 3 if the model were loaded first.
    code = cli.main(argv_for(corpus, out, "--model", str(tmp_path / "no-model"), backend="mswc"))
    assert_one_error_line(code, capsys.readouterr().err, 1, "is a file, not a directory")
    assert out.read_text() == "not a directory" and leftovers(out) == []


def test_a_bad_opus_decoder_in_the_environment_is_one_line_before_any_work(corpus, tmp_path, capsys,
                                                                           monkeypatch):
    monkeypatch.setenv("DATAPERF_OPUS_DECODER", "ffmpeg")
    out = tmp_path / "out"
    code = cli.main(argv_for(corpus, out, "--model", str(tmp_path / "no-model"), backend="mswc"))
    assert_one_error_line(code, capsys.readouterr().err, 1, "DATAPERF_OPUS_DECODER='ffmpeg' is not a decoder")
    assert not out.exists()
    # The flag overrides the environment (and is what the workers inherit).
    code = cli.main(argv_for(corpus, out, "--opus-decoder", "libsndfile"))
    assert code == 0, capsys.readouterr().err
    assert os.environ["DATAPERF_OPUS_DECODER"] == "libsndfile"


def test_a_read_only_out_is_refused_before_the_model_loads(corpus, tmp_path, capsys):
    with tmpfs(tmp_path / "disk", 4096) as disk:
        out = disk / "out"
        before = built(corpus, out)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        capsys.readouterr()
        code = cli.main(argv_for(corpus, out, "--model", str(tmp_path / "no-model"), backend="mswc"))
        assert_one_error_line(code, capsys.readouterr().err, 3, "cannot write in", "Read-only file system")
        assert snapshot(out) == before and leftovers(out) == []


def test_too_little_free_space_is_refused_before_any_work(corpus, tmp_path, capsys):
    with tmpfs(tmp_path / "disk", 2048) as disk:
        out = disk / "out"
        before = built(corpus, out)
        fill(disk, 64 << 10)
        capsys.readouterr()
        code = cli.main(argv_for(corpus, out, "--model", str(tmp_path / "no-model"), backend="mswc"))
        assert_one_error_line(code, capsys.readouterr().err, 3, "the build needs about", "free space")
        assert snapshot(out) == before and leftovers(out) == []


def test_a_disk_that_fills_up_mid_write_keeps_the_previous_dataset(corpus, tmp_path, capsys):
    with tmpfs(tmp_path / "disk", 4096) as disk:
        out = disk / "out"
        before = built(corpus, out)
        # Room for the estimate (1024-d vectors), not for the 4096-d ones test-wide writes.
        fill(disk, 600 << 10)
        capsys.readouterr()
        code = cli.main(argv_for(corpus, out, backend="test-wide"))
        assert_one_error_line(code, capsys.readouterr().err, 3, "No space left on device")
        assert snapshot(out) == before and leftovers(out) == []
        verify_dataset(out)


def test_an_injected_write_failure_on_the_last_file_keeps_the_previous_dataset(corpus, tmp_path, capsys,
                                                                               monkeypatch):
    import errno

    import protos

    out = tmp_path / "out"
    before = built(corpus, out)
    real = protos.write_samples

    def failing(path, sample_set, *args, **kwargs):
        if str(path).endswith("eval.pb"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, sample_set, *args, **kwargs)

    monkeypatch.setattr(protos, "write_samples", failing)
    capsys.readouterr()
    code = cli.main(argv_for(corpus, out, "--seed", "7"))
    assert_one_error_line(code, capsys.readouterr().err, 3, "No space left on device")
    assert snapshot(out) == before and leftovers(out) == []


# ------------------------------------------------------------------ Ctrl-C and concurrent builds


def test_ctrl_c_mid_build_exits_130_with_one_line_and_keeps_the_previous_dataset(corpus, tmp_path):
    out = tmp_path / "out"
    before = built(corpus, out)
    # A terminal's Ctrl-C signals the whole process group: the decoding workers too.
    proc = child(argv_for(corpus, out, "--seed", "5", "--workers", "2", "--batch-size", "2",
                          backend="test-slow"), start_new_session=True)
    # While the decoding workers are still starting (the hardest moment for them to stay
    # quiet), but after the main process has spawned them: a Ctrl-C that falls in the
    # milliseconds of the spawn itself can be lost (docs/BUILD.md).
    wait_for(lambda: any(p.name.startswith(".out.staging-") for p in tmp_path.iterdir()))
    wait_for(lambda: len(child_pids(proc.pid)) >= 2)
    time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err == "build-dataset: interrupted\n"
    assert snapshot(out) == before and leftovers(out) == []


def test_a_second_build_into_the_same_out_is_refused_naming_the_first(corpus, tmp_path):
    out = tmp_path / "out"
    before = built(corpus, out)
    first = child(argv_for(corpus, out, "--seed", "5", "--batch-size", "2", backend="test-slow"))
    wait_for(lambda: any(p.name.startswith(".out.staging-") for p in tmp_path.iterdir()))
    second = child(argv_for(corpus, out, "--seed", "6"))
    _, err = second.communicate(timeout=60)
    assert_one_error_line(second.returncode, err, 3, f"another build-dataset (pid {first.pid} ",
                          f"is writing {out}")
    assert first.wait(timeout=120) == 0, first.stderr.read()
    # The first build's dataset, whole; nothing of the refused one.
    assert snapshot(out) != before and verify_dataset(out)["parameters"]["seed"] == 5
    assert leftovers(out) == []


def test_a_lock_left_by_a_killed_build_is_taken_over(corpus, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from dataset_builder.outputs import LocalOutput; "
         "LocalOutput(sys.argv[1]).lock(); print('locked', flush=True); time.sleep(120)", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    lock = tmp_path / ".out.lock"
    assert f"pid {holder.pid} " in lock.read_text()  # the dead build's lock file is still there
    assert cli.main(argv_for(corpus, out)) == 0
    verify_dataset(out)
    assert not lock.exists()


def test_a_splits_csv_that_is_not_utf8_is_one_line(corpus, tmp_path, capsys):
    import shutil

    copy = tmp_path / "mswc"
    shutil.copytree(corpus, copy)
    splits = copy / f"{LANG}_splits.csv"
    splits.write_bytes(splits.read_text(encoding="utf-8").encode("latin-1"))  # "año" -> b"a\xf1o"
    code = cli.main(argv_for(copy, tmp_path / "out"))
    assert_one_error_line(code, capsys.readouterr().err, 1, "es_splits.csv", "not UTF-8 text (byte 0xf1")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ bad clips at the boundary


def _add_clips(corpus: Path, clips: dict[str, np.ndarray]) -> None:
    """Add float WAV clips of 'año' (TRAIN) to the corpus's splits."""
    records = read_splits(corpus, LANG)
    for name, y in clips.items():
        sf.write(corpus / LANG / "clips" / "año" / name, y, 16000, subtype="FLOAT")
        records.append(ClipRecord(f"año/{name}", "año", "TRAIN", True, "spk9", ""))
    write_splits(corpus / f"{LANG}_splits.csv", records)


@pytest.fixture(scope="module")
def wild_corpus(tmp_path_factory) -> Path:
    root = make_tone_corpus(tmp_path_factory.mktemp("wild_mswc"), LANG, WORDS, 12, n_train=8, n_dev=2,
                            n_speakers=3, seed=3, bad=())
    tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    nan = tone.copy()
    nan[100] = np.nan
    _add_clips(root, {"loud.wav": tone * np.float32(1e20), "nan.wav": nan})
    return root


def test_a_loud_clip_is_rescaled_and_noted_and_a_nan_clip_skipped_and_named(wild_corpus, tmp_path):
    out = tmp_path / "out"
    assert cli.main(argv_for(wild_corpus, out, "--max-target-train", "20")) == 0
    manifest = verify_dataset(out)
    assert {c["id"]: c["reason"] for c in manifest["skipped"]["clips"]} == {"año/nan.wav": "unreadable"}
    assert manifest["notes"]["by_kind"] == {"rescaled": 1}
    note = manifest["notes"]["clips"][0]
    assert note["id"] == "año/loud.wav" and "peak 1e+20 scaled to 1" in note["detail"]
    assert manifest["counts"]["samples"]["año"] == 9  # 8 tones + the rescaled clip


def test_strict_stops_on_the_bad_clip_naming_it(wild_corpus, tmp_path, capsys):
    out = tmp_path / "out"
    before = built(wild_corpus, out)
    capsys.readouterr()
    code = cli.main(argv_for(wild_corpus, out, "--strict", "--seed", "4"))
    assert_one_error_line(code, capsys.readouterr().err, 1, "clip 'año/nan.wav' is unreadable",
                          "non-finite samples")
    assert snapshot(out) == before and leftovers(out) == []


# ------------------------------------------------------------------ archives checked to the end


def _tar_gz(files: list[tuple[str, bytes]], extra: tarfile.TarInfo | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            tar.addfile(extra)
    return buf.getvalue()


@pytest.fixture(scope="module")
def archives(corpus, tmp_path_factory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("archives")
    clips = [(f"{LANG}/clips/{p.parent.name}/{p.name}", p.read_bytes())
             for p in sorted((corpus / LANG / "clips").rglob("*.opus"))]
    (where / "splits.tar.gz").write_bytes(_tar_gz([(f"{LANG}_splits.csv",
                                                    (corpus / f"{LANG}_splits.csv").read_bytes())]))
    good = _tar_gz(clips)
    (where / "good.tar.gz").write_bytes(good)
    (where / "tail-cut.tar.gz").write_bytes(good[:-4])  # the gzip trailer's length field is gone
    link = tarfile.TarInfo(f"{LANG}/clips/zz/link.opus")
    link.type, link.linkname = tarfile.LNKTYPE, f"{LANG}/clips/año/c00.opus"
    (where / "late-link.tar.gz").write_bytes(_tar_gz(clips, extra=link))
    return {p.name.split(".")[0]: p for p in where.iterdir()}


@pytest.mark.parametrize("archive, message", [
    ("tail-cut", "good.tar.gz"),
    ("late-link", "refusing unsafe member 'es/clips/zz/link.opus' (hard link"),
])
def test_damage_after_the_last_needed_clip_stops_the_build(archives, tmp_path, capsys, archive, message):
    def argv(out: Path, audio: Path) -> list[str]:
        return ["--lang", LANG, "--audio-archive", str(audio), "--splits-archive", str(archives["splits"]),
                "--out", str(out), "--backend", "test-bands", "--keyword", "año", "--keyword", "sí",
                "--quiet", "--workers", "0", *PROTOCOL]

    out = tmp_path / "out"
    assert cli.main(argv(out, archives["good"])) == 0
    before = snapshot(out)
    capsys.readouterr()
    code = cli.main(argv(out, archives[archive]))
    err = capsys.readouterr().err
    assert_one_error_line(code, err, 1, archive)
    if archive == "late-link":
        assert message in err
    else:
        assert "truncated" in err or "corrupt compressed data" in err
    assert snapshot(out) == before and leftovers(out) == []


def test_an_existing_dataset_plus_the_users_files_survive_a_rebuild(corpus, tmp_path):
    out = tmp_path / "out"
    built(corpus, out)
    (out / "train.npz").write_bytes(b"the user's selection")
    (out / "random-25").mkdir()
    (out / "random-25" / "score.json").write_text("{}")
    assert cli.main(argv_for(corpus, out, "--seed", "9")) == 0
    assert json.loads((out / "manifest.json").read_text())["parameters"]["seed"] == 9
    assert (out / "train.npz").read_bytes() == b"the user's selection"
    assert (out / "random-25" / "score.json").read_text() == "{}"
    assert leftovers(out) == []


def test_the_output_lock_is_one_per_directory(tmp_path):
    first, second = LocalOutput(tmp_path / "a"), LocalOutput(tmp_path / "a")
    first.lock()
    try:
        with pytest.raises(Exception, match=f"another build-dataset \\(pid {os.getpid()} "):
            second.lock()
        other = LocalOutput(tmp_path / "b")
        other.lock()  # another directory: its own lock
        other.unlock()
    finally:
        first.unlock()
    second.lock()
    second.unlock()


def test_workers_started_while_sigint_is_held_never_see_it():
    """The decoding workers ignore SIGINT from their start; the main process's handler comes back."""
    import multiprocessing

    from dataset_builder.clitools import sigint_held

    before = signal.getsignal(signal.SIGINT)
    with sigint_held():
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            handler = pool.apply(signal.getsignal, (signal.SIGINT,))
    assert handler == signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is before
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_over_http_the_whole_archive_is_checked_too(archives, tmp_path, capsys):
    from tests.test_archive_fetch import serve

    files = {"/audio/es.tar.gz": archives["late-link"].read_bytes(),
             "/splits/es.tar.gz": archives["splits"].read_bytes()}
    out = tmp_path / "out"
    with serve(files) as server:
        code = cli.main(["--lang", LANG, "--audio-archive", server.url("/audio/es.tar.gz"),
                         "--splits-archive", server.url("/splits/es.tar.gz"), "--out", str(out),
                         "--backend", "test-bands", "--keyword", "año", "--keyword", "sí", "--quiet",
                         "--workers", "0", *PROTOCOL])
    assert_one_error_line(code, capsys.readouterr().err, 1, "refusing unsafe member 'es/clips/zz/link.opus'")
    assert not out.exists() and leftovers(out) == []
