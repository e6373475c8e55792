"""``train.npz``: the selection stage's output, written and read here only.

Arrays (``numpy.savez``, no pickled objects):

- required: ``train_x`` float32 [M, D], ``train_y`` int64 [M] (0 = nontarget, 1..K the
  sorted target keywords);
- written by :func:`write_train_file`, checked when present: ``train_ids`` str [M],
  ``label_names`` str [K + 1], the pool's ``backend``, ``model_id``, ``language``
  (str scalars) and ``embedding_dim`` (int scalar), and how the selection was made:
  ``algorithm`` (str), ``train_size`` and ``seed`` (int scalars).

Writers: ``selection.main`` and the DataPerf converter (``selection.dataperf_format``).
Readers: ``eval`` and the converter. numpy only.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protos.atomic import atomic_write_bytes
from protos.errors import InputError

#: The file name ``selection.main`` writes in ``--outdir``.
TRAIN_FILE_NAME = "train.npz"


class TrainFileError(InputError):
    """A train.npz is missing, unreadable or malformed (exit status 1)."""


@dataclass
class TrainSet:
    """The contents of a train.npz.

    Attributes:
        x : np.ndarray [shape=(M, D)] float32.
        y : np.ndarray [shape=(M,)] int64. 0 = nontarget, 1..K targets.
        ids : np.ndarray [shape=(M,)] str, or None if the file has no ``train_ids``.
        label_names : list[str] or None if the file has no ``label_names``.
        backend, model_id, language, algorithm : str, "" when not recorded.
        embedding_dim : int, 0 when not recorded.
        train_size, seed : int, 0 when not recorded.
    """

    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray | None
    label_names: list[str] | None
    backend: str = ""
    model_id: str = ""
    embedding_dim: int = 0
    language: str = ""
    algorithm: str = ""
    train_size: int = 0
    seed: int = 0


def train_file_bytes(train: TrainSet) -> bytes:
    """The .npz bytes of ``train`` (built in memory: a failing disk write then cannot
    leave a half-closed zip archive behind)."""
    n = len(train.y)
    arrays = {
        "train_x": np.ascontiguousarray(train.x, dtype=np.float32),
        "train_y": np.asarray(train.y, dtype=np.int64),
    }
    if train.ids is not None:
        arrays["train_ids"] = np.asarray(train.ids, dtype=str).reshape(n)
    if train.label_names is not None:
        arrays["label_names"] = np.asarray(list(train.label_names), dtype=str)
    arrays.update(
        backend=np.asarray(train.backend, dtype=str),
        model_id=np.asarray(train.model_id, dtype=str),
        embedding_dim=np.asarray(train.embedding_dim or arrays["train_x"].shape[1],
                                 dtype=np.int64),
        language=np.asarray(train.language, dtype=str),
        algorithm=np.asarray(train.algorithm, dtype=str),
        train_size=np.asarray(train.train_size, dtype=np.int64),
        seed=np.asarray(train.seed, dtype=np.int64),
    )
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_train_file(path: str | os.PathLike, train: TrainSet) -> Path:
    """Write ``train`` to ``path`` atomically (the old file stays on any failure).

    Raises:
        OSError: the directory cannot be written (full disk, read-only, ...).
    """
    path = Path(path)
    atomic_write_bytes(path, train_file_bytes(train))
    return path


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
        if value is None:
            return ""
        if value.ndim != 0:
            fail(f"{name} must be a scalar string")
        return str(value.astype(str))

    def scalar_int(name: str) -> int:
        value = arrays.get(name)
        if value is None:
            return 0
        if value.ndim != 0 or value.dtype.kind not in "iuf" or value != np.round(value):
            fail(f"{name} must be a scalar integer")
        return int(value)

    return TrainSet(
        x=x,
        y=y,
        ids=ids,
        label_names=names,
        backend=scalar_str("backend"),
        model_id=scalar_str("model_id"),
        embedding_dim=scalar_int("embedding_dim"),
        language=scalar_str("language"),
        algorithm=scalar_str("algorithm"),
        train_size=scalar_int("train_size"),
        seed=scalar_int("seed"),
    )
