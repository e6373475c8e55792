"""Synthesizing an MSWC-layout corpus: plan the clips, render them in parallel, write the index files.

The plan is a pure function of the configuration (languages, vocabulary, seed, ...):
which speakers exist, which speakers say which word, and every clip's file name.
Rendering a clip depends only on its word, its speaker and the seed, so clips can be
rendered in any order, on any number of processes, and an interrupted run resumes
by skipping the clips already on disk. Index files (splits CSV, metadata, speaker
and vocabulary sidecars) are written at the end, atomically.

Files written under ``ROOT``::

    {lang}/clips/{word}/common_voice_{lang}_{n}.opus   48 kHz mono Ogg/Opus, 1 s
    {lang}_splits.csv        SET,LINK,WORD,VALID,SPEAKER,GENDER (speaker-disjoint splits)
    metadata.json.gz         {lang: {"wordcounts", "filenames"}} (merged with other languages)
    {lang}_speakers.csv      speaker,lang,gender,split,engine,voice,variant,family,... (voice and channel)
    {lang}_vocab.csv         word,number_word,target,clips
    synthesis.json           the parameters each language was made with
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import astuple, dataclass, field
from pathlib import Path

import numpy as np

from corpus.audio import write_opus
from corpus.layout import ClipRecord, read_metadata, write_metadata, write_splits
from corpus.speakers import speakers_csv_name, write_speakers
from corpus.words import is_keyword_like, normalize_word, number_words
from dataset_builder.synth import engines
from dataset_builder.synth.augment import SR, render_clip, to_48k, trim_silence
from dataset_builder.synth.speakers import SPEAKER_COLUMNS, Speaker, make_speakers, rng_for, stable_int
from dataset_builder.synth.vocab import frequent_words
from protos.atomic import atomic_write_text
from protos.errors import InputError

TASK_CLIPS = 32
"""Clips per worker task: small enough for a smooth progress bar, big enough to amortise festival's start-up."""

MIN_CLIPS_PER_WORD = 3
"""One TRAIN, one DEV and one TEST clip at least."""


class SynthError(InputError):
    """Bad synthesis input; the message says what to install or choose."""


@dataclass
class SynthConfig:
    """What to synthesize.

    Attributes:
        out: corpus root.
        langs: language codes.
        words_per_lang: frequent words per language (when ``words`` does not give them).
        clips_per_word: clips (= distinct speakers) per word.
        seed: everything random derives from it.
        jobs: worker processes.
        augment: channel augmentation (room, noise, band-limit, shift, gain jitter).
        speakers_per_lang: speakers per language; None picks ``max(40, 4 * clips)``.
        engines: TTS engines to use.
        words: explicit vocabularies ``{lang: [word, ...]}`` replacing the frequent words.
        target_words: ``{lang: [word, ...]}`` that get ``target_clips`` clips each (added if absent).
        target_clips: clips per target word; None means ``clips_per_word``.
        include_number_words: add the language's number words to the vocabulary.
        opus_bitrate: one Opus bitrate (bit/s) for all clips; None draws one per
            speaker with augmentation, 32 kbit/s without.
        progress: show a progress bar.
    """

    out: Path
    langs: tuple[str, ...]
    words_per_lang: int = 50
    clips_per_word: int = 20
    seed: int = 0
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    augment: bool = True
    speakers_per_lang: int | None = None
    engines: tuple[str, ...] = engines.ENGINES
    words: dict[str, list[str]] = field(default_factory=dict)
    target_words: dict[str, list[str]] = field(default_factory=dict)
    target_clips: int | None = None
    include_number_words: bool = True
    opus_bitrate: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class RenderJob:
    """One clip to render: ``ROOT/{lang}/clips/{word}/{clip}`` said by ``speaker``."""

    lang: str
    word: str
    clip: str
    speaker: Speaker

    @property
    def link(self) -> str:
        return f"{self.word}/{self.clip}"


