"""train-hybrid: a keyword classifier over openWakeWord's speech embedding, its last convolutions fine-tuned."""

import json

import numpy as np
import pytest

from tests.fixtures_model import speechlike_clips

pytest.importorskip("onnx", reason="the openwakeword extra (onnx) is not installed")


def train_tiny(corpus, tmp, *args):
    """train-hybrid on the tiny corpus's plan (``tmp/plan.json``) into ``tmp/run``; (plan, run)."""
    from embedding_model.hybrid import main
    from embedding_model.plan import make_plan

    plan = make_plan(corpus, holdout_langs=[], holdout_word_frac=0.2, holdout_engines=[],
                     holdout_voice_frac=0, min_clips=2)
    plan.save(tmp / "plan.json")
    run = tmp / "run"
    assert main(["--plan", str(tmp / "plan.json"), "--run-dir", str(run), *args, "--no-progress"]) == 0
    return plan, run


@pytest.fixture(scope="module")
def hybrid_run(tiny_corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hybrid")
    _, run = train_tiny(tiny_corpus, tmp, "--epochs", "2", "--tune-epochs", "1", "--output-gain", "2")
    return tmp, run


def test_trains_exports_and_the_mswc_backend_loads_it(hybrid_run):
    import keras

    from embedding_model import get_backend
    from embedding_model.model import custom_objects
    from embedding_model.oww_graph import (TUNE_FROM, build_sequence_model, build_trunk, read_onnx_weights,
                                           tail_layer_names)

    _, run = hybrid_run
    backend = get_backend("mswc", model=run / "export")
    clips = speechlike_clips(3)
    vectors = backend.embed(clips)
    assert vectors.shape == (3, 1024) and np.all(np.isfinite(vectors))
    assert not np.allclose(vectors[0], vectors[1])
    weights = read_onnx_weights()
    trainer = keras.models.load_model(run / "trainer.keras", custom_objects=custom_objects())
    tail, trained_head = trainer.get_layer("oww_tail"), trainer.get_layer("head")
    # Convolutions 0-10 are openWakeWord's; 11-19 were fine-tuned, and the export holds the tuned ones.
    exported = backend.model.get_layer("oww_sequence").get_layer("oww_window_embedder")
    fresh = build_sequence_model(weights).get_layer("oww_window_embedder")
    for i in range(TUNE_FROM):
        for got, want in zip(exported.get_layer(f"oww_conv{i}").get_weights(), fresh.get_layer(f"oww_conv{i}").get_weights()):
            np.testing.assert_array_equal(got, want)
    for name in tail_layer_names():
        np.testing.assert_array_equal(exported.get_layer(name).get_weights()[0], tail.get_layer(name).get_weights()[0])
    assert not np.allclose(exported.get_layer("oww_conv19").get_weights()[0], weights["conv19/kernel"])
    # The exported model is the trained one end to end (the head's standardisation included), without the noise.
    windows = tail(build_trunk(weights).predict(clips, verbose=0), training=False)
    np.testing.assert_allclose(backend.model.get_layer("oww_sequence").predict(clips, verbose=0), windows.numpy(),
                               rtol=1e-5, atol=1e-4)
    # ... times the output gain.
    np.testing.assert_allclose(vectors, 2 * trained_head(windows, training=False).numpy(), rtol=1e-5, atol=2e-4)
    meta = json.loads((run / "export" / "mswc_embedding.json").read_text())
    assert meta["identity"] == backend.identity and meta["kind"] == "hybrid" and meta["output_gain"] == 2
    assert meta["training"]["loss"] == "softmax"
    assert (meta["training"]["epochs"], meta["training"]["tune_epochs"]) == (2, 1)
    assert f"{TUNE_FROM}-19 fine-tuned for 1 epochs" in meta["training"]["front"]
    assert (run / "export" / "holdout.json").is_file()
    curves = (run / "curves.csv").read_text().splitlines()
    assert curves[0].startswith("epoch,phase,") and [r.split(",")[1] for r in curves[1:]] == ["head", "head", "tune"]


def test_tune_epochs_0_keeps_the_front_exactly_openwakewords(tiny_corpus, tmp_path):
    from embedding_model import get_backend
    from embedding_model.oww_graph import build_sequence_model, read_onnx_weights

    _, run = train_tiny(tiny_corpus, tmp_path, "--epochs", "1", "--tune-epochs", "0")
    clips = speechlike_clips(2)
    front = get_backend("mswc", model=run / "export").model.get_layer("oww_sequence")
    np.testing.assert_allclose(front.predict(clips, verbose=0),
                               build_sequence_model(read_onnx_weights()).predict(clips, verbose=0), rtol=1e-6, atol=1e-5)


def test_rerun_resumes_and_more_epochs_continue_from_the_checkpoint(hybrid_run, capsys):
    from embedding_model.hybrid import main
    from embedding_model.oww_graph import TUNE_FROM

    tmp, run = hybrid_run
    features = {p.name: p.stat().st_mtime_ns for p in (run / "features").iterdir()}
    before = (run / "trainer.keras").stat().st_mtime_ns
    base = ["--plan", str(tmp / "plan.json"), "--run-dir", str(run), "--epochs", "2"]
    assert main(base + ["--tune-epochs", "1"]) == 0
    assert (run / "trainer.keras").stat().st_mtime_ns == before  # nothing left to train
    assert main(base + ["--tune-epochs", "2"]) == 0
    err = capsys.readouterr().err
    assert f"epoch 4/4 (fine-tuning convolutions {TUNE_FROM}-19)" in err and "epoch 3/4" not in err
    assert {p.name: p.stat().st_mtime_ns for p in (run / "features").iterdir()} == features  # reused
    assert len((run / "curves.csv").read_text().splitlines()) == 5
    assert json.loads((run / "state.json").read_text())["tuned"] == 2


@pytest.mark.parametrize("args, complaint", [
    (["--plan", "{tmp}/nope.json"], "--plan .*nope.json not found"),
    (["--plan", "{tmp}/plan.json", "--epochs", "0"], "--epochs must be at least 1"),
    (["--plan", "{tmp}/plan.json", "--corpus", "{tmp}/no-corpus"], "corpus .*no-corpus not found"),
    (["--plan", "{tmp}/plan.json", "--head", "flat"], "holds a run with --head mean"),
    (["--plan", "{tmp}/plan.json", "--views", "2"], "holds a run with .*--views 1: use another --run-dir"),
    (["--plan", "{tmp}/plan.json", "--epochs", "3"], "has trained its head for 2 epochs and fine-tuned .*--epochs 2"),
    (["--plan", "{tmp}/plan.json", "--epochs", "2", "--tune-epochs", "0"], "fine-tuned for [12] epochs: pass --tune-epochs"),
    (["--plan", "{tmp}/plan.json", "--tune-epochs", "-1"], "--tune-epochs must be 0 or more"),
    (["--plan", "{tmp}/plan.json", "--output-gain", "0"], "--output-gain: the output gain must be a positive number"),
    (["--plan", "{tmp}/plan.json", "--epochs", "2", "--loss", "margin"], "fine-tuned with --loss softmax: pass --loss softmax"),
])
def test_bad_input_is_one_line_and_exit_1(hybrid_run, capsys, args, complaint):
    import re

    from embedding_model.hybrid import main

    tmp, run = hybrid_run
    argv = [a.format(tmp=tmp) for a in args] + ["--run-dir", str(run)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(complaint, err[0]), err


def test_exports_to_savedmodel_and_tflite_agree(hybrid_run, tmp_path):
    from embedding_model.export import export_all, load_embedder, set_output_gain

    _, run = hybrid_run
    checks = export_all(run / "export", tmp_path / "out")
    assert checks["saved_model"]["min_cosine"] > 0.9999
    assert checks["tflite"]["min_cosine"] > 0.999
    embedder = load_embedder(run / "export")
    clips = speechlike_clips(2)
    before = embedder.predict(clips, verbose=0)
    set_output_gain(embedder, 10.0)
    np.testing.assert_allclose(embedder.predict(clips, verbose=0), 10 * before, rtol=1e-4, atol=1e-4)


def test_a_run_of_the_frozen_front_train_hybrid_is_refused(hybrid_run, tmp_path, capsys):
    from embedding_model.hybrid import main

    tmp, _ = hybrid_run
    (tmp_path / "state.json").write_text(json.dumps({"epoch": 4, "head": "mean", "seed": 0, "views": 1}))
    assert main(["--plan", str(tmp / "plan.json"), "--run-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "an earlier train-hybrid" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # nothing written


def test_tune_from_7_fine_tunes_convolutions_7_to_19_over_float16_features(tiny_corpus, tmp_path, capsys):
    from embedding_model import get_backend
    from embedding_model.hybrid import main
    from embedding_model.oww_graph import build_sequence_model, read_onnx_weights

    plan, run = train_tiny(tiny_corpus, tmp_path, "--epochs", "1", "--tune-epochs", "1", "--tune-from", "7")
    lang = plan.langs[0]
    with np.load(run / "features" / f"{lang}.npz") as data:
        assert data["features"].dtype == np.float16 and data["features"].shape[2:] == (60, 8, 48)
    assert json.loads((run / "head.json").read_text())["tune_from"] == 7
    meta = json.loads((run / "export" / "mswc_embedding.json").read_text())
    assert "convolutions 7-19 fine-tuned for 1 epochs" in meta["training"]["front"]
    exported = get_backend("mswc", model=run / "export").model.get_layer("oww_sequence").get_layer("oww_window_embedder")
    fresh = build_sequence_model(read_onnx_weights()).get_layer("oww_window_embedder")
    for i in range(20):
        got, want = exported.get_layer(f"oww_conv{i}").get_weights()[0], fresh.get_layer(f"oww_conv{i}").get_weights()[0]
        assert np.array_equal(got, want) == (i < 7), i  # 0-6 openWakeWord's, 7-19 fine-tuned
    # A run from 7 resumes only from 7; a head kept from 7 is fine-tuned only from 7.
    capsys.readouterr()
    base = ["--plan", str(tmp_path / "plan.json"), "--epochs", "1", "--tune-epochs", "1"]
    assert main(base + ["--run-dir", str(run)]) == 1
    assert main(base + ["--run-dir", str(tmp_path / "s1"), "--from-head", str(run), "--seed", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err
    assert "holds a run with --tune-from 7: pass --tune-from 7 to resume" in err[0]
    assert "before convolution 7: pass --tune-from 7" in err[1]
    assert not (tmp_path / "s1" / "state.json").exists()


def test_rows_hands_out_float32_batches_of_the_epochs_order():
    from embedding_model.hybrid import _rows

    x = np.arange(10 * 2, dtype=np.float16).reshape(10, 2)
    y = np.arange(10) * 10
    order = np.array([7, 2, 9, 0, 5, 1, 8, 3, 6, 4])
    rows = _rows(x, y, order, batch=4)
    assert len(rows) == 3
    batches = [rows[i] for i in range(3)]
    assert all(b[0].dtype == np.float32 for b in batches)
    assert [list(b[1] // 10) for b in batches] == [[7, 2, 9, 0], [5, 1, 8, 3], [6, 4]]  # x[order], cut every 4
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], 2 * (yb // 10))  # rows and labels stay together
    assert len(_rows(x)) == 1 and _rows(x)[0].shape == (10, 2)


def test_margin_loss_fine_tunes_with_a_cosine_classifier_started_at_the_class_means(tiny_corpus, tmp_path):
    import keras

    from embedding_model.hybrid import class_means
    from embedding_model.model import custom_objects

    plan, run = train_tiny(tiny_corpus, tmp_path, "--epochs", "1", "--tune-epochs", "1", "--loss", "margin")
    trainer = keras.models.load_model(run / "trainer.keras", custom_objects=custom_objects())
    weights = trainer.get_layer("class_cosines").get_weights()[0]
    assert weights.shape == (1024, len(plan.classes))
    assert trainer.loss.margin == 0.2 and trainer.loss.scale == 30.0
    meta = json.loads((run / "export" / "mswc_embedding.json").read_text())
    assert meta["training"]["loss"] == "margin" and meta["training"]["tune_epochs"] == 1
    assert json.loads((run / "state.json").read_text())["loss"] == "margin"
    # The class weights' starting directions: each class's mean unit vector.
    vectors = np.array([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    means = class_means(vectors, np.array([0, 0, 1, 1]), 3, seed=0)
    np.testing.assert_allclose(means[0], [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(means[1], [0.5 * 2 ** -0.5, 0.5 * 2 ** -0.5 + 0.5], atol=1e-6)
    assert np.linalg.norm(means[2]) > 0  # no clip: a random direction, not zeros


def test_the_margin_loss_is_cosface():
    import tensorflow as tf

    from embedding_model.hybrid import margin_loss

    cosines = np.array([[0.9, 0.1, -0.2], [0.3, 0.2, 0.5]], np.float32)
    labels = np.array([0, 2])
    logits = 30.0 * (cosines - 0.2 * np.eye(3, dtype=np.float32)[labels])
    want = -np.log(np.exp(logits[np.arange(2), labels]) / np.exp(logits).sum(1)).mean()
    assert abs(float(margin_loss()(tf.constant(labels), tf.constant(cosines))) - want) < 1e-4


def test_from_head_fine_tunes_another_runs_head_with_its_own_seed(hybrid_run, tmp_path, capsys):
    import keras

    from embedding_model import get_backend
    from embedding_model.hybrid import main
    from embedding_model.model import custom_objects

    tmp, run = hybrid_run
    head = json.loads((run / "head.json").read_text())
    assert head["epochs"] == 2 and head["seed"] == 0  # kept after the source's last head epoch
    base = ["--plan", str(tmp / "plan.json"), "--from-head", str(run), "--epochs", "2", "--output-gain", "2",
            "--no-progress"]
    # --tune-epochs 0: the export is exactly the source's head-phase model.
    assert main(base + ["--run-dir", str(tmp_path / "t0"), "--tune-epochs", "0"]) == 0
    source = keras.models.load_model(run / "head.keras", custom_objects=custom_objects()).get_layer("head")
    exported = get_backend("mswc", model=tmp_path / "t0" / "export").model
    got, want = exported.get_layer("head").get_weights(), source.get_weights()
    for g, w in zip(got[:-2], want[:-2]):
        np.testing.assert_array_equal(g, w)
    for g, w in zip(got[-2:], want[-2:]):  # the LayerNorm's gain and bias, times --output-gain
        np.testing.assert_allclose(g, 2 * w, rtol=1e-6)
    # Another seed: one fine-tuning epoch over the source's features, none computed here.
    assert main(base + ["--run-dir", str(tmp_path / "s1"), "--tune-epochs", "1", "--seed", "1"]) == 0
    assert not (tmp_path / "s1" / "features").exists()
    assert [r.split(",")[:2] for r in (tmp_path / "s1" / "curves.csv").read_text().splitlines()[1:]] == [["3", "tune"]]
    meta = json.loads((tmp_path / "s1" / "export" / "mswc_embedding.json").read_text())
    assert (meta["training"]["seed"], meta["training"]["head_seed"], meta["training"]["tune_epochs"]) == (1, 0, 1)
    tuned = get_backend("mswc", model=tmp_path / "s1" / "export").model
    assert not np.allclose(tuned.get_layer("head").get_weights()[0], source.get_weights()[0])
    # Resuming asks for the same --from-head; a head trained for other epochs is refused.
    capsys.readouterr()
    assert main(["--plan", str(tmp / "plan.json"), "--run-dir", str(tmp_path / "s1"), "--epochs", "2",
                 "--tune-epochs", "1", "--seed", "1"]) == 1
    assert main(["--plan", str(tmp / "plan.json"), "--from-head", str(run), "--epochs", "3",
                 "--run-dir", str(tmp_path / "s3")]) == 1
    assert main(base + ["--run-dir", str(tmp_path / "s4"), "--from-head", str(tmp_path / "t0" / "export")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3, err
    assert "started from --from-head" in err[0] and "the same --from-head to resume" in err[0]
    assert "its head was trained for 2 epochs: pass --epochs 2" in err[1]
    assert "no head.keras there" in err[2]
    assert not (tmp_path / "s3" / "state.json").exists() and not (tmp_path / "s4" / "state.json").exists()


def test_soup_averages_the_weights_and_loads_as_a_model(hybrid_run, tmp_path, capsys):
    import shutil

    from embedding_model import get_backend
    from embedding_model.export import load_embedder
    from embedding_model.hybrid import main as train
    from embedding_model.soup import main

    tmp, run = hybrid_run
    for seed in ("1", "2"):
        assert train(["--plan", str(tmp / "plan.json"), "--from-head", str(run), "--epochs", "2",
                      "--tune-epochs", "1", "--seed", seed, "--output-gain", "2", "--no-progress",
                      "--run-dir", str(tmp_path / f"s{seed}")]) == 0
    members = [tmp_path / "s1" / "export", tmp_path / "s2" / "export"]
    assert main(["--out", str(tmp_path / "soup"), *map(str, members)]) == 0
    a, b = (load_embedder(m).get_weights() for m in members)
    soup = get_backend("mswc", model=tmp_path / "soup")
    got = soup.model.get_weights()
    assert any(not np.array_equal(x, y) for x, y in zip(a, b))
    for x, y, z in zip(a, b, got):
        np.testing.assert_allclose(z, (x.astype(np.float64) + y) / 2, rtol=1e-6, atol=1e-7)
    meta = json.loads((tmp_path / "soup" / "mswc_embedding.json").read_text())
    ids = [json.loads((m / "mswc_embedding.json").read_text())["identity"] for m in members]
    assert meta["identity"] == soup.identity and meta["soup"]["of"] == ids and meta["output_gain"] == 2
    assert meta["kind"] == "hybrid" and [t["seed"] for t in meta["soup"]["training"]] == [1, 2]
    assert (tmp_path / "soup" / "holdout.json").read_bytes() == (members[0] / "holdout.json").read_bytes()
    assert soup.embed(speechlike_clips(2)).shape == (2, 1024)
    # Bad input: one line each, exit 1, nothing written.
    capsys.readouterr()
    assert main(["--out", str(tmp_path / "x1"), str(members[0])]) == 1
    other_gain = tmp_path / "gain1"
    shutil.copytree(members[1], other_gain)
    meta_path = other_gain / "mswc_embedding.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "output_gain": 1.0}))
    assert main(["--out", str(tmp_path / "x2"), str(members[0]), str(other_gain)]) == 1
    assert main(["--out", str(tmp_path / "x3"), str(members[0]), str(tmp_path / "nowhere")]) == 1
    assert main(["--out", str(members[0]), *map(str, members)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4, err
    assert "at least two" in err[0] and "different output gains (1.0, 2.0)" in err[1]
    assert "nowhere/mswc_embedding.keras not found" in err[2] and "is one of the models" in err[3]
    assert not any((tmp_path / x).exists() for x in ("x1", "x2", "x3"))
