"""DataPerf's speech scoring rules, in one place: the classifier, the seeds, the metric.

Every user of the rules imports them from here: the scorer (``eval``), every
selection algorithm that simulates the scorer (``selection.implementations``) and
the benchmarks. The rules (DataPerf's final protocol, its 2023 ``eval.py``):

- classes: nontarget = 0, the sorted target keywords = 1..K;
- classifier, for each seed ``s``: ``VotingClassifier([("svm", SVC(probability=True,
  random_state=s)), ("lr", LogisticRegression(random_state=s))], voting="soft")``,
  everything else at scikit-learn's defaults;
- metric: ``f1_score(average="macro")`` on the eval clips (a class never predicted
  counts F1 0);
- score: the mean of the metric over :data:`DATAPERF_SEEDS`;
- training rows in the order of :func:`dataperf_training_order` (``SVC(probability=True)``
  calibrates with an internal cross-validation whose folds depend on row order, so the
  same clips in another order score differently).

scikit-learn and numpy only (no TensorFlow); imported on first use from ``protos``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import PurePosixPath

import numpy as np
from sklearn.ensemble import VotingClassifier
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.svm import SVC

#: The seeds of DataPerf's final scoring protocol, in its order.
DATAPERF_SEEDS: tuple[int, ...] = (5, 69, 98, 70, 95, 64, 37, 11, 4, 32)


def make_classifier(seed: int) -> VotingClassifier:
    """DataPerf's fixed classifier, seeded with ``seed`` (soft vote of an RBF SVC with
    probability estimates and a LogisticRegression, both at scikit-learn's defaults)."""
    return VotingClassifier(
        estimators=[("svm", SVC(probability=True, random_state=seed)),
                    ("lr", LogisticRegression(random_state=seed))],
        voting="soft",
    )


@contextlib.contextmanager
def protocol_warnings_silenced() -> Iterator[None]:
    """Silence the warnings the fixed protocol triggers by design.

    ``SVC(probability=True)`` is deprecated in scikit-learn 1.9 but is the protocol,
    kept exact; a class never predicted has F1 0, which is what the protocol counts.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*`probability` parameter was deprecated",
                                category=FutureWarning)
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        yield


def fit_classifier(seed: int, train_x: np.ndarray, train_y: np.ndarray) -> VotingClassifier:
    """:func:`make_classifier` fitted on ``train_x`` [M, D] / ``train_y`` [M], rows as given."""
    model = make_classifier(seed)
    with protocol_warnings_silenced():
        model.fit(train_x, train_y)
    return model


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, *, labels: np.ndarray | None = None,
             sample_weight: np.ndarray | None = None) -> float:
    """DataPerf's metric: macro F1, a class with no prediction counting 0.

    Args:
        y_true, y_pred : np.ndarray [shape=(E,)] int. True and predicted class ids.
        labels: the classes averaged over (default: those in either array, as
            ``f1_score`` does).
        sample_weight : np.ndarray [shape=(E,)] or None. Per-clip weights (simulations
            that stand a small held-out set in for a differently mixed eval set).
    """
    with protocol_warnings_silenced():
        return float(f1_score(y_true, y_pred, average="macro", labels=labels,
                              sample_weight=sample_weight, zero_division=0))


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 of each class id 0..n_classes-1 (0 where undefined): np.ndarray [shape=(C,)]."""
    with protocol_warnings_silenced():
        return f1_score(y_true, y_pred, average=None, labels=np.arange(n_classes),
                        zero_division=0)


def clip_word(clip_id: str) -> str:
    """The word a clip id starts with (``"word/clip.wav"`` -> ``"word"``; ``""`` if none):
    how DataPerf's loader finds a nontarget's parquet file."""
    head, sep, _ = str(clip_id).partition("/")
    return head if sep else ""


def dataperf_training_order(ids: Sequence[str] | np.ndarray, labels: np.ndarray,
                            pool_rows: np.ndarray | None = None) -> np.ndarray:
    """The row order in which DataPerf's 2023 ``eval.py`` trains on a selection.

    What its harness does (``eval.py``: ``load_samples`` then ``create_dataset``):

    1. Target clips first, keyword by keyword in the order of the submission's
       ``targets`` mapping. Submissions are written with sorted keys, so that is
       sorted keyword order, which is class id order 1..K here.
    2. Within one keyword, the clips come in the row order of that keyword's
       embeddings parquet file (the loader filters the file with ``isin``), not in
       the order the submission lists them; an id listed twice appears once.
    3. Then the nontarget clips, grouped by the first path component of their id
       (``"word/clip.wav"`` -> ``word``, the parquet file it is read from): groups in
       the order their first clip appears in the submission's ``nontargets`` list,
       clips within a group in list order.

    Here the parquet file order is the pool's row order (``selection.dataperf_format``
    writes parquet files in samples.pb order and keeps a file's order on import), and
    the submission's list order is the order of the given rows.

    Args:
        ids : [M] str. Sample ids of the selection, in the submission's order.
        labels : np.ndarray [shape=(M,)] int. Class ids (0 nontarget, 1..K targets).
        pool_rows : np.ndarray [shape=(M,)] int or None. Each clip's row in the pool
            (the parquet order of step 2); None: the given order stands for it.

    Returns:
        np.ndarray [shape=(M,)] int64, a permutation of ``range(M)``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    m = len(labels)
    position = np.arange(m) if pool_rows is None else np.asarray(pool_rows, dtype=np.int64)
    targets = np.flatnonzero(labels > 0)
    targets = targets[np.lexsort((position[targets], labels[targets]))]
    nontargets = np.flatnonzero(labels == 0)

    def parquet_of(clip_id) -> str:
        parts = PurePosixPath(str(clip_id)).parts
        return parts[0] if parts else ""

    first_seen: dict[str, int] = {}
    for row in nontargets.tolist():
        first_seen.setdefault(parquet_of(ids[row]), len(first_seen))
    group = np.asarray([first_seen[parquet_of(ids[row])] for row in nontargets.tolist()],
                       dtype=np.int64)
    nontargets = nontargets[np.argsort(group, kind="stable")]
    return np.concatenate([targets, nontargets]).astype(np.int64)
