"""openWakeWord's speech embedding rebuilt as TensorFlow layers, weights read from its ONNX files.

openWakeWord (``openwakeword==0.4.0``, the ``openwakeword`` extra) runs two ONNX
models: a mel spectrogram (an STFT as two convolutions, 32 mel bands, 10*log10 with an
80 dB floor below the maximum) and Google's speech embedding (20 small convolutions
over windows of 76 mel frames -> 96-d). :mod:`embedding_model.oww` runs them with
onnxruntime; this module rebuilds the same computation from core TensorFlow ops so it
can sit inside a Keras model, and be saved, exported to SavedModel and TFLite, and run
on every CPU like the rest of the graph. The weights are read once from the ONNX files
of the installed wheel (with the ``onnx`` package, also in the extra) and then live in
the Keras model; loading a saved model needs neither package.

One deliberate difference: the ONNX mel model takes its 80 dB floor below the maximum
of the whole batch it is given, so a clip's numbers depend on its batch mates. Here the
floor is per clip. The two agree exactly when a batch holds one clip
(``tests/test_oww_graph.py``).

Shapes: waveforms [N, S] float32 in [-1, 1] -> mel [N, F, 32] with F = (S - 512) // 160
+ 1 -> windows of 76 frames every 8 frames -> [N, W, 96], W = (F - 76) // 8 + 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WINDOW_FRAMES = 76
MEL_BINS = 32
DIM = 96
FRAME_LENGTH = 512
FRAME_STEP = 160
N_BINS = 257
FLOOR_DB = 80.0
LEAK = 0.2
ACTIVATION_FLOOR = -0.4
#: the first convolution train-hybrid fine-tunes by default (after the third max-pool, [28, 4, 72]
#: per 1-s clip); ``--tune-from 7`` starts after the second one ([60, 8, 48]).
TUNE_FROM = 11
TUNE_FROMS = (11, 7)

_CLASSES: dict = {}


def read_onnx_weights(root: Path | None = None) -> dict[str, np.ndarray]:
    """The weights this module needs, from openWakeWord's two ONNX files.

    Returns:
        ``{"window": [512], "mel": [257, 32],
        "conv{i}/kernel": [kh, kw, in, out], "conv{i}/bias": [out], "bn0/*": [24]}``,
        kernels in Keras layout (height = time, width = mel band).
    """
    from embedding_model.oww import OpenWakeWordMissing, model_dir

    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise OpenWakeWordMissing(
            "the onnx package is not installed: pip install 'dataperf-speech[openwakeword]'"
        ) from exc
    root = root or model_dir()
    mel = onnx.load(str(root / "melspectrogram.onnx"))
    tensors = {t.name: numpy_helper.to_array(t) for t in mel.graph.initializer}
    real = tensors["0.stft.conv_real.weight"][:, 0, :].T.astype(np.float64)  # [512, 257]
    imag = tensors["0.stft.conv_imag.weight"][:, 0, :].T.astype(np.float64)
    # The two convolutions are a windowed DFT: keep the window and use an FFT.
    window = real[:, 0]
    phase = 2 * np.pi * np.outer(np.arange(FRAME_LENGTH), np.arange(N_BINS)) / FRAME_LENGTH
    if (np.abs(real - window[:, None] * np.cos(phase)).max() > 1e-5
            or np.abs(imag + window[:, None] * np.sin(phase)).max() > 1e-5):
        raise ValueError(f"{root / 'melspectrogram.onnx'}: its STFT kernels are not a windowed DFT")
    out = {"window": window.astype(np.float32), "mel": tensors["1.melW"].astype(np.float32)}
    emb = onnx.load(str(root / "embedding_model.onnx"))
    tensors = {t.name: numpy_helper.to_array(t) for t in emb.graph.initializer}
    convs = [n for n in emb.graph.node if n.op_type == "Conv"]
    if len(convs) != 20:
        raise ValueError(f"{root / 'embedding_model.onnx'}: expected 20 convolutions, found {len(convs)}")
    for i, node in enumerate(convs):
        kernel = tensors[node.input[1]]  # [out, in, kh, kw]
        out[f"conv{i}/kernel"] = np.transpose(kernel, (2, 3, 1, 0)).astype(np.float32)
        if len(node.input) > 2:
            out[f"conv{i}/bias"] = tensors[node.input[2]].astype(np.float32)
    bn = next(n for n in emb.graph.node if n.op_type == "BatchNormalization")
    for key, name in zip(("gamma", "beta", "mean", "var"), bn.input[1:]):
        out[f"bn0/{key}"] = tensors[name].astype(np.float32)
    return out


# (kernel height, kernel width, output channels, max-pool after it) for convolutions 1-18;
# convolution 0 (3x3, no bias, then ReLU and batch norm) and 19 (3x1, no bias, no
# activation) are special.
_BODY = [
    (1, 3, 24, None), (3, 1, 24, (2, 2)),
    (1, 3, 48, None), (3, 1, 48, None), (1, 3, 48, None), (3, 1, 48, (1, 2)),
    (1, 3, 72, None), (3, 1, 72, None), (1, 3, 72, None), (3, 1, 72, (2, 2)),
    (1, 3, 96, None), (3, 1, 96, None), (1, 3, 96, None), (3, 1, 96, (1, 2)),
    (1, 3, 96, None), (3, 1, 96, None), (1, 3, 96, None), (3, 1, 96, (2, 2)),
]


def _define_layers() -> None:
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="embedding_model")
    class OwwMel(keras.layers.Layer):
        """Waveforms [N, S] in [-1, 1] -> openWakeWord's mel features [N, F, 32].

        int16 scaling, windowed FFT every 160 samples (its window), power, 32 mel
        bands, 10*log10 with a floor 80 dB below the clip's maximum, then openWakeWord's
        rescaling x / 10 + 2. The window and filterbank are non-trainable weights.
        """

        def build(self, input_shape):
            self.window = self.add_weight(name="window", shape=(FRAME_LENGTH,), trainable=False, initializer="zeros")
            self.mel = self.add_weight(name="mel", shape=(N_BINS, MEL_BINS), trainable=False, initializer="zeros")

        def call(self, waveforms):
            audio = tf.clip_by_value(tf.cast(waveforms, tf.float32) * 32767.0, -32768.0, 32767.0)
            frames = tf.signal.frame(audio, FRAME_LENGTH, FRAME_STEP, pad_end=False)  # [N, F, 512]
            spec = tf.signal.rfft(frames * self.window)
            power = tf.math.square(tf.math.real(spec)) + tf.math.square(tf.math.imag(spec))
            mel = tf.tensordot(power, self.mel, axes=1)
            db = 10.0 * tf.math.log(tf.maximum(mel, 1e-10)) / np.log(10.0).astype(np.float32)
            floor = tf.reduce_max(db, axis=[1, 2], keepdims=True) - FLOOR_DB
            return tf.maximum(db, floor) / 10.0 + 2.0

        def compute_output_shape(self, input_shape):
            frames = None if input_shape[1] is None else (input_shape[1] - FRAME_LENGTH) // FRAME_STEP + 1
            return (input_shape[0], frames, MEL_BINS)

    @keras.saving.register_keras_serializable(package="embedding_model")
    class CenterPad(keras.layers.Layer):
        """Waveforms [N, S] -> [N, S + 2 * pad]: the clip centred in zeros."""

        def __init__(self, pad: int, **kwargs):
            super().__init__(**kwargs)
            self.pad = int(pad)

        def call(self, waveforms):
            return tf.pad(waveforms, [[0, 0], [self.pad, self.pad]])

        def get_config(self):
            return {**super().get_config(), "pad": self.pad}

    @keras.saving.register_keras_serializable(package="embedding_model")
    class LeakyFloor(keras.layers.Layer):
        """max(leaky_relu(x, 0.2), -0.4): the speech embedding's activation."""

        def call(self, x):
            return tf.maximum(tf.nn.leaky_relu(x, alpha=LEAK), ACTIVATION_FLOOR)

    _CLASSES.update(OwwMel=OwwMel, CenterPad=CenterPad, LeakyFloor=LeakyFloor)


