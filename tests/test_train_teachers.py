"""train-embedding with a second teacher (EfficientWord-Net targets) and unlabelled real windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_model import speechlike_clips, train_tiny


class _ProjectionTeacher:
    """A cheap stand-in for EfficientWord-Net: a fixed random projection of the clip's spectrum."""

    dim = 16
    identity = "projection-teacher"

    def embed(self, clips):
        spec = np.abs(np.fft.rfft(np.asarray(clips, np.float64), axis=1))[:, :4000]
        w = np.random.default_rng(0).standard_normal((spec.shape[1], self.dim))
        return (np.log1p(spec) @ w).astype(np.float32)


@pytest.fixture
def teacher_inputs(tiny_model_run, tmp_path, monkeypatch):
    """(corpus, cache dir, EWN-targets dir, unlabelled-windows dir), the stand-in teacher patched in."""
    import embedding_model.ewn as ewn

    monkeypatch.setattr(ewn, "EfficientWordNetEmbedder", _ProjectionTeacher)
    corpus = Path(json.loads((tiny_model_run / "plan.json").read_text())["corpus"])
    targets = tmp_path / "ewn"
    for lang in ("es", "en"):
        ewn.corpus_targets(corpus, lang, targets, _ProjectionTeacher(), progress=False)
    windows = tmp_path / "windows"
    windows.mkdir()
    np.save(windows / "windows.npy", np.round(speechlike_clips(6, seed=3) * 32767).astype(np.int16))
    return corpus, tiny_model_run / "cache", targets, windows


def test_both_teachers_and_unlabelled_windows_train_and_resume(teacher_inputs, tmp_path, capsys):
    corpus, cache, targets, windows = teacher_inputs
    run = tmp_path / "run"
    extra = ["--cache-dir", str(cache), "--ewn-targets", str(targets), "--ewn-dims", "8",
             "--unlabelled", str(windows)]
    assert train_tiny(corpus, run, *extra, "--max-minutes", "0") == 0
    err = capsys.readouterr().err
    assert "6 real-speech windows" in err and "teacher targets of 104 dims" in err
    assert train_tiny(corpus, run, *extra) == 0
    assert "resumed from" in capsys.readouterr().err
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and len(state["teacher_mean"]) == 96 + 8
    rows = (run / "curves.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs; losses finite
    assert "nan" not in (run / "curves.csv").read_text().lower()
    # The windows' features and openWakeWord targets were cached beside them.
    assert list(windows.glob("features-v2-*.npy")) and (windows / "oww-bare-8.npy").is_file()


def test_missing_ewn_targets_is_one_clear_error(tiny_model_run, tmp_path, capsys):
    corpus = Path(json.loads((tiny_model_run / "plan.json").read_text())["corpus"])
    code = train_tiny(corpus, tmp_path / "run", "--cache-dir", str(tiny_model_run / "cache"),
                      "--ewn-targets", str(tmp_path / "none"))
    err = capsys.readouterr().err
    assert code == 1 and "python -m embedding_model.ewn --corpus" in err and "Traceback" not in err


def test_unlabelled_rows_get_no_class_loss():
    import tensorflow as tf

    from embedding_model.train_config import TrainConfig
    from embedding_model.trainer import Trainer

    config = TrainConfig(corpus=Path("."), run_dir=Path("."), model_size="tiny")
    trainer = Trainer(config, n_classes=5, steps_per_epoch=1, teacher_mean=np.zeros(4, np.float32),
                      teacher_std=np.ones(4, np.float32))
    cosines = tf.constant(np.random.default_rng(0).uniform(-1, 1, (3, 5)), tf.float32)
    tpred = tf.zeros((3, 4))
    t = tf.ones((3, 4))
    has_t = tf.ones(3)
    ce, distill = trainer._losses(cosines, tpred, tf.constant([-1, -1, -1]), t, has_t)
    assert float(ce) == 0.0 and float(distill) == pytest.approx(1.0)
    ce_one, _ = trainer._losses(cosines, tpred, tf.constant([2, -1, -1]), t, has_t)
    ce_first, _ = trainer._losses(cosines[:1], tpred[:1], tf.constant([2]), t[:1], has_t[:1])
    assert float(ce_one) == pytest.approx(float(ce_first)) and float(ce_one) > 0
