"""Training input: the feature-cache shards of a plan, gathered into one in-memory set.

Builds (or reuses) one cache shard per training language (:mod:`embedding_model.cache`)
and keeps the clips that decoded, with their class ids, teacher targets and whether
they validate (the DEV split) or train (TRAIN).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from embedding_model.oww import DIM as TEACHER_DIM
from embedding_model.plan import TrainingPlan, plan_clips
from embedding_model.train_config import TrainConfig, TrainingError, log


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """Every cached clip of the plan's training languages.

    Attributes:
        features: np.ndarray [shape=(M, V, 49, 40)] float16 log-mel, V views per clip.
        labels: np.ndarray [shape=(M,)] int32 class ids (index into ``plan.classes``).
        teacher: np.ndarray [shape=(M, 96)] float32 teacher targets (zeros: none).
        is_val: np.ndarray [shape=(M,)] bool, True for validation (DEV) clips.
    """

    features: np.ndarray
    labels: np.ndarray
    teacher: np.ndarray
    is_val: np.ndarray

    @property
    def train_idx(self) -> np.ndarray:
        return np.flatnonzero(~self.is_val)

    @property
    def val_idx(self) -> np.ndarray:
        return np.flatnonzero(self.is_val)

    @property
    def has_teacher(self) -> np.ndarray:
        """np.ndarray [shape=(M,)] float32: 1 where the clip has a teacher target."""
        return np.any(self.teacher != 0, axis=1).astype(np.float32)

    @property
    def n_views(self) -> int:
        return int(self.features.shape[1])

    def batch_size_for(self, requested: int) -> int:
        """``requested``, or fewer when the set has fewer training clips (at least 2)."""
        n_train = len(self.train_idx)
        return requested if n_train >= requested else max(2, n_train)

    def teacher_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and std (+1e-3) of the training clips' teacher targets, [96] float32 each."""
        train = self.train_idx
        targets = self.teacher[train][self.has_teacher[train] > 0]
        if not len(targets):
            return np.zeros(TEACHER_DIM, np.float32), np.ones(TEACHER_DIM, np.float32)
        return targets.mean(0), targets.std(0) + 1e-3


def load_training_set(config: TrainConfig, plan: TrainingPlan) -> TrainingSet:
    """Build or reuse every language shard of ``plan``; gather them for training and validation.

    Raises:
        TrainingError: no training clip is left after the hold-outs.
    """
    from embedding_model.augment import make_rir_bank
    from embedding_model.cache import build_shard, load_shard

    class_index = plan.class_index()
    rirs = None
    feats, labels, teachers, is_val = [], [], [], []
    for lang in plan.langs:
        train_refs, val_refs = plan_clips(plan, lang)
        refs = train_refs + val_refs
        if not refs:
            continue
        if rirs is None:
            rirs = make_rir_bank(64, seed=config.seed)
        shard = build_shard(plan.corpus, lang, [r.link for r in refs], config.cache_root, views=config.views,
                            seed=config.seed, teacher=config.teacher, workers=config.workers, rirs=rirs,
                            progress=not config.no_progress)
        f, t, index = load_shard(shard)
        ok = np.asarray(index["ok"], dtype=bool)
        if index.get("n_failed"):
            log(f"{lang}: {index['n_failed']} clips could not be decoded and are skipped")
        feats.append(f[ok])
        teachers.append(t[ok])
        labels.append(np.array([class_index[f"{lang}/{r.word}"] for r in refs], dtype=np.int32)[ok])
        is_val.append(np.array([r.split == "DEV" for r in refs], dtype=bool)[ok])
    if not feats:
        raise TrainingError(f"{plan.corpus}: no training clips left after the hold-outs; use a larger corpus")
    data = TrainingSet(
        features=np.concatenate(feats),  # in RAM
        labels=np.concatenate(labels),
        teacher=np.concatenate(teachers),
        is_val=np.concatenate(is_val),
    )
    n_val = len(data.val_idx)
    log(f"data: {len(data.labels) - n_val} training clips, {n_val} validation clips, {data.n_views} views each")
    return data
