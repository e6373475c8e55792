"""build-dataset as an Apache Beam pipeline: the same stages, on any Beam runner.

::

    build-dataset --lang es --keyword sí ... --mswc-root gs://bucket/mswc --out gs://bucket/out/es \\
        --runner DataflowRunner --project P --region R --temp_location gs://bucket/tmp \\
        --sdk_container_image REGISTRY/dataperf-speech-beam:1 --sdk_location container

The launcher does what needs the whole corpus at once and is cheap: it reads the
splits, runs the experiment protocol (:func:`dataset_builder.build.plan_experiment`)
and loads the backend once to learn its name, dimension and identity. Everything
per clip runs on the workers, with the single-machine build's own functions::

    plan.jsonl (one line per chosen clip: index, link, word, split, speaker, type)
      | ReadFromText | Reshuffle                       spread clips over workers
      | BatchElements | resolve audio                  source.iter_audio (path or bytes)
      | decode                                         stages.decode_batch
      | BatchElements(batch_size) | embed              stages.embed_batch; backend loaded
                                                       once per worker in setup()
      | key by (file, shard) | GroupByKey | write      stages.assemble + protos.serialize_samples
    launcher: check, rename staged shards into place, manifest.json

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
import importlib
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from typing import Iterator, Sequence

import numpy as np

from dataset_builder.errors import BuildError
from dataset_builder.protocol import TARGET, ChosenClip, Experiment

#: Namespace of the pipeline's Beam metrics counters.
COUNTER_NAMESPACE = "build-dataset"
#: The one line a user without the extra sees.
BEAM_MISSING = "--runner needs Apache Beam, which is not installed: pip install 'dataperf-speech[beam]'"
#: Clips per decode task (as the local build's chunk size).
DECODE_CHUNK = 32
ROLES = (("samples", "samples.pb"), ("eval", "eval.pb"))

EXIT_BACKEND = 3  # == dataset_builder.cli.EXIT_BACKEND: an optional extra is missing


class BeamUnavailable(BuildError):
    """apache-beam is not installed."""


class _ImportNoise(logging.Filter):
    # Beam warns at import when the optional BigQuery client is half installed;
    # build-dataset never touches BigQuery.
    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


def import_beam():
    """``apache_beam``, or :class:`BeamUnavailable` with the install hint."""
    root = logging.getLogger()
    noise = _ImportNoise()
    root.addFilter(noise)
    try:
        import apache_beam
    except ImportError:
        raise BeamUnavailable(BEAM_MISSING) from None
    finally:
        root.removeFilter(noise)
    return apache_beam


# ----------------------------------------------------------------------------- paths


def is_remote(path: str) -> bool:
    """True for ``scheme://`` paths (gs, s3, hdfs, ...) that go through Beam's FileSystems."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def _join(base: str, *parts: str) -> str:
    if is_remote(base):
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.join(base, *parts)
    return os.path.join(base, *parts)


