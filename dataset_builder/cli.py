"""build-dataset: keyword clips -> samples.pb + eval.pb + manifest.json.

Examples::

    build-dataset --lang es --keyword sí --keyword no --keyword año \\
        --mswc-root data/mswc --out out/es
    build-dataset --lang es --keyword sí ... \\
        --audio-archive https://host/audio/es.tar.gz \\
        --splits-archive https://host/splits/es.tar.gz --out out/es
    build-dataset ... --backend wav2vec2 --model facebook/wav2vec2-base --layer 6
    build-dataset ... --runner DirectRunner       # as an Apache Beam pipeline
    build-dataset ... --runner DataflowRunner --project P --region R \\
        --temp_location gs://b/tmp --out gs://b/out/es   # see docs/SCALE.md

Exit status: 0 success; 1 bad input or data (one line on stderr says what and
what to do); 2 command-line usage error; 3 the chosen embedding backend (or, with
--runner, Apache Beam) is not installed or has no model; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from dataset_builder.clitools import HelpFormatter
from dataset_builder.errors import BuildError
from dataset_builder.protocol import ExperimentParams

EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_BACKEND, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

_WAV2VEC2_ONLY = ("layer", "pooling")


def _keywords(values: list[str]) -> tuple[str, ...]:
    out = []
    for value in values:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return tuple(out)


def build_parser() -> argparse.ArgumentParser:
    defaults = ExperimentParams(keywords=())
    parser = argparse.ArgumentParser(
        prog="build-dataset",
        description=(
            "Build a DataPerf speech dataset: the target keywords' TRAIN clips and the "
            "'known' nontarget words' clips become samples.pb (the pool to select from); "
            "their DEV+TEST clips, the rest of the known words' clips and the 'unknown' "
            "nontarget words become eval.pb. Defaults are DataPerf's protocol."
        ),
        epilog=(
            "exit status: 0 ok; 1 bad input or data; 2 usage error; 3 embedding backend "
            "not installed or model missing; 130 interrupted. See docs/BUILD.md."
        ),
        formatter_class=HelpFormatter,
        # With --runner, unknown options go to Beam: no abbreviation may swallow one.
        allow_abbrev=False,
    )
    parser.add_argument("--lang", required=True, help="corpus language code, e.g. es")
    parser.add_argument("--keyword", "-k", action="append", required=True, metavar="WORD",
                        help="target keyword; repeat the flag or give a comma-separated list")
    parser.add_argument("--out", required=True, help="output directory for samples.pb, eval.pb, manifest.json")

    src = parser.add_argument_group("corpus source (exactly one of --mswc-root and --audio-archive)")
    group = src.add_mutually_exclusive_group(required=True)
    group.add_argument("--mswc-root", metavar="DIR",
                       help="MSWC-layout directory: DIR/{lang}/clips/... and {lang}_splits.csv")
    group.add_argument("--audio-archive", metavar="PATH|URL",
                       help="MSWC audio archive audio/{lang}.tar.gz, local or http(s); streamed once")
    src.add_argument("--splits-archive", metavar="PATH|URL",
                     help="MSWC splits archive splits/{lang}.tar.gz (required with --audio-archive)")
    src.add_argument("--audio-sha256", metavar="HEX", help="expected SHA-256 of the audio archive")
    src.add_argument("--splits-sha256", metavar="HEX", help="expected SHA-256 of the splits archive")
    src.add_argument("--download-dir", metavar="DIR",
                     help="download URL archives here first (resumable, reused next time) "
                          "instead of streaming them")

    be = parser.add_argument_group("embedding backend")
    be.add_argument("--backend", default="mswc",
                    help="embedding backend: mswc (the shipped model), wav2vec2 (extra), openwakeword (extra)")
    be.add_argument("--model", metavar="PATH|ID",
                    help="mswc: model directory or .keras file (default: the shipped model); "
                         "wav2vec2: local model directory or Hugging Face hub id")
    be.add_argument("--layer", type=int, help="wav2vec2 only: hidden layer to pool (default: last)")
    be.add_argument("--pooling", choices=("mean", "max", "meanmax"),
                    help="wav2vec2 only: pooling over frames; meanmax concatenates both (default: mean)")

    pr = parser.add_argument_group("experiment protocol (DataPerf's values as defaults)")
    pr.add_argument("--known-words", type=int, default=defaults.known_words,
                    help="nontarget words split between samples.pb and eval.pb")
    pr.add_argument("--unknown-words", type=int, default=defaults.unknown_words,
                    help="nontarget words in eval.pb only")
    pr.add_argument("--clips-per-word", type=int, default=defaults.clips_per_word,
                    help="clips drawn per nontarget word (known words: half to each file)")
    pr.add_argument("--min-word-clips", type=int, default=defaults.min_word_clips,
                    help="a nontarget word needs MORE than this many clips")
    pr.add_argument("--min-target-train", type=int, default=defaults.min_target_train,
                    help="TRAIN clips a keyword needs at least")
    pr.add_argument("--min-target-eval", type=int, default=defaults.min_target_eval,
                    help="DEV+TEST clips a keyword needs at least")
    pr.add_argument("--max-target-train", type=int, default=None,
                    help="cap TRAIN clips per keyword (default: all of them)")
    pr.add_argument("--max-target-eval", type=int, default=None,
                    help="cap DEV+TEST clips per keyword (default: all)")
    pr.add_argument("--include-invalid", action="store_true",
                    help="also use clips the splits mark VALID=False")
    pr.add_argument("--seed", type=int, default=defaults.seed, help="seed of every random draw")

    run = parser.add_argument_group("running")
    run.add_argument("--workers", type=int, default=2, help="decoding processes (0: decode in-process)")
    run.add_argument("--batch-size", type=int, default=256, help="clips per embedding batch")
    run.add_argument("--strict", action="store_true",
                     help="stop at the first unreadable, empty or silent clip instead of skipping it")
    run.add_argument("--dry-run", action="store_true",
                     help="run the protocol only: print the planned counts, embed nothing")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    from dataset_builder.beam_pipeline import add_beam_arguments

    add_beam_arguments(parser)
    return parser


def params_from_args(args: argparse.Namespace) -> ExperimentParams:
    return ExperimentParams(
        keywords=_keywords(args.keyword),
        known_words=args.known_words,
        unknown_words=args.unknown_words,
        clips_per_word=args.clips_per_word,
        min_word_clips=args.min_word_clips,
        min_target_train=args.min_target_train,
        min_target_eval=args.min_target_eval,
        max_target_train=args.max_target_train,
        max_target_eval=args.max_target_eval,
        seed=args.seed,
        include_invalid=args.include_invalid,
    )


def source_from_args(args: argparse.Namespace):
    from dataset_builder.sources import MswcArchive, MswcDirectory

    if args.mswc_root:
        for flag in ("splits_archive", "audio_sha256", "splits_sha256", "download_dir"):
            if getattr(args, flag):
                raise BuildError(f"--{flag.replace('_', '-')} only applies with --audio-archive")
        return MswcDirectory(args.mswc_root, args.lang)
    if not args.splits_archive:
        raise BuildError("--audio-archive needs --splits-archive (MSWC's splits/{lang}.tar.gz)")
    return MswcArchive(
        args.audio_archive, args.splits_archive, args.lang,
        audio_sha256=args.audio_sha256, splits_sha256=args.splits_sha256,
        download_dir=args.download_dir, progress=not args.quiet,
    )


def backend_options(args: argparse.Namespace) -> dict:
    options = {}
    if args.model is not None:
        options["model"] = args.model
    for name in _WAV2VEC2_ONLY:
        value = getattr(args, name)
        if value is not None:
            if args.backend != "wav2vec2":
                raise BuildError(f"--{name} applies to --backend wav2vec2 only, not {args.backend!r}")
            options[name] = value
    return options


def load_backend(name: str, options: dict):
    """Create the embedding backend, turning an unknown name into a BuildError."""
    from embedding_model.backends import get_backend

    try:
        return get_backend(name, **options)
    except ValueError as e:
        raise BuildError(str(e)) from None


def _summary(manifest: dict) -> str:
    c = manifest["counts"]
    lines = [
        f"samples.pb: {sum(c['samples'].values())} clips {c['samples']}",
        f"eval.pb:    {sum(c['eval'].values())} clips {c['eval']}",
        f"nontarget words: {len(manifest['nontarget_words']['known'])} known, "
        f"{len(manifest['nontarget_words']['unknown'])} unknown",
        f"skipped: {manifest['skipped']['total']} {manifest['skipped']['by_reason']}",
        f"backend: {manifest['backend']['name']} ({manifest['backend']['dim']}-d, "
        f"{manifest['backend']['identity']}); "
        f"{manifest['timings']['clips_per_second']} clips/s",
    ]
    return "\n".join(lines)


def check_run_args(args: argparse.Namespace) -> None:
    """Refuse worker/batch settings that cannot run (shared by the local and Beam runners)."""
    if args.workers < 0 or args.batch_size < 1:
        raise BuildError("--workers must be >= 0 and --batch-size >= 1")


def print_plan(experiment) -> None:
    """``--dry-run``: the chosen targets, nontarget words and counts, as JSON on stdout."""
    print(json.dumps({
        "targets": list(experiment.keywords),
        "nontarget_words": {"known": list(experiment.known_words),
                            "unknown": list(experiment.unknown_words)},
        "counts": experiment.counts(),
    }, indent=2, ensure_ascii=False))


def run(args: argparse.Namespace, beam_args: list[str] | None = None) -> int:
    if args.runner:
        from dataset_builder.beam_pipeline import run_beam_build

        return run_beam_build(args, beam_args or [])
    if args.shards != 1:
        raise BuildError("--shards needs --runner (e.g. --runner DirectRunner)")
    from embedding_model.backends import BackendUnavailable

    from dataset_builder.build import RunOptions, build_dataset, plan_experiment

    check_run_args(args)
    params = params_from_args(args)
    source = source_from_args(args)
    options = backend_options(args)
    t = time.perf_counter()
    experiment, n_records = plan_experiment(source, params)
    plan_seconds = time.perf_counter() - t
    if args.dry_run:
        print_plan(experiment)
        return EXIT_OK
    t = time.perf_counter()
    try:
        backend = load_backend(args.backend, options)
    except BackendUnavailable as e:
        print(f"build-dataset: {e}", file=sys.stderr)
        return EXIT_BACKEND
    load_seconds = time.perf_counter() - t
    manifest = build_dataset(
        source, experiment, backend, args.out,
        RunOptions(workers=args.workers, batch_size=args.batch_size, strict=args.strict,
                   progress=not args.quiet),
        records=n_records,
        timings={"plan_seconds": plan_seconds, "backend_load_seconds": load_seconds},
    )
    if not args.quiet:
        print(_summary(manifest))
        print(f"wrote {args.out}/samples.pb, eval.pb, manifest.json")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's start-up INFO lines (oneDNN, CPU features) drown the one-line
    # summary a user reads; a user who wants them sets the variable themselves.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and not args.runner:
        parser.error(f"unrecognized arguments: {' '.join(beam_args)}")
    from corpus.layout import CorpusError

    try:
        return run(args, beam_args)
    except (BuildError, CorpusError) as e:
        print(f"build-dataset: {e}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print("build-dataset: interrupted; no output was written half-way", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
