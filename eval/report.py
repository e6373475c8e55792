"""A self-contained HTML report of one scoring run (``python -m eval ... --report DIR``).

``DIR/index.html`` holds everything: PNG pictures embedded as base64 (matplotlib, Agg
backend), no scripts, no network. It shows why a selection scored what it did:

- a short text summary (score, spread over seeds, the weakest class and where its
  clips went, where false alarms came from, what the training set looks like);
- the confusion matrix (eval clips, mean over the classifier seeds);
- per-class F1 with precision and recall, and the training clips per class;
- a 2-D map of the eval embeddings (t-SNE when small enough, else PCA; seeded),
  coloured by class, eval clips the classifier got wrong ringed, and the selected
  training clips drawn as large outlined markers;
- the score of every classifier seed.

matplotlib is imported here only; ``python -m eval`` without ``--report`` never loads it.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protos.atomic import atomic_write_text
from protos.errors import EnvironmentProblem

#: Points (eval + train) on a t-SNE map at most; eval clips are subsampled above it.
TSNE_MAX_POINTS = 1500
#: Eval clips drawn on the map at most (a seeded uniform draw above it).
MAP_MAX_POINTS = 6000
NONTARGET_COLOUR = "#9e9e9e"


class ReportError(EnvironmentProblem):
    """The report cannot be made (matplotlib missing, output not writable): exit status 3."""


def require_matplotlib() -> None:
    """Fail early, with one line, when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError("--report needs matplotlib, which is not installed: "
                          "pip install matplotlib (or the 'pipeline' extra)") from None


@dataclass
class ReportInputs:
    """What the report shows.

    Attributes:
        result: eval.scoring.ScoreResult with ``predictions`` [S, E].
        label_names: class names, index = class id.
        train_x : np.ndarray [shape=(M, D)] float32; train_y : [M] int64.
        train_ids : np.ndarray [shape=(M,)] str or None.
        eval_x : np.ndarray [shape=(E, D)] float32; eval_y : [E] int64.
        eval_keywords : np.ndarray [shape=(E,)] str (word of each eval clip, may be "").
        title: one line naming the run (files, algorithm).
        facts: ``[(name, value)]`` shown in the header table.
    """

    result: object
    label_names: list[str]
    train_x: np.ndarray
    train_y: np.ndarray
    train_ids: np.ndarray | None
    eval_x: np.ndarray
    eval_y: np.ndarray
    eval_keywords: np.ndarray
    title: str
    facts: list[tuple[str, str]]