@dataclass
class LanguagePlan:
    lang: str
    words: list[str]
    numbers: set[str]
    targets: set[str]
    speakers: list[Speaker]
    jobs: list[RenderJob]


@dataclass
class SynthSummary:
    """What a run did. ``failures`` maps a reason to its count."""

    languages: int = 0
    words: int = 0
    speakers: int = 0
    clips: int = 0
    rendered: int = 0
    skipped: int = 0
    failures: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def line(self, out: Path) -> str:
        failed = sum(self.failures.values())
        rate = self.rendered / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"{self.languages} languages, {self.words} words, {self.speakers} speakers, {self.clips} clips "
            f"({self.rendered} rendered, {self.skipped} already present, {failed} failed) "
            f"in {self.seconds:.1f} s ({rate:.1f} clips/s) -> {out}"
        )
        if failed:
            text += "; failures: " + ", ".join(f"{r}: {n}" for r, n in self.failures.most_common())
        return text


def check_language(lang: str, config: SynthConfig) -> list[engines.Voice]:
    """Voices for ``lang``.

    Raises:
        EngineError: espeak-ng is not installed (the message says how to install it).
        SynthError: an unknown language, or one no installed voice or word list covers.
    """
    import wordfreq

    if not engines.have(engines.ESPEAK):
        raise engines.EngineError("espeak-ng is not installed: install it (Debian/Ubuntu: apt-get install espeak-ng)")
    known_wordfreq = set(wordfreq.available_languages())
    voices = engines.voices_for(lang, config.engines)
    if not voices:
        spoken = sorted({c.split("-")[0] for c in engines.espeak_languages()})
        if lang not in known_wordfreq and lang not in spoken:
            choices = ", ".join(sorted(known_wordfreq & set(spoken)))
            raise SynthError(f"unknown language code {lang!r}; choose one of: {choices}")
        raise SynthError(
            f"no installed TTS engine among {', '.join(config.engines)} speaks {lang!r}; "
            f"choose another language or install a voice for it (espeak-ng --voices lists them)"
        )
    if lang not in config.words and lang not in known_wordfreq:
        raise SynthError(
            f"wordfreq has no word list for {lang!r}; give the words yourself with --words {lang}:word1,word2,..."
        )
    return voices


def _clean_words(lang: str, words: list[str], what: str) -> list[str]:
    out: list[str] = []
    for w in words:
        w = normalize_word(w.strip())
        if not is_keyword_like(w):
            raise SynthError(
                f"{what} for {lang!r}: {w!r} is not a keyword (need a lower-case alphabetic word of 3+ letters)"
            )
        if w not in out:
            out.append(w)
    return out


def _clip_names(lang: str, word: str, speakers: list[Speaker]) -> list[str]:
    names: list[str] = []
    used: set[int] = set()
    for s in speakers:
        # 8-digit ids like Common Voice's, stable per (word, speaker).
        number = 10_000_000 + stable_int(lang, word, s.speaker) % 90_000_000
        while number in used:
            number = 10_000_000 + (number - 10_000_000 + 1) % 90_000_000
        used.add(number)
        names.append(f"common_voice_{lang}_{number}.opus")
    return names


def _clips_by_split(k: int) -> dict[str, int]:
    """A word's ``k`` clips by split: 10% DEV and 10% TEST (at least one each), the rest TRAIN."""
    k_dev = max(1, round(0.1 * k))
    return {"TRAIN": k - 2 * k_dev, "DEV": k_dev, "TEST": k_dev}


