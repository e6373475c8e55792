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
    has_t = tf.ones((3, 4))
    ce, distill = trainer._losses(cosines, tpred, tf.constant([-1, -1, -1]), t, has_t)
    assert float(ce) == 0.0 and float(distill) == pytest.approx(1.0)
    ce_one, _ = trainer._losses(cosines, tpred, tf.constant([2, -1, -1]), t, has_t)
    ce_first, _ = trainer._losses(cosines[:1], tpred[:1], tf.constant([2]), t[:1], has_t[:1])
    assert float(ce_one) == pytest.approx(float(ce_first)) and float(ce_one) > 0


def test_ewn_on_the_windows_only_teaches_there_and_keeps_openwakeword_on_the_corpus(teacher_inputs, tmp_path, capsys):
    from embedding_model.plan import TrainingPlan
    from embedding_model.train_config import parse_config
    from embedding_model.train_data import load_training_set
    from tests.fixtures_model import TINY_TRAIN_ARGS

    corpus, cache, _, windows = teacher_inputs
    run = tmp_path / "run"
    extra = ["--cache-dir", str(cache), "--ewn-dims", "4", "--unlabelled", str(windows), "--ewn-windows-only"]
    assert train_tiny(corpus, run, *extra) == 0
    err = capsys.readouterr().err
    assert "6 real-speech windows" in err and "teacher targets of 100 dims" in err
    assert "nan" not in (run / "curves.csv").read_text().lower()

    config = parse_config(["--corpus", str(corpus), "--run-dir", str(run), *TINY_TRAIN_ARGS, *extra])
    data = load_training_set(config, TrainingPlan.load(run / "plan.json"))
    mask = data.teacher_mask
    windows_rows = data.labels < 0
    assert data.teacher_parts == (96, 4) and windows_rows.sum() == 6
    # Corpus clips: openWakeWord's part only; windows: both teachers.
    assert np.all(mask[~windows_rows, :96] == 1) and np.all(mask[~windows_rows, 96:] == 0)
    assert np.all(mask[windows_rows] == 1)
    mean, std = data.teacher_stats()
    ewn_part = data.teacher[windows_rows, 96:]
    np.testing.assert_allclose(mean[96:], ewn_part.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(std[96:], ewn_part.std(0) + 1e-3, rtol=1e-4, atol=1e-4)


def test_ewn_windows_only_needs_windows_and_no_corpus_targets(tmp_path):
    from embedding_model.train_config import TrainingError, parse_config

    base = ["--corpus", str(tmp_path), "--run-dir", str(tmp_path / "run")]
    with pytest.raises(TrainingError, match="--ewn-windows-only"):
        parse_config([*base, "--ewn-windows-only"])
    with pytest.raises(TrainingError, match="--ewn-windows-only"):
        parse_config([*base, "--ewn-windows-only", "--unlabelled", "w", "--ewn-targets", "t"])
    assert parse_config([*base, "--ewn-windows-only", "--unlabelled", "w"]).uses_ewn


def test_each_teacher_part_has_its_own_mask():
    from embedding_model.train_data import TrainingSet

    teacher = np.array([[1.0, 2.0, 0.0, 0.0, 0.0],   # first teacher only
                        [0.0, 0.0, 3.0, 4.0, 5.0],   # second teacher only
                        [0.0, 0.0, 0.0, 0.0, 0.0],   # none
                        [3.0, 4.0, 1.0, 1.0, 1.0]], np.float32)
    data = TrainingSet(features=np.zeros((4, 1, 49, 40), np.float16), labels=np.zeros(4, np.int32),
                       teacher=teacher, is_val=np.zeros(4, bool), teacher_parts=(2, 3))
    np.testing.assert_array_equal(data.teacher_mask, [[1, 1, 0, 0, 0], [0, 0, 1, 1, 1],
                                                      [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]])
    mean, std = data.teacher_stats()
    np.testing.assert_allclose(mean, [2.0, 3.0, 2.0, 2.5, 3.0])  # rows with a target there only
    np.testing.assert_allclose(std, [1.001, 1.001, 1.001, 1.501, 2.001], rtol=1e-5)
    with pytest.raises(ValueError, match="do not add up"):
        _ = TrainingSet(features=data.features, labels=data.labels, teacher=teacher, is_val=data.is_val,
                        teacher_parts=(2, 2)).teacher_mask


def test_distillation_loss_counts_only_the_masked_dimensions():
    import tensorflow as tf

    from embedding_model.train_config import TrainConfig
    from embedding_model.trainer import Trainer

    config = TrainConfig(corpus=Path("."), run_dir=Path("."), model_size="tiny")
    trainer = Trainer(config, n_classes=3, steps_per_epoch=1, teacher_mean=np.zeros(4, np.float32),
                      teacher_std=np.ones(4, np.float32))
    cosines = tf.zeros((2, 3))
    tpred = tf.zeros((2, 4))
    t = tf.constant([[1.0, 1.0, 9.0, 9.0], [2.0, 2.0, 2.0, 2.0]])
    mask = tf.constant([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    _, distill = trainer._losses(cosines, tpred, tf.constant([0, 1]), t, mask)
    # (1 + 1 + 4 * 4) / 6 masked entries: the 9s never count.
    assert float(distill) == pytest.approx(18.0 / 6.0)
