"""EfficientWord-Net's embedding (a training/benchmark extra): features and vectors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from embedding_model.ewn import N_FRAMES, N_MELS, WINDOW_SAMPLES, log_fbank, mel_filterbank

pytest.importorskip("onnxruntime")
_SPEC = importlib.util.find_spec("eff_word_net")
needs_ewn = pytest.mark.skipif(_SPEC is None, reason="efficientword-net is not installed (teacher-ewn extra)")


def test_filterbank_is_triangular_and_covers_the_band():
    bank = mel_filterbank()
    assert bank.shape == (64, 257)
    assert np.all(bank >= 0) and np.all(bank <= 1)
    assert np.count_nonzero(bank.sum(0)[5:250]) == 245  # every bin past the lowest filters is covered


def test_log_fbank_shape_and_level():
    t = np.arange(WINDOW_SAMPLES) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    feats = log_fbank(tone)
    assert feats.shape == (N_FRAMES, N_MELS) == (149, 64)
    # The band holding 1 kHz is the loudest in the middle frame.
    peak_band = int(np.argmax(feats[70]))
    centres = np.argmax(mel_filterbank(), axis=1) * 16000 / 512
    assert abs(centres[peak_band] - 1000) < 120
    with pytest.raises(ValueError):
        log_fbank(np.zeros(16000, np.float32))


@needs_ewn
def test_log_fbank_matches_the_wheels_own_features():
    path = Path(next(iter(_SPEC.submodule_search_locations))) / "audio_utils.py"
    spec = importlib.util.spec_from_file_location("ewn_audio_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(WINDOW_SAMPLES)).astype(np.float32)
    y[:4000] = 0.0
    theirs = module.logfbank(y, samplerate=16000, winlen=0.025, winstep=0.01, nfilt=64, nfft=512, preemph=0.0)
    assert np.allclose(log_fbank(y), theirs, atol=1e-4)


@needs_ewn
def test_embedder_gives_unit_vectors_that_tell_sounds_apart():
    from embedding_model.ewn import EfficientWordNetEmbedder

    t = np.arange(16000) / 16000
    rng = np.random.default_rng(0)
    env = np.hanning(16000)
    low = 0.3 * env * np.sin(2 * np.pi * 300 * t)
    high = 0.3 * env * rng.standard_normal(16000)
    clips = np.stack([low, low * 0.5, high]).astype(np.float32)
    emb = EfficientWordNetEmbedder()
    vectors = emb.embed(clips)
    assert vectors.shape == (3, 2048) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert np.array_equal(emb.embed(clips[:1]), vectors[:1])
    assert len(emb.identity) == 16


class _CountingTeacher:
    """A cheap stand-in teacher: the clip's first 4 samples, counting the clips it saw."""

    dim = 4

    def __init__(self, identity="t1"):
        self.identity = identity
        self.seen = 0

    def embed(self, clips):
        self.seen += len(clips)
        return np.asarray(clips)[:, :4] * 2


def test_targets_are_cached_resumed_and_recomputed_when_the_teacher_changes(tmp_path):
    from embedding_model.ewn import compute_targets

    clips = {str(i): np.full(16000, i / 10, np.float32) for i in range(10)}
    keys = sorted(clips)
    broken = {"on": True}

    def load(k):
        if broken["on"] and k == "7":
            raise KeyboardInterrupt  # stopped mid-run
        return None if k == "3" else clips[k]

    teacher = _CountingTeacher()
    with pytest.raises(KeyboardInterrupt):
        compute_targets(keys, load, tmp_path, teacher, chunk=4, progress=False)
    assert teacher.seen == 3 + 0  # chunk 0 holds keys 0,1,2,3 (3 unreadable); chunk 1 stopped
    broken["on"] = False
    out = compute_targets(keys, load, tmp_path, teacher, chunk=4, progress=False)
    assert teacher.seen == 3 + 6  # only the two missing chunks ran
    assert out.shape == (10, 4) and out.dtype == np.float16
    assert np.allclose(out[keys.index("5")], 1.0) and np.all(out[keys.index("3")] == 0)
    assert not (tmp_path / "ewn.chunks").exists()
    again = compute_targets(keys, load, tmp_path, teacher, chunk=4, progress=False)
    assert teacher.seen == 9 and np.array_equal(again, out)
    other = _CountingTeacher("t2")
    compute_targets(keys, load, tmp_path, other, chunk=4, progress=False)
    assert other.seen == 9


def test_corpus_targets_follow_the_splits_order(tiny_corpus, tmp_path):
    from corpus.layout import read_splits
    from embedding_model.ewn import corpus_targets

    teacher = _CountingTeacher()
    out = corpus_targets(tiny_corpus, "es", tmp_path, teacher, progress=False)
    links = [r.link for r in read_splits(tiny_corpus, "es")]
    assert out.shape == (len(links), 4) and teacher.seen == len(links)
    assert (tmp_path / "es" / "links.txt").read_text().split() == links
    assert np.any(out != 0, axis=1).all()  # every clip decoded and embedded


@needs_ewn
def test_digital_silence_gives_a_zero_vector_not_nan():
    from embedding_model.ewn import EfficientWordNetEmbedder

    out = EfficientWordNetEmbedder().embed(np.zeros((1, 16000), np.float32))
    assert np.all(out == 0)
