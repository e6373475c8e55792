"""Export the embedding model: Keras, SavedModel, TFLite (float and int8).

Every format maps waveforms [N, 16000] float32 to embeddings [N, 1024] float32, with
the log-mel frontend inside the graph (core TF ops only, so TFLite needs no custom
ops). Files written to the output directory::

    mswc_embedding.keras         the Keras model (what the ``mswc`` backend loads)
    mswc_embedding.json          metadata: identity, training summary, export checks
    saved_model/                 SavedModel, signature "serving_default":
                                 waveforms [N, 16000] -> embeddings [N, 1024]
    mswc_embedding.tflite        TFLite float32
    mswc_embedding_int8.tflite   TFLite int8: weights and activations if that keeps the
                                 embedding (cosine to Keras >= 0.98), else int8 weights
                                 with float activations; float I/O

Keras 3 on TF 2.16 crashes in ``TFLiteConverter.from_keras_model``, so TFLite is
converted from the SavedModel. Command line::

    python -m embedding_model.export --model RUN_DIR/export --out models [--calibration-corpus ROOT]
        [--output-gain K]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from corpus.clip import CLIP_SAMPLES, SAMPLE_RATE
from protos.atomic import atomic_write_bytes, atomic_write_text
from protos.errors import EXIT_STATUS_HELP, EnvironmentProblem, InputError, run_cli

KERAS_NAME = "mswc_embedding.keras"
META_NAME = "mswc_embedding.json"
SAVED_MODEL_NAME = "saved_model"
TFLITE_NAME = "mswc_embedding.tflite"
TFLITE_INT8_NAME = "mswc_embedding_int8.tflite"


def save_embedder(backbone, out_dir: str | Path, info: dict | None = None, output_gain: float = 1.0) -> Path:
    """Save frontend + ``backbone`` as ``out_dir/mswc_embedding.keras`` (+ metadata JSON).

    ``output_gain`` (see :func:`set_output_gain`) is applied to the saved copy only: the
    training backbone keeps its weights, so a resumed run is unaffected.
    """
    import keras

    from embedding_model.backends import weights_identity
    from embedding_model.model import build_embedder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    embedder = build_embedder(backbone)
    path = _save_keras(embedder, out_dir)
    if output_gain != 1.0:
        embedder = load_embedder(path)  # a separate copy: the training backbone stays as it is
        set_output_gain(embedder, output_gain)
        _save_keras(embedder, out_dir)
    del keras
    meta = {"identity": weights_identity(embedder), "dim": int(embedder.output_shape[-1]),
            "params": int(embedder.count_params()), "output_gain": float(output_gain), **(info or {})}
    atomic_write_text(out_dir / META_NAME, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return path


def _save_keras(embedder, out_dir: Path) -> Path:
    """``embedder`` as ``out_dir/mswc_embedding.keras``, written beside it and renamed into place."""
    path = out_dir / KERAS_NAME
    tmp = out_dir / f".{KERAS_NAME}.tmp.keras"
    embedder.save(tmp)
    tmp.replace(path)
    return path


def load_embedder(model_dir: str | Path):
    import keras

    from embedding_model.backends import resolve_model_path
    from embedding_model.model import custom_objects

    return keras.models.load_model(resolve_model_path(model_dir), custom_objects=custom_objects(), compile=False)


def rebuild_embedder(embedder, config=None):
    """The same embedder rebuilt from today's code, with its trained weights copied by layer name.

    Used when the graph a model was saved with changes but its weights do not (for
    example the strided depthwise convolution made portable to every CPU kernel).

    Args:
        embedder: a loaded Keras embedder (waveforms -> embeddings).
        config: the :class:`ModelConfig` it was trained with (default: the default config).

    Returns:
        A new Keras embedder; raises ValueError if a weighted layer has no counterpart.
    """
    from embedding_model.model import ModelConfig, build_backbone, build_embedder

    old = embedder.get_layer("backbone")
    backbone = build_backbone(config or ModelConfig())
    for layer in backbone.layers:
        if not layer.weights:
            continue
        try:
            source = old.get_layer(layer.name)
        except ValueError as exc:
            raise ValueError(f"layer {layer.name!r} of the rebuilt model has no counterpart in the saved one") from exc
        layer.set_weights(source.get_weights())
    copied = sum(int(np.prod(w.shape)) for w in backbone.weights)
    if copied != sum(int(np.prod(w.shape)) for w in old.weights):
        raise ValueError("the rebuilt model does not hold the same number of weights as the saved one")
    return build_embedder(backbone)


def check_output_gain(gain: float) -> None:
    """Raise ValueError unless ``gain`` is a positive finite number."""
    if not (np.isfinite(gain) and gain > 0):
        raise ValueError(f"the output gain must be a positive number, got {gain}")


def trained_part(embedder):
    """The sub-model that ends in the embedding layer: "backbone" (train-embedding) or "head" (train-hybrid)."""
    names = [layer.name for layer in embedder.layers]
    return embedder.get_layer("backbone" if "backbone" in names else "head")


def set_output_gain(embedder, gain: float) -> None:
    """Multiply ``embedder``'s output by ``gain`` inside the graph, in place.

    The embedding ends in a LayerNorm (or BatchNorm + ReLU): scaling its gain and bias
    by ``gain`` scales the output exactly (ReLU commutes with a positive factor), so the
    graph, its size and its speed are unchanged. Why a gain at all: DataPerf's classifier
    includes a LogisticRegression with C=1 on the raw vectors, whose regularisation
    depends on their scale (the RBF SVC's ``gamma="scale"`` does not); see
    models/MODEL_CARD.md, "Geometry".

    Raises:
        ValueError: ``gain`` is not a positive finite number.
    """
    from embedding_model.model import EMBEDDING_LAYER

    check_output_gain(gain)
    backbone = trained_part(embedder)
    layer = backbone.get_layer(EMBEDDING_LAYER)
    if not layer.weights:  # Dense + BatchNorm + ReLU: scale the BatchNorm
        layer = backbone.get_layer("embedding_bn")
    weights = layer.get_weights()
    # LayerNorm: [gamma, beta]; BatchNorm: [gamma, beta, moving_mean, moving_variance].
    layer.set_weights([w * np.float32(gain) if i < 2 else w for i, w in enumerate(weights)])


def export_savedmodel(embedder, out_dir: str | Path) -> Path:
    """SavedModel with signature ``serving_default``: waveforms [N, 16000] -> embeddings [N, 1024].

    Written with Keras' ``ExportArchive``: a SavedModel of a plain ``tf.Module`` holding
    a Keras 3 model makes the TFLite converter fail on its variable reads.
    """
    import keras
    import tensorflow as tf

    out_dir = Path(out_dir)
    archive = keras.export.ExportArchive()
    archive.track(embedder)
    archive.add_endpoint(
        name="serving_default",
        fn=lambda waveforms: {"embeddings": embedder(waveforms, training=False)},
        input_signature=[tf.TensorSpec([None, CLIP_SAMPLES], tf.float32, name="waveforms")],
    )
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    archive.write_out(str(tmp), verbose=False)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def export_tflite(saved_model_dir: str | Path, out_path: str | Path, calibration: np.ndarray | None = None,
                  weights_only: bool = False) -> Path:
    """Convert the SavedModel to TFLite.

    Args:
        calibration: clips [M, 16000] float32: quantize weights and activations to int8.
        weights_only: int8 weights, float activations (dynamic-range quantization).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])
    if weights_only:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif calibration is not None:
        calibration = np.asarray(calibration, dtype=np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for clip in calibration:
                yield [clip[None, :]]

        converter.representative_dataset = representative
        # Ops without an int8 kernel (the FFT) stay float; input and output stay float32.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    data = converter.convert()
    atomic_write_bytes(out_path, data)
    return Path(out_path)


class TFLiteEmbedder:
    """Run an exported ``.tflite`` embedding: clips [N, 16000] -> [N, 1024] float32."""

    def __init__(self, path: str | Path, threads: int = 2):
        import tensorflow as tf

        self.interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
        self._in = self.interpreter.get_input_details()[0]["index"]
        self._out = self.interpreter.get_output_details()[0]["index"]
        self._batch = None

    def embed(self, clips: np.ndarray) -> np.ndarray:
        clips = np.asarray(clips, dtype=np.float32)
        if self._batch != clips.shape[0]:
            self.interpreter.resize_tensor_input(self._in, list(clips.shape))
            self.interpreter.allocate_tensors()
            self._batch = clips.shape[0]
        self.interpreter.set_tensor(self._in, clips)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out).copy()


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, D] arrays."""
    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)
    b = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-12)
    return np.sum(a * b, axis=1)


def export_all(model_dir: str | Path, out_dir: str | Path, calibration: np.ndarray | None = None,
               check_clips: np.ndarray | None = None, int8_min_cosine: float = 0.98,
               output_gain: float = 1.0) -> dict:
    """Copy the Keras model and write SavedModel + TFLite exports, checking each against Keras.

    Args:
        model_dir: directory with ``mswc_embedding.keras`` (+ ``.json``).
        out_dir: destination (created).
        calibration: clips [M, 16000] float32 for full-integer calibration; None tries
            only weight-only int8.
        check_clips: clips [K, 16000] float32 to compare exports on (default: calibration
            clips, else seeded noise bursts).
        int8_min_cosine: the int8 model is kept only if its mean cosine to Keras is at least this.
        output_gain: multiply the copied model's output by this (:func:`set_output_gain`);
            the metadata records the new identity and the total gain.

    Returns:
        The ``exports`` dict written into ``mswc_embedding.json``: mean/min cosine per format.
    """
    import tensorflow as tf

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = json.loads((model_dir / META_NAME).read_text(encoding="utf-8")) if (model_dir / META_NAME).is_file() else {}
    if model_dir.resolve() != out_dir.resolve():
        atomic_write_bytes(out_dir / KERAS_NAME, (model_dir / KERAS_NAME).read_bytes())
    embedder = load_embedder(out_dir)
    if output_gain != 1.0:
        from embedding_model.backends import weights_identity

        set_output_gain(embedder, output_gain)
        _save_keras(embedder, out_dir)
        if meta.get("identity"):
            meta["gain_applied_to"] = meta["identity"]
        meta["identity"] = weights_identity(embedder)
        meta["output_gain"] = float(meta.get("output_gain", 1.0)) * float(output_gain)
    if check_clips is None:
        check_clips = calibration[:64] if calibration is not None else _probe_clips()
    reference = embedder.predict(check_clips, verbose=0, batch_size=64)
    checks = {}
    sm_dir = export_savedmodel(embedder, out_dir / SAVED_MODEL_NAME)
    served = tf.saved_model.load(str(sm_dir)).signatures["serving_default"]
    got = served(waveforms=tf.constant(check_clips))["embeddings"].numpy()
    checks["saved_model"] = _summary(cosine_rows(reference, got))
    export_tflite(sm_dir, out_dir / TFLITE_NAME)
    checks["tflite"] = _summary(cosine_rows(reference, TFLiteEmbedder(out_dir / TFLITE_NAME).embed(check_clips)))
    # int8: full integer (weights and activations) if it keeps quality, else int8
    # weights with float activations; neither is kept if both fall below the bar.
    from embedding_model.frontend import QUANT_SAFE_MEL_BLOCK_ROWS
    from embedding_model.model import build_embedder

    quant_dir = out_dir / f".{SAVED_MODEL_NAME}.int8.tmp"
    if trained_part(embedder).name == "backbone":
        export_savedmodel(build_embedder(embedder.get_layer("backbone"), mel_block_rows=QUANT_SAFE_MEL_BLOCK_ROWS),
                          quant_dir)
    else:  # train-hybrid's model: its mel filterbank is already a small weight
        export_savedmodel(embedder, quant_dir)
    modes = (["full"] if calibration is not None else []) + ["weights_only"]
    for mode in modes:
        export_tflite(quant_dir, out_dir / TFLITE_INT8_NAME, calibration=calibration[:200] if mode == "full" else None,
                      weights_only=mode == "weights_only")
        result = _summary(cosine_rows(reference, TFLiteEmbedder(out_dir / TFLITE_INT8_NAME).embed(check_clips)))
        result.update(mode=mode, kept=result["mean_cosine"] >= int8_min_cosine)
        checks.setdefault("tflite_int8_tried", []).append(result)
        checks["tflite_int8"] = result
        if result["kept"]:
            break
    shutil.rmtree(quant_dir, ignore_errors=True)
    if not checks["tflite_int8"]["kept"]:
        (out_dir / TFLITE_INT8_NAME).unlink()
    meta["exports"] = checks
    atomic_write_text(out_dir / META_NAME, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return checks


def _summary(cos: np.ndarray) -> dict:
    return {"mean_cosine": float(np.mean(cos)), "min_cosine": float(np.min(cos))}


def _probe_clips(n: int = 16, seed: int = 0) -> np.ndarray:
    """Seeded speech-like test signals: harmonic tones with envelopes plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    clips = []
    for _ in range(n):
        f0 = rng.uniform(90, 250)
        y = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 12))
        env = np.exp(-((t - rng.uniform(0.3, 0.7)) ** 2) / (2 * rng.uniform(0.05, 0.2) ** 2))
        y = y * env + 0.01 * rng.standard_normal(t.size)
        clips.append(0.5 * y / np.max(np.abs(y)))
    return np.asarray(clips, dtype=np.float32)


