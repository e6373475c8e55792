"""The MSWC-style keyword classifier and its 1024-d embedding.

Architecture (see docs/MODEL.md for the reasoning and the measurements)::

    waveforms [N, 16000] float32
      -> LogMel                          [N, 49, 40]   (core TF ops, frontend.py)
      -> ClipNormalize                   per-clip mean removed (gain invariance)
      -> stem conv 3x3 /(1,2), 32        [N, 49, 20, 32]
      -> 6 depthwise-separable blocks    [N, 7, 5, C]  (residual where shapes allow)
      -> mean over frequency, 1x1 conv   [N, 7, 64] -> flatten [N, 448]
      -> Dense 1024 + LayerNorm          [N, 1024]     layer "embedding"
    training heads (not exported):
      -> cosine classifier over the word classes (AM-softmax, low-rank)
      -> linear head predicting openWakeWord's 96-d embedding (distillation)

The embedding layer is a linear map followed by LayerNorm (``embedding="ln"``), which
keeps all 1,024 units live and gives vectors with per-unit variance near 1: raw-vector
classifiers (DataPerf's RBF SVC + LogisticRegression(C=1)) see a useful scale. The
alternative ``embedding="relu"`` (Dense -> BatchNorm -> ReLU, the paper's shape) is
kept for comparison.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

EMBEDDING_DIM = 1024
EMBEDDING_LAYER = "embedding"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the backbone (everything needed to rebuild it)."""

    widths: tuple[int, ...] = (64, 64, 128, 128, 128, 160)
    strides: tuple[tuple[int, int], ...] = ((2, 2), (1, 1), (2, 2), (1, 1), (1, 1), (2, 1))
    stem_width: int = 32
    pooled_channels: int = 64
    embedding: str = "ln"  # "ln" (linear + LayerNorm) or "relu" (Dense + BN + ReLU)
    embedding_dim: int = EMBEDDING_DIM
    input_norm: str = "clip"  # "clip": the clip's mean level removed; "band": each band's mean over time

    def __post_init__(self):
        if self.input_norm not in ("clip", "band"):
            raise ValueError(f"input_norm must be 'clip' or 'band', got {self.input_norm!r}")
        if self.embedding not in ("ln", "relu"):
            raise ValueError(f"embedding must be 'ln' or 'relu', got {self.embedding!r}")
        if len(self.widths) != len(self.strides):
            raise ValueError("widths and strides must have the same length")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["input_norm"] == "clip":  # the original models' configs have no such field
            del data["input_norm"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModelConfig":
        data = dict(data)
        data["widths"] = tuple(data["widths"])
        data["strides"] = tuple(tuple(s) for s in data["strides"])
        return cls(**data)

    def digest(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


_CUSTOM: dict[str, Any] = {}


def custom_objects() -> dict[str, Any]:
    """Custom layers needed by ``keras.models.load_model`` for this package's models."""
    if not _CUSTOM:
        _define_layers()
    return dict(_CUSTOM)


def _define_layers() -> None:
    import keras
    import tensorflow as tf

    from embedding_model.frontend import logmel_class
    from embedding_model.oww_graph import custom_objects as oww_objects

    @keras.saving.register_keras_serializable(package="embedding_model")
    class ClipNormalize(keras.layers.Layer):
        """Subtract each clip's mean log-mel energy: a gain change becomes a no-op."""

        def call(self, logmel):
            return logmel - tf.reduce_mean(logmel, axis=[1, 2], keepdims=True)

    @keras.saving.register_keras_serializable(package="embedding_model")
    class BandNormalize(keras.layers.Layer):
        """Subtract each mel band's mean over the clip's frames: a fixed channel (microphone,
        telephone line, spectral tilt), additive in log-mel, becomes a no-op."""

        def call(self, logmel):
            return logmel - tf.reduce_mean(logmel, axis=1, keepdims=True)

    @keras.saving.register_keras_serializable(package="embedding_model")
    class CosineClassifier(keras.layers.Layer):
        """Cosine similarity between L2-normalised inputs and L2-normalised class weights.

        Input [N, D] float32 -> [N, n_classes] float32 in [-1, 1]. The margin and scale
        of AM-softmax are applied in the loss, so this layer is the plain cosine.
        """

        def __init__(self, n_classes: int, **kwargs):
            super().__init__(**kwargs)
            self.n_classes = int(n_classes)

        def build(self, input_shape):
            self.kernel = self.add_weight(
                name="kernel",
                shape=(int(input_shape[-1]), self.n_classes),
                initializer=keras.initializers.GlorotUniform(seed=7),
            )

        def call(self, x):
            x = tf.math.l2_normalize(x, axis=-1)
            w = tf.math.l2_normalize(self.kernel, axis=0)
            return tf.matmul(x, w)

        def get_config(self):
            return {**super().get_config(), "n_classes": self.n_classes}

    @keras.saving.register_keras_serializable(package="embedding_model")
    class AdditiveMarginLoss(keras.losses.Loss):
        """AM-softmax (CosFace) on a :class:`CosineClassifier`'s output, for ``fit``:
        cross-entropy of ``scale * (cosine - margin * onehot(label))``."""

        def __init__(self, scale: float = 30.0, margin: float = 0.2, name="additive_margin", **kwargs):
            super().__init__(name=name, **kwargs)
            self.scale, self.margin = float(scale), float(margin)

        def call(self, y_true, cosines):
            labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
            logits = self.scale * (cosines - self.margin * tf.one_hot(labels, tf.shape(cosines)[-1]))
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

        def get_config(self):
            return {**super().get_config(), "scale": self.scale, "margin": self.margin}

    @keras.saving.register_keras_serializable(package="embedding_model")
    class Subsample2D(keras.layers.Layer):
        """Keep every ``strides``-th row/column from ``offsets``: [N, H, W, C] -> [N, H', W', C].

        A stride-1 "same" convolution followed by this layer equals the strided "same"
        convolution exactly (see :func:`same_padding_offset`), with a strided slice that
        every TensorFlow and TFLite kernel supports.
        """

        def __init__(self, strides, offsets, **kwargs):
            super().__init__(**kwargs)
            self.strides = tuple(int(s) for s in strides)
            self.offsets = tuple(int(o) for o in offsets)

        def call(self, x):
            (sh, sw), (oh, ow) = self.strides, self.offsets
            return x[:, oh::sh, ow::sw, :]

        def get_config(self):
            return {**super().get_config(), "strides": list(self.strides), "offsets": list(self.offsets)}

    _CUSTOM.update(
        {
            "LogMel": logmel_class(),
            "ClipNormalize": ClipNormalize,
            "BandNormalize": BandNormalize,
            "CosineClassifier": CosineClassifier,
            "AdditiveMarginLoss": AdditiveMarginLoss,
            "Subsample2D": Subsample2D,
            **oww_objects(),
        }
    )


def same_padding_offset(size: int, stride: int, kernel: int = 3) -> int:
    """Row of a stride-1 "same" convolution's output where the strided one's row 0 sits.

    TensorFlow pads a "same" convolution with ``total = max((ceil(size/stride) - 1) *
    stride + kernel - size, 0)`` and puts ``total // 2`` before the data; a stride-1
    one puts ``(kernel - 1) // 2`` before. Output row j of the strided convolution is
    output row ``offset + j * stride`` of the stride-1 one.
    """
    out = -(-size // stride)
    before = max((out - 1) * stride + kernel - size, 0) // 2
    return (kernel - 1) // 2 - before


def _ds_block(x, width: int, stride: tuple[int, int], name: str):
    import keras
    from keras import layers

    in_width = x.shape[-1]
    if stride[0] == stride[1]:
        y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    else:
        # TensorFlow's own CPU kernel (oneDNN off: the default on most CPUs) rejects
        # unequal strides; a stride-1 depthwise conv + a strided slice is the same map.
        y = layers.DepthwiseConv2D(3, strides=1, padding="same", use_bias=False, name=f"{name}_dw")(x)
        offsets = [same_padding_offset(int(x.shape[axis]), stride[axis - 1]) for axis in (1, 2)]
        y = custom_objects()["Subsample2D"](stride, offsets, name=f"{name}_subsample")(y)
    y = layers.BatchNormalization(name=f"{name}_dw_bn")(y)
    y = layers.ReLU(name=f"{name}_dw_relu")(y)
    y = layers.Conv2D(width, 1, use_bias=False, name=f"{name}_pw")(y)
    y = layers.BatchNormalization(name=f"{name}_pw_bn")(y)
    if stride == (1, 1) and in_width == width:
        y = layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def build_backbone(config: ModelConfig = ModelConfig()):
    """Log-mel [N, 49, 40] float32 -> embedding [N, 1024] float32 (a Keras model)."""
    import keras
    from keras import layers

    from embedding_model.frontend import N_FRAMES, N_MELS

    objs = custom_objects()
    logmel = keras.Input(shape=(N_FRAMES, N_MELS), name="logmel")
    if config.input_norm == "band":
        x = objs["BandNormalize"](name="band_normalize")(logmel)
    else:
        x = objs["ClipNormalize"](name="clip_normalize")(logmel)
    x = layers.Reshape((N_FRAMES, N_MELS, 1), name="add_channel")(x)
    x = layers.Conv2D(config.stem_width, 3, strides=(1, 2), padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, (width, stride) in enumerate(zip(config.widths, config.strides)):
        x = _ds_block(x, width, tuple(stride), name=f"block{i + 1}")
    # Keep the time axis (word identity depends on phoneme order), pool frequency.
    x = layers.AveragePooling2D(pool_size=(1, int(x.shape[2])), name="freq_pool")(x)
    x = layers.Conv2D(config.pooled_channels, 1, use_bias=False, name="pool_proj")(x)
    x = layers.BatchNormalization(name="pool_proj_bn")(x)
    x = layers.ReLU(name="pool_proj_relu")(x)
    x = layers.Flatten(name="flatten")(x)
    if config.embedding == "ln":
        x = layers.Dense(config.embedding_dim, name="embedding_dense")(x)
        embedding = layers.LayerNormalization(name=EMBEDDING_LAYER)(x)
    else:
        x = layers.Dense(config.embedding_dim, use_bias=False, name="embedding_dense")(x)
        x = layers.BatchNormalization(name="embedding_bn")(x)
        embedding = layers.ReLU(name=EMBEDDING_LAYER)(x)
    return keras.Model(logmel, embedding, name="backbone")


def build_embedder(backbone, mel_block_rows: int | None = None):
    """Waveforms [N, 16000] float32 -> embedding [N, 1024] float32, frontend included.

    ``mel_block_rows`` splits the mel filterbank into small blocks (same numbers, slower)
    for the int8 TFLite export; see :class:`embedding_model.frontend.LogMel`.
    """
    import keras

    from embedding_model.frontend import CLIP_SAMPLES

    objs = custom_objects()
    waveforms = keras.Input(shape=(CLIP_SAMPLES,), name="waveforms")
    logmel = objs["LogMel"](mel_block_rows=mel_block_rows, name="logmel")(waveforms)
    return keras.Model(waveforms, backbone(logmel), name="mswc_embedding")


def build_trainer(backbone, n_classes: int, head_dim: int = 128, teacher_dim: int = 96, dropout: float = 0.1):
    """Training graph: log-mel -> (class cosines [N, C], teacher prediction [N, 96]).

    The class head is low-rank (embedding -> ``head_dim`` -> cosine over classes) so the
    resumable checkpoint stays a few MB even with thousands of word classes.
    """
    import keras
    from keras import layers

    objs = custom_objects()
    logmel = keras.Input(shape=backbone.input_shape[1:], name="logmel")
    embedding = backbone(logmel)
    x = layers.Dropout(dropout, seed=11, name="head_dropout")(embedding)
    proj = layers.Dense(head_dim, use_bias=False, name="head_projection")(x)
    cosines = objs["CosineClassifier"](n_classes, name="classes")(proj)
    teacher = layers.Dense(teacher_dim, name="teacher_head")(x)
    return keras.Model(logmel, [cosines, teacher], name="trainer")


def count_flops(model) -> int:
    """Floating-point operations (2 x multiply-adds) of one forward pass, batch 1.

    Counted from the TensorFlow graph profiler on a concrete function of ``model``.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler.model_analyzer import profile
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    opts = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    info = profile(graph=frozen.graph, options=opts)
    return int(info.total_float_ops)
