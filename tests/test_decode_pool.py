"""Decoding workers handing clips over through shared memory: same clips, in order, nothing leaked."""

from __future__ import annotations

import os

import numpy as np
import pytest

from corpus.audio import write_opus
from dataset_builder.decode_pool import decode_in_batches
from dataset_builder.stages import decode_batch
from tests.builder_helpers import tone


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> list[tuple[int, object]]:
    """23 Opus tones with a corrupt file, a missing one and an empty byte string among them."""
    root = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(3)
    out: list[tuple[int, object]] = []
    for i in range(23):
        path = root / f"c{i}.opus"
        write_opus(path, tone(300 + 40 * i, 0.7, rng))
        out.append((i, str(path)))
    (root / "bad.opus").write_bytes(b"OggS" + bytes(range(256)) * 4)
    out[4] = (4, str(root / "bad.opus"))
    out[11] = (11, str(root / "missing.opus"))
    out[17] = (17, b"")
    return out


def _collect(jobs, workers: int, batch_size: int, chunk_size: int):
    seen = []

    def on_batch(indices, clips, failures, notes, seconds):
        assert clips.shape == (len(indices), 16000) and clips.dtype == np.float32
        seen.append((indices.copy(), np.array(clips), sorted(failures)))

    decode_in_batches(jobs, workers, batch_size, chunk_size, on_batch)
    return seen


@pytest.fixture
def created_blocks(monkeypatch):
    """Names of the shared-memory blocks decode_pool creates during the test.

    Other processes on the machine use /dev/shm at the same time, so the test
    follows only its own blocks rather than comparing directory listings.
    """
    from multiprocessing import shared_memory

    from dataset_builder import decode_pool

    names: list[str] = []

    class Recording(shared_memory.SharedMemory):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if kwargs.get("create"):
                names.append(self.name)

    monkeypatch.setattr(decode_pool.shared_memory, "SharedMemory", Recording)
    return names


def _still_there(names: list[str]) -> list[str]:
    return [name for name in names if os.path.exists(os.path.join("/dev/shm", name.lstrip("/")))]


@pytest.mark.parametrize("batch_size,chunk_size", [(8, 3), (5, 5), (64, 4)])
def test_workers_hand_over_the_clips_decode_batch_makes_in_job_order(jobs, batch_size, chunk_size, created_blocks):
    seen = _collect(jobs, 2, batch_size, chunk_size)
    reference = [decode_batch(jobs[i : i + batch_size]) for i in range(0, len(jobs), batch_size)]
    assert len(seen) == len(reference)
    for (indices, clips, failures), ref in zip(seen, reference):
        assert indices.tolist() == ref.indices.tolist()
        assert clips.tobytes() == ref.clips.tobytes()
        assert [(i, r) for i, r, _ in failures] == [(i, r) for i, r, _ in sorted(ref.failures)]
    assert {i for i, _, _ in (f for s in seen for f in s[2])} == {4, 11, 17}
    assert created_blocks and _still_there(created_blocks) == [], "shared memory blocks left behind"


def test_no_workers_decodes_in_process_with_the_same_result(jobs):
    assert [(i.tolist(), c.tobytes()) for i, c, _ in _collect(jobs, 0, 8, 3)] == \
           [(i.tolist(), c.tobytes()) for i, c, _ in _collect(jobs, 2, 8, 3)]


def test_an_error_in_the_consumer_stops_the_workers_and_frees_the_memory(jobs, created_blocks):

    def on_batch(indices, clips, failures, notes, seconds):
        raise RuntimeError("strict stop")

    with pytest.raises(RuntimeError, match="strict stop"):
        decode_in_batches(jobs, 2, 4, 2, on_batch)
    assert created_blocks and _still_there(created_blocks) == []


def test_an_empty_job_list_calls_nothing():
    calls = []
    decode_in_batches(iter(()), 2, 8, 4, lambda *a: calls.append(a))
    assert calls == []