def plan_language(lang: str, voices: list[engines.Voice], config: SynthConfig) -> LanguagePlan:
    """Vocabulary, speakers and clip jobs of one language (no audio is made here)."""
    if lang in config.words:
        words = _clean_words(lang, config.words[lang], "--words")
    else:
        words = frequent_words(lang, config.words_per_lang)
    targets = _clean_words(lang, config.target_words.get(lang, []), "--target-words")
    # Flagged whether or not they are added: a frequent word can be a number word too.
    numbers = number_words(lang)
    vocab = list(words)
    for w in targets + (sorted(numbers) if config.include_number_words else []):
        if w not in vocab:
            vocab.append(w)
    target_clips = config.target_clips or config.clips_per_word
    max_clips = max(config.clips_per_word, target_clips if targets else 0)
    n_speakers = config.speakers_per_lang or max(40, 4 * max_clips)
    speakers = make_speakers(lang, voices, n_speakers, config.seed, config.augment, config.opus_bitrate)
    by_split = {split: [s for s in speakers if s.split == split] for split in ("TRAIN", "DEV", "TEST")}
    short = {split: n for split, n in _clips_by_split(max_clips).items() if n > len(by_split[split])}
    if short:
        raise SynthError(
            f"{n_speakers} speakers per language cannot give {max_clips} different speakers per word "
            f"({', '.join(f'{n} {split}' for split, n in short.items())}); raise --speakers-per-lang"
        )

    jobs: list[RenderJob] = []
    target_set = set(targets)
    for word in vocab:
        wanted = _clips_by_split(target_clips if word in target_set else config.clips_per_word)
        chosen: list[Speaker] = []
        for split, pool in by_split.items():
            able = [s for s in pool if s.can_say(word)]
            # A prefix of a fixed order: raising --clips-per-word later keeps the
            # clips already made (as long as no split's share shrinks).
            order = rng_for(config.seed, lang, word, "speakers", split).permutation(len(able))
            chosen += [able[i] for i in order[: wanted[split]]]
        for speaker, name in zip(chosen, _clip_names(lang, word, chosen)):
            jobs.append(RenderJob(lang, word, name, speaker))
    return LanguagePlan(lang, vocab, numbers & set(vocab), target_set, speakers, jobs)


def _synthesize(speaker: Speaker, words: list[str]) -> dict[str, tuple[np.ndarray, int] | str]:
    """Raw TTS audio per word, or a failure reason string."""
    voice = speaker.voice_spec
    out: dict[str, tuple[np.ndarray, int] | str] = {}
    if speaker.engine == engines.FESTIVAL:
        try:
            got = engines.synth_festival(voice, words, speaker.duration_stretch)
        except subprocess.TimeoutExpired:
            got = {}
        for w in words:
            out[w] = got.get(w, "festival produced no audio")
        return out
    for w in words:
        try:
            if speaker.engine == engines.ESPEAK:
                out[w] = engines.synth_espeak(voice, w, speaker.rate, speaker.pitch)
            else:
                out[w] = engines.synth_flite(voice, w, speaker.duration_stretch)
        except (engines.EngineError, subprocess.TimeoutExpired):
            out[w] = f"{speaker.engine} failed"
    return out


def render_task(task: tuple[Speaker, list[tuple[str, str]], int, bool]) -> list[tuple[str, str | None]]:
    """Render and write the clips of one speaker.

    Args:
        task: ``(speaker, [(word, path), ...], seed, augment)``.

    Returns:
        ``[(path, None or failure reason), ...]``.
    """
    speaker, items, seed, augment = task
    raw = _synthesize(speaker, [w for w, _ in items])
    results = []
    for word, path in items:
        audio = raw[word]
        if isinstance(audio, str):
            results.append((path, audio))
            continue
        y, sr = audio
        y = trim_silence(y, sr)
        if y.size == 0 or float(np.max(np.abs(y))) < 1e-4:
            results.append((path, f"{speaker.engine} produced silence"))
            continue
        word_48k = to_48k(y, sr, speaker.formant_shift)
        clip = render_clip(word_48k, speaker, rng_for(seed, speaker.lang, word, speaker.speaker, "clip"), augment)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_opus(path, clip, SR, bitrate=speaker.opus_bitrate)
        results.append((path, None))
    return results


