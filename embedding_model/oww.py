"""openWakeWord's speech embedding (Google's, trained on real speech), run with onnxruntime.

``openwakeword==0.4.0`` is the last release that ships its ONNX models inside the
wheel; this module only reads those two files (``melspectrogram.onnx`` and
``embedding_model.onnx``) and never imports the ``openwakeword`` package itself (its
``__init__`` pulls in the whole wake-word runtime).

The embedding of a 1-second clip is the mean of the 96-d window embeddings. By
default the clip is centred in 2 s of zeros (``context="centered2s"``): the network
was trained on streaming audio, and averaging its windows over the padded clip gives
a much more word-specific vector than the three windows that fit in the bare clip
(``context="bare"``).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from corpus.clip import check_clips
from protos.errors import EnvironmentProblem

DIM = 96
WINDOW_FRAMES = 76
MEL_BINS = 32
CONTEXTS = ("centered2s", "bare")


class OpenWakeWordMissing(EnvironmentProblem):
    """The openwakeword 0.4.0 wheel or onnxruntime is not installed."""


def model_dir() -> Path:
    """Directory holding the ONNX files of the installed openwakeword wheel."""
    spec = importlib.util.find_spec("openwakeword")
    if spec is None or not spec.submodule_search_locations:
        raise OpenWakeWordMissing(
            "openWakeWord's models are not installed: pip install 'dataperf-speech[openwakeword]' "
            "(openwakeword==0.4.0 and onnxruntime)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "resources" / "models"
    for name in ("melspectrogram.onnx", "embedding_model.onnx"):
        if not (root / name).is_file():
            raise OpenWakeWordMissing(
                f"{root / name} is missing: only openwakeword==0.4.0 ships its ONNX models in the wheel; "
                "pip install 'openwakeword==0.4.0'"
            )
    return root


class OpenWakeWordEmbedder:
    """Clips [N, 16000] float32 -> openWakeWord speech embeddings [N, 96] float32.

    Args:
        context: ``"centered2s"`` (clip centred in 2 s of zeros, 16 windows averaged)
            or ``"bare"`` (the 1-s clip alone, 3 windows averaged).
        window_step: mel frames between windows (openWakeWord streams with 8; 16
            halves the cost of the 2-s form and changes the mean very little).
        threads: onnxruntime intra-op threads.
    """

    def __init__(self, context: str = "centered2s", window_step: int = 8, threads: int = 2):
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
        if window_step < 1:
            raise ValueError(f"window_step must be >= 1, got {window_step}")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise OpenWakeWordMissing(
                "onnxruntime is not installed: pip install 'dataperf-speech[openwakeword]'"
            ) from exc
        root = model_dir()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        self._mel = ort.InferenceSession(str(root / "melspectrogram.onnx"), opts, providers=providers)
        self._emb = ort.InferenceSession(str(root / "embedding_model.onnx"), opts, providers=providers)
        self.context = context
        self.window_step = int(window_step)
        digest = hashlib.sha256()
        for name in ("melspectrogram.onnx", "embedding_model.onnx"):
            digest.update((root / name).read_bytes())
        digest.update(f"{context}:{window_step}".encode())
        self.identity = digest.hexdigest()[:16]

    def embed(self, clips: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Embed clips.

        Args:
            clips: np.ndarray [shape=(N, 16000)] float32 in [-1, 1], 16 kHz.
            batch_size: clips per onnxruntime call.

        Returns:
            np.ndarray [shape=(N, 96)] float32.
        """
        clips = check_clips(clips, "openwakeword backend")
        out = np.empty((clips.shape[0], DIM), dtype=np.float32)
        for start in range(0, clips.shape[0], batch_size):
            out[start : start + batch_size] = self._embed_batch(clips[start : start + batch_size])
        return out

    def _embed_batch(self, clips: np.ndarray) -> np.ndarray:
        if self.context == "centered2s":
            pad = clips.shape[1] // 2
            clips = np.pad(clips, ((0, 0), (pad, pad)))
        # The ONNX frontend expects int16-scaled samples as float32.
        audio = np.clip(clips * 32767.0, -32768, 32767).astype(np.float32)
        mel = self._mel.run(None, {"input": audio})[0][:, 0]  # [N, frames, 32]
        mel = mel / 10.0 + 2.0  # openWakeWord's fixed rescaling towards the TF original
        starts = range(0, mel.shape[1] - WINDOW_FRAMES + 1, self.window_step)
        windows = np.stack([mel[:, s : s + WINDOW_FRAMES] for s in starts], axis=1)  # [N, W, 76, 32]
        n, w = windows.shape[:2]
        emb = self._emb.run(None, {"input_1": windows.reshape(n * w, WINDOW_FRAMES, MEL_BINS, 1)})[0]
        return emb.reshape(n, w, DIM).mean(axis=1)
