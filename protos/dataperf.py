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
- score: the mean of the metric over :data:`DATAPERF_SEEDS`.

scikit-learn and numpy only (no TensorFlow); imported on first use from ``protos``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

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
