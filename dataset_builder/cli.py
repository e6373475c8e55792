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

The flags and the dispatch only: :mod:`dataset_builder.launcher` runs the
sequence, with the local runner (:mod:`dataset_builder.build`) or, with
``--runner``, the Apache Beam one (:mod:`dataset_builder.beam_pipeline`).
Exit statuses are the project's (:mod:`protos.errors`): 0 success; 1 bad input
or data (one line on stderr says what and what to do); 2 usage error; 3 the
chosen backend or Apache Beam is not installed or has no model, or an output
location cannot be written; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from dataset_builder.clitools import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, HelpFormatter
from dataset_builder.errors import BuildError
from dataset_builder.protocol import ExperimentParams
from protos.errors import EXIT_STATUS_HELP, run_cli

PROG = "build-dataset"


def build_parser() -> argparse.ArgumentParser:
    defaults = ExperimentParams(keywords=())
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Build a DataPerf speech dataset: the target keywords' TRAIN clips and the "
            "'known' nontarget words' clips become samples.pb (the pool to select from); "
            "their DEV+TEST clips, the rest of the known words' clips and the 'unknown' "
            "nontarget words become eval.pb. Defaults are DataPerf's protocol."
        ),
        epilog="See docs/BUILD.md (and docs/SCALE.md for --runner). " + EXIT_STATUS_HELP,
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
    run.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="decoding processes (0: decode in-process)")
    run.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="clips per embedding batch")
    run.add_argument("--opus-decoder", choices=("auto", "libsndfile"), default=None,
                     help="Ogg/Opus decoder: auto = libopus straight at 16 kHz when the system has it "
                     "(fastest), else libsndfile; libsndfile = always the soundfile wheel's libsndfile "
                     "at 48 kHz + soxr (the same vectors with or without a system libopus; the demo "
                     "uses it) (default: $DATAPERF_OPUS_DECODER, else auto)")
    run.add_argument("--strict", action="store_true",
                     help="stop at the first unreadable, empty or silent clip instead of skipping it")
    run.add_argument("--dry-run", action="store_true",
                     help="run the protocol only: print the planned counts, embed nothing")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    beam = parser.add_argument_group(
        "Apache Beam (the [beam] extra; see docs/SCALE.md)",
        "With --runner, the build runs as a Beam pipeline; options build-dataset does not know "
        "(--project, --region, --temp_location, --direct_num_workers, ...) are passed to Beam.")
    beam.add_argument("--runner", metavar="NAME",
                      help="Beam runner: DirectRunner (local), DaskRunner (a dask.distributed cluster: --dask_client_address HOST:PORT, else a local one of --workers processes), DataflowRunner, FlinkRunner, SparkRunner, ...")
    beam.add_argument("--shards", type=int, default=1, metavar="N",
                      help="with --runner: write samples.pb and eval.pb as N shards each "
                           "(samples-00000-of-0000N.pb ...), read back as one dataset")
    return parser


def runner_for(args: argparse.Namespace, beam_args: Sequence[str]):
    """The runner the flags choose: Apache Beam with ``--runner``, else the local one."""
    if args.runner:
        from dataset_builder.beam_pipeline import BeamOptions, BeamRunner

        return BeamRunner(BeamOptions(runner=args.runner, pipeline_args=tuple(beam_args),
                                      batch_size=args.batch_size, shards=args.shards,
                                      strict=args.strict, workers=args.workers))
    from dataset_builder.build import LocalRunner, RunOptions

    return LocalRunner(RunOptions(workers=args.workers, batch_size=args.batch_size, strict=args.strict,
                                  progress=not args.quiet))


def _main(argv: Sequence[str] | None) -> int:
    # TensorFlow's start-up INFO lines (oneDNN, CPU features) drown the one-line
    # summary a user reads; a user who wants them sets the variable themselves.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and not args.runner:
        parser.error(f"unrecognized arguments: {' '.join(beam_args)}")
    from corpus.audio import OPUS_DECODER_ENV, opus_decoder
    from corpus.layout import CorpusError

    if args.opus_decoder:
        # Decoding workers are spawned later and inherit the environment.
        os.environ[OPUS_DECODER_ENV] = args.opus_decoder
    opus_decoder()  # a bad value in the environment: one line now, not one per clip

    from dataset_builder.launcher import launch

    try:
        return launch(args, runner_for(args, beam_args))
    except CorpusError as e:
        raise BuildError(str(e)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """``build-dataset``: returns the exit status (see the module docstring)."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
