"""``train-hybrid``: a keyword classifier over openWakeWord's speech embedding, for real voices.

The student of ``train-embedding`` learns everything from synthetic speech, and on real
human recordings it stays far below openWakeWord (docs/MODEL.md, models/MODEL_CARD.md).
This model keeps what was learnt from real speech instead of trying to copy it: Google's
speech embedding, as openWakeWord ships it, is the front of the network, rebuilt in
TensorFlow (:mod:`embedding_model.oww_graph`); a keyword classifier is trained on top of
it, on the same synthetic corpus and the same training plan, and then the front's last
nine convolutions (``--tune-from 7``: thirteen) are fine-tuned with it at a tenth of the
learning rate::

    waveforms [N, 16000]
      -> clip centred in 0.18 s of zeros each side, openWakeWord's mel   [N, 133, 32]
      -> speech embedding, convolutions 0-10 (frozen)                    [N, 28, 4, 72]
         (--tune-from 7: convolutions 0-6,                               [N, 60, 8, 48])
      -> convolutions 11-19 (7-19) fine-tuned: 8 windows of 0.76 s every 80 ms [N, 8, 96]
      -> head: standardise, Dense + ReLU, Dense 1024 + LayerNorm         [N, 1024]  "embedding"
    training only: dropout -> Dense 128 -> Dense over the plan's word classes (softmax);
    with ``--loss margin`` the fine-tuning phase uses instead a cosine to each word class,
    additive margin 0.2, scale 30 (CosFace)

The result is saved like any embedding model (``mswc_embedding.keras``, loaded by the
``mswc`` backend with ``--model DIR``; exported by :mod:`embedding_model.export`).

Stages, each reused when done, so rerunning the command resumes::

    train-hybrid --plan models/holdout.json --run-dir RUN [--corpus ROOT]

1. features: the frozen part's activations ([28, 4, 72], or [60, 8, 48] from 7; float16,
   kept so in memory and cast one batch at a time) for every training and
   validation clip of the plan (``RUN/features/{lang}.npz``); with ``--views 2`` also of
   one seeded channel-augmented copy of each (no better on real speech, twice the time,
   so not by default);
2. head: ``--epochs`` epochs with the whole speech embedding frozen (Adam, 1e-3), then
   ``--tune-epochs`` (6) epochs that also train convolutions 11-19 or 7-19 (Adam, 1e-4), with the
   head phase's classifier (or ``--loss margin``'s); a checkpoint
   after each (``RUN/trainer.keras`` + ``RUN/state.json``), validation accuracy logged in
   ``RUN/curves.csv``; the checkpoint the fine-tuning starts from is kept as
   ``RUN/head.keras``, so ``--from-head RUN`` can fine-tune the same head again in another
   run directory with another ``--seed`` (other batches and dropout; the features are
   read from RUN, not copied): runs to average with :mod:`embedding_model.soup`;
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

from embedding_model.oww_graph import TUNE_FROM, TUNE_FROMS
from embedding_model.train_config import TrainConfig
from protos.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from protos.errors import EXIT_STATUS_HELP, EnvironmentProblem, InputError, run_cli

PROG = "train-hybrid"
HEADS = ("mean", "flat")  # the default, mean, was chosen on real speech (models/MODEL_CARD.md)
WINDOWS = 8
#: The features' version (part of each file's key), by the first fine-tuned convolution.
#: Version 1, no longer made: the frozen window embeddings [8, 96].
FEATURE_VERSIONS = {11: 2, 7: 3}
CLIPS_PER_CALL = 512
BATCH = 256
#: How the fine-tuning phase classifies: "softmax", the head phase's dense classifier
#: kept (the default, shipped), or "margin", an additive-margin cosine softmax (CosFace)
#: over the head's vector. The margin raised synthetic held-out words and languages and
#: lowered 5-shot real-speech F1 below openWakeWord's unless the output is scaled by 3,
#: which lowers DataPerf-protocol scores on the demo and on real letter pools
#: (models/MODEL_CARD.md, "A model for real voices"): not the default.
LOSSES = ("softmax", "margin")
MARGIN, MARGIN_SCALE = TrainConfig.margin, TrainConfig.scale  # train-embedding's AM-softmax
#: The cosine classifier's class weights start at this norm (their direction: the class
#: mean of the head's vectors). Its output is scale-free, so a small norm makes Adam's
#: fixed-size steps turn the weights ten times faster than the network's (1e-4): the
#: learning rate of 1e-3 the recipe was measured with, under one optimizer.
CLASS_WEIGHT_NORM = 0.1
#: The export multiplies the vector by ``--output-gain`` (:func:`embedding_model.export.set_output_gain`);
#: DataPerf's LogisticRegression (C=1, raw vectors) depends on the scale.
OUTPUT_GAIN = 1.0


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


def build_trainer(tail, head, n_classes: int, rank: int = 128):
    """Trunk activations -> class logits [N, n_classes]: the front's tail, the head, a low-rank classifier."""
    import keras
    from keras import layers

    inp = keras.Input(tail.input_shape[1:], name="trunk")
    x = layers.Dropout(0.3, seed=7, name="embedding_dropout")(layers.ReLU(name="embedding_relu")(head(tail(inp))))
    x = layers.Dense(rank, use_bias=False, name="class_projection")(x)
    return keras.Model(inp, layers.Dense(n_classes, name="classes")(x), name="hybrid_trainer")


