"""The training loop: model and optimizer, the step, checkpoints, validation and curves.

:func:`fit` trains on a :class:`~embedding_model.train_data.TrainingSet` for the
configured epochs, resuming from ``RUN_DIR/checkpoint`` (or ``--resume-from``), with a
checkpoint every few minutes and at every epoch's end, a row of ``curves.csv`` (and
``curves.png``) per epoch, and an optional time budget after which it stops with a
checkpoint. Checkpoints are npz files of the weights and optimizer variables in
order plus ``state.json``; the compact form (float16 weights, bfloat16 optimizer
moments) is the few-MB copy shipped in ``models/checkpoint``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from embedding_model.train_config import MODEL_SIZES, TrainConfig, TrainingError, log
from embedding_model.train_data import TrainingSet
from protos.atomic import atomic_write, atomic_write_text


def _specaugment_fn():
    import tensorflow as tf
    import tensorflow_io as tfio

    def one(x):
        # Masks are filled with the clip's mean level, not tfio's 0 (a loud log-mel value).
        mean = tf.reduce_mean(x)
        y = x - mean
        y = tfio.audio.freq_mask(y, param=7)  # x is [time, freq]: tfio masks axis 1
        y = tf.transpose(tfio.audio.freq_mask(tf.transpose(y), param=10))  # time mask
        return y + mean

    def batch(x):
        return tf.map_fn(one, x, fn_output_signature=tf.float32)

    return batch


def warp_tables(max_warp: float, steps: int = 33) -> tuple[np.ndarray, np.ndarray]:
    """Fractional source positions for the speaker warp, one row per warp factor.

    Frequency (vocal-tract-length perturbation): band ``j`` of the warped log-mel reads
    the original at the mel position of ``f_j / a``, so a formant at ``f`` moves to
    ``a * f``, as in a vocal tract ``1 / a`` times as long. Time: frame ``t`` reads ``c + (t - c) * b``
    around the middle frame ``c`` (a word said faster or slower). ``a`` and ``b`` run over
    ``steps`` values in ``[1 - max_warp, 1 + max_warp]``.

    Returns:
        (freq [steps, N_MELS], time [steps, N_FRAMES]) float32 positions, clipped to the edges.
    """
    from embedding_model.frontend import FMAX, FMIN, N_FRAMES, N_MELS, _hz_to_mel, _mel_to_hz

    factors = np.linspace(1 - max_warp, 1 + max_warp, steps)
    edges = np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2)
    centres = edges[1:-1]  # band centres, equally spaced in mel
    step = centres[1] - centres[0]
    source_mel = _hz_to_mel(_mel_to_hz(centres)[None, :] / factors[:, None])
    freq = np.clip((source_mel - centres[0]) / step, 0, N_MELS - 1)
    middle = (N_FRAMES - 1) / 2
    time = np.clip(middle + (np.arange(N_FRAMES)[None, :] - middle) * factors[:, None], 0, N_FRAMES - 1)
    return freq.astype(np.float32), time.astype(np.float32)


def _warp_fn(max_warp: float):
    """Batch log-mel [N, T, F] -> the same, each clip warped in frequency and time by its
    own random factors (:func:`warp_tables`; linear interpolation)."""
    import tensorflow as tf

    freq_table, time_table = (tf.constant(t) for t in warp_tables(max_warp))
    steps = int(freq_table.shape[0])

    def resample(x, positions, axis):
        lo = tf.floor(positions)
        w = positions - lo
        lo = tf.cast(lo, tf.int32)
        hi = tf.minimum(lo + 1, tf.shape(x)[axis] - 1)
        a = tf.gather(x, lo, axis=axis, batch_dims=1)
        b = tf.gather(x, hi, axis=axis, batch_dims=1)
        w = w[:, None, :] if axis == 2 else w[:, :, None]
        return a * (1 - w) + b * w

    def warp(x):
        n = tf.shape(x)[0]
        x = resample(x, tf.gather(freq_table, tf.random.uniform([n], 0, steps, tf.int32)), axis=2)
        return resample(x, tf.gather(time_table, tf.random.uniform([n], 0, steps, tf.int32)), axis=1)

    return warp


class Trainer:
    """Model, optimizer, checkpoint I/O and the training step."""

    def __init__(self, config: TrainConfig, n_classes: int, steps_per_epoch: int, teacher_mean, teacher_std):
        import keras
        import tensorflow as tf

        from embedding_model.model import ModelConfig, build_backbone, build_trainer

        keras.utils.set_random_seed(config.seed)
        self.options = config
        self.config = ModelConfig(embedding=config.embedding, input_norm=config.input_norm,
                                  **MODEL_SIZES[config.model_size])
        self.backbone = build_backbone(self.config)
        # The teacher head predicts every teacher's dimensions (openWakeWord, + EfficientWord-Net's).
        self.trainer = build_trainer(self.backbone, n_classes, head_dim=config.head_dim,
                                     teacher_dim=int(np.asarray(teacher_mean).shape[0]))
        total = steps_per_epoch * config.epochs
        warmup = min(max(steps_per_epoch // 2, 1), max(total // 10, 1))
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.lr * 0.05, decay_steps=max(total - warmup, 1), alpha=0.02,
            warmup_target=config.lr, warmup_steps=warmup,
        )
        self.schedule = schedule
        self.optimizer = keras.optimizers.Adam(learning_rate=schedule, clipnorm=5.0)
        self.optimizer.build(self.trainer.trainable_variables)
        self.teacher_mean = tf.constant(teacher_mean, tf.float32)
        self.teacher_std = tf.constant(teacher_std, tf.float32)
        self.n_classes = n_classes
        self._specaug = _specaugment_fn() if config.specaugment else None
        self._warp = _warp_fn(config.speaker_warp) if config.speaker_warp > 0 else None
        self.train_step = tf.function(self._train_step, reduce_retracing=True)
        self.eval_step = tf.function(self._eval_step, reduce_retracing=True)

    def _losses(self, cosines, tpred, y, t, has_t):
        import tensorflow as tf

        # Class id -1 marks an unlabelled row (real speech, distillation only): no class loss.
        labelled = tf.cast(y >= 0, tf.float32)
        onehot = tf.one_hot(tf.maximum(y, 0), self.n_classes)
        logits = self.options.scale * (cosines - self.options.margin * onehot)
        smooth = self.options.label_smoothing
        targets = onehot * (1 - smooth) + smooth / self.n_classes
        per_clip_ce = tf.nn.softmax_cross_entropy_with_logits(targets, logits)
        ce = tf.reduce_sum(per_clip_ce * labelled) / tf.maximum(tf.reduce_sum(labelled), 1.0)
        # has_t: [N, T], 1 on the dimensions (teacher parts) the row has a target for.
        tz = (t - self.teacher_mean) / self.teacher_std
        distill = tf.reduce_sum(tf.square(tpred - tz) * has_t) / tf.maximum(tf.reduce_sum(has_t), 1.0)
        return ce, distill

    def _train_step(self, x, y, t, has_t):
        import tensorflow as tf

        if self._warp is not None:
            x = self._warp(x)
        if self._specaug is not None:
            x = self._specaug(x)
        with tf.GradientTape() as tape:
            cosines, tpred = self.trainer(x, training=True)
            ce, distill = self._losses(cosines, tpred, y, t, has_t)
            loss = ce + self.options.distill_weight * distill
        grads = tape.gradient(loss, self.trainer.trainable_variables)
        self.optimizer.apply(grads, self.trainer.trainable_variables)
        labelled = tf.cast(y >= 0, tf.float32)
        hits = tf.cast(tf.equal(tf.argmax(cosines, -1, output_type=tf.int32), y), tf.float32)
        acc = tf.reduce_sum(hits * labelled) / tf.maximum(tf.reduce_sum(labelled), 1.0)
        return loss, ce, distill, acc

    def _eval_step(self, x, y):
        import tensorflow as tf

        cosines, _ = self.trainer(x, training=False)
        return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(cosines, -1, output_type=tf.int32), y), tf.float32))

    # --- checkpoints: weights and optimizer variables in order, as npz.
    def save_checkpoint(self, directory: Path, state: dict, compact: bool = False) -> None:
        """Write weights, optimizer state and ``state.json`` (last, so a torn write is never read).

        ``compact`` stores weights as float16 and optimizer moments as bfloat16 bits: the
        few-MB checkpoint committed to the repo.
        """
        directory.mkdir(parents=True, exist_ok=True)
        tag = f"{state['global_step']:08d}"
        weights = {f"w{i:04d}": v.numpy() for i, v in enumerate(self.trainer.weights)}
        opt = {f"o{i:04d}": v.numpy() for i, v in enumerate(self.optimizer.variables)}
        if compact:
            weights = {k: (a.astype(np.float16) if a.dtype == np.float32 else a) for k, a in weights.items()}
            opt = {k: (_to_bf16_bits(a) if a.dtype == np.float32 and a.ndim > 0 else a) for k, a in opt.items()}
        files = {"weights": f"weights-{tag}.npz", "optimizer": f"optimizer-{tag}.npz"}
        for key, arrays in (("weights", weights), ("optimizer", opt)):
            with atomic_write(directory / files[key], "wb") as f:
                np.savez_compressed(f, **arrays) if compact else np.savez(f, **arrays)
        state = {**state, "files": files, "compact": compact, "model_config": self.config.to_json(),
                 "n_classes": self.n_classes, "teacher_mean": self.teacher_mean.numpy().tolist(),
                 "teacher_std": self.teacher_std.numpy().tolist(),
                 "weight_paths": [v.path for v in self.trainer.weights],
                 "optimizer_paths": [v.path for v in self.optimizer.variables]}
        atomic_write_text(directory / "state.json", json.dumps(state, indent=1))
        for old in directory.glob("*.npz"):
            if old.name not in files.values():
                old.unlink()

    def load_checkpoint(self, directory: Path) -> dict:
        """Weights and optimizer state (step, moments) of a checkpoint; returns its state."""
        state = self.load_weights(directory)
        with np.load(directory / state["files"]["optimizer"]) as o:
            for i, v in enumerate(self.optimizer.variables):
                a = o[f"o{i:04d}"]
                if state["compact"] and a.dtype == np.uint16:
                    a = _from_bf16_bits(a)
                v.assign(a.astype(v.dtype))
        return state

    def load_weights(self, directory: Path) -> dict:
        """A checkpoint's weights only (the optimizer keeps its own state); returns its state."""
        state = read_checkpoint_state(directory)
        same_model = json.dumps(state["model_config"], sort_keys=True) == json.dumps(self.config.to_json(), sort_keys=True)
        if state["n_classes"] != self.n_classes or not same_model:
            raise TrainingError(f"checkpoint {directory} was trained with another model or class list; "
                                "use a new --run-dir or matching options")
        with np.load(directory / state["files"]["weights"]) as w:
            for i, v in enumerate(self.trainer.weights):
                v.assign(w[f"w{i:04d}"].astype(np.float32) if state["compact"] else w[f"w{i:04d}"])
        return state


