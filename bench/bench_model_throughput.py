"""Embedding throughput: our model vs the original architecture, side by side.

Both models take waveforms [N, 16000] float32 (the same log-mel frontend inside) and
return a 1024-d embedding. The original is EfficientNet-B0 (``weights=None``: only the
compute matters) on the 49x40 log-mel image with the paper's dense head (global
pooling -> 2048 -> 2048 -> 1024). Timings alternate between the models in rounds, so
background load hits both alike; the best round of each is reported.

    python bench/bench_model_throughput.py [--model models] [--batch-size 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def efficientnet_b0_embedder():
    """Waveforms [N, 16000] -> EfficientNet-B0 on log-mel [49, 40, 1] -> dense head -> [N, 1024]."""
    import keras
    from keras import layers

    from embedding_model.frontend import CLIP_SAMPLES, N_FRAMES, N_MELS, LogMel

    waveforms = keras.Input(shape=(CLIP_SAMPLES,))
    x = LogMel()(waveforms)
    x = layers.Reshape((N_FRAMES, N_MELS, 1))(x)
    base = keras.applications.EfficientNetB0(
        weights=None, include_top=False, input_shape=(N_FRAMES, N_MELS, 1), pooling="avg"
    )
    x = base(x)
    x = layers.Dense(2048, activation="relu")(x)
    x = layers.Dense(2048, activation="relu")(x)
    x = layers.Dense(1024, activation="relu", name="embedding")(x)
    return keras.Model(waveforms, x, name="efficientnet_b0_embedding")


def measure(fn, clips, seconds: float) -> float:
    """Clips per second of ``fn`` over about ``seconds`` of repeated calls."""
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(clips)
        n += clips.shape[0]
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", type=Path, default=None,
                   help="directory with mswc_embedding.keras (default: shipped model, else an untrained base model)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per model per round")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from embedding_model.backends import BackendUnavailable, MswcBackend
    from embedding_model.model import build_backbone, build_embedder, count_flops

    try:
        ours = MswcBackend(model=args.model).model
        source = "trained"
    except BackendUnavailable:
        if args.model is not None:
            print(f"bench_model_throughput: error: no model at {args.model}", file=sys.stderr)
            return 2
        ours = build_embedder(build_backbone())
        source = "untrained base architecture"
    original = efficientnet_b0_embedder()
    clips = np.random.default_rng(0).uniform(-0.5, 0.5, (args.batch_size, 16000)).astype(np.float32)
    models = {"ours": ours, "efficientnet_b0": original}
    fns = {}
    for name, model in models.items():
        fn = tf.function(lambda x, m=model: m(x, training=False),
                         input_signature=[tf.TensorSpec([None, 16000], tf.float32)])
        fn(clips)  # trace and warm up
        fns[name] = fn
    best = {name: 0.0 for name in models}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            best[name] = max(best[name], measure(fn, clips, args.seconds))
    result = {
        "batch_size": args.batch_size,
        "threads": args.threads,
        "ours_source": source,
        "clips_per_s": {k: round(v, 1) for k, v in best.items()},
        "speedup_vs_efficientnet_b0": round(best["ours"] / best["efficientnet_b0"], 2),
        "params": {k: int(m.count_params()) for k, m in models.items()},
        "flops_per_clip": {k: count_flops(m) for k, m in models.items()},
    }
    print(json.dumps(result, indent=1))
    if args.json:
        from protos.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
