"""Seeded channel augmentation for 1-second clips (numpy/scipy; no TensorFlow).

Real recordings reach the embedding through rooms, microphones, phone lines, codecs
and noise; TTS clips do not. Each augmented view passes a clean clip through a random
chain of those channels, drawn from a generator seeded by (seed, clip, view), so a
feature cache is reproducible bit for bit::

    augmenter = ChannelAugmenter(rirs=make_rir_bank(64, seed=0), babble=clean_clips)
    view = augmenter(clip, np.random.default_rng([seed, clip_index, view_index]))

Every stage keeps the clip at [16000] float32 in [-1, 1].
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from scipy import signal

from corpus.clip import SAMPLE_RATE
from corpus.rooms import shoebox_rir


def make_rir_bank(n: int, seed: int, max_len: int = 8000) -> list[np.ndarray]:
    """Room impulse responses of random shoebox rooms (pyroomacoustics image method).

    Args:
        n: number of rooms.
        seed: random seed.
        max_len: RIRs are truncated to this many samples (0.5 s).

    Returns:
        list of np.ndarray [shape=(<= max_len,)] float32, each starting at its direct
        path and scaled to unit energy.
    """
    rng = np.random.default_rng(seed)
    bank = []
    while len(bank) < n:
        dims = rng.uniform([2.5, 2.5, 2.2], [10.0, 8.0, 4.0])
        rt60 = rng.uniform(0.15, 0.9)
        try:
            rir = shoebox_rir(dims, rt60, SAMPLE_RATE, rng, max_order=14)
        except ValueError:
            continue  # this room cannot reach that RT60; draw another
        start = max(int(np.argmax(np.abs(rir))) - 16, 0)
        rir = rir[start : start + max_len]
        bank.append((rir / (np.sqrt(np.sum(rir**2)) + 1e-12)).astype(np.float32))
    return bank


def _colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
    noise = np.fft.irfft(spec / freqs ** (exponent / 2), n)
    return noise / (np.std(noise) + 1e-12)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


@dataclasses.dataclass
class ChannelAugmenter:
    """A random chain of channels applied to one clip.

    Args:
        rirs: room impulse responses (see :func:`make_rir_bank`); empty disables rooms.
        babble: np.ndarray [shape=(M, 16000)] float32 clean speech clips mixed in as
            babble noise (other words, other voices); None disables babble.
        p_clean: probability that a view keeps the clean channel (shift and gain only).
        snr_db: range of signal-to-noise ratios for added noise.
    """

    rirs: list[np.ndarray]
    babble: np.ndarray | None = None
    p_clean: float = 0.15
    p_room: float = 0.45
    p_band: float = 0.5
    p_noise: float = 0.75
    p_codec: float = 0.2
    snr_db: tuple[float, float] = (0.0, 30.0)
    max_shift: int = 1600

    def __call__(self, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """clip [16000] float32 -> augmented clip [16000] float32 in [-1, 1]."""
        y = np.asarray(clip, dtype=np.float64)
        n = y.size
        y = self._shift(y, rng)
        if rng.random() >= self.p_clean:
            if self.rirs and rng.random() < self.p_room:
                y = self._room(y, rng)
            if rng.random() < self.p_band:
                y = self._band_limit(y, rng)
            if rng.random() < self.p_noise:
                y = self._noise(y, rng)
            if rng.random() < self.p_codec:
                y = self._codec(y, rng)
        peak = np.max(np.abs(y)) + 1e-9
        # Level: from quiet to slightly clipped, as real recordings come.
        y = y / peak * 10 ** (rng.uniform(-30.0, 3.0) / 20)
        return np.clip(y, -1.0, 1.0).astype(np.float32)[:n]

    def _shift(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shift = int(rng.integers(-self.max_shift, self.max_shift + 1))
        out = np.zeros_like(y)
        if shift >= 0:
            out[shift:] = y[: y.size - shift]
        else:
            out[:shift] = y[-shift:]
        return out

    def _room(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        rir = self.rirs[int(rng.integers(len(self.rirs)))]
        wet = signal.fftconvolve(y, rir)[: y.size]
        return wet * (_rms(y) / _rms(wet))

    def _band_limit(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        kind = rng.choice(["telephone", "lowpass", "highpass", "tilt"])
        if kind == "telephone":
            # 8 kHz line: band 300-3400 Hz, then down- and up-sampled, mu-law half the time.
            sos = signal.butter(6, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")
            y = signal.sosfilt(sos, y)[::2]
            if rng.random() < 0.5:
                peak = np.max(np.abs(y)) + 1e-9
                mu = 255.0
                q = np.sign(y / peak) * np.log1p(mu * np.abs(y / peak)) / np.log1p(mu)
                q = np.round(q * 127) / 127
                y = peak * np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu
            return signal.resample_poly(y, 2, 1)
        if kind == "lowpass":
            cutoff = rng.uniform(2500, 7000)
            sos = signal.butter(int(rng.integers(2, 7)), cutoff, btype="lowpass", fs=SAMPLE_RATE, output="sos")
            return signal.sosfilt(sos, y)
        if kind == "highpass":
            cutoff = rng.uniform(100, 600)
            sos = signal.butter(int(rng.integers(2, 5)), cutoff, btype="highpass", fs=SAMPLE_RATE, output="sos")
            return signal.sosfilt(sos, y)
        # A cheap microphone's uneven response: a smooth random gain curve over frequency.
        spec = np.fft.rfft(y)
        knots = rng.uniform(-9.0, 9.0, size=8)
        curve = np.interp(np.linspace(0, 7, spec.size), np.arange(8), knots)
        return np.fft.irfft(spec * 10 ** (curve / 20), y.size)

    def _noise(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = y.size
        kinds = ["white", "pink", "brown", "hum"] + (["babble", "babble"] if self.babble is not None else [])
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "babble":
            k = int(rng.integers(3, 7))
            picks = rng.integers(len(self.babble), size=k)
            noise = np.zeros(n)
            for i in picks:
                noise += np.roll(self.babble[i].astype(np.float64), int(rng.integers(n)))
        elif kind == "hum":
            t = np.arange(n) / SAMPLE_RATE
            f0 = rng.choice([50.0, 60.0])
            noise = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 8))
            noise = noise + 0.3 * _colored_noise(rng, n, 1.0)
        else:
            noise = _colored_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
        snr = rng.uniform(*self.snr_db)
        noise = noise * (_rms(y) / (_rms(noise) * 10 ** (snr / 20)))
        return y + noise

    def _codec(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import soundfile as sf

        peak = np.max(np.abs(y)) + 1e-9
        buf = io.BytesIO()
        # compression_level near 1 is Opus at its lowest bitrates (about 6-12 kb/s).
        sf.write(buf, (y / peak * 0.9).astype(np.float32), SAMPLE_RATE, format="OGG", subtype="OPUS",
                 compression_level=float(rng.uniform(0.75, 1.0)))
        buf.seek(0)
        decoded, _ = sf.read(buf, dtype="float32")
        out = np.zeros_like(y)
        out[: min(decoded.size, y.size)] = decoded[: y.size]
        return out / 0.9 * peak