def has_checkpoint(directory: Path) -> bool:
    return (directory / "state.json").is_file()


def read_checkpoint_state(directory: Path) -> dict:
    """``state.json`` of a checkpoint directory."""
    return json.loads((directory / "state.json").read_text(encoding="utf-8"))


def _to_bf16_bits(a: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even


def _from_bf16_bits(a: np.ndarray) -> np.ndarray:
    return (a.astype(np.uint32) << 16).view(np.float32)


@dataclasses.dataclass
class FitResult:
    """How :func:`fit` ended: the trained model, its last state, and whether the time budget stopped it."""

    trainer: Trainer
    state: dict
    budget_hit: bool
    n_train: int


class _Clock:
    """Training time across resumed runs (``elapsed_s`` of the state) and this run's budget."""

    def __init__(self, elapsed_before: float, max_minutes: float | None):
        self.start = time.time()
        self.elapsed_before = elapsed_before
        self.max_minutes = max_minutes

    def elapsed_s(self) -> float:
        return self.elapsed_before + time.time() - self.start

    def over_budget(self) -> bool:
        return self.max_minutes is not None and time.time() - self.start > self.max_minutes * 60


def _restore(trainer: Trainer, config: TrainConfig) -> dict:
    """The run's own checkpoint if it has one, else ``--resume-from``, else a fresh state
    (with ``--init-from``'s weights)."""
    if has_checkpoint(config.checkpoint_dir):
        state = trainer.load_checkpoint(config.checkpoint_dir)
        log(f"resumed from {config.checkpoint_dir} at epoch {state['epoch']} step {state['step_in_epoch']}")
        return state
    if config.resume_from is not None:
        if not has_checkpoint(config.resume_from):
            raise TrainingError(f"--resume-from {config.resume_from}: no state.json there")
        state = trainer.load_checkpoint(config.resume_from)
        log(f"started from {config.resume_from} at epoch {state['epoch']} step {state['step_in_epoch']}")
        return state
    fresh = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "elapsed_s": 0.0}
    if config.init_from is not None:
        if not has_checkpoint(config.init_from):
            raise TrainingError(f"--init-from {config.init_from}: no state.json there")
        source = trainer.load_weights(config.init_from)
        log(f"fine-tuning from the weights of {config.init_from} (its epoch {source['epoch']}, "
            f"step {source['global_step']}); new optimizer and schedule")
        fresh["init_from"] = {"path": str(config.init_from), "epoch": source["epoch"],
                              "global_step": source["global_step"]}
    return fresh


