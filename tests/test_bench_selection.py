"""bench/bench_selection.py's report: tuned over several seeds beside the baselines."""

from __future__ import annotations

import numpy as np

from bench.bench_selection import (MixtureSpec, draw_summary, eval_speaker_subsets, markdown,
                                    mixture_experiment, real_speech_experiment, run_pool, score_rows)
from selection.implementations import tuned
from selection.pool import Pool, validate_selection

SMALL = MixtureSpec(known_words=5, unknown_words=5, clips_per_word=12, target_train=20, dim=32,
                    n_voices=6)


def test_tuned_seeds_are_the_pools_seeds_and_are_reported_beside_the_baselines():
    samples, eval_set = mixture_experiment(5, SMALL)
    rows = run_pool(samples, eval_set, train_sizes=[25], algorithms=["random", "tuned"],
                    random_draws=2, noise_runs=0, tuned_seeds=3)
    t = next(r for r in rows if r["algorithm"] == "tuned")
    assert len(t["f1_seeds"]) == 3 and t["f1_seeds"][0] == t["f1"]
    # Seed 2's score is what tuned scores on the pool drawn with seed 2.
    pool = Pool.from_sample_set(samples, 25, 2)
    picked = validate_selection(tuned.select(pool, verbose=False), pool)
    assert t["f1_seeds"][2] == score_rows(samples, picked, eval_set)
    assert np.isclose(t["f1_seed_mean"], np.mean(t["f1_seeds"]))
    assert np.isclose(t["f1_seed_sd"], np.std(t["f1_seeds"], ddof=1))
    for r in rows:
        r["pool"] = "mix"
    table = markdown(rows)
    assert "tuned over seeds" in table
    best = next(r for r in rows if r["algorithm"] == "random")["f1"]
    assert f"{t['f1_seed_mean']:.3f} ± {t['f1_seed_sd']:.3f} | {t['f1_seed_mean'] - best:+.3f} |" in table


def test_one_seed_keeps_the_table_as_it_was():
    samples, eval_set = mixture_experiment(6, SMALL)
    rows = run_pool(samples, eval_set, train_sizes=[25], algorithms=["tuned"], noise_runs=0)
    assert "f1_seeds" not in rows[0]
    rows[0]["pool"] = "mix"
    assert "tuned over seeds" not in markdown(rows)


def _letter_vectors(tmp_path, dim=8, seed=0):
    """A stand-in for the real-speech benchmark's cached vectors: one row per speaker,
    letter and copy, in the benchmark's order; each letter a cluster, each speaker an
    offset, so a selection scores differently against different eval speakers."""
    from bench.real_speech import DEFAULT_COPIES, LETTERS, SPEAKERS

    rng = np.random.default_rng(seed)
    letters = rng.normal(size=(len(LETTERS), dim)) * 3
    voices = rng.normal(size=(len(SPEAKERS), dim)) * 2
    rows = [letters[w] + voices[s] + rng.normal(size=dim)
            for s in range(len(SPEAKERS)) for w in range(len(LETTERS)) for _ in range(DEFAULT_COPIES)]
    path = tmp_path / "mswc-0123456789abcdef-digest.npy"
    np.save(path, np.asarray(rows, dtype=np.float32))
    return path


def test_eval_speaker_subsets_keep_one_voice_of_the_pools_words_and_every_unknown_clip(tmp_path):
    samples, eval_set = real_speech_experiment(_letter_vectors(tmp_path), ["asterisk_en", "klettres_en"])
    subsets = eval_speaker_subsets(samples, eval_set)
    assert sorted(subsets) == ["asterisk_ru", "klettres_en_GB"]
    pool_words = set(samples.keywords.tolist())
    unknown = np.flatnonzero(~np.isin(eval_set.keywords, list(pool_words)))
    assert len(unknown) > 0
    for who, rows in subsets.items():
        known = rows[np.isin(eval_set.keywords[rows], list(pool_words))]
        assert set(eval_set.speakers[known].tolist()) == {who}
        assert np.isin(unknown, rows).all()
        # The two halves of the pool's words partition them.
    both = np.concatenate([r[np.isin(eval_set.keywords[r], list(pool_words))] for r in subsets.values()])
    assert sorted(both.tolist()) == np.flatnonzero(np.isin(eval_set.keywords, list(pool_words))).tolist()
    # Pools of many eval voices get no per-speaker split.
    mix_samples, mix_eval = mixture_experiment(7, SMALL)
    assert eval_speaker_subsets(mix_samples, mix_eval) == {}