def build_margin_trainer(tail, head, class_means: np.ndarray):
    """Trunk activations -> cosine to each class [N, n_classes]: the tail, the head, then a
    :class:`CosineClassifier` whose weights start at ``class_means``' directions (norm
    :data:`CLASS_WEIGHT_NORM`). Train it with :func:`margin_loss`."""
    import keras

    from embedding_model.model import custom_objects

    unit = class_means / np.maximum(np.linalg.norm(class_means, axis=1, keepdims=True), 1e-12)
    inp = keras.Input(tail.input_shape[1:], name="trunk")
    classifier = custom_objects()["CosineClassifier"](len(class_means), name="class_cosines")
    trainer = keras.Model(inp, classifier(head(tail(inp))), name="hybrid_margin_trainer")
    classifier.set_weights([(CLASS_WEIGHT_NORM * unit.T).astype(np.float32)])
    return trainer


def margin_loss():
    """The additive-margin softmax loss (CosFace) with :data:`MARGIN` and :data:`MARGIN_SCALE`
    (``embedding_model.model``'s ``AdditiveMarginLoss``: registered, so a checkpoint
    compiled with it loads)."""
    from embedding_model.model import custom_objects

    return custom_objects()["AdditiveMarginLoss"](scale=MARGIN_SCALE, margin=MARGIN)


def build_embedder(sequence_model, head):
    """Waveforms [N, 16000] -> embedding [N, 1024]: the speech embedding, then the head."""
    import keras

    from corpus.clip import CLIP_SAMPLES

    waveforms = keras.Input((CLIP_SAMPLES,), name="waveforms")
    return keras.Model(waveforms, head(sequence_model(waveforms)), name="mswc_embedding")


# --- stage 1: features -----------------------------------------------------------------


def feature_path(run_dir: Path, lang: str) -> Path:
    return run_dir / "features" / f"{lang}.npz"


def compute_features(plan, run_dir: Path, seed: int, views: int = 1, progress: bool = True,
                     tune_from: int = TUNE_FROM) -> None:
    """Per language: the frozen trunk's activations [n, views, 28, 4, 72] (from 7: [.., 60, 8, 48])
    float16 of the plan's clips.

    View 0 is the clip itself; view 1, if asked for, a seeded channel-augmented copy.
    """
    from corpus.audio import ClipError, load_clip
    from corpus.layout import clip_path
    from embedding_model.augment import ChannelAugmenter, make_rir_bank
    from embedding_model.oww_graph import build_trunk, read_onnx_weights
    from embedding_model.plan import plan_clips

    trunk = None
    augmenter = ChannelAugmenter(rirs=make_rir_bank(64, seed=seed), babble=None) if views == 2 else None
    for lang in plan.langs:
        out = feature_path(run_dir, lang)
        train, val = plan_clips(plan, lang)
        refs = train + val
        key = json.dumps([FEATURE_VERSIONS[tune_from], seed, views, [r.link for r in refs]])
        key = hashlib.sha256(key.encode()).hexdigest()[:16]
        if out.is_file():
            with np.load(out) as done:
                if str(done["key"]) == key:
                    continue
        if trunk is None:
            trunk = build_trunk(read_onnx_weights(), tune_from=tune_from)
        shape = tuple(trunk.output_shape[1:])
        feats = np.zeros((len(refs), views, *shape), np.float16)
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
                acts = trunk.predict(np.stack(batch), verbose=0, batch_size=256)
                feats[rows] = acts.reshape(len(rows), views, *shape)
                ok[rows] = True
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out, "wb") as f:
            np.savez(f, key=key, features=feats, ok=ok, links=np.array([r.link for r in refs]),
                     words=np.array([r.word for r in refs]), split=np.array([r.split for r in refs]))
        if progress:
            log(f"features: {lang}, {int(ok.sum())} of {len(refs)} clips")


