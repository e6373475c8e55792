"""The output gain folded into the exported graph (``embedding_model.export.set_output_gain``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.fixtures_model import speechlike_clips


def _randomised_embedder(kind: str, seed: int = 0):
    """A fresh embedder whose final normalisation has non-trivial gain and bias."""
    from embedding_model.model import EMBEDDING_LAYER, ModelConfig, build_backbone, build_embedder

    backbone = build_backbone(ModelConfig(embedding=kind))
    layer = backbone.get_layer(EMBEDDING_LAYER if kind == "ln" else "embedding_bn")
    rng = np.random.default_rng(seed)
    weights = layer.get_weights()
    weights[0] = rng.uniform(0.5, 1.5, weights[0].shape).astype(np.float32)
    weights[1] = rng.normal(0.0, 0.5, weights[1].shape).astype(np.float32)
    layer.set_weights(weights)
    return build_embedder(backbone)


@pytest.mark.parametrize("kind", ["ln", "relu"])
def test_gain_scales_the_output_exactly(kind):
    from embedding_model.export import set_output_gain

    embedder = _randomised_embedder(kind)
    clips = speechlike_clips(3)
    before = embedder.predict(clips, verbose=0)
    assert np.abs(before).max() > 0.1
    set_output_gain(embedder, 7.5)
    after = embedder.predict(clips, verbose=0)
    np.testing.assert_allclose(after, 7.5 * before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("gain", [0.0, -2.0, float("nan"), float("inf")])
def test_gain_must_be_positive_and_finite(gain):
    from embedding_model.export import set_output_gain

    with pytest.raises(ValueError, match="positive"):
        set_output_gain(_randomised_embedder("ln"), gain)


def test_save_embedder_scales_the_saved_copy_not_the_training_backbone(tmp_path):
    from embedding_model.backends import weights_identity
    from embedding_model.export import load_embedder, save_embedder

    embedder = _randomised_embedder("ln")
    backbone = embedder.get_layer("backbone")
    weights_before = [w.copy() for w in backbone.get_weights()]
    clips = speechlike_clips(2)
    reference = embedder.predict(clips, verbose=0)

    save_embedder(backbone, tmp_path / "plain")
    save_embedder(backbone, tmp_path / "gain4", output_gain=4.0)

    for w, w0 in zip(backbone.get_weights(), weights_before):
        np.testing.assert_array_equal(w, w0)
    plain, scaled = load_embedder(tmp_path / "plain"), load_embedder(tmp_path / "gain4")
    np.testing.assert_allclose(plain.predict(clips, verbose=0), reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaled.predict(clips, verbose=0), 4.0 * reference, rtol=1e-4, atol=1e-5)
    meta_plain = json.loads((tmp_path / "plain" / "mswc_embedding.json").read_text())
    meta_scaled = json.loads((tmp_path / "gain4" / "mswc_embedding.json").read_text())
    assert meta_plain["output_gain"] == 1.0 and meta_scaled["output_gain"] == 4.0
    assert meta_scaled["identity"] == weights_identity(scaled) != meta_plain["identity"]


def test_export_cli_applies_the_gain_to_every_format(tiny_model_dir, tmp_path):
    import tensorflow as tf

    from embedding_model.export import TFLiteEmbedder, load_embedder, main

    out = tmp_path / "models"
    assert main(["--model", str(tiny_model_dir), "--out", str(out), "--output-gain", "3"]) == 0
    clips = speechlike_clips(3)
    original = load_embedder(tiny_model_dir).predict(clips, verbose=0)
    np.testing.assert_allclose(load_embedder(out).predict(clips, verbose=0), 3 * original, rtol=1e-4, atol=1e-5)
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    np.testing.assert_allclose(served(waveforms=tf.constant(clips))["embeddings"].numpy(), 3 * original,
                               rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(TFLiteEmbedder(out / "mswc_embedding.tflite").embed(clips), 3 * original,
                               rtol=1e-3, atol=1e-4)
    meta = json.loads((out / "mswc_embedding.json").read_text())
    before = json.loads((tiny_model_dir / "mswc_embedding.json").read_text())
    assert meta["output_gain"] == 3.0
    assert meta["gain_applied_to"] == before["identity"] != meta["identity"]


def test_export_cli_rejects_a_bad_gain_with_one_line(tiny_model_dir, tmp_path, capsys):
    from embedding_model.export import main

    assert main(["--model", str(tiny_model_dir), "--out", str(tmp_path / "m"), "--output-gain", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--output-gain" in err[0]
    assert not (tmp_path / "m").exists()


def test_train_embedding_rejects_a_bad_gain(tmp_path):
    from embedding_model.train_config import TrainingError, parse_config

    base = ["--corpus", str(tmp_path), "--run-dir", str(tmp_path / "run")]
    assert parse_config(base).output_gain == 1.0
    assert parse_config([*base, "--output-gain", "30"]).output_gain == 30.0
    with pytest.raises(TrainingError, match="--output-gain"):
        parse_config([*base, "--output-gain", "-1"])
