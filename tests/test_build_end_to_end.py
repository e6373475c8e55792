"""The whole path on the tiny corpus and the tiny trained model: build -> select -> eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataset_builder import cli
from protos import read_samples
from tests.fixtures_corpus import TINY_CLIPS_PER_WORD, TINY_TARGETS

# Also run under the second supported Python in CI (.ci/run: -m second_python).
pytestmark = pytest.mark.second_python

LANG = "es"


# The tiny corpus's contract (tests/fixtures_corpus.py): 9 words x 10 clips (8 TRAIN,
# 1 DEV, 1 TEST); 3 targets, 6 nontarget words -> 3 known + 3 unknown.
TARGETS = TINY_TARGETS[LANG]
PROTOCOL = ["--known-words", "3", "--unknown-words", "3", "--clips-per-word", str(TINY_CLIPS_PER_WORD),
            "--min-word-clips", str(TINY_CLIPS_PER_WORD - 1), "--min-target-train", "8",
            "--min-target-eval", "2"]


def test_build_select_eval_on_the_tiny_corpus(tiny_corpus, tiny_model_dir, tmp_path, capsys):
    from eval.cli import main as eval_main
    from selection.main import main as select_main

    corpus = Path(tiny_corpus)
    targets, flags = TARGETS, PROTOCOL
    out = tmp_path / "ds"

    def build(where: Path, workers: int) -> int:
        return cli.main(["--lang", LANG, "--mswc-root", str(corpus), "--out", str(where),
                         "--model", str(tiny_model_dir), "--workers", str(workers), "--quiet", *flags,
                         *[a for t in targets for a in ("--keyword", t)]])

    assert build(out, workers=0) == 0
    samples, evals = read_samples(out / "samples.pb"), read_samples(out / "eval.pb")
    assert samples.metadata.backend == "mswc" and samples.metadata.model_id
    assert samples.metadata.embedding_dim == samples.embeddings.shape[1] == evals.embeddings.shape[1]
    assert set(samples.metadata.target_keywords) == set(targets)
    assert not set(samples.ids) & set(evals.ids)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["skipped"]["total"] == 0
    assert manifest["counts"] == {
        "samples": {**{t: 8 for t in targets}, "nontarget": 3 * 5},
        "eval": {**{t: 2 for t in targets}, "nontarget": 3 * 5 + 3 * 10},
    }
    unknown = manifest["nontarget_words"]["unknown"]
    assert unknown and not np.isin(samples.keywords, unknown).any() and np.isin(evals.keywords, unknown).any()

    # Same inputs and seed: byte-identical files, with the real model and decoding workers.
    assert build(tmp_path / "again", workers=2) == 0
    for name in ("samples.pb", "eval.pb"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()

    train_size = min(len(samples.ids), 3 * (len(targets) + 1))
    assert select_main(["--input_samples", str(out / "samples.pb"), "--outdir", str(tmp_path / "sel"),
                        "--train_size", str(train_size), "--algorithm", "random"]) == 0
    assert eval_main(["--eval_file", str(out / "eval.pb"), "--train_file", str(tmp_path / "sel" / "train.npz"),
                      "--json", str(tmp_path / "score.json"), "--no_progress"]) == 0
    score = json.loads((tmp_path / "score.json").read_text(encoding="utf-8"))
    assert 0.0 <= score["score"] <= 1.0
    assert score["backend"] == "mswc"
    capsys.readouterr()