def class_colours(n_classes: int) -> list[str]:
    """Nontarget grey, targets from a qualitative palette (tab10, then tab20)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["tab10" if n_classes - 1 <= 10 else "tab20"]
    targets = [to_hex(cmap(i % cmap.N)) for i in range(n_classes - 1)]
    # tab10's grey (index 7) would look like nontarget: skip it.
    if n_classes - 1 > 7 and cmap.N == 10:
        targets = [to_hex(cmap(i)) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]
        targets = [targets[i % len(targets)] for i in range(n_classes - 1)]
    return [NONTARGET_COLOUR, *targets]


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def precision_recall(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision and recall from a [C, C] confusion matrix (0 where undefined)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    return precision, recall


def format_count(value: float) -> str:
    """A clip count that may be a mean over seeds: whole numbers as they are, others
    with one decimal, and a count above zero never shown as "0" ("<0.1")."""
    value = float(value)
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):d}"
    if value < 0.05:
        return "<0.1"
    return f"{value:.1f}"


def format_share(part: float, whole: float) -> str:
    """``part / whole`` as a percentage; a share above zero never shown as "0%"."""
    if whole <= 0:
        return "0%"
    share = part / whole
    if 0 < share < 0.005:
        return "<1%"
    if share < 1 and round(share * 100) == 100:
        return ">99%"
    return f"{share:.0%}"


def confusion_cell_labels(confusion: np.ndarray, n_seeds: int) -> list[list[str]]:
    """The text of each confusion-matrix cell: mean clips per seed and share of the row.

    Args:
        confusion : np.ndarray [shape=(C, C)] int. Clip counts summed over ``n_seeds``.

    Returns:
        [C][C] strings, ``"COUNT\nSHARE"``, or ``""`` for a cell no seed ever used. The
        count and the share come from the same mean, so they agree: a cell never reads
        "0" beside "4%".
    """
    mean = np.asarray(confusion, dtype=np.float64) / max(n_seeds, 1)
    rows = mean.sum(axis=1)
    return [[f"{format_count(mean[i, j])}\n{format_share(mean[i, j], rows[i])}"
             if mean[i, j] > 0 else "" for j in range(mean.shape[1])]
            for i in range(mean.shape[0])]


def figure_confusion(confusion: np.ndarray, names: list[str], n_seeds: int) -> str:
    import matplotlib.pyplot as plt

    mean = np.asarray(confusion, dtype=np.float64) / max(n_seeds, 1)
    rows = mean.sum(axis=1, keepdims=True)
    share = np.divide(mean, rows, out=np.zeros_like(mean), where=rows > 0)
    labels = confusion_cell_labels(confusion, n_seeds)
    size = 1.5 + 0.75 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            if labels[i][j]:
                ax.text(j, i, labels[i][j], ha="center", va="center",
                        fontsize=8, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (eval clips)")
    ax.set_title(f"Confusion matrix: eval clips per seed (mean over {n_seeds} seeds)\n"
                 "and share of the true class")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    return _png(fig)


def figure_per_class(names, f1, precision, recall, train_counts, colours) -> str:
    import matplotlib.pyplot as plt

    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 4))
    ax.bar(x - 0.27, f1, 0.27, color=colours, edgecolor="black", label="F1")
    ax.bar(x, precision, 0.27, color=colours, alpha=0.55, hatch="//", edgecolor="black",
           label="precision")
    ax.bar(x + 0.27, recall, 0.27, color=colours, alpha=0.3, hatch="..", edgecolor="black",
           label="recall")
    for xi, value, count in zip(x, f1, train_counts):
        ax.text(xi - 0.27, value + 0.02, f"{value:.2f}", ha="center", fontsize=8)
        ax.text(xi, -0.1, f"{count} train", ha="center", fontsize=8, color="#444")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(-0.14, 1.1)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("mean over seeds")
    ax.set_title("Per-class F1, precision and recall (with training clips per class)")
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    return _png(fig)


def figure_seeds(per_seed: dict[int, float], mean: float) -> str:
    import matplotlib.pyplot as plt

    seeds = list(per_seed)
    values = [per_seed[s] for s in seeds]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(range(len(seeds)), values, color="#4c72b0")
    ax.axhline(mean, color="#c44e52", linestyle="--", label=f"score {mean:.4f}")
    for i, value in enumerate(values):
        ax.text(i, value + 0.01, f"{value:.3f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(seeds)), [str(s) for s in seeds])
    ax.set_xlabel("classifier random_state (DataPerf's seeds)")
    ax.set_ylabel("macro F1")
    low = min(values + [mean])
    ax.set_ylim(max(0.0, low - 0.1), min(1.05, max(values + [mean]) + 0.08))
    ax.set_title("Score per seed")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def project_2d(eval_x: np.ndarray, train_x: np.ndarray, method: str = "auto",
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """2-D coordinates of eval and train vectors in one shared map.

    Args:
        eval_x : np.ndarray [shape=(E, D)]; train_x : [M, D].
        method: "pca", "tsne" or "auto" (t-SNE up to :data:`TSNE_MAX_POINTS` points, else
            PCA); the report itself always passes "pca" or "tsne", on a subset
            (:func:`map_subset`) small enough for t-SNE.
        seed: seeds t-SNE.

    Returns:
        (eval_xy [E, 2], train_xy [M, 2], name of the method used).
    """
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    # t-SNE's OpenMP threads oversubscribe a busy machine badly (10x slower measured on
    # 2 shared cores); one thread is fast enough at these sizes.
    with threadpool_limits(1):
        return _project_2d(eval_x, train_x, method, seed, PCA)


def _project_2d(eval_x, train_x, method, seed, PCA):
    both = np.concatenate([eval_x, train_x]).astype(np.float64)
    n = len(both)
    use_tsne = method == "tsne" or (method == "auto" and n <= TSNE_MAX_POINTS)
    if use_tsne and n >= 5:
        from sklearn.manifold import TSNE

        reduced = PCA(n_components=min(50, n, both.shape[1]), random_state=seed).fit_transform(both)
        xy = TSNE(n_components=2, init="pca", random_state=seed,
                  perplexity=float(min(30.0, (n - 1) / 3.0))).fit_transform(reduced)
        name = "t-SNE (after PCA to 50 dims)"
    else:
        # Fit on eval only: the map is of the data scored, the train clips placed on it.
        pca = PCA(n_components=min(2, both.shape[1]), random_state=seed).fit(eval_x)
        xy = pca.transform(both)
        if xy.shape[1] == 1:
            xy = np.column_stack([xy[:, 0], np.zeros(n)])
        ratio = pca.explained_variance_ratio_.sum()
        name = f"PCA (2 components, {ratio:.0%} of the eval variance)"
    return xy[:len(eval_x)], xy[len(eval_x):], name


def map_subset(eval_y: np.ndarray, n_train: int, max_points: int, seed: int = 0) -> np.ndarray:
    """Eval rows drawn on the map: all of them if they fit, else every keyword clip (up to
    half the room) plus a seeded uniform draw of nontargets.

    eval.pb is mostly nontargets; a uniform draw would leave a handful of dots per
    keyword, and the keywords are what the map is for.

    Returns:
        np.ndarray [shape=(<= max_points - n_train,)] int64, sorted.
    """
    room = max(max_points - n_train, 2)
    rows = np.arange(len(eval_y))
    if len(rows) <= room:
        return rows
    rng = np.random.default_rng(seed)
    targets, nontargets = rows[eval_y > 0], rows[eval_y == 0]
    if len(targets) > room // 2:
        targets = rng.choice(targets, room // 2, replace=False)
    n_rest = min(len(nontargets), room - len(targets))
    nontargets = rng.choice(nontargets, n_rest, replace=False)
    return np.sort(np.concatenate([targets, nontargets]))


def figure_map(inputs: ReportInputs, wrong: np.ndarray, colours: list[str], method: str) -> tuple[str, str]:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = inputs.label_names
    shown = map_subset(inputs.eval_y, len(inputs.train_y),
                       MAP_MAX_POINTS if method == "pca" else TSNE_MAX_POINTS)
    eval_xy, train_xy, used = project_2d(inputs.eval_x[shown], inputs.train_x,
                                         "pca" if method == "pca" else "tsne")
    eval_y, wrong_shown = inputs.eval_y[shown], wrong[shown]
    fig, ax = plt.subplots(figsize=(9, 7.5))
    # Layers, bottom to top: nontarget eval clips, the selected training clips, the
    # keyword eval clips (what the map is for: never hidden under a training marker),
    # then the rings of eval clips most seeds got wrong.
    sel = eval_y == 0
    ax.scatter(eval_xy[sel, 0], eval_xy[sel, 1], s=8, c=colours[0], alpha=0.35,
               linewidths=0, zorder=1)
    for c in range(len(names)):
        sel = inputs.train_y == c
        ax.scatter(train_xy[sel, 0], train_xy[sel, 1], s=150, c=colours[c],
                   marker="*" if c else "P", edgecolors="black", linewidths=1.0, alpha=0.85,
                   zorder=2)
    for c in range(1, len(names)):
        sel = eval_y == c
        ax.scatter(eval_xy[sel, 0], eval_xy[sel, 1], s=30, c=colours[c], alpha=0.95,
                   edgecolors="white", linewidths=0.5, zorder=3)
    ax.scatter(eval_xy[wrong_shown, 0], eval_xy[wrong_shown, 1], s=48, facecolors="none",
               edgecolors="#d62728", linewidths=0.9, zorder=4)
    handles = [Line2D([], [], marker="o", linestyle="", color=colours[c], label=names[c],
                      markersize=5 if c == 0 else 7) for c in range(len(names))]
    handles += [
        Line2D([], [], marker="*", linestyle="", markersize=13, markerfacecolor="white",
               markeredgecolor="black", label="selected training clip (target)"),
        Line2D([], [], marker="P", linestyle="", markersize=11, markerfacecolor=NONTARGET_COLOUR,
               markeredgecolor="black", label="selected training clip (nontarget)"),
        Line2D([], [], marker="o", linestyle="", markersize=7, markerfacecolor="none",
               markeredgecolor="#d62728", label="eval clip misclassified (most seeds)"),
    ]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    subset = ""
    if len(shown) < len(inputs.eval_y):
        n_targets = int((eval_y > 0).sum())
        subset = (f"\n{len(shown)} of {len(inputs.eval_y)} eval clips: {n_targets} keyword "
                  f"clips, {len(shown) - n_targets} nontargets drawn at random")
    ax.set_title(f"Eval embeddings by class, with the training selection: {used}{subset}")
    return _png(fig), used


def summary_lines(inputs: ReportInputs, precision: np.ndarray, recall: np.ndarray) -> list[str]:
    """Plain-language observations, most important first.

    Every number in a sentence comes from the same confusion matrix (clips summed over
    the seeds, shown as the mean per seed), so the sentences agree with each other and
    with the table: a class with recall below 1 is never said to have missed "0" clips.
    """
    r = inputs.result
    names = inputs.label_names
    seeds = list(r.per_seed.values())
    n_seeds = max(len(seeds), 1)
    summed = np.asarray(r.confusion, dtype=np.float64)
    confusion = summed / n_seeds
    per_seed = "" if n_seeds == 1 else " per seed"
    lines = [f"Score {r.score:.4f}: macro F1 over {len(names)} classes, mean of "
             f"{len(seeds)} classifier seeds (range {min(seeds):.4f} to {max(seeds):.4f})."]
    f1 = np.array([r.per_class_f1[n] for n in names])
    worst = int(np.argmin(f1))
    row = confusion[worst].copy()
    n_clips = summed[worst].sum() / n_seeds
    lost = (summed[worst].sum() - summed[worst, worst]) / n_seeds
    if n_clips == 0:
        lines.append(f"Weakest class: {names[worst]!r} (F1 {f1[worst]:.3f}): the eval set has "
                     "no clips of it.")
    elif lost > 0:
        row[worst] = 0
        where = int(np.argmax(row))
        lines.append(f"Weakest class: {names[worst]!r} (F1 {f1[worst]:.3f}, precision "
                     f"{precision[worst]:.3f}, recall {recall[worst]:.3f}); "
                     f"{format_count(lost)} of its {format_count(n_clips)} eval clips were "
                     f"missed{per_seed} ({format_share(lost, n_clips)}), most often predicted "
                     f"as {names[where]!r} ({format_count(row[where])}{per_seed}).")
    elif precision[worst] < 1:
        lines.append(f"Weakest class: {names[worst]!r} (F1 {f1[worst]:.3f}): all its "
                     f"{format_count(n_clips)} eval clips were found; its F1 is lost to false "
                     f"alarms (precision {precision[worst]:.3f}).")
    else:
        lines.append(f"Weakest class: {names[worst]!r} (F1 {f1[worst]:.3f}): every one of its "
                     f"{format_count(n_clips)} eval clips was found, with no false alarm.")
    false_alarms = confusion[0, 1:]
    if len(false_alarms) and false_alarms.sum() > 0:
        top = int(np.argmax(false_alarms)) + 1
        n_false = summed[0, 1:].sum() / n_seeds
        n_nontarget = summed[0].sum() / n_seeds
        lines.append(f"False alarms: {format_count(n_false)} of "
                     f"{format_count(n_nontarget)} nontarget eval clips{per_seed} "
                     f"({format_share(n_false, n_nontarget)}) were taken for "
                     f"a keyword, most often {names[top]!r} "
                     f"({format_count(false_alarms[top - 1])}{per_seed}). Every false alarm "
                     "lowers that "
                     "keyword's precision.")
    counts = np.bincount(inputs.train_y, minlength=len(names))
    parts = ", ".join(f"{names[c]} {counts[c]}" for c in range(len(names)))
    lines.append(f"Training set: {len(inputs.train_y)} clips ({parts}).")
    if inputs.train_ids is not None:
        words = {str(i).partition("/")[0] for i, y in zip(inputs.train_ids, inputs.train_y)
                 if y == 0 and "/" in str(i)}
        eval_words = {w for w, y in zip(inputs.eval_keywords.tolist(), inputs.eval_y.tolist())
                      if y == 0 and w}
        if words:
            seen = len(words & eval_words)
            note = (f"; {seen} of the {len(eval_words)} nontarget words in the eval set"
                    if eval_words else "")
            lines.append(f"The nontarget training clips cover {len(words)} distinct words{note}.")
    return lines


def render_html(inputs: ReportInputs, method: str = "tsne") -> str:
    """The whole report page as one HTML string."""
    import matplotlib

    matplotlib.use("Agg")
    r = inputs.result
    names = inputs.label_names
    colours = class_colours(len(names))
    confusion = np.asarray(r.confusion)
    precision, recall = precision_recall(confusion)
    f1 = [r.per_class_f1[n] for n in names]
    train_counts = np.bincount(inputs.train_y, minlength=len(names))
    eval_counts = np.bincount(inputs.eval_y, minlength=len(names))
    if r.predictions is not None and len(r.predictions):
        # "Wrong" = most seeds predicted another class.
        wrong = (r.predictions != inputs.eval_y[None, :]).mean(axis=0) > 0.5
    else:
        wrong = np.zeros(len(inputs.eval_y), dtype=bool)
    images = {
        "confusion": figure_confusion(confusion, names, len(r.per_seed)),
        "per_class": figure_per_class(names, f1, precision, recall, train_counts, colours),
        "seeds": figure_seeds(r.per_seed, r.score),
    }
    images["map"], used = figure_map(inputs, wrong, colours, method)
    esc = html.escape
    facts = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in inputs.facts)
    table_rows = "".join(
        f"<tr><td><span class='swatch' style='background:{colours[c]}'></span>{esc(names[c])}"
        f"</td><td>{f1[c]:.4f}</td><td>{precision[c]:.4f}</td><td>{recall[c]:.4f}</td>"
        f"<td>{train_counts[c]}</td><td>{eval_counts[c]}</td></tr>" for c in range(len(names)))
    summary = "".join(f"<li>{esc(line)}</li>" for line in summary_lines(inputs, precision, recall))

    def img(key: str, alt: str) -> str:
        return f"<img alt='{esc(alt)}' src='data:image/png;base64,{images[key]}'>"

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Selection report: {r.score:.4f}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 24px auto; padding: 0 16px; color: #222; }}
h1 {{ font-size: 1.5em; margin-bottom: 0.2em; }} h2 {{ margin-top: 1.6em; font-size: 1.2em; }}
.score {{ font-size: 2.4em; font-weight: 600; color: #1f4e79; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
th, td {{ border: 1px solid #ccc; padding: 3px 9px; text-align: left; font-size: 0.92em; }}
th {{ background: #f2f2f2; }}
img {{ max-width: 100%; border: 1px solid #e3e3e3; margin: 6px 0; }}
.swatch {{ display: inline-block; width: 11px; height: 11px; margin-right: 6px;
          border: 1px solid #555; vertical-align: middle; }}
.note {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>Selection report</h1>
<div class="note">{esc(inputs.title)}</div>
<div class="score">{r.score:.4f}</div>
<div class="note">macro F1, DataPerf's protocol: soft-voting SVC(probability=True) +
LogisticRegression trained on the selection, scored on the eval set, mean over seeds.</div>
<h2>Summary</h2><ul>{summary}</ul>
<table>{facts}</table>
<h2>Per class</h2>
<table><tr><th>class</th><th>F1</th><th>precision</th><th>recall</th><th>train clips</th>
<th>eval clips</th></tr>{table_rows}</table>
{img("per_class", "per-class F1, precision and recall")}
<h2>Confusion matrix</h2>
<p class="note">Rows: the true class of eval clips; columns: what the classifier said.
Each cell: eval clips per classifier seed (the mean over the seeds, so it can be a
fraction) and their share of the row. Off-diagonal cells in the nontarget row are false
alarms; in a keyword's row, misses.</p>
{img("confusion", "confusion matrix")}
<h2>Where the selection sits</h2>
<p class="note">Each dot is an eval clip ({esc(used)}); stars (targets) and crosses
(nontargets) with black outlines are the selected training clips; keyword eval clips
are drawn on top of them (white-edged dots), nontarget eval clips underneath. A class whose eval
clips spread where no training clip of its own sits, or where other classes' training
clips sit, is the class that loses F1. Red rings mark eval clips most seeds got wrong.</p>
{img("map", "2-D map of the eval embeddings with the selected training clips")}
<h2>Score per seed</h2>
{img("seeds", "score per classifier seed")}
</body></html>
"""


def write_report(report_dir: Path, inputs: ReportInputs, method: str = "tsne") -> Path:
    """Write ``report_dir/index.html`` atomically; return its path.

    Raises:
        ReportError: matplotlib missing, or the directory cannot be written.
    """
    require_matplotlib()
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        path = report_dir / "index.html"
        atomic_write_text(path, render_html(inputs, method))
    except OSError as exc:
        raise ReportError(f"cannot write the report to {report_dir}: {exc}") from None
    return path
