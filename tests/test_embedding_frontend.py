"""The log-mel frontend matches librosa and has the shape the model expects."""

import numpy as np
import pytest

from embedding_model import frontend
from tests.fixtures_model import speechlike_clips

# Also run under the second supported Python in CI (.ci/run: -m second_python).
pytestmark = pytest.mark.second_python


def _librosa_logmel(y):
    import librosa

    # librosa centres the 480-sample window in its 512-sample frame, 16 samples later
    # than tf.signal.stft, which starts the window at the frame start: pad to align.
    mel = librosa.feature.melspectrogram(
        y=np.pad(y, (16, 0)), sr=16000, n_fft=512, win_length=480, hop_length=320, n_mels=40,
        fmin=frontend.FMIN, fmax=frontend.FMAX, center=False, power=2.0, htk=False, norm="slaney",
    )
    return np.log(mel.T + frontend.LOG_OFFSET)


def test_numpy_logmel_matches_librosa():
    clips = speechlike_clips(3)
    got = frontend.log_mel_numpy(clips)
    assert got.shape == (3, 49, 40) and got.dtype == np.float32
    want = np.stack([_librosa_logmel(y) for y in clips])
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_tensorflow_layer_matches_librosa_and_numpy():
    import tensorflow as tf

    clips = speechlike_clips(3, seed=1)
    got = frontend.LogMel()(tf.constant(clips)).numpy()
    assert got.shape == (3, 49, 40)
    want = np.stack([_librosa_logmel(y) for y in clips])
    np.testing.assert_allclose(got, want, atol=1e-3)
    np.testing.assert_allclose(got, frontend.log_mel_numpy(clips), atol=1e-3)


def test_blocked_filterbank_for_int8_export_gives_the_same_features():
    import tensorflow as tf

    clips = tf.constant(speechlike_clips(3, seed=2))
    blocked = frontend.LogMel(mel_block_rows=frontend.QUANT_SAFE_MEL_BLOCK_ROWS)(clips).numpy()
    np.testing.assert_allclose(blocked, frontend.LogMel()(clips).numpy(), atol=1e-4)


def test_mel_filterbank_is_librosas():
    import librosa

    want = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=frontend.FMIN, fmax=frontend.FMAX)
    np.testing.assert_allclose(frontend.mel_matrix(), want.T, rtol=1e-4, atol=1e-7)


def test_wrong_clip_length_is_rejected():
    with pytest.raises(ValueError, match=r"\[N, 16000\]"):
        frontend.log_mel_numpy(np.zeros((2, 8000), np.float32))
