"""The Makefile's choice of Python (3.11 or 3.12), read from `make -n` (nothing is built).

Each case runs make with a PATH that holds only stand-in interpreters: small scripts
that print their "major.minor" (all the Makefile asks of an interpreter before it makes
the virtual environment) or fail, as a pyenv shim for an unselected version does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="needs GNU make")


def _interpreter(bindir: Path, name: str, minor: str | None) -> Path:
    """A stand-in `name` that reports Python `minor` ("3.12"), or fails when None."""
    path = bindir / name
    body = f"echo {minor}\n" if minor else "echo 'pyenv: version not selected' >&2; exit 127\n"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _make(tmp_path: Path, *args: str, pythons: dict[str, str | None]) -> subprocess.CompletedProcess:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, minor in pythons.items():
        _interpreter(bindir, name, minor)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VENV", "MAKEFLAGS", "MAKELEVEL")}
    env["PATH"] = str(bindir)
    return subprocess.run([MAKE, "-n", "-f", str(ROOT / "Makefile"), *args], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def test_both_present_picks_python311(tmp_path):
    run = _make(tmp_path, "venv", pythons={"python3.11": "3.11", "python3.12": "3.12"})
    assert run.returncode == 0, run.stderr
    assert "python3.11 -m venv .venv" in run.stdout
    assert "the first of python3.11 python3.12 that runs here" in run.stdout


def test_only_python312_runs(tmp_path):
    # python3.11 is on PATH but does not run (a pyenv shim): 3.12 is chosen.
    run = _make(tmp_path, "venv", pythons={"python3.11": None, "python3.12": "3.12"})
    assert run.returncode == 0, run.stderr
    assert "python3.12 -m venv .venv" in run.stdout
    assert "python3.11 -m venv" not in run.stdout


def test_neither_is_one_line_error(tmp_path):
    run = _make(tmp_path, "venv", pythons={"python3.12": None})
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "neither python3.11 nor python3.12" in lines[0] and "PYTHON=" in lines[0]
    # `make clean` needs no Python.
    assert _make(tmp_path, "clean", pythons={}).returncode == 0


def test_explicit_python_unsupported_version(tmp_path):
    fake = _interpreter(tmp_path, "python3.10", "3.10")
    run = _make(tmp_path, "venv", f"PYTHON={fake}", pythons={"python3.11": "3.11"})
    assert run.returncode != 0
    assert "is Python 3.10" in run.stderr and "3.11 and 3.12" in run.stderr


def _fake_venv(tmp_path: Path, minor: str) -> None:
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "pyvenv.cfg").write_text(f"version = {minor}.0\n")
    _interpreter(tmp_path / ".venv" / "bin", "python", minor)


def test_existing_venv_is_kept_without_python(tmp_path):
    _fake_venv(tmp_path, "3.12")
    run = _make(tmp_path, "venv", pythons={"python3.11": "3.11", "python3.12": "3.12"})
    assert run.returncode == 0, run.stderr
    assert "-m venv" not in run.stdout
    assert "made with Python 3.12 and is kept" in run.stdout


def test_explicit_python_of_another_version_remakes_venv(tmp_path):
    _fake_venv(tmp_path, "3.12")
    run = _make(tmp_path, "venv", "PYTHON=python3.11", pythons={"python3.11": "3.11", "python3.12": "3.12"})
    assert run.returncode == 0, run.stderr
    assert "runs Python 3.12, PYTHON=python3.11 is 3.11: making .venv anew" in run.stdout
    assert "python3.11 -m venv .venv" in run.stdout


def test_explicit_python_of_the_same_version_keeps_venv(tmp_path):
    _fake_venv(tmp_path, "3.12")
    run = _make(tmp_path, "venv", "PYTHON=python3.12", pythons={"python3.12": "3.12"})
    assert run.returncode == 0, run.stderr
    assert "-m venv" not in run.stdout and "kept" not in run.stdout
