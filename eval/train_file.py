"""Load a ``train.npz`` written by ``selection.main`` (or any tool following its contract).

Required arrays: ``train_x`` float [M, D], ``train_y`` int [M]. Optional, checked when
present: ``train_ids`` str [M], ``label_names`` str [K + 1], ``backend``, ``model_id``
(str scalars) and ``embedding_dim`` (int scalar).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class TrainFileError(ValueError):
    """A train.npz is missing, unreadable or malformed."""


@dataclass
class TrainSet:
    """The contents of a train.npz.

    Attributes:
        x : np.ndarray [shape=(M, D)] float32.
        y : np.ndarray [shape=(M,)] int64. 0 = nontarget, 1..K targets.
        ids : np.ndarray [shape=(M,)] str, or None if the file has no ``train_ids``.
        label_names : list[str] or None if the file has no ``label_names``.
        backend, model_id : str, "" when not recorded.
        embedding_dim : int, 0 when not recorded.
    """

    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray | None
    label_names: list[str] | None
    backend: str
    model_id: str
    embedding_dim: int


def load_train_file(path: str | os.PathLike) -> TrainSet:
    """Read and check a train.npz (pickled objects are refused).

    Raises:
        TrainFileError: one line naming the file and the problem.
    """
    path = Path(path)

    def fail(what: str):
        raise TrainFileError(f"{path}: {what}")

    if not path.is_file():
        fail("no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        fail(f"not a readable .npz file ({exc})")
    except ValueError as exc:  # object arrays need pickle, which is refused
        fail(f"cannot be read without pickle ({exc}); write plain arrays")
    for name in ("train_x", "train_y"):
        if name not in arrays:
            fail(f"has no {name!r} array (it has: {', '.join(sorted(arrays)) or 'nothing'})")
    x, y = arrays["train_x"], arrays["train_y"]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        fail(f"train_x must be a non-empty [M, D] matrix, got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        fail(f"train_x must be numeric, got dtype {x.dtype}")
    if y.shape != (x.shape[0],):
        fail(f"train_y has shape {y.shape}, expected ({x.shape[0]},) to match train_x")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        fail(f"train_y must hold integer class ids, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if (y < 0).any():
        fail(f"train_y has negative class id {int(y.min())}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        fail(f"train_x has {int((~np.isfinite(x)).any(axis=1).sum())} row(s) with NaN/inf")

    ids = arrays.get("train_ids")
    if ids is not None:
        if ids.shape != (x.shape[0],) or ids.dtype.kind not in "US":
            fail(f"train_ids must be {x.shape[0]} strings, got shape {ids.shape}, "
                 f"dtype {ids.dtype}")
        ids = ids.astype(str)
    names = arrays.get("label_names")
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            fail(f"label_names must be a list of strings, got shape {names.shape}")
        names = names.astype(str).tolist()

    def scalar_str(name: str) -> str:
        value = arrays.get(name)
        return "" if value is None else str(value.astype(str)) if value.ndim == 0 else fail(
            f"{name} must be a scalar string")

    dim = arrays.get("embedding_dim")
    return TrainSet(
        x=x,
        y=y,
        ids=ids,
        label_names=names,
        backend=scalar_str("backend"),
        model_id=scalar_str("model_id"),
        embedding_dim=int(dim) if dim is not None and dim.ndim == 0 else 0,
    )
