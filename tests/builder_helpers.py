"""Shared by the build-dataset tests: a TensorFlow-free test backend and a tone corpus.

Importing this module registers the ``test-bands`` backend, also in Beam workers, which
import the module of the backend's class before they look the name up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from corpus.audio import write_opus
from corpus.layout import ClipRecord, write_splits
from embedding_model.backends import register_backend


class BandEnergyBackend:
    """A tiny deterministic embedding for builder tests: log energy in 16 frequency bands.

    clips [N, 16000] float32 -> [N, 16] float32; each row depends on its clip only.
    """

    name = "test-bands"
    dim = 16
    identity = "bands-v1"

    def embed(self, clips: np.ndarray) -> np.ndarray:
        spectrum = np.abs(np.fft.rfft(clips, axis=1))[:, :8000]
        return np.log1p(spectrum.reshape(len(clips), 16, 500).mean(axis=2)).astype(np.float32)


register_backend("test-bands", BandEnergyBackend)


def tone(freq: float, seconds: float, rng: np.random.Generator, sr: int = 48000) -> np.ndarray:
    """A sine at ``freq`` Hz with a little noise: np.ndarray [shape=(seconds * sr,)] float32."""
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def make_tone_corpus(root: Path, lang: str, words: Sequence[str], clips_per_word: int,
                     n_train: int, n_dev: int, n_speakers: int, seed: int,
                     bad: Sequence[str] = ("corrupt", "empty", "missing")) -> Path:
    """An MSWC-layout corpus of Opus tones (a distinct tone per word), plus bad rows.

    Clip c of each word is TRAIN below ``n_train``, DEV below ``n_train + n_dev``, TEST
    after, spoken by speaker ``spk{c % n_speakers}``. ``bad`` adds TRAIN rows of the
    first word: "corrupt" (not Opus), "empty" (0 bytes), "silent" (all zeros) and
    "missing" (no file), each by speaker spk9.
    """
    rng = np.random.default_rng(seed)
    records = []
    for w, word in enumerate(words):
        folder = root / lang / "clips" / word
        folder.mkdir(parents=True)
        for c in range(clips_per_word):
            name = f"c{c:02d}.opus"
            write_opus(folder / name, tone(300 + 150 * w + 5 * c, 0.6 + 0.05 * c, rng))
            split = "TRAIN" if c < n_train else "DEV" if c < n_train + n_dev else "TEST"
            records.append(ClipRecord(f"{word}/{name}", word, split, True, f"spk{c % n_speakers}", ""))
    folder = root / lang / "clips" / words[0]
    makers = {
        "corrupt": lambda p: p.write_bytes(b"OggS" + bytes(range(256)) * 4),
        "empty": lambda p: p.write_bytes(b""),
        "silent": lambda p: write_opus(p, np.zeros(48000, np.float32)),
        "missing": lambda p: None,
    }
    for kind in bad:
        makers[kind](folder / f"{kind}.opus")
        records.append(ClipRecord(f"{words[0]}/{kind}.opus", words[0], "TRAIN", True, "spk9", ""))
    write_splits(root / f"{lang}_splits.csv", records)
    return root


class WideBackend(BandEnergyBackend):
    """4096-d vectors (the band energies tiled): outputs 4x what the builder's
    free-space estimate assumes, so a disk can pass the check and still fill up."""

    name = "test-wide"
    dim = 4096
    identity = "wide-v1"

    def embed(self, clips: np.ndarray) -> np.ndarray:
        return np.tile(super().embed(clips), (1, self.dim // BandEnergyBackend.dim))


class SlowBackend(BandEnergyBackend):
    """The band backend, a quarter of a second per batch: a build that lasts long enough
    to be interrupted, or to meet a second build, while it runs."""

    name = "test-slow"
    identity = "bands-v1"

    def embed(self, clips: np.ndarray) -> np.ndarray:
        import time

        time.sleep(0.25)
        return super().embed(clips)


register_backend("test-wide", WideBackend)
register_backend("test-slow", SlowBackend)