def load_features(plan, run_dir: Path):
    """(train x [M, 28, 4, 72] or [M, 60, 8, 48], train y, validation x (clean only), validation y).

    x stays float16 (4.6 GB for the shipped plan from convolution 7): :func:`_rows` hands
    the network float32 batches.
    """
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
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(vx), np.concatenate(vy)


# --- stage 2: the head -----------------------------------------------------------------


def _rows(x: np.ndarray, y: np.ndarray | None = None, order: np.ndarray | None = None, batch: int = BATCH):
    """A Keras dataset of float32 batches of ``x`` (float16 in memory) in ``order`` (default:
    as stored); with ``y``, (inputs, labels). The batches are those of ``x[order]`` cut every
    ``batch`` rows, row for row; given the arrays, Keras would copy all of ``x`` to float32 (9 GB
    for the shipped plan from convolution 7, twice that with an epoch's shuffled copy)."""
    import keras

    order = np.arange(len(x)) if order is None else order

    class Rows(keras.utils.PyDataset):
        def __len__(self):
            return (len(order) + batch - 1) // batch

        def __getitem__(self, i):
            rows = order[i * batch:(i + 1) * batch]
            return x[rows].astype(np.float32) if y is None else (x[rows].astype(np.float32), y[rows])

    return Rows()


def read_state(run_dir: Path, kind: str, seed: int, views: int, epochs: int, tune_epochs: int,
               loss: str = "softmax", from_head: Path | None = None, plan_digest: str | None = None,
               tune_from: int = TUNE_FROM) -> dict:
    """The run's state (head and fine-tuning epochs done), or a fresh one.

    Refuses a run made with other options, or one that has trained further than asked
    (more head epochs, or a fine-tuning begun after another number of head epochs).
    With ``from_head`` (another run directory, :func:`read_head_source`), a fresh run
    starts with that run's head epochs done, and a run is refused if it started from
    another head.
    """
    state_path = run_dir / "state.json"
    fresh = {"epoch": 0, "tuned": 0, "head": kind, "seed": seed, "views": views, "loss": loss,
             "tune_from": tune_from}
    if from_head is not None:
        source = read_head_source(from_head, kind, views, epochs, plan_digest, tune_from)
        fresh.update(epoch=source["epochs"], from_head=str(from_head.resolve()), head_seed=source["seed"])
    state = json.loads(state_path.read_text()) if state_path.is_file() else fresh
    if state.get("from_head") != fresh.get("from_head"):
        was = f"--from-head {state['from_head']}" if state.get("from_head") else "its own head epochs"
        raise HybridError(f"{run_dir} holds a run that started from {was}: use another --run-dir, "
                          "or the same --from-head to resume")
    if "tuned" not in state:
        raise HybridError(f"{run_dir} holds a run of an earlier train-hybrid (frozen front, other features): "
                          "use another --run-dir")
    state.setdefault("tune_from", 11)  # runs from before --tune-from fine-tuned from 11
    if state["tune_from"] != tune_from:
        raise HybridError(f"{run_dir} holds a run with --tune-from {state['tune_from']}: pass --tune-from "
                          f"{state['tune_from']} to resume, or use another --run-dir")
    if (state["head"], state["seed"], state["views"]) != (kind, seed, views):
        raise HybridError(f"{run_dir} holds a run with --head {state['head']} --seed {state['seed']} "
                          f"--views {state['views']}: use another --run-dir, or the same options to resume")
    state.setdefault("loss", "softmax")  # runs from before --loss fine-tuned with the softmax
    if state["loss"] != loss and state["tuned"]:
        raise HybridError(f"{run_dir} has fine-tuned with --loss {state['loss']}: pass --loss {state['loss']}, "
                          "or use another --run-dir")
    state["loss"] = loss  # the head phase is the same for both losses
    if state["epoch"] > epochs or (state["tuned"] and state["epoch"] != epochs):
        raise HybridError(f"{run_dir} has trained its head for {state['epoch']} epochs"
                          + (f" and fine-tuned for {state['tuned']}" if state["tuned"] else "")
                          + f": pass --epochs {state['epoch']}, or use another --run-dir")
    if state["tuned"] > tune_epochs:
        raise HybridError(f"{run_dir} has fine-tuned for {state['tuned']} epochs: pass --tune-epochs "
                          f"{state['tuned']} or more, or use another --run-dir")
    return state


