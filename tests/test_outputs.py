"""dataset_builder.outputs: a dataset is published as a set, interrupted publishes are undone or finished."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from dataset_builder import outputs
from dataset_builder.errors import BuildError
from dataset_builder.outputs import LocalOutput, verify_dataset


def publish(out, files: dict[str, bytes], **kwargs) -> LocalOutput:
    """A whole publish of ``files`` (plus a manifest listing them) into ``out``."""
    output = LocalOutput(out)
    output.check()
    output.lock()
    try:
        output.prepare()
        for name, data in files.items():
            with open(os.path.join(output.staging, name), "wb") as f:
                f.write(data)
        manifest = {"files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                              for name, data in files.items()}}
        output.publish({name: name for name in files}, json.dumps(manifest))
    finally:
        output.discard()
        output.unlock()
    return output


def contents(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_a_publish_replaces_the_whole_set_and_keeps_the_users_entries(tmp_path):
    out = tmp_path / "out"
    publish(out, {"samples-00000-of-00002.pb": b"a", "samples-00001-of-00002.pb": b"b", "eval.pb": b"e"})
    (out / "train.npz").write_bytes(b"mine")
    (out / "runs").mkdir()
    (out / "runs" / "x").write_text("y")
    mode = os.stat(out).st_mode
    publish(out, {"samples.pb": b"A", "eval.pb": b"E"})
    got = contents(out)
    assert {k: v for k, v in got.items() if k != "manifest.json"} == {
        "eval.pb": b"E", "samples.pb": b"A", "train.npz": b"mine"}
    assert (out / "runs" / "x").read_text() == "y"
    assert os.stat(out).st_mode == mode
    assert verify_dataset(out)["files"].keys() == {"samples.pb", "eval.pb"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_without_a_directory_exchange_two_renames_do_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    publish(out, {"samples.pb": b"1", "eval.pb": b"1"})
    (out / "train.npz").write_bytes(b"mine")
    publish(out, {"samples.pb": b"2", "eval.pb": b"2"})
    assert (out / "samples.pb").read_bytes() == b"2" and (out / "train.npz").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_working_directory_is_published_in_place(tmp_path, monkeypatch):
    out = tmp_path / "out"
    publish(out, {"samples-00000-of-00001.pb": b"1", "eval.pb": b"1"})
    monkeypatch.chdir(out)
    publish(".", {"samples.pb": b"2", "eval.pb": b"2"})
    assert sorted(contents(out)) == ["eval.pb", "manifest.json", "samples.pb"]  # the stale shard is gone
    verify_dataset(out)


class Crash(Exception):
    pass


@pytest.mark.parametrize("exchange", [True, False])
@pytest.mark.parametrize("crash_after", ["journal", "swap"])
def test_an_interrupted_publish_is_undone_or_finished_by_the_next_build(tmp_path, monkeypatch, exchange,
                                                                          crash_after):
    """A publish killed half-way (power loss): the next lock holder sorts it out."""
    out = tmp_path / "out"
    publish(out, {"samples.pb": b"old", "eval.pb": b"old"})
    (out / "train.npz").write_bytes(b"mine")
    calls = []

    def crash(*args):
        raise Crash()

    if crash_after == "journal":  # the journal is written, nothing moved yet
        monkeypatch.setattr(outputs, "_exchange", crash if exchange else lambda a, b: False)
        if not exchange:
            monkeypatch.setattr(outputs.os, "rename", crash)
    else:  # the new set is in place, the user's entries not yet moved across
        def carry_over_crash(self, old):
            calls.append(old)
            raise Crash()

        if not exchange:
            monkeypatch.setattr(outputs, "_exchange", lambda a, b: False)
        monkeypatch.setattr(LocalOutput, "_carry_over", carry_over_crash)
    with pytest.raises(Crash):
        publish(out, {"samples.pb": b"new", "eval.pb": b"new"})
    monkeypatch.undo()
    assert (tmp_path / ".out.publish").exists()

    LocalOutput(out).lock()  # the next build: recovery runs under the lock
    expected = b"old" if crash_after == "journal" else b"new"
    assert (out / "samples.pb").read_bytes() == expected and (out / "eval.pb").read_bytes() == expected
    assert (out / "train.npz").read_bytes() == b"mine"
    verify_dataset(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


def test_a_publish_that_lost_its_directory_between_two_renames_gets_the_old_one_back(tmp_path):
    out = tmp_path / "out"
    publish(out, {"samples.pb": b"old", "eval.pb": b"old"})
    old = tmp_path / ".out.old-x"
    staging = tmp_path / ".out.staging-x"
    staging.mkdir()
    (tmp_path / ".out.publish").write_text(json.dumps(
        {"new": str(staging), "old": str(old), "new_ino": os.stat(staging).st_ino}))
    os.rename(out, old)  # killed right after the first of the two renames
    LocalOutput(out).lock()
    assert (out / "samples.pb").read_bytes() == b"old" and not old.exists() and not staging.exists()
    verify_dataset(out)


def test_verify_names_a_damaged_a_missing_and_a_foreign_file(tmp_path):
    out = tmp_path / "out"
    publish(out, {"samples.pb": b"0123456789", "eval.pb": b"abc"})
    verify_dataset(out)
    (out / "samples.pb").write_bytes(b"0123456780")
    with pytest.raises(BuildError, match="samples.pb does not match its SHA-256"):
        verify_dataset(out)
    (out / "samples.pb").write_bytes(b"0123456789")
    (out / "eval-00000-of-00002.pb").write_bytes(b"x")
    with pytest.raises(BuildError, match="eval-00000-of-00002.pb is not listed in the manifest"):
        verify_dataset(out)
    os.unlink(out / "eval-00000-of-00002.pb")
    os.unlink(out / "eval.pb")
    with pytest.raises(BuildError, match="eval.pb is missing"):
        verify_dataset(out)
    with pytest.raises(BuildError, match="no manifest"):
        verify_dataset(tmp_path)


def test_check_refuses_a_file_a_file_parent_and_a_missing_estimate(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BuildError, match="is a file, not a directory"):
        LocalOutput(tmp_path / "f").check()
    with pytest.raises(BuildError, match="is a file, not a directory"):
        LocalOutput(tmp_path / "f" / "out").check()
    with pytest.raises(Exception, match="the build needs about"):
        LocalOutput(tmp_path / "new").check(needed_bytes=1 << 62)
    LocalOutput(tmp_path / "new" / "deeper").check(needed_bytes=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # checking writes nothing


def test_an_out_in_a_directory_the_build_may_not_write_is_staged_inside_and_published_in_place(
        tmp_path, monkeypatch):
    out = tmp_path / "out"
    publish(out, {"samples-00000-of-00001.pb": b"1", "eval.pb": b"1"})
    (out / "train.npz").write_bytes(b"mine")
    real = LocalOutput._probe

    def probe(self, directory):  # the parent refuses writes (root cannot be refused by chmod)
        if directory == str(tmp_path):
            raise outputs.BuildEnvironmentError(f"cannot write in {directory}")
        return real(self, directory)

    monkeypatch.setattr(LocalOutput, "_probe", probe)
    before = sorted(p.name for p in tmp_path.iterdir())
    output = publish(out, {"samples.pb": b"2", "eval.pb": b"2"})
    assert output.inside and output.staging.startswith(str(out) + os.sep)
    assert sorted(p.name for p in tmp_path.iterdir()) == before == ["out"]
    assert sorted(contents(out)) == ["eval.pb", "manifest.json", "samples.pb", "train.npz"]
    verify_dataset(out)
    # Neither --out nor its parent writable: refused.
    with pytest.raises(outputs.BuildEnvironmentError, match="cannot write in"):
        LocalOutput(tmp_path / "new").check()


def test_ctrl_c_during_a_publish_is_answered_after_it(tmp_path, monkeypatch):
    import signal

    # As in a terminal, whatever this test process inherited (a shell starts background
    # jobs with SIGINT ignored): Python's own handler, restored afterwards.
    found = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_during_a_publish(tmp_path, monkeypatch)
    finally:
        signal.signal(signal.SIGINT, found)


def _ctrl_c_during_a_publish(tmp_path, monkeypatch):
    import signal

    out = tmp_path / "out"
    publish(out, {"samples.pb": b"old", "eval.pb": b"old"})
    real = LocalOutput._carry_over

    def carry_over_then_ctrl_c(self, old):
        os.kill(os.getpid(), signal.SIGINT)  # in the middle of the publish
        return real(self, old)

    monkeypatch.setattr(LocalOutput, "_carry_over", carry_over_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        publish(out, {"samples.pb": b"new", "eval.pb": b"new"})
    assert (out / "samples.pb").read_bytes() == b"new"  # the publish finished first
    verify_dataset(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
