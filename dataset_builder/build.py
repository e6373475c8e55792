"""The local runner: experiment -> decoded clips -> embeddings -> samples.pb / eval.pb.

It chains the pure stages of :mod:`dataset_builder.stages`. Decoding (the costly
part for Opus) runs in worker processes while the main process embeds large
batches. The decode tasks in flight are capped (two embedding batches' worth,
at least three per worker), so memory stays bounded whatever the corpus size (the embeddings of the chosen clips, which the
output files hold anyway, are the only thing that grows). Results are consumed in
submission order, so batches, and therefore the output bytes, are the same on
every run.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from dataset_builder.errors import BuildError
from dataset_builder.protocol import TARGET, ChosenClip, Experiment, ExperimentParams, design_experiment
from dataset_builder.stages import DecodedBatch, assemble, decode_batch, embed_batch

MANIFEST_FORMAT = "dataperf-speech/build-manifest/1"


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How the build runs (not what it builds: these never change the output).

    Attributes:
        workers: decoding processes; 0 decodes in the main process.
        batch_size: clips per embedding call.
        chunk_size: clips per decoding task sent to a worker.
        strict: stop at the first clip that cannot be used instead of skipping it.
        progress: show a progress bar.
    """

    workers: int = 2
    batch_size: int = 256
    chunk_size: int = 32
    strict: bool = False
    progress: bool = False


@dataclasses.dataclass
class EmbedResult:
    """Embeddings of an experiment's clips.

    Attributes:
        embeddings: np.ndarray [shape=(N, D)] float32; rows of failed clips are zero.
        ok: np.ndarray [shape=(N,)] bool, True where the clip was embedded.
        failures: ``(index, reason, detail)`` per clip that could not be used.
        decode_seconds: decoding time summed over workers.
        embed_seconds: time in the backend.
        wall_seconds: elapsed time of the whole stage.
    """

    embeddings: np.ndarray
    ok: np.ndarray
    failures: list[tuple[int, str, str]]
    decode_seconds: float
    embed_seconds: float
    wall_seconds: float


