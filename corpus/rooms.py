"""Room impulse responses of simulated shoebox rooms, shared by the synthesizer and training.

Both the synthetic corpus (:mod:`dataset_builder.synth.augment`, 48 kHz) and the
training channel augmentation (:mod:`embedding_model.augment`, 16 kHz) pass clean
speech through rooms; this is the one place that builds a room. pyroomacoustics
(image source method) is imported on first use.
"""

from __future__ import annotations

import numpy as np


def shoebox_rir(dims: np.ndarray, rt60: float, fs: int, rng: np.random.Generator, max_order: int) -> np.ndarray:
    """The impulse response from a random source to a random microphone in a shoebox room.

    Args:
        dims: np.ndarray [shape=(3,)] room size in metres.
        rt60: reverberation time in seconds; the wall absorption follows from it (Sabine).
        fs: sample rate in Hz.
        rng: draws the source, then the microphone position (each 0.5 m from the walls).
        max_order: cap on the image-source order (the cost grows with its cube).

    Returns:
        np.ndarray [shape=(n,)] float64, unnormalised.

    Raises:
        ValueError: no absorption gives ``rt60`` in a room of ``dims`` (pyroomacoustics').
    """
    import pyroomacoustics as pra

    absorption, order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=fs, materials=pra.Material(absorption), max_order=min(order, max_order))
    room.add_source(rng.uniform(0.5, dims - 0.5))
    room.add_microphone(rng.uniform(0.5, dims - 0.5))
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float64)
