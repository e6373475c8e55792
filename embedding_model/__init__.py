"""The MSWC-style keyword-classifier embedding and the embedding-backend registry.

Importing this package is cheap: TensorFlow is imported only when a model is built
or loaded. One line loads the shipped model::

    from embedding_model import load_model
    embeddings = load_model().embed(clips)   # [N, 16000] float32 -> [N, 1024] float32
"""

from __future__ import annotations

import os

from embedding_model.backends import (
    Backend,
    BackendUnavailable,
    get_backend,
    list_backends,
    register_backend,
)

__all__ = [
    "Backend",
    "BackendUnavailable",
    "get_backend",
    "list_backends",
    "load_model",
    "register_backend",
]


def load_model(path: str | os.PathLike | None = None) -> Backend:
    """The MSWC embedding backend for the model at ``path`` (default: the shipped model)."""
    return get_backend("mswc", model=path)
