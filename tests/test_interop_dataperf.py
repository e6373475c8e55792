"""DataPerf's published layout <-> samples.pb / eval.pb / train.npz, both directions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
yaml = pytest.importorskip("yaml")

from protos import read_samples, write_samples  # noqa: E402
from protos.synthetic import random_sample_set  # noqa: E402
from selection import dataperf_format as fmt  # noqa: E402
from selection.main import main as selection_main  # noqa: E402


@pytest.fixture
def our_files(tmp_path):
    samples = random_sample_set(240, dim=12, seed=1, role="samples")
    # Same words and centres, other clips: a task's eval set.
    eval_set = random_sample_set(160, dim=12, seed=2, role="eval", id_prefix="")
    eval_set.ids = np.asarray([f"{w}/e{i:05d}.opus" for i, w in enumerate(eval_set.keywords)])
    write_samples(tmp_path / "samples.pb", samples)
    write_samples(tmp_path / "eval.pb", eval_set)
    return tmp_path / "samples.pb", tmp_path / "eval.pb"


def by_id(sample_set):
    labels = sample_set.labels
    return {i: (sample_set.label_names[labels[r]], sample_set.keywords[r],
                sample_set.embeddings[r].tobytes())
            for r, i in enumerate(sample_set.ids.tolist())}


def convert(*args: str) -> int:
    return fmt.main(list(args))


def test_export_then_import_round_trips(tmp_path, our_files):
    samples_path, eval_path = our_files
    data = tmp_path / "dataperf_xx_data"
    assert convert("export", "--samples", str(samples_path), "--eval", str(eval_path),
                   "--outdir", str(data)) == 0
    allowed = yaml.safe_load((data / "allowed_training_set.yaml").read_text())
    assert sorted(allowed) == ["nontargets", "targets"]
    assert sorted(allowed["targets"]) == ["alpha", "beta", "gamma"]
    assert {p.name for p in (data / "train_embeddings").iterdir()} == {
        f"{w}.parquet" for w in ("alpha", "beta", "gamma", "one", "two", "three", "four", "five")}
    table = pq.read_table(data / "train_embeddings" / "alpha.parquet")
    assert table.column_names == ["clip_id", "mswc_embedding_vector"]

    back = tmp_path / "back"
    assert convert("import", "--data_dir", str(data), "--outdir", str(back)) == 0
    for name, original in (("samples.pb", samples_path), ("eval.pb", eval_path)):
        before, after = read_samples(original), read_samples(back / name)
        assert by_id(after) == by_id(before)  # ids, classes, words, bit-identical vectors
        assert after.label_names == before.label_names
        assert (after.metadata.backend, after.metadata.model_id, after.metadata.language) == (
            before.metadata.backend, before.metadata.model_id, before.metadata.language)
        assert after.metadata.role == before.metadata.role


def write_official_style(root, rng, words=("house", "music"), others=("about", "after", "water")):
    """A directory shaped like DataPerf's download, written the way pandas would (float64
    lists, '.wav' ids), with the same parquet for train and eval as their README allows."""
    emb = root / "embeddings"
    emb.mkdir(parents=True)
    allowed = {"targets": {}, "nontargets": []}
    evals = {"targets": {}, "nontargets": []}
    for word in (*words, *others):
        ids = [f"{word}/common_voice_xx_{i}.wav" for i in range(20)]
        vectors = [list(map(float, rng.standard_normal(6) + len(word))) for _ in ids]
        pq.write_table(pa.table({"clip_id": ids, "mswc_embedding_vector": vectors}),
                       emb / f"{word}.parquet")
        if word in words:
            allowed["targets"][word], evals["targets"][word] = ids[:14], ids[14:]
        elif word != "water":
            allowed["nontargets"] += ids[:10]
            evals["nontargets"] += ids[10:]
        else:  # an "unknown" word: eval only
            evals["nontargets"] += ids
    (root / "allowed_training_set.yaml").write_text(yaml.safe_dump(allowed))
    (root / "eval.yaml").write_text(yaml.safe_dump(evals))
    return allowed, evals


def test_official_layout_to_selection_to_submission_and_back(tmp_path):
    data = tmp_path / "dataperf_en_data"
    allowed, _ = write_official_style(data, np.random.default_rng(0))
    work = tmp_path / "work"
    assert convert("import", "--data_dir", str(data), "--outdir", str(work),
                   "--train_embeddings_dir", str(data / "embeddings"),
                   "--eval_embeddings_dir", str(data / "embeddings")) == 0
    samples = read_samples(work / "samples.pb")
    eval_set = read_samples(work / "eval.pb")
    assert samples.metadata.language == "en" and samples.metadata.backend == "mswc"
    assert samples.label_names == ["nontarget", "house", "music"]
    assert len(samples) == 14 * 2 + 10 * 2 and len(eval_set) == 6 * 2 + 10 * 2 + 20
    # Nontarget words come from the ids, so unknown-word clips keep their word.
    assert set(eval_set.keywords[eval_set.labels == 0].tolist()) == {"about", "after", "water"}

    assert selection_main(["--input_samples", str(work / "samples.pb"), "--outdir", str(work),
                           "--train_size", "25", "--algorithm", "random"]) == 0
    submission = tmp_path / "submission"
    assert convert("to-json", "--train_file", str(work / "train.npz"),
                   "--outdir", str(submission)) == 0
    path = submission / "en_25_train.json"
    chosen = json.loads(path.read_text())
    assert sorted(chosen) == ["nontargets", "targets"]
    n = len(chosen["nontargets"]) + sum(map(len, chosen["targets"].values()))
    assert n == 25
    assert set(chosen["nontargets"]) <= set(allowed["nontargets"])
    for word, ids in chosen["targets"].items():
        assert set(ids) <= set(allowed["targets"][word])

    # ... and a submission json back to a train.npz eval scores the same way.
    assert convert("from-json", "--train_json", str(path), "--samples",
                   str(work / "samples.pb"), "--outdir", str(tmp_path / "again")) == 0
    with np.load(work / "train.npz") as a, np.load(tmp_path / "again" / "train.npz") as b:
        order_a, order_b = np.argsort(a["train_ids"]), np.argsort(b["train_ids"])
        for name in ("train_ids", "train_y", "train_x"):
            np.testing.assert_array_equal(a[name][order_a], b[name][order_b])
        assert int(b["train_size"]) == 25
        assert b["label_names"].tolist() == a["label_names"].tolist()


@pytest.mark.parametrize("breakage, message", [
    ("missing_clip", "not in"),
    ("no_yaml", "allowed_training_set.yaml: no such file"),
    ("bad_yaml", "expected a mapping"),
    ("ragged", "-d vector"),
])
def test_bad_official_data_fails_with_one_line(tmp_path, capsys, breakage, message):
    data = tmp_path / "dataperf_en_data"
    allowed, _ = write_official_style(data, np.random.default_rng(1))
    emb = data / "embeddings"
    if breakage == "missing_clip":
        allowed["nontargets"].append("about/not_there.wav")
        (data / "allowed_training_set.yaml").write_text(yaml.safe_dump(allowed))
    elif breakage == "no_yaml":
        (data / "allowed_training_set.yaml").unlink()
    elif breakage == "bad_yaml":
        (data / "allowed_training_set.yaml").write_text("- just\n- a list\n")
    else:
        pq.write_table(pa.table({"clip_id": ["house/a.wav", "house/b.wav"],
                                 "mswc_embedding_vector": [[1.0, 2.0], [1.0]]}),
                       emb / "house.parquet")
    code = convert("import", "--data_dir", str(data), "--outdir", str(tmp_path / "out"),
                   "--train_embeddings_dir", str(emb), "--eval_embeddings_dir", str(emb))
    err = capsys.readouterr().err
    assert code == fmt.EXIT_BAD_INPUT
    assert err.startswith("python -m selection.dataperf_format: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "out" / "samples.pb").exists()


def test_submission_json_with_a_foreign_or_mislabelled_id_is_refused(tmp_path, our_files, capsys):
    samples_path, _ = our_files
    samples = read_samples(samples_path)
    target_id = str(samples.ids[samples.labels == 1][0])
    for document, message in (
            ({"targets": {}, "nontargets": ["one/nope.opus"]}, "not in the pool"),
            ({"targets": {}, "nontargets": [target_id]}, "is listed as 'nontarget'"),
            ({"targets": {"omega": []}, "nontargets": []}, "not targets of the pool")):
        path = tmp_path / "xx_25_train.json"
        path.write_text(json.dumps(document))
        assert convert("from-json", "--train_json", str(path), "--samples", str(samples_path),
                       "--outdir", str(tmp_path / "o")) == fmt.EXIT_BAD_INPUT
        assert message in capsys.readouterr().err


def test_converter_imports_neither_tensorflow_nor_eagerly_pyarrow():
    # scikit-learn imports pandas when it is installed (and pandas 3 imports pyarrow):
    # hide pandas so the check sees this project's own imports only.
    code = ("import sys; sys.modules['pandas'] = None; import selection.dataperf_format; "
            "assert 'tensorflow' not in sys.modules; "
            "assert 'pyarrow' not in sys.modules and 'yaml' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