def _tasks(jobs: list[RenderJob], root: Path, config: SynthConfig) -> list[tuple]:
    by_speaker: dict[str, list[RenderJob]] = {}
    for job in jobs:
        by_speaker.setdefault(job.speaker.speaker, []).append(job)
    tasks = []
    for speaker_jobs in by_speaker.values():
        for i in range(0, len(speaker_jobs), TASK_CLIPS):
            chunk = speaker_jobs[i : i + TASK_CLIPS]
            items = [(j.word, str(root / j.lang / "clips" / j.word / j.clip)) for j in chunk]
            tasks.append((chunk[0].speaker, items, config.seed, config.augment))
    # Festival tasks are the slowest; start them first so they do not finish last alone.
    tasks.sort(key=lambda t: t[0].engine != engines.FESTIVAL)
    return tasks


def _remove_stale_temporaries(root: Path, plan: LanguagePlan) -> None:
    # An interrupted run (killed, not excepted) can leave atomic_write's temporaries.
    for word in plan.words:
        d = root / plan.lang / "clips" / word
        if d.is_dir():
            for tmp in d.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def _write_index(root: Path, plan: LanguagePlan, metadata: dict) -> tuple[int, int]:
    """Splits CSV, sidecars and this language's metadata entry, for the clips present on disk."""
    present = [j for j in plan.jobs if (root / j.lang / "clips" / j.link).is_file()]
    records = [ClipRecord(j.link, j.word, j.speaker.split, True, j.speaker.speaker, j.speaker.gender) for j in present]
    write_splits(root / f"{plan.lang}_splits.csv", records)
    counts = Counter(j.word for j in present)
    filenames: dict[str, list[str]] = {}
    for j in present:
        filenames.setdefault(j.word, []).append(j.clip)
    metadata[plan.lang] = {
        "wordcounts": {w: counts[w] for w in plan.words if counts[w]},
        "filenames": {w: filenames[w] for w in plan.words if counts[w]},
    }
    used = {j.speaker.speaker for j in present}
    write_speakers(root / speakers_csv_name(plan.lang), SPEAKER_COLUMNS,
                   [astuple(s) for s in plan.speakers if s.speaker in used])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["word", "number_word", "target", "clips"])
    for word in plan.words:
        w.writerow([word, word in plan.numbers, word in plan.targets, counts[word]])
    atomic_write_text(root / f"{plan.lang}_vocab.csv", buf.getvalue())
    return len(present), len(used)


def _engine_versions(used: set[str]) -> dict[str, str]:
    """Version line of each engine in ``used``, for the record in synthesis.json."""
    commands = {engines.ESPEAK: [engines.ESPEAK, "--version"], engines.FESTIVAL: [engines.FESTIVAL, "--version"],
                engines.FLITE: [engines.FLITE, "--version"]}
    versions = {}
    for name in sorted(used):
        p = subprocess.run(commands[name], capture_output=True, text=True, check=False)
        lines = (p.stdout + p.stderr).strip().splitlines()
        # flite prints a copyright line before the version.
        versions[name] = next((l.strip() for l in lines if "version" in l.lower() or "release" in l.lower()), lines[0] if lines else "")
    return versions


