"""Selection stage: samples.pb -> train.npz.

    python -m selection.main --input_samples path/to/samples.pb --outdir=.

Reads the pool, calls ``selection.selection.select`` (the participant hook), checks
its answer and writes ``OUTDIR/train.npz`` atomically. Needs neither TensorFlow nor
the network (it runs in the submission container with ``--network none``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from protos import SamplesFormatError, read_samples
from protos.train_file import TRAIN_FILE_NAME, TrainSet, write_train_file
from selection import implementations
from selection.pool import Pool, SelectionError, validate_selection

EXIT_OK = 0
EXIT_BAD_INPUT = 1  # samples.pb missing or invalid, bad flag value
EXIT_USAGE = 2  # argparse's own code for unknown / missing flags
EXIT_BAD_SELECTION = 3  # select() failed or returned an invalid selection


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m selection.main",
        description="Select a training coreset from a samples.pb pool and write train.npz "
        "(train_x float32 [M, D], train_y int64 with nontarget = 0 and sorted target "
        "keywords = 1..K, train_ids, label_names, and the pool's backend / model_id / "
        "embedding_dim). The algorithm is selection/selection.py:select().",
        epilog=f"exit codes: {EXIT_OK} ok; {EXIT_BAD_INPUT} samples.pb missing or invalid, "
        f"or a bad flag value; {EXIT_USAGE} usage error; {EXIT_BAD_SELECTION} select() "
        "failed or returned an invalid selection.",
    )
    parser.add_argument("--input_samples", required=True, type=Path, metavar="PATH",
                        help="the pool: a samples.pb (this project's schema or DataPerf's)")
    parser.add_argument("--outdir", default=Path("."), type=Path, metavar="DIR",
                        help=f"where to write {TRAIN_FILE_NAME} (created if missing; "
                        "default: current directory)")
    parser.add_argument("--train_size", default=60, type=int, metavar="M",
                        help="budget: at most M samples in total (default 60; DataPerf's "
                        "leaderboards use 25 and 60)")
    parser.add_argument("--algorithm", choices=implementations.available(), default=None,
                        help="run a registered algorithm instead of select()'s default "
                        f"({implementations.DEFAULT_ALGORITHM!r}: typical-but-diverse picks "
                        "with budgets tuned by simulating DataPerf on the pool; 'crossval': "
                        "DataPerf's nested cross-validation baseline; 'random': "
                        "class-balanced random)")
    parser.add_argument("--seed", default=0, type=int,
                        help="random seed passed to the algorithm (default 0)")
    return parser


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.train_size < 1:
        return _fail(f"--train_size must be at least 1, got {args.train_size}", EXIT_BAD_INPUT)
    # read_samples also takes a directory, a glob or a sharded name (samples-*-of-*.pb),
    # so existence is its call, not a plain is_file() check here.
    try:
        sample_set = read_samples(args.input_samples)
    except FileNotFoundError as exc:
        return _fail(f"{exc} (--input_samples)", EXIT_BAD_INPUT)
    except (SamplesFormatError, OSError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    if sample_set.metadata.role == "eval":
        print(f"warning: {args.input_samples} is an eval set (role 'eval'); selecting from "
              "it leaks the scoring data", file=sys.stderr)

    # Imported here so a participant's edit that breaks the import is reported after
    # the input has been checked, with the traceback Python gives.
    from selection.selection import select

    pool = Pool.from_sample_set(sample_set, args.train_size, args.seed)
    try:
        answer = select(pool) if args.algorithm is None else select(pool, algorithm=args.algorithm)
        rows = validate_selection(answer, pool)
    except SelectionError as exc:
        return _fail(str(exc), EXIT_BAD_SELECTION)

    meta = sample_set.metadata
    try:
        args.outdir.mkdir(parents=True, exist_ok=True)
        out_path = args.outdir / TRAIN_FILE_NAME
        write_train_file(out_path, TrainSet(
            x=sample_set.embeddings[rows], y=pool.labels[rows], ids=sample_set.ids[rows],
            label_names=list(pool.label_names), backend=meta.backend, model_id=meta.model_id,
            embedding_dim=sample_set.embedding_dim, language=meta.language,
            # --algorithm's name, or "select()": whatever select() does by default.
            algorithm=args.algorithm or "select()", train_size=args.train_size,
            seed=args.seed))
    except OSError as exc:
        return _fail(f"cannot write {args.outdir / TRAIN_FILE_NAME}: {exc}", EXIT_BAD_INPUT)

    counts = np.bincount(pool.labels[rows], minlength=pool.num_classes)
    per_class = ", ".join(f"{name} {count}" for name, count in zip(pool.label_names, counts))
    print(f"wrote {out_path}: {len(rows)} of {len(pool.ids)} samples ({per_class})")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
