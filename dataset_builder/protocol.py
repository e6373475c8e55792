"""DataPerf's experiment protocol: which clips go into samples.pb and eval.pb.

A pure function of the corpus splits and the parameters, run once on the launcher
before any audio is touched:

- target keywords: their TRAIN clips form the pool (samples.pb), their DEV and TEST
  clips the scoring set (eval.pb);
- nontarget words are drawn at random (seeded) among the words with enough clips,
  targets excluded. Half of them are "known": their clips are split half into the
  pool, half into eval.pb. The other half are "unknown": eval.pb only, so the scorer
  sees words the classifier never saw during training.

DataPerf's values are the defaults (100 known + 100 unknown words, 200 clips each,
words need more than 200 clips). A corpus too small for them is an error naming
the flag to lower, never a silent scale-down.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import hashlib
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from corpus.words import normalize_word
from dataset_builder.errors import BuildError

if TYPE_CHECKING:  # pragma: no cover
    from corpus.layout import ClipRecord

TARGET = 0  # == protos.TARGET; repeated so the launcher imports no protobuf code
NONTARGET = 1  # == protos.NONTARGET
TRAIN_SPLIT = "TRAIN"
EVAL_SPLITS = ("DEV", "TEST")

#: Maps ExperimentParams fields to the command-line flags that set them, so
#: error messages can say which flag to change.
FLAGS = {
    "known_words": "--known-words",
    "unknown_words": "--unknown-words",
    "clips_per_word": "--clips-per-word",
    "min_word_clips": "--min-word-clips",
    "min_target_train": "--min-target-train",
    "min_target_eval": "--min-target-eval",
    "max_target_train": "--max-target-train",
    "max_target_eval": "--max-target-eval",
    "seed": "--seed",
    "include_invalid": "--include-invalid",
}


@dataclasses.dataclass(frozen=True)
class ExperimentParams:
    """Every knob of the protocol; the defaults are DataPerf's.

    Attributes:
        keywords: target keywords as given by the user (normalised by
            :func:`design_experiment`).
        known_words: nontarget words whose clips go half to samples.pb, half to eval.pb.
        unknown_words: nontarget words whose clips go to eval.pb only.
        clips_per_word: clips drawn per nontarget word.
        min_word_clips: a word is eligible as nontarget only with MORE than this
            many usable clips (DataPerf: > 200).
        min_target_train: a keyword needs at least this many TRAIN clips.
        min_target_eval: a keyword needs at least this many DEV+TEST clips.
        max_target_train: cap on TRAIN clips per keyword (None: all of them).
        max_target_eval: cap on DEV+TEST clips per keyword (None: all of them).
        seed: seeds every random draw.
        include_invalid: also use clips whose splits row says VALID=False.
    """

    keywords: tuple[str, ...]
    known_words: int = 100
    unknown_words: int = 100
    clips_per_word: int = 200
    min_word_clips: int = 200
    min_target_train: int = 20
    min_target_eval: int = 5
    max_target_train: int | None = None
    max_target_eval: int | None = None
    seed: int = 0
    include_invalid: bool = False

    def as_strings(self) -> dict[str, str]:
        """The parameters as a flat, sorted ``{name: str}`` map (file metadata)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "keywords":
                value = ",".join(sorted(value))
            out[field.name] = "" if value is None else str(value)
        return dict(sorted(out.items()))


@dataclasses.dataclass(frozen=True)
class ChosenClip:
    """One clip the experiment uses.

    Attributes:
        link: the sample id, MSWC's ``word/clip.opus`` path.
        word: the spoken word.
        split: the corpus split it came from (TRAIN / DEV / TEST).
        speaker: speaker id from the splits (may be empty).
        sample_type: :data:`TARGET` or :data:`NONTARGET`.
    """

    link: str
    word: str
    split: str
    speaker: str
    sample_type: int


@dataclasses.dataclass(frozen=True)
class Experiment:
    """The protocol's decision: the clips of samples.pb and eval.pb.

    Attributes:
        keywords: the target keywords, sorted (class ids 1..K follow this order).
        samples: clips of the pool, in the order they are written.
        eval: clips of the scoring set, in the order they are written.
        known_words: nontarget words present in both files, sorted.
        unknown_words: nontarget words present in eval.pb only, sorted.
        params: the parameters that produced it.
        duplicate_links: links listed more than once in the splits (first kept).
    """

    keywords: tuple[str, ...]
    samples: tuple[ChosenClip, ...]
    eval: tuple[ChosenClip, ...]
    known_words: tuple[str, ...]
    unknown_words: tuple[str, ...]
    params: ExperimentParams
    duplicate_links: int = 0

    def counts(self) -> dict[str, dict[str, int]]:
        """Clips per class in each file: ``{"samples": {word or "nontarget": n}, "eval": ...}``."""
        return {
            "samples": class_counts(self.samples),
            "eval": class_counts(self.eval),
        }


