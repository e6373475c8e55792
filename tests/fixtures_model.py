"""Fixtures for embedding-model tests (a tiny model trained in seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# Options that make train-embedding run in seconds on the tiny corpus: a tiny backbone,
# two views per clip, no held-out sampling (the tiny corpus has only a handful of words).
TINY_TRAIN_ARGS = [
    "--model-size", "tiny",
    "--views", "2",
    "--epochs", "2",
    "--batch-size", "16",
    "--words-per-lang", "50",
    "--min-clips", "2",
    "--holdout-langs", "",
    "--holdout-word-frac", "0",
    "--holdout-voice-frac", "0",
    "--holdout-engines", "",
    "--teacher", "bare:8",
    "--workers", "1",
    "--no-progress",
]


def train_tiny(corpus: Path, run_dir: Path, *extra: str) -> int:
    """Run ``train-embedding`` with :data:`TINY_TRAIN_ARGS`; returns its exit code."""
    from embedding_model.train import main

    return main(["--corpus", str(corpus), "--run-dir", str(run_dir), *TINY_TRAIN_ARGS, *extra])


def speechlike_clips(n: int = 4, seed: int = 0) -> np.ndarray:
    """``n`` seeded one-second clips [n, 16000] float32: a harmonic voice (90-250 Hz) under a word-length envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    clips = []
    for _ in range(n):
        f0 = rng.uniform(90, 250)
        y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 10))
        y = y * np.exp(-((t - 0.5) ** 2) / 0.02) + 0.005 * rng.standard_normal(16000)
        clips.append(0.5 * y / np.abs(y).max())
    return np.asarray(clips, dtype=np.float32)


@pytest.fixture(scope="session")
def tiny_model_run(tiny_corpus, tmp_path_factory) -> Path:
    """Run directory of a tiny model trained on ``tiny_corpus`` (plan, checkpoint, curves, export)."""
    run_dir = tmp_path_factory.mktemp("tiny_model_run")
    code = train_tiny(Path(tiny_corpus), run_dir)
    assert code == 0, f"train-embedding exited with {code}"
    return run_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_run) -> Path:
    """Directory holding ``mswc_embedding.keras``: ``get_backend("mswc", model=tiny_model_dir)`` loads it."""
    return tiny_model_run / "export"
