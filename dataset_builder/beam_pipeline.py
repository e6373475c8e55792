"""build-dataset as an Apache Beam pipeline: the same stages, on any Beam runner.

::

    build-dataset --lang es --keyword sí ... --mswc-root gs://bucket/mswc --out gs://bucket/out/es \\
        --runner DataflowRunner --project P --region R --temp_location gs://bucket/tmp \\
        --sdk_container_image REGISTRY/dataperf-speech-beam:1 --sdk_location container

The launcher (:mod:`dataset_builder.launcher`) does what needs the whole corpus
at once and is cheap: it reads the splits, runs the experiment protocol and loads
the backend once to learn its name, dimension and identity; it also checks the
result, builds the manifest and publishes the files, as for the local runner. Everything
per clip runs on the workers, with the single-machine build's own functions::

    plan.jsonl (one line per chosen clip: index, link, word, split, speaker, type)
      | ReadFromText | Reshuffle                       spread clips over workers
      | BatchElements | resolve audio                  source.iter_audio (path or bytes)
      | decode                                         stages.decode_batch
      | BatchElements(batch_size) | embed              stages.embed_batch; backend loaded
                                                       once per worker in setup()
      | key by (file, shard) | GroupByKey | write      stages.assemble + protos.serialize_samples
    runner: every planned clip written or skipped once; launcher: publish, manifest.json

Modules: :mod:`~dataset_builder.beam_io` (FileSystems paths, the remote source
and output), :mod:`~dataset_builder.beam_plan` (plan file, output layout, the
workers' backend), :mod:`~dataset_builder.beam_transforms` (the DoFns) and this
one (runner options, the pipeline, :class:`BeamRunner`).

(An MSWC archive is one gzip stream: one worker streams it once, as the local build
does, and the decoding fans out after a Reshuffle.)

Determinism: every clip carries its index in the experiment's clip list; a shard
holds a contiguous index range, sorted by index before writing, so with one shard
per file (the default) samples.pb and eval.pb are byte for byte those of the
single-machine build. This relies on the backend embedding each clip independently
of its batch companions (which Beam chooses freely); see docs/SCALE.md.

Faults: a clip that cannot be decoded is a counted skip (Beam counters
``build-dataset/skipped_<reason>``, listed in the manifest), never a failed
pipeline. Workers write each shard under a name unique to the attempt, and dedupe
by sample index inside the shard; the launcher keeps one attempt per shard and
checks that every planned clip is either in a file or skipped, exactly once, before
anything is renamed into place. An interrupted or failed run leaves the previous
outputs untouched.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import time
from typing import Any, Mapping, Sequence

from dataset_builder.beam_io import (
    BeamUnavailable,
    RemoteMswcDirectory,
    RemoteOutput,
    import_beam,
    is_remote,
    join,
    localize,
    read_bytes,
    set_filesystem_options,
)
from dataset_builder.beam_plan import COUNTER_NAMESPACE, BackendSpec, OutputLayout, write_plan
from dataset_builder.clitools import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS
from dataset_builder.errors import BuildError
from dataset_builder.launcher import (
    Job,
    Runner,
    RunResult,
    check_source_args,
    dataset_metadata,
    produce,
    source_from_args,
)
from dataset_builder.outputs import ROLES, LocalOutput
from dataset_builder.protocol import Experiment


@dataclasses.dataclass(frozen=True)
class BeamOptions:
    """How the Beam build runs (never what it builds).

    Attributes:
        runner: Beam runner name (DirectRunner, DaskRunner, DataflowRunner, FlinkRunner, SparkRunner, ...).
        pipeline_args: further Beam pipeline options, passed through unchanged.
        batch_size: clips per embedding call.
        shards: shards per output file (1: plain samples.pb / eval.pb).
        strict: a bad clip fails the build (after the pipeline, before any output appears).
        workers: DirectRunner and DaskRunner's LocalCluster, when ``pipeline_args`` do not
            choose: worker processes.
    """

    runner: str = "DirectRunner"
    pipeline_args: tuple[str, ...] = ()
    batch_size: int = DEFAULT_BATCH_SIZE
    shards: int = 1
    strict: bool = False
    workers: int = DEFAULT_WORKERS


#: The class behind ``--runner DaskRunner`` (importing it needs dask.distributed).
DASK_RUNNER = "dataset_builder.dask_runner.DaskRunner"


def pipeline_flags(options: BeamOptions) -> list[str]:
    """Beam flags: the runner, the user's options, and the DirectRunner's worker processes."""
    flags = ["--runner", options.runner, *options.pipeline_args]
    given = " ".join(options.pipeline_args)
    if options.runner in ("DaskRunner", "dask"):
        # Beam's own Dask runner cannot run this pipeline; ours fills its gaps (dask_runner).
        flags[1] = DASK_RUNNER
    if flags[1] == DASK_RUNNER and "dask_local_workers" not in given:
        # Without a scheduler address, a LocalCluster of --workers processes (at most the cores).
        flags.append(f"--dask_local_workers={options.workers}")
    if options.runner in ("DirectRunner", "direct"):
        if "direct_num_workers" not in given and "direct_running_mode" not in given and options.workers >= 2:
            # As the local build uses --workers decoding processes, so does the DirectRunner.
            flags += ["--direct_running_mode=multi_processing", f"--direct_num_workers={options.workers}"]
        if "sdk_harness_log_level" not in given:
            # Local workers log every bundle at INFO to the user's terminal; errors still show.
            flags.append("--default_sdk_harness_log_level=ERROR")
    return flags


_SECRET_WORDS = ("key", "secret", "token", "password", "credential")


def redact(flags: Sequence[str]) -> list[str]:
    """``flags`` with the values of credential options (``--s3_secret_access_key`` ...) hidden,
    for the manifest, which is published with the dataset."""
    out: list[str] = []
    hide_next = False
    for flag in flags:
        if hide_next:
            out.append("<redacted>")
            hide_next = False
            continue
        name, eq, _ = flag.partition("=")
        secret = name.startswith("--") and any(w in name.lower() for w in _SECRET_WORDS)
        if secret and eq:
            out.append(f"{name}=<redacted>")
        else:
            out.append(flag)
            hide_next = secret
    return out


def _metrics(result) -> dict[str, int]:
    """The pipeline's counters, committed values where the runner reports them."""
    from apache_beam.metrics.metric import MetricsFilter

    totals: collections.Counter = collections.Counter()
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(COUNTER_NAMESPACE))["counters"]
    except (NotImplementedError, KeyError, AttributeError):
        return {}
    for c in counters:
        value = c.committed if c.committed is not None else c.attempted
        totals[c.key.metric.name] += int(value or 0)
    return dict(sorted(totals.items()))


