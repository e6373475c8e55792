"""DataPerf's experiment protocol (dataset_builder.protocol), on splits made here."""

from __future__ import annotations

import random

import pytest

from corpus.layout import ClipRecord
from dataset_builder.errors import BuildError
from dataset_builder.protocol import NONTARGET, TARGET, ExperimentParams, design_experiment

# Also run under the second supported Python in CI (.ci/run: -m second_python).
pytestmark = pytest.mark.second_python


def make_records(words: dict[str, tuple[int, int, int]], invalid: int = 0) -> list[ClipRecord]:
    """Splits rows: word -> (TRAIN, DEV, TEST) clip counts; ``invalid`` extra VALID=False rows per word."""
    records = []
    for word, counts in words.items():
        i = 0
        for split, n in zip(("TRAIN", "DEV", "TEST"), counts):
            for _ in range(n):
                records.append(ClipRecord(f"{word}/c{i:04d}.opus", word, split, True, f"spk{i % 7}", ""))
                i += 1
        for _ in range(invalid):
            records.append(ClipRecord(f"{word}/c{i:04d}.opus", word, "TRAIN", False, "spk", ""))
            i += 1
    return records


CORPUS = {
    "sí": (30, 6, 6),
    "año": (25, 5, 4),
    **{f"w{k:02d}": (40, 5, 5) for k in range(12)},  # 50 clips each
    "rare": (5, 1, 1),
}


def params(**overrides) -> ExperimentParams:
    base = dict(keywords=("sí", "año"), known_words=3, unknown_words=2, clips_per_word=20,
                min_word_clips=30, min_target_train=10, min_target_eval=3, seed=1)
    base.update(overrides)
    return ExperimentParams(**base)


def test_targets_known_and_unknown_words_follow_dataperf():
    exp = design_experiment(make_records(CORPUS), params())
    assert exp.keywords == ("año", "sí")
    sample_ids = {c.link for c in exp.samples}
    eval_ids = {c.link for c in exp.eval}
    assert not sample_ids & eval_ids
    assert len(sample_ids) == len(exp.samples) and len(eval_ids) == len(exp.eval)

    # Targets: every TRAIN clip in the pool, every DEV+TEST clip in eval.
    for kw, (n_train, n_dev, n_test) in (("sí", CORPUS["sí"]), ("año", CORPUS["año"])):
        pool = [c for c in exp.samples if c.word == kw]
        held = [c for c in exp.eval if c.word == kw]
        assert len(pool) == n_train and {c.split for c in pool} == {"TRAIN"}
        assert len(held) == n_dev + n_test and {c.split for c in held} <= {"DEV", "TEST"}
        assert all(c.sample_type == TARGET for c in pool + held)

    assert len(exp.known_words) == 3 and len(exp.unknown_words) == 2
    assert not set(exp.known_words) & set(exp.unknown_words)
    assert not set(exp.known_words + exp.unknown_words) & {"sí", "año", "rare"}
    for word in exp.known_words:
        assert sum(c.word == word for c in exp.samples) == 10
        assert sum(c.word == word for c in exp.eval) == 10
    for word in exp.unknown_words:
        assert not any(c.word == word for c in exp.samples)
        assert sum(c.word == word for c in exp.eval) == 20
    assert all(c.sample_type == NONTARGET for c in exp.samples + exp.eval if c.word not in exp.keywords)
    assert exp.counts() == {
        "samples": {"año": 25, "nontarget": 30, "sí": 30},
        "eval": {"año": 9, "nontarget": 70, "sí": 12},
    }


def test_same_seed_same_experiment_in_any_record_order_other_seed_differs():
    records = make_records(CORPUS)
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    a = design_experiment(records, params())
    b = design_experiment(shuffled, params())
    assert a == b
    c = design_experiment(records, params(seed=2))
    assert (c.known_words, c.unknown_words, c.samples) != (a.known_words, a.unknown_words, a.samples)


def test_invalid_rows_are_left_out_unless_asked():
    records = make_records({"sí": (12, 3, 3), **{f"w{k}": (20, 0, 0) for k in range(3)}}, invalid=5)
    p = params(keywords=("sí",), known_words=1, unknown_words=1, min_word_clips=19, clips_per_word=20)
    exp = design_experiment(records, p)
    assert sum(c.word == "sí" for c in exp.samples) == 12
    exp = design_experiment(records, params(keywords=("sí",), known_words=1, unknown_words=1,
                                            min_word_clips=19, clips_per_word=20, include_invalid=True))
    assert sum(c.word == "sí" for c in exp.samples) == 17


def test_target_caps_draw_a_seeded_subset():
    exp = design_experiment(make_records(CORPUS), params(max_target_train=7, max_target_eval=2))
    assert exp.counts()["samples"]["sí"] == 7 and exp.counts()["eval"]["año"] == 2


def test_keyword_given_with_capitals_or_decomposed_accent_is_found():
    decomposed = "an\u0303o"  # "año" typed as n + combining tilde
    exp = design_experiment(make_records(CORPUS), params(keywords=("SÍ", decomposed)))
    assert exp.keywords == ("año", "sí")


def test_missing_keyword_lists_near_matches():
    with pytest.raises(BuildError, match=r"keyword 'ano' is not in the corpus; near matches: año"):
        design_experiment(make_records(CORPUS), params(keywords=("ano",)))


def test_keyword_with_too_few_clips_names_the_flags():
    with pytest.raises(BuildError, match=r"'rare' has 5 TRAIN and 2 DEV\+TEST clips, needs >= 10 TRAIN "
                                         r"\(--min-target-train\) and >= 3 DEV\+TEST \(--min-target-eval\)"):
        design_experiment(make_records(CORPUS), params(keywords=("rare",)))


def test_too_few_nontarget_words_says_which_flag_to_lower():
    with pytest.raises(BuildError, match=r"12 non-target words with >= 31 clips, the protocol needs 200 "
                                         r"\(100 known \+ 100 unknown\): lower --known-words/--unknown-words"):
        design_experiment(make_records(CORPUS), params(known_words=100, unknown_words=100))
    # DataPerf's defaults on a small corpus: an error, not a silent scale-down.
    with pytest.raises(BuildError, match="0 non-target words with >= 201 clips"):
        design_experiment(make_records(CORPUS), ExperimentParams(keywords=("sí",), min_target_train=1))


def test_bad_parameters_are_rejected():
    with pytest.raises(BuildError, match="no target keyword"):
        design_experiment(make_records(CORPUS), params(keywords=()))
    with pytest.raises(BuildError, match="--clips-per-word must be >= 1"):
        design_experiment(make_records(CORPUS), params(clips_per_word=0))
    with pytest.raises(BuildError, match="given twice"):
        design_experiment(make_records(CORPUS), params(keywords=("sí", "SÍ")))


def test_duplicate_links_are_counted_once():
    records = make_records(CORPUS)
    exp = design_experiment(records + records[:4], params())
    assert exp.duplicate_links == 4
    assert exp.samples == design_experiment(records, params()).samples
