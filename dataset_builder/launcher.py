"""The runner-independent half of ``build-dataset``: everything before and after the clips.

Every runner (the local one in :mod:`dataset_builder.build`, the Apache Beam one
in :mod:`dataset_builder.beam_pipeline`) is driven by :func:`launch` through the
same sequence, so what a dataset is does not depend on where it was computed::

    runner.check(args)                       flags the runner refuses, before any work
    params_from_args, runner.open_source     the protocol's parameters, the corpus
    plan_experiment                          the splits -> the experiment (dry run stops here)
    output.check, output.lock                --out writable, enough space, no other build
    load_backend                             the backend, once, on the launcher
    produce:
      output.prepare()                       a staging location for this run
      runner.run(Job) -> RunResult           embed the clips, write the pool files staged
      check_result                           --strict, every keyword still in every file
      build_manifest                         the one manifest of every runner
      output.publish(...)                    the staged set replaces the previous one (outputs.py)
    summary                                  the lines a user reads

A runner only decodes, embeds and writes staged files; it never builds a
manifest, decides what a bad clip means, or touches the published outputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence

from dataset_builder.errors import BuildEnvironmentError, BuildError
from dataset_builder.outputs import MANIFEST_NAME, ROLES, LocalOutput, estimate_bytes
from dataset_builder.protocol import (
    TARGET,
    ChosenClip,
    Experiment,
    ExperimentParams,
    class_counts,
    design_experiment,
    split_counts,
)
from protos.clip_format import SAMPLE_RATE

if TYPE_CHECKING:  # pragma: no cover
    from dataset_builder.sources import ClipSource

MANIFEST_FORMAT = "dataperf-speech/build-manifest/1"
#: Options that only the wav2vec2 backend takes.
WAV2VEC2_ONLY = ("layer", "pooling")
SOURCE_ARCHIVE_ONLY = ("splits_archive", "audio_sha256", "splits_sha256", "download_dir")


# ----------------------------------------------------------------------------- parameters


def keywords_from_flags(values: Iterable[str]) -> tuple[str, ...]:
    """``--keyword`` values, each possibly a comma-separated list, as one tuple."""
    out = []
    for value in values:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return tuple(out)


def params_from_args(args: argparse.Namespace) -> ExperimentParams:
    """The experiment protocol's parameters from build-dataset's flags."""
    return ExperimentParams(
        keywords=keywords_from_flags(args.keyword),
        known_words=args.known_words,
        unknown_words=args.unknown_words,
        clips_per_word=args.clips_per_word,
        min_word_clips=args.min_word_clips,
        min_target_train=args.min_target_train,
        min_target_eval=args.min_target_eval,
        max_target_train=args.max_target_train,
        max_target_eval=args.max_target_eval,
        seed=args.seed,
        include_invalid=args.include_invalid,
    )


def check_run_args(args: argparse.Namespace) -> None:
    """Refuse worker/batch settings that cannot run (every runner)."""
    if args.workers < 0 or args.batch_size < 1:
        raise BuildError("--workers must be >= 0 and --batch-size >= 1")


# ----------------------------------------------------------------------------- source


def check_source_args(args: argparse.Namespace) -> None:
    """Refuse source flags that do not go together."""
    if args.mswc_root:
        for flag in SOURCE_ARCHIVE_ONLY:
            if getattr(args, flag):
                raise BuildError(f"--{flag.replace('_', '-')} only applies with --audio-archive")
    elif not args.splits_archive:
        raise BuildError("--audio-archive needs --splits-archive (MSWC's splits/{lang}.tar.gz)")


def source_from_args(args: argparse.Namespace) -> "ClipSource":
    """The local or HTTP clip source the flags name (an MSWC directory or MSWC's archives)."""
    from dataset_builder.sources import MswcArchive, MswcDirectory

    check_source_args(args)
    if args.mswc_root:
        return MswcDirectory(args.mswc_root, args.lang)
    return MswcArchive(
        args.audio_archive, args.splits_archive, args.lang,
        audio_sha256=args.audio_sha256, splits_sha256=args.splits_sha256,
        download_dir=args.download_dir, progress=not args.quiet,
    )


# ----------------------------------------------------------------------------- backend


def backend_options(args: argparse.Namespace) -> dict:
    """The backend's keyword options from the flags (``--model``, wav2vec2's ``--layer``/``--pooling``)."""
    options = {}
    if args.model is not None:
        options["model"] = args.model
    for name in WAV2VEC2_ONLY:
        value = getattr(args, name)
        if value is not None:
            if args.backend != "wav2vec2":
                raise BuildError(f"--{name} applies to --backend wav2vec2 only, not {args.backend!r}")
            options[name] = value
    return options


def load_backend(name: str, options: Mapping[str, Any]):
    """Create the embedding backend.

    Raises:
        BuildError: no backend has that name.
        BuildEnvironmentError: the backend's packages or model are missing.
    """
    from embedding_model.backends import BackendUnavailable, get_backend

    try:
        return get_backend(name, **options)
    except BackendUnavailable as e:
        raise BuildEnvironmentError(str(e)) from None
    except ValueError as e:
        raise BuildError(str(e)) from None


def dataset_metadata(experiment: Experiment, source, backend, role: str):
    """The ``protos.DatasetMetadata`` written into samples.pb (``role="samples"``) or eval.pb."""
    from protos import DatasetMetadata

    params = experiment.params.as_strings()
    params.update({
        "source": source.kind,
        "nontarget_known_words": ",".join(experiment.known_words),
        "nontarget_unknown_words": ",".join(experiment.unknown_words),
    })
    return DatasetMetadata(
        language=source.lang,
        target_keywords=list(experiment.keywords),
        backend=backend.name,
        embedding_dim=int(backend.dim),
        model_id=backend.identity,
        sample_rate=SAMPLE_RATE,
        role=role,
        params=dict(sorted(params.items())),
    )


# ----------------------------------------------------------------------------- plan


def plan_experiment(source, params: ExperimentParams) -> tuple[Experiment, int]:
    """Read the source's splits and run the protocol.

    Returns:
        ``(experiment, number of records in the splits)``.
    """
    try:
        records = source.records()
    except UnicodeDecodeError as e:
        where = ", ".join(f"{k} {v}" for k, v in source.describe().items() if k != "kind")
        raise BuildError(f"the {source.lang}_splits.csv of {where} is not UTF-8 text "
                         f"(byte 0x{e.object[e.start]:02x} at offset {e.start}): save it as UTF-8") from None
    return design_experiment(records, params), len(records)


def print_plan(experiment: Experiment) -> None:
    """``--dry-run``: the chosen targets, nontarget words and counts, as JSON on stdout."""
    print(json.dumps({
        "targets": list(experiment.keywords),
        "nontarget_words": {"known": list(experiment.known_words),
                            "unknown": list(experiment.unknown_words)},
        "counts": experiment.counts(),
    }, indent=2, ensure_ascii=False))


# ----------------------------------------------------------------------------- runners


@dataclasses.dataclass(frozen=True)
class Job:
    """What a runner is asked to do.

    Attributes:
        source: the clip source the experiment was planned on.
        experiment: the clips; index i is ``clips[i]``, samples.pb's first.
        backend: the launcher's backend (name, dim and identity go into the files).
        backend_name, backend_options: how to create it again (Beam workers do).
        staging: where the runner writes its files (a directory path or URL).
    """

    source: Any
    experiment: Experiment
    backend: Any
    backend_name: str
    backend_options: Mapping[str, Any]
    staging: str

    @property
    def clips(self) -> list[ChosenClip]:
        return list(self.experiment.samples + self.experiment.eval)


@dataclasses.dataclass
class RunResult:
    """What a runner did.

    Attributes:
        files: final file name -> ``{"clips", "bytes", "sha256"}``, in publishing order.
        staged: final file name -> name of the file inside ``Job.staging``.
        skipped: ``(index, link, reason, detail)`` of every clip not used, by index.
        run: how it ran (recorded as the manifest's ``run``).
        timings: the runner's own stages, seconds.
        work_seconds: wall time spent on the clips (throughput).
        extra: further manifest sections (Beam: its counters).
        notes: ``(index, link, note, detail)`` of clips used after a repair, by index.
    """

    files: dict[str, dict]
    staged: dict[str, str]
    skipped: list[tuple[int, str, str, str]]
    run: dict
    timings: dict[str, float]
    work_seconds: float
    extra: dict = dataclasses.field(default_factory=dict)
    notes: list[tuple[int, str, str, str]] = dataclasses.field(default_factory=list)


class Output(Protocol):
    """Where a run's files are staged and then published (local: ``outputs.LocalOutput``)."""

    location: str
    staging: str

    def check(self, needed_bytes: int = 0) -> None:
        """Refuse an output that cannot be written (before any work)."""

    def lock(self) -> None:
        """Refuse a second build into the same output."""

    def unlock(self) -> None:
        """Release :meth:`lock`."""

    def prepare(self) -> None:
        """Create the staging location."""

    def publish(self, staged: Mapping[str, str], manifest_text: str) -> None:
        """Move the staged files into place, remove stale ones, write the manifest."""

    def discard(self) -> None:
        """Remove the staging location (always called, also after a failure)."""


class Runner:
    """Base of the runners: what they share unless they say otherwise.

    Subclasses set ``strict`` and implement :meth:`run`.
    """

    strict: bool = False

    def check(self, args: argparse.Namespace) -> None:
        """Refuse flags this runner cannot honour (before any work)."""

    def open_source(self, args: argparse.Namespace):
        return source_from_args(args)

    def launcher_backend_options(self, options: Mapping[str, Any]) -> dict:
        """The options the launcher loads its own backend with."""
        return dict(options)

    def output(self, out: str) -> Output:
        return LocalOutput(out)

    def announce(self, experiment: Experiment) -> None:
        """Say on stderr what is about to run (when not quiet)."""

    def run(self, job: Job) -> RunResult:  # pragma: no cover - abstract
        raise NotImplementedError


# ----------------------------------------------------------------------------- after the run


def strict_failure(link: str, reason: str, detail: str) -> BuildError:
    """The error of a ``--strict`` build that met a clip it cannot use."""
    return BuildError(f"clip {link!r} is {reason} ({detail}); "
                      "drop --strict to skip such clips and count them in manifest.json")


def kept_clips(experiment: Experiment, skipped: Sequence[tuple[int, str, str, str]]) -> dict[str, list[ChosenClip]]:
    """The clips each file holds: the planned ones minus the skipped ones, by role."""
    gone = {s[0] for s in skipped}
    n = len(experiment.samples)
    return {
        "samples": [c for i, c in enumerate(experiment.samples) if i not in gone],
        "eval": [c for i, c in enumerate(experiment.eval, start=n) if i not in gone],
    }


def check_result(experiment: Experiment, skipped: Sequence[tuple[int, str, str, str]], strict: bool) -> None:
    """Refuse a run whose outputs must not be published.

    Raises:
        BuildError: a strict run skipped a clip, or skips left a target keyword
            without clips in one of the files.
    """
    if strict and skipped:
        _, link, reason, detail = skipped[0]
        raise strict_failure(link, reason, detail)
    kept = kept_clips(experiment, skipped)
    for role, name in ROLES:
        present = {c.word for c in kept[role] if c.sample_type == TARGET}
        for keyword in experiment.keywords:
            if keyword not in present:
                raise BuildError(
                    f"every clip of keyword {keyword!r} meant for {name} was skipped "
                    f"(see the reasons with --strict); check the corpus audio")


def build_manifest(source, experiment: Experiment, backend, result: RunResult, *,
                   records: int | None, timings: Mapping[str, float]) -> dict:
    """The manifest of a build (every runner's): what was planned, kept, skipped, written, and how."""
    import collections

    kept = kept_clips(experiment, result.skipped)
    by_reason = collections.Counter(s[2] for s in result.skipped)
    manifest = {
        "format": MANIFEST_FORMAT,
        "language": source.lang,
        "source": source.describe(),
        "parameters": {**dataclasses.asdict(experiment.params), "keywords": list(experiment.keywords)},
        "targets": list(experiment.keywords),
        "nontarget_words": {"known": list(experiment.known_words),
                            "unknown": list(experiment.unknown_words)},
        "counts": {role: class_counts(kept[role]) for role, _ in ROLES},
        "counts_by_split": {role: split_counts(kept[role]) for role, _ in ROLES},
        "planned_counts": experiment.counts(),
        "corpus": {"records": records, "duplicate_links": experiment.duplicate_links},
        "skipped": {
            "total": len(result.skipped),
            "by_reason": dict(sorted(by_reason.items())),
            "clips": [{"id": link, "reason": reason, "detail": detail}
                      for _, link, reason, detail in result.skipped],
        },
        # Clips used after a repair at the decode boundary (a peak above 1 scaled to 1).
        "notes": {
            "total": len(result.notes),
            "by_kind": dict(sorted(collections.Counter(n[2] for n in result.notes).items())),
            "clips": [{"id": link, "note": note, "detail": detail} for _, link, note, detail in result.notes],
        },
        "backend": {"name": backend.name, "dim": int(backend.dim), "identity": backend.identity},
        "files": dict(result.files),
        "run": dict(result.run),
        **result.extra,
        "timings": {k: round(v, 3) if isinstance(v, float) else v for k, v in timings.items()},
    }
    return manifest


def manifest_text(manifest: Mapping[str, Any]) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def produce(runner: Runner, source, experiment: Experiment, backend, out: str, *,
            backend_name: str | None = None, backend_options: Mapping[str, Any] | None = None,
            records: int | None = None, timings: Mapping[str, float] | None = None,
            output: Output | None = None) -> dict:
    """Run ``runner`` on a planned experiment and publish samples.pb, eval.pb and manifest.json.

    Args:
        runner: the local or the Beam runner.
        source: the clip source the experiment was planned on.
        experiment: from :func:`plan_experiment`.
        backend: the loaded backend.
        out: output directory (local path, or a URL the runner's output understands).
        backend_name, backend_options: how the runner may create the backend again
            (default: the backend's own name, no options).
        records: rows in the splits, for the manifest.
        timings: earlier stages' timings (seconds) for the manifest.
        output: the checked and locked output of ``out`` (:func:`launch` opens it
            before loading the backend); by default it is opened here.

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        BuildError: see :func:`check_result`, and whatever the runner raises.
        BuildEnvironmentError: the output cannot be written, or another build holds it.
    """
    start = time.perf_counter()
    if output is None:
        output = runner.output(out)
        output.check(estimate_bytes(len(experiment.samples) + len(experiment.eval), int(backend.dim)))
        output.lock()
        try:
            return produce(runner, source, experiment, backend, out, backend_name=backend_name,
                           backend_options=backend_options, records=records, timings=timings,
                           output=output)
        finally:
            output.unlock()
    output.prepare()
    try:
        result = runner.run(Job(source, experiment, backend, backend_name or backend.name,
                                dict(backend_options or {}), output.staging))
        check_result(experiment, result.skipped, runner.strict)
        n_clips = len(experiment.samples) + len(experiment.eval)
        all_timings = {
            **(timings or {}),
            **result.timings,
            "build_seconds": time.perf_counter() - start,
            "clips_per_second": round(n_clips / result.work_seconds, 1) if result.work_seconds else None,
        }
        manifest = build_manifest(source, experiment, backend, result, records=records, timings=all_timings)
        output.publish(result.staged, manifest_text(manifest))
    finally:
        output.discard()
    return manifest


# ----------------------------------------------------------------------------- the sequence


def summary(manifest: Mapping[str, Any]) -> str:
    """The lines a user reads after a build."""
    c = manifest["counts"]
    lines = [
        f"samples.pb: {sum(c['samples'].values())} clips {c['samples']}",
        f"eval.pb:    {sum(c['eval'].values())} clips {c['eval']}",
        f"nontarget words: {len(manifest['nontarget_words']['known'])} known, "
        f"{len(manifest['nontarget_words']['unknown'])} unknown",
        f"skipped: {manifest['skipped']['total']} {manifest['skipped']['by_reason']}",
        f"backend: {manifest['backend']['name']} ({manifest['backend']['dim']}-d, "
        f"{manifest['backend']['identity']}); "
        f"{manifest['timings']['clips_per_second']} clips/s",
    ]
    return "\n".join(lines)


def launch(args: argparse.Namespace, runner: Runner) -> int:
    """build-dataset's whole sequence (see the module docstring) with ``runner``.

    Returns:
        0; every failure is raised (``protos.errors.run_cli`` maps it to a status).
    """
    runner.check(args)
    check_run_args(args)
    params = params_from_args(args)
    source = runner.open_source(args)
    options = backend_options(args)
    t = time.perf_counter()
    experiment, n_records = plan_experiment(source, params)
    plan_seconds = time.perf_counter() - t
    if args.dry_run:
        print_plan(experiment)
        return 0
    # The output is checked and locked before the model loads or a clip is read.
    output = runner.output(args.out)
    output.check(estimate_bytes(len(experiment.samples) + len(experiment.eval)))
    output.lock()
    try:
        t = time.perf_counter()
        backend = load_backend(args.backend, runner.launcher_backend_options(options))
        load_seconds = time.perf_counter() - t
        if not args.quiet:
            runner.announce(experiment)
        manifest = produce(runner, source, experiment, backend, args.out,
                           backend_name=args.backend, backend_options=options, records=n_records,
                           timings={"plan_seconds": plan_seconds, "backend_load_seconds": load_seconds},
                           output=output)
    finally:
        output.unlock()
    if not args.quiet:
        print(summary(manifest))
        print(f"wrote {args.out}: {', '.join(manifest['files'])}, {MANIFEST_NAME}")
    return 0
