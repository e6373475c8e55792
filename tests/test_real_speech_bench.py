"""The real-speech benchmark's data preparation and episodes, on clips the tests make."""

from __future__ import annotations

import numpy as np
import pytest

from bench.bench_realspeech import letter_centroid_accuracy, make_episodes, score_vectors
from bench.real_speech import (
    CLIP_SAMPLES,
    LETTERS,
    ReservedVoiceError,
    augmented_copies,
    check_not_reserved,
    fetch_package,
    trim,
)

SR = 16000


def _tone_burst(seconds_before: float, seconds_on: float, seconds_after: float, noise_db: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int((seconds_before + seconds_on + seconds_after) * SR)
    y = rng.standard_normal(n) * 10 ** (noise_db / 20)
    start, stop = int(seconds_before * SR), int((seconds_before + seconds_on) * SR)
    y[start:stop] += 0.5 * np.sin(2 * np.pi * 440 * np.arange(stop - start) / SR)
    return y.astype(np.float32)


@pytest.mark.parametrize("noise_db", [-90.0, -45.0])
def test_trim_keeps_the_burst_and_drops_the_silence(noise_db):
    y = _tone_burst(0.7, 0.4, 0.9, noise_db)
    out = trim(y, SR)
    # 0.4 s of tone plus at most a frame and the 30 ms margin on each side.
    assert 0.4 * SR <= out.size <= 0.4 * SR + 2 * (0.03 + 0.02) * SR
    assert np.max(np.abs(out)) > 0.4


def test_trim_keeps_a_quiet_tail_above_the_noise_floor():
    # A loud vowel followed by a fricative-like tail 35 dB down, in a room 80 dB down:
    # the tail is speech.
    rng = np.random.default_rng(1)
    vowel = 0.5 * np.sin(2 * np.pi * 300 * np.arange(int(0.3 * SR)) / SR)
    tail = rng.standard_normal(int(0.2 * SR)) * 0.5 * 10 ** (-35 / 20)
    y = np.concatenate([np.zeros(8000), vowel, tail, np.zeros(8000)])
    y = (y + rng.standard_normal(y.size) * 0.5 * 10 ** (-80 / 20)).astype(np.float32)
    assert 0.48 * SR <= trim(y, SR).size <= 0.62 * SR


def test_augmented_copies_are_seeded_fit_the_second_and_differ():
    speech = np.sin(np.linspace(0, 300, 8000)).astype(np.float32)
    a = augmented_copies(speech, 6, seed=0, key="spk/a")
    assert a.shape == (6, CLIP_SAMPLES) and a.dtype == np.float32
    assert np.array_equal(a, augmented_copies(speech, 6, seed=0, key="spk/a"))
    assert not np.array_equal(a, augmented_copies(speech, 6, seed=1, key="spk/a"))
    assert not np.array_equal(a[0], a[1])
    assert np.max(np.abs(a)) <= 10 ** (-1 / 20) + 1e-6
    # Noise at 30, 20, 12 dB in turn: the 12 dB copy is the noisiest away from the word.
    quiet = lambda x: np.std(x[:2000]) / np.max(np.abs(x))  # noqa: E731
    assert quiet(a[2]) > quiet(a[0])
    with pytest.raises(ValueError):
        augmented_copies(np.zeros(CLIP_SAMPLES + 1, np.float32), 1, 0, "too/long")


@pytest.mark.parametrize("package", ["asterisk-core-sounds-es-wav", "asterisk-core-sounds-fr-gsm",
                                     "asterisk-core-sounds-it-g722", "asterisk-prompt-es-co",
                                     "asterisk-prompt-fr-armelle", "asterisk-prompt-it-menardi-alaw"])
def test_reserved_voices_are_refused_before_any_download(package, tmp_path):
    with pytest.raises(ReservedVoiceError, match="reserved"):
        check_not_reserved(package)
    with pytest.raises(ReservedVoiceError, match="reserved"):
        fetch_package(package, tmp_path)
    assert not (tmp_path / "pkgs").exists()


def test_benchmark_packages_are_not_reserved():
    for package in ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-ru-wav", "klettres-data"):
        check_not_reserved(package)


def test_episodes_are_cross_speaker_and_cover_every_ordered_pair():
    speakers = ["s1", "s2", "s3"]
    episodes = make_episodes(speakers, copies=6, episodes_per_pair=2, seed=3)
    assert len(episodes) == 12
    assert {(e["shot_speaker"], e["test_speaker"]) for e in episodes} == {
        (a, b) for a in speakers for b in speakers if a != b}
    for e in episodes:
        assert all(k[0] == e["shot_speaker"] for k, _ in e["train"])
        assert all(k[0] == e["test_speaker"] for k, _ in e["test"])
        targets = [LETTERS.index(t) for t in e["targets"]]
        assert sum(1 for _, y in e["train"] if y > 0) == 25
        assert sum(1 for _, y in e["train"] if y == 0) == 25
        # Target labels follow the sorted targets; nontarget clips are never target letters.
        assert all(k[1] == targets[y - 1] for k, y in e["train"] + e["test"] if y > 0)
        assert all(k[1] not in targets for k, y in e["train"] + e["test"] if y == 0)
        # Half the other letters never give a nontarget shot.
        shot_letters = {k[1] for k, y in e["train"] if y == 0}
        assert len(shot_letters) <= 10
    assert episodes == make_episodes(speakers, copies=6, episodes_per_pair=2, seed=3)


def _letter_vectors(speakers, copies, spread, seed=0):
    """Vectors where each letter has a direction and each clip a random offset."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((len(LETTERS), 32))
    index, rows = {}, []
    for s in speakers:
        for letter in range(len(LETTERS)):
            for c in range(copies):
                index[(s, letter, c)] = len(rows)
                rows.append(directions[letter] + spread * rng.standard_normal(32))
    return np.array(rows, dtype=np.float32), index


def test_scores_separate_a_clean_representation_from_noise():
    speakers = ["s1", "s2"]
    episodes = make_episodes(speakers, copies=6, episodes_per_pair=3)
    clean, index = _letter_vectors(speakers, 6, spread=0.2)
    noise, _ = _letter_vectors(speakers, 6, spread=20.0)
    good = score_vectors(clean, index, episodes)
    bad = score_vectors(noise, index, episodes)
    assert good["f1_mean"] > 0.9 and good["letter_centroid_acc"] > 0.95 and good["centroid_acc_mean"] > 0.95
    assert bad["letter_centroid_acc"] < 0.3 and bad["f1_mean"] < good["f1_mean"] - 0.3
    assert set(good["pairs"]) == {"s1->s2", "s2->s1"}
    assert letter_centroid_accuracy(clean, index, "s1", "s2") == good["pairs"]["s1->s2"][2]