def fit(config: TrainConfig, n_classes: int, data: TrainingSet,
        on_epoch_end: Callable[[Trainer, dict], None] | None = None) -> FitResult:
    """Train (or resume training) until ``config.epochs`` or the time budget.

    Args:
        config: the run's configuration.
        n_classes: number of word classes.
        data: the cached training and validation clips.
        on_epoch_end: called with the trainer and the state after every finished
            epoch's checkpoint (the launcher ships the compact checkpoint there).

    Returns:
        A :class:`FitResult`; a checkpoint of its state is in ``RUN_DIR/checkpoint``.
    """
    batch_size = data.batch_size_for(config.batch_size)
    train_idx = data.train_idx
    steps_per_epoch = len(train_idx) // batch_size
    trainer = Trainer(config, n_classes, steps_per_epoch, *data.teacher_stats())
    state = _restore(trainer, config)
    clock = _Clock(state["elapsed_s"], config.max_minutes)

    def snapshot() -> dict:
        return {**state, "elapsed_s": clock.elapsed_s()}

    budget_hit = False
    while state["epoch"] < config.epochs and not budget_hit:
        sums, count, budget_hit = _run_epoch(trainer, config, data, state, batch_size, steps_per_epoch,
                                             clock, snapshot)
        if budget_hit and state["step_in_epoch"] < steps_per_epoch:
            break
        _finish_epoch(trainer, config, data, state, batch_size, sums, count, clock)
        trainer.save_checkpoint(config.checkpoint_dir, snapshot())
        if on_epoch_end is not None:
            on_epoch_end(trainer, snapshot())
    trainer.save_checkpoint(config.checkpoint_dir, snapshot())
    return FitResult(trainer, snapshot(), budget_hit, int(len(train_idx)))


