"""corpus.clip: the one validator of the clip contract (shape, dtype, finite values)."""

from __future__ import annotations

import numpy as np
import pytest

from corpus.clip import CLIP_SAMPLES, SAMPLE_RATE, ClipContractError, check_clips
from protos.errors import InputError


def test_contract_constants():
    assert (SAMPLE_RATE, CLIP_SAMPLES) == (16000, 16000)


def test_valid_float32_batch_passes_through_unchanged():
    clips = np.zeros((3, CLIP_SAMPLES), np.float32)
    assert check_clips(clips) is clips


def test_other_float_types_are_converted():
    out = check_clips(np.full((2, CLIP_SAMPLES), 0.25, np.float64))
    assert out.dtype == np.float32 and np.all(out == 0.25)


@pytest.mark.parametrize(
    "clips, complaint",
    [
        (np.zeros((2, 8000), np.float32), r"shape \[N, 16000\] \(1 s at 16 kHz\), got \(2, 8000\)"),
        (np.zeros(CLIP_SAMPLES, np.float32), r"got \(16000,\)"),
        (np.zeros((2, CLIP_SAMPLES), np.int16), "got dtype int16"),
    ],
)
def test_wrong_shape_or_dtype_is_refused(clips, complaint):
    with pytest.raises(ClipContractError, match=complaint):
        check_clips(clips, "my backend")


def test_non_finite_samples_are_refused_naming_the_clip():
    clips = np.zeros((4, CLIP_SAMPLES), np.float32)
    clips[2, 100] = np.inf
    with pytest.raises(ClipContractError, match=r"^my backend: .*NaN or infinite.*clip 2\)") as err:
        check_clips(clips, "my backend")
    # Bad input (exit status 1), and still a ValueError for callers that catch that.
    assert isinstance(err.value, InputError) and isinstance(err.value, ValueError)
