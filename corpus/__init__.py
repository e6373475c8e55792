"""Reading MSWC-layout corpora and turning clips into 16 kHz, one-second float32 arrays.

The bottom of the audio side of the import graph: used by ``embedding_model``
(training) and ``dataset_builder`` (building datasets), importing neither, and no
TensorFlow.
"""

from corpus.audio import (
    CLIP_SAMPLES,
    SAMPLE_RATE,
    ClipError,
    decode_audio,
    encode_opus,
    load_clip,
    normalize_clip,
    write_opus,
)
from corpus.layout import (
    ClipRecord,
    CorpusError,
    clip_path,
    read_metadata,
    read_splits,
    read_word_counts,
    write_metadata,
    write_splits,
)

__all__ = [
    "CLIP_SAMPLES",
    "SAMPLE_RATE",
    "ClipError",
    "ClipRecord",
    "CorpusError",
    "clip_path",
    "decode_audio",
    "encode_opus",
    "load_clip",
    "normalize_clip",
    "read_metadata",
    "read_splits",
    "read_word_counts",
    "write_metadata",
    "write_opus",
    "write_splits",
]
