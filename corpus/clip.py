"""The clip contract: what every embedding backend receives.

A batch of clips is ``np.ndarray [shape=(N, 16000)] float32``: N one-second clips,
16 kHz mono, samples in [-1, 1], every value finite. :func:`check_clips` is the one
validator of that contract; every backend calls it before it embeds. NumPy only.
"""

from __future__ import annotations

import numpy as np

from protos.clip_format import CLIP_SAMPLES, CLIP_SECONDS, SAMPLE_RATE
from protos.errors import InputError

__all__ = ["CLIP_SAMPLES", "CLIP_SECONDS", "SAMPLE_RATE", "ClipContractError", "check_clips"]


class ClipContractError(InputError):
    """A batch of clips breaks the contract (shape, dtype or non-finite values)."""


def check_clips(clips, who: str = "clips") -> np.ndarray:
    """Validate a batch of clips and return it as float32.

    Args:
        clips: array-like [N, 16000] of floating-point samples in [-1, 1] at 16 kHz.
            float64 (or float16) input is converted; integer PCM is refused, since its
            scale is not [-1, 1].
        who: what is checking (a backend's name), for the error message.

    Returns:
        np.ndarray [shape=(N, 16000)] float32; ``clips`` itself when it already is one.

    Raises:
        ClipContractError: wrong shape, a non-floating dtype, or NaN/infinite samples.
    """
    clips = np.asarray(clips)
    if clips.ndim != 2 or clips.shape[1] != CLIP_SAMPLES:
        raise ClipContractError(
            f"{who}: expected clips of shape [N, {CLIP_SAMPLES}] ({CLIP_SECONDS} s at {SAMPLE_RATE // 1000} kHz), "
            f"got {clips.shape}"
        )
    if not np.issubdtype(clips.dtype, np.floating):
        raise ClipContractError(
            f"{who}: expected float32 samples in [-1, 1], got dtype {clips.dtype} "
            "(divide integer PCM by its full scale, e.g. 32768 for int16)"
        )
    clips = clips.astype(np.float32, copy=False)
    if not np.all(np.isfinite(clips)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(clips), axis=1))[0])
        raise ClipContractError(f"{who}: clips contain NaN or infinite samples (first in clip {bad})")
    return clips
