"""Embedding backends: anything that turns 1-second clips into fixed-size vectors.

A backend is an object with ``name``, ``dim``, ``identity`` (a stable hash of its
weights and configuration, so a dataset records exactly which embedding it holds) and
``embed(clips)``. Backends are created by name through a small registry; every entry
is imported lazily, so listing backends or using one never imports the others'
dependencies (TensorFlow, onnxruntime, torch)::

    from embedding_model import get_backend
    backend = get_backend("mswc")                 # the shipped model in models/
    vectors = backend.embed(clips)                # [N, 16000] float32 -> [N, 1024] float32

Entries: ``"mswc"`` (this package's keyword classifier; option ``model=PATH``),
``"openwakeword"`` (openWakeWord's 96-d speech embedding; the ``openwakeword`` extra)
and ``"wav2vec2"`` (``embedding_model.wav2vec2:Wav2Vec2Backend``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from corpus.clip import CLIP_SAMPLES, check_clips
from protos.errors import EnvironmentProblem, InputError

MODEL_FILENAME = "mswc_embedding.keras"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"


class BackendUnavailable(EnvironmentProblem):
    """A backend's dependencies or weights are missing; the message says what to install."""


@runtime_checkable
class Backend(Protocol):
    """What the dataset builder needs from an embedding."""

    name: str
    dim: int
    identity: str

    def embed(self, clips: np.ndarray) -> np.ndarray:
        """clips [N, 16000] float32 in [-1, 1] -> embeddings [N, dim] float32."""
        ...


_REGISTRY: dict[str, Callable[..., Backend] | str] = {
    "mswc": "embedding_model.backends:MswcBackend",
    "openwakeword": "embedding_model.backends:OpenWakeWordBackend",
    "wav2vec2": "embedding_model.wav2vec2:Wav2Vec2Backend",
}


def register_backend(name: str, factory: Callable[..., Backend] | str) -> None:
    """Register (or replace) a backend factory.

    Args:
        name: the name ``get_backend`` will accept.
        factory: a callable taking the backend's keyword options, or a
            ``"module:attribute"`` string imported on first use.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"backend name must be a non-empty string, got {name!r}")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise ValueError(f"backend factory must be callable or 'module:attribute', got {factory!r}")
    _REGISTRY[name] = factory


def list_backends() -> list[str]:
    """Names accepted by :func:`get_backend`, sorted."""
    return sorted(_REGISTRY)


def get_backend(name: str, **options: Any) -> Backend:
    """Create the backend registered as ``name`` with keyword ``options``.

    Raises:
        InputError: ``name`` is not registered (a ``ValueError``).
        BackendUnavailable: the backend's optional dependencies are not installed.
    """
    if name not in _REGISTRY:
        raise InputError(f"unknown embedding backend {name!r}; available: {', '.join(list_backends())}")
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BackendUnavailable(
                f"backend {name!r} needs a package that is not installed ({exc.name or exc}): "
                f"pip install 'dataperf-speech[{_extra_for(name)}]'"
            ) from exc
        factory = getattr(module, attr)
    return factory(**options)


def _extra_for(name: str) -> str:
    return {"mswc": "pipeline", "openwakeword": "openwakeword"}.get(name, name)


def resolve_model_path(model: str | os.PathLike | None) -> Path:
    """The ``.keras`` file for ``model``: a file, a directory holding one, or the default."""
    path = Path(model) if model is not None else DEFAULT_MODEL_DIR
    if path.is_dir():
        path = path / MODEL_FILENAME
    if not path.is_file():
        hint = "train one with `train-embedding` or pass model=PATH to a directory holding " + MODEL_FILENAME
        raise BackendUnavailable(f"no MSWC embedding model at {path}: {hint}")
    return path


class MswcBackend:
    """This project's keyword-classifier embedding: clips [N, 16000] -> [N, 1024] float32.

    Args:
        model: a ``.keras`` file or a directory holding ``mswc_embedding.keras``
            (default: the shipped model in ``models/``).
        batch_size: clips per forward pass (256 is the throughput sweet spot on 2 cores).
    """

    name = "mswc"

    def __init__(self, model: str | os.PathLike | None = None, batch_size: int = 256):
        try:
            import keras
            import tensorflow as tf
        except ImportError as exc:
            raise BackendUnavailable(
                "the mswc backend needs TensorFlow: pip install 'dataperf-speech[pipeline]'"
            ) from exc
        from embedding_model.model import custom_objects

        self.path = resolve_model_path(model)
        self.model = keras.models.load_model(self.path, custom_objects=custom_objects(), compile=False)
        self.dim = int(self.model.output_shape[-1])
        self.batch_size = int(batch_size)
        self.identity = weights_identity(self.model)
        meta_path = self.path.with_suffix(".json")
        self.metadata = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        self._forward = tf.function(
            lambda x: self.model(x, training=False),
            input_signature=[tf.TensorSpec([None, CLIP_SAMPLES], tf.float32)],
            reduce_retracing=True,
        )

    def embed(self, clips: np.ndarray) -> np.ndarray:
        """clips [N, 16000] float32 in [-1, 1] -> embeddings [N, 1024] float32.

        Row i depends on clips[i] only, to the bit: every forward pass runs on exactly
        ``batch_size`` rows (the last one zero-padded). oneDNN computes rows in blocks,
        and a row in a partial last block takes another code path, so without the
        padding a clip's embedding would change with how its batch was cut (and the
        local and Beam builds, which cut batches differently, would differ).
        """
        clips = check_clips(clips, "mswc backend")
        n = clips.shape[0]
        out = np.empty((n, self.dim), dtype=np.float32)
        for start in range(0, n, self.batch_size):
            chunk = clips[start : start + self.batch_size]
            rows = len(chunk)
            if rows < self.batch_size:
                padded = np.zeros((self.batch_size, chunk.shape[1]), dtype=np.float32)
                padded[:rows] = chunk
                chunk = padded
            out[start : start + rows] = self._forward(chunk).numpy()[:rows]
        return out

    def __repr__(self) -> str:
        return f"MswcBackend(path={str(self.path)!r}, dim={self.dim}, identity={self.identity!r})"


def weights_identity(model) -> str:
    """Stable 16-hex-digit hash of a Keras model's architecture and weights."""
    digest = hashlib.sha256()
    digest.update(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    for weight in model.weights:
        digest.update(weight.path.encode())
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:16]


class OpenWakeWordBackend:
    """openWakeWord's 96-d speech embedding of each clip (see :mod:`embedding_model.oww`).

    Args:
        context: ``"centered2s"`` (default) or ``"bare"``.
        window_step: mel frames between averaged windows (8 = openWakeWord's own).
        threads: onnxruntime threads.
    """

    name = "openwakeword"
    dim = 96

    def __init__(self, context: str = "centered2s", window_step: int = 8, threads: int = 2):
        from embedding_model.oww import OpenWakeWordEmbedder, OpenWakeWordMissing

        try:
            self._embedder = OpenWakeWordEmbedder(context=context, window_step=window_step, threads=threads)
        except OpenWakeWordMissing as exc:
            raise BackendUnavailable(str(exc)) from exc
        self.identity = self._embedder.identity

    def embed(self, clips: np.ndarray) -> np.ndarray:
        """clips [N, 16000] float32 in [-1, 1] -> embeddings [N, 96] float32."""
        return self._embedder.embed(clips)