def calibration_clips(corpus: str | Path, n: int = 200, seed: int = 0) -> np.ndarray:
    """``n`` seeded random clips [n, 16000] float32 from an MSWC-layout corpus."""
    from corpus.audio import ClipError, load_clip
    from corpus.layout import clip_path, read_splits

    from corpus.layout import corpus_langs

    corpus = Path(corpus)
    refs = [(lang, r.link) for lang in corpus_langs(corpus) for r in read_splits(corpus, lang) if r.valid]
    if not refs:
        raise InputError(f"{corpus}: no clips to calibrate on")
    rng = np.random.default_rng(seed)
    clips = []
    for i in rng.permutation(len(refs)):
        try:
            clips.append(load_clip(clip_path(corpus, *refs[i])))
        except (ClipError, OSError):
            continue
        if len(clips) == n:
            break
    return np.stack(clips)


PROG = "python -m embedding_model.export"


def main(argv: list[str] | None = None) -> int:
    """Run the export command; returns the exit status (see :mod:`protos.errors`)."""
    return run_cli(PROG, _run, argv)


def _run(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Export a trained embedding model (directory with mswc_embedding.keras) to "
        "SavedModel and TFLite (float, and int8 if it keeps cosine >= --int8-min-cosine).",
        epilog=EXIT_STATUS_HELP,
    )
    p.add_argument("--model", required=True, type=Path, help="directory holding mswc_embedding.keras")
    p.add_argument("--out", required=True, type=Path, help="output directory (e.g. models)")
    p.add_argument("--calibration-corpus", type=Path, default=None,
                   help="MSWC-layout corpus to calibrate int8 on (int8 is skipped without it)")
    p.add_argument("--output-gain", type=float, default=1.0,
                   help="multiply the model's output by this inside the graph (the final LayerNorm's "
                   "gain and bias); the identity changes (default: 1, unchanged)")
    p.add_argument("--int8-min-cosine", type=float, default=0.98,
                   help="keep the int8 model only if its mean cosine to the Keras embeddings is at least this (default: 0.98)")
    args = p.parse_args(argv)
    if not (args.model / KERAS_NAME).is_file():
        raise EnvironmentProblem(f"{args.model / KERAS_NAME} not found (train with train-embedding first)")
    calibration = None
    if args.calibration_corpus is not None:
        try:
            calibration = calibration_clips(args.calibration_corpus)
        except (ValueError, OSError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"--calibration-corpus {args.calibration_corpus}: {exc}") from exc
    try:
        check_output_gain(args.output_gain)
    except ValueError as exc:
        raise InputError(f"--output-gain: {exc}") from exc
    checks = export_all(args.model, args.out, calibration=calibration, int8_min_cosine=args.int8_min_cosine,
                        output_gain=args.output_gain)
    print(json.dumps(checks, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
