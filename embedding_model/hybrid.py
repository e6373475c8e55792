"""``train-hybrid``: a keyword classifier over openWakeWord's speech embedding, for real voices.

The student of ``train-embedding`` learns everything from synthetic speech, and on real
human recordings it stays far below openWakeWord (docs/MODEL.md, models/MODEL_CARD.md).
This model keeps what was learnt from real speech instead of trying to copy it: Google's
speech embedding, as openWakeWord ships it, is the frozen front of the network, rebuilt
in TensorFlow (:mod:`embedding_model.oww_graph`), and only a keyword classifier on top
of it is trained, on the same synthetic corpus and the same training plan::

    waveforms [N, 16000]
      -> clip centred in 0.18 s of zeros each side, openWakeWord's mel   [N, 133, 32]
      -> speech embedding, 8 windows of 0.76 s every 80 ms (frozen)      [N, 8, 96]
      -> head: standardise, Dense + ReLU, Dense 1024 + LayerNorm         [N, 1024]  "embedding"
    training only: dropout -> Dense 128 -> Dense over the plan's word classes (softmax)

The result is saved like any embedding model (``mswc_embedding.keras``, loaded by the
``mswc`` backend with ``--model DIR``; exported by :mod:`embedding_model.export`).

Stages, each reused when done, so rerunning the command resumes::

    train-hybrid --plan models/holdout.json --run-dir RUN [--corpus ROOT]

1. features: the [8, 96] window embeddings of every training and validation clip of
   the plan (``RUN/features/{lang}.npz``); with ``--views 2`` also of one seeded
   channel-augmented copy of each (no better on real speech, twice the time, so not by default);
2. head: trained epoch by epoch, a checkpoint after each (``RUN/head.keras`` +
   ``RUN/state.json``), validation accuracy logged in ``RUN/curves.csv``;
3. export: ``RUN/export`` (the embedding model, its metadata, the plan as ``holdout.json``).

Exit status (:mod:`protos.errors`): 0 done, 1 bad input, 2 usage, 3 environment, 130 interrupted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from protos.atomic import atomic_write, atomic_write_text
from protos.errors import EXIT_STATUS_HELP, EnvironmentProblem, InputError, run_cli

PROG = "train-hybrid"
HEADS = ("mean", "flat")  # the default, mean, was chosen on real speech (models/MODEL_CARD.md)
WINDOWS = 8
FEATURE_VERSION = 1
CLIPS_PER_CALL = 512


class HybridError(InputError):
    """Bad input to train-hybrid (a plan, a corpus, a run directory)."""


def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


# --- the graph -------------------------------------------------------------------------


def build_head(kind: str, mean: np.ndarray, std: np.ndarray, hidden: int = 1024, dim: int = 1024,
               noise: float = 0.0):
    """Window embeddings [N, 8, 96] -> embedding [N, dim] (a Keras model named "head").

    ``kind``: "mean" (the windows averaged, as openWakeWord's own vector) or "flat"
    (the windows in order, so the head sees where in the second each sound is).
    ``noise`` adds Gaussian noise to the standardised input while training.
    """
    import keras
    from keras import layers

    from embedding_model.model import EMBEDDING_LAYER
    from embedding_model.oww_graph import DIM

    if kind not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {kind!r}")
    inp = keras.Input((WINDOWS, DIM), name="windows")
    x = layers.Normalization(mean=mean, variance=np.square(std), name="standardise")(inp)
    if noise:
        x = layers.GaussianNoise(noise, seed=3, name="input_noise")(x)
    if kind == "mean":
        x = layers.GlobalAveragePooling1D(name="window_mean")(x)
    else:
        x = layers.Flatten(name="window_flat")(x)
    x = layers.Dense(hidden, activation="relu", name="hidden")(x)
    x = layers.Dropout(0.3, seed=5, name="hidden_dropout")(x)
    x = layers.Dense(dim, name="embedding_dense")(x)
    out = layers.LayerNormalization(name=EMBEDDING_LAYER)(x)
    return keras.Model(inp, out, name="head")


def build_trainer(head, n_classes: int, rank: int = 128):
    """[N, 8, 96] -> class logits [N, n_classes]: the head plus a low-rank classifier."""
    import keras
    from keras import layers

    inp = keras.Input(head.input_shape[1:], name="windows")
    x = layers.Dropout(0.3, seed=7, name="embedding_dropout")(layers.ReLU(name="embedding_relu")(head(inp)))
    x = layers.Dense(rank, use_bias=False, name="class_projection")(x)
    return keras.Model(inp, layers.Dense(n_classes, name="classes")(x), name="hybrid_trainer")


def build_embedder(sequence_model, head):
    """Waveforms [N, 16000] -> embedding [N, 1024]: the frozen speech embedding, then the head."""
    import keras

    from corpus.clip import CLIP_SAMPLES

    waveforms = keras.Input((CLIP_SAMPLES,), name="waveforms")
    return keras.Model(waveforms, head(sequence_model(waveforms)), name="mswc_embedding")


# --- stage 1: features -----------------------------------------------------------------


def feature_path(run_dir: Path, lang: str) -> Path:
    return run_dir / "features" / f"{lang}.npz"


def compute_features(plan, run_dir: Path, seed: int, views: int = 1, progress: bool = True) -> None:
    """Per language: window embeddings [n, views, 8, 96] float16 of the plan's clips.

    View 0 is the clip itself; view 1, if asked for, a seeded channel-augmented copy.
    """
    from corpus.audio import ClipError, load_clip
    from corpus.layout import clip_path
    from embedding_model.augment import ChannelAugmenter, make_rir_bank
    from embedding_model.oww_graph import build_sequence_model, read_onnx_weights
    from embedding_model.plan import plan_clips

    sequence_model = None
    augmenter = ChannelAugmenter(rirs=make_rir_bank(64, seed=seed), babble=None) if views == 2 else None
    for lang in plan.langs:
        out = feature_path(run_dir, lang)
        train, val = plan_clips(plan, lang)
        refs = train + val
        key = json.dumps([FEATURE_VERSION, seed, views, [r.link for r in refs]])
        key = hashlib.sha256(key.encode()).hexdigest()[:16]
        if out.is_file():
            with np.load(out) as done:
                if str(done["key"]) == key:
                    continue
        if sequence_model is None:
            sequence_model = build_sequence_model(read_onnx_weights())
        feats = np.zeros((len(refs), views, WINDOWS, 96), np.float16)
        ok = np.zeros(len(refs), bool)
        for start in range(0, len(refs), CLIPS_PER_CALL):
            batch, rows = [], []
            for i in range(start, min(len(refs), start + CLIPS_PER_CALL)):
                try:
                    clip = load_clip(clip_path(Path(plan.corpus), lang, refs[i].link))
                except (ClipError, OSError):
                    continue
                batch.append(clip)
                if views == 2:
                    batch.append(augmenter(clip, np.random.default_rng([seed, i, *lang.encode()])))
                rows.append(i)
            if rows:
                vectors = sequence_model.predict(np.stack(batch), verbose=0, batch_size=256)
                feats[rows] = vectors.reshape(len(rows), views, WINDOWS, 96)
                ok[rows] = True
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out, "wb") as f:
            np.savez(f, key=key, features=feats, ok=ok, links=np.array([r.link for r in refs]),
                     words=np.array([r.word for r in refs]), split=np.array([r.split for r in refs]))
        if progress:
            log(f"features: {lang}, {int(ok.sum())} of {len(refs)} clips")


def load_features(plan, run_dir: Path):
    """(train x [M, 8, 96] float32, train y, validation x (clean only), validation y)."""
    index = plan.class_index()
    xs, ys, vx, vy = [], [], [], []
    for lang in plan.langs:
        with np.load(feature_path(run_dir, lang)) as data:
            labels = np.array([index[f"{lang}/{w}"] for w in data["words"]])
            keep, train = data["ok"], data["split"] == "TRAIN"
            for view in range(data["features"].shape[1]):
                xs.append(data["features"][keep & train, view])
                ys.append(labels[keep & train])
            vx.append(data["features"][keep & ~train, 0])
            vy.append(labels[keep & ~train])
    return (np.concatenate(xs).astype(np.float32), np.concatenate(ys),
            np.concatenate(vx).astype(np.float32), np.concatenate(vy))


# --- stage 2: the head -----------------------------------------------------------------


def read_state(run_dir: Path, kind: str, seed: int, views: int) -> dict:
    """The run's state (epochs done), or a fresh one; refuses a run made with other options."""
    state_path = run_dir / "state.json"
    fresh = {"epoch": 0, "head": kind, "seed": seed, "views": views}
    state = json.loads(state_path.read_text()) if state_path.is_file() else fresh
    if (state["head"], state["seed"], state["views"]) != (kind, seed, views):
        raise HybridError(f"{run_dir} holds a run with --head {state['head']} --seed {state['seed']} "
                          f"--views {state['views']}: use another --run-dir, or the same options to resume")
    return state


def train_head(plan, run_dir: Path, state: dict, epochs: int, progress: bool = True):
    """Train (or resume) the head from ``state`` (:func:`read_state`); returns it. One checkpoint per epoch."""
    import keras

    from embedding_model.model import custom_objects

    ckpt = run_dir / "trainer.keras"
    if state["epoch"]:
        if not ckpt.is_file():
            raise HybridError(f"{ckpt} is missing, but {run_dir / 'state.json'} records {state['epoch']} "
                              "epochs done: use another --run-dir")
        trainer = keras.models.load_model(ckpt, custom_objects=custom_objects())
        if state["epoch"] >= epochs:  # nothing left to train: the features are not needed
            return trainer.get_layer("head")
    x, y, vx, vy = load_features(plan, run_dir)
    if not state["epoch"]:
        flat = x.reshape(-1, x.shape[-1])
        keras.utils.set_random_seed(state["seed"])
        head = build_head(state["head"], flat.mean(0), flat.std(0) + 1e-6, noise=0.3)
        trainer = build_trainer(head, len(plan.classes))
        trainer.compile(keras.optimizers.Adam(1e-3),
                        keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    seed, curves = state["seed"], run_dir / "curves.csv"
    for epoch in range(state["epoch"], epochs):
        keras.utils.set_random_seed(seed * 1000 + epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(x))
        hist = trainer.fit(x[order], y[order], batch_size=256, epochs=1, verbose=0, shuffle=False)
        val_loss, val_acc = (trainer.evaluate(vx, vy, batch_size=1024, verbose=0) if len(vx)
                             else (float("nan"), float("nan")))
        loss, acc = hist.history["loss"][0], hist.history["accuracy"][0]
        row = f"{epoch + 1},{loss:.4f},{acc:.4f},{val_loss:.4f},{val_acc:.4f}\n"
        header = "epoch,loss,accuracy,val_loss,val_accuracy\n"
        text = (curves.read_text() if curves.is_file() and epoch else header) + row
        tmp = run_dir / ".trainer.tmp.keras"
        trainer.save(tmp)
        tmp.replace(ckpt)
        atomic_write_text(curves, text)
        state["epoch"] = epoch + 1
        atomic_write_text(run_dir / "state.json", json.dumps(state) + "\n")
        if progress:
            log(f"epoch {epoch + 1}/{epochs}: loss {loss:.3f}, validation accuracy {val_acc:.3f}")
    return trainer.get_layer("head")


# --- stage 3: export -------------------------------------------------------------------


def export(plan, run_dir: Path, head, state: dict) -> Path:
    """``RUN/export``: the embedding model (head without its training noise), metadata, plan."""
    from embedding_model.backends import weights_identity
    from embedding_model.export import META_NAME, _save_keras
    from embedding_model.oww_graph import build_sequence_model, read_onnx_weights

    norm = head.get_layer("standardise").get_config()  # its mean and variance are constants, not weights
    clean = build_head(state["head"], np.asarray(norm["mean"], np.float32).reshape(-1),
                       np.sqrt(np.asarray(norm["variance"], np.float32).reshape(-1)))
    clean.set_weights(head.get_weights())
    embedder = build_embedder(build_sequence_model(read_onnx_weights()), clean)
    out = run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    _save_keras(embedder, out)
    meta = {"identity": weights_identity(embedder), "dim": int(embedder.output_shape[-1]),
            "params": int(embedder.count_params()), "output_gain": 1.0, "kind": "hybrid",
            "training": {"head": state["head"], "epochs": state["epoch"], "seed": state["seed"],
                         "views": state["views"],
                         "plan": plan.digest(), "classes": len(plan.classes),
                         "front": "Google speech embedding (openwakeword 0.4.0 ONNX files), frozen"}}
    atomic_write_text(out / META_NAME, json.dumps(meta, indent=1) + "\n")
    plan.save(out / "holdout.json")
    return out


# --- command line ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run ``train-hybrid``; returns the exit status."""
    return run_cli(PROG, _run, argv)


def _run(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(prog=PROG, epilog=EXIT_STATUS_HELP, description=(
        "Train a keyword classifier over openWakeWord's frozen speech embedding on an MSWC-layout "
        "corpus, with a training plan from train-embedding; rerun to resume."))
    p.add_argument("--plan", required=True, type=Path,
                   help="plan.json of a train-embedding run, or a model's holdout.json")
    p.add_argument("--run-dir", required=True, type=Path, help="where features, checkpoints and the export go")
    p.add_argument("--corpus", type=Path, default=None, help="corpus root (default: the plan's)")
    p.add_argument("--head", choices=HEADS, default="mean",
                   help="how the head reads the 8 windows: averaged (mean) or in order (flat) (default: mean)")
    p.add_argument("--views", type=int, choices=(1, 2), default=1,
                   help="1: train on the clips as they are; 2: also on one channel-augmented copy of each "
                   "(default: 1; 2 scored the same on real speech and takes twice as long)")
    p.add_argument("--epochs", type=int, default=4, help="training epochs (default: 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features-only", action="store_true", help="stop after the features stage")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    from embedding_model.plan import TrainingPlan

    if args.epochs < 1:
        raise HybridError(f"--epochs must be at least 1, got {args.epochs}")
    if not args.plan.is_file():
        raise HybridError(f"--plan {args.plan} not found (a train-embedding run's plan.json or a model's holdout.json)")
    try:
        plan = TrainingPlan.load(args.plan)
    except (ValueError, TypeError, KeyError) as exc:
        raise HybridError(f"--plan {args.plan}: not a training plan ({exc})") from exc
    if args.corpus is not None:
        plan.corpus = str(args.corpus)
    if not Path(plan.corpus).is_dir():
        raise HybridError(f"corpus {plan.corpus} not found: pass --corpus ROOT (an MSWC-layout corpus)")
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise EnvironmentProblem(
            "train-hybrid needs TensorFlow: pip install 'dataperf-speech[pipeline,openwakeword]'") from exc
    args.run_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(args.run_dir, args.head, args.seed, args.views)  # before anything is overwritten
    compute_features(plan, args.run_dir, args.seed, views=args.views, progress=not args.no_progress)
    if args.features_only:
        return 0
    head = train_head(plan, args.run_dir, state, args.epochs, progress=not args.no_progress)
    out = export(plan, args.run_dir, head, state)
    log(f"exported {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
