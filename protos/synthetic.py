"""Random, seeded SampleSets for tests and benchmarks (no audio involved).

Each keyword gets a random centre in embedding space; its samples are the centre
plus Gaussian noise, so a classifier can learn the task but not perfectly (tune
with ``spread``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from protos.samples_io import NONTARGET, TARGET, DatasetMetadata, SampleSet


def random_sample_set(
    n: int,
    dim: int = 16,
    target_keywords: Sequence[str] = ("alpha", "beta", "gamma"),
    nontarget_keywords: Sequence[str] = ("one", "two", "three", "four", "five"),
    seed: int = 0,
    centre_seed: int = 1234,
    spread: float = 1.0,
    role: str = "samples",
    id_prefix: str = "",
    metadata: DatasetMetadata | None = None,
) -> SampleSet:
    """A pool of ``n`` samples, keywords drawn uniformly from targets + nontargets.

    Args:
        n: number of samples.
        dim: embedding dimension D.
        target_keywords / nontarget_keywords: the words; a sample's type follows its word.
        seed: seeds which words are drawn and the noise.
        centre_seed: seeds the keyword centres; keep it equal across a samples set and
            an eval set that must describe the same task.
        spread: noise standard deviation relative to the spread of the centres.
        role: ``metadata.role``.
        id_prefix: prepended to every id (``"{prefix}{word}/{i:05d}.opus"``).
        metadata: starting metadata (language, backend, ...); role and target keywords
            are filled in.

    Returns:
        SampleSet with ids [n], sample_types [n], keywords [n], embeddings [n, dim] float32.
    """
    words = np.asarray([*target_keywords, *nontarget_keywords])
    centres = np.random.default_rng(centre_seed).standard_normal((len(words), dim))
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(words), n)
    embeddings = centres[which] + spread * rng.standard_normal((n, dim))
    keywords = words[which]
    base = metadata or DatasetMetadata(language="xx", backend="synthetic", model_id="synthetic-1")
    meta = dataclasses.replace(base, role=role, target_keywords=sorted(target_keywords),
                               params=dict(base.params))
    return SampleSet(
        ids=[f"{id_prefix}{word}/{i:05d}.opus" for i, word in enumerate(keywords.tolist())],
        sample_types=np.where(which < len(target_keywords), TARGET, NONTARGET),
        keywords=keywords,
        embeddings=embeddings.astype(np.float32),
        metadata=meta,
    )
