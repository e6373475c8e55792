"""``python -m eval``: score a train.npz on an eval.pb, after checking they belong together."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from eval.scoring import DATAPERF_SEEDS, score
from protos import SampleSet, SamplesFormatError, read_samples
from protos.atomic import atomic_write_text
from protos.dataperf import dataperf_training_order
from protos.errors import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_OK,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    DataperfSpeechError,
    EnvironmentProblem,
    InputError,
    run_cli,
)
from protos.outputs import check_output_dir, check_output_file
from protos.train_file import TrainSet, load_train_file

PROG = "python -m eval"
#: The training set breaks a rule (over --train_size, or not from --samples_file): bad input.
EXIT_RULES = EXIT_BAD_INPUT
__all__ = ["EXIT_BAD_INPUT", "EXIT_ENVIRONMENT", "EXIT_OK", "EXIT_RULES", "EXIT_USAGE",
           "EvalError", "main"]


class EvalError(DataperfSpeechError, ValueError):
    """One-line explanation of why scoring cannot go ahead; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = self.exit_code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Score a training set (train.npz) on an eval set (eval.pb) with "
        "DataPerf's protocol: soft-voting SVC(probability=True) + LogisticRegression, "
        f"macro F1, mean over seeds {list(DATAPERF_SEEDS)}. Prints per-class F1 and the "
        "score (last line).",
        epilog=EXIT_STATUS_HELP + ". Bad input (1) includes a missing or invalid file, train "
        "and eval that do not match (embedding dim, backend, model id, classes) and a "
        "training set that breaks a rule (--train_size cap, or a row that is not a genuine "
        "--samples_file row).",
    )
    parser.add_argument("--eval_file", required=True, type=Path, metavar="PATH",
                        help="the held-out eval.pb")
    parser.add_argument("--train_file", required=True, type=Path, metavar="PATH",
                        help="train.npz written by python -m selection.main")
    parser.add_argument("--samples_file", type=Path, metavar="PATH",
                        help="the samples.pb the selection came from: verify every training "
                        "row is one of its rows (same id, same class, bit-identical vector)")
    parser.add_argument("--train_size", type=int, metavar="M",
                        help="refuse a training set of more than M samples")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the result as JSON (score, per-seed scores, per-class "
                        "F1, class counts, backend)")
    parser.add_argument("--no_progress", action="store_true",
                        help="no progress bar on stderr")
    parser.add_argument("--report", type=Path, metavar="DIR",
                        help="also write DIR/index.html: a self-contained page (confusion "
                        "matrix, per-class F1, a 2-D map of the eval embeddings with the "
                        "selected clips, score per seed, summary); needs matplotlib")
    parser.add_argument("--report_projection", choices=("tsne", "pca"), default="tsne",
                        help="the report's 2-D map: t-SNE (seeded) of every keyword clip and "
                        "enough nontargets to make 1500 points, or PCA of up to 6000 eval "
                        "clips (default tsne)")
    return parser


def check_compatible(train: TrainSet, eval_set: SampleSet, train_path: Path,
                     eval_path: Path) -> None:
    """Refuse a train/eval pair that cannot be scored meaningfully.

    Raises:
        EvalError: different embedding dims, backends or model ids (when both record
            them), different class lists, or a class with no samples on either side.
    """
    eval_dim, train_dim = eval_set.embedding_dim, train.x.shape[1]
    if train.embedding_dim and train.embedding_dim != train_dim:
        raise EvalError(f"{train_path}: records embedding_dim={train.embedding_dim} but "
                        f"train_x has {train_dim}-d vectors")
    if train_dim != eval_dim:
        raise EvalError(f"embedding dims differ: {train_path} has {train_dim}-d vectors, "
                        f"{eval_path} has {eval_dim}-d")
    meta = eval_set.metadata
    for field, train_value, eval_value in (("backend", train.backend, meta.backend),
                                           ("model_id", train.model_id, meta.model_id)):
        if train_value and eval_value and train_value != eval_value:
            raise EvalError(f"embedding {field}s differ: {train_path} has {train_value!r}, "
                            f"{eval_path} has {eval_value!r}; embed both with the same model")
    names = eval_set.label_names
    if train.label_names is not None and train.label_names != names:
        raise EvalError(f"classes differ: {train_path} has {train.label_names}, "
                        f"{eval_path} has {names}")
    if train.y.max() >= len(names):
        raise EvalError(f"{train_path}: class id {int(train.y.max())} out of range for the "
                        f"{len(names)} classes of {eval_path} {names}")
    for path, labels in ((eval_path, eval_set.labels), (train_path, train.y)):
        counts = np.bincount(labels, minlength=len(names))
        empty = [names[c] for c in np.flatnonzero(counts == 0)]
        if empty:
            raise EvalError(f"{path}: no samples of class(es) {empty}; every class of "
                            f"{names} needs at least one")


