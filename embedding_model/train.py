"""``train-embedding``: train the MSWC-style keyword classifier on an MSWC-layout corpus.

One command runs every stage, each resumable and reused when already done::

    train-embedding --corpus /work/data/train-corpus --run-dir /work/data/runs/main \\
        --cache-dir /work/data/cache --ship-to models

1. plan: classes (the N most frequent words per language), held-out words (all
   number words plus a seeded sample), held-out languages and voices (``plan.json``);
2. cache: K channel-augmented log-mel views per training clip and openWakeWord teacher
   targets, one shard per language (:mod:`embedding_model.cache`);
3. train: AM-softmax with label smoothing on a cosine head, plus distillation of
   openWakeWord's embedding, SpecAugment (tensorflow-io) on the fly; checkpoints every
   few minutes (``RUN_DIR/checkpoint``), curves in ``RUN_DIR/curves.csv`` and
   ``curves.png``; rerunning the same command resumes;
4. export: the embedding model (waveforms -> 1024-d) to ``RUN_DIR/export`` and, with
   ``--ship-to``, every format plus the small resumable checkpoint to that directory.

Exit codes: 0 done (or time budget reached with a checkpoint saved), 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from protos.atomic import atomic_write, atomic_write_text

EXIT_BAD_INPUT = 2

MODEL_SIZES = {
    "base": {},
    # For tests and smoke runs: trains in seconds, same interface (1024-d output).
    "tiny": {"widths": (16, 16, 24, 24, 24, 32), "stem_width": 8, "pooled_channels": 16},
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train-embedding",
        description="Train the MSWC-style keyword-classifier embedding (waveform -> 1024-d) on an "
        "MSWC-layout corpus. Rerunning the same command resumes from RUN_DIR/checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("corpus and held-out data")
    g.add_argument("--corpus", required=True, type=Path, help="MSWC-layout corpus root ({lang}_splits.csv, {lang}/clips/...)")
    g.add_argument("--langs", default=None, help="comma-separated languages (default: all in the corpus)")
    g.add_argument("--words-per-lang", type=int, default=300, help="N most frequent words per language considered as classes")
    g.add_argument("--holdout-langs", default=None, help="comma-separated languages never trained on (default: --n-holdout-langs at random)")
    g.add_argument("--n-holdout-langs", type=int, default=3, help="languages held out at random if --holdout-langs is not given")
    g.add_argument("--holdout-word-frac", type=float, default=0.1, help="fraction of the frequent words held out (number words always are)")
    g.add_argument("--holdout-engines", default="flite", help="comma-separated TTS engines whose voices are all held out ('' for none)")
    g.add_argument("--holdout-voice-frac", type=float, default=0.1, help="fraction of the other voices held out")
    g.add_argument("--min-clips", type=int, default=8, help="valid clips a word needs to be a class")
    g = p.add_argument_group("run and cache")
    g.add_argument("--run-dir", required=True, type=Path, help="where plan, checkpoints, curves and exports go")
    g.add_argument("--cache-dir", type=Path, default=None, help="feature cache (default: RUN_DIR/cache); shared between runs")
    g.add_argument("--views", type=int, default=4, help="log-mel views cached per clip (view 0 clean, others augmented)")
    g.add_argument("--teacher", default="centered2s:16",
                   help="openWakeWord teacher 'context:window_step' (context centered2s or bare), or 'none'")
    g.add_argument("--workers", type=int, default=2, help="processes for the cache")
    g.add_argument("--cache-only", action="store_true", help="build the plan and cache, then stop")
    g.add_argument("--export-only", action="store_true",
                   help="export (and with --ship-to, ship) RUN_DIR's latest checkpoint without training; "
                   "safe while the run is training")
    g = p.add_argument_group("model and training")
    g.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="base", help="backbone size")
    g.add_argument("--embedding", choices=["ln", "relu"], default="ln", help="embedding layer: linear+LayerNorm or Dense+BN+ReLU")
    g.add_argument("--epochs", type=int, default=40, help="epochs (the learning-rate schedule spans them all)")
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (Adam, cosine decay)")
    g.add_argument("--margin", type=float, default=0.2, help="AM-softmax additive margin (0: plain cosine softmax)")
    g.add_argument("--scale", type=float, default=30.0, help="AM-softmax scale")
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--distill-weight", type=float, default=1.0, help="weight of the teacher-regression loss (0 disables)")
    g.add_argument("--head-dim", type=int, default=128, help="rank of the class head")
    g.add_argument("--specaugment", type=int, default=1, choices=[0, 1], help="SpecAugment masks on the fly")
    g.add_argument("--clean-only", action="store_true",
                   help="train on the clean view only (ablation: no channel augmentation)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this many minutes; rerun to resume")
    g.add_argument("--checkpoint-minutes", type=float, default=5.0, help="minutes between checkpoints")
    g.add_argument("--resume-from", type=Path, default=None,
                   help="start from this checkpoint directory (e.g. models/checkpoint) if RUN_DIR has none")
    g.add_argument("--ship-to", type=Path, default=None,
                   help="when done, export every format and the small checkpoint here (e.g. models)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def fail(message: str) -> int:
    print(f"train-embedding: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BadInput as exc:
        return fail(str(exc))


class BadInput(ValueError):
    pass


def run(args) -> int:
    from embedding_model.plan import PlanError, TrainingPlan, make_plan

    if not args.corpus.is_dir():
        raise BadInput(f"--corpus {args.corpus} is not a directory (expected an MSWC-layout corpus root)")
    if args.views < 1 or args.batch_size < 2 or args.epochs < 1:
        raise BadInput("--views and --epochs must be >= 1 and --batch-size >= 2")
    teacher = None if args.teacher.lower() == "none" else args.teacher
    if teacher:
        context, _, step = teacher.partition(":")
        if context not in ("centered2s", "bare") or not step.isdigit():
            raise BadInput(f"--teacher {args.teacher!r}: expected 'centered2s:N', 'bare:N' or 'none'")
    if not teacher and args.distill_weight > 0:
        args.distill_weight = 0.0
    args.run_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = args.cache_dir or args.run_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)

    plan_path = args.run_dir / "plan.json"
    if plan_path.is_file():
        plan = TrainingPlan.load(plan_path)
        if Path(plan.corpus) != args.corpus.resolve():
            raise BadInput(f"{plan_path} was made for corpus {plan.corpus}; use a new --run-dir for {args.corpus}")
    else:
        csv_list = lambda s: [x for x in (s or "").split(",") if x]  # noqa: E731
        try:
            plan = make_plan(
                args.corpus,
                langs=csv_list(args.langs) or None,
                words_per_lang=args.words_per_lang,
                holdout_langs=csv_list(args.holdout_langs) if args.holdout_langs is not None else None,
                n_holdout_langs=args.n_holdout_langs,
                holdout_word_frac=args.holdout_word_frac,
                holdout_engines=csv_list(args.holdout_engines),
                holdout_voice_frac=args.holdout_voice_frac,
                min_clips=args.min_clips,
                seed=args.seed,
            )
        except (PlanError, ValueError, OSError) as exc:
            raise BadInput(str(exc)) from exc
        plan.save(plan_path)
    log(args, f"plan: {len(plan.langs)} training languages, {len(plan.classes)} classes, held out: "
        f"languages {plan.holdout_langs}, engines {plan.holdout_engines}, {len(plan.holdout_voices)} voices")

    if args.export_only:
        return export_only(args, plan)
    data = load_data(args, plan, cache_dir, teacher)
    if args.cache_only:
        return 0
    return train(args, plan, data)


def log(args, message: str) -> None:
    print(f"[train-embedding {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_data(args, plan, cache_dir: Path, teacher: str | None) -> dict:
    """Build or reuse every language shard; return arrays for training and validation."""
    from embedding_model.augment import make_rir_bank
    from embedding_model.cache import build_shard, load_shard
    from embedding_model.plan import plan_clips

    class_index = plan.class_index()
    rirs = None
    feats, labels, teachers, is_val = [], [], [], []
    for lang in plan.langs:
        train_refs, val_refs = plan_clips(plan, lang)
        refs = train_refs + val_refs
        if not refs:
            continue
        if rirs is None:
            rirs = make_rir_bank(64, seed=args.seed)
        shard = build_shard(plan.corpus, lang, [r.link for r in refs], cache_dir, views=args.views,
                            seed=args.seed, teacher=teacher, workers=args.workers, rirs=rirs,
                            progress=not args.no_progress)
        f, t, index = load_shard(shard)
        ok = np.asarray(index["ok"], dtype=bool)
        if index.get("n_failed"):
            log(args, f"{lang}: {index['n_failed']} clips could not be decoded and are skipped")
        feats.append(f[ok])
        teachers.append(t[ok])
        labels.append(np.array([class_index[f"{lang}/{r.word}"] for r in refs], dtype=np.int32)[ok])
        is_val.append(np.array([r.split == "DEV" for r in refs], dtype=bool)[ok])
    if not feats:
        raise BadInput(f"{plan.corpus}: no training clips left after the hold-outs; use a larger corpus")
    data = {
        "features": np.concatenate(feats),  # [M, V, 49, 40] float16, in RAM
        "labels": np.concatenate(labels),
        "teacher": np.concatenate(teachers),
        "is_val": np.concatenate(is_val),
    }
    n_val = int(data["is_val"].sum())
    log(args, f"data: {len(data['labels']) - n_val} training clips, {n_val} validation clips, "
        f"{data['features'].shape[1]} views each")
    if len(data["labels"]) - n_val < args.batch_size:
        args.batch_size = max(2, len(data["labels"]) - n_val)
    return data


# ---------------------------------------------------------------- training


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


class Trainer:
    """Model, optimizer, checkpoint I/O and the training step."""

    def __init__(self, args, plan, n_classes: int, steps_per_epoch: int, teacher_mean, teacher_std):
        import keras
        import tensorflow as tf

        from embedding_model.model import ModelConfig, build_backbone, build_trainer

        keras.utils.set_random_seed(args.seed)
        self.args = args
        self.config = ModelConfig(embedding=args.embedding, **MODEL_SIZES[args.model_size])
        self.backbone = build_backbone(self.config)
        self.trainer = build_trainer(self.backbone, n_classes, head_dim=args.head_dim)
        total = steps_per_epoch * args.epochs
        warmup = min(max(steps_per_epoch // 2, 1), max(total // 10, 1))
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=args.lr * 0.05, decay_steps=max(total - warmup, 1), alpha=0.02,
            warmup_target=args.lr, warmup_steps=warmup,
        )
        self.schedule = schedule
        self.optimizer = keras.optimizers.Adam(learning_rate=schedule, clipnorm=5.0)
        self.optimizer.build(self.trainer.trainable_variables)
        self.teacher_mean = tf.constant(teacher_mean, tf.float32)
        self.teacher_std = tf.constant(teacher_std, tf.float32)
        self.n_classes = n_classes
        self._specaug = _specaugment_fn() if args.specaugment else None
        self.train_step = tf.function(self._train_step, reduce_retracing=True)
        self.eval_step = tf.function(self._eval_step, reduce_retracing=True)

    def _losses(self, cosines, tpred, y, t, has_t):
        import tensorflow as tf

        onehot = tf.one_hot(y, self.n_classes)
        logits = self.args.scale * (cosines - self.args.margin * onehot)
        smooth = self.args.label_smoothing
        targets = onehot * (1 - smooth) + smooth / self.n_classes
        ce = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(targets, logits))
        tz = (t - self.teacher_mean) / self.teacher_std
        per_clip = tf.reduce_mean(tf.square(tpred - tz), axis=-1)
        distill = tf.reduce_sum(per_clip * has_t) / tf.maximum(tf.reduce_sum(has_t), 1.0)
        return ce, distill

    def _train_step(self, x, y, t, has_t):
        import tensorflow as tf

        if self._specaug is not None:
            x = self._specaug(x)
        with tf.GradientTape() as tape:
            cosines, tpred = self.trainer(x, training=True)
            ce, distill = self._losses(cosines, tpred, y, t, has_t)
            loss = ce + self.args.distill_weight * distill
        grads = tape.gradient(loss, self.trainer.trainable_variables)
        self.optimizer.apply(grads, self.trainer.trainable_variables)
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(cosines, -1, output_type=tf.int32), y), tf.float32))
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
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
        same_model = json.dumps(state["model_config"], sort_keys=True) == json.dumps(self.config.to_json(), sort_keys=True)
        if state["n_classes"] != self.n_classes or not same_model:
            raise BadInput(f"checkpoint {directory} was trained with another model or class list; "
                           "use a new --run-dir or matching options")
        with np.load(directory / state["files"]["weights"]) as w:
            for i, v in enumerate(self.trainer.weights):
                v.assign(w[f"w{i:04d}"].astype(np.float32) if state["compact"] else w[f"w{i:04d}"])
        with np.load(directory / state["files"]["optimizer"]) as o:
            for i, v in enumerate(self.optimizer.variables):
                a = o[f"o{i:04d}"]
                if state["compact"] and a.dtype == np.uint16:
                    a = _from_bf16_bits(a)
                v.assign(a.astype(v.dtype))
        return state


def _to_bf16_bits(a: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even


def _from_bf16_bits(a: np.ndarray) -> np.ndarray:
    return (a.astype(np.uint32) << 16).view(np.float32)


def train(args, plan, data: dict) -> int:
    import tensorflow as tf
    from tqdm import tqdm

    feats, labels, teacher, is_val = data["features"], data["labels"], data["teacher"], data["is_val"]
    train_idx = np.flatnonzero(~is_val)
    val_idx = np.flatnonzero(is_val)
    has_teacher = np.any(teacher != 0, axis=1).astype(np.float32)
    t_train = teacher[train_idx][has_teacher[train_idx] > 0]
    t_mean = t_train.mean(0) if len(t_train) else np.zeros(96, np.float32)
    t_std = t_train.std(0) + 1e-3 if len(t_train) else np.ones(96, np.float32)
    steps_per_epoch = len(train_idx) // args.batch_size
    trainer = Trainer(args, plan, len(plan.classes), steps_per_epoch, t_mean, t_std)

    ckpt_dir = args.run_dir / "checkpoint"
    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "elapsed_s": 0.0}
    if (ckpt_dir / "state.json").is_file():
        state = trainer.load_checkpoint(ckpt_dir)
        log(args, f"resumed from {ckpt_dir} at epoch {state['epoch']} step {state['step_in_epoch']}")
    elif args.resume_from is not None:
        if not (args.resume_from / "state.json").is_file():
            raise BadInput(f"--resume-from {args.resume_from}: no state.json there")
        state = trainer.load_checkpoint(args.resume_from)
        log(args, f"started from {args.resume_from} at epoch {state['epoch']} step {state['step_in_epoch']}")

    curves_path = args.run_dir / "curves.csv"
    start = time.time()
    elapsed0 = state["elapsed_s"]
    last_ckpt = time.time()
    n_views = feats.shape[1]

    def snapshot():
        return {**state, "elapsed_s": elapsed0 + time.time() - start}

    budget_hit = False
    while state["epoch"] < args.epochs and not budget_hit:
        epoch = state["epoch"]
        rng = np.random.default_rng([args.seed, epoch])
        order = train_idx[rng.permutation(len(train_idx))]
        view_of = rng.integers(n_views, size=len(order))
        if args.clean_only:
            view_of[:] = 0
        sums = np.zeros(4)
        count = 0
        bar = tqdm(total=steps_per_epoch, initial=state["step_in_epoch"], desc=f"epoch {epoch + 1}/{args.epochs}",
                   disable=args.no_progress, dynamic_ncols=True, unit="step")
        for step in range(state["step_in_epoch"], steps_per_epoch):
            sel = slice(step * args.batch_size, (step + 1) * args.batch_size)
            idx, views = order[sel], view_of[sel]
            x = feats[idx, views].astype(np.float32)
            out = trainer.train_step(tf.constant(x), tf.constant(labels[idx]), tf.constant(teacher[idx]),
                                     tf.constant(has_teacher[idx]))
            sums += [float(o) for o in out]
            count += 1
            state["step_in_epoch"] = step + 1
            state["global_step"] += 1
            bar.update(1)
            if count % 10 == 0:
                bar.set_postfix(loss=f"{sums[0] / count:.3f}", acc=f"{sums[3] / count:.3f}")
            if time.time() - last_ckpt > args.checkpoint_minutes * 60:
                trainer.save_checkpoint(ckpt_dir, snapshot())
                last_ckpt = time.time()
            if args.max_minutes is not None and time.time() - start > args.max_minutes * 60:
                budget_hit = True
                break
        bar.close()
        if budget_hit and state["step_in_epoch"] < steps_per_epoch:
            break
        val_clean, val_aug = evaluate(trainer, feats, labels, val_idx, args.batch_size)
        row = {
            "epoch": epoch + 1, "global_step": state["global_step"],
            "elapsed_min": round((elapsed0 + time.time() - start) / 60, 2),
            "lr": float(trainer.schedule(state["global_step"])),
            "train_loss": sums[0] / max(count, 1), "train_ce": sums[1] / max(count, 1),
            "train_distill": sums[2] / max(count, 1), "train_acc": sums[3] / max(count, 1),
            "val_acc_clean": val_clean, "val_acc_augmented": val_aug,
        }
        append_curve(curves_path, row)
        plot_curves(curves_path, args.run_dir / "curves.png")
        log(args, "epoch " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        state["epoch"] = epoch + 1
        state["step_in_epoch"] = 0
        trainer.save_checkpoint(ckpt_dir, snapshot())
        if args.ship_to is not None:
            ship_checkpoint(args, plan, trainer, snapshot())
        last_ckpt = time.time()

    trainer.save_checkpoint(ckpt_dir, snapshot())
    info = training_info(args, plan, snapshot(), int(len(train_idx)))
    if budget_hit:
        # A partly trained model goes to RUN_DIR/export only; the shipped model is replaced
        # when the run finishes (or explicitly with --export-only --ship-to).
        export_dir = ship(argparse.Namespace(**{**vars(args), "ship_to": None}), plan, trainer, snapshot(), info)
        if args.ship_to is not None:
            ship_checkpoint(args, plan, trainer, snapshot())
    else:
        export_dir = ship(args, plan, trainer, snapshot(), info)
    state_word = "stopped at the time budget (rerun to resume)" if budget_hit else "finished"
    log(args, f"{state_word}: epoch {state['epoch']}, model in {export_dir}"
        + (f", shipped to {args.ship_to}" if args.ship_to else ""))
    return 0


def ship(args, plan, trainer: Trainer, state: dict, info: dict) -> Path:
    """Export the current weights to RUN_DIR/export and, with --ship-to, every format there."""
    from embedding_model.export import calibration_clips, export_all, save_embedder

    export_dir = args.run_dir / "export"
    save_embedder(trainer.backbone, export_dir, info)
    plan.save(export_dir / "holdout.json")
    if args.ship_to is not None:
        export_all(export_dir, args.ship_to, calibration=calibration_clips(plan.corpus, n=200, seed=args.seed))
        ship_checkpoint(args, plan, trainer, state)
        plan.save(args.ship_to / "holdout.json")
        for name in ("curves.csv", "curves.png"):
            if (args.run_dir / name).is_file():
                atomic_write_bytes_copy(args.run_dir / name, args.ship_to / name)
    return export_dir


def ship_checkpoint(args, plan, trainer: Trainer, state: dict) -> None:
    """The compact resumable checkpoint (a few MB) in SHIP/checkpoint, with its plan."""
    directory = args.ship_to / "checkpoint"
    trainer.save_checkpoint(directory, state, compact=True)
    plan.save(directory / "plan.json")


def training_info(args, plan, state: dict, n_train: int | None) -> dict:
    return {
        "plan_digest": plan.digest(), "classes": len(plan.classes), "languages": plan.langs,
        "epochs_done": state["epoch"], "step_in_epoch": state["step_in_epoch"], "global_step": state["global_step"],
        "training_minutes": round(state["elapsed_s"] / 60, 1),
        "training_clips": n_train, "options": {k: str(v) for k, v in vars(args).items()},
    }


def export_only(args, plan) -> int:
    ckpt_dir = args.run_dir / "checkpoint"
    if not (ckpt_dir / "state.json").is_file():
        raise BadInput(f"--export-only: no checkpoint in {ckpt_dir} yet")
    saved = json.loads((ckpt_dir / "state.json").read_text(encoding="utf-8"))
    trainer = Trainer(args, plan, len(plan.classes), 1, np.array(saved["teacher_mean"], np.float32),
                      np.array(saved["teacher_std"], np.float32))
    state = trainer.load_checkpoint(ckpt_dir)
    export_dir = ship(args, plan, trainer, state, training_info(args, plan, state, None))
    log(args, f"exported checkpoint of epoch {state['epoch']} step {state['step_in_epoch']} to {export_dir}"
        + (f", shipped to {args.ship_to}" if args.ship_to else ""))
    return 0


def atomic_write_bytes_copy(src: Path, dst: Path) -> None:
    from protos.atomic import atomic_write_bytes

    atomic_write_bytes(dst, src.read_bytes())


def evaluate(trainer: Trainer, feats, labels, val_idx, batch_size: int) -> tuple[float, float]:
    """Validation accuracy on the clean view (0) and on the first augmented view (1)."""
    import tensorflow as tf

    if len(val_idx) == 0:
        return float("nan"), float("nan")
    accs = []
    for view in (0, min(1, feats.shape[1] - 1)):
        correct = 0.0
        for s in range(0, len(val_idx), batch_size):
            idx = val_idx[s : s + batch_size]
            correct += float(trainer.eval_step(tf.constant(feats[idx, view].astype(np.float32)),
                                               tf.constant(labels[idx])))
        accs.append(correct / len(val_idx))
    return accs[0], accs[1]


def append_curve(path: Path, row: dict) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
