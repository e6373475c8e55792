"""Quality-then-medoids: class-balanced picks of clean, representative clips.

The floor ``tuned`` applies to pools it cannot split at all (every keyword spoken by
one speaker, or one recording's augmented copies): no simulation can say how such a
pick fares on other voices, so the pick hedges. Each class gets an even share of the
budget (as ``random``'s); within a class, clips that an out-of-fold classifier
assigns to another class are dropped as probable label noise, the half of the class
the classifier is surest of is kept (on a pool of augmented copies: the cleaner
copies), and the share is spent on its k-medoids, so the picks cover the class
instead of crowding its densest corner.

This is the recipe of the cleanlab-style baseline in ``bench/bench_selection.py``
(out-of-fold LogisticRegression probabilities, label issues dropped, the best-quality
half, k-medoids), without the ``cleanlab`` library: a label issue here is a clip whose
out-of-fold prediction is another class, and quality is the probability of its own
class (cleanlab's default "self-confidence").
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from selection.implementations.random_balanced import balanced_quota
from selection.pool import Pool


def k_medoids(x: np.ndarray, k: int, seed: int, iterations: int = 30) -> np.ndarray:
    """Indices of ``k`` medoids of ``x`` [n, D]: alternating assignment and medoid
    update, started from the members nearest seeded k-means centres.

    Returns:
        np.ndarray [shape=(min(k, n),)] int64, distinct.
    """
    n = len(x)
    if k >= n:
        return np.arange(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        centres = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x).cluster_centers_
    distances = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    medoids = np.unique(np.argmin(np.linalg.norm(x[:, None, :] - centres[None], axis=2), axis=0))
    if len(medoids) < k:  # two centres share a nearest member
        rest = np.setdiff1d(np.arange(n), medoids)
        medoids = np.concatenate([medoids, rest[:k - len(medoids)]])
    for _ in range(iterations):
        assign = np.argmin(distances[:, medoids], axis=1)
        updated = medoids.copy()
        for j in range(k):
            members = np.flatnonzero(assign == j)
            if len(members):
                updated[j] = members[np.argmin(distances[np.ix_(members, members)].sum(axis=1))]
        if (updated == medoids).all():
            break
        medoids = updated
    return medoids.astype(np.int64)


def out_of_fold_probabilities(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Class probabilities [N, C] of each row from a LogisticRegression that never saw it
    (stratified folds: 2-5, as many as the smallest class allows)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    sizes = np.bincount(y)
    folds = int(max(2, min(5, sizes[sizes > 0].min())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cross_val_predict(LogisticRegression(max_iter=500, random_state=seed), x, y,
                                 cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                 method="predict_proba")


def own_class_quality(labels: np.ndarray, probs: np.ndarray, classes: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Label issues (the out-of-fold prediction is another class) and quality (the
    probability of the row's own class) from ``probs`` [N, len(classes)]."""
    quality = probs[np.arange(len(labels)), np.searchsorted(classes, labels)]
    return classes[np.argmax(probs, axis=1)] != labels, quality


def quality_medoid_rows(pool: Pool, label_quality=own_class_quality) -> np.ndarray:
    """Pool rows: each class's even share of the budget, the k-medoids of its clean,
    best-quality half (see the module docstring). Deterministic for ``pool.seed``.

    Args:
        label_quality: ``(labels, probs, classes) -> (issue [N] bool, quality [N])``
            from out-of-fold probabilities (columns: ``classes``, the classes present).
    """
    x, y = np.asarray(pool.embeddings, dtype=np.float64), pool.labels
    sizes = pool.class_sizes()
    present = np.flatnonzero(sizes > 0)
    quota = balanced_quota(sizes, pool.train_size)
    if len(present) < 2 or sizes[present].min() < 2:
        # Nothing to cross-validate: medoids of each whole class.
        issue, quality = np.zeros(len(y), dtype=bool), np.zeros(len(y))
    else:
        issue, quality = label_quality(y, out_of_fold_probabilities(x, y, pool.seed), present)
    chosen = []
    for c, k in enumerate(quota):
        if k == 0:
            continue
        rows = np.flatnonzero((y == c) & ~issue)
        if len(rows) < k:  # the filter must not starve a class
            rows = np.flatnonzero(y == c)
        rows = rows[np.argsort(-quality[rows], kind="stable")][:max(int(k), len(rows) // 2)]
        chosen.append(rows[k_medoids(x[rows], int(k), pool.seed)])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)