def verify_against_pool(train: TrainSet, pool: SampleSet, label_names: list[str],
                        train_path: Path, pool_path: Path) -> np.ndarray:
    """Every training row must be a genuine pool row: same id, class and vector.

    Returns:
        np.ndarray [shape=(M,)] int64, the pool row of each training row.

    Raises:
        EvalError: with code EXIT_RULES for a row that is not genuine, EXIT_BAD_INPUT
            when the pool itself does not match the task.
    """
    if pool.label_names != label_names:
        raise EvalError(f"classes differ: {pool_path} has {pool.label_names}, the eval set "
                        f"has {label_names}")
    if train.ids is None:
        raise EvalError(f"{train_path}: has no train_ids, so its rows cannot be checked "
                        f"against {pool_path}", EXIT_RULES)
    if pool.embedding_dim != train.x.shape[1]:
        raise EvalError(f"embedding dims differ: {train_path} has {train.x.shape[1]}-d "
                        f"vectors, {pool_path} has {pool.embedding_dim}-d")
    uniq, counts = np.unique(train.ids, return_counts=True)
    if (counts > 1).any():
        raise EvalError(f"{train_path}: sample id {str(uniq[np.argmax(counts > 1)])!r} is "
                        "selected more than once", EXIT_RULES)
    row_of = {sample_id: row for row, sample_id in enumerate(pool.ids.tolist())}
    missing = [i for i in train.ids.tolist() if i not in row_of]
    if missing:
        raise EvalError(f"{train_path}: {len(missing)} selected id(s) are not in {pool_path}, "
                        f"first {missing[0]!r}", EXIT_RULES)
    rows = np.fromiter((row_of[i] for i in train.ids.tolist()), dtype=np.int64,
                       count=len(train.ids))
    wrong_class = np.flatnonzero(pool.labels[rows] != train.y)
    if len(wrong_class):
        i = int(wrong_class[0])
        raise EvalError(
            f"{train_path}: {train.ids[i]!r} is labelled {label_names[train.y[i]]!r} but is "
            f"a {label_names[pool.labels[rows[i]]]!r} sample in {pool_path}", EXIT_RULES)
    # Bit-identical: a genuine row is copied, never recomputed or perturbed.
    differs = np.flatnonzero((pool.embeddings[rows].view(np.uint32)
                              != train.x.view(np.uint32)).any(axis=1))
    if len(differs):
        raise EvalError(f"{train_path}: {len(differs)} row(s) differ from their vectors in "
                        f"{pool_path}, first {train.ids[differs[0]]!r}", EXIT_RULES)
    return rows


def _read_samples_file(path: Path, flag: str) -> SampleSet:
    # read_samples also takes a directory, a glob or a sharded name (samples-*-of-*.pb).
    try:
        return read_samples(path)
    except FileNotFoundError as exc:
        raise EvalError(f"{exc} ({flag})") from None
    except SamplesFormatError as exc:
        raise EvalError(str(exc)) from None
    except OSError as exc:
        raise EvalError(f"{path}: cannot be read ({exc.strerror}) ({flag})") from None


