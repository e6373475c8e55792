"""spot-keywords: detections at known times, streams equal files, a real pipe, refusals.

Runs on the TensorFlow-free band-energy backend with tone "keywords" (tests/spotter_helpers.py).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from embedding_model.spotter import (PeakPicker, Spotter, fit_head, load_train_set,
                                     make_backend, train_label_names)
from embedding_model.spotter_cli import main
from protos.errors import EXIT_STATUS_HELP
from tests import spotter_helpers as h

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    return h.write_train_file(tmp_path_factory.mktemp("spot") / "train.npz")


@pytest.mark.parametrize("head", ["dataperf", "linear"])
def test_finds_each_keyword_once_in_a_44k_wav(train_file, tmp_path, head, capsys):
    wav = tmp_path / "long.wav"
    sf.write(wav, np.stack([h.recording(h.EVENTS, h.SECONDS, sr=44100)] * 2, axis=1), 44100)
    out = tmp_path / "det.json"
    assert main(["--train-file", str(train_file), str(wav), "--out", str(out), "--head", head]) == 0
    document = json.loads(out.read_text())
    found, false = h.matches(document["detections"])
    assert (found, false) == (4, 0), document["detections"]
    assert document["head"] == head and document["keywords"] == ["high", "low"]
    assert abs(document["audio_seconds"] - h.SECONDS) < 0.01
    assert "real-time factor" in capsys.readouterr().err


def test_csv_to_stdout_and_several_files(train_file, tmp_path, capsys):
    first, second = tmp_path / "a.flac", tmp_path / "b.wav"
    sf.write(first, h.recording([(1.0, "low")], 4.0, sr=22050, seed=3), 22050)
    sf.write(second, h.recording([(2.0, "high")], 5.0, sr=16000, seed=4), 16000)
    assert main(["--train-file", str(train_file), str(first), str(second), "-q"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0] == "file,keyword,start,end,score"
    rows = [line.split(",") for line in lines[1:]]
    assert [(Path(r[0]).name, r[1]) for r in rows] == [("a.flac", "low"), ("b.wav", "high")]
    assert err == ""


def test_a_stream_in_odd_chunks_gives_the_file_detections(train_file):
    train = load_train_set(train_file)
    spotter = Spotter(make_backend("test-bands", {}), fit_head(train), train_label_names(train),
                      batch_size=7)
    audio = h.recording(h.EVENTS, h.SECONDS)
    expected = spotter.detect(audio, "x")
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.integers(0, len(audio), size=40))
    chunks = np.split(audio, cuts)
    assert list(spotter.stream(chunks, "x")) == expected
    assert len(expected) == 4
    # Shorter than a window: one zero-padded window, the same either way.
    short = h.recording([(0.1, "high")], 0.7)
    assert list(spotter.stream([short[:5000], short[5000:]], "x")) == spotter.detect(short, "x")


def test_peak_picker_smooths_and_respects_refractory():
    picker = PeakPicker(["k"], hop=1600, smooth=1, threshold=0.5, refractory=1.0)
    # Two peaks 0.3 s apart: one detection, at the higher peak.
    scores = np.array([0.1, 0.6, 0.9, 0.4, 0.8, 0.2, 0.1] + [0.1] * 10 + [0.7, 0.2])[:, None]
    found = picker.push(scores) + picker.flush()
    assert [(d.start, d.score) for d in found] == [(0.2, 0.9), (1.7, 0.7)]
    # A single spike is smoothed below the threshold with smooth=3.
    picker = PeakPicker(["k"], hop=1600, smooth=3, threshold=0.5, refractory=1.0)
    assert picker.push(np.array([0.0, 0.0, 0.9, 0.0, 0.0])[:, None]) + picker.flush() == []
    # A score that stays high fires once until it drops below the threshold.
    picker = PeakPicker(["k"], hop=1600, smooth=1, threshold=0.5, refractory=0.5)
    found = picker.push(np.full((40, 1), 0.8)) + picker.flush()
    assert len(found) == 1


def _reader(pipe, lines: queue.Queue) -> None:
    for line in iter(pipe.readline, b""):
        lines.put(line.decode())
    lines.put(None)


def test_stdin_pipe_prints_detections_as_they_happen(train_file):
    """A real pipe: the first keyword is printed before the rest of the stream is written."""
    code = ("import sys, tests.builder_helpers; from embedding_model.spotter_cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code, "--train-file", str(train_file),
                             "--stdin", "--rate", "8000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=REPO, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    audio = h.recording(h.EVENTS, h.SECONDS, sr=8000)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    half = 2 * 8000 * 7  # the first 7 s hold the first two keywords
    try:
        for start in range(0, half, 1600):
            proc.stdin.write(pcm[start : min(start + 1600, half)])
            proc.stdin.flush()
        assert lines.get(timeout=60).strip() == "file,keyword,start,end,score"
        first = lines.get(timeout=60)  # arrives while stdin is still open
        assert first is not None and first.split(",")[1] == "high"
        proc.stdin.write(pcm[half:])
        proc.stdin.close()
        rest = []
        while (line := lines.get(timeout=60)) is not None:
            rest.append(line)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    rows = [line.strip().split(",") for line in [first, *rest]]
    detections = [{"keyword": r[1], "start": float(r[2]), "end": float(r[3])} for r in rows]
    assert h.matches(detections) == (4, 0), rows
    assert "real-time factor" in proc.stderr.read().decode()


@pytest.mark.parametrize("kwargs, message", [
    ({"model_id": "another-model"}, "model ids differ"),
    ({"backend": "mswc-other"}, "backends differ"),
    ({"dim": 12}, "dims differ"),
])
def test_refuses_a_train_file_from_another_embedding(tmp_path, capsys, kwargs, message):
    train = h.write_train_file(tmp_path / "train.npz", **kwargs)
    wav = tmp_path / "a.wav"
    sf.write(wav, h.recording([], 2.0), 16000)
    argv = ["--train-file", str(train), str(wav)]
    if "backend" in kwargs:
        argv += ["--backend", "test-bands"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spot-keywords: error:") and message in err[0]


def test_bad_inputs_get_one_line_and_status(train_file, tmp_path, capsys):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really")
    assert main(["--train-file", str(train_file), str(junk)]) == 1
    assert "junk.wav" in capsys.readouterr().err
    assert main(["--train-file", str(tmp_path / "none.npz"), str(junk)]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["--train-file", str(train_file)]) == 1
    assert "no recordings" in capsys.readouterr().err
    assert main(["--train-file", str(train_file), str(junk), "--threshold", "0"]) == 1
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert EXIT_STATUS_HELP.split(";")[0] in " ".join(capsys.readouterr().out.split())


def test_offline_peaks_equal_the_streaming_picker():
    from embedding_model.spotter import peaks_at, smooth_scores

    rng = np.random.default_rng(5)
    # Wandering tracks without ties: runs above and below the thresholds, some long.
    scores = 1 / (1 + np.exp(-np.cumsum(rng.normal(0, 0.6, size=(400, 3)), axis=0) / 2))
    for smooth, threshold, refractory in [(1, 0.5, 1.0), (3, 0.6, 0.5), (5, 0.3, 2.0)]:
        picker = PeakPicker(["a", "b", "c"], hop=1600, smooth=smooth, threshold=threshold,
                            refractory=refractory)
        streamed = picker.push(scores[:150]) + picker.push(scores[150:]) + picker.flush()
        fast = peaks_at(smooth_scores(scores, smooth), threshold, picker.refractory_windows)
        assert len(fast) > 5
        assert sorted((d.keyword, d.score) for d in streamed) == sorted(
            ("abc"[k], round(s, 4)) for _, k, s in fast)