def _run_epoch(trainer: Trainer, config: TrainConfig, data: TrainingSet, state: dict, batch_size: int,
               steps_per_epoch: int, clock: _Clock, snapshot) -> tuple[np.ndarray, int, bool]:
    """Train from ``state``'s step to the end of its epoch (or the budget); ``state`` advances.

    Returns:
        (sums of loss, ce, distill and accuracy over the steps run, steps run, budget hit).
    """
    import tensorflow as tf
    from tqdm import tqdm

    epoch = state["epoch"]
    # Seeded by (seed, epoch): a resumed epoch replays the same order and views.
    rng = np.random.default_rng([config.seed, epoch])
    train_idx = data.train_idx
    order = train_idx[rng.permutation(len(train_idx))]
    view_of = rng.integers(data.n_views, size=len(order))
    if config.clean_only:
        view_of[:] = 0
    labels, teacher, teacher_mask = data.labels, data.teacher, data.teacher_mask
    sums = np.zeros(4)
    count = 0
    budget_hit = False
    last_checkpoint = time.time()
    bar = tqdm(total=steps_per_epoch, initial=state["step_in_epoch"], desc=f"epoch {epoch + 1}/{config.epochs}",
               disable=config.no_progress, dynamic_ncols=True, unit="step")
    for step in range(state["step_in_epoch"], steps_per_epoch):
        sel = slice(step * batch_size, (step + 1) * batch_size)
        idx, views = order[sel], view_of[sel]
        x = data.features[idx, views].astype(np.float32)
        out = trainer.train_step(tf.constant(x), tf.constant(labels[idx]), tf.constant(teacher[idx]),
                                 tf.constant(teacher_mask[idx]))
        sums += [float(o) for o in out]
        count += 1
        state["step_in_epoch"] = step + 1
        state["global_step"] += 1
        bar.update(1)
        if count % 10 == 0:
            bar.set_postfix(loss=f"{sums[0] / count:.3f}", acc=f"{sums[3] / count:.3f}")
        if time.time() - last_checkpoint > config.checkpoint_minutes * 60:
            trainer.save_checkpoint(config.checkpoint_dir, snapshot())
            last_checkpoint = time.time()
        if clock.over_budget():
            budget_hit = True
            break
    bar.close()
    return sums, count, budget_hit


