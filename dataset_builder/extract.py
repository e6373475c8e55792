"""extract-clips: long recordings + word alignments -> an MSWC-layout corpus.

MSWC was made from Common Voice this way: forced-align each sentence, then cut a
1-second clip centred on every word. This tool does the same for your own
recordings, so ``build-dataset --mswc-root`` can use them::

    extract-clips --lang es --recordings recs/ --alignments words.csv --out mycorpus
    extract-clips --lang es --recordings recs/ --alignments mfa_output/ --out mycorpus

Writes ``OUT/{lang}/clips/{word}/{clip}.opus``, ``OUT/{lang}_splits.csv`` and
``OUT/metadata.json.gz``. Splits are assigned per speaker by default (a speaker's
clips all land in one split, as in MSWC), seeded, to approach ``--split-ratios``.

Exit status: 0 success; 1 bad input (one line on stderr); 2 usage error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import multiprocessing
import os
import sys
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np

from corpus.words import normalize_word
from dataset_builder.alignments import AlignedWord, read_alignments
from dataset_builder.clitools import DEFAULT_WORKERS, HelpFormatter, ignore_sigint, sigint_held
from dataset_builder.errors import BuildError
from protos.errors import EXIT_STATUS_HELP, run_cli

#: Skipped rows and recordings named on stderr (the rest are counted).
SHOW_SKIPPED = 20

SPLITS = ("TRAIN", "DEV", "TEST")
CLIP_SECONDS = 1.0
#: Opus's native rate; clips are stored like MSWC's, as 48 kHz Opus.
OPUS_RATE = 48000


def text_name(name: str) -> str:
    """A file name as text for clip names and the splits CSV (which are UTF-8).

    Python keeps a name that is not valid UTF-8 with its bytes smuggled in as
    surrogates; such a name is read as Latin-1 instead (the usual older encoding,
    and every byte string is valid Latin-1), then NFC-normalised.
    """
    raw = os.fsencode(name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return unicodedata.normalize("NFC", text)


def clip_word(word: str, keep_case: bool = False) -> str:
    """The word a clip is filed under: the corpus form (``corpus.words.normalize_word``:
    NFC, lower case unless ``keep_case``) without surrounding punctuation.

    Returns "" for a word that cannot name a directory (empty, ``.``/``..``, slashes).
    """
    word = unicodedata.normalize("NFC", word.strip())
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(word[end - 1])[0] in "PS":
        end -= 1
    word = normalize_word(word[start:end], keep_case)
    if word in ("", ".", "..") or "/" in word or "\\" in word or "\0" in word:
        return ""
    return word


def cut_clip(y: np.ndarray, sr: int, start: float, end: float, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """The ``seconds``-long window centred on ``[start, end]``, zero-padded past the ends.

    Args:
        y: np.ndarray [shape=(n,)] float32, the recording.
        sr: its sample rate.
        start, end: the word's interval in seconds.

    Returns:
        np.ndarray [shape=(round(sr * seconds),)] float32.
    """
    length = int(round(sr * seconds))
    first = int(round((start + end) / 2 * sr - length / 2))
    out = np.zeros(length, dtype=np.float32)
    lo, hi = max(first, 0), min(first + length, len(y))
    if hi > lo:
        out[lo - first : hi - first] = y[lo:hi]
    return out


def assign_splits(units: dict[str, int], ratios: Sequence[float], seed: int) -> dict[str, str]:
    """Give each unit (speaker or clip) a split so clip counts approach ``ratios``.

    Units are visited in a seeded random order; each goes to the split furthest
    below its share so far, except that no split with a share is left empty while
    units remain to fill it (a corpus with a handful of speakers still gets DEV
    and TEST data). Deterministic for the same units, ratios and seed.

    Args:
        units: unit name -> number of clips.
        ratios: TRAIN, DEV, TEST shares (any positive scale).
        seed: seeds the visiting order.

    Returns:
        unit name -> "TRAIN" | "DEV" | "TEST".
    """
    shares = np.asarray(ratios, dtype=np.float64)
    shares = shares / shares.sum()
    names = sorted(units)
    order = np.random.default_rng(seed).permutation(len(names))
    assigned = np.zeros(len(SPLITS))
    out = {}
    for position, i in enumerate(order):
        n = units[names[i]]
        empty = (shares > 0) & (assigned == 0)
        if len(order) - position <= empty.sum():
            k = int(np.argmax(np.where(empty, shares, -np.inf)))
        else:
            deficit = shares * (assigned.sum() + n) - assigned
            deficit[shares == 0] = -np.inf
            k = int(np.argmax(deficit))
        out[names[i]] = SPLITS[k]
        assigned[k] += n
    return out


@dataclasses.dataclass(frozen=True)
class ClipJob:
    """One clip to cut: where from, where to, and its splits row."""

    word: str
    start: float
    end: float
    clip_name: str
    split: str
    speaker: str
    gender: str
    where: str


def extract_recording(recording: str, jobs: Sequence[ClipJob], clips_dir: str) -> tuple[list, list]:
    """Cut and write the clips of one recording (the per-recording stage; runs in workers).

    Args:
        recording: path of the long recording.
        jobs: its aligned words.
        clips_dir: ``OUT/{lang}/clips``.

    Returns:
        ``(records, failures)``: a ``corpus.layout.ClipRecord`` per clip written, and
        ``(where, reason, detail)`` per clip or recording that could not be used.
    """
    from corpus.audio import SILENCE_PEAK, ClipError, decode_audio, write_opus
    from corpus.layout import ClipRecord

    if not os.path.isfile(recording):
        return [], [(recording, "missing", "recording not found")]
    try:
        # An open file, not the path: libsndfile cannot open a path whose name is
        # not valid in the filesystem's encoding (Python keeps such names as-is).
        with open(recording, "rb") as f:
            y, sr = decode_audio(f)
    except ClipError as e:
        return [], [(recording, e.reason, str(e))]
    except OSError as e:
        return [], [(recording, "unreadable", e.strerror or str(e))]
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        return [], [(recording, "silent",
                     f"the whole recording is silent (peak below {SILENCE_PEAK:g}); {len(jobs)} clip(s) not cut")]
    if sr != OPUS_RATE:
        import soxr

        y = soxr.resample(y, sr, OPUS_RATE, quality="HQ").astype(np.float32)
        sr = OPUS_RATE
    duration = len(y) / sr
    records, failures = [], []
    for job in jobs:
        if job.start >= duration or job.end <= 0:
            failures.append((job.where, "outside-recording",
                             f"{job.start:.2f}-{job.end:.2f} s, recording is {duration:.2f} s"))
            continue
        clip = cut_clip(y, sr, job.start, job.end)
        if float(np.max(np.abs(clip))) < SILENCE_PEAK:
            failures.append((job.where, "silent", f"the word's second is silent (peak below {SILENCE_PEAK:g})"))
            continue
        word_dir = Path(clips_dir) / job.word
        word_dir.mkdir(parents=True, exist_ok=True)
        write_opus(word_dir / job.clip_name, clip, sr=sr)
        records.append(ClipRecord(link=f"{job.word}/{job.clip_name}", word=job.word, split=job.split,
                                  valid=True, speaker=job.speaker, gender=job.gender))
    return records, failures


def _extract_task(task):
    return extract_recording(*task)


def plan_clips(
    words: Sequence[AlignedWord],
    *,
    recordings_root: Path,
    speaker_mode: str = "auto",
    split_by: str = "speaker",
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    keep_case: bool = False,
) -> tuple[dict[str, list[ClipJob]], list[tuple[str, str, str]]]:
    """Decide every clip's word, name, speaker and split (the launcher's stage).

    Returns:
        ``(recording -> jobs, failures)``; failures are ``(where, reason, detail)``
        for alignment rows that cannot become clips.
    """
    failures = []
    rows = []
    for w in words:
        word = clip_word(w.word, keep_case)
        if not word:
            failures.append((w.where, "bad-word", f"{w.word!r} cannot be a clip directory name"))
            continue
        if not (w.end > w.start >= 0):
            failures.append((w.where, "bad-interval", f"start {w.start} end {w.end}"))
            continue
        if w.split and w.split not in SPLITS:
            raise BuildError(f"{w.where}: split must be TRAIN, DEV or TEST, got {w.split!r}")
        rec = Path(w.recording)
        if speaker_mode == "file":
            speaker = text_name(rec.stem)
        elif speaker_mode == "dir":
            speaker = text_name(rec.parent.name)
        else:
            speaker = w.speaker or text_name(rec.stem)
        rows.append((w, word, speaker))

    # Clip names are the recording's stem plus the word's start in ms; stems that
    # occur in two directories get a hash of the path so names stay unique.
    stems = collections.defaultdict(set)
    for w, _, _ in rows:
        stems[Path(w.recording).stem].add(w.recording)

    def base_name(recording: str) -> str:
        stem = Path(recording).stem
        if len(stems[stem]) == 1:
            return text_name(stem)
        try:
            rel = os.path.relpath(recording, recordings_root)
        except ValueError:
            rel = recording
        return f"{text_name(stem)}_{hashlib.sha1(os.fsencode(rel)).hexdigest()[:8]}"

    names: dict[str, int] = collections.Counter()
    planned = []
    for w, word, speaker in rows:
        name = f"{base_name(w.recording)}_{int(round(w.start * 1000)):08d}"
        link = f"{word}/{name}"
        names[link] += 1
        if names[link] > 1:  # the same word aligned twice at the same ms
            name = f"{name}_{names[link]}"
        planned.append((w, word, speaker, f"{name}.opus"))

    if split_by == "speaker":
        units = collections.Counter(speaker for w, _, speaker, _ in planned if not w.split)
        unit_of = lambda w, word, speaker, name: speaker  # noqa: E731
    else:
        units = collections.Counter(f"{word}/{name}" for w, word, _, name in planned if not w.split)
        unit_of = lambda w, word, speaker, name: f"{word}/{name}"  # noqa: E731
    split_of = assign_splits(dict(units), ratios, seed) if units else {}

    by_recording: dict[str, list[ClipJob]] = collections.defaultdict(list)
    for item in planned:
        w, word, speaker, name = item
        split = w.split or split_of[unit_of(*item)]
        by_recording[w.recording].append(ClipJob(word, w.start, w.end, name, split, speaker, w.gender, w.where))
    return dict(sorted(by_recording.items())), failures


def extract_corpus(
    alignments: str | os.PathLike,
    recordings: str | os.PathLike,
    out: str | os.PathLike,
    lang: str,
    *,
    tier: str | None = None,
    speaker_mode: str = "auto",
    split_by: str = "speaker",
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    keep_case: bool = False,
    workers: int = DEFAULT_WORKERS,
    strict: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Cut every aligned word into a clip and write an MSWC-layout corpus.

    Returns:
        A summary: ``{"clips": n, "words": n, "speakers": n, "splits": {...},
        "skipped": {"total", "by_reason", "items"}}``.

    Raises:
        BuildError: bad alignments, existing output without ``overwrite``, or
            (with ``strict``) any row or recording that cannot be used.
    """
    from corpus.layout import read_metadata, write_metadata, write_splits

    out = Path(out)
    splits_path = out / f"{lang}_splits.csv"
    if splits_path.exists() and not overwrite:
        raise BuildError(f"{splits_path} exists; pass --overwrite to replace this corpus's {lang} clips")
    words = read_alignments(alignments, recordings, tier)
    if not words:
        raise BuildError(f"{alignments}: no aligned words found")
    by_recording, failures = plan_clips(
        words, recordings_root=Path(recordings), speaker_mode=speaker_mode, split_by=split_by,
        ratios=ratios, seed=seed, keep_case=keep_case,
    )
    if strict and failures:
        where, reason, detail = failures[0]
        raise BuildError(f"{where}: {reason} ({detail}); drop --strict to skip such rows")

    clips_dir = out / lang / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(rec, jobs, str(clips_dir)) for rec, jobs in by_recording.items()]
    from tqdm import tqdm

    records = []
    with tqdm(total=len(tasks), desc="recordings", unit="rec", disable=not progress) as bar:
        if workers <= 0 or len(tasks) < 2:
            results = map(_extract_task, tasks)
            pool = None
        else:
            with sigint_held():
                pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)), initializer=ignore_sigint)
            results = pool.imap(_extract_task, tasks)
        try:
            for recs, fails in results:
                if strict and fails:
                    where, reason, detail = fails[0]
                    raise BuildError(f"{where}: {reason} ({detail}); drop --strict to skip it")
                records += recs
                failures += fails
                bar.update(1)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    if not records:
        raise BuildError("no clip could be cut: every recording or alignment row was skipped "
                         f"({collections.Counter(r for _, r, _ in failures)})")

    records.sort(key=lambda r: r.link)
    write_splits(splits_path, records)
    filenames: dict[str, list[str]] = collections.defaultdict(list)
    for r in records:
        filenames[r.word].append(r.link.split("/", 1)[1])
    metadata_path = out / "metadata.json.gz"
    metadata = dict(read_metadata(out) or {})  # keep the other languages
    metadata[lang] = {
        "wordcounts": {w: len(v) for w, v in sorted(filenames.items())},
        "filenames": {w: sorted(v) for w, v in sorted(filenames.items())},
    }
    write_metadata(metadata_path, metadata)
    by_reason = collections.Counter(reason for _, reason, _ in failures)
    return {
        "clips": len(records),
        "words": len(filenames),
        "speakers": len({r.speaker for r in records}),
        "splits": dict(sorted(collections.Counter(r.split for r in records).items())),
        "skipped": {"total": len(failures), "by_reason": dict(sorted(by_reason.items())),
                    "items": [{"where": w, "reason": r, "detail": d} for w, r, d in failures]},
    }


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 80,10,10, got {text!r}") from None
    if len(values) != 3 or min(values) < 0 or values[0] <= 0:
        raise argparse.ArgumentTypeError(
            f"expected TRAIN,DEV,TEST shares (three numbers >= 0, TRAIN > 0), got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extract-clips",
        description=(
            "Cut a 1-second clip centred on every aligned word of long recordings and write "
            "them as an MSWC-layout corpus (48 kHz Opus clips, {lang}_splits.csv, "
            "metadata.json.gz) that build-dataset --mswc-root reads."
        ),
        epilog="See docs/BUILD.md. " + EXIT_STATUS_HELP,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--lang", required=True, help="language code of the corpus, e.g. es")
    parser.add_argument("--recordings", required=True, metavar="DIR",
                        help="directory of the long recordings (any format libsndfile reads)")
    parser.add_argument("--alignments", required=True, metavar="PATH",
                        help="CSV with header file,word,start,end[,speaker,split,gender] (seconds), "
                             "a TextGrid, or a directory of Montreal Forced Aligner TextGrids")
    parser.add_argument("--out", required=True, metavar="DIR", help="corpus root to write")
    parser.add_argument("--tier", help="TextGrid tier with the words (default: 'words', or the only tier)")
    parser.add_argument("--speaker", choices=("auto", "file", "dir"), default="auto",
                        help="speaker of a clip: auto = the alignment's speaker column (or the "
                             "TextGrid's directory) else the recording's name; file = recording "
                             "name; dir = the recording's directory name")
    parser.add_argument("--split-by", choices=("speaker", "clip"), default="speaker",
                        help="assign splits per speaker (MSWC's rule: no speaker in two splits) "
                             "or per clip (for single-speaker data)")
    parser.add_argument("--split-ratios", type=_ratios, default="80,10,10", metavar="T,D,T",
                        help="TRAIN,DEV,TEST shares of the clips; an alignment 'split' column overrides")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
    parser.add_argument("--keep-case", action="store_true", help="do not lower-case words")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="processes cutting and encoding clips")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first unusable row or recording instead of skipping it")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing {lang} corpus in --out")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from corpus.layout import CorpusError

    try:
        summary = extract_corpus(
            args.alignments, args.recordings, args.out, args.lang, tier=args.tier,
            speaker_mode=args.speaker, split_by=args.split_by, ratios=args.split_ratios,
            seed=args.seed, keep_case=args.keep_case, workers=args.workers, strict=args.strict,
            overwrite=args.overwrite, progress=not args.quiet,
        )
    except CorpusError as e:
        raise BuildError(str(e)) from None
    if not args.quiet:
        skipped = summary["skipped"]["items"]
        for item in skipped[:SHOW_SKIPPED]:
            print(f"extract-clips: skipped {item['where']}: {item['reason']} ({item['detail']})",
                  file=sys.stderr)
        if len(skipped) > SHOW_SKIPPED:
            print(f"extract-clips: ... and {len(skipped) - SHOW_SKIPPED} more skipped", file=sys.stderr)
        print(f"wrote {summary['clips']} clips of {summary['words']} words from "
              f"{summary['speakers']} speakers to {args.out} (splits {summary['splits']}); "
              f"skipped {summary['skipped']['total']} {summary['skipped']['by_reason']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``extract-clips``; returns the exit status (``protos.errors``)."""
    return run_cli("extract-clips", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
