"""wav2vec 2.0 (and its Hugging Face relatives) as an embedding backend.

A clip's embedding is one hidden layer of the model, pooled over time::

    backend = get_backend("wav2vec2", model="facebook/wav2vec2-base", layer=6)
    vectors = backend.embed(clips)   # [N, 16000] float32 -> [N, 768] float32

Optional: needs ``torch`` and ``transformers`` (the ``wav2vec2`` extra), imported
only when this backend is created. Any checkpoint ``transformers.AutoModel`` loads
as a speech encoder taking raw 16 kHz audio (wav2vec2, HuBERT, WavLM, ...) works,
from a local directory or a hub id.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from corpus.clip import SAMPLE_RATE, check_clips
from embedding_model.backends import BackendUnavailable

INSTALL_HINT = "pip install 'dataperf-speech[wav2vec2]' (torch==2.13.0, transformers==5.24.0)"
POOLINGS = ("mean", "max", "meanmax")


class Wav2Vec2Backend:
    """Pooled hidden states of a wav2vec2-style model: [N, 16000] -> [N, dim] float32.

    Args:
        model: local model directory (``config.json`` + weights, as written by
            ``save_pretrained``) or a Hugging Face hub id.
        layer: index into the model's hidden states: 0 is the input to the first
            transformer layer, ``num_hidden_layers`` (or -1, the default) the last.
        pooling: ``"mean"`` or ``"max"`` over frames (dim = hidden size), or
            ``"meanmax"`` (both, concatenated: dim = 2 x hidden size).
        batch_size: clips per forward pass.
        threads: torch intra-op threads (None: torch's default).
        local_files_only: never try the network for a hub id.

    Raises:
        BackendUnavailable: torch/transformers missing, or the model cannot be loaded.
        ValueError: bad ``layer`` or ``pooling``.
    """

    name = "wav2vec2"

    def __init__(
        self,
        model: str | os.PathLike = "facebook/wav2vec2-base",
        layer: int | None = None,
        pooling: str = "mean",
        batch_size: int = 16,
        threads: int | None = None,
        local_files_only: bool = False,
    ):
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendUnavailable(
                f"the wav2vec2 backend needs torch and transformers ({exc.name} is missing): {INSTALL_HINT}"
            ) from None
        if pooling not in POOLINGS:
            raise ValueError(f"wav2vec2 pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if batch_size < 1:
            raise ValueError(f"wav2vec2 batch_size must be >= 1, got {batch_size}")
        self._torch = torch
        if threads is not None:
            torch.set_num_threads(int(threads))
        source = str(model)
        local = Path(source).is_dir()
        try:
            self.model = transformers.AutoModel.from_pretrained(
                source, local_files_only=local_files_only or local
            )
        except (OSError, ValueError) as exc:
            where = "directory" if local else "hub id"
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendUnavailable(
                f"cannot load wav2vec2 model from {where} {source!r} ({first_line}); "
                "pass --model a directory written by save_pretrained, or a hub id with network access"
            ) from None
        self.model.eval()
        config = self.model.config
        n_layers = int(getattr(config, "num_hidden_layers", 0))
        if layer is None:
            layer = n_layers
        if not -(n_layers + 1) <= layer <= n_layers:
            raise ValueError(f"wav2vec2 layer must be in [{-(n_layers + 1)}, {n_layers}], got {layer}")
        self.layer = layer % (n_layers + 1)
        self.pooling = pooling
        self.batch_size = int(batch_size)
        self.do_normalize = _wants_normalized_input(source, local_files_only or local)
        hidden = int(config.hidden_size)
        self.dim = 2 * hidden if pooling == "meanmax" else hidden
        self.source = source
        self.identity = self._identity()

    def _identity(self) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps(self.model.config.to_dict(), sort_keys=True, default=str).encode())
        digest.update(f"layer={self.layer};pooling={self.pooling};normalize={self.do_normalize}".encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def embed(self, clips: np.ndarray) -> np.ndarray:
        """clips [N, 16000] float32 in [-1, 1] -> embeddings [N, dim] float32."""
        clips = check_clips(clips, "wav2vec2 backend")
        torch = self._torch
        out = np.empty((len(clips), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(clips), self.batch_size):
                x = clips[start : start + self.batch_size]
                if self.do_normalize:
                    # What Wav2Vec2FeatureExtractor does: zero mean, unit variance per clip.
                    x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-7)
                hidden = self.model(torch.from_numpy(np.ascontiguousarray(x)),
                                    output_hidden_states=True).hidden_states[self.layer]
                if self.pooling == "mean":
                    pooled = hidden.mean(dim=1)
                elif self.pooling == "max":
                    pooled = hidden.amax(dim=1)
                else:
                    pooled = torch.cat([hidden.mean(dim=1), hidden.amax(dim=1)], dim=1)
                out[start : start + len(x)] = pooled.float().numpy()
        return out

    def __repr__(self) -> str:
        return (f"Wav2Vec2Backend(model={self.source!r}, layer={self.layer}, pooling={self.pooling!r}, "
                f"dim={self.dim}, identity={self.identity!r})")


def _wants_normalized_input(source: str, local_files_only: bool) -> bool:
    """The checkpoint's ``do_normalize`` (from its feature extractor config); True if it has none.

    Raises:
        BackendUnavailable: the checkpoint expects a sample rate other than 16 kHz.
    """
    import transformers

    try:
        extractor = transformers.AutoFeatureExtractor.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError):
        return True
    rate = getattr(extractor, "sampling_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise BackendUnavailable(f"wav2vec2 model {source!r} expects {rate} Hz audio; clips are {SAMPLE_RATE} Hz")
    return bool(getattr(extractor, "do_normalize", True))