def _pipeline_error(exc: BaseException) -> str:
    """One line out of a runner's (often multi-page) failure message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line.split(":", 1)[0] or "Exception" in line.split(":", 1)[0]]
    line = (errors or lines or [type(exc).__name__])[-1]
    return line if len(line) <= 300 else line[:297] + "..."


def clips_to_embeddings(pipeline, plan_path: str, source, backend_spec: BackendSpec, batch_size: int):
    """The per-clip part of the pipeline: plan -> audio -> decoded -> embedded.

    Returns:
        ``(embedded, skipped, notes)`` PCollections: ``(index, clip, [D] float32)``,
        ``(index, clip, reason, detail)`` and ``(index, clip, note, detail)``.
    """
    from dataset_builder import beam_transforms

    audio = pipeline | "Clips" >> beam_transforms.ReadPlan(plan_path, source)
    decoded = audio | "Decode clips" >> beam_transforms.DecodeClips()
    embedded = decoded.decoded | "Embed clips" >> beam_transforms.EmbedClips(backend_spec, batch_size)
    return embedded, decoded.skipped, decoded.notes


def _collect_summaries(staging: str) -> dict[tuple[str, int], dict]:
    """One summary per ``(role, shard)``; extra attempts (retries) are left in staging."""
    from apache_beam.io.filesystems import FileSystems

    found = sorted(m.path for m in FileSystems.match([join(staging, "*.json")])[0].metadata_list)
    chosen: dict[tuple[str, int], dict] = {}
    for path in found:
        summary = json.loads(read_bytes(path).decode("utf-8"))
        key = (summary["role"], int(summary["shard"]))
        if key not in chosen:
            chosen[key] = summary
    return chosen


def _account(summaries: Mapping[tuple[str, int], dict], layout: OutputLayout) -> None:
    """Refuse a run in which some planned clip was neither written nor skipped (exactly once)."""
    planned = layout.planned()
    lost = {k: n for k, n in planned.items()
            if k not in summaries or summaries[k]["clips"] + len(summaries[k]["skipped"]) != n}
    if lost:
        (role, shard), n = sorted(lost.items())[0]
        got = summaries.get((role, shard))
        have = 0 if got is None else got["clips"] + len(got["skipped"])
        raise BuildError(f"the pipeline accounted for {have} of the {n} clips planned for {role} shard "
                         f"{shard} ({len(lost)} shard(s) short); nothing was written")


class BeamRunner(Runner):
    """Runs the build as an Apache Beam pipeline on any runner.

    Args:
        options: runner, pass-through options, batch size, shards, strictness.
        transforms_hook: for tests: ``f(pcoll) -> pcoll`` applied to the embedded
            clips before writing (e.g. to replay a bundle's output twice).
        backend_spec: how workers recreate the backend (default: from the job).
    """

    def __init__(self, options: BeamOptions = BeamOptions(), *, transforms_hook=None,
                 backend_spec: BackendSpec | None = None):
        self.options = options
        self.strict = options.strict
        self.transforms_hook = transforms_hook
        self.backend_spec = backend_spec

    def _check_shards(self) -> None:
        if self.options.shards < 1:
            raise BuildError(f"--shards must be >= 1, got {self.options.shards}")

    def check(self, args: argparse.Namespace) -> None:
        import_beam()
        if pipeline_flags(self.options)[1] == DASK_RUNNER:
            try:
                import distributed  # noqa: F401
            except ImportError:
                raise BeamUnavailable("--runner DaskRunner needs dask.distributed, which is not installed: "
                                      "pip install 'dataperf-speech[dask]'") from None
        self._check_shards()
        set_filesystem_options(self.options.pipeline_args)

    def open_source(self, args: argparse.Namespace):
        """Remote MSWC roots through FileSystems, anything else as the local runner reads it."""
        if getattr(args, "mswc_root", None) and is_remote(args.mswc_root):
            check_source_args(args)
            return RemoteMswcDirectory(args.mswc_root, args.lang)
        return source_from_args(args)

    def launcher_backend_options(self, options: Mapping[str, Any]) -> dict:
        options = dict(options)
        if isinstance(options.get("model"), str):
            options["model"] = localize(options["model"])
        return options

    def output(self, out: str):
        return RemoteOutput(out) if is_remote(out) else LocalOutput(out)

    def announce(self, experiment: Experiment) -> None:
        import sys

        print(f"build-dataset: {len(experiment.samples) + len(experiment.eval)} clips on {self.options.runner}",
              file=sys.stderr)

    def run(self, job: Job) -> RunResult:
        """Plan file, pipeline, staged shards; every planned clip accounted for."""
        beam = import_beam()
        from apache_beam.options.pipeline_options import PipelineOptions

        from dataset_builder import beam_transforms

        options = self.options
        self._check_shards()
        experiment = job.experiment
        clips = job.clips
        spec = self.backend_spec or BackendSpec.of(job.backend, job.backend_name, dict(job.backend_options))
        layout = OutputLayout(len(experiment.samples), len(experiment.eval), options.shards)
        plan_path = join(job.staging, "plan.jsonl")
        write_plan(plan_path, clips)
        metadata = {role: dataset_metadata(experiment, job.source, job.backend, role) for role, _ in ROLES}
        t = time.perf_counter()
        try:
            pipeline = beam.Pipeline(options=PipelineOptions(pipeline_flags(options)))
            embedded, skipped, notes = clips_to_embeddings(pipeline, plan_path, job.source, spec,
                                                           options.batch_size)
            if self.transforms_hook is not None:
                embedded = self.transforms_hook(embedded)
            _ = (embedded, skipped, notes) | "Write" >> beam_transforms.WriteDataset(job.staging, layout, metadata)
            result = pipeline.run()
            state = result.wait_until_finish()
        except Exception as exc:  # noqa: BLE001 - runners raise anything; report one line
            raise BuildError(f"the Beam pipeline failed on {options.runner}: {_pipeline_error(exc)}") from exc
        if state is not None and str(state).rsplit(".", 1)[-1] != "DONE":
            raise BuildError(f"the Beam pipeline ended in state {state} on {options.runner}; nothing was written")
        pipeline_seconds = time.perf_counter() - t
        counters = _metrics(result)

        t = time.perf_counter()
        summaries = _collect_summaries(job.staging)
        _account(summaries, layout)
        files: dict[str, dict] = {}
        staged: dict[str, str] = {}
        for role, name in ROLES:
            written = [summaries[k] for k in sorted(summaries) if k[0] == role and summaries[k]["file"]]
            stem, suffix = name.rsplit(".", 1)
            for position, summary in enumerate(written):
                if options.shards == 1:
                    final = name
                else:
                    from protos.shards import shard_name

                    final = shard_name(stem, position, len(written), "." + suffix)
                staged[final] = summary["file"]
                files[final] = {"clips": summary["clips"], "bytes": summary["bytes"], "sha256": summary["sha256"]}
        skipped_clips = sorted((tuple(s) for summary in summaries.values() for s in summary["skipped"]),
                               key=lambda s: s[0])
        return RunResult(
            files=files,
            staged=staged,
            skipped=skipped_clips,
            run={"runner": options.runner, "pipeline_options": redact(pipeline_flags(options)[2:]),
                 "batch_size": options.batch_size, "shards": options.shards, "strict": options.strict},
            timings={"pipeline_seconds": pipeline_seconds, "collect_seconds": time.perf_counter() - t},
            work_seconds=pipeline_seconds,
            extra={"beam": {"counters": counters}},
            notes=sorted((tuple(n) for summary in summaries.values() for n in summary.get("notes", [])),
                         key=lambda n: n[0]),
        )


def build_with_beam(source, experiment: Experiment, backend, backend_spec: BackendSpec, out: str,
                    options: BeamOptions = BeamOptions(), *, records: int | None = None,
                    timings: dict[str, float] | None = None, transforms_hook=None) -> dict:
    """Run the build as a Beam pipeline and publish samples.pb, eval.pb and manifest.json.

    Args:
        source: the clip source the experiment was planned on (local or remote directory, archive).
        experiment: from :func:`dataset_builder.launcher.plan_experiment`.
        backend: the launcher's backend (name, dim and identity go into the files).
        backend_spec: how workers recreate it (:meth:`BackendSpec.of`).
        out: output directory, local or on a Beam filesystem.
        options: runner, pass-through options, batch size, shards, strictness.
        records: rows in the splits, for the manifest.
        timings: earlier stages' timings (seconds) for the manifest.
        transforms_hook: see :class:`BeamRunner`.

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        BuildError: the pipeline failed (one line), lost clips, a strict run met a
            bad clip, or skips left a keyword without clips in a file.
    """
    runner = BeamRunner(options, transforms_hook=transforms_hook, backend_spec=backend_spec)
    return produce(runner, source, experiment, backend, out, backend_name=backend_spec.name,
                   backend_options=backend_spec.options, records=records, timings=timings)
