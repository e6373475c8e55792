"""Fixtures for corpus tests: a tiny synthesized MSWC-layout corpus.

``tiny_corpus`` is shared by the corpus, model and dataset-builder tests; its
contents are part of their contract, so change them only together:

* languages ``es`` and ``en``, in the MSWC layout (``{lang}/clips/{word}/*.opus``,
  ``{lang}_splits.csv``, ``metadata.json.gz``) plus the synthesizer's sidecars;
* per language 9 words (:data:`TINY_WORDS`; "año" among the Spanish ones), of which
  the first 3 are meant as targets (:data:`TINY_TARGETS`) and 6 as nontarget words;
* 10 clips per word, each from a different speaker: 8 TRAIN, 1 DEV, 1 TEST, with
  speaker-disjoint splits; seed 0, default augmentation, all installed engines.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

def skip_without(*packages: str) -> None:
    """Skip the calling test (or fixture) with the apt-get line if a system package is missing."""
    from dataset_builder.system_check import TEST_REQUIREMENTS, install_line, missing

    wanted = [r for r in TEST_REQUIREMENTS if r.package in packages]
    unknown = set(packages) - {r.package for r in wanted}
    assert not unknown, f"no system requirement named {sorted(unknown)} in dataset_builder.system_check"
    lacking = missing(wanted)
    if lacking:
        pytest.skip(f"needs {', '.join(r.package for r in lacking)}: {install_line(lacking)}")


TINY_WORDS = {
    "es": ["año", "casa", "perro", "gato", "agua", "noche", "uno", "dos", "tres"],
    "en": ["house", "water", "apple", "green", "river", "night", "one", "two", "three"],
}
TINY_TARGETS = {lang: words[:3] for lang, words in TINY_WORDS.items()}
TINY_CLIPS_PER_WORD = 10
TINY_SEED = 0


def tiny_corpus_config(out: Path, jobs: int | None = None):
    """The :class:`~dataset_builder.synth.build.SynthConfig` of ``tiny_corpus``, writing to ``out``."""
    from dataset_builder.synth.build import SynthConfig

    return SynthConfig(
        out=out,
        langs=tuple(TINY_WORDS),
        words={lang: list(words) for lang, words in TINY_WORDS.items()},
        clips_per_word=TINY_CLIPS_PER_WORD,
        include_number_words=False,
        seed=TINY_SEED,
        jobs=jobs or min(2, os.cpu_count() or 1),
        progress=False,
    )


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """Path of a tiny synthesized MSWC corpus (es + en, 9 words x 10 clips each); built once per session."""
    from dataset_builder.synth.build import synthesize_corpus

    skip_without("espeak-ng")
    root = tmp_path_factory.mktemp("tiny_corpus")
    summary = synthesize_corpus(tiny_corpus_config(root))
    assert summary.clips == sum(len(w) for w in TINY_WORDS.values()) * TINY_CLIPS_PER_WORD, summary.line(root)
    return root
