"""Log-mel frontend: 1-second 16 kHz clips -> [49, 40] log-mel spectrograms.

Two implementations of the same function:

* :class:`LogMel`, a Keras layer built from core TensorFlow ops (``tf.signal``), so
  the exported model maps waveforms straight to embeddings and converts to TFLite
  (RFFT2D needs a power-of-two FFT length, hence ``n_fft=512`` with a 480-sample
  window zero-padded to it);
* :func:`log_mel_numpy`, the numpy twin used to build the training feature cache in
  worker processes that do not import TensorFlow.

Both match librosa (``librosa.feature.melspectrogram`` with ``n_fft=512,
win_length=480, hop_length=320, n_mels=40, center=False, power=2``, Slaney mel
scale and norm) up to librosa's placement of a short window inside the FFT frame:
librosa centres the 480-sample window in the 512-sample frame, so its frames start
16 samples later. ``tests/test_embedding_frontend.py`` pins the agreement.
"""

from __future__ import annotations

import numpy as np

from corpus.clip import CLIP_SAMPLES, SAMPLE_RATE, check_clips

WIN_LENGTH = 480  # 30 ms
HOP_LENGTH = 320  # 20 ms
N_FFT = 512
N_MELS = 40
FMIN = 20.0
FMAX = 8000.0
LOG_OFFSET = 1e-6
N_FRAMES = 1 + (CLIP_SAMPLES - WIN_LENGTH) // HOP_LENGTH  # 49
QUANT_SAFE_MEL_BLOCK_ROWS = 1023 // N_MELS  # 25 FFT bins x 40 bands = 1000 weights per block


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mel = hz / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    hz = mel * f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), hz)


def mel_matrix(
    sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX
) -> np.ndarray:
    """Triangular Slaney-normalised mel filterbank.

    Returns:
        np.ndarray [shape=(n_fft // 2 + 1, n_mels)] float32: power spectrum -> mel
        (the transpose of librosa's ``filters.mel`` layout, ready for ``spec @ M``).
    """
    fft_freqs = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, fft_freqs.size))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2 : n_mels + 2] - mel_points[:n_mels]))[:, None]
    return weights.T.astype(np.float32)


def _periodic_hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def log_mel_numpy(clips: np.ndarray) -> np.ndarray:
    """Log-mel spectrograms in numpy (no TensorFlow), identical to :class:`LogMel`.

    Args:
        clips: np.ndarray [shape=(N, 16000)] float32, audio in [-1, 1] at 16 kHz.

    Returns:
        np.ndarray [shape=(N, 49, 40)] float32: ``log(mel_power + 1e-6)``.
    """
    clips = check_clips(clips, "log-mel frontend")
    idx = np.arange(N_FRAMES)[:, None] * HOP_LENGTH + np.arange(WIN_LENGTH)[None, :]
    frames = clips[:, idx] * _periodic_hann(WIN_LENGTH)
    spec = np.fft.rfft(frames, n=N_FFT, axis=-1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    return np.log(power @ mel_matrix() + LOG_OFFSET).astype(np.float32)


def _register():
    """Define the Keras layer lazily so importing this module never imports TensorFlow."""
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="embedding_model")
    class LogMel(keras.layers.Layer):
        """Waveforms [N, 16000] float32 -> log-mel [N, 49, 40] float32 (core TF ops only)."""

        def __init__(self, mel_block_rows: int | None = None, **kwargs):
            super().__init__(**kwargs)
            self.mel_block_rows = mel_block_rows
            self._mel = mel_matrix()

        def call(self, waveforms):
            waveforms = tf.cast(waveforms, tf.float32)
            stft = tf.signal.stft(
                waveforms,
                frame_length=WIN_LENGTH,
                frame_step=HOP_LENGTH,
                fft_length=N_FFT,
                window_fn=tf.signal.hann_window,  # periodic, like librosa's default
                pad_end=False,
            )
            power = tf.math.square(tf.math.real(stft)) + tf.math.square(tf.math.imag(stft))
            if not self.mel_block_rows:
                return tf.math.log(tf.tensordot(power, tf.constant(self._mel), axes=1) + LOG_OFFSET)
            # For int8 export: the filterbank in row blocks of < 1024 weights. TFLite's
            # weight quantization skips such small constants, so the power spectrum (a
            # dynamic range of 1e12) is never squeezed into 8 bits by a hybrid kernel.
            rows = self.mel_block_rows
            parts = [
                tf.tensordot(power[..., start : start + rows], tf.constant(self._mel[start : start + rows]), axes=1)
                for start in range(0, self._mel.shape[0], rows)
            ]
            return tf.math.log(tf.math.add_n(parts) + LOG_OFFSET)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], N_FRAMES, N_MELS)

        def get_config(self):
            return {**super().get_config(), "mel_block_rows": self.mel_block_rows}

    return LogMel


_LOGMEL_CLASS = None


def LogMel(**kwargs):  # noqa: N802 (a class factory that reads like the class)
    """Create the :class:`LogMel` Keras layer (imports TensorFlow on first use)."""
    return logmel_class()(**kwargs)


def logmel_class():
    """The registered ``LogMel`` layer class (for ``custom_objects`` and isinstance checks)."""
    global _LOGMEL_CLASS
    if _LOGMEL_CLASS is None:
        _LOGMEL_CLASS = _register()
    return _LOGMEL_CLASS
