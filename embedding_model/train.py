"""``train-embedding``: train the MSWC-style keyword classifier on an MSWC-layout corpus.

One command runs every stage, each resumable and reused when already done::

    train-embedding --corpus /work/data/train-corpus --run-dir /work/data/runs/main \\
        --cache-dir /work/data/cache --ship-to models

1. plan: classes (the N most frequent words per language), held-out words (all
   number words plus a seeded sample), held-out languages and voices (``plan.json``;
   :mod:`embedding_model.plan`);
2. cache: K channel-augmented log-mel views per training clip and openWakeWord teacher
   targets, one shard per language (:mod:`embedding_model.cache`, gathered by
   :mod:`embedding_model.train_data`);
3. train: AM-softmax with label smoothing on a cosine head, plus distillation of
   openWakeWord's embedding, SpecAugment (tensorflow-io) on the fly; checkpoints every
   few minutes (``RUN_DIR/checkpoint``), curves in ``RUN_DIR/curves.csv`` and
   ``curves.png``; rerunning the same command resumes (:mod:`embedding_model.trainer`);
4. export: the embedding model (waveforms -> 1024-d) to ``RUN_DIR/export`` and, with
   ``--ship-to``, every format plus the small resumable checkpoint to that directory
   (:mod:`embedding_model.ship`).

The flags make one frozen :class:`~embedding_model.train_config.TrainConfig` that every
stage reads. Exit status (:mod:`protos.errors`): 0 done (or time budget reached with a
checkpoint saved), 1 bad input, 2 usage, 3 environment, 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from embedding_model.plan import TrainingPlan, make_plan
from embedding_model.train_config import PROG, TrainConfig, TrainingError, log, parse_config
from protos.errors import DataperfSpeechError, run_cli


def main(argv: list[str] | None = None) -> int:
    """Run ``train-embedding``; returns the exit status."""
    return run_cli(PROG, lambda a: run(parse_config(a)), argv)


def run(config: TrainConfig) -> int:
    """Every stage of a run, each reused when already done."""
    if not config.corpus.is_dir():
        raise TrainingError(f"--corpus {config.corpus} is not a directory (expected an MSWC-layout corpus root)")
    config.run_dir.mkdir(parents=True, exist_ok=True)
    config.cache_root.mkdir(parents=True, exist_ok=True)
    plan = plan_stage(config)
    if config.export_only:
        from embedding_model.ship import export_only

        return export_only(config, plan)
    from embedding_model.train_data import load_training_set

    data = load_training_set(config, plan)
    if config.cache_only:
        return 0
    return train_and_ship(config, plan, data)


def plan_stage(config: TrainConfig) -> TrainingPlan:
    """``RUN_DIR/plan.json``: made on the first run, reused (and checked) on every later one."""
    plan_path = config.run_dir / "plan.json"
    if plan_path.is_file():
        plan = TrainingPlan.load(plan_path)
        if Path(plan.corpus) != config.corpus.resolve():
            raise TrainingError(f"{plan_path} was made for corpus {plan.corpus}; use a new --run-dir for {config.corpus}")
    else:
        try:
            plan = make_plan(
                config.corpus,
                langs=config.langs,
                words_per_lang=config.words_per_lang,
                holdout_langs=config.holdout_langs,
                n_holdout_langs=config.n_holdout_langs,
                holdout_word_frac=config.holdout_word_frac,
                holdout_engines=config.holdout_engines,
                holdout_voice_frac=config.holdout_voice_frac,
                min_clips=config.min_clips,
                seed=config.seed,
            )
        except (ValueError, OSError) as exc:
            if isinstance(exc, DataperfSpeechError):
                raise
            # Options make_plan cannot honour (e.g. a fraction above 1), an unreadable file.
            raise TrainingError(str(exc)) from exc
        plan.save(plan_path)
    log(f"plan: {len(plan.langs)} training languages, {len(plan.classes)} classes, held out: "
        f"languages {plan.holdout_langs}, engines {plan.holdout_engines}, {len(plan.holdout_voices)} voices")
    return plan


def train_and_ship(config: TrainConfig, plan: TrainingPlan, data) -> int:
    """Train, then export; ship the compact checkpoint after every epoch when ``--ship-to`` is given."""
    from embedding_model.ship import ship, ship_checkpoint, training_info
    from embedding_model.trainer import fit, has_checkpoint

    if config.init_from is not None and not has_checkpoint(config.checkpoint_dir):
        check_init_plan(config.init_from, plan)
    on_epoch_end = None
    if config.ship_to is not None:
        def on_epoch_end(trainer, state):
            ship_checkpoint(config.ship_to, plan, trainer, state)

    result = fit(config, len(plan.classes), data, on_epoch_end)
    info = training_info(config, plan, result.state, result.n_train)
    if result.budget_hit:
        # A partly trained model goes to RUN_DIR/export only; the shipped model is replaced
        # when the run finishes (or explicitly with --export-only --ship-to).
        export_dir = ship(config, plan, result.trainer, result.state, info, ship_to=None)
        if config.ship_to is not None:
            ship_checkpoint(config.ship_to, plan, result.trainer, result.state)
    else:
        export_dir = ship(config, plan, result.trainer, result.state, info, ship_to=config.ship_to)
    state = result.state
    done = "stopped at the time budget (rerun to resume)" if result.budget_hit else "finished"
    log(f"{done}: epoch {state['epoch']}, model in {export_dir}"
        + (f", shipped to {config.ship_to}" if config.ship_to else ""))
    return 0


def check_init_plan(directory: Path, plan: TrainingPlan) -> None:
    """``--init-from``'s plan must have this plan's class list, name for name, and hold out
    everything this plan holds out: weights trained on a clip the new run calls held out
    would make its held-out measurements lie.

    The plan is read from ``plan.json`` in the checkpoint directory (a shipped checkpoint)
    or in its parent (another run's ``RUN_DIR/checkpoint``).
    """
    found = [d / "plan.json" for d in (directory, directory.parent) if (d / "plan.json").is_file()]
    if not found:
        raise TrainingError(f"--init-from {directory}: no plan.json beside the checkpoint or in its run "
                            "directory, so its classes cannot be matched to this run's")
    theirs = TrainingPlan.load(found[0])
    if theirs.classes != plan.classes:
        pairs = zip(theirs.classes, plan.classes)
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(theirs.classes), len(plan.classes)))
        raise TrainingError(f"--init-from {directory}: its {len(theirs.classes)} classes differ from this run's "
                            f"{len(plan.classes)} (first at index {first}); fine-tuning needs the same class list")
    for what, mine, old in (("languages", plan.holdout_langs, theirs.holdout_langs),
                            ("voices", plan.holdout_voices, theirs.holdout_voices),
                            ("words", [f"{k}/{w}" for k, ws in plan.holdout_words.items() for w in ws],
                             [f"{k}/{w}" for k, ws in theirs.holdout_words.items() for w in ws])):
        trained_on = sorted(set(mine) - set(old))
        if trained_on:
            raise TrainingError(f"--init-from {directory}: {len(trained_on)} held-out {what} of this plan "
                                f"(e.g. {trained_on[0]}) were not held out from that checkpoint's training; "
                                "use its plan (same --seed and options on the same corpus)")


if __name__ == "__main__":
    sys.exit(main())