def run(args: argparse.Namespace) -> int:
    # Everything that could stop the run after the scoring is checked before it.
    if args.json is not None:
        check_output_file(args.json, "--json")
    if args.report is not None:
        from eval.report import require_matplotlib

        require_matplotlib()
        check_output_dir(args.report, "--report")
    eval_set = _read_samples_file(args.eval_file, "--eval_file")
    train = load_train_file(args.train_file)
    if eval_set.metadata.role == "samples":
        print(f"warning: {args.eval_file} is a selection pool (role 'samples'), not an eval "
              "set", file=sys.stderr)
    check_compatible(train, eval_set, args.train_file, args.eval_file)
    if args.train_size is not None and len(train.y) > args.train_size:
        raise EvalError(f"{args.train_file}: {len(train.y)} training samples, more than "
                        f"--train_size {args.train_size}", EXIT_RULES)
    pool_rows = None
    if args.samples_file is not None:
        pool = _read_samples_file(args.samples_file, "--samples_file")
        pool_rows = verify_against_pool(train, pool, eval_set.label_names, args.train_file,
                                        args.samples_file)
    # DataPerf's harness trains on the rows in its own order, and SVC(probability=True)
    # is order-sensitive: score in that order, so a train set scores the same here.
    ids = train.ids if train.ids is not None else np.full(len(train.y), "")
    order = dataperf_training_order(ids, train.y, pool_rows)
    train_x, train_y = train.x[order], train.y[order]

    if not args.no_progress:
        print(f"{PROG}: training DataPerf's classifier on {len(train.y)} clips and scoring "
              f"{len(eval_set.ids)} eval clips, {len(DATAPERF_SEEDS)} seeds", file=sys.stderr,
              flush=True)
    result = score(train_x, train_y, eval_set.embeddings, eval_set.labels,
                   label_names=eval_set.label_names, progress=not args.no_progress,
                   keep_predictions=args.report is not None)

    width = max(len("class"), *map(len, result.label_names))
    print(f"train: {len(train.y)} samples, eval: {len(eval_set.ids)} samples, "
          f"{train.x.shape[1]}-d, backend {eval_set.metadata.backend or 'unrecorded'}")
    print(f"{'class':<{width}}  F1 (mean over seeds)  train   eval")
    for name in result.label_names:
        print(f"{name:<{width}}  {result.per_class_f1[name]:19.4f}  "
              f"{result.train_counts[name]:5d}  {result.eval_counts[name]:5d}")
    print(f"score (macro F1, mean over {len(result.per_seed)} seeds): {result.score:.4f}")

    if args.json is not None:
        document = {
            **result.to_dict(),
            "n_train": int(len(train.y)),
            "n_eval": int(len(eval_set.ids)),
            "embedding_dim": int(train.x.shape[1]),
            "backend": eval_set.metadata.backend or train.backend,
            "model_id": eval_set.metadata.model_id or train.model_id,
            "eval_file": str(args.eval_file),
            "train_file": str(args.train_file),
            "samples_file_verified": args.samples_file is not None,
        }
        try:
            atomic_write_text(args.json, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise EnvironmentProblem(f"cannot write {args.json} (--json): {exc.strerror}; free "
                                     "space or choose another location") from None
    if args.report is not None:
        _write_report(args, result, train, eval_set)
    return EXIT_OK


def _write_report(args: argparse.Namespace, result, train: TrainSet, eval_set: SampleSet) -> None:
    from eval.report import ReportInputs, write_report

    algorithm = train.algorithm
    meta = eval_set.metadata
    facts = [
        ("eval file", f"{args.eval_file} ({len(eval_set.ids)} clips)"),
        ("train file", f"{args.train_file} ({len(train.y)} clips)"),
        ("selection algorithm", algorithm or "not recorded"),
        ("language", meta.language or "not recorded"),
        ("embedding", f"{train.x.shape[1]}-d, backend {meta.backend or train.backend or '?'}, "
                      f"model {meta.model_id or train.model_id or '?'}"),
        ("pool verified", "yes (--samples_file)" if args.samples_file else "no"),
    ]
    inputs = ReportInputs(
        result=result, label_names=eval_set.label_names, train_x=train.x, train_y=train.y,
        train_ids=train.ids, eval_x=eval_set.embeddings, eval_y=eval_set.labels,
        eval_keywords=eval_set.keywords,
        title=f"{args.train_file} scored on {args.eval_file}", facts=facts)
    path = write_report(args.report, inputs, args.report_projection)
    print(f"report: {path}")


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.train_size is not None and args.train_size < 1:
        raise InputError(f"--train_size must be at least 1, got {args.train_size}")
    return run(args)


def main(argv: list[str] | None = None) -> int:
    """``python -m eval``: exit status as in :mod:`protos.errors`, errors as one
    ``python -m eval: error: ...`` line on stderr."""
    return run_cli(PROG, _main, argv)
