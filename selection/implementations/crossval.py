"""``crossval``: DataPerf's baseline selection, nested cross-validation over subsets.

60% of the budget goes to targets, the rest to nontargets. Ten stratified shuffle
splits of the target samples (stratified by keyword, so each subset keeps the pool's
keyword proportions) are crossed with ten shuffle splits of the nontarget samples;
for each of the 100 pairs the DataPerf classifier is trained on the pair's subsets
and scored (macro F1) on the samples left out of them. The best-scoring pair is the
selection; the first one wins ties.

Cost: 100 fits on ``train_size`` samples, each scored on the rest of the pool.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from tqdm import tqdm

from protos.dataperf import fit_classifier, macro_f1
from selection.pool import Pool, SelectionError

TARGET_FRACTION = 0.6
N_SPLITS = 10


def _subsets(labels: np.ndarray, size: int, seed: int, stratify: bool, n_splits: int):
    """``n_splits`` (train, held-out) index pairs into ``labels``, train of ``size``."""
    n = len(labels)
    if size >= n:
        return [(np.arange(n), np.arange(0))]
    if stratify:
        n_classes = len(np.unique(labels))
        if size < n_classes or n - size < n_classes:
            raise SelectionError(
                f"crossval: cannot split {n} target samples of {n_classes} keywords into "
                f"a stratified subset of {size}; use a larger --train_size or "
                "--algorithm random")
        splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=size, random_state=seed)
    else:
        splitter = ShuffleSplit(n_splits=n_splits, train_size=size, random_state=seed)
    try:
        return list(splitter.split(np.zeros((n, 1)), labels))
    except ValueError as exc:  # e.g. a keyword with a single sample cannot be stratified
        raise SelectionError(f"crossval: {exc}; use --algorithm random") from None


def select(pool: Pool, n_splits: int | None = None, verbose: bool = True) -> dict[str, list[str]]:
    """DataPerf's nested cross-validation baseline (see the module docstring).

    Args:
        pool: the pool (``pool.train_size`` budget, ``pool.seed``).
        n_splits: subsets tried on each side; default ``N_SPLITS`` (DataPerf: 10, so
            100 fits in all).
        verbose: a line per stage on stderr, and a progress bar when stderr is a terminal.
    """
    return pool.selection_from_indices(best_rows(pool, pool.seed, n_splits, verbose))


def best_rows(pool: Pool, seed: int, n_splits: int | None = None, verbose: bool = False) -> np.ndarray:
    """The pool rows of the best subset of :func:`select`'s search, run with ``seed``.

    Raises:
        SelectionError: a pool without targets or nontargets, or a budget too small.
    """
    n_splits = N_SPLITS if n_splits is None else n_splits
    target_rows = np.flatnonzero(pool.labels > 0)
    nontarget_rows = np.flatnonzero(pool.labels == 0)
    if len(target_rows) == 0 or len(nontarget_rows) == 0:
        raise SelectionError("crossval needs both target and nontarget samples in the pool")
    target_budget = int(pool.train_size * TARGET_FRACTION)
    nontarget_budget = pool.train_size - target_budget
    if target_budget < 1 or nontarget_budget < 1:
        raise SelectionError(
            f"crossval: train_size={pool.train_size} is too small to hold both targets "
            "and nontargets; use --train_size 2 or more")
    target_labels = pool.labels[target_rows]
    target_splits = _subsets(target_labels, target_budget, seed, True, n_splits)
    nontarget_splits = _subsets(np.zeros(len(nontarget_rows), dtype=np.int64),
                                nontarget_budget, seed, False, n_splits)

    best_score, best = -1.0, None
    pairs = list(itertools.product(target_splits, nontarget_splits))
    if verbose and len(pairs) > 1:
        print(f"crossval: training DataPerf's classifier on {len(pairs)} candidate subsets of "
              f"{pool.train_size} clips, each scored on the rest of the pool", file=sys.stderr,
              flush=True)
    for (t_train, t_held), (n_train, n_held) in tqdm(
            pairs, desc="crossval subsets", unit="fit",
            disable=True if len(pairs) == 1 or not verbose else None):
        train_rows = np.concatenate([target_rows[t_train], nontarget_rows[n_train]])
        held_rows = np.concatenate([target_rows[t_held], nontarget_rows[n_held]])
        if len(pairs) == 1 or len(held_rows) == 0:
            best = train_rows
            break
        # The classifier DataPerf scores with, so the subsets are chosen for it.
        model = fit_classifier(seed, pool.embeddings[train_rows], pool.labels[train_rows])
        predicted = model.predict(pool.embeddings[held_rows])
        score = macro_f1(pool.labels[held_rows], predicted)
        if score > best_score:
            best_score, best = score, train_rows
    if verbose and best_score >= 0:
        print(f"crossval: best subset scored macro F1 {best_score:.4f} on its held-out clips",
              file=sys.stderr)
    return best
