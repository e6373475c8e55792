"""bench/bench_selection.py's report: tuned over several seeds beside the baselines."""

from __future__ import annotations

import numpy as np

from bench.bench_selection import MixtureSpec, markdown, mixture_experiment, run_pool, score_rows
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
