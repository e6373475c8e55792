"""The device spotter: embedding + fitted head as one TFLite model, scored like the Python path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedding_model.spotter import (LinearHead, DataPerfHead, Spotter, fit_head,
                                     load_train_set, make_backend, train_label_names)
from tests import spotter_helpers as h

pytest.importorskip("tensorflow")

KEYWORDS = 2


@pytest.fixture(scope="module")
def seeded_embedder_dir(tmp_path_factory):
    """A seeded, untrained tiny embedder (64-d) saved where the mswc backend loads it.

    Parity needs a real graph, not a good model: random weights keep the test fast and
    the same on every run.
    """
    import keras

    from embedding_model.export import save_embedder
    from embedding_model.model import ModelConfig, build_backbone

    keras.utils.set_random_seed(0)
    config = ModelConfig(widths=(16, 16, 24, 24, 24, 32), stem_width=8, pooled_channels=16,
                         embedding_dim=64)
    out = tmp_path_factory.mktemp("tiny_embedder")
    save_embedder(build_backbone(config), out)
    return out


@pytest.fixture(scope="module")
def tiny_spotter_data(seeded_embedder_dir, tmp_path_factory):
    """A train.npz of the tiny embedder over the tone keywords, and a tone recording."""
    rng = np.random.default_rng(0)
    freqs = [1500.0] * 8 + [600.0] * 8 + [h.NONTARGET_FREQ] * 5 + [None] * 4
    labels = np.array([1] * 8 + [2] * 8 + [0] * 9)
    clips = np.stack([h.clip(f, rng) for f in freqs])
    backend = make_backend("mswc", {"model": str(seeded_embedder_dir), "batch_size": 32})
    x = backend.embed(clips)
    train = tmp_path_factory.mktemp("tiny_spot") / "train.npz"
    np.savez(train, train_x=x, train_y=labels, label_names=np.asarray(h.LABEL_NAMES),
             backend=np.asarray("mswc"), model_id=np.asarray(backend.identity),
             embedding_dim=np.asarray(x.shape[1]))
    return backend, train, h.recording(h.EVENTS, h.SECONDS)


@pytest.mark.parametrize("kind", ["dataperf", "linear"])
def test_tflite_window_scores_match_the_python_path(tiny_spotter_data, tmp_path, kind):
    from embedding_model.spotter_export import (TFLiteSpotterModel, export_spotter, parity,
                                                probe_windows)

    backend, train_path, recording = tiny_spotter_data
    train = load_train_set(train_path)
    head = fit_head(train, kind, seeds=(5, 69))
    assert isinstance(head, DataPerfHead if kind == "dataperf" else LinearHead)
    out = export_spotter(backend.model, head, tmp_path / "spotter.tflite")
    windows = probe_windows(recording, hop=4000, limit=40)
    reference = Spotter(backend, head, train_label_names(train)).score_windows(windows)
    got = TFLiteSpotterModel(out).scores(windows)
    assert got.shape == (len(windows), KEYWORDS)
    # The scores must move (a constant track would make the cosine meaningless).
    assert reference.std(axis=0).min() > 0.05
    result = parity(reference, got)
    assert result["min_cosine"] >= 0.999, result
    assert result["min_correlation"] >= 0.99, result
    # libsvm stops its pairwise coupling at a tolerance; the graph solves it exactly.
    assert result["max_abs_diff"] < 1e-2, result


def test_export_command_writes_the_model_and_its_sidecar(tiny_spotter_data, seeded_embedder_dir,
                                                         tmp_path, capsys):
    from embedding_model.spotter_export import main

    _, train_path, _ = tiny_spotter_data
    out = tmp_path / "dev" / "kws.tflite"
    assert main(["--train-file", str(train_path), "--out", str(out), "--model",
                 str(seeded_embedder_dir), "--head", "linear"]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["keywords"] == train_label_names(load_train_set(train_path))[1:]
    assert sidecar["parity"]["min_cosine"] >= 0.999
    assert out.stat().st_size > 10_000
    assert "parity min cosine" in capsys.readouterr().out


def test_export_refuses_a_non_keras_backend(tmp_path, capsys):
    from embedding_model.spotter_export import main

    train = h.write_train_file(tmp_path / "train.npz")
    assert main(["--train-file", str(train), "--out", str(tmp_path / "x.tflite")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only the mswc backend" in err[0]
    assert not (tmp_path / "x.tflite").exists()
