"""Decoding workers that hand clips to the embedder through shared memory.

The local build decodes in worker processes and embeds in the main process. The
first version sent every decoded chunk back through the pool's result pipe: each
clip (64 kB of float32) was pickled by a worker, copied through a pipe, unpickled
by the main process's result thread and copied once more into the embedding
batch. Here a worker writes its clips straight into a batch-sized block of shared
memory that the main process then embeds in place, and only indices and failures
travel through the pipe.

How a run goes::

    slots: K shared blocks, each [batch_size, 16000] float32 (K = 3 by default),
           memory-mapped files in /dev/shm (or the temp dir when /dev/shm is small)
    batch b (batch_size consecutive clips) -> slot b % K, as tasks of chunk_size clips
    main:  wait for batch b's tasks; embed the slot in place; free it; queue batch b + K

While the main process embeds batch b the workers decode batches b+1 .. b+K-1,
so decoding and embedding overlap, and memory is K slots whatever the corpus size.
Batches are embedded in order, so the result (and the output files) do not
depend on timing. A worker packs its chunk's decoded clips at the start of the
chunk's rows; a batch with failed clips is compacted (one copy) before embedding.

Only :mod:`dataset_builder.stages` and numpy are imported by the workers.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import multiprocessing
import os
import tempfile
from typing import Callable, Iterable, Iterator

import numpy as np

from dataset_builder.clitools import ignore_sigint, sigint_held
from dataset_builder.stages import DecodedBatch, decode_batch

#: Shared batch blocks: one being embedded, the others being filled.
DEFAULT_SLOTS = 3


@dataclasses.dataclass(frozen=True)
class _ChunkDone:
    """What a worker sends back for one chunk: no audio, only where it put it."""

    slot: int
    offset: int
    indices: np.ndarray
    failures: list
    notes: list
    seconds: float


# Worker side: shared blocks mapped once per process, by path.
_ATTACHED: dict[str, np.ndarray] = {}


def _attach(path: str, shape: tuple[int, int]) -> np.ndarray:
    rows = _ATTACHED.get(path)
    if rows is None:
        rows = _ATTACHED[path] = np.memmap(path, dtype=np.float32, mode="r+", shape=shape)
    return rows


def _decode_into(path: str, shape: tuple[int, int], slot: int, offset: int, jobs) -> _ChunkDone:
    """Decode ``jobs`` (stages.decode_batch) and put the clips in rows ``offset...`` of block ``path``."""
    batch = decode_batch(jobs)
    rows = _attach(path, shape)
    rows[offset : offset + len(batch.indices)] = batch.clips
    return _ChunkDone(slot, offset, batch.indices, batch.failures, batch.notes, batch.seconds)


@dataclasses.dataclass
class _Batch:
    """One batch on its way: its slot, its chunks (offset, size) and their results."""

    slot: int
    chunks: list[tuple[int, int]]
    pending: list
    done: list = dataclasses.field(default_factory=list)


def shared_dir(needed: int) -> str:
    """Where the blocks go: ``/dev/shm`` (memory) when it has room for them, else the temp dir.

    A container's ``/dev/shm`` is often small (Docker: 64 MB), and a write past a
    full tmpfs kills the writer with SIGBUS; a file in the temp dir is shared the
    same way through the page cache.
    """
    shm = "/dev/shm"
    try:
        stat = os.statvfs(shm)
        if os.access(shm, os.W_OK) and stat.f_bavail * stat.f_frsize >= 2 * needed:
            return shm
    except OSError:
        pass
    return tempfile.gettempdir()


class _Slots:
    """K memory-mapped blocks of ``[rows, 16000]`` float32 shared with the workers, removed on close."""

    def __init__(self, count: int, rows: int, samples: int):
        self.shape = (rows, samples)
        self.paths: list[str] = []
        self.arrays: list[np.ndarray] = []
        folder = shared_dir(count * rows * samples * 4)
        try:
            for _ in range(count):
                fd, path = tempfile.mkstemp(prefix="dataperf-decode-", suffix=".f32", dir=folder)
                self.paths.append(path)
                os.ftruncate(fd, rows * samples * 4)
                os.close(fd)
                self.arrays.append(np.memmap(path, dtype=np.float32, mode="r+", shape=self.shape))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.arrays.clear()
        for path in self.paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.paths.clear()


def _batches(jobs: Iterable, size: int) -> Iterator[list]:
    iterator = iter(jobs)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def decode_in_batches(jobs: Iterable[tuple[int, object]], workers: int, batch_size: int, chunk_size: int,
                      on_batch: Callable[[np.ndarray, np.ndarray, list, list, float], None],
                      slots: int = DEFAULT_SLOTS) -> None:
    """Decode ``(index, source)`` jobs and call ``on_batch`` once per batch, in order.

    Args:
        jobs: ``(index, path | bytes | None)`` in output order (``source.iter_audio``).
        workers: decoding processes; 0 decodes in this process.
        batch_size: clips per batch handed to ``on_batch``.
        chunk_size: clips per decoding task.
        on_batch: ``f(indices, clips, failures, notes, decode_seconds)`` with ``clips``
            [len(indices), 16000] float32 (a view of shared memory, valid only during
            the call), ``failures`` ``(index, reason, detail)`` of the batch's clips
            that did not decode and ``notes`` ``(index, note, detail)`` of clips used
            after a repair (:func:`dataset_builder.stages.check_clip`). Called in job order.
        slots: shared batch blocks (at least 2: one embedded while the next fills).
    """
    from corpus.audio import CLIP_SAMPLES

    if workers <= 0:
        for batch in _batches(jobs, batch_size):
            decoded: DecodedBatch = decode_batch(batch)
            on_batch(decoded.indices, decoded.clips, decoded.failures, decoded.notes, decoded.seconds)
        return

    batches = _batches(jobs, batch_size)
    first = next(batches, None)
    if first is None:
        return
    batches = itertools.chain([first], batches)
    slots = max(2, int(slots))
    chunk_size = max(1, min(chunk_size, batch_size))
    blocks = _Slots(slots, batch_size, CLIP_SAMPLES)
    free: collections.deque[int] = collections.deque(range(slots))
    queued: collections.deque[_Batch] = collections.deque()
    # "spawn": the main process may already hold TensorFlow's threads, which a
    # fork would copy in an undefined state.
    context = multiprocessing.get_context("spawn")
    try:
        # Workers ignore Ctrl-C (the main process handles it and tears them down), and
        # are started while it is held so none is spawned with the default handler.
        with sigint_held():
            pool = context.Pool(workers, initializer=ignore_sigint)
        with pool:
            def submit() -> bool:
                batch = next(batches, None)
                if batch is None:
                    return False
                slot = free.popleft()
                chunks = [(offset, min(chunk_size, len(batch) - offset))
                          for offset in range(0, len(batch), chunk_size)]
                pending = [pool.apply_async(_decode_into, (blocks.paths[slot], blocks.shape, slot, offset,
                                                           batch[offset : offset + size]))
                           for offset, size in chunks]
                queued.append(_Batch(slot, chunks, pending))
                return True

            while free and submit():
                pass
            while queued:
                current = queued.popleft()
                done = [task.get() for task in current.pending]
                rows = blocks.arrays[current.slot]
                indices = np.concatenate([d.indices for d in done]) if done else np.empty(0, np.int64)
                failures = [f for d in done for f in d.failures]
                notes = [note for d in done for note in d.notes]
                if failures:
                    # Each chunk packed its clips at its start: gather them (one copy).
                    keep = np.concatenate([np.arange(offset, offset + len(d.indices))
                                           for (offset, _), d in zip(current.chunks, done)]).astype(np.int64)
                    clips = rows[keep]
                else:
                    clips = rows[: len(indices)]
                on_batch(indices, clips, failures, notes, sum(d.seconds for d in done))
                free.append(current.slot)
                submit()
    finally:
        blocks.close()