def synthesize_corpus(config: SynthConfig) -> SynthSummary:
    """Synthesize (or complete) the corpus described by ``config`` under ``config.out``.

    Raises:
        SynthError: bad languages, words or counts.
        EngineError: espeak-ng is not installed.
    """
    start = time.monotonic()
    if config.clips_per_word < MIN_CLIPS_PER_WORD:
        raise SynthError(f"--clips-per-word must be at least {MIN_CLIPS_PER_WORD} (one TRAIN, DEV and TEST clip)")
    if config.target_clips is not None and config.target_clips < MIN_CLIPS_PER_WORD:
        raise SynthError(f"--target-clips must be at least {MIN_CLIPS_PER_WORD}")
    if config.jobs < 1:
        raise SynthError(f"--jobs must be at least 1, got {config.jobs}")
    if config.opus_bitrate is not None and not 6000 <= config.opus_bitrate <= 510000:
        raise SynthError(f"--opus-bitrate must be 6000-510000 bit/s, got {config.opus_bitrate}")
    unknown_engines = [e for e in config.engines if e not in engines.ENGINES]
    if unknown_engines:
        raise SynthError(f"unknown engine(s) {', '.join(unknown_engines)}; choose from {', '.join(engines.ENGINES)}")
    if not config.langs:
        raise SynthError("no languages given; pass --langs, e.g. --langs es,en")
    for lang in set(config.words) | set(config.target_words):
        if lang not in config.langs:
            raise SynthError(f"words given for {lang!r}, which is not in --langs {','.join(config.langs)}")
    root = Path(config.out)
    if root.exists() and not root.is_dir():
        raise SynthError(f"--out {root} exists and is not a directory")

    voices = {lang: check_language(lang, config) for lang in config.langs}
    plans = [plan_language(lang, voices[lang], config) for lang in config.langs]
    root.mkdir(parents=True, exist_ok=True)

    summary = SynthSummary(languages=len(plans))
    todo: list[RenderJob] = []
    for plan in plans:
        _remove_stale_temporaries(root, plan)
        for job in plan.jobs:
            if (root / job.lang / "clips" / job.link).is_file():
                summary.skipped += 1
            else:
                todo.append(job)
    tasks = _tasks(todo, root, config)
    _run_tasks(tasks, len(todo), config, summary)

    metadata = read_metadata(root) or {}
    for plan in plans:
        clips, speakers = _write_index(root, plan, metadata)
        summary.clips += clips
        summary.speakers += speakers
        summary.words += len(metadata[plan.lang]["wordcounts"])
    write_metadata(root / "metadata.json.gz", metadata)
    _write_manifest(root, plans, config)
    summary.seconds = time.monotonic() - start
    return summary


def _worker_init() -> None:
    # The parent turns SIGTERM into KeyboardInterrupt; workers must just die on it
    # (Pool.terminate sends it) instead of printing tracebacks.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_tasks(tasks: list[tuple], n_clips: int, config: SynthConfig, summary: SynthSummary) -> None:
    from tqdm import tqdm

    with tqdm(total=n_clips, unit="clip", desc="synthesizing", disable=not config.progress, file=sys.stderr) as bar:

        def account(results: list[tuple[str, str | None]]) -> None:
            for _, reason in results:
                if reason is None:
                    summary.rendered += 1
                else:
                    summary.failures[reason] += 1
            bar.update(len(results))

        if config.jobs == 1 or len(tasks) <= 1:
            for task in tasks:
                account(render_task(task))
            return
        # fork: workers inherit the imported modules; nothing here holds threads or locks.
        with multiprocessing.get_context("fork").Pool(config.jobs, initializer=_worker_init) as pool:
            for results in pool.imap_unordered(render_task, tasks):
                account(results)


def _write_manifest(root: Path, plans: list[LanguagePlan], config: SynthConfig) -> None:
    path = root / "synthesis.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        manifest = {}
    langs = manifest.setdefault("languages", {})
    for plan in plans:
        langs[plan.lang] = {
            "seed": config.seed,
            "words": len(plan.words),
            "number_words": len(plan.numbers),
            "target_words": sorted(plan.targets),
            "clips_per_word": config.clips_per_word,
            "target_clips": config.target_clips or config.clips_per_word,
            "speakers": len(plan.speakers),
            "augment": "default" if config.augment else "none",
            "engine_versions": _engine_versions({s.engine for s in plan.speakers}),
            "opus_bitrate": config.opus_bitrate,
        }
    atomic_write_text(path, json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
