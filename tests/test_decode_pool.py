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
def blocks(monkeypatch) -> list[str]:
    """The paths of the shared blocks the calls under test create.

    Other processes on the machine use /dev/shm at the same time, so the test
    follows only its own blocks rather than comparing directory listings.
    """
    from dataset_builder import decode_pool

    made: list[str] = []

    class Recording(decode_pool._Slots):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.extend(self.paths)

    monkeypatch.setattr(decode_pool, "_Slots", Recording)
    return made


@pytest.mark.parametrize("batch_size,chunk_size", [(8, 3), (5, 5), (64, 4)])
def test_workers_hand_over_the_clips_decode_batch_makes_in_job_order(jobs, batch_size, chunk_size, blocks):
    seen = _collect(jobs, 2, batch_size, chunk_size)
    reference = [decode_batch(jobs[i : i + batch_size]) for i in range(0, len(jobs), batch_size)]
    assert len(seen) == len(reference)
    for (indices, clips, failures), ref in zip(seen, reference):
        assert indices.tolist() == ref.indices.tolist()
        assert clips.tobytes() == ref.clips.tobytes()
        assert [(i, r) for i, r, _ in failures] == [(i, r) for i, r, _ in sorted(ref.failures)]
    assert {i for i, _, _ in (f for s in seen for f in s[2])} == {4, 11, 17}
    assert len(blocks) == 3
    assert not [p for p in blocks if os.path.exists(p)], "shared blocks left behind"


def test_no_workers_decodes_in_process_with_the_same_result(jobs):
    assert [(i.tolist(), c.tobytes()) for i, c, _ in _collect(jobs, 0, 8, 3)] == \
           [(i.tolist(), c.tobytes()) for i, c, _ in _collect(jobs, 2, 8, 3)]


def test_an_error_in_the_consumer_stops_the_workers_and_frees_the_memory(jobs, blocks):

    def on_batch(indices, clips, failures, notes, seconds):
        raise RuntimeError("strict stop")

    with pytest.raises(RuntimeError, match="strict stop"):
        decode_in_batches(jobs, 2, 4, 2, on_batch)
    assert blocks and not [p for p in blocks if os.path.exists(p)]


def test_blocks_go_to_the_temp_dir_when_dev_shm_is_too_small():
    from dataset_builder import decode_pool

    assert decode_pool.shared_dir(2**62) == decode_pool.tempfile.gettempdir()
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        assert decode_pool.shared_dir(1) == "/dev/shm"


def test_an_empty_job_list_calls_nothing():
    calls = []
    decode_in_batches(iter(()), 2, 8, 4, lambda *a: calls.append(a))
    assert calls == []
