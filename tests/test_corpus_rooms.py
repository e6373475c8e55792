"""corpus.rooms: the one shoebox-room simulation the synthesizer and the training augmentation share."""

from __future__ import annotations

import numpy as np
import pytest

from corpus.rooms import shoebox_rir

DIMS = np.array([5.0, 4.0, 2.8])


def _tail_share(h: np.ndarray, fs: int) -> float:
    """Share of the energy arriving more than 50 ms after the direct path."""
    start = int(np.argmax(np.abs(h))) + fs // 20
    return float(np.sum(h[start:] ** 2) / np.sum(h**2))


def test_same_generator_state_gives_the_same_room():
    a = shoebox_rir(DIMS, 0.3, 16000, np.random.default_rng(5), max_order=14)
    b = shoebox_rir(DIMS, 0.3, 16000, np.random.default_rng(5), max_order=14)
    c = shoebox_rir(DIMS, 0.3, 16000, np.random.default_rng(6), max_order=14)
    assert a.dtype == np.float64 and np.array_equal(a, b) and not np.array_equal(a[: len(c)], c[: len(a)])


def test_longer_reverberation_time_means_more_late_energy():
    dry = shoebox_rir(DIMS, 0.15, 16000, np.random.default_rng(1), max_order=20)
    wet = shoebox_rir(DIMS, 0.8, 16000, np.random.default_rng(1), max_order=20)
    assert _tail_share(wet, 16000) > 2 * _tail_share(dry, 16000)


def test_unreachable_reverberation_time_is_a_value_error():
    with pytest.raises(ValueError):
        shoebox_rir(DIMS, 0.001, 16000, np.random.default_rng(0), max_order=14)
