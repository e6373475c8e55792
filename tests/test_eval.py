"""Eval stage: the score equals an independent DataPerf computation; bad inputs are refused."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.svm import SVC

from eval.cli import EXIT_BAD_INPUT, EXIT_RULES, main
from eval.scoring import DATAPERF_SEEDS, score
from protos import NONTARGET, SampleSet, read_samples, write_samples
from protos.synthetic import random_sample_set

# Also run under the second supported Python in CI (.ci/run: -m second_python).
pytestmark = pytest.mark.second_python

TARGETS = ["kilo", "alfa", "echo"]


def reference_protocol(train_x, train_y, eval_x, eval_y):
    """DataPerf's scoring, written out directly: (mean macro F1, per-seed, per-class mean)."""
    seeds = [5, 69, 98, 70, 95, 64, 37, 11, 4, 32]
    macro, per_class = [], []
    for seed in seeds:
        clf = VotingClassifier(
            estimators=[("svm", SVC(probability=True, random_state=seed)),
                        ("lr", LogisticRegression(random_state=seed))],
            voting="soft")
        clf.fit(train_x, train_y)
        predicted = clf.predict(eval_x)
        macro.append(f1_score(eval_y, predicted, average="macro"))
        per_class.append(f1_score(eval_y, predicted, average=None))
    return float(np.mean(macro)), macro, np.mean(per_class, axis=0)


def labels_by_hand(sample_set: SampleSet) -> np.ndarray:
    """nontarget 0, sorted target keywords 1..K, computed without protos' help."""
    class_of = {word: i + 1 for i, word in enumerate(sorted(TARGETS))}
    return np.array([0 if t == NONTARGET else class_of[k]
                     for t, k in zip(sample_set.sample_types, sample_set.keywords)])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """samples.pb, eval.pb and a train.npz selected from the pool by the real CLI."""
    root = tmp_path_factory.mktemp("task")
    pool = random_sample_set(300, dim=16, target_keywords=TARGETS, seed=21, spread=2.2)
    held_out = random_sample_set(240, dim=16, target_keywords=TARGETS, seed=22, spread=2.2,
                                 role="eval", id_prefix="eval/")
    write_samples(root / "samples.pb", pool)
    write_samples(root / "eval.pb", held_out)
    subprocess.run([sys.executable, "-m", "selection.main", "--input_samples",
                    str(root / "samples.pb"), f"--outdir={root}", "--algorithm", "random"],
                   check=True, capture_output=True)
    return root