HEAD_NAME, HEAD_INFO = "head.keras", "head.json"


def read_head_source(source: Path, kind: str, views: int, epochs: int, plan_digest: str | None = None,
                     tune_from: int = TUNE_FROM) -> dict:
    """``source``'s head (``head.json``: epochs, seed, head, views, plan, tune_from), checked against
    this run's options."""
    info = source / HEAD_INFO
    if not (info.is_file() and (source / HEAD_NAME).is_file()):
        raise HybridError(f"--from-head {source}: no {HEAD_NAME} there (a run directory whose head epochs "
                          "are done, by a train-hybrid that keeps them): run train-hybrid there first")
    head = json.loads(info.read_text())
    if (head["head"], head["views"]) != (kind, views):
        raise HybridError(f"--from-head {source}: its head was trained with --head {head['head']} "
                          f"--views {head['views']}: pass the same")
    head.setdefault("tune_from", 11)  # heads kept before --tune-from were trained from 11
    if head["tune_from"] != tune_from:
        raise HybridError(f"--from-head {source}: its head was trained on the activations before convolution "
                          f"{head['tune_from']}: pass --tune-from {head['tune_from']}")
    if plan_digest is not None and head["plan"] != plan_digest:
        raise HybridError(f"--from-head {source}: its head was trained on another plan: pass the same --plan")
    if head["epochs"] != epochs:
        raise HybridError(f"--from-head {source}: its head was trained for {head['epochs']} epochs: "
                          f"pass --epochs {head['epochs']}")
    return head


