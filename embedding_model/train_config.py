"""``train-embedding``'s configuration: its flags, and the frozen :class:`TrainConfig` they make.

The command line is parsed once into a :class:`TrainConfig`, checked there, and never
changed afterwards: every stage (plan, cache, training, shipping) reads the same
object. Tests and scripts can build one directly::

    config = TrainConfig(corpus=Path("corpus"), run_dir=Path("runs/a"), model_size="tiny")
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

from protos.errors import EXIT_STATUS_HELP, InputError

PROG = "train-embedding"

MODEL_SIZES = {
    "base": {},
    # For tests and smoke runs: trains in seconds, same interface (1024-d output).
    "tiny": {"widths": (16, 16, 24, 24, 24, 32), "stem_width": 8, "pooled_channels": 16},
    # Twice base's channels (about 3x its multiply-adds): does a larger student copy its
    # teacher better, on real voices too?
    "wide": {"widths": (128, 128, 256, 256, 256, 320), "stem_width": 64, "pooled_channels": 128},
}
EMBEDDINGS = ("ln", "relu")
INPUT_NORMS = ("clip", "band")
TEACHER_CONTEXTS = ("centered2s", "bare")


class TrainingError(InputError):
    """The corpus, the options or a checkpoint cannot be used for training (exit status 1)."""


def log(message: str) -> None:
    """One time-stamped progress line of the run on stderr."""
    print(f"[{PROG} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one ``train-embedding`` run is told (field names are the flags' names).

    Corpus and held-out data:
        corpus: MSWC-layout corpus root.
        langs: languages to use; None = every language in the corpus.
        words_per_lang: the N most frequent words per language considered as classes.
        holdout_langs: languages never trained on; None = ``n_holdout_langs`` at random.
        n_holdout_langs: languages held out at random when ``holdout_langs`` is None.
        holdout_word_frac: fraction of the frequent words held out (number words always are).
        holdout_engines: TTS engines (or ``engine:voice`` families) whose voices are all held out.
        holdout_voice_frac: fraction of the other voices held out.
        min_clips: valid clips a word needs to be a class.

    Run and cache:
        run_dir: plan, checkpoints, curves and exports.
        cache_dir: the feature cache; None = ``run_dir/cache``.
        views: log-mel views cached per clip (view 0 clean).
        teacher: openWakeWord teacher ``"context:window_step"``, or None.
        ewn_targets: directory of cached EfficientWord-Net targets (``python -m
            embedding_model.ewn --corpus ... --out DIR``), the second teacher; None: none.
        ewn_dims: the EfficientWord-Net targets are projected on their first ``ewn_dims``
            principal components (fitted on the training clips) before distillation.
        unlabelled: directory of unlabelled real-speech windows (``python -m
            embedding_model.unlabelled``), mixed into training with the distillation
            loss only; None: none.
        ewn_windows_only: EfficientWord-Net teaches on the unlabelled windows only (its
            targets cached beside them); the corpus clips keep openWakeWord's.
        workers: processes for the cache.
        cache_only, export_only: stop after the cache; export the latest checkpoint only.

    Model and training:
        model_size, embedding, epochs, batch_size, lr, margin, scale, label_smoothing,
        distill_weight, head_dim, specaugment, speaker_warp,
        clean_only, seed, max_minutes, checkpoint_minutes, resume_from, ship_to,
        no_progress: as the flags of the same names.
        init_from: a checkpoint whose weights start a new run (fine-tuning): its plan must
            have this plan's class list and hold out all it holds out; the optimizer,
            learning-rate schedule and epoch count start afresh. Ignored once ``RUN_DIR`` has its own checkpoint.
        output_gain: the exported model's output is multiplied by this inside the graph
            (``embedding_model.export.set_output_gain``); training is unaffected.
    """

    corpus: Path
    run_dir: Path
    langs: tuple[str, ...] | None = None
    words_per_lang: int = 300
    holdout_langs: tuple[str, ...] | None = None
    n_holdout_langs: int = 3
    holdout_word_frac: float = 0.1
    holdout_engines: tuple[str, ...] = ("flite",)
    holdout_voice_frac: float = 0.1
    min_clips: int = 8
    cache_dir: Path | None = None
    views: int = 4
    teacher: str | None = "centered2s:16"
    ewn_targets: Path | None = None
    ewn_dims: int = 96
    unlabelled: Path | None = None
    ewn_windows_only: bool = False
    workers: int = 2
    cache_only: bool = False
    export_only: bool = False
    model_size: str = "base"
    embedding: str = "ln"
    input_norm: str = "clip"
    epochs: int = 40
    batch_size: int = 256
    lr: float = 3e-3
    margin: float = 0.2
    scale: float = 30.0
    label_smoothing: float = 0.1
    distill_weight: float = 1.0
    head_dim: int = 128
    specaugment: bool = True
    speaker_warp: float = 0.0
    clean_only: bool = False
    seed: int = 0
    max_minutes: float | None = None
    checkpoint_minutes: float = 5.0
    resume_from: Path | None = None
    init_from: Path | None = None
    ship_to: Path | None = None
    output_gain: float = 1.0
    no_progress: bool = False

    def __post_init__(self) -> None:
        if self.views < 1 or self.batch_size < 2 or self.epochs < 1:
            raise TrainingError("--views and --epochs must be >= 1 and --batch-size >= 2")
        for name in ("holdout_word_frac", "holdout_voice_frac", "label_smoothing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise TrainingError(f"--{name.replace('_', '-')} must be between 0 and 1, got {getattr(self, name)}")
        if self.teacher is not None:
            context, _, step = self.teacher.partition(":")
            if context not in TEACHER_CONTEXTS or not step.isdigit():
                raise TrainingError(f"--teacher {self.teacher!r}: expected 'centered2s:N', 'bare:N' or 'none'")
        if not 0.0 <= self.speaker_warp < 0.5:
            raise TrainingError(f"--speaker-warp must be at least 0 and below 0.5, got {self.speaker_warp}")
        if self.ewn_dims < 1:
            raise TrainingError(f"--ewn-dims must be >= 1, got {self.ewn_dims}")
        if self.unlabelled is not None and self.teacher is None and not self.uses_ewn:
            raise TrainingError("--unlabelled windows are distillation-only: they need --teacher or --ewn-targets")
        if self.ewn_windows_only and (self.unlabelled is None or self.ewn_targets is not None):
            raise TrainingError("--ewn-windows-only needs --unlabelled DIR and replaces --ewn-targets: give one of them")
        if self.init_from is not None and self.resume_from is not None:
            raise TrainingError("--init-from starts a new schedule, --resume-from continues one: give one of them")
        if not (math.isfinite(self.output_gain) and self.output_gain > 0):
            raise TrainingError(f"--output-gain must be a positive number, got {self.output_gain}")
        if self.model_size not in MODEL_SIZES:
            raise TrainingError(f"--model-size {self.model_size!r}: choose one of {', '.join(sorted(MODEL_SIZES))}")
        if self.embedding not in EMBEDDINGS:
            raise TrainingError(f"--embedding {self.embedding!r}: choose one of {', '.join(EMBEDDINGS)}")
        if self.input_norm not in INPUT_NORMS:
            raise TrainingError(f"--input-norm {self.input_norm!r}: choose one of {', '.join(INPUT_NORMS)}")

    @property
    def uses_ewn(self) -> bool:
        """EfficientWord-Net is a teacher (on the corpus clips, or on the unlabelled windows only)."""
        return self.ewn_targets is not None or self.ewn_windows_only

    @property
    def cache_root(self) -> Path:
        """Where the feature cache lives."""
        return self.cache_dir or self.run_dir / "cache"

    @property
    def checkpoint_dir(self) -> Path:
        """The run's own (full-precision) checkpoint."""
        return self.run_dir / "checkpoint"

    def options(self) -> dict[str, str]:
        """Every field as text, for the record shipped beside the model."""
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _csv_list(text: str | None) -> tuple[str, ...] | None:
    """``"es,en"`` -> ``("es", "en")``; None stays None (flag not given); ``""`` -> ``()``."""
    if text is None:
        return None
    return tuple(x for x in text.split(",") if x)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
"""Every flag's default is its field's: declared once, in :class:`TrainConfig`."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train the MSWC-style keyword-classifier embedding (waveform -> 1024-d) on an "
        "MSWC-layout corpus. Rerunning the same command resumes from RUN_DIR/checkpoint.",
        epilog=EXIT_STATUS_HELP,
    )
    g = p.add_argument_group("corpus and held-out data")
    g.add_argument("--corpus", required=True, type=Path,
                   help="MSWC-layout corpus root ({lang}_splits.csv, {lang}/clips/...)")
    g.add_argument("--langs", default=None, help="comma-separated languages (default: all in the corpus)")
    g.add_argument("--words-per-lang", type=int, default=_DEFAULTS["words_per_lang"],
                   help="N most frequent words per language considered as classes (default: %(default)s)")
    g.add_argument("--holdout-langs", default=None,
                   help="comma-separated languages never trained on (default: --n-holdout-langs at random)")
    g.add_argument("--n-holdout-langs", type=int, default=_DEFAULTS["n_holdout_langs"],
                   help="languages held out at random if --holdout-langs is not given (default: %(default)s)")
    g.add_argument("--holdout-word-frac", type=float, default=_DEFAULTS["holdout_word_frac"],
                   help="fraction of the frequent words held out; number words always are (default: %(default)s)")
    g.add_argument("--holdout-engines", default=",".join(_DEFAULTS["holdout_engines"]),
                   help="comma-separated TTS engines whose voices are all held out, '' for none (default: %(default)s)")
    g.add_argument("--holdout-voice-frac", type=float, default=_DEFAULTS["holdout_voice_frac"],
                   help="fraction of the other voices held out (default: %(default)s)")
    g.add_argument("--min-clips", type=int, default=_DEFAULTS["min_clips"],
                   help="valid clips a word needs to be a class (default: %(default)s)")
    g = p.add_argument_group("run and cache")
    g.add_argument("--run-dir", required=True, type=Path, help="where plan, checkpoints, curves and exports go")
    g.add_argument("--cache-dir", type=Path, default=None,
                   help="feature cache, shared between runs (default: RUN_DIR/cache)")
    g.add_argument("--views", type=int, default=_DEFAULTS["views"],
                   help="log-mel views cached per clip, view 0 clean, the others augmented (default: %(default)s)")
    g.add_argument("--teacher", default=_DEFAULTS["teacher"],
                   help="openWakeWord teacher 'context:window_step' (context centered2s or bare), "
                   "or 'none' (default: %(default)s)")
    g.add_argument("--ewn-targets", type=Path, default=None, metavar="DIR",
                   help="second teacher: EfficientWord-Net targets cached by python -m embedding_model.ewn "
                   "--corpus CORPUS --langs ... --out DIR (default: none)")
    g.add_argument("--ewn-dims", type=int, default=_DEFAULTS["ewn_dims"],
                   help="principal components of the EfficientWord-Net targets the student predicts "
                   "(default: %(default)s)")
    g.add_argument("--unlabelled", type=Path, default=None, metavar="DIR",
                   help="unlabelled real-speech windows (python -m embedding_model.unlabelled --out DIR), "
                   "trained on with the distillation loss only (default: none)")
    g.add_argument("--ewn-windows-only", action="store_true",
                   help="EfficientWord-Net teaches on the --unlabelled windows only (targets from "
                   "python -m embedding_model.ewn --windows DIR); the corpus clips keep openWakeWord's")
    g.add_argument("--workers", type=int, default=_DEFAULTS["workers"],
                   help="processes for the cache (default: %(default)s)")
    g.add_argument("--cache-only", action="store_true", help="build the plan and cache, then stop")
    g.add_argument("--export-only", action="store_true",
                   help="export (and with --ship-to, ship) RUN_DIR's latest checkpoint without training; "
                   "safe while the run is training")
    g = p.add_argument_group("model and training")
    g.add_argument("--model-size", choices=sorted(MODEL_SIZES), default=_DEFAULTS["model_size"],
                   help="backbone size (default: %(default)s)")
    g.add_argument("--embedding", choices=EMBEDDINGS, default=_DEFAULTS["embedding"],
                   help="embedding layer: linear+LayerNorm (ln) or Dense+BN+ReLU (relu) (default: %(default)s)")
    g.add_argument("--input-norm", choices=INPUT_NORMS, default=_DEFAULTS["input_norm"],
                   help="log-mel normalisation inside the model: the clip's mean level (clip) or each "
                   "band's mean over time (band: also removes a fixed channel) (default: %(default)s)")
    g.add_argument("--epochs", type=int, default=_DEFAULTS["epochs"],
                   help="epochs; the learning-rate schedule spans them all (default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=_DEFAULTS["batch_size"],
                   help="clips per training step; lowered to the number of training clips "
                   "when there are fewer (default: %(default)s)")
    g.add_argument("--lr", type=float, default=_DEFAULTS["lr"],
                   help="peak learning rate, Adam with cosine decay (default: %(default)s)")
    g.add_argument("--margin", type=float, default=_DEFAULTS["margin"],
                   help="AM-softmax additive margin, 0 for a plain cosine softmax (default: %(default)s)")
    g.add_argument("--scale", type=float, default=_DEFAULTS["scale"], help="AM-softmax scale (default: %(default)s)")
    g.add_argument("--label-smoothing", type=float, default=_DEFAULTS["label_smoothing"],
                   help="label smoothing of the class targets, 0 for none (default: %(default)s)")
    g.add_argument("--distill-weight", type=float, default=_DEFAULTS["distill_weight"],
                   help="weight of the teacher-regression loss, 0 disables it (default: %(default)s)")
    g.add_argument("--head-dim", type=int, default=_DEFAULTS["head_dim"],
                   help="rank of the class head (default: %(default)s)")
    g.add_argument("--specaugment", type=int, default=int(_DEFAULTS["specaugment"]), choices=[0, 1],
                   help="1: SpecAugment masks on the fly, 0: none (default: %(default)s)")
    g.add_argument("--speaker-warp", type=float, default=_DEFAULTS["speaker_warp"],
                   help="warp each training clip's log-mel by random factors in [1-W, 1+W]: frequency "
                   "(vocal tract length) and time (speaking rate); 0: none (default: %(default)s)")
    g.add_argument("--clean-only", action="store_true",
                   help="train on the clean view only (ablation: no channel augmentation)")
    g.add_argument("--seed", type=int, default=_DEFAULTS["seed"],
                   help="seed of the plan's samples, the augmentation and the training order (default: %(default)s)")
    g.add_argument("--max-minutes", type=float, default=None,
                   help="stop (with a checkpoint) after this many minutes; rerun to resume (default: no limit)")
    g.add_argument("--checkpoint-minutes", type=float, default=_DEFAULTS["checkpoint_minutes"],
                   help="minutes between checkpoints (default: %(default)s)")
    g.add_argument("--resume-from", type=Path, default=None,
                   help="start from this checkpoint directory (e.g. models/checkpoint) if RUN_DIR has none")
    g.add_argument("--init-from", type=Path, default=None,
                   help="fine-tune: start from this checkpoint's weights (its class list must equal the plan's) "
                   "with a new optimizer and schedule, if RUN_DIR has no checkpoint")
    g.add_argument("--ship-to", type=Path, default=None,
                   help="when done, export every format and the small checkpoint here (e.g. models)")
    g.add_argument("--output-gain", type=float, default=_DEFAULTS["output_gain"],
                   help="multiply the exported model's output by this inside the graph; training is "
                   "unaffected (default: %(default)s)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of a command line.

    Raises:
        SystemExit: a usage error (argparse's exit status 2) or ``--help``.
        TrainingError: values that parse but cannot be used.
    """
    args = vars(build_parser().parse_args(argv))
    teacher = None if args["teacher"].lower() == "none" else args["teacher"]
    # Flags map to fields of the same name; these few are parsed into their types.
    parsed = {
        "langs": _csv_list(args["langs"]) or None,
        "holdout_langs": _csv_list(args["holdout_langs"]),
        "holdout_engines": _csv_list(args["holdout_engines"]),
        "teacher": teacher,
        # Without a teacher there is nothing to distil (recorded as weight 0).
        "distill_weight": args["distill_weight"] if teacher or args["ewn_targets"] or args["ewn_windows_only"] else 0.0,
        "specaugment": bool(args["specaugment"]),
    }
    return TrainConfig(**{**args, **parsed})
