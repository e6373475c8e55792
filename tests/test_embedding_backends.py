"""Backend registry, the openWakeWord backend, and the architecture's interface."""

import numpy as np
import pytest

import embedding_model
from embedding_model import BackendUnavailable, get_backend, list_backends, register_backend
from tests.fixtures_model import speechlike_clips

# Also run under the second supported Python in CI (.ci/run: -m second_python).
pytestmark = pytest.mark.second_python


def test_registry_lists_the_three_backends():
    assert {"mswc", "openwakeword", "wav2vec2"} <= set(list_backends())


def test_unknown_backend_names_the_available_ones():
    with pytest.raises(ValueError, match="available: .*mswc"):
        get_backend("no-such-backend")


def test_register_backend_with_callable_and_lazy_string():
    class Constant:
        name, dim, identity = "const", 3, "c0"

        def __init__(self, value=1.0):
            self.value = value

        def embed(self, clips):
            return np.full((len(clips), 3), self.value, np.float32)

    register_backend("test-const", Constant)
    assert get_backend("test-const", value=2.0).embed(np.zeros((2, 16000), np.float32))[0, 0] == 2.0
    register_backend("test-missing", "no_such_module_xyz:Thing")
    with pytest.raises(BackendUnavailable, match="pip install"):
        get_backend("test-missing")
    with pytest.raises(ValueError):
        register_backend("bad", "not-a-module-spec")


def test_missing_model_path_says_how_to_get_one(tmp_path):
    with pytest.raises(BackendUnavailable, match="train-embedding"):
        embedding_model.load_model(tmp_path / "nowhere")


def test_openwakeword_backend_embeds_96_dims():
    backend = get_backend("openwakeword")
    clips = speechlike_clips(3)
    out = backend.embed(clips)
    assert backend.dim == 96 and out.shape == (3, 96) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    # Same input, same output; different clips, different vectors.
    np.testing.assert_allclose(backend.embed(clips[:1]), out[:1], rtol=1e-4, atol=1e-5)
    assert not np.allclose(out[0], out[1])
    assert get_backend("openwakeword").identity == backend.identity
    assert get_backend("openwakeword", context="bare").identity != backend.identity
    with pytest.raises(ValueError, match="16000"):
        backend.embed(np.zeros((2, 100), np.float32))


def test_every_backend_checks_the_clip_contract_with_the_one_validator(tiny_model_dir):
    from corpus.clip import ClipContractError
    from embedding_model.oww import OpenWakeWordEmbedder

    bad = speechlike_clips(2)
    bad[1, 5] = np.nan
    embedders = [get_backend("openwakeword"), get_backend("mswc", model=tiny_model_dir),
                 OpenWakeWordEmbedder(context="bare")]
    for embedder in embedders:
        with pytest.raises(ClipContractError, match=r"NaN or infinite .*clip 1"):
            embedder.embed(bad)
        with pytest.raises(ClipContractError, match="dtype int16"):
            embedder.embed(np.zeros((1, 16000), np.int16))


def test_backbone_shapes_and_named_embedding_layer():
    from embedding_model.model import EMBEDDING_LAYER, ModelConfig, build_backbone, build_embedder

    for kind in ("ln", "relu"):
        backbone = build_backbone(ModelConfig(embedding=kind))
        assert backbone.get_layer(EMBEDDING_LAYER).output.shape[-1] == 1024
        embedder = build_embedder(backbone)
        out = embedder.predict(speechlike_clips(2), verbose=0)
        assert out.shape == (2, 1024) and out.dtype == np.float32
    with pytest.raises(ValueError, match="embedding"):
        ModelConfig(embedding="tanh")


def test_band_norm_ignores_a_fixed_channel_and_old_configs_read_back():
    """--input-norm band: each mel band's mean over time is removed, so a fixed per-band
    offset (a microphone's or telephone line's response, additive in log-mel) leaves the
    embedding unchanged, where the default (the clip's mean only) does not. The default
    config's JSON has no such field, as the checkpoints trained before it."""
    import keras

    from embedding_model.frontend import N_FRAMES, N_MELS
    from embedding_model.model import ModelConfig, build_backbone

    rng = np.random.default_rng(0)
    logmel = rng.standard_normal((2, N_FRAMES, N_MELS)).astype(np.float32)
    channel = np.linspace(-3, 3, N_MELS, dtype=np.float32)[None, None, :]
    keras.utils.set_random_seed(0)
    band, clip = (build_backbone(ModelConfig(input_norm=n)) for n in ("band", "clip"))
    # Relative to the output's own size: an untrained network's outputs are about 1e-3, and
    # how far the channel moves them with the clip's mean removed varies with the draw of the
    # weights (0.4-1.6 of the output's largest value over six draws; band: 3e-7).
    moved = {}
    for name, m in (("band", band), ("clip", clip)):
        before = m.predict(logmel, verbose=0)
        moved[name] = float(np.abs(m.predict(logmel + channel, verbose=0) - before).max() / np.abs(before).max())
    assert moved["band"] < 1e-4 and moved["clip"] > 0.05, moved
    assert "input_norm" not in ModelConfig().to_json()
    assert ModelConfig.from_json(ModelConfig(input_norm="band").to_json()).input_norm == "band"
    with pytest.raises(ValueError, match="input_norm"):
        ModelConfig(input_norm="frame")


def test_flops_per_clip_are_a_few_mflops():
    from embedding_model.model import build_backbone, build_embedder, count_flops

    flops = count_flops(build_embedder(build_backbone()))
    assert 1e6 < flops < 30e6