def custom_objects() -> dict:
    if not _CLASSES:
        _define_layers()
    return dict(_CLASSES)


def _body(x, first: int, last: int):
    """Convolutions ``first``..``last`` of 1-18, each with its activation and max-pool."""
    from keras import layers

    for i, (kh, kw, width, pool) in enumerate(_BODY, start=1):
        if first <= i <= last:
            padding = "same" if kh == 1 else "valid"  # 1x3: padded along the bands; 3x1: not along time
            x = layers.Conv2D(width, (kh, kw), padding=padding, name=f"oww_conv{i}")(x)
            x = _leaky_floor(x, str(i))
            if pool:
                x = layers.MaxPooling2D(pool, name=f"oww_pool{i}")(x)
    return x


def _stem(mel):
    """Convolution 0: band padding, 3x3 without bias, ReLU, batch norm, activation."""
    from keras import layers

    x = layers.ZeroPadding2D(((0, 0), (1, 1)), name="oww_pad")(mel)
    x = layers.Conv2D(24, 3, use_bias=False, name="oww_conv0")(x)
    x = layers.ReLU(name="oww_relu0")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name="oww_bn0")(x)
    return _leaky_floor(x, "0")


def _tail(x, tune_from: int = TUNE_FROM):
    """Convolutions ``tune_from``..18 and the last one (3x1 to 96, no bias): [M, W, 96]."""
    from keras import layers

    x = _body(x, tune_from, 18)
    x = layers.Conv2D(DIM, (3, 1), use_bias=False, name="oww_conv19")(x)
    return layers.Reshape((-1, DIM), name="oww_vectors")(x)


