"""Shared by the spotter tests: a tone "language" for the band-energy test backend.

Keyword ``high`` is a 1500 Hz tone burst, keyword ``low`` a 600 Hz one; nontarget clips
are 3000 Hz bursts and background noise. :func:`write_train_file` writes the coreset as
``selection.main`` would; :func:`recording` lays bursts at known times over noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.builder_helpers import BandEnergyBackend  # noqa: F401  (registers "test-bands")

KEYWORD_FREQS = {"high": 1500.0, "low": 600.0}
NONTARGET_FREQ = 3000.0
LABEL_NAMES = ["nontarget", "high", "low"]
NOISE = 0.01


def burst(freq: float, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A tone burst with a smooth envelope: np.ndarray [shape=(seconds * sr,)] float32."""
    t = np.arange(int(seconds * sr)) / sr
    envelope = np.sin(np.pi * t / seconds) ** 0.5
    return (0.3 * envelope * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6))).astype(np.float32)


def clip(freq: float | None, rng: np.random.Generator) -> np.ndarray:
    """One 1-s 16 kHz training clip: a centred burst (None: background only)."""
    y = NOISE * rng.standard_normal(16000).astype(np.float32)
    if freq is not None:
        seconds = rng.uniform(0.4, 0.6)
        b = burst(freq + rng.uniform(-20, 20), seconds, 16000, rng)
        start = (16000 - len(b)) // 2 + int(rng.integers(-800, 800))
        y[start : start + len(b)] += b
    return y


def write_train_file(path: Path, seed: int = 0, backend: str = "test-bands",
                     model_id: str = "bands-v1", dim: int | None = None) -> Path:
    """A 25-row train.npz: 8 ``high``, 8 ``low``, 5 nontarget bursts, 4 background clips."""
    rng = np.random.default_rng(seed)
    freqs = ([KEYWORD_FREQS["high"]] * 8 + [KEYWORD_FREQS["low"]] * 8 + [NONTARGET_FREQ] * 5
             + [None] * 4)
    labels = [1] * 8 + [2] * 8 + [0] * 9
    clips = np.stack([clip(f, rng) for f in freqs])
    x = BandEnergyBackend().embed(clips)
    if dim is not None:
        x = x[:, :dim]
    np.savez(path, train_x=x, train_y=np.asarray(labels, np.int64),
             train_ids=np.asarray([f"c{i}" for i in range(len(labels))]),
             label_names=np.asarray(LABEL_NAMES), backend=np.asarray(backend),
             model_id=np.asarray(model_id), embedding_dim=np.asarray(x.shape[1], np.int64))
    return path


def recording(events: list[tuple[float, str]], seconds: float, sr: int = 16000,
              seed: int = 1) -> np.ndarray:
    """Background noise with 0.5-s bursts at ``events`` [(start second, "high" | "low" | "other")]."""
    rng = np.random.default_rng(seed)
    y = NOISE * rng.standard_normal(int(seconds * sr)).astype(np.float32)
    for start, what in events:
        freq = NONTARGET_FREQ if what == "other" else KEYWORD_FREQS[what]
        b = burst(freq, 0.5, sr, rng)
        i = int(start * sr)
        y[i : i + len(b)] += b
    return y


#: Keyword events of the standard test recording (start of the burst, keyword) and
#: nontarget bursts that must not fire.
EVENTS = [(2.0, "high"), (5.0, "low"), (8.5, "other"), (11.0, "high"), (13.2, "low"),
          (16.0, "other")]
SECONDS = 19.0


def matches(detections: list[dict], events=EVENTS, tolerance: float = 0.6) -> tuple[int, int]:
    """(keyword events found exactly once, false detections) for detection dicts.

    A detection matches an event when its keyword is the event's and its window
    [start, end] contains the burst's centre within ``tolerance`` seconds of slack.
    """
    found = 0
    used = set()
    for start, what in events:
        if what == "other":
            continue
        centre = start + 0.25
        hits = [i for i, d in enumerate(detections)
                if d["keyword"] == what and d["start"] - tolerance <= centre <= d["end"] + tolerance
                and abs((d["start"] + d["end"]) / 2 - centre) <= 0.5 + tolerance]
        if len(hits) == 1:
            found += 1
        used.update(hits)
    return found, len(detections) - len(used)
