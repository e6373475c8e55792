"""Quality-then-medoids (tuned's one-voice floor) on small pools the tests make."""

from __future__ import annotations

import numpy as np

from protos import NONTARGET, TARGET, DatasetMetadata, SampleSet
from selection.implementations import quality
from selection.pool import Pool, validate_selection

WORDS = ("alpha", "bravo", "charlie")


def two_mode_pool(seed: int = 0, per_mode: int = 12, dim: int = 8, mislabelled: int = 2):
    """Three keywords and two nontarget words; each keyword's clips form two tight modes
    far apart; ``mislabelled`` clips of "alpha" sit inside "bravo"'s first mode."""
    rng = np.random.default_rng(seed)
    ids, types, kws, vecs, mode = [], [], [], [], []
    for w, word in enumerate([*WORDS, "n1", "n2"]):
        for m in range(2):
            centre = np.zeros(dim)
            centre[w] = 10.0
            centre[dim - 1] = 6.0 * m
            for i in range(per_mode):
                vecs.append(centre + 0.3 * rng.standard_normal(dim))
                ids.append(f"{word}/m{m}_{i:02d}.wav")
                types.append(TARGET if word in WORDS else NONTARGET)
                kws.append(word)
                mode.append(m)
    bravo = np.zeros(dim)
    bravo[1] = 10.0
    for i in range(mislabelled):
        vecs.append(bravo + 0.3 * rng.standard_normal(dim))
        ids.append(f"alpha/wrong_{i}.wav")
        types.append(TARGET)
        kws.append("alpha")
        mode.append(-1)
    meta = DatasetMetadata(language="xx", target_keywords=list(WORDS), backend="test",
                           model_id="test-1", role="samples", params={})
    return SampleSet(ids=ids, sample_types=types, keywords=kws,
                     embeddings=np.asarray(vecs, dtype=np.float32), metadata=meta), np.asarray(mode)


def test_class_balanced_clean_and_from_the_best_half():
    samples, mode = two_mode_pool()
    pool = Pool.from_sample_set(samples, 8, 0)
    rows = validate_selection(pool.selection_from_indices(quality.quality_medoid_rows(pool)), pool)
    counts = np.bincount(pool.labels[rows], minlength=pool.num_classes)
    assert counts.tolist() == [2, 2, 2, 2]  # 8 over nontarget + 3 keywords
    assert (mode[rows] >= 0).all(), "a clip sitting among another keyword's clips was picked"
    present = np.flatnonzero(pool.class_sizes() > 0)
    probs = quality.out_of_fold_probabilities(pool.embeddings.astype(np.float64), pool.labels, 0)
    _, score = quality.own_class_quality(pool.labels, probs, present)
    for c in range(pool.num_classes):
        members = np.flatnonzero(pool.labels == c)
        half = np.sort(score[members])[::-1][len(members) // 2 - 1]
        assert (score[rows[pool.labels[rows] == c]] >= half).all(), c


def test_out_of_fold_issues_are_the_mislabelled_clips():
    samples, mode = two_mode_pool(seed=3, mislabelled=3)
    pool = Pool.from_sample_set(samples, 20, 0)
    x = pool.embeddings.astype(np.float64)
    present = np.flatnonzero(pool.class_sizes() > 0)
    probs = quality.out_of_fold_probabilities(x, pool.labels, 0)
    issue, score = quality.own_class_quality(pool.labels, probs, present)
    assert set(np.flatnonzero(issue).tolist()) == set(np.flatnonzero(mode < 0).tolist())
    assert score[mode < 0].max() < score[mode >= 0].min()


def test_deterministic_and_within_budget():
    samples, _ = two_mode_pool(seed=5)
    for budget in (4, 7, 30):
        pool = Pool.from_sample_set(samples, budget, 2)
        first = quality.quality_medoid_rows(pool)
        assert np.array_equal(first, quality.quality_medoid_rows(pool))
        assert len(first) == budget and len(set(first.tolist())) == budget


def test_k_medoids_are_members_and_distinct():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.1, (10, 3)), rng.normal(5, 0.1, (10, 3)), rng.normal(-5, 0.1, (10, 3))])
    medoids = quality.k_medoids(x, 3, seed=0)
    assert len(set(medoids.tolist())) == 3
    assert sorted((medoids // 10).tolist()) == [0, 1, 2]
    assert quality.k_medoids(x[:2], 5, seed=0).tolist() == [0, 1]