def load(path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def variant(files, tmp_path, **changes) -> str:
    """A copy of the selected train.npz with some arrays replaced (None removes one)."""
    arrays = load(files / "train.npz")
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    path = tmp_path / "train.npz"
    np.savez(path, **arrays)
    return str(path)


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = main([*args, "--no_progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -------------------------------------------------------------------------- the score


def test_cli_score_equals_independent_protocol(files, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "eval", f"--eval_file={files / 'eval.pb'}",
         f"--train_file={files / 'train.npz'}", "--samples_file", str(files / "samples.pb"),
         "--train_size", "60", "--json", str(tmp_path / "result.json")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "deprecated" not in result.stderr

    train = load(files / "train.npz")
    pool, held_out = read_samples(files / "samples.pb"), read_samples(files / "eval.pb")
    row_of = {i: r for r, i in enumerate(pool.ids.tolist())}
    rows = [row_of[i] for i in train["train_ids"].tolist()]
    expected, per_seed, per_class = reference_protocol(
        pool.embeddings[rows], labels_by_hand(pool)[rows],
        held_out.embeddings, labels_by_hand(held_out))
    assert 0.2 < expected < 0.99, "the task should be neither trivial nor hopeless"

    document = json.loads((tmp_path / "result.json").read_text())
    assert document["score"] == pytest.approx(expected, abs=1e-12)
    assert [document["per_seed"][str(s)] for s in DATAPERF_SEEDS] == \
        pytest.approx(per_seed, abs=1e-12)
    names = ["nontarget", *sorted(TARGETS)]
    assert document["label_names"] == names
    assert [document["per_class_f1"][n] for n in names] == pytest.approx(per_class, abs=1e-12)
    assert document["n_train"] == 60 and document["n_eval"] == 240
    assert document["backend"] == "synthetic" and document["embedding_dim"] == 16
    assert sum(document["eval_counts"].values()) == 240
    assert document["samples_file_verified"] is True

    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"score (macro F1, mean over 10 seeds): {expected:.4f}"
    for name, f1 in zip(names, per_class):
        assert any(line.split()[:2] == [name, f"{f1:.4f}"] for line in lines), name


def test_score_function_matches_reference_and_counts():
    rng = np.random.default_rng(8)
    centres = rng.standard_normal((4, 6)) * 1.5
    train_y = np.repeat(np.arange(4), 8)
    eval_y = rng.integers(0, 4, 120)
    train_x = (centres[train_y] + rng.standard_normal((32, 6))).astype(np.float32)
    eval_x = (centres[eval_y] + rng.standard_normal((120, 6))).astype(np.float32)
    result = score(train_x, train_y, eval_x, eval_y, label_names=["n", "a", "b", "c"])
    expected, per_seed, per_class = reference_protocol(train_x, train_y, eval_x, eval_y)
    assert result.score == pytest.approx(expected, abs=1e-12)
    assert list(result.per_seed) == list(DATAPERF_SEEDS)
    assert list(result.per_seed.values()) == pytest.approx(per_seed, abs=1e-12)
    assert list(result.per_class_f1.values()) == pytest.approx(per_class, abs=1e-12)
    assert result.train_counts == {"n": 8, "a": 8, "b": 8, "c": 8}
    assert sum(result.eval_counts.values()) == 120
    assert json.loads(json.dumps(result.to_dict()))["score"] == result.score


def test_seed_schema_files_score_as_two_classes(tmp_path):
    rng = np.random.default_rng(3)

    def seedlike(n, offset):
        types = rng.integers(0, 2, n)
        x = rng.standard_normal((n, 8)) + np.where(types == 0, 1.0, -1.0)[:, None]
        return SampleSet(ids=[f"c{offset + i}" for i in range(n)], sample_types=types,
                         keywords=None, embeddings=x)

    write_samples(tmp_path / "samples.pb", seedlike(100, 0))
    write_samples(tmp_path / "eval.pb", seedlike(80, 1000))
    subprocess.run([sys.executable, "-m", "selection.main", "--input_samples",
                    str(tmp_path / "samples.pb"), "--outdir", str(tmp_path), "--algorithm",
                    "random", "--train_size", "20"], check=True, capture_output=True)
    result = subprocess.run([sys.executable, "-m", "eval", "--eval_file",
                             str(tmp_path / "eval.pb"), "--train_file",
                             str(tmp_path / "train.npz"), "--no_progress"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[2:4]] == \
        ["nontarget", "target"]
    value = float(result.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1])
    assert 0.5 < value <= 1.0


# ------------------------------------------------------------------------- refusals


def test_missing_files(files, tmp_path, capsys):
    code, _, err = run_main(capsys, "--eval_file", str(tmp_path / "nope.pb"),
                            "--train_file", str(files / "train.npz"))
    assert code == EXIT_BAD_INPUT and err.startswith(f"python -m eval: error: {tmp_path / 'nope.pb'}: no such file")
    assert err.endswith("(--eval_file)\n") and err.count("\n") == 1
    code, _, err = run_main(capsys, "--eval_file", str(files / "eval.pb"),
                            "--train_file", str(tmp_path / "nope.npz"))
    assert code == EXIT_BAD_INPUT and "nope.npz: no such file" in err


def refused(capsys, files, train_file, *extra, code=EXIT_BAD_INPUT, eval_file=None) -> str:
    got, out, err = run_main(capsys, "--eval_file", str(eval_file or files / "eval.pb"),
                             "--train_file", str(train_file), *extra)
    assert got == code, err
    assert err.startswith("python -m eval: error: ") and err.count("\n") == 1, err
    assert "score" not in out
    return err


def test_mismatched_embedding_dims(files, tmp_path, capsys):
    train = load(files / "train.npz")
    path = variant(files, tmp_path, train_x=train["train_x"][:, :8],
                   embedding_dim=np.asarray(8))
    err = refused(capsys, files, path)
    assert "embedding dims differ" in err and "8-d" in err and "16-d" in err


@pytest.mark.parametrize("field", ["backend", "model_id"])
def test_mismatched_backend_or_model(files, tmp_path, capsys, field):
    err = refused(capsys, files, variant(files, tmp_path, **{field: np.asarray("other")}))
    assert f"{field}s differ" in err and "'other'" in err


def test_unrecorded_backend_is_not_a_mismatch(files, tmp_path, capsys):
    path = variant(files, tmp_path, backend=None, model_id=np.asarray(""))
    code, out, err = run_main(capsys, "--eval_file", str(files / "eval.pb"),
                              "--train_file", path)
    assert code == 0, err


def test_mismatched_label_sets(files, tmp_path, capsys):
    names = np.asarray(["nontarget", "alfa", "echo", "lima"])
    err = refused(capsys, files, variant(files, tmp_path, label_names=names))
    assert "classes differ" in err and "lima" in err


def test_class_id_out_of_range_without_label_names(files, tmp_path, capsys):
    train = load(files / "train.npz")
    y = train["train_y"].copy()
    y[0] = 7
    err = refused(capsys, files, variant(files, tmp_path, train_y=y, label_names=None))
    assert "class id 7 out of range" in err


def test_empty_class_in_train(files, tmp_path, capsys):
    train = load(files / "train.npz")
    keep = train["train_y"] != 2
    path = variant(files, tmp_path, **{k: train[k][keep] for k in
                                      ("train_x", "train_y", "train_ids")})
    err = refused(capsys, files, path)
    assert "no samples of class(es) ['echo']" in err and "train.npz" in err


def test_empty_class_in_eval(files, tmp_path, capsys):
    held_out = read_samples(files / "eval.pb")
    without_echo = held_out.subset(held_out.keywords != "echo")
    write_samples(tmp_path / "eval.pb", without_echo)  # metadata still lists "echo"
    err = refused(capsys, files, files / "train.npz", eval_file=tmp_path / "eval.pb")
    assert "eval.pb: no samples of class(es) ['echo']" in err


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04 not really a zip", "not a readable .npz"),
    (b"", "not a readable .npz"),
])
def test_corrupt_train_file(files, tmp_path, capsys, content, message):
    (tmp_path / "train.npz").write_bytes(content)
    assert message in refused(capsys, files, tmp_path / "train.npz")


def test_train_file_without_required_arrays(files, tmp_path, capsys):
    err = refused(capsys, files, variant(files, tmp_path, train_y=None))
    assert "has no 'train_y' array" in err


def test_pickled_train_file_is_refused(files, tmp_path, capsys):
    ids = load(files / "train.npz")["train_ids"].astype(object)
    err = refused(capsys, files, variant(files, tmp_path, train_ids=ids))
    assert "pickle" in err


def test_train_size_cap(files, capsys):
    err = refused(capsys, files, files / "train.npz", "--train_size", "59", code=EXIT_RULES)
    assert "60 training samples, more than --train_size 59" in err


def test_samples_file_catches_a_perturbed_vector(files, tmp_path, capsys):
    train = load(files / "train.npz")
    x = train["train_x"].copy()
    x[3, 5] = np.nextafter(x[3, 5], np.float32(np.inf))  # one ulp: still not genuine
    err = refused(capsys, files, variant(files, tmp_path, train_x=x),
                  "--samples_file", str(files / "samples.pb"), code=EXIT_RULES)
    assert "1 row(s) differ" in err and repr(str(train["train_ids"][3])) in err


def test_samples_file_catches_a_foreign_id(files, tmp_path, capsys):
    ids = load(files / "train.npz")["train_ids"].astype("<U32")
    ids[0] = "made/up.opus"
    err = refused(capsys, files, variant(files, tmp_path, train_ids=ids),
                  "--samples_file", str(files / "samples.pb"), code=EXIT_RULES)
    assert "'made/up.opus'" in err and "not in" in err


def test_samples_file_catches_a_relabelled_row(files, tmp_path, capsys):
    train = load(files / "train.npz")
    y = train["train_y"].copy()
    i = int(np.flatnonzero(y == 0)[0])
    y[i] = 1
    err = refused(capsys, files, variant(files, tmp_path, train_y=y),
                  "--samples_file", str(files / "samples.pb"), code=EXIT_RULES)
    assert "is labelled 'alfa' but is a 'nontarget' sample" in err


def test_samples_file_needs_train_ids(files, tmp_path, capsys):
    err = refused(capsys, files, variant(files, tmp_path, train_ids=None),
                  "--samples_file", str(files / "samples.pb"), code=EXIT_RULES)
    assert "has no train_ids" in err


def test_samples_file_catches_duplicates(files, tmp_path, capsys):
    train = load(files / "train.npz")
    order = np.r_[0, np.arange(len(train["train_y"]) - 1)]
    path = variant(files, tmp_path, **{k: train[k][order] for k in
                                      ("train_x", "train_y", "train_ids")})
    err = refused(capsys, files, path, "--samples_file", str(files / "samples.pb"),
                  code=EXIT_RULES)
    assert "more than once" in err


def test_cli_exit_code_and_single_line_in_a_real_process(files, tmp_path):
    train = load(files / "train.npz")
    path = variant(files, tmp_path, train_x=train["train_x"][:, :4], embedding_dim=None)
    result = subprocess.run([sys.executable, "-m", "eval", "--eval_file",
                             str(files / "eval.pb"), "--train_file", path],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.count("\n") == 1 and "embedding dims differ" in result.stderr
    assert result.stdout == ""


def test_eval_does_not_import_tensorflow():
    code = "import sys, eval.cli, eval.scoring; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
