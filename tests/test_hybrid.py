"""train-hybrid: a keyword classifier over openWakeWord's frozen speech embedding."""

import json

import numpy as np
import pytest

from tests.fixtures_model import speechlike_clips

pytest.importorskip("onnx", reason="the openwakeword extra (onnx) is not installed")


@pytest.fixture(scope="module")
def hybrid_run(tiny_corpus, tmp_path_factory):
    from embedding_model.hybrid import main
    from embedding_model.plan import make_plan

    tmp = tmp_path_factory.mktemp("hybrid")
    plan = make_plan(tiny_corpus, holdout_langs=[], holdout_word_frac=0.2, holdout_engines=[],
                     holdout_voice_frac=0, min_clips=2)
    plan.save(tmp / "plan.json")
    run = tmp / "run"
    assert main(["--plan", str(tmp / "plan.json"), "--run-dir", str(run), "--epochs", "2", "--no-progress"]) == 0
    return tmp, run


def test_trains_exports_and_the_mswc_backend_loads_it(hybrid_run):
    from embedding_model import get_backend
    from embedding_model.oww_graph import build_sequence_model, read_onnx_weights

    _, run = hybrid_run
    backend = get_backend("mswc", model=run / "export")
    clips = speechlike_clips(3)
    vectors = backend.embed(clips)
    assert vectors.shape == (3, 1024) and np.all(np.isfinite(vectors))
    assert not np.allclose(vectors[0], vectors[1])
    # The frozen front is exactly openWakeWord's: the export's first stage equals a fresh rebuild.
    front = backend.model.get_layer("oww_sequence")
    fresh = build_sequence_model(read_onnx_weights())
    np.testing.assert_allclose(front.predict(clips, verbose=0), fresh.predict(clips, verbose=0), rtol=1e-6, atol=1e-5)
    # The exported head is the trained one (its standardisation included), without the training noise.
    import keras

    from embedding_model.model import custom_objects

    trained = keras.models.load_model(run / "trainer.keras", custom_objects=custom_objects()).get_layer("head")
    windows = fresh.predict(clips, verbose=0)
    np.testing.assert_allclose(backend.model.get_layer("head")(windows, training=False).numpy(),
                               trained(windows, training=False).numpy(), rtol=1e-5, atol=1e-5)
    meta = json.loads((run / "export" / "mswc_embedding.json").read_text())
    assert meta["identity"] == backend.identity and meta["kind"] == "hybrid" and meta["training"]["epochs"] == 2
    assert (run / "export" / "holdout.json").is_file()
    curves = (run / "curves.csv").read_text().splitlines()
    assert curves[0].startswith("epoch,") and len(curves) == 3


def test_rerun_resumes_and_more_epochs_continue_from_the_checkpoint(hybrid_run, capsys):
    from embedding_model.hybrid import main

    tmp, run = hybrid_run
    features = {p.name: p.stat().st_mtime_ns for p in (run / "features").iterdir()}
    before = (run / "trainer.keras").stat().st_mtime_ns
    assert main(["--plan", str(tmp / "plan.json"), "--run-dir", str(run), "--epochs", "2"]) == 0
    assert (run / "trainer.keras").stat().st_mtime_ns == before  # nothing left to train
    assert main(["--plan", str(tmp / "plan.json"), "--run-dir", str(run), "--epochs", "3"]) == 0
    err = capsys.readouterr().err
    assert "epoch 3/3" in err and "epoch 1/3" not in err
    assert {p.name: p.stat().st_mtime_ns for p in (run / "features").iterdir()} == features  # reused
    assert len((run / "curves.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("args, complaint", [
    (["--plan", "{tmp}/nope.json"], "--plan .*nope.json not found"),
    (["--plan", "{tmp}/plan.json", "--epochs", "0"], "--epochs must be at least 1"),
    (["--plan", "{tmp}/plan.json", "--corpus", "{tmp}/no-corpus"], "corpus .*no-corpus not found"),
    (["--plan", "{tmp}/plan.json", "--head", "flat"], "holds a run with --head mean"),
    (["--plan", "{tmp}/plan.json", "--views", "2"], "holds a run with .*--views 1: use another --run-dir"),
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
