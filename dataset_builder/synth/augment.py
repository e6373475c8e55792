"""From a synthesized word to a one-second, 48 kHz clip that sounds recorded.

Per speaker (fixed): vocal-tract shift, loudness, room, noise type and level,
band-limit. Per clip (seeded from seed, language, word and speaker): the word's
position (a small shift around the centre), the noise realisation and its SNR
(jittered around the speaker's, within 0-30 dB), and the gain (jittered around
the speaker's loudness). Every step is a pure function of its inputs.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import soxr
from scipy import signal

from corpus.audio import OPUS_SAMPLE_RATE
from corpus.clip import CLIP_SECONDS
from corpus.rooms import shoebox_rir
from dataset_builder.synth.speakers import Speaker

SR = OPUS_SAMPLE_RATE
"""Rate clips are rendered and stored at: MSWC's 48 kHz Opus."""
CLIP_LEN = SR * CLIP_SECONDS
MAX_SHIFT_S = 0.1
SNR_JITTER_DB = 3.0
GAIN_JITTER_DB = 3.0
PEAK_LIMIT = 0.98


def trim_silence(y: np.ndarray, sr: int, threshold_db: float = -40.0, margin_s: float = 0.02) -> np.ndarray:
    """Cut leading and trailing silence (10 ms frames quieter than ``threshold_db`` below the peak).

    Args:
        y : np.ndarray [shape=(n,)] float32 mono.
        sr : int, sample rate.

    Returns:
        np.ndarray [shape=(m,)] float32, m <= n; ``y`` itself if it is all silence.
    """
    frame = max(1, sr // 100)
    n_frames = len(y) // frame
    if n_frames == 0:
        return y
    rms = np.sqrt(np.mean(y[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(rms > rms.max() * 10 ** (threshold_db / 20))
    if loud.size == 0:
        return y
    margin = int(margin_s * sr)
    start = max(0, loud[0] * frame - margin)
    end = min(len(y), (loud[-1] + 1) * frame + margin)
    return y[start:end]


def to_48k(y: np.ndarray, sr: int, formant_shift: float) -> np.ndarray:
    """Resample to 48 kHz, scaling every frequency by ``formant_shift``.

    Playing a recording faster scales formants (vocal-tract length) and pitch alike,
    and shortens it by the same factor; for espeak-ng the pitch is then drawn
    independently anyway.

    Returns:
        np.ndarray [shape=(round(len(y) * 48000 / (sr * formant_shift)),)] float32.
    """
    return soxr.resample(y.astype(np.float32), sr * formant_shift, SR, quality="HQ").astype(np.float32)


@functools.lru_cache(maxsize=256)
def room_impulse_response(rt60: float, room_seed: int) -> np.ndarray:
    """Impulse response of a seeded shoebox room (pyroomacoustics image source method) at 48 kHz.

    Returns:
        np.ndarray [shape=(n,)] float32, normalised so the direct path has amplitude 1.
    """
    r = np.random.default_rng(room_seed)
    dim = np.array([r.uniform(3.0, 10.0), r.uniform(3.0, 8.0), r.uniform(2.4, 3.5)])
    h = shoebox_rir(dim, rt60, SR, r, max_order=30)
    h = h[: int(SR * min(1.0, 1.2 * rt60 + 0.05))]
    peak = np.max(np.abs(h))
    return (h / peak).astype(np.float32) if peak > 0 else np.ones(1, np.float32)


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS background noise of ``kind`` (one of ``speakers.NOISE_TYPES``).

    ``babble`` is speech-shaped noise (energy mostly 100-4000 Hz) under a few
    syllable-rate envelopes, the way a crowd of talkers sounds from afar; ``hum`` is
    mains hum (50 or 60 Hz and harmonics) over a little white noise.

    Returns:
        np.ndarray [shape=(n,)] float32 with RMS 1.
    """
    if kind == "hum":
        t = np.arange(n) / SR
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        y = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 6))
        y = y + 0.05 * rng.standard_normal(n)
    else:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / SR)
        f[0] = f[1]
        if kind == "white":
            shape = np.ones_like(f)
        elif kind == "pink":
            shape = 1 / np.sqrt(f)
        elif kind == "brown":
            shape = 1 / f
        elif kind == "babble":
            shape = (f > 100) / (1 + (f / 500.0) ** 2) ** 0.5 * (f < 4000)
        else:
            raise ValueError(f"unknown noise type {kind!r}")
        y = np.fft.irfft(spectrum * shape, n)
        if kind == "babble":
            t = np.arange(n) / SR
            env = np.zeros(n)
            for _ in range(int(rng.integers(3, 7))):
                rate = rng.uniform(3.0, 6.0)
                env += np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)), 0, None) ** 2
            y = y * (0.3 + env)
    y = np.asarray(y, dtype=np.float64)
    rms = math.sqrt(float(np.mean(y**2))) or 1.0
    return (y / rms).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _band_filter(band: str) -> np.ndarray | None:
    if band == "full":
        return None
    if band == "telephone":
        return signal.butter(6, [300, 3400], btype="bandpass", fs=SR, output="sos")
    if band == "microphone":
        # A small consumer microphone: weak lows, rolled-off highs.
        return signal.butter(4, [120, 7000], btype="bandpass", fs=SR, output="sos")
    raise ValueError(f"unknown band {band!r}")


def render_clip(word: np.ndarray, speaker: Speaker, rng: np.random.Generator, augment: bool) -> np.ndarray:
    """Place a synthesized word in a one-second clip and pass it through the speaker's channel.

    Args:
        word : np.ndarray [shape=(n,)] float32, the trimmed word at 48 kHz.
        speaker: whose channel and loudness to use.
        rng: the clip's generator (shift, noise, SNR and gain jitter).
        augment: apply room, noise, band-limit, shift and gain jitter; without it the
            word is centred and only brought to the speaker's loudness.

    Returns:
        np.ndarray [shape=(48000,)] float32 in [-1, 1].
    """
    if len(word) > CLIP_LEN:
        # MSWC keeps the middle second of words longer than a second.
        start = (len(word) - CLIP_LEN) // 2
        word = word[start : start + CLIP_LEN]
    n = len(word)
    speech_rms = math.sqrt(float(np.mean(word.astype(np.float64) ** 2))) or 1e-9
    offset = (CLIP_LEN - n) // 2
    gain_db = speaker.loudness_db
    if augment:
        room = speaker.room_rt60 > 0
        max_shift = min(int(MAX_SHIFT_S * SR), (CLIP_LEN - n) // 2)
        offset += int(rng.integers(-max_shift, max_shift + 1)) if max_shift > 0 else 0
        gain_db += float(rng.uniform(-GAIN_JITTER_DB, GAIN_JITTER_DB))
        snr = float(np.clip(speaker.snr_db + rng.normal(0.0, SNR_JITTER_DB), 0.0, 30.0))
        noise = colored_noise(speaker.noise, CLIP_LEN, rng) if speaker.noise != "none" else None
    clip = np.zeros(CLIP_LEN, dtype=np.float64)
    clip[offset : offset + n] = word
    if augment:
        if room:
            clip = signal.fftconvolve(clip, room_impulse_response(speaker.room_rt60, speaker.room_seed))[:CLIP_LEN]
        if noise is not None:
            clip = clip + noise * (speech_rms * 10 ** (-snr / 20))
        sos = _band_filter(speaker.band)
        if sos is not None:
            clip = signal.sosfilt(sos, clip)
    # Loudness measured over the word's span, as a listener would judge it.
    seg = clip[offset : offset + n]
    level = math.sqrt(float(np.mean(seg**2))) or 1e-9
    clip *= 10 ** (gain_db / 20) / level
    peak = float(np.max(np.abs(clip)))
    if peak > PEAK_LIMIT:
        clip *= PEAK_LIMIT / peak
    return clip.astype(np.float32)