def test_tuned_is_scored_per_eval_speaker_on_real_speech_pools(tmp_path):
    samples, eval_set = real_speech_experiment(_letter_vectors(tmp_path), ["asterisk_en", "klettres_en"])
    t = run_pool(samples, eval_set, train_sizes=[25], algorithms=["tuned"], noise_runs=0)[0]
    pool = Pool.from_sample_set(samples, 25, 0)
    picked = validate_selection(tuned.select(pool, verbose=False), pool)
    for who, rows in eval_speaker_subsets(samples, eval_set).items():
        assert t["eval_by_speaker"][who] == score_rows(samples, picked, eval_set.subset(rows))
    # Two speakers per keyword: the few-voices bracket is reported, its upper end the prediction.
    assert t["predicted_range"] is not None and t["predicted_range"][1] == t["predicted"]


def test_the_draw_summary_averages_each_speaker_set_over_its_draws():
    def rows(pool, size, random, crossval, tuned_f1, predicted, by_speaker):
        return [{"pool": pool, "train_size": size, "algorithm": "random", "f1": random},
                {"pool": pool, "train_size": size, "algorithm": "crossval", "f1": crossval},
                {"pool": pool, "train_size": size, "algorithm": "tuned", "f1": tuned_f1,
                 "predicted": predicted, "eval_by_speaker": by_speaker}]

    results = (rows("real-a+b", 25, 0.3, 0.4, 0.45, 0.60, {"c": 0.5, "d": 0.3})
               + rows("real-a+b-seed100", 25, 0.5, 0.4, 0.40, 0.45, {"c": 0.45, "d": 0.35})
               + rows("real-a", 25, 0.2, 0.3, 0.25, None, {})
               + rows("mixture-1-voices2", 25, 0.1, 0.1, 0.1, 0.1, {}))
    table = draw_summary(results)
    # tuned - random per draw: +0.15 and -0.10 -> mean +0.025, se 0.125; tuned - crossval:
    # +0.05 and 0.00 -> +0.025, se 0.025; prediction errors +0.15 and +0.05.
    assert ("| real-a+b (2) | 25 | 0.400 | 0.400 | - | 0.425 | +0.025 ± 0.125 | +0.025 ± 0.025 | - "
            "| +0.100 / 0.100 / 1 of 2 | 0.150 |") in table
    assert "| real-a (1) | 25 | 0.200 | 0.300 | - | 0.250 | +0.050 | -0.050 | - | no prediction | - |" in table
    assert "mixture" not in table


def test_real_speech_pools_are_laid_out_anew_per_draw_so_a_selection_seed_is_not_reused(tmp_path):
    from selection.implementations.crossval import _subsets

    vectors = _letter_vectors(tmp_path)
    speakers = ["asterisk_en", "klettres_en"]

    def crossval_candidates(draw: int, shuffle: bool) -> list[list[str]]:
        """Speaker and copy of each target in crossval's seed-1 candidate subsets."""
        samples, _ = real_speech_experiment(vectors, speakers, seed=draw, shuffle=shuffle)
        pool = Pool.from_sample_set(samples, 60, 1)
        rows = np.flatnonzero(pool.labels > 0)
        return [sorted(i.split("/")[1] for i in samples.ids[rows[train]])
                for train, _ in _subsets(pool.labels[rows], 36, 1, True, 10)]

    # In the fixed order, one seed picks the same speakers and copies in every draw.
    assert crossval_candidates(3, False) == crossval_candidates(4, False)
    assert crossval_candidates(3, True) != crossval_candidates(4, True)
    # The shuffled pool holds the same clips, vectors and speakers, in another order.
    fixed, eval_fixed = real_speech_experiment(vectors, speakers, seed=3, shuffle=False)
    shuffled, eval_shuffled = real_speech_experiment(vectors, speakers, seed=3)
    order = np.argsort(shuffled.ids)
    assert (shuffled.ids[order] == np.sort(fixed.ids)).all()
    assert (shuffled.embeddings[order] == fixed.embeddings[np.argsort(fixed.ids)]).all()
    assert (shuffled.speakers[order] == fixed.speakers[np.argsort(fixed.ids)]).all()
    assert not (shuffled.ids == fixed.ids).all()
    assert (eval_shuffled.ids == eval_fixed.ids).all()
    # Deterministic per draw.
    again, _ = real_speech_experiment(vectors, speakers, seed=3)
    assert (again.ids == shuffled.ids).all()
