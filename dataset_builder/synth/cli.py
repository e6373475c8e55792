"""``synthesize-corpus``: a Multilingual-Spoken-Words-format corpus made with text-to-speech.

Exit codes (:mod:`protos.errors`): 0 done (possibly with a few clips a TTS engine could
not say, counted in the summary), 1 bad input (the message says what to choose) or
nothing could be synthesized, 2 usage, 3 espeak-ng missing (the message says what to
install), 130 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from dataset_builder.synth.build import SynthConfig, SynthError, synthesize_corpus
from dataset_builder.synth.engines import ENGINES
from protos.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_STATUS_HELP, run_cli

PROG = "synthesize-corpus"

EXAMPLE = """\
example:
  synthesize-corpus --langs es,en,de --words-per-lang 50 --clips-per-word 20 --out /tmp/c

Rerunning the same command resumes: finished clips are skipped, the index files are
rewritten at the end. The same arguments and --seed give byte-identical files, whatever
--jobs is. A larger --clips-per-word later keeps the clips already made.

Besides the MSWC files, ROOT gets {lang}_speakers.csv (each speaker's engine, voice
family, variant and channel), {lang}_vocab.csv (which words are number words) and
synthesis.json (parameters). See docs/CORPUS.md.

A run that synthesizes no clip at all exits 1; an interrupted one (Ctrl-C, SIGTERM)
exits 130 and resumes when rerun.

""" + EXIT_STATUS_HELP + "\n"


def _lang_words(values: list[str], flag: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for value in values:
        lang, sep, words = value.partition(":")
        if not sep or not lang or not words:
            raise SynthError(f"{flag} {value!r}: expected LANG:word1,word2,...")
        out.setdefault(lang.strip(), []).extend(w for w in words.split(",") if w.strip())
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Synthesize a spoken-words corpus in the MSWC layout (ROOT/{lang}/clips/{word}/*.opus, "
            "{lang}_splits.csv, metadata.json.gz) with every installed TTS voice, varied speakers "
            "and recording-channel augmentation. Speaker-disjoint TRAIN/DEV/TEST splits (80/10/10)."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--langs", required=True, help="comma-separated language codes, e.g. es,en,de")
    p.add_argument("--out", required=True, type=Path, help="corpus root directory (created; resumed if present)")
    p.add_argument("--words-per-lang", type=int, default=50, help="most frequent words per language from wordfreq (default 50)")
    p.add_argument("--clips-per-word", type=int, default=20, help="clips per word, each from a different speaker (default 20)")
    p.add_argument(
        "--words", action="append", default=[], metavar="LANG:W1,W2,...",
        help="use these words for LANG instead of the frequent-word list (repeatable)",
    )
    p.add_argument(
        "--target-words", action="append", default=[], metavar="LANG:W1,W2,...",
        help="words that get --target-clips clips each, added to the vocabulary if absent (repeatable)",
    )
    p.add_argument("--target-clips", type=int, default=None, help="clips per target word (default: --clips-per-word)")
    p.add_argument(
        "--no-number-words", dest="number_words", action="store_false",
        help="do not add the language's number words (added by default: the embedding model's held-out test words)",
    )
    p.add_argument("--speakers-per-lang", type=int, default=None, help="speakers per language (default max(40, 4 x clips per word))")
    p.add_argument("--engines", default=",".join(ENGINES), help=f"TTS engines to use (default {','.join(ENGINES)})")
    p.add_argument("--augment", choices=("none", "default"), default="default", help="recording-channel augmentation (default: default)")
    p.add_argument(
        "--opus-bitrate", type=int, default=None, metavar="BIT/S",
        help="one Opus bitrate for every clip, e.g. 12000 for a small corpus; default: drawn per speaker (12-48 kbit/s)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: number of cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run ``synthesize-corpus``; returns the exit status (see :mod:`protos.errors`)."""
    return run_cli(PROG, _run, argv)


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # `kill` (SIGTERM) stops a run as cleanly as Ctrl-C: workers terminated, exit 130.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _main(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(args: argparse.Namespace) -> int:
    config = SynthConfig(
        out=args.out,
        langs=tuple(dict.fromkeys(l.strip() for l in args.langs.split(",") if l.strip())),
        words_per_lang=args.words_per_lang,
        clips_per_word=args.clips_per_word,
        seed=args.seed,
        jobs=args.jobs,
        augment=args.augment == "default",
        speakers_per_lang=args.speakers_per_lang,
        engines=tuple(e.strip() for e in args.engines.split(",") if e.strip()),
        words=_lang_words(args.words, "--words"),
        target_words=_lang_words(args.target_words, "--target-words"),
        target_clips=args.target_clips,
        include_number_words=args.number_words,
        opus_bitrate=args.opus_bitrate,
        progress=not args.quiet,
    )
    if config.words_per_lang < 1:
        raise SynthError(f"--words-per-lang must be at least 1, got {config.words_per_lang}")
    summary = synthesize_corpus(config)
    print(f"{PROG}: {summary.line(config.out)}")
    return EXIT_BAD_INPUT if summary.clips == 0 else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
