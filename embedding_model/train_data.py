"""Training input: the feature-cache shards of a plan, gathered into one in-memory set.

Builds (or reuses) one cache shard per training language (:mod:`embedding_model.cache`)
and keeps the clips that decoded, with their class ids, teacher targets and whether
they validate (the DEV split) or train (TRAIN).

Two optional inputs widen the teacher signal: EfficientWord-Net targets cached per clip
(``--ewn-targets``; projected on their first ``--ewn-dims`` principal components and
appended to openWakeWord's 96 dimensions, so one teacher head predicts both), and
unlabelled real-speech windows (``--unlabelled``), added as training rows with class
id -1: they carry teacher targets and no class, so only the distillation loss sees them.
With ``--ewn-windows-only`` EfficientWord-Net teaches on the real windows alone (its
targets cached beside them), and the corpus clips keep openWakeWord only: each
teacher's part of a row has its own mask (:attr:`TrainingSet.teacher_mask`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from embedding_model.oww import DIM as TEACHER_DIM
from embedding_model.plan import TrainingPlan, plan_clips
from embedding_model.train_config import TrainConfig, TrainingError, log


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """Every cached clip of the plan's training languages.

    Attributes:
        features: np.ndarray [shape=(M, V, 49, 40)] float16 log-mel, V views per clip.
        labels: np.ndarray [shape=(M,)] int32 class ids (index into ``plan.classes``);
            -1 for unlabelled rows (distillation only).
        teacher: np.ndarray [shape=(M, T)] float32 teacher targets (zeros: none); T = 96
            (openWakeWord), + ``ewn_dims`` with EfficientWord-Net.
        is_val: np.ndarray [shape=(M,)] bool, True for validation (DEV) clips.
        teacher_parts: widths of the teachers' parts of ``teacher``, in order (e.g.
            (96, 96) for openWakeWord then EfficientWord-Net); None: one part. A part of
            a row that is all zeros has no target there.
    """

    features: np.ndarray
    labels: np.ndarray
    teacher: np.ndarray
    is_val: np.ndarray
    teacher_parts: tuple[int, ...] | None = None

    @property
    def train_idx(self) -> np.ndarray:
        return np.flatnonzero(~self.is_val)

    @property
    def val_idx(self) -> np.ndarray:
        return np.flatnonzero(self.is_val)

    @functools.cached_property
    def teacher_mask(self) -> np.ndarray:
        """np.ndarray [shape=(M, T)] float32: 1 on the dimensions of each teacher part the row has a target for."""
        parts = self.teacher_parts or (self.teacher.shape[1],)
        if sum(parts) != self.teacher.shape[1]:
            raise ValueError(f"teacher parts {parts} do not add up to the {self.teacher.shape[1]} target dimensions")
        masks, start = [], 0
        for width in parts:
            block = self.teacher[:, start:start + width]
            masks.append(np.repeat(np.any(block != 0, axis=1, keepdims=True), width, axis=1))
            start += width
        return np.concatenate(masks, axis=1).astype(np.float32)

    @property
    def n_views(self) -> int:
        return int(self.features.shape[1])

    def batch_size_for(self, requested: int) -> int:
        """``requested``, or fewer when the set has fewer training clips (at least 2)."""
        n_train = len(self.train_idx)
        return requested if n_train >= requested else max(2, n_train)

    @property
    def n_unlabelled(self) -> int:
        """Rows without a class (distillation only)."""
        return int(np.sum(self.labels < 0))

    def teacher_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and std (+1e-3) of the training rows' teacher targets, [T] float32 each.

        Each dimension's statistics come from the rows that have a target there; a
        dimension no training row has gets mean 0 and std 1.
        """
        train = self.train_idx
        targets = self.teacher[train].astype(np.float64)
        mask = self.teacher_mask[train].astype(np.float64)
        count = mask.sum(0)
        safe = np.maximum(count, 1.0)
        mean = (targets * mask).sum(0) / safe
        var = (np.square(targets - mean) * mask).sum(0) / safe
        std = np.sqrt(var) + 1e-3
        mean[count == 0], std[count == 0] = 0.0, 1.0
        return mean.astype(np.float32), std.astype(np.float32)


