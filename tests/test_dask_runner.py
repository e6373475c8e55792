"""build-dataset on a dask.distributed cluster (Beam's Dask runner, with this project's fixes)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("apache_beam")
pytest.importorskip("distributed")

from dataset_builder import beam_pipeline, cli, dask_runner  # noqa: E402
from embedding_model.backends import register_backend  # noqa: E402
from tests.builder_helpers import BandEnergyBackend, make_tone_corpus  # noqa: E402

LANG = "es"
WORDS = ["año", "sí", "no", *[f"w{i}" for i in range(5)]]
PROTOCOL = ["--known-words", "2", "--unknown-words", "2", "--clips-per-word", "6",
            "--min-word-clips", "10", "--min-target-train", "6", "--min-target-eval", "2"]
RUNNER = ["--runner", dask_runner.RUNNER_PATH]
#: What a user types: build-dataset maps the name to this project's runner.
CLI_RUNNER = ["--runner", "DaskRunner"]


def _children() -> set[str]:
    """This process's descendants, but multiprocessing's resource tracker (one per
    process, started by the first spawn, alive until exit)."""
    import psutil

    found = set()
    for p in psutil.Process().children(recursive=True):
        try:
            command = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "resource_tracker" not in command and p.status() != psutil.STATUS_ZOMBIE:
            found.add(f"{p.pid} {command}")
    return found


@pytest.fixture(scope="module")
def cluster():
    """A real scheduler and 2 worker processes (one thread each), closed after the module."""
    import logging

    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as local:
        yield local


def _build(argv: list[str]) -> int:
    if "--runner" in argv and "--runner" not in cli.build_parser()._option_string_actions:
        return beam_pipeline.main(argv)
    return cli.main(argv)


def _argv(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["--lang", LANG, "--mswc-root", str(corpus), "--out", str(out), "--backend", "test-bands",
            "--keyword", "año", "--keyword", "sí", "--quiet", *PROTOCOL, *extra]


def test_the_translation_gaps_of_beams_dask_runner_are_filled(cluster, tmp_path):
    """Read, tagged outputs, finish_bundle outputs, one setup per worker: each lost or broken upstream."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    lines = tmp_path / "in.txt"
    lines.write_text("".join(f"{i}\n" for i in range(100)), encoding="ascii")
    out = tmp_path / "out"
    out.mkdir()
    setups = tmp_path / "setups"
    setups.mkdir()
    pipeline = beam.Pipeline(options=PipelineOptions(
        [*RUNNER, f"--dask_client_address={cluster.scheduler_address}", "--dask_read_bundle_bytes=64"]))
    numbers = (pipeline | beam.io.ReadFromText(str(lines)) | beam.Map(int)
               | beam.ParDo(_SplitThrees()).with_outputs("three", main="rest"))
    _ = (numbers.rest | "Batch" >> beam.BatchElements(min_batch_size=7, max_batch_size=7)
         | "Write rest" >> beam.ParDo(_WriteEach(str(out), "rest", str(setups))))
    _ = (numbers.three | "Key" >> beam.Map(lambda x: (x % 2, x)) | beam.GroupByKey()
         | "Write three" >> beam.ParDo(_WriteEach(str(out), "three", str(setups))))
    pipeline.run().wait_until_finish()

    rest = [json.loads(p.read_text()) for p in out.glob("rest-*")]
    three = [json.loads(p.read_text()) for p in out.glob("three-*")]
    # Every element once, in the right output; the last batch of each bundle is kept.
    assert sorted(x for batch in rest for x in batch) == [i for i in range(100) if i % 3]
    assert all(len(batch) <= 7 for batch in rest)
    assert sorted((k, sorted(v)) for k, v in three) == [
        (0, [i for i in range(0, 100, 3) if i % 2 == 0]), (1, [i for i in range(0, 100, 3) if i % 2 == 1])]
    # 64-byte reads give several partitions, yet each writer was set up once per worker process.
    pids = [p.read_text() for p in setups.iterdir()]
    assert len(pids) == len(set(pids)) <= 2 * 2


