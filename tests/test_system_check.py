"""A machine that lacks a system package is told the exact apt-get line, and nothing runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dataset_builder import system_check
from dataset_builder.system_check import Requirement
from protos.errors import EXIT_ENVIRONMENT, EnvironmentProblem, run_cli

ROOT = Path(__file__).resolve().parent.parent

HAVE = Requirement("have-pkg", "something present", lambda: True)
LACK_A = Requirement("lack-a", "a missing engine", lambda: False)
LACK_B = Requirement("lack-b", "a missing library", lambda: False)


def test_missing_keeps_order_and_install_line_deduplicates():
    assert system_check.missing([HAVE, LACK_A, LACK_B]) == [LACK_A, LACK_B]
    assert system_check.install_line([LACK_A, LACK_B, LACK_A]) == "apt-get install -y lack-a lack-b"


def test_require_names_every_missing_package_and_the_command():
    system_check.require([HAVE], "x")  # nothing missing: no error
    with pytest.raises(EnvironmentProblem) as info:
        system_check.require([HAVE, LACK_A, LACK_B], "the demo")
    message = str(info.value)
    assert "lack-a (a missing engine)" in message and "lack-b (a missing library)" in message
    assert "apt-get install -y lack-a lack-b" in message
    assert "have-pkg" not in message


def test_cli_prints_the_install_line_last_and_exits_3(monkeypatch, capsys):
    monkeypatch.setattr(system_check, "TEST_REQUIREMENTS", (HAVE, LACK_B))
    assert system_check.main([]) == EXIT_ENVIRONMENT
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["missing: lack-b (a missing library)", "apt-get install -y lack-b"]


def test_cli_runs_with_the_system_python_before_any_install():
    # .ci/run calls it with the system Python, before the virtualenv exists: importing
    # it must need nothing beyond the standard library.
    code = ("import sys; import dataset_builder.system_check; "
            "heavy = {'numpy', 'tensorflow', 'soundfile', 'google.protobuf'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_demo_stops_before_any_work_with_one_line(monkeypatch, tmp_path, capsys):
    from dataset_builder import demo

    monkeypatch.setattr(system_check, "corpus_requirements", lambda corpus: (LACK_A,))
    status = run_cli("demo", demo.main, ["--out", str(tmp_path / "out")])
    assert status == EXIT_ENVIRONMENT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("demo: error: the demo needs lack-a")
    assert "apt-get install -y lack-a" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_demo_corpus_decodes_here_and_a_broken_corpus_is_caught(tmp_path):
    from dataset_builder.demo import DEMO_CORPUS

    assert system_check.missing(system_check.corpus_requirements(DEMO_CORPUS)) == []
    bad = tmp_path / "xx" / "clips" / "word"
    bad.mkdir(parents=True)
    (bad / "clip.opus").write_bytes(b"OggS not really")
    assert [r.package for r in system_check.missing(system_check.corpus_requirements(tmp_path))] == ["libopus0"]
