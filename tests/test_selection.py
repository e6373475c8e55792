"""Selection stage: the CLI contract, the select() answer checks, the two algorithms."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import selection.selection
from protos import SampleSet, read_samples, write_samples
from protos.synthetic import random_sample_set
from selection import implementations
from selection.implementations import crossval, random_balanced
from selection.main import EXIT_BAD_INPUT, EXIT_BAD_SELECTION, EXIT_USAGE, main
from selection.pool import Pool, SelectionError, validate_selection

# Also run under the second supported Python in CI (.ci/run: -m second_python).
pytestmark = pytest.mark.second_python


@pytest.fixture(scope="module")
def samples_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "samples.pb"
    write_samples(path, random_sample_set(300, dim=16, seed=11, spread=1.5))
    return path


@pytest.fixture
def pool_set(samples_path) -> SampleSet:
    return read_samples(samples_path)


def make_pool(sample_set: SampleSet, train_size: int = 60, seed: int = 0) -> Pool:
    return Pool.from_sample_set(sample_set, train_size, seed)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selection.main", *args],
                          capture_output=True, text=True, timeout=120)


def load_train(path):
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def assert_genuine_subset(train: dict, pool_set: SampleSet, cap: int) -> None:
    """train.npz rows are pool rows (id, vector, label), unique, within the cap."""
    ids = train["train_ids"].tolist()
    assert 0 < len(ids) <= cap
    assert len(set(ids)) == len(ids)
    row_of = {sample_id: i for i, sample_id in enumerate(pool_set.ids.tolist())}
    rows = np.array([row_of[i] for i in ids])
    assert train["train_x"].dtype == np.float32
    assert train["train_x"].shape == (len(ids), pool_set.embedding_dim)
    np.testing.assert_array_equal(train["train_x"], pool_set.embeddings[rows])
    np.testing.assert_array_equal(train["train_y"], pool_set.labels[rows])
    assert train["train_y"].dtype == np.int64
    assert train["label_names"].tolist() == pool_set.label_names


# ------------------------------------------------------------------------------------ CLI


def test_cli_writes_train_npz_as_the_seed_readme_says(tmp_path, samples_path, pool_set):
    result = run_cli("--input_samples", str(samples_path), f"--outdir={tmp_path}",
                     "--algorithm", "random")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.npz"]
    train = load_train(tmp_path / "train.npz")
    assert_genuine_subset(train, pool_set, cap=60)
    assert len(train["train_ids"]) == 60
    assert str(train["backend"]) == "synthetic" and str(train["model_id"]) == "synthetic-1"
    assert int(train["embedding_dim"]) == 16
    assert "train.npz" in result.stdout and "60 of 300" in result.stdout


def test_default_algorithm_runs_and_is_documented(tmp_path, samples_path, pool_set):
    """The default ("tuned") end to end, on a budget of 25: all of it spent, every class."""
    result = run_cli("--input_samples", str(samples_path), "--outdir", str(tmp_path),
                     "--train_size", "25")
    assert result.returncode == 0, result.stderr
    train = load_train(tmp_path / "train.npz")
    assert_genuine_subset(train, pool_set, cap=25)
    assert len(train["train_ids"]) == 25
    assert set(train["train_y"].tolist()) == {0, 1, 2, 3}
    assert str(train["algorithm"]) == "select()"
    help_text = run_cli("--help").stdout
    assert implementations.DEFAULT_ALGORITHM in help_text and "exit status:" in help_text
    assert " ".join(help_text.split()).count("130 interrupted") == 1


@pytest.mark.parametrize("algorithm", implementations.available())
@pytest.mark.parametrize("train_size", [1, 3, 4, 7, 25, 60, 299, 5000])
def test_selection_is_always_a_genuine_subset_within_the_cap(
        tmp_path, samples_path, pool_set, monkeypatch, algorithm, train_size):
    if algorithm == "crossval":
        # Fewer subsets than DataPerf's 10 x 10 keep this fast; the logic is the same.
        monkeypatch.setattr(crossval, "N_SPLITS", 2)
    code = main(["--input_samples", str(samples_path), "--outdir", str(tmp_path),
                 "--algorithm", algorithm, "--train_size", str(train_size)])
    if algorithm == "crossval" and train_size < 5:
        # 60% of 1..4 cannot hold one sample of each of the 3 target keywords.
        assert code == EXIT_BAD_SELECTION
        return
    assert code == 0
    train = load_train(tmp_path / "train.npz")
    assert_genuine_subset(train, pool_set, cap=train_size)
    if train_size >= 4:
        assert set(train["train_y"].tolist()) == {0, 1, 2, 3}


def test_seed_makes_selection_reproducible(tmp_path, samples_path):
    def ids(seed: int, out: str) -> list[str]:
        assert main(["--input_samples", str(samples_path), "--outdir", str(tmp_path / out),
                     "--algorithm", "random", "--seed", str(seed)]) == 0
        return load_train(tmp_path / out / "train.npz")["train_ids"].tolist()

    assert ids(1, "a") == ids(1, "b")
    assert ids(1, "a") != ids(2, "c")


def test_seed_schema_pool_is_a_two_class_task(tmp_path):
    rng = np.random.default_rng(4)
    seedlike = SampleSet(ids=[f"w/{i}.opus" for i in range(80)],
                         sample_types=rng.integers(0, 2, 80), keywords=None,
                         embeddings=rng.standard_normal((80, 8)))
    write_samples(tmp_path / "seed.pb", seedlike)
    assert main(["--input_samples", str(tmp_path / "seed.pb"), "--outdir", str(tmp_path),
                 "--algorithm", "random", "--train_size", "10"]) == 0
    train = load_train(tmp_path / "train.npz")
    assert train["label_names"].tolist() == ["nontarget", "target"]
    assert sorted(np.bincount(train["train_y"]).tolist()) == [5, 5]


@pytest.mark.parametrize("args, code, message", [
    (["--input_samples", "{tmp}/missing.pb"], EXIT_BAD_INPUT, "no such file"),
    (["--input_samples", "{tmp}/junk.pb"], EXIT_BAD_INPUT, "not a valid samples.pb"),
    (["--input_samples", "{pool}", "--train_size", "0"], EXIT_BAD_INPUT, "--train_size"),
    (["--input_samples", "{pool}", "--algorithm", "magic"], EXIT_USAGE, "invalid choice"),
    ([], EXIT_USAGE, "--input_samples"),
])
def test_cli_bad_input(tmp_path, samples_path, args, code, message):
    (tmp_path / "junk.pb").write_bytes(b"not a protocol buffer, clearly")
    args = [a.format(tmp=tmp_path, pool=samples_path) for a in args]
    result = run_cli(*args, "--outdir", str(tmp_path / "out"))
    assert result.returncode == code
    assert message in result.stderr
    if code != EXIT_USAGE:
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith("python -m selection.main: error: ")
    assert not (tmp_path / "out" / "train.npz").exists()


def test_invalid_answer_from_select_stops_the_cli(tmp_path, samples_path, monkeypatch, capsys):
    def fabricating_select(pool, algorithm=None):
        return {"nontarget": ["made/up.opus"]}

    monkeypatch.setattr(selection.selection, "select", fabricating_select)
    code = main(["--input_samples", str(samples_path), "--outdir", str(tmp_path)])
    assert code == EXIT_BAD_SELECTION
    err = capsys.readouterr().err
    assert err == "python -m selection.main: error: select() returned id 'made/up.opus' " \
                  "under 'nontarget', which is not in the pool\n"
    assert not (tmp_path / "train.npz").exists()


# ------------------------------------------------------------------- validate_selection


@pytest.fixture
def pool(pool_set) -> Pool:
    return make_pool(pool_set, train_size=8)


def ids_of(pool: Pool, name: str, k: int) -> list[str]:
    return pool.ids[pool.indices_of(name)][:k].tolist()


def valid_answer(pool: Pool) -> dict[str, list[str]]:
    return {name: ids_of(pool, name, 2) for name in pool.label_names}


def test_valid_answer_gives_rows_grouped_by_class(pool):
    answer = valid_answer(pool)
    rows = validate_selection(answer, pool)
    assert pool.ids[rows].tolist() == [i for name in pool.label_names for i in answer[name]]
    assert pool.labels[rows].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("break_it, message", [
    (lambda p, a: [x for v in a.values() for x in v], "must return a dict"),
    (lambda p, a: {**a, "delta": []}, "unknown class 'delta'"),
    (lambda p, a: {**a, "nontarget": "one/00001.opus"}, "maps to str"),
    (lambda p, a: {**a, "nontarget": [3]}, "sample ids are strings"),
    (lambda p, a: {**a, "nontarget": ["no/such.opus"]}, "not in the pool"),
    (lambda p, a: {**a, "nontarget": a["alpha"][:1]}, "but it is a 'alpha' sample"),
    (lambda p, a: {**a, "alpha": a["alpha"] * 2}, "twice"),
    (lambda p, a: {**a, "beta": ids_of(p, "beta", 3)}, "more than train_size=8"),
    (lambda p, a: {name: [] for name in a}, "no samples"),
    (lambda p, a: {**a, "gamma": []}, "left out class(es) ['gamma']"),
])
def test_invalid_answers_are_explained(pool, break_it, message):
    with pytest.raises(SelectionError) as info:
        validate_selection(break_it(pool, valid_answer(pool)), pool)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_small_budget_may_leave_classes_out(pool_set):
    pool = make_pool(pool_set, train_size=2)
    rows = validate_selection({"alpha": ids_of(pool, "alpha", 1),
                               "nontarget": ids_of(pool, "nontarget", 1)}, pool)
    assert len(rows) == 2


def test_pool_is_read_only(pool):
    with pytest.raises(ValueError):
        pool.embeddings[0, 0] = 1.0
    with pytest.raises(ValueError):
        pool.labels[0] = 3
    with pytest.raises(AttributeError):
        pool.train_size = 1000


# ------------------------------------------------------------------------------ algorithms


def test_registry():
    assert implementations.available() == ["crossval", "random", "tuned"]
    assert implementations.DEFAULT_ALGORITHM == "tuned"
    assert implementations.get("random") is random_balanced.select
    with pytest.raises(KeyError, match="available: crossval, random, tuned"):
        implementations.get("nope")


@pytest.mark.parametrize("sizes, budget", [
    ([100, 3, 100, 100], 20), ([5, 5, 5], 4), ([1, 0, 50], 10), ([2, 2], 100), ([7], 3),
])
def test_balanced_quota(sizes, budget):
    quota = random_balanced.balanced_quota(np.array(sizes), budget)
    assert quota.sum() == min(budget, sum(sizes))
    assert (quota <= sizes).all()
    # Water-filling: a class that still has samples left is never more than one behind.
    unsaturated = quota[quota < np.array(sizes)]
    if len(unsaturated):
        assert quota.max() - unsaturated.min() <= 1


def test_random_is_class_balanced(pool_set):
    answer = random_balanced.select(make_pool(pool_set, train_size=20, seed=3))
    assert {name: len(ids) for name, ids in answer.items()} == \
        {"nontarget": 5, "alpha": 5, "beta": 5, "gamma": 5}


def test_crossval_budget_split_and_stratification(pool_set):
    pool = make_pool(pool_set, train_size=60, seed=2)
    answer = crossval.select(pool, n_splits=3)
    counts = {name: len(ids) for name, ids in answer.items()}
    assert counts["nontarget"] == 24
    assert sum(counts.values()) == 60
    # Stratified: each keyword gets about its share of the pool's targets.
    target_sizes = pool.class_sizes()[1:]
    expected = 36 * target_sizes / target_sizes.sum()
    got = np.array([counts[name] for name in pool.label_names[1:]])
    assert np.abs(got - expected).max() <= 1
    assert answer == crossval.select(pool, n_splits=3)
    validate_selection(answer, pool)


def test_crossval_keeps_the_best_scoring_subset(pool_set, monkeypatch):
    """Whatever the candidates score, the returned subset is the best one seen."""
    seen = []
    real_f1 = crossval.macro_f1

    def recording_f1(y_true, y_pred, **kwargs):
        value = real_f1(y_true, y_pred, **kwargs)
        seen.append(value)
        return value

    fitted = []
    real_fit = crossval.fit_classifier

    def recording_fit(seed, x, y):
        fitted.append(set(map(bytes, np.asarray(x))))
        return real_fit(seed, x, y)

    monkeypatch.setattr(crossval, "macro_f1", recording_f1)
    monkeypatch.setattr(crossval, "fit_classifier", recording_fit)
    pool = make_pool(pool_set, train_size=20, seed=5)
    answer = crossval.select(pool, n_splits=3)
    assert len(seen) == 9
    best = int(np.argmax(seen))
    chosen_rows = validate_selection(answer, pool)
    assert set(map(bytes, pool.embeddings[chosen_rows])) == fitted[best]


def test_crossval_explains_a_pool_too_small(pool_set):
    with pytest.raises(SelectionError, match="--train_size"):
        crossval.select(make_pool(pool_set, train_size=1), n_splits=2)
    with pytest.raises(SelectionError, match="stratified subset"):
        crossval.select(make_pool(pool_set, train_size=4), n_splits=2)
    one_alpha = np.r_[np.flatnonzero(pool_set.keywords != "alpha"),
                      np.flatnonzero(pool_set.keywords == "alpha")[:1]]
    with pytest.raises(SelectionError, match="--algorithm random"):
        crossval.select(make_pool(pool_set.subset(one_alpha), train_size=20), n_splits=2)


# ----------------------------------------------------------------------- isolation


def test_selection_needs_neither_tensorflow_nor_the_network(tmp_path, samples_path):
    code = f"""
import socket, sys
def no_network(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = socket.socket.connect_ex = no_network
socket.create_connection = socket.getaddrinfo = no_network
import selection.main, selection.selection
from selection.implementations import crossval, random_balanced
assert "tensorflow" not in sys.modules, "selection imported tensorflow"
code = selection.main.main(["--input_samples", {str(samples_path)!r},
                            "--outdir", {str(tmp_path)!r}, "--algorithm", "random"])
assert "tensorflow" not in sys.modules
sys.exit(code)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "train.npz").is_file()