def test_dask_build_writes_the_single_machine_files_byte_for_byte(tmp_path):
    corpus = make_tone_corpus(tmp_path / "corpus", LANG, WORDS, 12, n_train=8, n_dev=2, n_speakers=3, seed=1)
    assert _build(_argv(corpus, tmp_path / "local", "--workers", "0")) == 0
    before = _children()
    # No scheduler given: the runner starts a LocalCluster of --workers processes and
    # must shut it down.
    assert _build(_argv(corpus, tmp_path / "dask", *CLI_RUNNER, "--workers", "2", "--batch-size", "5")) == 0
    for name in ("samples.pb", "eval.pb"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "dask" / "manifest.json").read_text(encoding="utf-8"))
    local = json.loads((tmp_path / "local" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["skipped"]["by_reason"] == local["skipped"]["by_reason"] == {
        "empty": 1, "missing": 1, "unreadable": 1}
    assert manifest["files"] == local["files"]
    assert manifest["run"]["runner"] == "DaskRunner"
    assert "--dask_local_workers=2" in manifest["run"]["pipeline_options"]
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == ["eval.pb", "manifest.json", "samples.pb"]
    assert _children() <= before, "the LocalCluster's processes outlived the build"


def test_a_worker_failure_is_one_line_and_leaves_no_cluster(tmp_path, capsys):
    corpus = make_tone_corpus(tmp_path / "corpus", LANG, WORDS, 12, n_train=8, n_dev=2, n_speakers=3, seed=1)
    before = _children()
    # The workers cannot load a backend whose identity differs from the launcher's.
    code = _build(_argv(corpus, tmp_path / "out", *RUNNER, "--dask_local_workers=1",
                        "--backend", "test-bands-drifting"))
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("build-dataset: ") and "the Beam pipeline failed on " in err[-1], err
    assert "ship the same model to the workers" in err[-1]
    assert not (tmp_path / "out" / "samples.pb").exists()
    assert _children() <= before


def test_local_clusters_never_have_more_workers_than_cores():
    cores = os.cpu_count() or 1
    assert dask_runner.local_worker_count(None) == cores
    assert dask_runner.local_worker_count(0) == cores
    assert dask_runner.local_worker_count(1) == 1
    assert dask_runner.local_worker_count(cores + 5) == cores


class DriftingBackend(BandEnergyBackend):
    """A backend whose identity differs in every process (as another model file on a worker would)."""

    @property
    def identity(self) -> str:
        return f"bands-pid-{os.getpid()}"


register_backend("test-bands-drifting", DriftingBackend)

# Module-level DoFns: workers unpickle them by reference.
import apache_beam as _beam  # noqa: E402


class _SplitThrees(_beam.DoFn):
    def process(self, x):
        if x % 3 == 0:
            yield _beam.pvalue.TaggedOutput("three", x)
        else:
            yield x


class _WriteEach(_beam.DoFn):
    def __init__(self, out: str, prefix: str, setups: str):
        self.out, self.prefix, self.setups = out, prefix, setups

    def setup(self):
        import uuid

        with open(os.path.join(self.setups, f"{self.prefix}-{uuid.uuid4().hex}"), "w") as f:
            f.write(f"{self.prefix}:{os.getpid()}")

    def process(self, element):
        import uuid

        if isinstance(element, tuple):
            element = (element[0], list(element[1]))
        with open(os.path.join(self.out, f"{self.prefix}-{uuid.uuid4().hex}"), "w") as f:
            json.dump(element, f)


def test_the_runner_name_maps_to_this_projects_runner_with_the_workers_flag():
    from dataset_builder.beam_pipeline import DASK_RUNNER, BeamOptions, pipeline_flags

    assert DASK_RUNNER == dask_runner.RUNNER_PATH
    assert pipeline_flags(BeamOptions(runner="DaskRunner", workers=3)) == [
        "--runner", DASK_RUNNER, "--dask_local_workers=3"]
    given = pipeline_flags(BeamOptions(runner="DaskRunner", pipeline_args=("--dask_local_workers=1",)))
    assert given == ["--runner", DASK_RUNNER, "--dask_local_workers=1"]


def test_without_dask_installed_the_runner_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # "import distributed" raises ImportError
    code = _build(_argv(tmp_path / "no-corpus", tmp_path / "out", *CLI_RUNNER))
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'dataperf-speech[dask]'" in err[0], err
