"""The local runner: experiment -> decoded clips -> embeddings -> staged samples.pb / eval.pb.

:func:`dataset_builder.launcher.launch` drives it (:class:`LocalRunner`); it
chains the pure stages of :mod:`dataset_builder.stages`. Decoding (the costly
part for Opus) runs in worker processes that write the decoded clips into
shared memory, one embedding batch at a time, while the main process embeds the
previous batch in place (:mod:`dataset_builder.decode_pool`). Three batches are
in flight at most, so memory stays bounded whatever the corpus size (the
embeddings of the chosen clips, which the output files hold anyway, are the only
thing that grows). Batches are embedded in clip order, so the output bytes are
the same on every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from dataset_builder.clitools import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS
from dataset_builder.errors import BuildError
from dataset_builder.launcher import (
    Job,
    Runner,
    RunResult,
    check_result,
    dataset_metadata,
    produce,
    strict_failure,
)
from dataset_builder.outputs import ROLES
from dataset_builder.protocol import ChosenClip, Experiment
from dataset_builder.decode_pool import decode_in_batches
from dataset_builder.stages import assemble, embed_batch


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

    workers: int = DEFAULT_WORKERS
    batch_size: int = DEFAULT_BATCH_SIZE
    chunk_size: int = 64
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
        notes: ``(index, note, detail)`` per clip used after a repair (``stages.RESCALED``).
    """

    embeddings: np.ndarray
    ok: np.ndarray
    failures: list[tuple[int, str, str]]
    decode_seconds: float
    embed_seconds: float
    wall_seconds: float
    notes: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)


def embed_clips(source, clips: Sequence[ChosenClip], backend, options: RunOptions = RunOptions()) -> EmbedResult:
    """Decode and embed ``clips`` from ``source``.

    Decoding workers write each batch of ``options.batch_size`` clips into shared
    memory (:mod:`dataset_builder.decode_pool`); this process embeds the batches in
    place, in order, while the workers decode the next ones.

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
    from tqdm import tqdm

    start = time.perf_counter()
    n = len(clips)
    embeddings = np.zeros((n, backend.dim), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    failures: list[tuple[int, str, str]] = []
    notes: list[tuple[int, str, str]] = []
    seconds = {"decode": 0.0, "embed": 0.0}
    bar = tqdm(total=n, desc="clips", unit="clip", disable=not options.progress, smoothing=0.05)

    def on_batch(indices: np.ndarray, batch: np.ndarray, batch_failures: list, batch_notes: list,
                 decode_seconds: float) -> None:
        seconds["decode"] += decode_seconds
        notes.extend(batch_notes)
        if batch_failures:
            if options.strict:
                index, reason, detail = min(batch_failures)  # the first in clip order
                raise strict_failure(clips[index].link, reason, detail)
            failures.extend(batch_failures)
        if len(indices):
            t = time.perf_counter()
            embeddings[indices] = embed_batch(backend, batch)
            seconds["embed"] += time.perf_counter() - t
            ok[indices] = True
        bar.update(len(indices) + len(batch_failures))

    try:
        decode_in_batches(source.iter_audio(clips), options.workers, options.batch_size, options.chunk_size,
                          on_batch)
    finally:
        bar.close()
    failures.sort()
    notes.sort()
    return EmbedResult(embeddings, ok, failures, seconds["decode"], seconds["embed"],
                       time.perf_counter() - start, notes)


class LocalRunner(Runner):
    """Runs the build on this machine: decoding processes + one embedding process.

    Args:
        options: parallelism, batch sizes, strictness, progress.
    """

    def __init__(self, options: RunOptions = RunOptions()):
        self.options = options
        self.strict = options.strict

    def check(self, args: argparse.Namespace) -> None:
        if args.shards != 1:
            raise BuildError("--shards needs --runner (e.g. --runner DirectRunner)")

    def run(self, job: Job) -> RunResult:
        """Embed the job's clips and write samples.pb and eval.pb into ``job.staging``."""
        from protos import write_samples

        clips = job.clips
        result = embed_clips(job.source, clips, job.backend, self.options)
        skipped = [(i, clips[i].link, reason, detail) for i, reason, detail in result.failures]
        # Checked before writing: a run that cannot be published writes nothing.
        check_result(job.experiment, skipped, self.strict)

        t = time.perf_counter()
        n_samples = len(job.experiment.samples)
        files, staged = {}, {}
        for (role, name), indices in zip(ROLES, (range(n_samples), range(n_samples, len(clips)))):
            kept = [i for i in indices if result.ok[i]]
            sample_set = assemble([clips[i] for i in kept], result.embeddings[kept],
                                  dataset_metadata(job.experiment, job.source, job.backend, role))
            path = os.path.join(job.staging, name)
            write_samples(path, sample_set)
            data = Path(path).read_bytes()
            files[name] = {"clips": len(kept), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            staged[name] = name
        write_seconds = time.perf_counter() - t
        o = self.options
        return RunResult(
            files=files,
            staged=staged,
            skipped=skipped,
            run={"workers": o.workers, "batch_size": o.batch_size, "chunk_size": o.chunk_size,
                 "strict": o.strict},
            timings={
                "decode_worker_seconds": result.decode_seconds,
                "embed_seconds": result.embed_seconds,
                "decode_embed_wall_seconds": result.wall_seconds,
                "write_seconds": write_seconds,
            },
            work_seconds=result.wall_seconds,
            notes=[(i, clips[i].link, note, detail) for i, note, detail in result.notes],
        )


def build_dataset(source, experiment: Experiment, backend, out: str | Path, options: RunOptions = RunOptions(),
                  *, records: int | None = None, timings: dict[str, float] | None = None) -> dict:
    """Embed an experiment's clips on this machine and publish samples.pb, eval.pb and manifest.json.

    Args:
        source: the :class:`dataset_builder.sources.ClipSource` the experiment was planned on.
        experiment: from :func:`dataset_builder.launcher.plan_experiment`.
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
    return produce(LocalRunner(options), source, experiment, backend, os.fspath(out),
                   records=records, timings=timings)
