"""Shipping a trained embedding: ``RUN_DIR/export``, and with ``--ship-to`` every format.

``RUN_DIR/export`` always gets the Keras embedder (waveforms -> 1024-d) with its
metadata and ``holdout.json``. A shipping directory (``--ship-to``, e.g. ``models``)
also gets the SavedModel and TFLite exports (:mod:`embedding_model.export`), the
compact resumable checkpoint with its plan, and the training curves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedding_model.plan import TrainingPlan
from embedding_model.train_config import TrainConfig, TrainingError, log
from embedding_model.trainer import Trainer, has_checkpoint, read_checkpoint_state
from protos.atomic import atomic_write_bytes


def ship(config: TrainConfig, plan: TrainingPlan, trainer: Trainer, state: dict, info: dict,
         ship_to: Path | None) -> Path:
    """Export the current weights to ``RUN_DIR/export`` and, when ``ship_to`` is given, every format there.

    Returns:
        The export directory, ``RUN_DIR/export``.
    """
    from embedding_model.export import calibration_clips, export_all, save_embedder

    export_dir = config.run_dir / "export"
    save_embedder(trainer.backbone, export_dir, info, output_gain=config.output_gain)
    plan.save(export_dir / "holdout.json")
    if ship_to is not None:
        export_all(export_dir, ship_to, calibration=calibration_clips(plan.corpus, n=200, seed=config.seed))
        ship_checkpoint(ship_to, plan, trainer, state)
        plan.save(ship_to / "holdout.json")
        for name in ("curves.csv", "curves.png"):
            if (config.run_dir / name).is_file():
                atomic_write_bytes(ship_to / name, (config.run_dir / name).read_bytes())
    return export_dir


def ship_checkpoint(ship_to: Path, plan: TrainingPlan, trainer: Trainer, state: dict) -> None:
    """The compact resumable checkpoint (a few MB) in ``ship_to/checkpoint``, with its plan."""
    directory = ship_to / "checkpoint"
    trainer.save_checkpoint(directory, state, compact=True)
    plan.save(directory / "plan.json")


def training_info(config: TrainConfig, plan: TrainingPlan, state: dict, n_train: int | None) -> dict:
    """What the exported model records about its training (``mswc_embedding.json``)."""
    return {
        "plan_digest": plan.digest(), "classes": len(plan.classes), "languages": plan.langs,
        "epochs_done": state["epoch"], "step_in_epoch": state["step_in_epoch"], "global_step": state["global_step"],
        "training_minutes": round(state["elapsed_s"] / 60, 1),
        "training_clips": n_train, "options": config.options(),
    }


def export_only(config: TrainConfig, plan: TrainingPlan) -> int:
    """``--export-only``: ship ``RUN_DIR``'s latest checkpoint without training."""
    if not has_checkpoint(config.checkpoint_dir):
        raise TrainingError(f"--export-only: no checkpoint in {config.checkpoint_dir} yet")
    saved = read_checkpoint_state(config.checkpoint_dir)
    trainer = Trainer(config, len(plan.classes), 1, np.array(saved["teacher_mean"], np.float32),
                      np.array(saved["teacher_std"], np.float32))
    state = trainer.load_checkpoint(config.checkpoint_dir)
    export_dir = ship(config, plan, trainer, state, training_info(config, plan, state, None), config.ship_to)
    log(f"exported checkpoint of epoch {state['epoch']} step {state['step_in_epoch']} to {export_dir}"
        + (f", shipped to {config.ship_to}" if config.ship_to else ""))
    return 0
