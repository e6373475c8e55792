"""The read-only pool a selection algorithm chooses from, and the check of its answer.

An algorithm sees a :class:`Pool` and answers with sample ids per class
(``dict[label_name, list[sample_id]]``); :func:`validate_selection` turns that
answer into row indices of the pool, or explains in one line why it cannot. The
training vectors are then copied from the pool by ``selection.main``, so a
selection can never contain a vector that is not in samples.pb.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from protos import DatasetMetadata, SampleSet
from protos.errors import InputError


class SelectionError(InputError):
    """A selection cannot be made, or what ``select()`` returned is not a valid one
    (a ``ValueError``; exit status 1 in ``selection.main``)."""


def _frozen(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class Pool:
    """What ``select()`` receives: the candidate samples and the task. Read-only.

    Attributes:
        ids : np.ndarray [shape=(N,)] str. Unique sample ids (the values to return).
        labels : np.ndarray [shape=(N,)] int64. Class id of each sample: 0 nontarget,
            1..K the target keywords in ``label_names`` order.
        label_names : tuple[str, ...] [K + 1]. ``label_names[c]`` names class id c:
            ``("nontarget", *sorted target keywords)``, or ``("nontarget", "target")``
            for a seed-schema file.
        embeddings : np.ndarray [shape=(N, D)] float32. Row i is the vector of ``ids[i]``.
        keywords : np.ndarray [shape=(N,)] str. The word spoken in each clip (nontargets
            too); ``""`` throughout for a seed-schema file.
        train_size : int. The budget: return at most this many ids in total.
        seed : int. Seed every source of randomness with it (reproducible selections).
        metadata : protos.DatasetMetadata. Language, backend, model id, ... of the pool.
        speakers : np.ndarray [shape=(N,)] str. Who spoke each clip, as the corpus names
            them; ``""`` where the pool does not record it (all ``""`` for files
            written without speakers). DataPerf's eval clips come from other speakers
            than the pool's: split by speaker when simulating it.

    The arrays are read-only views; copy one (``np.array(pool.embeddings)``) to modify it.
    """

    ids: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    embeddings: np.ndarray
    keywords: np.ndarray
    train_size: int
    seed: int
    metadata: DatasetMetadata
    speakers: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.speakers is None:
            object.__setattr__(self, "speakers", _frozen(np.full(len(self.ids), "", dtype="<U1")))

    @classmethod
    def from_sample_set(cls, sample_set: SampleSet, train_size: int, seed: int) -> "Pool":
        """Wrap a validated SampleSet (read-only views, no copies of the vectors)."""
        return cls(
            ids=_frozen(sample_set.ids),
            labels=_frozen(sample_set.labels),
            label_names=tuple(sample_set.label_names),
            embeddings=_frozen(sample_set.embeddings),
            keywords=_frozen(sample_set.keywords),
            train_size=int(train_size),
            seed=int(seed),
            metadata=dataclasses.replace(
                sample_set.metadata,
                target_keywords=list(sample_set.metadata.target_keywords),
                params=dict(sample_set.metadata.params)),
            speakers=_frozen(sample_set.speakers),
        )

    @property
    def num_classes(self) -> int:
        """K + 1 (the target keywords plus nontarget)."""
        return len(self.label_names)

    def class_sizes(self) -> np.ndarray:
        """np.ndarray [shape=(K + 1,)] int64: number of pool samples per class id."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def indices_of(self, label: int | str) -> np.ndarray:
        """Row indices of the samples of one class (class id or label name)."""
        class_id = self.label_names.index(label) if isinstance(label, str) else int(label)
        return np.flatnonzero(self.labels == class_id)

    def selection_from_indices(self, indices: Iterable[int]) -> dict[str, list[str]]:
        """Turn pool row indices into the ``dict[label_name, list[sample_id]]`` answer."""
        selection: dict[str, list[str]] = {name: [] for name in self.label_names}
        for i in np.asarray(list(indices), dtype=np.int64):
            selection[self.label_names[self.labels[i]]].append(str(self.ids[i]))
        return selection


def validate_selection(selection: object, pool: Pool) -> np.ndarray:
    """Check what ``select()`` returned; return the selected pool row indices.

    Args:
        selection: should be a mapping ``{label_name: [sample_id, ...]}``.
        pool: the pool it was selected from.

    Returns:
        np.ndarray [shape=(M,)] int64, row indices into the pool, grouped by class in
        ``label_names`` order, each class in the order returned.

    Raises:
        SelectionError: one line saying what is wrong (unknown class, unknown id, id
            listed under the wrong class, duplicate, over budget, nothing selected, a
            class left out although the budget allows one of each).
    """
    if not isinstance(selection, Mapping):
        raise SelectionError(
            f"select() must return a dict {{label_name: [sample_id, ...]}}, got "
            f"{type(selection).__name__}")
    unknown = [key for key in selection if key not in pool.label_names]
    if unknown:
        raise SelectionError(
            f"select() returned unknown class {unknown[0]!r}; the classes are "
            f"{list(pool.label_names)}")
    row_of = {sample_id: row for row, sample_id in enumerate(pool.ids.tolist())}
    chosen: list[int] = []
    seen: dict[str, str] = {}
    for class_id, name in enumerate(pool.label_names):
        ids = selection.get(name, ())
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise SelectionError(
                f"select() must map each class to a list of sample ids; class {name!r} "
                f"maps to {type(ids).__name__}")
        for sample_id in ids:
            if not isinstance(sample_id, str):
                raise SelectionError(
                    f"select() returned a {type(sample_id).__name__} under {name!r}; "
                    "sample ids are strings")
            row = row_of.get(sample_id)
            if row is None:
                raise SelectionError(
                    f"select() returned id {sample_id!r} under {name!r}, which is not in "
                    "the pool")
            if sample_id in seen:
                raise SelectionError(
                    f"select() returned id {sample_id!r} twice (under {seen[sample_id]!r} "
                    f"and {name!r})")
            actual = pool.label_names[pool.labels[row]]
            if actual != name:
                raise SelectionError(
                    f"select() listed id {sample_id!r} under {name!r}, but it is a "
                    f"{actual!r} sample")
            seen[sample_id] = name
            chosen.append(row)
    if not chosen:
        raise SelectionError("select() returned no samples")
    if len(chosen) > pool.train_size:
        raise SelectionError(
            f"select() returned {len(chosen)} samples, more than train_size="
            f"{pool.train_size}")
    available = pool.class_sizes() > 0
    if pool.train_size >= int(available.sum()):
        counts = np.bincount(pool.labels[chosen], minlength=pool.num_classes)
        missing = [pool.label_names[c] for c in np.flatnonzero(available & (counts == 0))]
        if missing:
            raise SelectionError(
                f"select() left out class(es) {missing}; a budget of {pool.train_size} "
                "allows at least one sample of every class")
    return np.asarray(chosen, dtype=np.int64)
