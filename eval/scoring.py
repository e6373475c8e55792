"""DataPerf's speech scoring protocol, as a function.

For each seed s in :data:`DATAPERF_SEEDS`, train DataPerf's classifier
(:func:`protos.dataperf.make_classifier`) on the training set, predict the eval set
and take the macro F1; the score is the mean over the seeds. Classes: nontarget = 0,
sorted target keywords = 1..K. The rules themselves live in :mod:`protos.dataperf`
(``DATAPERF_SEEDS`` and ``make_classifier`` stay importable from here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
from tqdm import tqdm

from protos.dataperf import (  # noqa: F401  (make_classifier: re-exported for users of eval)
    DATAPERF_SEEDS,
    fit_classifier,
    macro_f1,
    make_classifier,
    per_class_f1,
)


@dataclass
class ScoreResult:
    """Outcome of :func:`score`.

    Attributes:
        score: mean macro F1 over the seeds (the benchmark number).
        per_seed: ``{seed: macro F1}`` in seed order.
        per_class_f1: ``{label name: F1}``, each the mean over the seeds.
        label_names: class names, index = class id.
        train_counts / eval_counts: ``{label name: number of samples}``.
        confusion: [C][C] eval clip counts summed over the seeds, rows = true class id,
            columns = predicted class id.
        predictions: np.ndarray [shape=(S, E)] int64, each seed's predicted class per
            eval clip, or None (only with ``score(..., keep_predictions=True)``; not in
            :meth:`to_dict`).
    """

    score: float
    per_seed: dict[int, float]
    per_class_f1: dict[str, float]
    label_names: list[str]
    train_counts: dict[str, int]
    eval_counts: dict[str, int]
    confusion: list[list[int]] = field(default_factory=list)
    predictions: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready dict (seed keys become strings; predictions left out)."""
        result = asdict(replace(self, predictions=None))  # no deep copy of [S, E]
        del result["predictions"]
        result["per_seed"] = {str(seed): value for seed, value in self.per_seed.items()}
        return result


def score(
    train_x: np.ndarray,
    train_y: np.ndarray,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
    label_names: list[str] | None = None,
    seeds: tuple[int, ...] = DATAPERF_SEEDS,
    progress: bool = False,
    keep_predictions: bool = False,
) -> ScoreResult:
    """Score a training set with DataPerf's protocol.

    Args:
        train_x : np.ndarray [shape=(M, D)] float32. The selected training vectors.
        train_y : np.ndarray [shape=(M,)] int. Class ids, 0 = nontarget, 1..K targets.
        eval_x : np.ndarray [shape=(E, D)] float32. The eval set's vectors.
        eval_y : np.ndarray [shape=(E,)] int. The eval set's class ids.
        label_names: name of each class id; default ``["0", "1", ...]`` up to the largest id.
        seeds: the classifier seeds to average over (DataPerf's by default).
        progress: show a progress bar over the seeds (on stderr).
        keep_predictions: also return every seed's predictions (for reports).

    Returns:
        ScoreResult.

    Raises:
        ValueError: shapes disagree, or fewer than two classes to train on.
    """
    train_x = np.asarray(train_x, dtype=np.float32)
    eval_x = np.asarray(eval_x, dtype=np.float32)
    train_y = np.asarray(train_y, dtype=np.int64)
    eval_y = np.asarray(eval_y, dtype=np.int64)
    if train_x.ndim != 2 or eval_x.ndim != 2 or train_x.shape[1] != eval_x.shape[1]:
        raise ValueError(f"train_x {train_x.shape} and eval_x {eval_x.shape} must be [N, D] "
                         "with the same D")
    if train_y.shape != (len(train_x),) or eval_y.shape != (len(eval_x),):
        raise ValueError(f"labels do not match the vectors: train_y {train_y.shape} for "
                         f"{len(train_x)} rows, eval_y {eval_y.shape} for {len(eval_x)} rows")
    if len(np.unique(train_y)) < 2:
        raise ValueError("the training set needs at least two classes")
    n_classes = int(max(train_y.max(), eval_y.max())) + 1
    if label_names is None:
        label_names = [str(c) for c in range(n_classes)]
    label_names = list(label_names)
    if n_classes > len(label_names):
        raise ValueError(f"class id {n_classes - 1} has no name in {label_names}")

    per_seed: dict[int, float] = {}
    per_class = np.zeros((len(seeds), len(label_names)))
    n_names = len(label_names)
    confusion = np.zeros((n_names, n_names), dtype=np.int64)
    all_predictions = np.zeros((len(seeds), len(eval_y)), dtype=np.int64)
    for i, seed in enumerate(tqdm(seeds, desc="scoring seeds", unit="seed", disable=None if progress else True)):
        model = fit_classifier(seed, train_x, train_y)
        predicted = np.asarray(model.predict(eval_x), dtype=np.int64)
        all_predictions[i] = predicted
        np.add.at(confusion, (eval_y, predicted), 1)
        per_seed[int(seed)] = macro_f1(eval_y, predicted)
        per_class[i] = per_class_f1(eval_y, predicted, len(label_names))

    def counts(y: np.ndarray) -> dict[str, int]:
        return {name: int(c) for name, c in
                zip(label_names, np.bincount(y, minlength=len(label_names)))}

    return ScoreResult(
        score=float(np.mean(list(per_seed.values()))),
        per_seed=per_seed,
        per_class_f1={name: float(v) for name, v in zip(label_names, per_class.mean(axis=0))},
        label_names=label_names,
        train_counts=counts(train_y),
        eval_counts=counts(eval_y),
        confusion=confusion.tolist(),
        predictions=all_predictions if keep_predictions else None,
    )