def _finish_epoch(trainer: Trainer, config: TrainConfig, data: TrainingSet, state: dict, batch_size: int,
                  sums: np.ndarray, count: int, clock: _Clock) -> None:
    """Validate, append the epoch's row to the curves, and move ``state`` to the next epoch."""
    val_clean, val_aug = evaluate(trainer, data, batch_size)
    n = max(count, 1)
    row = {
        "epoch": state["epoch"] + 1, "global_step": state["global_step"],
        "elapsed_min": round(clock.elapsed_s() / 60, 2),
        "lr": float(trainer.schedule(state["global_step"])),
        "train_loss": sums[0] / n, "train_ce": sums[1] / n, "train_distill": sums[2] / n, "train_acc": sums[3] / n,
        "val_acc_clean": val_clean, "val_acc_augmented": val_aug,
    }
    curves = config.run_dir / "curves.csv"
    append_curve(curves, row)
    plot_curves(curves, config.run_dir / "curves.png")
    log("epoch " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    state["epoch"] += 1
    state["step_in_epoch"] = 0


def evaluate(trainer: Trainer, data: TrainingSet, batch_size: int) -> tuple[float, float]:
    """Validation accuracy on the clean view (0) and on the first augmented view (1)."""
    import tensorflow as tf

    val_idx = data.val_idx
    if len(val_idx) == 0:
        return float("nan"), float("nan")
    accs = []
    for view in (0, min(1, data.n_views - 1)):
        correct = 0.0
        for s in range(0, len(val_idx), batch_size):
            idx = val_idx[s : s + batch_size]
            correct += float(trainer.eval_step(tf.constant(data.features[idx, view].astype(np.float32)),
                                               tf.constant(data.labels[idx])))
        accs.append(correct / len(val_idx))
    return accs[0], accs[1]


def append_curve(path: Path, row: dict) -> None:
    """Add (or replace) the row of ``row["epoch"]`` in ``curves.csv``, dropping later epochs."""
    rows = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]
    rows.append(row)
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k, "") for k in row})


def plot_curves(csv_path: Path, png_path: Path) -> None:
    """Losses and accuracies per epoch from ``curves.csv``, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epoch = [int(r["epoch"]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("train_ce", "train_distill"):
        a.plot(epoch, [float(r[key]) for r in rows], label=key)
    a.set_xlabel("epoch")
    a.set_title("training losses")
    a.legend()
    for key in ("train_acc", "val_acc_clean", "val_acc_augmented"):
        b.plot(epoch, [float(r[key]) for r in rows], label=key)
    b.set_xlabel("epoch")
    b.set_title("accuracy (validation: unseen speakers)")
    b.legend()
    fig.tight_layout()
    with atomic_write(png_path, "wb") as f:
        fig.savefig(f, format="png", dpi=90)
    plt.close(fig)
