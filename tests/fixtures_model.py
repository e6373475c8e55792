"""Fixtures for embedding-model tests (a tiny model trained in seconds)."""

from __future__ import annotations

from pathlib import Path

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
