"""A spotter for devices: the embedding and the fitted head as ONE TFLite model.

The model maps one window, waveform [1, 16000] float32 (16 kHz, in [-1, 1]), to
keyword scores [1, K] float32 (the head's posteriors of the K keywords, nontarget
left out), with the log-mel frontend, the embedding network and the head inside.
Smoothing and peak picking stay on the device's side (a few lines; ``docs/SPOTTER.md``).

Both heads are expressed in core TensorFlow ops, so the converter needs no custom op:

- ``linear``: unit-length rows, one matrix, softmax.
- ``dataperf``: per DataPerf seed, the soft vote of the RBF SVC with Platt scaling and
  libsvm's pairwise coupling, and the multinomial LogisticRegression; averaged over
  the seeds. The SVC's support vectors, dual coefficients, Platt parameters and the
  logistic weights are constants. libsvm couples the pairwise probabilities with an
  iterative solver that stops at a tolerance; the graph solves the same small linear
  system exactly (Gaussian elimination unrolled over the K + 1 classes), which moves
  posteriors by about 1e-3 at most.

Command line::

    python -m embedding_model.spotter_export --train-file train.npz --out spotter.tflite \\
        [--model models] [--head dataperf|linear] [--check RECORDING]

writes ``spotter.tflite`` and ``spotter.json`` (keywords in output order, head,
backend identity, parity numbers). Only the ``mswc`` backend (a Keras model) exports;
openWakeWord's embedding is ONNX.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from corpus.clip import CLIP_SAMPLES
from protos.errors import EXIT_STATUS_HELP, EnvironmentProblem, InputError, run_cli

WINDOW = CLIP_SAMPLES
PROG = "python -m embedding_model.spotter_export"


# ------------------------------------------------------------------ heads in TF ops


def _svc_probabilities(tf, svc, x):
    """x [N, D] float32 -> libsvm's pairwise-coupled probabilities [N, m] for svc.classes_."""
    sv = svc.support_vectors_.astype(np.float64)
    m = len(svc.classes_)
    starts = np.concatenate([[0], np.cumsum(svc.n_support_)])
    coef = svc._dual_coef_  # [m - 1, S], libsvm's layout
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    weights = np.zeros((len(sv), len(pairs)))
    for p, (i, j) in enumerate(pairs):
        weights[starts[i]:starts[i + 1], p] = coef[j - 1, starts[i]:starts[i + 1]]
        weights[starts[j]:starts[j + 1], p] = coef[i, starts[j]:starts[j + 1]]
    gamma = float(svc._gamma)
    sq_x = tf.reduce_sum(x * x, axis=1, keepdims=True)
    sq_sv = tf.constant((sv * sv).sum(axis=1)[None, :], tf.float32)
    cross = tf.matmul(x, tf.constant(sv.T, tf.float32))
    kernel = tf.exp(-gamma * tf.maximum(sq_x - 2.0 * cross + sq_sv, 0.0))  # [N, S]
    decision = tf.matmul(kernel, tf.constant(weights, tf.float32)) + tf.constant(
        svc._intercept_.astype(np.float32))  # [N, P]
    platt = tf.constant(svc.probA_.astype(np.float32)) * decision + tf.constant(
        svc.probB_.astype(np.float32))
    r_pair = tf.clip_by_value(tf.sigmoid(-platt), 1e-7, 1.0 - 1e-7)  # P(i | i or j)
    r = [[None] * m for _ in range(m)]
    for p, (i, j) in enumerate(pairs):
        r[i][j] = r_pair[:, p]
        r[j][i] = 1.0 - r_pair[:, p]
    if m == 2:  # libsvm reports the pairwise probability itself
        return tf.stack([r[0][1], r[1][0]], axis=1)
    # min_p p'Qp subject to sum(p) = 1, Q[t][t] = sum_j r[j][t]^2, Q[t][j] = -r[j][t] r[t][j]:
    # p is proportional to Q^-1 1.
    q = [[None] * m for _ in range(m)]
    for t in range(m):
        q[t][t] = tf.add_n([r[j][t] * r[j][t] for j in range(m) if j != t])
        for j in range(m):
            if j != t:
                q[t][j] = -r[j][t] * r[t][j]
    rhs = [tf.ones_like(q[0][0]) for _ in range(m)]
    for col in range(m):  # Q is symmetric positive definite: no pivoting needed
        for row in range(col + 1, m):
            factor = q[row][col] / q[col][col]
            for k in range(col, m):
                q[row][k] = q[row][k] - factor * q[col][k]
            rhs[row] = rhs[row] - factor * rhs[col]
    z = [None] * m
    for row in reversed(range(m)):
        acc = rhs[row]
        for k in range(row + 1, m):
            acc = acc - q[row][k] * z[k]
        z[row] = acc / q[row][row]
    z = tf.stack(z, axis=1)
    return z / tf.reduce_sum(z, axis=1, keepdims=True)


