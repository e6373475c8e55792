"""build-dataset on an MSWC-layout directory: protocol, outputs, skips, determinism, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dataset_builder import cli
from protos import NONTARGET, TARGET, read_samples
from protos.errors import EXIT_STATUS_HELP
from tests.builder_helpers import make_tone_corpus

# Also run under the second supported Python in CI (.ci/run: -m second_python).
pytestmark = pytest.mark.second_python

LANG = "es"
WORDS = ["año", "sí", "casa", *[f"w{i}" for i in range(7)]]
CLIPS_PER_WORD = 16  # 10 TRAIN, 3 DEV, 3 TEST
SMALL_PROTOCOL = ["--known-words", "3", "--unknown-words", "3", "--clips-per-word", "8",
                  "--min-word-clips", "15", "--min-target-train", "8", "--min-target-eval", "3"]


def make_corpus(root: Path) -> Path:
    """10 words x 16 Opus clips (a distinct tone per word), plus four bad rows for 'año'."""
    return make_tone_corpus(root, LANG, WORDS, CLIPS_PER_WORD, n_train=10, n_dev=3, n_speakers=4,
                            seed=0, bad=("corrupt", "empty", "silent", "missing"))


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("mswc"))


def build(corpus: Path, out: Path, *extra: str, keywords=("año", "sí")) -> int:
    argv = ["--lang", LANG, "--mswc-root", str(corpus), "--out", str(out), "--backend", "test-bands",
            "--workers", "0", "--quiet", *SMALL_PROTOCOL, *extra]
    for kw in keywords:
        argv += ["--keyword", kw]
    return cli.main(argv)


@pytest.fixture(scope="module")
def built(corpus_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out")
    assert build(corpus_dir, out) == 0
    return out


def test_outputs_follow_the_protocol(built):
    samples, evals = read_samples(built / "samples.pb"), read_samples(built / "eval.pb")
    manifest = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    known, unknown = manifest["nontarget_words"]["known"], manifest["nontarget_words"]["unknown"]
    assert len(known) == 3 and len(unknown) == 3 and not set(known) & set(unknown)
    assert not (set(known) | set(unknown)) & {"año", "sí"}

    assert not set(samples.ids) & set(evals.ids)
    assert set(samples.keywords) == {"año", "sí", *known}
    assert set(evals.keywords) == {"año", "sí", *known, *unknown}
    for sample_set in (samples, evals):
        is_target = np.isin(sample_set.keywords, ["año", "sí"])
        assert (sample_set.sample_types[is_target] == TARGET).all()
        assert (sample_set.sample_types[~is_target] == NONTARGET).all()
        assert sample_set.embeddings.shape == (len(sample_set.ids), 16)
        assert all(i.split("/")[0] == k for i, k in zip(sample_set.ids, sample_set.keywords))

    # 'sí': 10 TRAIN -> pool, 6 DEV+TEST -> eval; 'año' lost its 4 bad TRAIN rows.
    assert manifest["counts"] == {
        "samples": {"año": 10, "nontarget": 12, "sí": 10},
        "eval": {"año": 6, "nontarget": 36, "sí": 6},
    }
    assert manifest["planned_counts"]["samples"]["año"] == 14
    for word in known:
        assert (samples.keywords == word).sum() == 4 and (evals.keywords == word).sum() == 4
    for word in unknown:
        assert (evals.keywords == word).sum() == 8
    by_split = manifest["counts_by_split"]
    assert sum(by_split["samples"].values()) == 32 and by_split["samples"]["TRAIN"] >= 20
    assert sum(by_split["eval"].values()) == 48 and by_split["eval"]["DEV"] + by_split["eval"]["TEST"] >= 12

    meta = samples.metadata
    assert (meta.language, meta.target_keywords, meta.role) == ("es", ["año", "sí"], "samples")
    assert (meta.backend, meta.embedding_dim, meta.model_id) == ("test-bands", 16, "bands-v1")
    assert evals.metadata.role == "eval"
    assert meta.params["seed"] == "0" and meta.params["known_words"] == "3"
    assert meta.params["nontarget_unknown_words"] == ",".join(unknown)
    assert samples.label_names == ["nontarget", "año", "sí"]
    assert manifest["backend"] == {"name": "test-bands", "dim": 16, "identity": "bands-v1"}
    assert manifest["files"]["samples.pb"]["clips"] == len(samples.ids)


def test_bad_clips_are_skipped_and_counted_by_reason(built):
    manifest = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    skipped = manifest["skipped"]
    assert skipped["total"] == 4
    by_id = {c["id"]: c["reason"] for c in skipped["clips"]}
    assert by_id["año/missing.opus"] == "missing"
    assert by_id["año/silent.opus"] == "silent"
    assert by_id["año/corrupt.opus"] == "unreadable"
    assert by_id["año/empty.opus"] in ("empty", "unreadable")
    assert sum(skipped["by_reason"].values()) == 4


def test_strict_stops_at_the_first_bad_clip(corpus_dir, tmp_path, capsys):
    assert build(corpus_dir, tmp_path, "--strict") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("build-dataset: error: clip 'año/") and "\n" not in err and "--strict" in err
    assert not (tmp_path / "samples.pb").exists()


def test_same_inputs_and_seed_give_identical_files_with_or_without_workers(corpus_dir, built, tmp_path):
    assert build(corpus_dir, tmp_path / "again", "--workers", "2", "--batch-size", "7") == 0
    for name in ("samples.pb", "eval.pb"):
        assert (tmp_path / "again" / name).read_bytes() == (built / name).read_bytes()
    assert build(corpus_dir, tmp_path / "seed1", "--seed", "1") == 0
    assert (tmp_path / "seed1" / "eval.pb").read_bytes() != (built / "eval.pb").read_bytes()


def test_dry_run_plans_without_writing(corpus_dir, tmp_path, capsys):
    assert build(corpus_dir, tmp_path / "dry", "--dry-run") == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["counts"]["samples"] == {"año": 14, "nontarget": 12, "sí": 10}
    assert not (tmp_path / "dry").exists()


@pytest.mark.parametrize("extra, keywords, message", [
    ((), ("ano",), "keyword 'ano' is not in the corpus; near matches: año"),
    (("--min-target-train", "11"), ("sí",), r"needs >= 11 TRAIN \(--min-target-train\)"),
    (("--known-words", "50"), ("sí",), "lower --known-words/--unknown-words"),
    (("--layer", "3"), ("sí",), "--layer applies to --backend wav2vec2 only"),
    (("--backend", "nope"), ("sí",), "unknown embedding backend 'nope'; available: "),
    (("--download-dir", "x"), ("sí",), "--download-dir only applies with --audio-archive"),
])
def test_bad_input_is_one_line_and_exit_status_1(corpus_dir, tmp_path, capsys, extra, keywords, message):
    assert build(corpus_dir, tmp_path, *extra, keywords=keywords) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("build-dataset: ")
    assert re.search(message, err), err


def test_missing_corpus_and_missing_model(corpus_dir, tmp_path, capsys):
    assert build(tmp_path / "nowhere", tmp_path / "out") == 1
    assert capsys.readouterr().err.startswith("build-dataset: ")
    code = cli.main(["--lang", LANG, "--keyword", "sí", "--mswc-root", str(corpus_dir),
                     "--out", str(tmp_path / "o"), "--backend", "mswc", "--model", str(tmp_path / "none"),
                     "--quiet", *SMALL_PROTOCOL])
    assert code == 3
    assert "no MSWC embedding model" in capsys.readouterr().err


def test_help_and_comma_separated_keywords(corpus_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--mswc-root" in help_text and "--audio-archive" in help_text and "exit status" in help_text
    assert " ".join(help_text.split()).endswith(EXIT_STATUS_HELP)
    assert build(corpus_dir, tmp_path / "dry", "--dry-run", keywords=("año, Sí",)) == 0
    assert json.loads(capsys.readouterr().out)["targets"] == ["año", "sí"]
