"""EfficientWord-Net's word embedding (ResNet-50 + ArcFace, trained on real MSWC words).

A training-time extra (``pip install 'dataperf-speech[teacher-ewn]'``): the
``efficientword-net==1.0.5`` wheel (Apache-2.0) ships the ONNX model this module runs
with onnxruntime. It is a benchmark anchor and a distillation teacher; it is never
part of the shipped model or the base install. The package itself is never
imported (its ``__init__`` wants pyaudio and a microphone); only its ONNX file is read.

The network takes 1.5 s of 16 kHz audio as 64-band log mel-filterbank energies:
25 ms rectangular frames every 10 ms (149 frames), 512-point FFT power spectrum
divided by 512, 64 triangular filters evenly spaced on the HTK mel scale from 0 to
8000 Hz, natural log, no pre-emphasis; samples as float in [-1, 1]. Its output is a
unit-norm 2048-d vector. A 1-s clip is centred in 1.5 s of zeros. The ONNX graph has
a fixed batch of 1, so clips run one at a time (about 40 ms each on 2 cores).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

import numpy as np

DIM = 2048
SAMPLE_RATE = 16000
WINDOW_SAMPLES = 24000  # 1.5 s
FRAME = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 64
N_FRAMES = 1 + math.ceil((WINDOW_SAMPLES - FRAME) / HOP)  # 149
MODEL_FILES = {
    "float": "slim_93%_accuracy_72.7390%.onnx",
    "int8": "slim_93%_accuracy_72.7390%_qint8.onnx",
}


class EfficientWordNetMissing(RuntimeError):
    """The efficientword-net wheel or onnxruntime is not installed."""


def model_path(variant: str = "float") -> Path:
    """The ONNX file inside the installed ``efficientword-net`` wheel.

    Args:
        variant: ``"float"`` (about 86 MB) or ``"int8"`` (dynamic int8 weights).
    """
    if variant not in MODEL_FILES:
        raise ValueError(f"variant must be one of {sorted(MODEL_FILES)}, got {variant!r}")
    spec = importlib.util.find_spec("eff_word_net")
    if spec is None or not spec.submodule_search_locations:
        raise EfficientWordNetMissing(
            "EfficientWord-Net is not installed: pip install --no-deps 'efficientword-net==1.0.5' "
            "(or the 'teacher-ewn' extra); it needs onnxruntime")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "resnet_50_arc" / MODEL_FILES[variant]
    if not path.is_file():
        raise EfficientWordNetMissing(f"{path} is missing: reinstall efficientword-net==1.0.5")
    return path


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular filters on FFT bins, evenly spaced in HTK mel from 0 to sr/2.

    Returns:
        np.ndarray [shape=(n_mels, n_fft // 2 + 1)] float64.
    """
    to_mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731
    to_hz = lambda mel: 700.0 * (10.0 ** (mel / 2595.0) - 1.0)  # noqa: E731
    edges = np.floor((n_fft + 1) * to_hz(np.linspace(to_mel(0.0), to_mel(sr / 2), n_mels + 2)) / sr).astype(int)
    bank = np.zeros((n_mels, n_fft // 2 + 1))
    for j in range(n_mels):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        for i in range(lo, mid):
            bank[j, i] = (i - lo) / (mid - lo)
        for i in range(mid, hi):
            bank[j, i] = (hi - i) / (hi - mid)
    return bank


_BANK = None


def log_fbank(window: np.ndarray) -> np.ndarray:
    """EfficientWord-Net's input features of one 1.5-s window.

    Args:
        window: np.ndarray [shape=(24000,)] float in [-1, 1], 16 kHz.

    Returns:
        np.ndarray [shape=(149, 64)] float32.
    """
    global _BANK
    if _BANK is None:
        _BANK = mel_filterbank()
    y = np.asarray(window, dtype=np.float64)
    if y.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected a window of shape ({WINDOW_SAMPLES},), got {y.shape}")
    padded = np.zeros((N_FRAMES - 1) * HOP + FRAME)
    padded[:WINDOW_SAMPLES] = y
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::HOP][:N_FRAMES]
    power = np.square(np.abs(np.fft.rfft(frames, N_FFT))) / N_FFT
    energies = power @ _BANK.T
    energies = np.where(energies == 0.0, np.finfo(float).eps, energies)
    return np.log(energies).astype(np.float32)


class EfficientWordNetEmbedder:
    """Clips [N, 16000] float32 -> EfficientWord-Net embeddings [N, 2048] float32 (unit norm).

    Args:
        variant: ``"float"`` or ``"int8"``.
        threads: onnxruntime intra-op threads.
    """

    name = "efficientword-net"
    dim = DIM

    def __init__(self, variant: str = "float", threads: int = 2):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EfficientWordNetMissing("onnxruntime is not installed: pip install onnxruntime") from exc
        path = model_path(variant)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        digest = hashlib.sha256(path.read_bytes())
        digest.update(f"centered1.5s:{variant}".encode())
        self.identity = digest.hexdigest()[:16]
        self.variant = variant

    def embed_window(self, window: np.ndarray) -> np.ndarray:
        """One 1.5-s window [24000] -> [2048] float32."""
        features = log_fbank(window)[None, None]
        return self._session.run(None, {self._input: features})[0][0].astype(np.float32)

    def embed(self, clips: np.ndarray) -> np.ndarray:
        """Embed 1-s clips, each centred in 1.5 s of zeros.

        Args:
            clips: np.ndarray [shape=(N, 16000)] float32 in [-1, 1], 16 kHz.

        Returns:
            np.ndarray [shape=(N, 2048)] float32.
        """
        clips = np.asarray(clips, dtype=np.float32)
        if clips.ndim != 2 or clips.shape[1] > WINDOW_SAMPLES:
            raise ValueError(f"expected clips of shape [N, <= {WINDOW_SAMPLES}], got {clips.shape}")
        left = (WINDOW_SAMPLES - clips.shape[1]) // 2
        out = np.empty((clips.shape[0], DIM), dtype=np.float32)
        window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        for i, clip in enumerate(clips):
            window[left : left + clips.shape[1]] = clip
            out[i] = self.embed_window(window)
        return out


class EfficientWordNetBackend(EfficientWordNetEmbedder):
    """The ``efficientword-net`` embedding backend (2048-d; a training/benchmark extra)."""

    def __repr__(self) -> str:
        return f"EfficientWordNetBackend(variant={self.variant!r}, identity={self.identity!r})"
