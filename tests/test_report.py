"""``python -m eval ... --report DIR``: a self-contained HTML page with its pictures."""

from __future__ import annotations

import base64
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from eval.cli import EXIT_ENVIRONMENT, main  # noqa: E402
from eval.scoring import score  # noqa: E402
from protos import write_samples  # noqa: E402
from protos.synthetic import random_sample_set  # noqa: E402

TARGETS = ["kilo", "alfa", "echo"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_task")
    write_samples(root / "samples.pb", random_sample_set(
        200, dim=12, target_keywords=TARGETS, seed=31, spread=2.0))
    write_samples(root / "eval.pb", random_sample_set(
        150, dim=12, target_keywords=TARGETS, seed=32, spread=2.0, role="eval",
        id_prefix="eval/"))
    subprocess.run([sys.executable, "-m", "selection.main", "--input_samples",
                    str(root / "samples.pb"), f"--outdir={root}", "--algorithm", "random",
                    "--train_size", "20"], check=True, capture_output=True)
    return root


@pytest.mark.parametrize("projection", ["pca", "tsne"])
def test_report_has_every_picture_and_class_and_needs_nothing_external(task, tmp_path, capsys,
                                                                       projection):
    out = tmp_path / "report"
    code = main(["--eval_file", str(task / "eval.pb"), "--train_file", str(task / "train.npz"),
                 "--samples_file", str(task / "samples.pb"), "--no_progress",
                 "--report", str(out), "--report_projection", projection])
    stdout = capsys.readouterr().out
    assert code == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert f"report: {out / 'index.html'}" in stdout

    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 4  # per-class, confusion matrix, map, per seed
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    for name in ["nontarget", *TARGETS]:
        assert name in page
    for section in ("Confusion matrix", "Per class", "Score per seed", "Summary"):
        assert section in page
    # The score printed by the CLI is the one the page shows.
    printed = stdout.strip().splitlines()[-2].rsplit(" ", 1)[-1]
    assert f'<div class="score">{printed}</div>' in page
    # Self-contained: no scripts, no remote resources.
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)=['\"]https?://", page)
    assert ("t-SNE" in page) == (projection == "tsne")


def test_summary_names_the_weakest_class_and_false_alarms(task, tmp_path, capsys):
    """A keyword with no training clip of its own loses: the summary must say which."""
    with np.load(task / "train.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    # Keep one 'echo' clip (every class needs one) and drop the rest.
    echo = int(arrays["label_names"].tolist().index("echo"))
    keep = np.flatnonzero(arrays["train_y"] != echo).tolist() + [
        int(np.flatnonzero(arrays["train_y"] == echo)[0])]
    for name in ("train_x", "train_y", "train_ids"):
        arrays[name] = arrays[name][keep]
    np.savez(tmp_path / "train.npz", **arrays)
    code = main(["--eval_file", str(task / "eval.pb"), "--train_file",
                 str(tmp_path / "train.npz"), "--no_progress", "--report", str(tmp_path / "r"),
                 "--report_projection", "pca"])
    capsys.readouterr()
    assert code == 0
    page = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    summary = page.split("<h2>Summary</h2>")[1].split("</ul>")[0]
    assert "Weakest class" in summary and "False alarms" in summary
    assert "Training set: " in summary and "echo 1" in summary


def test_scoring_keeps_what_the_report_needs():
    rng = np.random.default_rng(0)
    train_x, eval_x = rng.standard_normal((30, 5)), rng.standard_normal((40, 5))
    train_y, eval_y = np.arange(30) % 3, np.arange(40) % 3
    result = score(train_x, train_y, eval_x, eval_y, seeds=(1, 2), keep_predictions=True)
    confusion = np.asarray(result.confusion)
    assert confusion.shape == (3, 3) and confusion.sum() == 2 * 40
    assert result.predictions.shape == (2, 40)
    np.testing.assert_array_equal(confusion.sum(axis=1), 2 * np.bincount(eval_y))
    assert "predictions" not in result.to_dict()
    assert score(train_x, train_y, eval_x, eval_y, seeds=(1,)).predictions is None


def test_no_report_never_loads_matplotlib(task):
    code = (f"import sys; from eval.cli import main; "
            f"rc = main(['--eval_file', {str(task / 'eval.pb')!r}, '--train_file', "
            f"{str(task / 'train.npz')!r}, '--no_progress']); "
            f"assert 'matplotlib' not in sys.modules, 'matplotlib loaded'; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_missing_matplotlib_is_one_clear_line(task, tmp_path):
    code = f"""
import sys
class NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
sys.meta_path.insert(0, NoMatplotlib())
from eval.cli import main
sys.exit(main(['--eval_file', {str(task / 'eval.pb')!r}, '--train_file',
               {str(task / 'train.npz')!r}, '--no_progress', '--report', {str(tmp_path / 'r')!r}]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == EXIT_ENVIRONMENT
    assert result.stderr.count("\n") == 1 and "matplotlib" in result.stderr
    assert result.stdout == ""  # refused before scoring
    assert not (tmp_path / "r").exists()


# ------------------------------------------------- sentences and cells on constructed matrices

from eval.report import (  # noqa: E402
    ReportInputs,
    confusion_cell_labels,
    precision_recall,
    summary_lines,
)
from eval.scoring import ScoreResult  # noqa: E402


def constructed_inputs(confusion: np.ndarray, n_seeds: int) -> tuple[ReportInputs, np.ndarray,
                                                                      np.ndarray]:
    """Report inputs for a confusion matrix summed over ``n_seeds`` (no classifier run)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    names = ["nontarget", *[f"kw{i}" for i in range(1, len(confusion))]]
    precision, recall = precision_recall(confusion)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros_like(precision), where=precision + recall > 0)
    eval_y = np.repeat(np.arange(len(names)), confusion.sum(axis=1) // n_seeds)
    result = ScoreResult(score=float(f1.mean()), per_seed={s: float(f1.mean()) for s in
                                                           range(n_seeds)},
                         per_class_f1=dict(zip(names, f1.tolist())), label_names=names,
                         train_counts={}, eval_counts={}, confusion=confusion.tolist())
    inputs = ReportInputs(result=result, label_names=names, train_x=np.zeros((len(names), 2)),
                          train_y=np.arange(len(names)), train_ids=None,
                          eval_x=np.zeros((len(eval_y), 2)), eval_y=eval_y,
                          eval_keywords=np.full(len(eval_y), ""), title="t", facts=[])
    return inputs, precision, recall


def weakest_sentence(confusion, n_seeds) -> tuple[str, float]:
    inputs, precision, recall = constructed_inputs(confusion, n_seeds)
    line = next(x for x in summary_lines(inputs, precision, recall) if x.startswith("Weakest"))
    f1 = [inputs.result.per_class_f1[n] for n in inputs.label_names]
    return line, float(recall[int(np.argmin(f1))])


def test_the_issue_case_reads_true():
    """12 eval clips of a keyword, 10 seeds, 5 of the 120 predictions missed (recall
    0.958): the summary once said "0 of its 12 eval clips were missed"."""
    confusion = np.array([[300, 0], [5, 115]])  # rows: 30 nontarget clips, 12 keyword clips
    line, recall = weakest_sentence(confusion, 10)
    assert recall == pytest.approx(115 / 120)
    assert "recall 0.958" in line
    assert "0.5 of its 12 eval clips were missed per seed (4%)" in line
    assert "most often predicted as 'nontarget' (0.5 per seed)" in line


def test_every_sentence_agrees_with_the_recall_on_random_matrices():
    rng = np.random.default_rng(7)
    for _ in range(300):
        k = int(rng.integers(2, 6))
        n_seeds = int(rng.choice([1, 3, 10]))
        clips = rng.integers(1, 40, size=k)
        confusion = np.zeros((k, k), dtype=np.int64)
        for i in range(k):
            # mostly right, sometimes perfectly right, a few scattered errors
            error_rate = rng.choice([0.0, 0.01, 0.05, 0.3])
            p = np.full(k, error_rate / max(k - 1, 1))
            p[i] = 1 - error_rate
            confusion[i] = rng.multinomial(clips[i] * n_seeds, p / p.sum())
        line, recall = weakest_sentence(confusion, n_seeds)
        match = re.search(r"; (\S+) of its (\d+) eval clips were missed", line)
        if recall < 1:
            assert match, line
            missed, total = match.group(1), int(match.group(2))
            assert missed not in ("0", "0.0"), line
            if not missed.startswith("<"):
                # the shown count is the mean per seed, rounded to 0.1
                assert abs(float(missed) - (1 - recall) * total) <= 0.05 + 1e-9, line
        else:
            assert match is None and ("all its" in line or "every one" in line), line


def test_cells_show_counts_and_shares_that_agree():
    rng = np.random.default_rng(3)
    for _ in range(200):
        k = int(rng.integers(2, 6))
        n_seeds = int(rng.choice([1, 3, 10]))
        confusion = rng.integers(0, 4, size=(k, k)) * rng.integers(0, 2, size=(k, k))
        confusion += np.diag(rng.integers(0, 300, size=k))
        labels = confusion_cell_labels(confusion, n_seeds)
        mean = confusion / n_seeds
        for i in range(k):
            for j in range(k):
                if confusion[i, j] == 0:
                    assert labels[i][j] == ""
                    continue
                count, share = labels[i][j].split("\n")
                assert count not in ("0", "0.0") and share != "0%", labels[i][j]
                if count.startswith("<") or share[0] in "<>":
                    continue
                true_share = 100 * mean[i, j] / mean[i].sum()
                assert abs(float(share.rstrip("%")) - true_share) <= 0.5 + 1e-9
                assert abs(float(count) - mean[i, j]) <= 0.05 + 1e-9
