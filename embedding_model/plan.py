"""Which clips train the embedding, which validate it, and which stay unseen.

A :class:`TrainingPlan` is a pure function of the corpus and a few options, written to
``plan.json`` beside every run and shipped with the model (``holdout.json``), so the
few-shot benchmark measures on exactly the words, languages and voices the model
never heard:

* classes: the N most frequent words of each training language (enough clips, not a
  number word, not in the held-out sample);
* held-out words: every number word (cardinals and ordinals) plus a seeded random
  sample of the frequent words;
* held-out languages: whole languages, never trained on;
* held-out voices: whole TTS engines (e.g. flite) or voice families, and a seeded
  sample of voices (engine + voice + variant);
* training clips: TRAIN split of class words from kept voices; validation: DEV split
  (the corpus splits are speaker-disjoint, so validation is across speakers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from pathlib import Path
from typing import Iterable, Sequence

from corpus.layout import corpus_langs, read_splits, read_word_counts
from corpus.speakers import read_voices
from corpus.words import number_words
from protos.atomic import atomic_write_text
from protos.errors import InputError


class PlanError(InputError):
    """The corpus cannot support the requested plan (message says what to change)."""


@dataclasses.dataclass(frozen=True)
class ClipRef:
    """One clip the plan uses: where it is and what it is."""

    lang: str
    link: str
    word: str
    split: str
    speaker: str
    voice: str  # "engine:voice:variant", or "unknown:{speaker}" without a speakers sidecar


@dataclasses.dataclass
class TrainingPlan:
    corpus: str
    seed: int
    langs: list[str]
    holdout_langs: list[str]
    classes: list[str]  # "lang/word", index = class id
    holdout_words: dict[str, list[str]]
    number_words: dict[str, list[str]]
    holdout_engines: list[str]  # engines ("flite") or voice families ("festival:kal_diphone")
    holdout_voices: list[str]  # "engine:voice:variant"
    options: dict

    def class_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "TrainingPlan":
        return cls(**data)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_json(), indent=1, ensure_ascii=False, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TrainingPlan":
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:12]

    def is_heldout_voice(self, voice: str) -> bool:
        """True for a held-out voice, or any voice of a held-out engine or family (``engine:voice``)."""
        if voice in self.holdout_voices:
            return True
        parts = voice.split(":")
        return parts[0] in self.holdout_engines or ":".join(parts[:2]) in self.holdout_engines


def common_holdout(plans: Sequence[TrainingPlan]) -> TrainingPlan:
    """The first plan with only what *every* plan holds out: languages, engines, voices
    and words none of the models trained on.

    Models trained on different plans (another seed, a regenerated corpus) are compared
    fairly only on clips none of them saw; the first plan's classes and corpus are kept.
    """
    first, rest = plans[0], plans[1:]
    # The first plan's order, then the others' voices: identical plans give the first back.
    voices = list(dict.fromkeys(v for p in plans for v in p.holdout_voices))
    words = {lang: [w for w in ws if all(w in set(p.holdout_words.get(lang, [])) for p in rest)]
             for lang, ws in first.holdout_words.items()}
    numbers = {lang: [w for w in ws if all(w in set(p.number_words.get(lang, [])) for p in rest)]
               for lang, ws in first.number_words.items()}
    return dataclasses.replace(
        first,
        holdout_langs=[x for x in first.holdout_langs if all(x in p.holdout_langs for p in rest)],
        holdout_engines=[e for e in first.holdout_engines if all(e in p.holdout_engines for p in rest)],
        holdout_voices=[v for v in voices if all(p.is_heldout_voice(v) for p in plans)],
        holdout_words=words, number_words=numbers)


def make_plan(
    root: str | Path,
    langs: Iterable[str] | None = None,
    words_per_lang: int = 300,
    holdout_langs: Iterable[str] | None = None,
    n_holdout_langs: int = 0,
    holdout_word_frac: float = 0.1,
    holdout_engines: Iterable[str] = ("flite",),
    holdout_voice_frac: float = 0.1,
    min_clips: int = 8,
    seed: int = 0,
) -> TrainingPlan:
    """Decide classes and held-out words, languages and voices for a corpus.

    Args:
        root: MSWC-layout corpus root.
        langs: languages to use (default: every language with a splits CSV).
        words_per_lang: N, the most frequent words per language considered as classes.
        holdout_langs: languages never trained on (measured only).
        n_holdout_langs: if ``holdout_langs`` is None, hold out this many at random.
        holdout_word_frac: fraction of the N frequent words held out at random.
        holdout_engines: TTS engines (``flite``) or voice families (``engine:voice``)
            whose every voice is held out.
        holdout_voice_frac: fraction of the remaining voices held out at random.
        min_clips: a word needs this many valid clips to be a class.
        seed: random seed for every sample above.
    """
    root = Path(root)
    available = corpus_langs(root)
    langs = sorted(langs) if langs else available
    missing = [lang for lang in langs if lang not in available]
    if missing:
        raise PlanError(f"{root}: no {missing[0]}_splits.csv; languages available: {', '.join(available) or 'none'}")
    rng = random.Random(seed)
    if holdout_langs is None:
        holdout_langs = sorted(rng.sample(langs, min(n_holdout_langs, max(len(langs) - 1, 0))))
    holdout_langs = sorted(holdout_langs)
    unknown = [lang for lang in holdout_langs if lang not in langs]
    if unknown:
        raise PlanError(f"held-out language {unknown[0]!r} is not among the chosen languages {langs}")
    train_langs = [lang for lang in langs if lang not in holdout_langs]
    if not train_langs:
        raise PlanError("every language is held out: keep at least one to train on")

    all_voices: set[str] = set()
    for lang in langs:
        all_voices.update(read_voices(root, lang).values())
    holdout_engines = sorted(set(holdout_engines))
    candidates = sorted(
        v for v in all_voices
        if v.split(":")[0] not in holdout_engines and ":".join(v.split(":")[:2]) not in holdout_engines
    )
    holdout_voices = sorted(rng.sample(candidates, int(round(holdout_voice_frac * len(candidates)))))

    classes: list[str] = []
    holdout_words: dict[str, list[str]] = {}
    numbers: dict[str, list[str]] = {}
    for lang in langs:
        counts = read_word_counts(root, lang)
        valid = _valid_counts(read_splits(root, lang))
        nums = number_words(lang, with_common_forms=True)
        numbers[lang] = sorted(w for w in counts if w in nums)
        frequent = sorted(
            (w for w in counts if w not in nums and valid.get(w, 0) >= min_clips),
            key=lambda w: (-counts[w], w),
        )[:words_per_lang]
        held = sorted(rng.sample(frequent, int(round(holdout_word_frac * len(frequent)))))
        holdout_words[lang] = held
        if lang in train_langs:
            held_set = set(held)
            classes.extend(f"{lang}/{w}" for w in sorted(frequent) if w not in held_set)
    if len(classes) < 2:
        raise PlanError(
            f"{root}: only {len(classes)} class word(s) with >= {min_clips} clips; "
            "lower --min-clips or use a larger corpus"
        )
    return TrainingPlan(
        corpus=str(root.resolve()),
        seed=seed,
        langs=train_langs,
        holdout_langs=holdout_langs,
        classes=classes,
        holdout_words=holdout_words,
        number_words=numbers,
        holdout_engines=holdout_engines,
        holdout_voices=holdout_voices,
        options={
            "words_per_lang": words_per_lang,
            "holdout_word_frac": holdout_word_frac,
            "holdout_voice_frac": holdout_voice_frac,
            "min_clips": min_clips,
        },
    )


def _valid_counts(records) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        if r.valid:
            counts[r.word] = counts.get(r.word, 0) + 1
    return counts


def plan_clips(plan: TrainingPlan, lang: str) -> tuple[list[ClipRef], list[ClipRef]]:
    """(training clips, validation clips) of one training language, in corpus order."""
    root = Path(plan.corpus)
    voices = read_voices(root, lang)
    classes = {c.split("/", 1)[1] for c in plan.classes if c.split("/", 1)[0] == lang}
    train, val = [], []
    for r in read_splits(root, lang):
        if not r.valid or r.word not in classes:
            continue
        voice = voices.get(r.speaker, f"unknown:{r.speaker}")
        if plan.is_heldout_voice(voice):
            continue
        ref = ClipRef(lang, r.link, r.word, r.split, r.speaker, voice)
        if r.split == "TRAIN":
            train.append(ref)
        elif r.split == "DEV":
            val.append(ref)
    return train, val


def heldout_clips(plan: TrainingPlan, lang: str) -> dict[str, list[ClipRef]]:
    """Measurement-only clips of ``lang`` by kind.

    Returns:
        ``{"unseen_words": ..., "unseen_language": ..., "unseen_voices": ...,
        "seen": ...}``: clips of held-out words from kept voices; every clip of a
        held-out language from kept voices; clips of held-out voices (any word); clips
        of class words from kept voices in the TEST split.
    """
    root = Path(plan.corpus)
    voices = read_voices(root, lang)
    held_words = set(plan.holdout_words.get(lang, [])) | set(plan.number_words.get(lang, []))
    classes = {c.split("/", 1)[1] for c in plan.classes if c.split("/", 1)[0] == lang}
    out: dict[str, list[ClipRef]] = {"unseen_words": [], "unseen_language": [], "unseen_voices": [], "seen": []}
    for r in read_splits(root, lang):
        if not r.valid:
            continue
        voice = voices.get(r.speaker, f"unknown:{r.speaker}")
        ref = ClipRef(lang, r.link, r.word, r.split, r.speaker, voice)
        if plan.is_heldout_voice(voice):
            out["unseen_voices"].append(ref)
        elif lang in plan.holdout_langs:
            out["unseen_language"].append(ref)
        elif r.word in held_words:
            out["unseen_words"].append(ref)
        elif r.word in classes and r.split == "TEST":
            out["seen"].append(ref)
    return out