def _chunked(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def embed_clips(source, clips: Sequence[ChosenClip], backend, options: RunOptions = RunOptions()) -> EmbedResult:
    """Decode and embed ``clips`` from ``source``.

    Args:
        source: a :class:`dataset_builder.sources.ClipSource`.
        clips: the clips, in output order.
        backend: an ``embedding_model.backends.Backend``.
        options: parallelism, batch sizes, strictness.

    Returns:
        The embeddings, placed by clip index.

    Raises:
        BuildError: with ``options.strict``, the first clip that cannot be used.
    """
    from corpus.audio import CLIP_SAMPLES

    start = time.perf_counter()
    n = len(clips)
    embeddings = np.zeros((n, backend.dim), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    failures: list[tuple[int, str, str]] = []
    buffer = np.empty((options.batch_size, CLIP_SAMPLES), dtype=np.float32)
    buffer_index = np.empty(options.batch_size, dtype=np.int64)
    fill = 0
    decode_seconds = 0.0
    embed_seconds = 0.0

    from tqdm import tqdm

    bar = tqdm(total=n, desc="clips", unit="clip", disable=not options.progress, smoothing=0.05)

    def flush() -> None:
        nonlocal fill, embed_seconds
        if fill:
            t = time.perf_counter()
            embeddings[buffer_index[:fill]] = embed_batch(backend, buffer[:fill])
            embed_seconds += time.perf_counter() - t
            ok[buffer_index[:fill]] = True
            bar.update(fill)
            fill = 0

    def consume(batch: DecodedBatch) -> None:
        nonlocal fill, decode_seconds
        decode_seconds += batch.seconds
        if batch.failures:
            if options.strict:
                index, reason, detail = batch.failures[0]
                raise BuildError(
                    f"clip {clips[index].link!r} is {reason} ({detail}); "
                    "drop --strict to skip such clips and count them in manifest.json"
                )
            failures.extend(batch.failures)
            bar.update(len(batch.failures))
        done = 0
        while done < len(batch.indices):
            take = min(options.batch_size - fill, len(batch.indices) - done)
            buffer[fill : fill + take] = batch.clips[done : done + take]
            buffer_index[fill : fill + take] = batch.indices[done : done + take]
            fill += take
            done += take
            if fill == options.batch_size:
                flush()

    jobs = _chunked(source.iter_audio(clips), options.chunk_size)
    try:
        if options.workers <= 0:
            for chunk in jobs:
                consume(decode_batch(chunk))
        else:
            # "spawn": the main process may already hold TensorFlow's threads,
            # which a fork would copy in an undefined state.
            context = multiprocessing.get_context("spawn")
            with context.Pool(options.workers) as pool:
                in_flight: collections.deque = collections.deque()
                # Enough queued work to keep every worker busy while the main
                # process embeds a batch, and no more: memory stays bounded.
                limit = max(3 * options.workers, -(-2 * options.batch_size // options.chunk_size))
                for chunk in jobs:
                    in_flight.append(pool.apply_async(decode_batch, (chunk,)))
                    while in_flight and (len(in_flight) >= limit or in_flight[0].ready()):
                        consume(in_flight.popleft().get())
                while in_flight:
                    consume(in_flight.popleft().get())
        flush()
    finally:
        bar.close()
    failures.sort()
    return EmbedResult(embeddings, ok, failures, decode_seconds, embed_seconds,
                       time.perf_counter() - start)


def plan_experiment(source, params: ExperimentParams) -> tuple[Experiment, int]:
    """Read the source's splits and run the protocol.

    Returns:
        ``(experiment, number of records in the splits)``.
    """
    records = source.records()
    return design_experiment(records, params), len(records)


def _metadata(experiment: Experiment, source, backend, role: str):
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
        sample_rate=16000,
        role=role,
        params=dict(sorted(params.items())),
    )


def _split_counts(clips: Iterable[ChosenClip]) -> dict[str, int]:
    return dict(sorted(collections.Counter(c.split for c in clips).items()))


def _class_counts(clips: Iterable[ChosenClip]) -> dict[str, int]:
    counter = collections.Counter(c.word if c.sample_type == TARGET else "nontarget" for c in clips)
    return dict(sorted(counter.items()))


def build_dataset(
    source,
    experiment: Experiment,
    backend,
    out: str | Path,
    options: RunOptions = RunOptions(),
    *,
    records: int | None = None,
    timings: dict[str, float] | None = None,
) -> dict:
    """Embed an experiment's clips and write samples.pb, eval.pb and manifest.json.

    Args:
        source: the :class:`dataset_builder.sources.ClipSource` the experiment was planned on.
        experiment: from :func:`plan_experiment`.
        backend: an ``embedding_model.backends.Backend``.
        out: output directory (created).
        options: how to run.
        records: number of rows in the splits, for the manifest.
        timings: earlier stages' timings (seconds) to record in the manifest.

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        BuildError: a strict run met a bad clip, or skipped clips left a target
            keyword without clips in one of the files.
    """
    from protos import write_samples
    from protos.atomic import atomic_write_text

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clips = experiment.samples + experiment.eval
    result = embed_clips(source, clips, backend, options)

    n_samples = len(experiment.samples)
    kept_samples = [i for i in range(n_samples) if result.ok[i]]
    kept_eval = [i for i in range(n_samples, len(clips)) if result.ok[i]]
    for role, kept in (("samples.pb", kept_samples), ("eval.pb", kept_eval)):
        present = {clips[i].word for i in kept if clips[i].sample_type == TARGET}
        for keyword in experiment.keywords:
            if keyword not in present:
                raise BuildError(
                    f"every clip of keyword {keyword!r} meant for {role} was skipped "
                    f"(see the reasons with --strict); check the corpus audio"
                )

    t = time.perf_counter()
    files = {}
    for role, name, kept in (("samples", "samples.pb", kept_samples), ("eval", "eval.pb", kept_eval)):
        sample_set = assemble([clips[i] for i in kept], result.embeddings[kept],
                              _metadata(experiment, source, backend, role))
        write_samples(out / name, sample_set)
        data = (out / name).read_bytes()
        files[name] = {"clips": len(kept), "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()}
    write_seconds = time.perf_counter() - t

    by_reason = collections.Counter(reason for _, reason, _ in result.failures)
    kept_samples_clips = [clips[i] for i in kept_samples]
    kept_eval_clips = [clips[i] for i in kept_eval]
    total_seconds = time.perf_counter() - start
    manifest = {
        "format": MANIFEST_FORMAT,
        "language": source.lang,
        "source": source.describe(),
        "parameters": {**dataclasses.asdict(experiment.params), "keywords": list(experiment.keywords)},
        "targets": list(experiment.keywords),
        "nontarget_words": {"known": list(experiment.known_words),
                            "unknown": list(experiment.unknown_words)},
        "counts": {"samples": _class_counts(kept_samples_clips), "eval": _class_counts(kept_eval_clips)},
        "counts_by_split": {"samples": _split_counts(kept_samples_clips),
                            "eval": _split_counts(kept_eval_clips)},
        "planned_counts": experiment.counts(),
        "corpus": {"records": records, "duplicate_links": experiment.duplicate_links},
        "skipped": {
            "total": len(result.failures),
            "by_reason": dict(sorted(by_reason.items())),
            "clips": [{"id": clips[i].link, "reason": reason, "detail": detail}
                      for i, reason, detail in result.failures],
        },
        "backend": {"name": backend.name, "dim": int(backend.dim), "identity": backend.identity},
        "files": files,
        "run": {"workers": options.workers, "batch_size": options.batch_size,
                "chunk_size": options.chunk_size, "strict": options.strict},
        "timings": {
            **{k: round(v, 3) for k, v in (timings or {}).items()},
            "decode_worker_seconds": round(result.decode_seconds, 3),
            "embed_seconds": round(result.embed_seconds, 3),
            "decode_embed_wall_seconds": round(result.wall_seconds, 3),
            "write_seconds": round(write_seconds, 3),
            "build_seconds": round(total_seconds, 3),
            "clips_per_second": round(len(clips) / result.wall_seconds, 1) if result.wall_seconds else None,
        },
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest
