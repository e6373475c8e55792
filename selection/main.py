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
from protos.dataperf import dataperf_training_order
from protos.errors import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    EnvironmentProblem,
    InputError,
    run_cli,
)
from protos.outputs import check_output_dir
from protos.train_file import TRAIN_FILE_NAME, TrainSet, write_train_file
from selection import implementations
from selection.pool import Pool, SelectionError, validate_selection

PROG = "python -m selection.main"
#: select() failed or returned an invalid selection: bad data, like any bad input.
EXIT_BAD_SELECTION = EXIT_BAD_INPUT
__all__ = ["EXIT_BAD_INPUT", "EXIT_BAD_SELECTION", "EXIT_OK", "EXIT_USAGE", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Select a training coreset from a samples.pb pool and write train.npz "
        "(train_x float32 [M, D], train_y int64 with nontarget = 0 and sorted target "
        "keywords = 1..K, train_ids, label_names, and the pool's backend / model_id / "
        "embedding_dim). The algorithm is selection/selection.py:select().",
        epilog=EXIT_STATUS_HELP + ". A samples.pb that is missing or invalid, a pool without "
        "target or nontarget clips, and a select() that fails or returns an invalid "
        "selection are bad input (1).",
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


def check_pool_classes(pool: Pool, path: Path) -> None:
    """Refuse a pool the fixed classifier could not be trained from.

    Raises:
        InputError: no target clips, or no nontarget clips, in the pool.
    """
    sizes = pool.class_sizes()
    if sizes[1:].sum() == 0:
        raise InputError(
            f"{path}: the pool has no target clips (all {len(pool.ids)} are nontarget), so "
            f"no keyword can be learnt; build it with the target keywords "
            f"{list(pool.label_names[1:])} in it")
    if sizes[0] == 0:
        raise InputError(
            f"{path}: the pool has no nontarget clips (all {len(pool.ids)} are keyword clips); "
            "DataPerf's eval needs nontargets in the training set: build the pool with "
            "nontarget words")


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.train_size < 1:
        raise InputError(f"--train_size must be at least 1, got {args.train_size}")
    check_output_dir(args.outdir, "--outdir")
    # read_samples also takes a directory, a glob or a sharded name (samples-*-of-*.pb),
    # so existence is its call, not a plain is_file() check here.
    try:
        sample_set = read_samples(args.input_samples)
    except FileNotFoundError as exc:
        raise InputError(f"{exc} (--input_samples)") from None
    except SamplesFormatError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"{args.input_samples}: cannot be read ({exc.strerror}) "
                         "(--input_samples)") from None
    if sample_set.metadata.role == "eval":
        print(f"warning: {args.input_samples} is an eval set (role 'eval'); selecting from "
              "it leaks the scoring data", file=sys.stderr)

    # Imported here so a participant's edit that breaks the import is reported after
    # the input has been checked, with the traceback Python gives.
    from selection.selection import select

    pool = Pool.from_sample_set(sample_set, args.train_size, args.seed)
    check_pool_classes(pool, args.input_samples)
    answer = select(pool) if args.algorithm is None else select(pool, algorithm=args.algorithm)
    rows = validate_selection(answer, pool)
    # train.npz lists the rows in the order DataPerf's harness trains on them (targets by
    # keyword in pool order, then nontargets grouped by word): the same clips then score
    # the same here, after to-json on the official harness, and after from-json.
    rows = rows[dataperf_training_order(pool.ids[rows], pool.labels[rows], rows)]

    meta = sample_set.metadata
    out_path = args.outdir / TRAIN_FILE_NAME
    try:
        args.outdir.mkdir(parents=True, exist_ok=True)
        write_train_file(out_path, TrainSet(
            x=sample_set.embeddings[rows], y=pool.labels[rows], ids=sample_set.ids[rows],
            label_names=list(pool.label_names), backend=meta.backend, model_id=meta.model_id,
            embedding_dim=sample_set.embedding_dim, language=meta.language,
            # --algorithm's name, or "select()": whatever select() does by default.
            algorithm=args.algorithm or "select()", train_size=args.train_size,
            seed=args.seed))
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {out_path} (--outdir): {exc.strerror}; free "
                                 "space or choose another location") from None

    counts = np.bincount(pool.labels[rows], minlength=pool.num_classes)
    per_class = ", ".join(f"{name} {count}" for name, count in zip(pool.label_names, counts))
    print(f"wrote {out_path}: {len(rows)} of {len(pool.ids)} samples ({per_class})")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``python -m selection.main``: exit status as in :mod:`protos.errors`, errors as one
    ``python -m selection.main: error: ...`` line on stderr."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
