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

The names below are loaded on first use, so ``import corpus.words`` or
``corpus.clip`` does not pull in libsndfile and soxr.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "corpus.audio": ("OPUS_SAMPLE_RATE", "ClipError", "decode_audio", "encode_opus", "load_clip",
                     "normalize_clip", "write_opus"),
    "corpus.clip": ("CLIP_SAMPLES", "CLIP_SECONDS", "SAMPLE_RATE", "ClipContractError", "check_clips"),
    "corpus.layout": ("ClipRecord", "CorpusError", "clip_path", "corpus_langs", "read_metadata", "read_splits",
                      "read_word_counts", "write_metadata", "write_splits"),
    "corpus.speakers": ("read_speakers", "read_voices", "write_speakers"),
    "corpus.words": ("is_keyword_like", "normalize_word", "number_words"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_HOME_OF)


def __getattr__(name: str):
    if name in _HOME_OF:
        value = getattr(importlib.import_module(_HOME_OF[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'corpus' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
