"""The shipped model runs on TensorFlow's own CPU kernels (oneDNN off) and agrees with oneDNN on.

conftest.py sets TF_ENABLE_ONEDNN_OPTS=0 for the whole suite, so every test that runs a
model runs it the strict way; here the model is also run with oneDNN on, in a
subprocess, and the two are compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


def _clips(n: int = 12, seed: int = 3) -> np.ndarray:
    from embedding_model.export import _probe_clips

    return _probe_clips(n, seed=seed)


def test_suite_runs_with_the_strict_kernels():
    # The one-layer reproduction: TensorFlow's own kernel refuses unequal strides. If
    # this stops raising, the suite is no longer testing the strict kernels.
    import keras

    x = np.random.default_rng(0).standard_normal((2, 13, 5, 4)).astype(np.float32)
    layer = keras.layers.DepthwiseConv2D(3, strides=(2, 1), padding="same")
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    with pytest.raises(Exception, match="equal length strides"):
        layer(x)


@pytest.mark.parametrize("size", [5, 7, 8, 13, 14, 25])
def test_stride1_conv_plus_subsample_equals_the_strided_conv(size):
    from embedding_model.model import custom_objects, same_padding_offset

    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, size, size + 3, 6)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 6, 1)).astype(np.float32)
    # Equal strides run on every kernel, so the strided reference is computable here.
    ref = tf.nn.depthwise_conv2d(x, kernel, strides=[1, 2, 2, 1], padding="SAME").numpy()
    full = tf.nn.depthwise_conv2d(x, kernel, strides=[1, 1, 1, 1], padding="SAME")
    offsets = [same_padding_offset(size, 2), same_padding_offset(size + 3, 2)]
    got = custom_objects()["Subsample2D"]((2, 2), offsets)(full).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def _layers_rejected_by_plain_kernels(model):
    """Run a fresh one-layer copy of every layer of ``model``; list those that raise."""
    rejected = []
    rng = np.random.default_rng(0)
    for layer in model._flatten_layers(include_self=False):
        if type(layer).__name__ == "InputLayer" or isinstance(layer.input, (list, tuple)):
            continue
        shape = (2, *layer.input.shape[1:])
        replica = type(layer).from_config(layer.get_config())
        try:
            replica(rng.standard_normal(shape).astype(np.float32))
        except Exception as exc:  # noqa: BLE001 - any rejection is the finding
            rejected.append((layer.name, type(exc).__name__, str(exc).splitlines()[0][:120]))
    return rejected


def test_every_layer_of_the_model_runs_on_the_plain_kernels():
    from embedding_model.model import ModelConfig, build_backbone

    backbone = build_backbone(ModelConfig())
    assert any(type(layer).__name__ == "DepthwiseConv2D" for layer in backbone.layers)
    assert _layers_rejected_by_plain_kernels(backbone) == []


def test_the_probe_finds_a_layer_the_plain_kernels_reject():
    import keras

    x = keras.Input((13, 5, 4))
    y = keras.layers.DepthwiseConv2D(3, strides=(2, 1), padding="same", name="bad_dw")(x)
    rejected = _layers_rejected_by_plain_kernels(keras.Model(x, y))
    assert [name for name, *_ in rejected] == ["bad_dw"]


def test_no_depthwise_node_of_the_shipped_savedmodel_has_unequal_strides():
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((MODELS / "saved_model" / "saved_model.pb").read_bytes())
    graph = sm.meta_graphs[0].graph_def
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    depthwise = [n for n in nodes if n.op.startswith("DepthwiseConv2dNative")]
    assert depthwise, "expected depthwise convolutions in the SavedModel graph"
    bad = [(n.name, list(n.attr["strides"].list.i)) for n in depthwise
           if n.attr["strides"].list.i[1] != n.attr["strides"].list.i[2]]
    assert bad == [], f"depthwise nodes with unequal strides (TensorFlow's own CPU kernel rejects them): {bad}"


def test_rebuilding_the_shipped_model_keeps_its_numbers():
    from embedding_model.backends import weights_identity
    from embedding_model.export import load_embedder, rebuild_embedder
    from embedding_model.model import ModelConfig

    state = json.loads((MODELS / "checkpoint" / "state.json").read_text(encoding="utf-8"))
    shipped = load_embedder(MODELS)
    rebuilt = rebuild_embedder(shipped, ModelConfig.from_json(state["model_config"]))
    assert weights_identity(rebuilt) == weights_identity(shipped)
    clips = _clips(4)
    np.testing.assert_array_equal(rebuilt.predict(clips, verbose=0), shipped.predict(clips, verbose=0))


def test_shipped_identity_is_the_weights_and_graph_hash():
    from embedding_model import get_backend

    meta = json.loads((MODELS / "mswc_embedding.json").read_text(encoding="utf-8"))
    backend = get_backend("mswc")
    assert backend.identity == meta["identity"]


_EMBED_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from embedding_model import get_backend
np.save({out!r}, get_backend("mswc").embed(np.load({clips!r})))
"""


