"""openWakeWord's speech embedding rebuilt in TensorFlow (embedding_model/oww_graph.py)."""

import numpy as np
import pytest

from tests.fixtures_model import speechlike_clips

pytest.importorskip("onnx", reason="the openwakeword extra (onnx) is not installed")


@pytest.fixture(scope="module")
def weights():
    from embedding_model.oww_graph import read_onnx_weights

    return read_onnx_weights()


def onnx_windows(clips: np.ndarray) -> np.ndarray:
    """openWakeWord's own ONNX models, one clip per call: windows 4-11 of the centred-2-s form."""
    from embedding_model.oww import OpenWakeWordEmbedder

    ref = OpenWakeWordEmbedder("centered2s", window_step=8)
    out = []
    for clip in clips:
        audio = np.clip(np.pad(clip, 8000) * 32767.0, -32768, 32767).astype(np.float32)[None]
        mel = ref._mel.run(None, {"input": audio})[0][:, 0] / 10.0 + 2.0
        windows = np.stack([mel[0, s : s + 76] for s in range(32, 32 + 8 * 8, 8)])
        out.append(ref._emb.run(None, {"input_1": windows[..., None]})[0].reshape(8, 96))
    return np.stack(out)


def test_sequence_model_matches_openwakewords_onnx_models(weights):
    from embedding_model.oww_graph import build_sequence_model

    clips = speechlike_clips(3)
    got = build_sequence_model(weights).predict(clips, verbose=0)
    ref = onnx_windows(clips)
    assert got.shape == (3, 8, 96)
    np.testing.assert_allclose(got, ref, atol=2e-3 * np.abs(ref).max())
    assert not np.allclose(got[0], got[1])


def test_a_clip_does_not_depend_on_its_batch_mates(weights):
    from embedding_model.oww_graph import build_sequence_model

    model = build_sequence_model(weights)
    clips = speechlike_clips(2)
    loud = np.clip(clips[1] * 30.0, -1, 1)[None]  # its maximum would move a batch-wide floor
    alone = model.predict(clips[:1], verbose=0)
    together = model.predict(np.concatenate([clips[:1], loud]), verbose=0)[:1]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-4)


def test_one_pass_over_the_clip_equals_every_window_on_its_own(weights):
    from embedding_model.oww_graph import build_window_embedder

    mel = np.random.default_rng(0).normal(1.0, 0.5, (2, 76 + 3 * 8, 32, 1)).astype(np.float32)
    whole = build_window_embedder(weights, frames=mel.shape[1]).predict(mel, verbose=0)
    single = build_window_embedder(weights)
    each = np.stack([single.predict(mel[:, s : s + 76], verbose=0)[:, 0] for s in range(0, 25, 8)], axis=1)
    assert whole.shape == (2, 4, 96)
    np.testing.assert_allclose(whole, each, atol=1e-4 * np.abs(each).max())


def test_saved_model_loads_without_the_onnx_files(weights, tmp_path):
    import keras

    from embedding_model.model import custom_objects
    from embedding_model.oww_graph import build_sequence_model

    model = build_sequence_model(weights)
    model.save(tmp_path / "seq.keras")
    loaded = keras.models.load_model(tmp_path / "seq.keras", custom_objects=custom_objects(), compile=False)
    clips = speechlike_clips(2)
    np.testing.assert_array_equal(loaded.predict(clips, verbose=0), model.predict(clips, verbose=0))