#: The class name of every nontarget clip, whatever word it speaks.
NONTARGET_CLASS = "nontarget"


def class_of(clip: ChosenClip) -> str:
    """The class a clip counts under: its word for a target, ``"nontarget"`` otherwise."""
    return clip.word if clip.sample_type == TARGET else NONTARGET_CLASS


def class_counts(clips: Iterable[ChosenClip]) -> dict[str, int]:
    """Clips per class (:func:`class_of`), sorted by class name."""
    return dict(sorted(collections.Counter(class_of(c) for c in clips).items()))


def split_counts(clips: Iterable[ChosenClip]) -> dict[str, int]:
    """Clips per corpus split (TRAIN / DEV / TEST), sorted by split name."""
    return dict(sorted(collections.Counter(c.split for c in clips).items()))


def _word_rng(seed: int, purpose: str, word: str) -> np.random.Generator:
    # A generator per (seed, word) keeps each word's draw independent of which
    # other words exist, so adding a word to a corpus does not reshuffle the rest.
    digest = hashlib.sha256(f"{seed}\0{purpose}\0{word}".encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _draw(rng: np.random.Generator, clips: Sequence[ChosenClip], n: int | None) -> list[ChosenClip]:
    """``n`` clips drawn without replacement (all of them if ``n`` is None), in link order."""
    if n is None or n >= len(clips):
        return sorted(clips, key=lambda c: c.link)
    ordered = sorted(clips, key=lambda c: c.link)
    picked = rng.choice(len(ordered), size=n, replace=False)
    return [ordered[i] for i in sorted(picked)]


def _resolve_keyword(keyword: str, words: set[str]) -> str | None:
    # NFC (MSWC words are NFC, users may type decomposed accents), case kept first.
    word = normalize_word(keyword, keep_case=True)
    if word in words:
        return word
    # MSWC words are lower case; accept "Año" for "año" but nothing looser.
    if word.lower() in words:
        return word.lower()
    return None


def near_matches(word: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` candidates that look like ``word`` (difflib ratio >= 0.6), best first."""
    return difflib.get_close_matches(normalize_word(word), list(candidates), n=n, cutoff=0.6)


def _check_params(p: ExperimentParams) -> None:
    if not p.keywords:
        raise BuildError("no target keyword given: pass at least one --keyword")
    for name in ("known_words", "unknown_words", "min_word_clips", "min_target_eval"):
        if getattr(p, name) < 0:
            raise BuildError(f"{FLAGS[name]} must be >= 0, got {getattr(p, name)}")
    for name in ("clips_per_word", "min_target_train"):
        if getattr(p, name) < 1:
            raise BuildError(f"{FLAGS[name]} must be >= 1, got {getattr(p, name)}")
    for name in ("max_target_train", "max_target_eval"):
        value = getattr(p, name)
        if value is not None and value < 1:
            raise BuildError(f"{FLAGS[name]} must be >= 1, got {value}")
    if p.known_words and p.clips_per_word < 2:
        raise BuildError(
            "--clips-per-word must be >= 2 when there are known nontarget words "
            "(their clips are split between samples.pb and eval.pb)"
        )


def design_experiment(records: Sequence["ClipRecord"], params: ExperimentParams) -> Experiment:
    """Choose the clips of samples.pb and eval.pb (DataPerf's ``create_experiment``).

    Pure and deterministic: the same records (in any order) and params give the
    same experiment.

    Args:
        records: every clip of one language, as read from the splits
            (objects with ``link``, ``word``, ``split``, ``valid``, ``speaker``).
        params: the protocol's parameters.

    Returns:
        The experiment. Nothing is read or decoded here.

    Raises:
        BuildError: a keyword is missing or has too few clips (the message lists
            near matches), or the corpus cannot supply the requested nontarget
            words (the message names the flag to lower).
    """
    _check_params(params)

    by_word: dict[str, list[ChosenClip]] = collections.defaultdict(list)
    seen: set[str] = set()
    duplicates = 0
    for r in records:
        if not (r.valid or params.include_invalid):
            continue
        if r.link in seen:
            duplicates += 1
            continue
        seen.add(r.link)
        split = r.split.upper()
        by_word[r.word].append(ChosenClip(r.link, r.word, split, r.speaker, NONTARGET))
    if not by_word:
        hint = "" if params.include_invalid else " (all rows are VALID=False? see --include-invalid)"
        raise BuildError(f"the corpus splits list no usable clips{hint}")

    keywords = _resolve_keywords(params, by_word)

    samples: list[ChosenClip] = []
    evals: list[ChosenClip] = []
    for kw in keywords:
        clips = [dataclasses.replace(c, sample_type=TARGET) for c in by_word[kw]]
        train = [c for c in clips if c.split == TRAIN_SPLIT]
        held_out = [c for c in clips if c.split in EVAL_SPLITS]
        samples += _draw(_word_rng(params.seed, "target-train", kw), train, params.max_target_train)
        evals += _draw(_word_rng(params.seed, "target-eval", kw), held_out, params.max_target_eval)

    known, unknown = _choose_nontarget_words(by_word, set(keywords), params)
    for word in known:
        rng = _word_rng(params.seed, "nontarget", word)
        drawn = _draw(rng, by_word[word], params.clips_per_word)
        order = rng.permutation(len(drawn))
        half = len(drawn) // 2
        samples += sorted((drawn[i] for i in order[:half]), key=lambda c: c.link)
        evals += sorted((drawn[i] for i in order[half:]), key=lambda c: c.link)
    for word in unknown:
        evals += _draw(_word_rng(params.seed, "nontarget", word), by_word[word], params.clips_per_word)

    return Experiment(
        keywords=tuple(keywords),
        samples=tuple(samples),
        eval=tuple(evals),
        known_words=tuple(known),
        unknown_words=tuple(unknown),
        params=dataclasses.replace(params, keywords=tuple(keywords)),
        duplicate_links=duplicates,
    )


def _resolve_keywords(params: ExperimentParams, by_word: dict[str, list[ChosenClip]]) -> list[str]:
    words = set(by_word)
    resolved = []
    for keyword in params.keywords:
        word = _resolve_keyword(keyword, words)
        if word is None:
            close = near_matches(keyword, words)
            hint = f"; near matches: {', '.join(close)}" if close else "; no similar word either"
            raise BuildError(f"keyword {keyword!r} is not in the corpus{hint}")
        n_train = sum(c.split == TRAIN_SPLIT for c in by_word[word])
        n_eval = sum(c.split in EVAL_SPLITS for c in by_word[word])
        if n_train < params.min_target_train or n_eval < params.min_target_eval:
            def enough(w: str) -> bool:
                return (
                    sum(c.split == TRAIN_SPLIT for c in by_word[w]) >= params.min_target_train
                    and sum(c.split in EVAL_SPLITS for c in by_word[w]) >= params.min_target_eval
                )
            close = [w for w in near_matches(word, words, n=20) if w != word and enough(w)][:5]
            hint = f"; similar words with enough clips: {', '.join(close)}" if close else ""
            raise BuildError(
                f"keyword {word!r} has {n_train} TRAIN and {n_eval} DEV+TEST clips, "
                f"needs >= {params.min_target_train} TRAIN (--min-target-train) and "
                f">= {params.min_target_eval} DEV+TEST (--min-target-eval){hint}"
            )
        if word in resolved:
            raise BuildError(f"keyword {word!r} is given twice")
        resolved.append(word)
    return sorted(resolved)


def _choose_nontarget_words(
    by_word: dict[str, list[ChosenClip]], targets: set[str], params: ExperimentParams
) -> tuple[list[str], list[str]]:
    wanted = params.known_words + params.unknown_words
    if wanted == 0:
        return [], []
    # A word must have more than min_word_clips clips (DataPerf's rule) and at
    # least the clips we draw from it.
    need = max(params.min_word_clips + 1, params.clips_per_word)
    eligible = sorted(w for w, clips in by_word.items() if w not in targets and len(clips) >= need)
    if len(eligible) < wanted:
        raise BuildError(
            f"the corpus has {len(eligible)} non-target words with >= {need} clips, "
            f"the protocol needs {wanted} ({params.known_words} known + "
            f"{params.unknown_words} unknown): lower --known-words/--unknown-words, "
            f"or --min-word-clips and --clips-per-word"
        )
    rng = np.random.default_rng(params.seed)
    picked = [eligible[i] for i in rng.choice(len(eligible), size=wanted, replace=False)]
    return sorted(picked[: params.known_words]), sorted(picked[params.known_words :])