def _compile(trainer, learning_rate: float, loss=None) -> None:
    import keras

    trainer.compile(keras.optimizers.Adam(learning_rate),
                    loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


def class_means(head_vectors: np.ndarray, labels: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """[n_classes, D]: the mean unit vector of each class; a seeded random direction for a
    class with no training clip."""
    unit = head_vectors / np.maximum(np.linalg.norm(head_vectors, axis=1, keepdims=True), 1e-12)
    means = np.zeros((n_classes, unit.shape[1]), np.float64)
    np.add.at(means, labels, unit)
    counts = np.bincount(labels, minlength=n_classes)
    means /= np.maximum(counts, 1)[:, None]
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        means[empty] = np.random.default_rng([seed, 17]).standard_normal((len(empty), unit.shape[1]))
    return means.astype(np.float32)


def train_head(plan, run_dir: Path, state: dict, epochs: int, tune_epochs: int = 0, progress: bool = True):
    """Train (or resume) from ``state`` (:func:`read_state`); returns (tail, head). One checkpoint per epoch.

    ``epochs`` with the speech embedding frozen (Adam 1e-3), then ``tune_epochs`` that
    also train its tail, convolutions ``state["tune_from"]``-19 (a new Adam, 1e-4), with the classifier of
    ``state["loss"]`` (:data:`LOSSES`). The checkpoint after the last head epoch is also
    kept as ``head.keras`` (with ``head.json``). With ``state["from_head"]`` the head
    epochs are another run's: its ``head.keras`` is the start and its features are read.
    """
    import keras

    from embedding_model.model import custom_objects
    from embedding_model.oww_graph import build_tail, read_onnx_weights

    ckpt = run_dir / "trainer.keras"
    source = Path(state["from_head"]) if state.get("from_head") else run_dir
    start = source / HEAD_NAME if state.get("from_head") and not state["tuned"] else ckpt
    if state["epoch"] or state["tuned"]:
        if not start.is_file():
            raise HybridError(f"{start} is missing, but {run_dir / 'state.json'} records "
                              f"{state['epoch'] + state['tuned']} epochs done: use another --run-dir")
        trainer = keras.models.load_model(start, custom_objects=custom_objects())
        if state["epoch"] >= epochs and state["tuned"] >= tune_epochs:  # nothing left: no features needed
            return trainer.get_layer("oww_tail"), trainer.get_layer("head")
    x, y, vx, vy = load_features(plan, source)
    if not (state["epoch"] or state["tuned"]):
        keras.utils.set_random_seed(state["seed"])
        tail = build_tail(read_onnx_weights(), x.shape[1:], state["tune_from"])
        tail.trainable = False
        flat = tail.predict(_rows(x, batch=1024), verbose=0).reshape(-1, 96)
        head = build_head(state["head"], flat.mean(0), flat.std(0) + 1e-6, noise=0.3)
        trainer = build_trainer(tail, head, len(plan.classes))
        _compile(trainer, 1e-3)
    seed, curves, total = state["seed"], run_dir / "curves.csv", epochs + tune_epochs
    for done in range(state["epoch"] + state["tuned"], total):
        tuning = done >= epochs
        if tuning and not state["tuned"]:  # the first fine-tuning epoch: unfreeze the tail, a new optimizer
            tail, head = trainer.get_layer("oww_tail"), trainer.get_layer("head")
            tail.trainable = True
            if state["loss"] == "margin":
                vectors = head.predict(tail.predict(_rows(x, batch=1024), verbose=0), verbose=0, batch_size=1024)
                trainer = build_margin_trainer(tail, head, class_means(vectors, y, len(plan.classes), seed))
                del vectors
                _compile(trainer, 1e-4, margin_loss())
            else:
                _compile(trainer, 1e-4)
        keras.utils.set_random_seed(seed * 1000 + done)
        order = np.random.default_rng([seed, done]).permutation(len(x))
        hist = trainer.fit(_rows(x, y, order), epochs=1, verbose=0, shuffle=False)
        val_loss, val_acc = (trainer.evaluate(_rows(vx, vy, batch=1024), verbose=0) if len(vx)
                             else (float("nan"), float("nan")))
        loss, acc = hist.history["loss"][0], hist.history["accuracy"][0]
        phase = "tune" if tuning else "head"
        row = f"{done + 1},{phase},{loss:.4f},{acc:.4f},{val_loss:.4f},{val_acc:.4f}\n"
        header = "epoch,phase,loss,accuracy,val_loss,val_accuracy\n"
        text = (curves.read_text() if curves.is_file() and done else header) + row
        tmp = run_dir / ".trainer.tmp.keras"
        trainer.save(tmp)
        if not tuning and done + 1 == epochs:  # the head the fine-tuning starts from, kept for --from-head
            atomic_write_bytes(run_dir / HEAD_NAME, tmp.read_bytes())
            atomic_write_text(run_dir / HEAD_INFO, json.dumps(
                {"epochs": epochs, "seed": seed, "head": state["head"], "views": state["views"],
                 "plan": plan.digest(), "tune_from": state["tune_from"]}) + "\n")
        tmp.replace(ckpt)
        atomic_write_text(curves, text)
        state["tuned" if tuning else "epoch"] += 1
        atomic_write_text(run_dir / "state.json", json.dumps(state) + "\n")
        if progress:
            what = f" (fine-tuning convolutions {state['tune_from']}-19)" if tuning else ""
            log(f"epoch {done + 1}/{total}{what}: loss {loss:.3f}, validation accuracy {val_acc:.3f}")
    return trainer.get_layer("oww_tail"), trainer.get_layer("head")


# --- stage 3: export -------------------------------------------------------------------


def export(plan, run_dir: Path, tail, head, state: dict, output_gain: float = OUTPUT_GAIN) -> Path:
    """``RUN/export``: the embedding model (the tuned tail in the speech embedding; the head
    without its training noise; its output times ``output_gain``), metadata, plan."""
    from embedding_model.backends import weights_identity
    from embedding_model.export import META_NAME, _save_keras, set_output_gain
    from embedding_model.oww_graph import build_sequence_model, read_onnx_weights, tail_layer_names

    norm = head.get_layer("standardise").get_config()  # its mean and variance are constants, not weights
    clean = build_head(state["head"], np.asarray(norm["mean"], np.float32).reshape(-1),
                       np.sqrt(np.asarray(norm["variance"], np.float32).reshape(-1)))
    clean.set_weights(head.get_weights())
    sequence_model = build_sequence_model(read_onnx_weights())
    window_embedder = sequence_model.get_layer("oww_window_embedder")
    for name in tail_layer_names(state["tune_from"]):
        window_embedder.get_layer(name).set_weights(tail.get_layer(name).get_weights())
    embedder = build_embedder(sequence_model, clean)
    if output_gain != 1.0:
        set_output_gain(embedder, output_gain)
    out = run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    _save_keras(embedder, out)
    front = "Google speech embedding (openwakeword 0.4.0 ONNX files), " + (
        f"convolutions {state['tune_from']}-19 fine-tuned for {state['tuned']} epochs" if state["tuned"] else "frozen")
    meta = {"identity": weights_identity(embedder), "dim": int(embedder.output_shape[-1]),
            "params": int(embedder.count_params()), "output_gain": float(output_gain), "kind": "hybrid",
            "training": {"head": state["head"], "epochs": state["epoch"], "tune_epochs": state["tuned"],
                         "loss": state["loss"] if state["tuned"] else "softmax",
                         "seed": state["seed"], "views": state["views"],
                         **({"head_seed": state["head_seed"]} if state.get("from_head") else {}),
                         "plan": plan.digest(), "classes": len(plan.classes), "front": front}}
    atomic_write_text(out / META_NAME, json.dumps(meta, indent=1) + "\n")
    plan.save(out / "holdout.json")
    return out


# --- command line ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run ``train-hybrid``; returns the exit status."""
    return run_cli(PROG, _run, argv)


def _run(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(prog=PROG, epilog=EXIT_STATUS_HELP, description=(
        "Train a keyword classifier over openWakeWord's speech embedding on an MSWC-layout corpus, "
        "then fine-tune the embedding's last convolutions with it; uses a training plan from "
        "train-embedding; rerun to resume."))
    p.add_argument("--plan", required=True, type=Path,
                   help="plan.json of a train-embedding run, or a model's holdout.json")
    p.add_argument("--run-dir", required=True, type=Path, help="where features, checkpoints and the export go")
    p.add_argument("--corpus", type=Path, default=None, help="corpus root (default: the plan's)")
    p.add_argument("--head", choices=HEADS, default="mean",
                   help="how the head reads the 8 windows: averaged (mean) or in order (flat) (default: mean)")
    p.add_argument("--views", type=int, choices=(1, 2), default=1,
                   help="1: train on the clips as they are; 2: also on one channel-augmented copy of each "
                   "(default: 1; 2 scored the same on real speech and takes twice as long)")
    p.add_argument("--epochs", type=int, default=4, help="epochs that train the head on the frozen front (default: 4)")
    p.add_argument("--tune-epochs", type=int, default=6,
                   help="then epochs that also fine-tune the front's convolutions from --tune-from to 19 "
                   "(default: 6, chosen on real speech over 3 and 10; 0: keep the front frozen)")
    p.add_argument("--tune-from", type=int, choices=TUNE_FROMS, default=TUNE_FROM,
                   help=f"the first convolution the fine-tuning trains (default: {TUNE_FROM}; 7 also trains "
                   "the block before the third max-pool: better on synthetic held-out words, 2.9 times the "
                   "features (about 5 GB in memory for the shipped plan) and twice the time; docs/MODEL.md)")
    p.add_argument("--loss", choices=LOSSES, default="softmax",
                   help="the fine-tuning phase's classifier: softmax (the head phase's dense classifier) or "
                   "margin (cosine, additive margin 0.2; better on synthetic, worse real-speech F1) "
                   "(default: softmax)")
    p.add_argument("--output-gain", type=float, default=OUTPUT_GAIN,
                   help=f"multiply the exported vector by this (default: {OUTPUT_GAIN:g}: the LayerNorm's own scale)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-head", type=Path, default=None, metavar="RUN",
                   help="fine-tune the head of another run directory (its head.keras, kept after its head "
                   "epochs, and its features) instead of training one here; with another --seed, a "
                   "second fine-tuning of the same head, e.g. to average with python -m embedding_model.soup")
    p.add_argument("--features-only", action="store_true", help="stop after the features stage")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    from embedding_model.export import check_output_gain
    from embedding_model.plan import TrainingPlan

    if args.epochs < 1:
        raise HybridError(f"--epochs must be at least 1, got {args.epochs}")
    if args.tune_epochs < 0:
        raise HybridError(f"--tune-epochs must be 0 or more, got {args.tune_epochs}")
    try:
        check_output_gain(args.output_gain)
    except ValueError as exc:
        raise HybridError(f"--output-gain: {exc}") from exc
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
    if args.from_head is not None and args.from_head.resolve() == args.run_dir.resolve():
        raise HybridError("--from-head must name another run directory than --run-dir")
    state = read_state(args.run_dir, args.head, args.seed, args.views,  # before anything is overwritten
                       args.epochs, args.tune_epochs, args.loss, args.from_head, plan.digest(), args.tune_from)
    if args.from_head is None:
        compute_features(plan, args.run_dir, args.seed, views=args.views, progress=not args.no_progress,
                         tune_from=args.tune_from)
    if args.features_only:
        return 0
    tail, head = train_head(plan, args.run_dir, state, args.epochs, args.tune_epochs, progress=not args.no_progress)
    out = export(plan, args.run_dir, tail, head, state, args.output_gain)
    log(f"exported {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
