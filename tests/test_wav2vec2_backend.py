"""The wav2vec2 backend, on a tiny randomly initialised model this test saves locally."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from embedding_model.backends import Backend, BackendUnavailable, get_backend

_EXTRA = ("the optional wav2vec2 extra is not installed (make install EXTRAS=all,wav2vec2,test, "
          "after torch's CPU wheel: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)")
torch = pytest.importorskip("torch", reason=_EXTRA)
transformers = pytest.importorskip("transformers", reason=_EXTRA)

HIDDEN = 24
LAYERS = 2


@pytest.fixture(scope="module")
def tiny_wav2vec2_dir(tmp_path_factory):
    """A 2-layer, 24-d Wav2Vec2Model with random weights, written with save_pretrained."""
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
    )
    path = tmp_path_factory.mktemp("w2v")
    transformers.Wav2Vec2Model(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    tones = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in (220, 440, 880)])
    return (tones + 0.01 * rng.standard_normal(tones.shape)).astype(np.float32)


def test_embeddings_are_the_pooled_hidden_layer(tiny_wav2vec2_dir, clips):
    backend = get_backend("wav2vec2", model=str(tiny_wav2vec2_dir), layer=1, pooling="mean")
    assert isinstance(backend, Backend)
    assert (backend.name, backend.dim) == ("wav2vec2", HIDDEN)
    emb = backend.embed(clips)
    assert emb.shape == (3, HIDDEN) and emb.dtype == np.float32

    model = transformers.Wav2Vec2Model.from_pretrained(tiny_wav2vec2_dir).eval()
    x = (clips - clips.mean(1, keepdims=True)) / np.sqrt(clips.var(1, keepdims=True) + 1e-7)
    with torch.no_grad():
        hidden = model(torch.from_numpy(x), output_hidden_states=True).hidden_states[1]
    np.testing.assert_allclose(emb, hidden.mean(1).numpy(), rtol=1e-4, atol=1e-5)
    # Different clips, different vectors; one clip alone gives the same vector as in a batch.
    assert not np.allclose(emb[0], emb[1])
    np.testing.assert_allclose(backend.embed(clips[:1]), emb[:1], rtol=1e-5, atol=1e-6)


def test_pooling_and_layer_options(tiny_wav2vec2_dir, clips):
    path = str(tiny_wav2vec2_dir)
    mean = get_backend("wav2vec2", model=path)
    both = get_backend("wav2vec2", model=path, pooling="meanmax")
    first = get_backend("wav2vec2", model=path, layer=0)
    assert both.dim == 2 * HIDDEN and mean.layer == LAYERS
    e_mean, e_both = mean.embed(clips), both.embed(clips)
    np.testing.assert_allclose(e_both[:, :HIDDEN], e_mean, rtol=1e-5, atol=1e-6)
    assert (e_both[:, HIDDEN:] >= e_both[:, :HIDDEN] - 1e-6).all()  # max >= mean
    assert not np.allclose(first.embed(clips), e_mean)
    # The identity names the weights AND the read-out: same model, other layer -> other id.
    assert len({mean.identity, both.identity, first.identity}) == 3
    assert get_backend("wav2vec2", model=path).identity == mean.identity


def test_bad_options_and_missing_model(tiny_wav2vec2_dir, tmp_path):
    with pytest.raises(ValueError, match=r"layer must be in \[-3, 2\], got 5"):
        get_backend("wav2vec2", model=str(tiny_wav2vec2_dir), layer=5)
    with pytest.raises(ValueError, match="pooling must be one of mean, max, meanmax"):
        get_backend("wav2vec2", model=str(tiny_wav2vec2_dir), pooling="median")
    with pytest.raises(BackendUnavailable, match="cannot load wav2vec2 model from directory"):
        get_backend("wav2vec2", model=str(tmp_path))
    with pytest.raises(BackendUnavailable, match="cannot load wav2vec2 model from hub id"):
        get_backend("wav2vec2", model="no-such-org/no-such-model", local_files_only=True)


def test_missing_extra_is_one_line_saying_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(BackendUnavailable) as info:
        get_backend("wav2vec2", model="anything")
    message = str(info.value)
    assert "\n" not in message
    assert "transformers is missing" in message and "pip install 'dataperf-speech[wav2vec2]'" in message


def test_build_dataset_with_the_wav2vec2_backend(tiny_wav2vec2_dir, tmp_path):
    from corpus.audio import write_opus
    from corpus.layout import ClipRecord, write_splits
    from dataset_builder import cli
    from protos import read_samples

    rng = np.random.default_rng(1)
    records = []
    for w, word in enumerate(["año", "sí", "casa", "mesa"]):
        (tmp_path / "es" / "clips" / word).mkdir(parents=True)
        for c in range(6):
            t = np.arange(48000) / 48000
            y = 0.3 * np.sin(2 * np.pi * (300 + 200 * w) * t) + 0.01 * rng.standard_normal(48000)
            write_opus(tmp_path / "es" / "clips" / word / f"{c}.opus", y.astype(np.float32))
            split = "TRAIN" if c < 4 else "DEV" if c == 4 else "TEST"
            records.append(ClipRecord(f"{word}/{c}.opus", word, split, True, "s", ""))
    write_splits(tmp_path / "es_splits.csv", records)
    out = tmp_path / "out"
    code = cli.main(["--lang", "es", "--mswc-root", str(tmp_path), "--out", str(out), "--keyword", "año",
                     "--backend", "wav2vec2", "--model", str(tiny_wav2vec2_dir), "--layer", "1",
                     "--pooling", "meanmax", "--known-words", "1", "--unknown-words", "1",
                     "--clips-per-word", "4", "--min-word-clips", "5", "--min-target-train", "4",
                     "--min-target-eval", "2", "--workers", "0", "--quiet"])
    assert code == 0
    samples, evals = read_samples(out / "samples.pb"), read_samples(out / "eval.pb")
    expected = get_backend("wav2vec2", model=str(tiny_wav2vec2_dir), layer=1, pooling="meanmax")
    for s in (samples, evals):
        assert (s.metadata.backend, s.metadata.embedding_dim) == ("wav2vec2", 2 * HIDDEN)
        assert s.metadata.model_id == expected.identity
        assert s.embeddings.shape[1] == 2 * HIDDEN
    assert len(samples.ids) == 4 + 2 and len(evals.ids) == 2 + 2 + 4
