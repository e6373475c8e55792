"""``random``: a class-balanced random coreset.

The budget is shared as evenly as possible among the classes (nontarget and each
target keyword); a class with fewer samples than its share gives the rest back to
the others. Within a class, samples are drawn uniformly without replacement.
"""

from __future__ import annotations

import numpy as np

from selection.pool import Pool


def balanced_quota(class_sizes: np.ndarray, budget: int) -> np.ndarray:
    """Split ``budget`` as evenly as possible over classes, capped by their sizes.

    Args:
        class_sizes : np.ndarray [shape=(C,)] int. Samples available per class.
        budget: total number of samples to allocate.

    Returns:
        np.ndarray [shape=(C,)] int64, summing to ``min(budget, class_sizes.sum())``.
        When the budget does not divide evenly, lower class ids get the extra one.
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    quota = np.zeros_like(sizes)
    remaining = min(int(budget), int(sizes.sum()))
    while remaining > 0:
        open_classes = np.flatnonzero(quota < sizes)
        share = remaining // len(open_classes)
        if share == 0:
            quota[open_classes[:remaining]] += 1
            break
        grant = np.minimum(share, sizes[open_classes] - quota[open_classes])
        quota[open_classes] += grant
        remaining -= int(grant.sum())
    return quota


def select(pool: Pool) -> dict[str, list[str]]:
    """Class-balanced uniform sample of ``pool.train_size`` ids, seeded by ``pool.seed``."""
    rng = np.random.default_rng(pool.seed)
    quota = balanced_quota(pool.class_sizes(), pool.train_size)
    chosen = [rng.choice(pool.indices_of(class_id), size=int(k), replace=False)
              for class_id, k in enumerate(quota) if k > 0]
    return pool.selection_from_indices(np.concatenate(chosen) if chosen else [])
