"""Fault suite for the selection, eval and converter commands.

Every case runs the real command in its own process and asserts what a user sees:
the exit status of ``protos.errors``, exactly one error line on stderr, no traceback,
and that an output written earlier is unchanged. A full disk is simulated by handing
the atomic writer a descriptor on ``/dev/full`` (the kernel answers every write with
ENOSPC), which needs no mount and no root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from protos import SampleSet, write_samples
from protos.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_USAGE
from protos.synthetic import random_sample_set
from protos.train_file import TrainSet, write_train_file

SELECT = "selection.main"
EVAL = "eval"
CONVERT = "selection.dataperf_format"
PROG = {SELECT: "python -m selection.main", EVAL: "python -m eval",
        CONVERT: "python -m selection.dataperf_format"}

#: Runs a module as ``python -m MODULE ARGS`` with every atomic write going to /dev/full.
FULL_DISK = """
import os, runpy, sys, tempfile
_real = tempfile.mkstemp
def _full(*args, **kwargs):
    fd, name = _real(*args, **kwargs)
    os.close(fd)
    os.unlink(name)
    return os.open("/dev/full", os.O_WRONLY), name
tempfile.mkstemp = _full
module = sys.argv.pop(1)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run(module: str, *args, full_disk: bool = False) -> subprocess.CompletedProcess:
    prefix = ["-c", FULL_DISK, module] if full_disk else ["-m", module]
    return subprocess.run([sys.executable, *prefix, *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def assert_one_error_line(result: subprocess.CompletedProcess, module: str, code: int,
                          *fragments: str) -> str:
    """Exit status ``code``; stderr ends with exactly one ``PROG: error: ...`` line (an
    algorithm's progress lines may precede it); no traceback anywhere."""
    err = result.stderr
    assert result.returncode == code, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = err.splitlines()
    errors = [line for line in lines if line.startswith(f"{PROG[module]}: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for fragment in fragments:
        assert fragment in errors[0], err
    return errors[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    write_samples(root / "samples.pb", random_sample_set(300, dim=16, seed=41, spread=1.5))
    write_samples(root / "eval.pb", random_sample_set(200, dim=16, seed=42, spread=1.5,
                                                      role="eval", id_prefix="eval/"))
    base = random_sample_set(120, dim=16, seed=43)
    only_nontargets = base.subset(base.labels == 0)
    write_samples(root / "no_targets.pb", only_nontargets)
    (root / "junk.pb").write_bytes(b"\x08\x96\x01 this is not a samples file")
    (root / "a_file").write_text("not a directory\n")
    result = run(SELECT, "--input_samples", root / "samples.pb", "--outdir", root / "out",
                 "--algorithm", "random", "--train_size", "20")
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def previous(work, tmp_path) -> Path:
    """An output directory holding a train.npz from an earlier run."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.npz").write_bytes((work / "out" / "train.npz").read_bytes())
    return out


# ----------------------------------------------------------------------- selection.main


@pytest.mark.parametrize("case, code, fragment", [
    ("missing", EXIT_BAD_INPUT, "no such file"),
    ("junk", EXIT_BAD_INPUT, "junk.pb"),
    ("no_targets", EXIT_BAD_INPUT, "has no target clips"),
    ("train_size", EXIT_BAD_INPUT, "--train_size must be at least 1"),
    ("outdir_is_a_file", EXIT_ENVIRONMENT, "not a directory"),
])
def test_selection_bad_input(work, previous, case, code, fragment):
    args = {"missing": ["--input_samples", work / "nope.pb"],
            "junk": ["--input_samples", work / "junk.pb"],
            "no_targets": ["--input_samples", work / "no_targets.pb"],
            "train_size": ["--input_samples", work / "samples.pb", "--train_size", "0"],
            "outdir_is_a_file": ["--input_samples", work / "samples.pb"]}[case]
    outdir = work / "a_file" if case == "outdir_is_a_file" else previous
    before = (previous / "train.npz").read_bytes()
    result = run(SELECT, *args, "--outdir", outdir, "--algorithm", "crossval")
    assert_one_error_line(result, SELECT, code, fragment)
    assert (previous / "train.npz").read_bytes() == before
    assert sorted(p.name for p in previous.iterdir()) == ["train.npz"]
    assert result.stdout == ""


def test_selection_usage_error_is_argparse_status(work, previous):
    result = run(SELECT, "--input_samples", work / "samples.pb", "--outdir", previous,
                 "--no_such_flag")
    assert result.returncode == EXIT_USAGE and "Traceback" not in result.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_selection_full_disk_one_line_and_old_file_kept(work, previous):
    before = (previous / "train.npz").read_bytes()
    result = run(SELECT, "--input_samples", work / "samples.pb", "--outdir", previous,
                 "--algorithm", "random", full_disk=True)
    assert_one_error_line(result, SELECT, EXIT_ENVIRONMENT, "No space left on device")
    assert (previous / "train.npz").read_bytes() == before
    assert sorted(p.name for p in previous.iterdir()) == ["train.npz"]


def interrupt_when(command: list, marker: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Start ``command``, wait for ``marker`` on its stderr, then send SIGINT (Ctrl-C)."""
    from tests.conftest import as_from_a_shell

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_from_a_shell,
                               text=True)
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            time.sleep(0.3)
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(command, process.returncode, out, "".join(seen) + err)


def test_selection_ctrl_c_exits_130_with_one_line(work, previous, tmp_path):
    big = tmp_path / "big.pb"
    write_samples(big, random_sample_set(3000, dim=48, seed=44, spread=1.0))
    before = (previous / "train.npz").read_bytes()
    result = interrupt_when([sys.executable, "-m", SELECT, "--input_samples", str(big),
                             "--outdir", str(previous), "--algorithm", "crossval"],
                            "crossval: training")
    assert result.returncode == EXIT_INTERRUPTED, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"{PROG[SELECT]}: interrupted"
    assert (previous / "train.npz").read_bytes() == before
    assert sorted(p.name for p in previous.iterdir()) == ["train.npz"]


def test_selection_stages_are_shown_without_a_terminal(work, tmp_path):
    """tuned takes seconds to minutes: without a terminal (no progress bar) each stage
    still prints a line on stderr (crossval's line is what the Ctrl-C test waits for)."""
    small = tmp_path / "small.pb"
    write_samples(small, random_sample_set(90, dim=8, seed=48, spread=1.5))
    for algorithm, marker in (("tuned", "tuned: simulating"),):
        result = run(SELECT, "--input_samples", small, "--outdir", tmp_path,
                     "--algorithm", algorithm, "--train_size", "12")
        assert result.returncode == 0, result.stderr
        assert marker in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------- eval


def test_eval_bad_input(work, tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    cases = [
        (["--eval_file", tmp_path / "nope.pb", "--train_file", work / "out" / "train.npz"],
         EXIT_BAD_INPUT, "no such file"),
        (["--eval_file", work / "eval.pb", "--train_file", tmp_path / "bad.npz"],
         EXIT_BAD_INPUT, "not a readable .npz"),
        (["--eval_file", work / "junk.pb", "--train_file", work / "out" / "train.npz"],
         EXIT_BAD_INPUT, "junk.pb"),
        (["--eval_file", work / "eval.pb", "--train_file", work / "out" / "train.npz",
          "--json", work / "a_file" / "score.json"], EXIT_ENVIRONMENT, "not a directory"),
        (["--eval_file", work / "eval.pb", "--train_file", work / "out" / "train.npz",
          "--train_size", "0"], EXIT_BAD_INPUT, "--train_size"),
    ]
    for args, code, fragment in cases:
        result = run(EVAL, *args, "--no_progress")
        assert_one_error_line(result, EVAL, code, fragment)
        assert "score" not in result.stdout  # refused before scoring


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_eval_full_disk_keeps_the_previous_json(work, tmp_path):
    (tmp_path / "score.json").write_text('{"score": 0.5}\n')
    result = run(EVAL, "--eval_file", work / "eval.pb", "--train_file",
                 work / "out" / "train.npz", "--json", tmp_path / "score.json",
                 "--no_progress", full_disk=True)
    assert_one_error_line(result, EVAL, EXIT_ENVIRONMENT, "No space left on device")
    assert (tmp_path / "score.json").read_text() == '{"score": 0.5}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["score.json"]


def test_eval_ctrl_c_exits_130_with_one_line(tmp_path):
    # A large training set makes each seed's fit take a while.
    big = random_sample_set(2500, dim=48, seed=45, spread=0.8)
    write_samples(tmp_path / "eval.pb", random_sample_set(500, dim=48, seed=46, role="eval",
                                                          id_prefix="e/"))
    write_train_file(tmp_path / "train.npz", TrainSet(
        x=big.embeddings, y=big.labels, ids=big.ids, label_names=list(big.label_names)))
    result = interrupt_when([sys.executable, "-m", EVAL, "--eval_file",
                             str(tmp_path / "eval.pb"), "--train_file",
                             str(tmp_path / "train.npz")], "training DataPerf's classifier")
    assert result.returncode == EXIT_INTERRUPTED, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"{PROG[EVAL]}: interrupted"
    assert "score" not in result.stdout


def test_eval_help_ends_with_the_exit_statuses():
    for module in (SELECT, EVAL, CONVERT):
        result = run(module, "--help")
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        assert "exit status: 0 success; 1 bad input or data; 2 usage error; 3 environment" \
            in text, module
        assert "130 interrupted" in text


# ---------------------------------------------------------------------------- converter


def test_converter_bad_input(work, tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "latin1.json").write_bytes('{"targets": {"caf\xe9": []}}'.encode("latin-1"))
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    cases = [
        (["import", "--data_dir", tmp_path / "nope", "--outdir", tmp_path / "o"],
         EXIT_BAD_INPUT, "no such directory"),
        (["to-json", "--train_file", tmp_path / "bad.npz", "--outdir", tmp_path / "o"],
         EXIT_BAD_INPUT, "bad.npz"),
        (["from-json", "--train_json", tmp_path / "latin1.json", "--samples",
          work / "samples.pb", "--outdir", tmp_path / "o"], EXIT_BAD_INPUT, "not UTF-8"),
        (["to-json", "--train_file", work / "out" / "train.npz", "--outdir",
          work / "a_file"], EXIT_ENVIRONMENT, "not a directory"),
    ]
    for args, code, fragment in cases:
        result = run(CONVERT, *args)
        assert_one_error_line(result, CONVERT, code, fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_converter_full_disk_keeps_the_previous_train_npz(work, previous, tmp_path):
    result = run(CONVERT, "to-json", "--train_file", previous / "train.npz", "--outdir",
                 tmp_path / "json")
    assert result.returncode == 0, result.stderr
    json_path = next((tmp_path / "json").iterdir())
    before = (previous / "train.npz").read_bytes()
    result = run(CONVERT, "from-json", "--train_json", json_path, "--samples",
                 work / "samples.pb", "--outdir", previous, full_disk=True)
    assert_one_error_line(result, CONVERT, EXIT_ENVIRONMENT, "No space left on device")
    assert (previous / "train.npz").read_bytes() == before
    assert sorted(p.name for p in previous.iterdir()) == ["train.npz"]


def test_pool_without_nontargets_is_refused(tmp_path):
    base = random_sample_set(120, dim=8, seed=47)
    keep = base.labels > 0
    only_targets = SampleSet(ids=base.ids[keep], sample_types=base.sample_types[keep],
                             keywords=base.keywords[keep], embeddings=base.embeddings[keep],
                             metadata=base.metadata)
    write_samples(tmp_path / "t.pb", only_targets)
    result = run(SELECT, "--input_samples", tmp_path / "t.pb", "--outdir", tmp_path / "o")
    assert_one_error_line(result, SELECT, EXIT_BAD_INPUT, "no nontarget clips")
    assert not (tmp_path / "o").exists()
    assert np.asarray(only_targets.labels).min() > 0