def _logistic_probabilities(tf, lr, x):
    logits = tf.matmul(x, tf.constant(lr.coef_.T.astype(np.float32))) + tf.constant(
        lr.intercept_.astype(np.float32))
    if len(lr.classes_) == 2:
        positive = tf.sigmoid(logits[:, 0])
        return tf.stack([1.0 - positive, positive], axis=1)
    return tf.nn.softmax(logits, axis=1)


def head_graph(tf, head, x):
    """The fitted head in TF ops: embeddings x [N, D] float32 -> posteriors [N, n_classes]."""
    if head.kind == "linear":
        unit = x / (tf.norm(x, axis=1, keepdims=True) + 1e-12)
        return tf.nn.softmax(tf.matmul(unit, tf.constant(head.weights)) + tf.constant(head.bias),
                             axis=1)
    if head.kind != "dataperf":
        raise InputError(f"cannot export a head of kind {head.kind!r}")
    import warnings

    total = None
    for model in head.models:
        svc, lr = model.estimators_  # fitted on the encoded labels 0..m-1 of model.classes_
        with warnings.catch_warnings():  # probA_/probB_ go with SVC(probability=True)
            warnings.simplefilter("ignore", FutureWarning)
            svc_probs = _svc_probabilities(tf, svc, x)
        vote = 0.5 * (svc_probs + _logistic_probabilities(tf, lr, x))
        spread = np.zeros((len(model.classes_), head.n_classes), np.float32)
        spread[np.arange(len(model.classes_)), model.classes_] = 1.0
        probs = tf.matmul(vote, tf.constant(spread))
        total = probs if total is None else total + probs
    return total / float(len(head.models))


# --------------------------------------------------------------------------- export


