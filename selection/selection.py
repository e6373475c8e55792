"""THE participant hook: edit :func:`select` to plug in your own selection algorithm.

``python -m selection.main --input_samples samples.pb --outdir .`` reads the pool,
calls ``select(pool)`` and writes ``train.npz`` from what it returns. Everything
else (reading samples.pb, checking your answer, writing the file) happens around it.
"""

from __future__ import annotations

from selection import implementations
from selection.pool import Pool, SelectionError  # noqa: F401  (for participants)


def select(pool: Pool, algorithm: str = implementations.DEFAULT_ALGORITHM) -> dict[str, list[str]]:
    """Choose the training coreset: at most ``pool.train_size`` sample ids, per class.

    Args:
        pool: read-only view of samples.pb (a :class:`selection.pool.Pool`):

            - ``pool.ids`` : np.ndarray [shape=(N,)] str, unique sample ids;
            - ``pool.labels`` : np.ndarray [shape=(N,)] int64, class ids: 0 = nontarget,
              1..K = the target keywords;
            - ``pool.label_names`` : tuple[str, ...] of length K + 1, the name of each
              class id: ``("nontarget", *sorted target keywords)``, or
              ``("nontarget", "target")`` for a seed-schema samples.pb;
            - ``pool.embeddings`` : np.ndarray [shape=(N, D)] float32, row i is ``ids[i]``;
            - ``pool.keywords`` : np.ndarray [shape=(N,)] str, the word spoken in each clip
              (nontargets too; all ``""`` for a seed-schema samples.pb);
            - ``pool.speakers`` : np.ndarray [shape=(N,)] str, who spoke each clip (``""``
              where the pool does not record it);
            - ``pool.train_size`` : int, the budget (``--train_size``, DataPerf uses 25 / 60);
            - ``pool.seed`` : int, seed all randomness with it (``--seed``);
            - ``pool.metadata`` : protos.DatasetMetadata (language, backend, model_id, ...);
            - helpers: ``pool.indices_of(label)``, ``pool.class_sizes()``,
              ``pool.selection_from_indices(rows)`` (rows -> the dict below).
        algorithm: a name from ``selection.implementations.available()`` (``--algorithm``).
            Your own ``select`` may ignore it.

    Returns:
        ``{label_name: [sample_id, ...]}``: for each class name in ``pool.label_names``,
        the ids chosen from that class. Rules, checked by ``selection.main`` (which stops
        with one line naming the broken rule): every id is in the pool and listed under
        its own class; no id twice; at most ``pool.train_size`` ids in total, at least
        one; every class that has samples gets at least one when
        ``train_size >= number of classes``. Classes may be omitted or map to ``[]``.
        Return ids, never vectors: ``train.npz`` is built from the pool's own rows.

    Raises:
        SelectionError: the pool cannot support a selection (too small, ...).

    Default: ``selection.implementations.DEFAULT_ALGORITHM`` ("tuned": typical-but-diverse
    picks per class, label-noise filtering, and class budgets chosen by simulating
    DataPerf's protocol on the pool). "crossval" is DataPerf's nested cross-validation
    baseline; "random" draws a class-balanced random subset.
    """
    return implementations.get(algorithm)(pool)