def load_training_set(config: TrainConfig, plan: TrainingPlan) -> TrainingSet:
    """Build or reuse every language shard of ``plan``; gather them for training and validation.

    Raises:
        TrainingError: no training clip is left after the hold-outs.
    """
    from embedding_model.augment import make_rir_bank
    from embedding_model.cache import build_shard, load_shard

    class_index = plan.class_index()
    rirs = None
    feats, labels, teachers, is_val, ewn = [], [], [], [], []
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
        if config.ewn_targets is not None:
            ewn.append(_ewn_rows(config.ewn_targets, lang, [r.link for r in refs])[ok])
        labels.append(np.array([class_index[f"{lang}/{r.word}"] for r in refs], dtype=np.int32)[ok])
        is_val.append(np.array([r.split == "DEV" for r in refs], dtype=bool)[ok])
    if not feats:
        raise TrainingError(f"{plan.corpus}: no training clips left after the hold-outs; use a larger corpus")
    if config.unlabelled is not None:
        from embedding_model.unlabelled import distillation_set

        rirs = rirs if rirs is not None else make_rir_bank(64, seed=config.seed)
        extra = distillation_set(config.unlabelled, views=config.views, seed=config.seed, rirs=rirs,
                                 teacher=config.teacher, ewn=config.uses_ewn,
                                 progress=not config.no_progress)
        n = len(extra["features"])
        feats.append(extra["features"])
        teachers.append(extra["oww"] if "oww" in extra else np.zeros((n, teachers[0].shape[1]), np.float32))
        labels.append(np.full(n, -1, np.int32))
        is_val.append(np.zeros(n, bool))
        if config.uses_ewn:
            ewn.append(extra["ewn"])
        log(f"unlabelled: {n} real-speech windows from {config.unlabelled}, distillation only")
    is_val_all = np.concatenate(is_val)
    teacher = np.concatenate(teachers).astype(np.float32)
    if config.teacher is None:
        teacher = np.zeros((len(teacher), 0), np.float32)
    parts = (teacher.shape[1],) if teacher.shape[1] else ()
    if config.uses_ewn:
        if config.ewn_targets is None:  # windows only: the corpus rows before them have no target
            windows = ewn[0]
            ewn = [np.zeros((len(teacher) - len(windows), windows.shape[1]), np.float16), windows]
        teacher = _append_ewn(teacher, np.concatenate(ewn), ~is_val_all, config.ewn_dims)
        parts = (*parts, teacher.shape[1] - sum(parts))
    data = TrainingSet(
        features=np.concatenate(feats),  # in RAM
        labels=np.concatenate(labels),
        teacher=teacher if teacher.shape[1] else np.zeros((len(teacher), TEACHER_DIM), np.float32),
        is_val=is_val_all,
        teacher_parts=parts or None,
    )
    n_val = len(data.val_idx)
    log(f"data: {len(data.labels) - n_val - data.n_unlabelled} training clips, {data.n_unlabelled} unlabelled, "
        f"{n_val} validation clips, {data.n_views} views each, teacher targets of {data.teacher.shape[1]} dims")
    return data


def _ewn_rows(directory, lang: str, links: list[str]) -> np.ndarray:
    """EfficientWord-Net targets of ``links``: [len(links), 2048] float16 (zeros where the clip had none)."""
    from pathlib import Path

    target_dir = Path(directory) / lang
    hint = f"run python -m embedding_model.ewn --corpus CORPUS --langs {lang} --out {directory}"
    if not (target_dir / "ewn.npy").is_file() or not (target_dir / "links.txt").is_file():
        raise TrainingError(f"--ewn-targets: no targets for {lang} in {directory}: {hint}")
    cached = np.load(target_dir / "ewn.npy", mmap_mode="r")
    row_of = {link: i for i, link in enumerate((target_dir / "links.txt").read_text(encoding="utf-8").split("\n"))
              if link}
    missing = [link for link in links if link not in row_of]
    if missing:
        raise TrainingError(f"--ewn-targets: {len(missing)} clips of {lang} (e.g. {missing[0]}) have no target: {hint}")
    return np.asarray(cached[[row_of[link] for link in links]])


def _append_ewn(teacher: np.ndarray, ewn: np.ndarray, train_rows: np.ndarray, dims: int) -> np.ndarray:
    """Append the EfficientWord-Net targets' first ``dims`` principal components to ``teacher``.

    The projection is fitted on the training rows that have a target (a deterministic
    SVD, so a resumed run gets the same targets). A row without an EfficientWord-Net
    target gets zeros in that part (no target there) and keeps its openWakeWord part.
    """
    ewn = ewn.astype(np.float32)
    finite = np.all(np.isfinite(ewn), axis=1)
    ewn[~finite] = 0.0
    has = np.any(ewn != 0, axis=1)
    fit = ewn[has & train_rows].astype(np.float64)
    if len(fit) < 2:
        raise TrainingError("--ewn-targets: fewer than two training clips have an EfficientWord-Net target")
    mean = fit.mean(0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    dims = min(dims, vt.shape[0])
    projected = ((ewn - mean) @ vt[:dims].T).astype(np.float32)
    projected[~has] = 0.0
    return np.concatenate([teacher, projected], axis=1)