def export_spotter(embedder, head, out_path: str | Path) -> Path:
    """Write ``out_path`` (.tflite): waveform [1, 16000] -> keyword scores [1, K].

    Args:
        embedder: the Keras embedding model (waveforms [N, 16000] -> [N, D]).
        head: a fitted :class:`~embedding_model.spotter.DataPerfHead` or ``LinearHead``.
    """
    import keras
    import tensorflow as tf

    from embedding_model.export import export_tflite

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def scores(waveform):
        return {"scores": head_graph(tf, head, embedder(waveform, training=False))[:, 1:]}

    archive = keras.export.ExportArchive()
    archive.track(embedder)
    archive.add_endpoint(name="serving_default", fn=scores,
                         input_signature=[tf.TensorSpec([1, WINDOW], tf.float32, name="waveform")])
    tmp = out_path.with_name(f".{out_path.name}.savedmodel.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        archive.write_out(str(tmp), verbose=False)
        export_tflite(tmp, out_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_path


class TFLiteSpotterModel:
    """Run an exported spotter: windows [N, 16000] -> keyword scores [N, K], one window per call."""

    def __init__(self, path: str | Path, threads: int = 1):
        import tensorflow as tf

        self.interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]["index"]
        self._out = self.interpreter.get_output_details()[0]["index"]

    def scores(self, windows: np.ndarray) -> np.ndarray:
        rows = []
        for window in np.asarray(windows, np.float32):
            self.interpreter.set_tensor(self._in, window[None, :])
            self.interpreter.invoke()
            rows.append(self.interpreter.get_tensor(self._out)[0].copy())
        return np.stack(rows)


def parity(python_scores: np.ndarray, tflite_scores: np.ndarray) -> dict:
    """Agreement of two score tracks [W, K]: per keyword over the windows, the cosine and
    the correlation; and the largest absolute difference of any score."""
    a = np.asarray(python_scores, np.float64)
    b = np.asarray(tflite_scores, np.float64)
    def cosine(u, v):
        return (u * v).sum(axis=0) / (np.linalg.norm(u, axis=0) * np.linalg.norm(v, axis=0) + 1e-12)

    cos = cosine(a, b)
    # Cosine of the centred tracks (correlation): a track with a large constant part
    # gets a cosine near 1 whatever its variations do; this one does not.
    corr = cosine(a - a.mean(axis=0), b - b.mean(axis=0))
    return {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
            "min_correlation": float(corr.min()),
            "max_abs_diff": float(np.abs(a - b).max()), "windows": int(len(a))}


def probe_windows(audio: np.ndarray | None, hop: int = 1600, limit: int = 200,
                  seed: int = 0) -> np.ndarray:
    """Windows [W, 16000] to compare on: from ``audio`` (16 kHz) or seeded speech-like probes."""
    if audio is None:
        from embedding_model.export import _probe_clips

        return _probe_clips(n=24, seed=seed)
    from embedding_model.spotter import WINDOW as W, window_count

    n = min(window_count(len(audio), hop), limit)
    audio = np.concatenate([audio, np.zeros(W + n * hop, np.float32)])
    return np.stack([audio[i * hop : i * hop + W] for i in range(n)])


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    from embedding_model.spotter_cli import parse_seeds

    p = argparse.ArgumentParser(
        prog=PROG,
        description="Export the spotter of a train.npz as one TFLite model: waveform "
        "[1, 16000] float32 -> keyword scores [1, K] (embedding and fitted head inside), plus "
        "a JSON sidecar (keywords in output order, head, parity with the Python path).",
        epilog=EXIT_STATUS_HELP,
    )
    p.add_argument("--train-file", required=True, type=Path, metavar="PATH",
                   help="train.npz of an mswc-backend pool")
    p.add_argument("--out", required=True, type=Path, metavar="PATH", help="the .tflite to write")
    p.add_argument("--model", type=Path, metavar="DIR",
                   help="the embedding model the pool was built with (default: the shipped one)")
    p.add_argument("--head", choices=("dataperf", "linear"), default="dataperf",
                   help="head to export (default dataperf)")
    p.add_argument("--seeds", type=parse_seeds, metavar="S,S,...",
                   help="dataperf head: classifier seeds (default: DataPerf's ten; each adds "
                   "its SVC and logistic regression to the graph)")
    p.add_argument("--check", type=Path, metavar="RECORDING",
                   help="compare TFLite and Python scores on this recording's windows "
                   "(default: seeded synthetic probes)")
    p.add_argument("--min-cosine", type=float, default=0.999,
                   help="fail (status 1) when parity is below this (default 0.999)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, _main, argv)


def _main(argv: list[str] | None) -> int:
    from embedding_model.spotter import (Spotter, check_backend, fit_head, load_recording,
                                         load_train_set, make_backend, train_label_names)

    args = build_parser().parse_args(argv)
    train = load_train_set(args.train_file)
    if train.backend and train.backend != "mswc":
        raise InputError(f"{args.train_file}: embedded with {train.backend!r}; only the mswc "
                         "backend (a Keras model) exports to TFLite")
    options = {"batch_size": 32} | ({"model": args.model} if args.model else {})
    backend = make_backend("mswc", options)
    check_backend(train, backend, str(args.train_file))
    head = fit_head(train, args.head, args.seeds)
    names = train_label_names(train)
    try:
        export_spotter(backend.model, head, args.out)
    except ImportError as exc:
        raise EnvironmentProblem(f"TFLite export needs TensorFlow ({exc})") from None
    audio = load_recording(args.check) if args.check else None
    windows = probe_windows(audio)
    reference = Spotter(backend, head, names).score_windows(windows)
    result = parity(reference, TFLiteSpotterModel(args.out).scores(windows))
    sidecar = {"keywords": names[1:], "input": "waveform [1, 16000] float32, 16 kHz, [-1, 1]",
               "output": "keyword scores [1, K] float32", "head": head.kind,
               "backend": backend.name, "model_id": backend.identity,
               "train_file": str(args.train_file), "parity": result}
    from protos.atomic import atomic_write_text

    atomic_write_text(args.out.with_suffix(".json"), json.dumps(sidecar, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB): parity min cosine "
          f"{result['min_cosine']:.6f}, max |diff| {result['max_abs_diff']:.2e} over "
          f"{result['windows']} windows")
    if result["min_cosine"] < args.min_cosine:
        raise InputError(f"TFLite scores disagree with the Python path (min cosine "
                         f"{result['min_cosine']:.6f} < {args.min_cosine})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