def _embed_with_onednn_on(clips: np.ndarray, tmp_path: Path) -> np.ndarray:
    np.save(tmp_path / "clips.npy", clips)
    out = tmp_path / "on.npy"
    script = _EMBED_SCRIPT.format(root=str(ROOT), out=str(out), clips=str(tmp_path / "clips.npy"))
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"},
                   check=True, capture_output=True, timeout=600)
    return np.load(out)


def test_shipped_model_embeddings_and_scores_agree_with_onednn_on_and_off(tiny_corpus, tmp_path):
    from corpus.audio import load_clip
    from corpus.layout import clip_path, read_splits
    from embedding_model import get_backend
    from embedding_model.export import TFLiteEmbedder, cosine_rows
    from eval.scoring import score

    records = [r for r in read_splits(tiny_corpus, "es") if r.valid]
    words = sorted({r.word for r in records})
    targets = words[:3]
    speech = np.stack([load_clip(clip_path(tiny_corpus, "es", r.link)) for r in records])
    clips = np.concatenate([speech, _clips()])
    off = get_backend("mswc").embed(clips)
    on = _embed_with_onednn_on(clips, tmp_path)
    assert np.all(np.isfinite(off))
    assert cosine_rows(off, on).min() >= 0.9999

    # The DataPerf score of the same split, from either set of vectors.
    labels = np.array([targets.index(r.word) + 1 if r.word in targets else 0 for r in records])
    train = np.array([r.split == "TRAIN" for r in records])
    scores = [score(v[: len(records)][train], labels[train], v[: len(records)][~train], labels[~train]).score
              for v in (off, on)]
    assert min(scores) > 0.2, scores  # a real task, not two failures agreeing
    assert abs(scores[0] - scores[1]) <= 0.01, scores

    served = tf.saved_model.load(str(MODELS / "saved_model")).signatures["serving_default"]
    sm = served(waveforms=tf.constant(clips))["embeddings"].numpy()
    assert cosine_rows(off, sm).min() >= 0.9999
    lite = TFLiteEmbedder(MODELS / "mswc_embedding.tflite").embed(clips)
    assert cosine_rows(off, lite).min() >= 0.9999


HYBRID = MODELS / "hybrid"


def test_shipped_hybrid_model_loads_with_its_identity_and_agrees_with_onednn_on_and_off(tmp_path):
    # models/hybrid (train-hybrid) needs no onnx or openwakeword to load: its weights are in the .keras file.
    from embedding_model import get_backend
    from embedding_model.export import cosine_rows

    meta = json.loads((HYBRID / "mswc_embedding.json").read_text(encoding="utf-8"))
    backend = get_backend("mswc", model=HYBRID)
    assert backend.identity == meta["identity"] and backend.dim == 1024
    clips = _clips()
    off = backend.embed(clips)
    np.save(tmp_path / "clips.npy", clips)
    script = _EMBED_SCRIPT.replace('get_backend("mswc")', f'get_backend("mswc", model={str(HYBRID)!r})').format(
        root=str(ROOT), out=str(tmp_path / "on.npy"), clips=str(tmp_path / "clips.npy"))
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"},
                   check=True, capture_output=True, timeout=600)
    assert np.all(np.isfinite(off))
    assert cosine_rows(off, np.load(tmp_path / "on.npy")).min() >= 0.9999