def _write_bytes(path: str, data: bytes) -> None:
    """Write a file through FileSystems (local, gs://, s3://, hdfs://)."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


def _read_bytes(path: str) -> bytes:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def localize(path: str) -> str:
    """A local copy of a remote model file or directory; local paths are returned unchanged.

    A directory is copied with everything below it; a file (``.keras``) with the
    ``.json`` metadata beside it when there is one. Backends load from local
    paths only, so the launcher and every worker copy the model once.

    Raises:
        BuildError: nothing exists at ``path``.
    """
    if not is_remote(path):
        return path
    from apache_beam.io.filesystems import FileSystems

    base = path.rstrip("/")
    name = base.rsplit("/", 1)[-1]
    local_root = os.path.join(tempfile.mkdtemp(prefix="dataperf-model-"), name)
    # Object stores have no directories: a "directory" is whatever lies below the prefix.
    below = FileSystems.match([base + "/**"])[0].metadata_list
    if below:
        copies = [(m.path, os.path.join(local_root, *m.path[len(base) + 1:].split("/"))) for m in below]
    elif FileSystems.exists(base):
        copies = [(base, local_root)]
        sibling = base.rsplit(".", 1)[0] + ".json"
        if sibling != base and FileSystems.exists(sibling):
            copies.append((sibling, os.path.join(os.path.dirname(local_root), sibling.rsplit("/", 1)[-1])))
    else:
        raise BuildError(f"{path}: no such model file or directory")
    for remote, local in copies:
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, "wb") as f:
            f.write(_read_bytes(remote))
    return local_root


class RemoteMswcDirectory:
    """An MSWC-layout directory on any Beam filesystem (``gs://``, ``s3://``, ``hdfs://``).

    The same :class:`dataset_builder.sources.ClipSource` as
    :class:`~dataset_builder.sources.MswcDirectory`, reading through Beam's
    FileSystems: the splits CSV is copied locally and parsed by
    :func:`corpus.layout.read_splits`; clips come as encoded bytes.

    Args:
        root: corpus root URL.
        lang: language code.
    """

    kind = "mswc-dir"

    def __init__(self, root: str, lang: str):
        self.root = root.rstrip("/")
        self.lang = lang

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "root": self.root}

    def records(self) -> list:
        from apache_beam.io.filesystems import FileSystems

        from corpus import layout

        # The same candidate places the local reader tries, relative to the root.
        for relative in layout.splits_csv_candidates("", self.lang):
            remote = FileSystems.join(self.root, *relative.parts)
            if FileSystems.exists(remote):
                with tempfile.TemporaryDirectory(prefix="dataperf-splits-") as tmp:
                    local = os.path.join(tmp, *relative.parts)
                    os.makedirs(os.path.dirname(local), exist_ok=True)
                    with open(local, "wb") as f:
                        f.write(_read_bytes(remote))
                    return layout.read_splits(tmp, self.lang)
        tried = ", ".join(FileSystems.join(self.root, *r.parts)
                          for r in layout.splits_csv_candidates("", self.lang))
        raise layout.CorpusError(f"no splits file for language {self.lang!r} under {self.root}: tried {tried}")

    def iter_audio(self, clips: Sequence[ChosenClip]) -> Iterator[tuple[int, bytes | None]]:
        from apache_beam.io.filesystems import FileSystems

        from corpus import layout

        for index, clip in enumerate(clips):
            relative = layout.clip_path("", self.lang, clip.link)  # validates the link
            try:
                data = _read_bytes(FileSystems.join(self.root, *relative.parts))
            except Exception as e:  # noqa: BLE001 - each filesystem raises its own types
                if isinstance(e, FileNotFoundError) or _is_not_found(e):
                    data = None
                else:
                    raise
            yield index, data


def _is_not_found(error: Exception) -> bool:
    # Beam's filesystems wrap "no such object" in BeamIOError / IOError with the
    # backend's own message; a transient error must raise so the bundle is retried.
    text = str(error).lower()
    return any(s in text for s in ("not found", "no such file", "does not exist", "404"))


def source_for_beam(args: argparse.Namespace):
    """The clip source for the pipeline: remote MSWC roots through FileSystems, else the CLI's."""
    from dataset_builder.cli import source_from_args

    if getattr(args, "mswc_root", None) and is_remote(args.mswc_root):
        source_from_args(argparse.Namespace(**{**vars(args), "mswc_root": "."}))  # flag checks
        return RemoteMswcDirectory(args.mswc_root, args.lang)
    return source_from_args(args)


# ----------------------------------------------------------------------------- layout


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """Where each clip of the experiment goes: file (role) and shard.

    Attributes:
        n_samples: clips planned for samples.pb (indices ``[0, n_samples)``).
        n_eval: clips planned for eval.pb (indices ``[n_samples, n_samples + n_eval)``).
        shards: shards per file; 1 writes plain samples.pb / eval.pb.
    """

    n_samples: int
    n_eval: int
    shards: int = 1

    def role_of(self, index: int) -> str:
        return "samples" if index < self.n_samples else "eval"

    def key(self, index: int) -> tuple[str, int]:
        """``(role, shard)``: contiguous index ranges, so shards concatenate in dataset order."""
        if index < self.n_samples:
            return "samples", index * self.shards // self.n_samples
        local = index - self.n_samples
        return "eval", local * self.shards // self.n_eval

    def planned(self) -> dict[tuple[str, int], int]:
        """Planned clips per ``(role, shard)``."""
        counts = {}
        for role, n in (("samples", self.n_samples), ("eval", self.n_eval)):
            # The same arithmetic as key(), so the two can never disagree.
            per_shard = np.bincount(np.arange(n, dtype=np.int64) * self.shards // max(n, 1),
                                    minlength=self.shards)
            counts.update({(role, s): int(c) for s, c in enumerate(per_shard) if c})
        return counts


def _clip_to_json(index: int, clip: ChosenClip) -> str:
    # ASCII escapes: no word can contain a character a line reader splits on.
    return json.dumps({"i": index, "link": clip.link, "word": clip.word, "split": clip.split,
                       "speaker": clip.speaker, "type": clip.sample_type}, ensure_ascii=True)


def _clip_from_json(line: str) -> tuple[int, ChosenClip]:
    d = json.loads(line)
    return int(d["i"]), ChosenClip(d["link"], d["word"], d["split"], d["speaker"], int(d["type"]))


def write_plan(path: str, clips: Sequence[ChosenClip]) -> None:
    """The experiment's clips, one JSON line each (so no runner ships them inside the job graph)."""
    _write_bytes(path, "".join(_clip_to_json(i, c) + "\n" for i, c in enumerate(clips)).encode("utf-8"))


def read_plan(path: str) -> list[tuple[int, ChosenClip]]:
    return [_clip_from_json(line) for line in _read_bytes(path).decode("ascii").split("\n") if line]


# ----------------------------------------------------------------------------- backend


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """How a worker creates the launcher's backend, and what it must turn out to be.

    Attributes:
        name: registry name for ``embedding_model.backends.get_backend``.
        options: its keyword options (a remote ``model`` is copied locally first).
        module: module of the backend's class, imported first so backends registered
            at import time (plugins, tests) exist on the worker too.
        identity, dim: what the launcher's backend reported; a worker whose backend
            differs (another model file) stops instead of mixing embeddings.
    """

    name: str
    options: dict
    module: str
    identity: str
    dim: int

    @classmethod
    def of(cls, backend, name: str, options: dict) -> "BackendSpec":
        return cls(name, dict(options), type(backend).__module__, backend.identity, int(backend.dim))

    def load(self):
        from embedding_model.backends import get_backend

        importlib.import_module(self.module)
        options = dict(self.options)
        if isinstance(options.get("model"), str):
            options["model"] = localize(options["model"])
        backend = get_backend(self.name, **options)
        if backend.identity != self.identity or int(backend.dim) != self.dim:
            raise RuntimeError(
                f"worker's {self.name!r} backend is {backend.identity} ({backend.dim}-d), the launcher's "
                f"is {self.identity} ({self.dim}-d): ship the same model to the workers")
        return backend


# ----------------------------------------------------------------------------- shared with beam_transforms


def _class_of(clip: ChosenClip) -> str:
    return clip.word if clip.sample_type == TARGET else "nontarget"


# ----------------------------------------------------------------------------- launcher


@dataclasses.dataclass(frozen=True)
class BeamOptions:
    """How the Beam build runs (never what it builds).

    Attributes:
        runner: Beam runner name (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...).
        pipeline_args: further Beam pipeline options, passed through unchanged.
        batch_size: clips per embedding call.
        shards: shards per output file (1: plain samples.pb / eval.pb).
        strict: a bad clip fails the build (after the pipeline, before any output appears).
        workers: DirectRunner only, when ``pipeline_args`` do not choose: worker processes.
    """

    runner: str = "DirectRunner"
    pipeline_args: tuple[str, ...] = ()
    batch_size: int = 256
    shards: int = 1
    strict: bool = False
    workers: int = 2


def pipeline_flags(options: BeamOptions) -> list[str]:
    """Beam flags: the runner, the user's options, and the DirectRunner's worker processes."""
    flags = ["--runner", options.runner, *options.pipeline_args]
    given = " ".join(options.pipeline_args)
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


def build_with_beam(source, experiment: Experiment, backend, backend_spec: BackendSpec, out: str,
                    options: BeamOptions = BeamOptions(), *, records: int | None = None,
                    timings: dict[str, float] | None = None, transforms_hook=None) -> dict:
    """Run the build as a Beam pipeline and write samples.pb, eval.pb and manifest.json.

    Args:
        source: the clip source the experiment was planned on (local or remote directory, archive).
        experiment: from :func:`dataset_builder.build.plan_experiment`.
        backend: the launcher's backend (name, dim and identity go into the files).
        backend_spec: how workers recreate it (:meth:`BackendSpec.of`).
        out: output directory, local or on a Beam filesystem.
        options: runner, pass-through options, batch size, shards, strictness.
        records: rows in the splits, for the manifest.
        timings: earlier stages' timings (seconds) for the manifest.
        transforms_hook: for tests: ``f(pcoll) -> pcoll`` applied to the embedded
            clips before writing (e.g. to replay a bundle's output twice).

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        BuildError: the pipeline failed (one line), lost clips, a strict run met a
            bad clip, or skips left a keyword without clips in a file.
    """
    beam = import_beam()
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from dataset_builder import beam_transforms
    from dataset_builder.build import _metadata

    start = time.perf_counter()
    if options.shards < 1:
        raise BuildError(f"--shards must be >= 1, got {options.shards}")
    clips = list(experiment.samples + experiment.eval)
    layout = OutputLayout(len(experiment.samples), len(experiment.eval), options.shards)
    if not is_remote(out):
        out = os.path.abspath(out)
    if not FileSystems.exists(out):
        FileSystems.mkdirs(out)
    staging = _join(out, f".beam-staging-{uuid.uuid4().hex[:12]}")
    FileSystems.mkdirs(staging)
    try:
        plan_path = _join(staging, "plan.jsonl")
        write_plan(plan_path, clips)
        metadata = {role: _metadata(experiment, source, backend, role) for role, _ in ROLES}
        t = time.perf_counter()
        flags = pipeline_flags(options)
        try:
            pipeline = beam.Pipeline(options=PipelineOptions(flags))
            embedded, skipped = clips_to_embeddings(pipeline, plan_path, source, backend_spec,
                                                    options.batch_size)
            if transforms_hook is not None:
                embedded = transforms_hook(embedded)
            _ = (embedded, skipped) | "Write" >> beam_transforms.WriteDataset(staging, layout, metadata)
            result = pipeline.run()
            state = result.wait_until_finish()
        except Exception as exc:  # noqa: BLE001 - runners raise anything; report one line
            raise BuildError(f"the Beam pipeline failed on {options.runner}: {_pipeline_error(exc)}") from exc
        if state is not None and str(state).rsplit(".", 1)[-1] != "DONE":
            raise BuildError(f"the Beam pipeline ended in state {state} on {options.runner}; nothing was written")
        pipeline_seconds = time.perf_counter() - t
        counters = _metrics(result)

        t = time.perf_counter()
        summaries = _collect_summaries(staging)
        manifest = _finalize(out, staging, summaries, clips, layout, experiment, source, backend, options,
                             counters, records)
        finalize_seconds = time.perf_counter() - t
    finally:
        _remove_tree(staging)

    total = time.perf_counter() - start
    manifest["timings"] = {
        **{k: round(v, 3) for k, v in (timings or {}).items()},
        "pipeline_seconds": round(pipeline_seconds, 3),
        "finalize_seconds": round(finalize_seconds, 3),
        "build_seconds": round(total, 3),
        "clips_per_second": round(len(clips) / pipeline_seconds, 1) if pipeline_seconds else None,
    }
    _write_manifest(out, manifest)
    return manifest


def clips_to_embeddings(pipeline, plan_path: str, source, backend_spec: "BackendSpec", batch_size: int):
    """The per-clip part of the pipeline: plan -> audio -> decoded -> embedded.

    Returns:
        ``(embedded, skipped)`` PCollections: ``(index, clip, [D] float32)`` and
        ``(index, clip, reason, detail)``.
    """
    from dataset_builder import beam_transforms

    audio = pipeline | "Clips" >> beam_transforms.ReadPlan(plan_path, source)
    decoded = audio | "Decode clips" >> beam_transforms.DecodeClips()
    embedded = decoded.decoded | "Embed clips" >> beam_transforms.EmbedClips(backend_spec, batch_size)
    return embedded, decoded.skipped


def _collect_summaries(staging: str) -> dict[tuple[str, int], dict]:
    """One summary per ``(role, shard)``; extra attempts (retries) are deleted."""
    from apache_beam.io.filesystems import FileSystems

    found = sorted(m.path for m in FileSystems.match([_join(staging, "*.json")])[0].metadata_list)
    chosen: dict[tuple[str, int], dict] = {}
    for path in found:
        summary = json.loads(_read_bytes(path).decode("utf-8"))
        key = (summary["role"], int(summary["shard"]))
        if key not in chosen:
            chosen[key] = summary
    return chosen


def _finalize(out, staging, summaries, clips, layout, experiment, source, backend, options, counters,
              records) -> dict:
    """Check the staged shards, move them into place, and build the manifest."""
    from apache_beam.io.filesystems import FileSystems

    from dataset_builder.build import MANIFEST_FORMAT, _class_counts, _split_counts

    planned = layout.planned()
    lost = {k: n for k, n in planned.items()
            if k not in summaries or summaries[k]["clips"] + len(summaries[k]["skipped"]) != n}
    if lost:
        (role, shard), n = sorted(lost.items())[0]
        got = summaries.get((role, shard))
        have = 0 if got is None else got["clips"] + len(got["skipped"])
        raise BuildError(f"the pipeline accounted for {have} of the {n} clips planned for {role} shard "
                         f"{shard} ({len(lost)} shard(s) short); nothing was written")

    skipped = sorted((s for summary in summaries.values() for s in summary["skipped"]), key=lambda s: s[0])
    if options.strict and skipped:
        index, link, reason, detail = skipped[0]
        raise BuildError(f"clip {link!r} is {reason} ({detail}); "
                         "drop --strict to skip such clips and count them in manifest.json")
    for role, name in ROLES:
        present = {w for (r, _), s in summaries.items() if r == role for w in s["targets_present"]}
        for keyword in experiment.keywords:
            if keyword not in present:
                raise BuildError(
                    f"every clip of keyword {keyword!r} meant for {name} was skipped "
                    f"(see the reasons with --strict); check the corpus audio")

    files: dict[str, dict] = {}
    moves: list[tuple[str, str]] = []
    for role, name in ROLES:
        written = [summaries[k] for k in sorted(summaries) if k[0] == role and summaries[k]["file"]]
        stem, suffix = os.path.splitext(name)
        for position, summary in enumerate(written):
            if options.shards == 1:
                final = name
            else:
                from protos.shards import shard_name

                final = shard_name(stem, position, len(written), suffix)
            moves.append((_join(staging, summary["file"]), _join(out, final)))
            files[final] = {"clips": summary["clips"], "bytes": summary["bytes"], "sha256": summary["sha256"]}
    FileSystems.rename([m[0] for m in moves], [m[1] for m in moves])
    _remove_stale(out, [m[1] for m in moves])

    skipped_set = {s[0] for s in skipped}
    kept_clips = {role: [c for i, c in enumerate(clips) if layout.role_of(i) == role and i not in skipped_set]
                  for role, _ in ROLES}
    by_reason = collections.Counter(s[2] for s in skipped)
    counted = {name[len("skipped_"):]: n for name, n in counters.items() if name.startswith("skipped_") and n}
    manifest = {
        "format": MANIFEST_FORMAT,
        "language": source.lang,
        "source": source.describe(),
        "parameters": dict(dataclasses.asdict(experiment.params)),
        "targets": list(experiment.keywords),
        "nontarget_words": {"known": list(experiment.known_words), "unknown": list(experiment.unknown_words)},
        "counts": {role: _class_counts(kept_clips[role]) for role, _ in ROLES},
        "counts_by_split": {role: _split_counts(kept_clips[role]) for role, _ in ROLES},
        "planned_counts": experiment.counts(),
        "corpus": {"records": records, "duplicate_links": experiment.duplicate_links},
        "skipped": {
            "total": len(skipped),
            # Beam's counters where the runner reports them; the staged list otherwise.
            "by_reason": dict(sorted((counted or by_reason).items())),
            "clips": [{"id": link, "reason": reason, "detail": detail} for _, link, reason, detail in skipped],
        },
        "backend": {"name": backend.name, "dim": int(backend.dim), "identity": backend.identity},
        "files": files,
        "run": {"runner": options.runner, "pipeline_options": redact(pipeline_flags(options)[2:]),
                "batch_size": options.batch_size, "shards": options.shards, "strict": options.strict},
        "beam": {"counters": counters},
    }
    manifest["parameters"]["keywords"] = list(experiment.keywords)
    if counted and sum(counted.values()) != len(skipped):
        # Counters count attempts on runners without committed metrics; the list is exact.
        manifest["skipped"]["by_reason"] = dict(sorted(by_reason.items()))
    return manifest


def _remove_stale(out: str, keep: Sequence[str]) -> None:
    """Remove older versions of samples.pb / eval.pb (plain or sharded) not in ``keep``."""
    from apache_beam.io.filesystems import FileSystems

    from protos.shards import parse_shard_name

    keep_names = {k.rstrip("/").rsplit("/", 1)[-1] for k in keep}
    stale = []
    for _, name in ROLES:
        stem, suffix = os.path.splitext(name)
        patterns = [_join(out, name), _join(out, f"{stem}-*-of-*{suffix}")]
        for match in FileSystems.match(patterns):
            for m in match.metadata_list:
                base = m.path.rstrip("/").rsplit("/", 1)[-1]
                parsed = parse_shard_name(base)
                ours = base == name or (parsed is not None and parsed[0] == stem and parsed[3] == suffix)
                if ours and base not in keep_names:
                    stale.append(m.path)
    if stale:
        FileSystems.delete(stale)


def _write_manifest(out: str, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    if is_remote(out):
        _write_bytes(_join(out, "manifest.json"), text.encode("utf-8"))
    else:
        from protos.atomic import atomic_write_text

        atomic_write_text(os.path.join(out, "manifest.json"), text)


def _remove_tree(path: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    try:
        if FileSystems.exists(path):
            FileSystems.delete([path])
    except Exception:  # noqa: BLE001 - cleanup must not hide the real outcome
        pass


# ----------------------------------------------------------------------------- CLI glue


def add_beam_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--runner`` and ``--shards`` to build-dataset's parser (once)."""
    if "--runner" in parser._option_string_actions:
        return
    group = parser.add_argument_group(
        "Apache Beam (the [beam] extra; see docs/SCALE.md)",
        "With --runner, the build runs as a Beam pipeline; options build-dataset does not know "
        "(--project, --region, --temp_location, --direct_num_workers, ...) are passed to Beam.")
    group.add_argument("--runner", metavar="NAME",
                       help="Beam runner: DirectRunner (local), DataflowRunner, FlinkRunner, SparkRunner, ...")
    group.add_argument("--shards", type=int, default=1, metavar="N",
                       help="with --runner: write samples.pb and eval.pb as N shards each "
                            "(samples-00000-of-0000N.pb ...), read back as one dataset")


def run_beam_build(args: argparse.Namespace, pipeline_args: Sequence[str] = ()) -> int:
    """``build-dataset --runner ...``: plan on the launcher, build with Beam.

    Args:
        args: build-dataset's parsed arguments (with ``runner`` and ``shards``).
        pipeline_args: the command-line options build-dataset did not recognise,
            passed to Beam unchanged.

    Returns:
        The exit status (0 ok; 3 Beam or the backend's extra is missing).

    Raises:
        BuildError, corpus.layout.CorpusError: bad input or data (one line).
    """
    from embedding_model.backends import BackendUnavailable

    from dataset_builder.build import plan_experiment
    from dataset_builder.cli import (_summary, backend_options, check_run_args, load_backend,
                                     params_from_args, print_plan)

    try:
        import_beam()
    except BeamUnavailable as e:
        print(f"build-dataset: {e}", file=sys.stderr)
        return EXIT_BACKEND
    check_run_args(args)
    if args.shards < 1:
        raise BuildError(f"--shards must be >= 1, got {args.shards}")
    params = params_from_args(args)
    _set_filesystem_options(pipeline_args)
    source = source_for_beam(args)
    options = backend_options(args)
    t = time.perf_counter()
    experiment, n_records = plan_experiment(source, params)
    plan_seconds = time.perf_counter() - t
    if args.dry_run:
        print_plan(experiment)
        return 0
    t = time.perf_counter()
    launcher_options = dict(options)
    if isinstance(launcher_options.get("model"), str):
        launcher_options["model"] = localize(launcher_options["model"])
    try:
        backend = load_backend(args.backend, launcher_options)
    except BackendUnavailable as e:
        print(f"build-dataset: {e}", file=sys.stderr)
        return EXIT_BACKEND
    load_seconds = time.perf_counter() - t
    spec = BackendSpec.of(backend, args.backend, options)
    beam_options = BeamOptions(runner=args.runner, pipeline_args=tuple(pipeline_args),
                               batch_size=args.batch_size, shards=args.shards, strict=args.strict,
                               workers=args.workers)
    if not args.quiet:
        print(f"build-dataset: {len(experiment.samples) + len(experiment.eval)} clips on {args.runner}",
              file=sys.stderr)
    manifest = build_with_beam(source, experiment, backend, spec, args.out, beam_options,
                               records=n_records,
                               timings={"plan_seconds": plan_seconds, "backend_load_seconds": load_seconds})
    if not args.quiet:
        print(_summary(manifest))
        print(f"wrote {args.out}: {', '.join(manifest['files'])}, manifest.json")
    return 0


def _set_filesystem_options(pipeline_args: Sequence[str]) -> None:
    """Give the launcher's FileSystems the user's credentials/project options (gs://, s3://)."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    FileSystems.set_options(PipelineOptions(list(pipeline_args)))


def main(argv: list[str] | None = None) -> int:
    """``python -m dataset_builder.beam_pipeline``: build-dataset with ``--runner`` (Beam options pass through).

    The same parser and exit statuses as ``build-dataset``; useful where the
    installed ``build-dataset`` predates ``--runner``.
    """
    from corpus.layout import CorpusError

    from dataset_builder import cli

    parser = cli.build_parser()
    add_beam_arguments(parser)
    parser.prog = "python -m dataset_builder.beam_pipeline"
    args, beam_args = parser.parse_known_args(argv)
    if not args.runner:
        parser.error("--runner is required here (e.g. --runner DirectRunner); "
                     "without it, use build-dataset")
    try:
        return run_beam_build(args, beam_args)
    except (BuildError, CorpusError) as e:
        print(f"build-dataset: {e}", file=sys.stderr)
        return cli.EXIT_DATA
    except KeyboardInterrupt:
        print("build-dataset: interrupted; no output was written half-way", file=sys.stderr)
        return cli.EXIT_INTERRUPTED


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: workers unpickle the
    # pipeline's objects by their module name, dataset_builder.beam_pipeline.
    from dataset_builder.beam_pipeline import main as _main

    sys.exit(_main())
