"""The corpus facts every stage shares, and reading MSWC-layout corpora.

The bottom of the audio side of the import graph: used by ``embedding_model``
(training) and ``dataset_builder`` (building datasets), importing neither, and no
TensorFlow. One owner for each rule:

* :mod:`corpus.clip`: the clip contract (16 kHz, one second, float32 [N, 16000],
  finite) and its validator :func:`check_clips`;
* :mod:`corpus.words`: a word's normal form, the MSWC keyword rule, number words;
* :mod:`corpus.layout`: the splits CSV (four places it may live), metadata, clip
  paths, the languages of a corpus;
* :mod:`corpus.speakers`: the synthesizer's ``{lang}_speakers.csv`` sidecar;
* :mod:`corpus.audio`: decoding and normalising clips, writing Ogg/Opus;
* :mod:`corpus.rooms`: simulated shoebox rooms (synthesizer and training augmentation).
"""

from corpus.audio import (
    OPUS_SAMPLE_RATE,
    ClipError,
    decode_audio,
    encode_opus,
    load_clip,
    normalize_clip,
    write_opus,
)
from corpus.clip import CLIP_SAMPLES, CLIP_SECONDS, SAMPLE_RATE, ClipContractError, check_clips
from corpus.layout import (
    ClipRecord,
    CorpusError,
    clip_path,
    corpus_langs,
    read_metadata,
    read_splits,
    read_word_counts,
    write_metadata,
    write_splits,
)
from corpus.speakers import read_speakers, read_voices, write_speakers
from corpus.words import is_keyword_like, normalize_word, number_words

__all__ = [
    "CLIP_SAMPLES",
    "CLIP_SECONDS",
    "OPUS_SAMPLE_RATE",
    "SAMPLE_RATE",
    "ClipContractError",
    "ClipError",
    "ClipRecord",
    "CorpusError",
    "check_clips",
    "clip_path",
    "corpus_langs",
    "decode_audio",
    "encode_opus",
    "is_keyword_like",
    "load_clip",
    "normalize_clip",
    "normalize_word",
    "number_words",
    "read_metadata",
    "read_speakers",
    "read_splits",
    "read_voices",
    "read_word_counts",
    "write_metadata",
    "write_opus",
    "write_speakers",
    "write_splits",
]