def build_window_embedder(weights: dict[str, np.ndarray] | None = None, frames: int = WINDOW_FRAMES):
    """Keras model: mel [M, frames, 32, 1] -> [M, (frames - 76) // 8 + 1, 96].

    With ``frames`` = 76 this is Google's speech embedding of one window. The network
    is convolutional in time (unpadded convolutions, max-pools whose strides multiply
    to 8), so on a longer input it computes, exactly and once for all overlapping
    windows, the embeddings of every window starting at a multiple of 8 frames:
    openWakeWord's streaming step.
    """
    import keras

    inp = keras.Input(shape=(frames, MEL_BINS, 1), name="mel")
    out = _tail(_body(_stem(inp), 1, TUNE_FROM - 1))
    model = keras.Model(inp, out, name="oww_window_embedder")
    if weights is not None:
        set_window_weights(model, weights)
    model.trainable = False
    return model


def _leaky_floor(x, tag: str):
    return custom_objects()["LeakyFloor"](name=f"oww_act{tag}")(x)


def set_window_weights(model, weights: dict[str, np.ndarray]) -> None:
    """Set the speech embedding's weights on every one of its layers that ``model`` holds."""
    names = {layer.name for layer in model.layers}
    if "oww_conv0" in names:
        model.get_layer("oww_conv0").set_weights([weights["conv0/kernel"]])
        model.get_layer("oww_bn0").set_weights([weights[f"bn0/{k}"] for k in ("gamma", "beta", "mean", "var")])
    for i in range(1, 19):
        if f"oww_conv{i}" in names:
            model.get_layer(f"oww_conv{i}").set_weights([weights[f"conv{i}/kernel"], weights[f"conv{i}/bias"]])
    if "oww_conv19" in names:
        model.get_layer("oww_conv19").set_weights([weights["conv19/kernel"]])


def tail_layer_names(tune_from: int = TUNE_FROM) -> list[str]:
    """The layers :func:`build_tail` holds that have weights (the ones train-hybrid fine-tunes)."""
    return [f"oww_conv{i}" for i in range(tune_from, 20)]


def _waveform_input(weights: dict[str, np.ndarray] | None, pad: int, clip_samples: int):
    """(waveforms input, mel [N, frames, 32, 1] tensor, frames); the mel's weights set if given."""
    import keras
    from keras import layers

    objs = custom_objects()
    frames = (clip_samples + 2 * pad - FRAME_LENGTH) // FRAME_STEP + 1
    inp = keras.Input(shape=(clip_samples,), name="waveforms")
    x = objs["CenterPad"](pad, name="oww_center")(inp) if pad else inp
    mel_layer = objs["OwwMel"](name="oww_mel")
    x = layers.Reshape((frames, MEL_BINS, 1), name="oww_mel_channel")(mel_layer(x))
    if weights is not None:
        mel_layer.set_weights([weights["window"], weights["mel"]])
    return inp, x, frames


def build_trunk(weights: dict[str, np.ndarray], pad: int = 2880, clip_samples: int = 16000,
                tune_from: int = TUNE_FROM):
    """Keras model: waveforms [N, clip_samples] -> the activations after max-pool ``tune_from`` - 1.

    The frozen part of the speech embedding when train-hybrid fine-tunes the rest: with
    the default padding, [N, 28, 4, 72] per clip from 11, [N, 60, 8, 48] from 7.
    :func:`build_tail` with the same ``tune_from`` takes it on to the window embeddings;
    the two together equal :func:`build_sequence_model`.
    """
    import keras

    inp, mel, _ = _waveform_input(weights, pad, clip_samples)
    model = keras.Model(inp, _body(_stem(mel), 1, tune_from - 1), name="oww_trunk")
    set_window_weights(model, weights)
    model.trainable = False
    return model


def build_tail(weights: dict[str, np.ndarray], input_shape: tuple[int, int, int], tune_from: int = TUNE_FROM):
    """Keras model: trunk activations [N, *input_shape] -> window embeddings [N, W, 96] (trainable)."""
    import keras

    inp = keras.Input(shape=tuple(input_shape), name="trunk")
    model = keras.Model(inp, _tail(inp, tune_from), name="oww_tail")
    set_window_weights(model, weights)
    return model


def build_sequence_model(weights: dict[str, np.ndarray] | None = None, pad: int = 2880, clip_samples: int = 16000):
    """Keras model: waveforms [N, clip_samples] -> window embeddings [N, W, 96].

    The clip is centred in ``pad`` zeros on each side; windows start every 8 mel
    frames. With the default 2,880 samples: 133 frames, W = 8 windows, the same as
    windows 4-11 of openWakeWord's ``centered2s`` form (its 2 s of context shifted by
    exactly 32 frames), the middle ones, which carry the word.
    """
    import keras

    inp, mel, frames = _waveform_input(weights, pad, clip_samples)
    embedder = build_window_embedder(weights, frames=frames)
    return keras.Model(inp, embedder(mel), name="oww_sequence")
