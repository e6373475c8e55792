"""Unlabelled real-speech windows: which files are used, how they are cut, what is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from embedding_model import unlabelled
from embedding_model.unlabelled import UnlabelledSource, collect_files, load_windows, windows_of


def test_short_speech_gives_one_centred_window():
    speech = np.ones(6000, np.float32)
    [(start, window)] = windows_of(speech)
    assert start == -5000 and window.shape == (16000,)
    assert window[:5000].sum() == 0 and window[5000:11000].sum() == 6000 and window[11000:].sum() == 0


def test_long_speech_is_cut_every_half_second_up_to_its_end():
    speech = np.arange(30000, dtype=np.float32)
    cuts = windows_of(speech)
    assert [s for s, _ in cuts] == [0, 8000, 14000]
    assert cuts[-1][1][-1] == 29999
    assert all(w.shape == (16000,) for _, w in cuts)


def _fake_package(cache, package, files):
    root = cache / "pkgs" / package
    root.mkdir(parents=True)
    (root / ".complete").write_text(json.dumps({"deb": f"{package}_1_all.deb", "bytes": 1, "sha256": "0"}))
    for rel, y in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), y, 16000)


def _word(freq, seconds=0.4, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    y = np.concatenate([np.zeros(3000), 0.5 * np.sin(2 * np.pi * freq * np.arange(n) / 16000), np.zeros(3000)])
    return (y + 1e-4 * rng.standard_normal(y.size)).astype(np.float32)


@pytest.fixture
def fake_sources(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _fake_package(cache, "letters-data", {
        "share/de/alpha/a.wav": _word(200),
        "share/de/alpha/b.wav": _word(300, seconds=1.6),
        "share/en/alpha/a.wav": _word(400),        # a benchmark speaker: left out
        "share/nl/alpha/a.wav": _word(200),        # same bytes as de/a: kept once
        # Two syllables 1.6 s apart: the windows inside the pause between them are dropped.
        "share/de/syllab/ba.wav": np.concatenate([_word(250, 0.3), np.zeros(26000, np.float32),
                                                  _word(250, 0.3, seed=1)]),
    })
    sources = (UnlabelledSource("letters-data", "share", "GPL-2+", ("en",)),)
    monkeypatch.setattr(unlabelled, "SOURCES", sources)
    return cache, sources


def test_excluded_languages_and_duplicates_are_left_out(fake_sources):
    cache, sources = fake_sources
    files = collect_files(cache, sources)
    assert [(lang, path.name) for _, lang, path in files] == [("de", "a.wav"), ("de", "b.wav"), ("de", "ba.wav")]


def test_build_writes_windows_index_and_manifest(fake_sources, tmp_path):
    cache, _ = fake_sources
    out = tmp_path / "out"
    manifest = unlabelled.main(["--out", str(out), "--cache-dir", str(cache), "--no-progress"])
    assert manifest == 0
    windows = load_windows(out)
    # a.wav: one window; b.wav (1.6 s of tone after trimming) -> windows at 0, 0.5 s and its end;
    # ba.wav (2.6 s from first to last syllable after trimming) -> 5 windows, the two that
    # fall wholly inside the pause dropped.
    assert windows.shape == (7, 16000) and windows.dtype == np.float32
    assert np.all(np.sqrt(np.mean(windows**2, axis=1)) > 10 ** (-50 / 20))
    assert np.max(np.abs(windows)) <= 1.0 and np.max(np.abs(windows[0])) > 0.9
    rows = (out / "windows.csv").read_text().splitlines()
    assert rows[0] == "row,package,language,file,start" and len(rows) == 8
    assert all(",en," not in r for r in rows)
    info = json.loads((out / "manifest.json").read_text())
    assert info["windows"] == 7 and info["windows_per_language"] == {"letters-data:de": 7}


def test_load_windows_says_how_to_make_them(tmp_path):
    with pytest.raises(Exception, match="embedding_model.unlabelled"):
        load_windows(tmp_path)


def test_distillation_set_gives_views_and_teacher_targets_and_caches_them(fake_sources, tmp_path):
    pytest.importorskip("onnxruntime")
    from embedding_model.oww import OpenWakeWordMissing
    from embedding_model.unlabelled import distillation_set

    cache, _ = fake_sources
    out = tmp_path / "out"
    unlabelled.main(["--out", str(out), "--cache-dir", str(cache), "--no-progress"])
    try:
        first = distillation_set(out, views=3, seed=1, teacher="bare:8", progress=False)
    except OpenWakeWordMissing:
        pytest.skip("openwakeword extra not installed")
    feats, oww = first["features"], first["oww"]
    assert feats.shape == (7, 3, 49, 40) and feats.dtype == np.float16
    assert oww.shape == (7, 96) and np.all(np.any(oww != 0, axis=1))
    assert not np.array_equal(feats[0, 0], feats[0, 1])  # views differ
    again = distillation_set(out, views=3, seed=1, teacher="bare:8", progress=False)
    assert np.array_equal(again["features"], feats) and np.array_equal(again["oww"], oww)
    other = distillation_set(out, views=3, seed=2, teacher=None, progress=False)
    assert "oww" not in other and not np.array_equal(other["features"], feats)
