"""extract-clips: long recordings + word alignments (CSV, TextGrid) -> MSWC-layout corpus."""

from __future__ import annotations

import collections
import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus.audio import load_clip
from corpus.layout import read_splits
from dataset_builder import cli as build_cli
from dataset_builder.alignments import parse_textgrid, read_alignments
from dataset_builder.extract import assign_splits, clip_word, cut_clip, main
from tests import builder_helpers  # noqa: F401  (registers the "test-bands" backend)

SR = 16000


def recording(words: list[tuple[float, float, float]], seconds: float, sr: int = SR,
              channels: int = 1) -> np.ndarray:
    """Quiet noise with a tone burst (freq Hz) over each (start, end) interval."""
    rng = np.random.default_rng(int(seconds * 1000))
    y = 0.001 * rng.standard_normal(int(seconds * sr))
    for start, end, freq in words:
        a, b = int(start * sr), int(end * sr)
        y[a:b] += 0.5 * np.sin(2 * np.pi * freq * np.arange(b - a) / sr)
    y = y.astype(np.float32)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def recordings(tmp_path) -> Path:
    """Three speakers' recordings with 'hola' (440 Hz) and 'casa' (880 Hz) aligned in a CSV."""
    rec = tmp_path / "recs"
    rec.mkdir()
    rows = []
    for s in range(3):
        for r in range(2):
            name = f"spk{s}_{r}.wav"
            words = [(0.1, 0.4, 440.0), (1.5, 1.9, 880.0), (3.0, 3.4, 440.0)]
            sr, channels = (44100, 2) if s == 2 else (SR, 1)  # one speaker in 44.1 kHz stereo
            sf.write(rec / name, recording(words, 4.0, sr, channels), sr)
            rows += [
                {"file": name, "word": "¡Hola,", "start": 0.1, "end": 0.4, "speaker": f"S{s}"},
                {"file": name, "word": "casa", "start": 1.5, "end": 1.9, "speaker": f"S{s}"},
                {"file": name, "word": "hola", "start": 3.0, "end": 3.4, "speaker": f"S{s}"},
            ]
    rows.append({"file": "spk0_0.wav", "word": "casa", "start": 2.0, "end": 1.0, "speaker": "S0"})
    rows.append({"file": "gone.wav", "word": "casa", "start": 0.5, "end": 0.9, "speaker": "S0"})
    rows.append({"file": "spk1_1.wav", "word": "tarde", "start": 9.0, "end": 9.5, "speaker": "S1"})
    write_csv(tmp_path / "words.csv", rows)
    return rec


def test_csv_alignments_become_an_mswc_corpus(recordings, tmp_path, capsys):
    out = tmp_path / "corpus"
    code = main(["--lang", "es", "--recordings", str(recordings), "--alignments",
                 str(tmp_path / "words.csv"), "--out", str(out), "--workers", "2", "--quiet"])
    assert code == 0
    records = read_splits(out, "es")
    assert len(records) == 18
    assert collections.Counter(r.word for r in records) == {"hola": 12, "casa": 6}
    # Splits are per speaker: no speaker in two splits.
    splits_of = collections.defaultdict(set)
    for r in records:
        splits_of[r.speaker].add(r.split)
    assert set(splits_of) == {"S0", "S1", "S2"} and all(len(s) == 1 for s in splits_of.values())
    # Three speakers: one per split rather than all in TRAIN.
    assert collections.Counter(r.split for r in records) == {"TRAIN": 6, "DEV": 6, "TEST": 6}

    # Each clip is 1 s centred on its word: the tone fills the middle, not the edges.
    for r in records:
        clip = load_clip(out / "es" / "clips" / r.link)
        middle, edge = clip[6500:9500], np.concatenate([clip[:1500], clip[-1500:]])
        assert np.abs(middle).mean() > 20 * np.abs(edge).mean(), r.link
    first = [r for r in records if r.link.endswith("_00000100.opus")]
    assert first, "the clip of the word at 0.1 s is named after its start in ms"

    meta = json.loads(gzip.decompress((out / "metadata.json.gz").read_bytes()))
    assert meta["es"]["wordcounts"] == {"casa": 6, "hola": 12}
    assert sorted(meta["es"]["filenames"]["casa"]) == sorted(r.link.split("/")[1] for r in records
                                                             if r.word == "casa")


def test_skipped_rows_are_counted_and_strict_stops(recordings, tmp_path, capsys):
    args = ["--lang", "es", "--recordings", str(recordings), "--alignments", str(tmp_path / "words.csv"),
            "--workers", "0"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    summary = capsys.readouterr().out
    assert "skipped 3 {'bad-interval': 1, 'missing': 1, 'outside-recording': 1}" in summary
    assert main([*args, "--out", str(tmp_path / "b"), "--strict"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("extract-clips: ") and "bad-interval" in err and err.count("\n") == 1
    # An existing corpus is not replaced by accident.
    assert main([*args, "--out", str(tmp_path / "a")]) == 1
    assert "pass --overwrite" in capsys.readouterr().err


def test_extracted_corpus_builds_a_dataset(recordings, tmp_path):
    out = tmp_path / "corpus"
    assert main(["--lang", "es", "--recordings", str(recordings), "--alignments", str(tmp_path / "words.csv"),
                 "--out", str(out), "--split-by", "clip", "--split-ratios", "50,25,25", "-q"]) == 0
    assert {r.split for r in read_splits(out, "es")} == {"TRAIN", "DEV", "TEST"}
    code = build_cli.main(["--lang", "es", "--mswc-root", str(out), "--out", str(tmp_path / "ds"),
                           "--keyword", "hola", "--backend", "test-bands", "--known-words", "1",
                           "--unknown-words", "0", "--clips-per-word", "4", "--min-word-clips", "3",
                           "--min-target-train", "2", "--min-target-eval", "1", "--workers", "0", "-q"])
    assert code == 0
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["nontarget_words"]["known"] == ["casa"]
    assert manifest["skipped"]["total"] == 0


LONG_TEXTGRID = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 4
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 4
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 1.5
            text = ""
        intervals [2]:
            xmin = 1.5
            xmax = 1.9
            text = "casa"
        intervals [3]:
            xmin = 1.9
            xmax = 3.0
            text = "sil"
        intervals [4]:
            xmin = 3.0
            xmax = 3.4
            text = "Hola"
    item [2]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 4
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 4
            text = "say ""a"" [1]"
'''

SHORT_TEXTGRID = '''File type = "ooTextFile"
Object class = "TextGrid"

0
4
<exists>
1
"IntervalTier"
"words"
0
4
3
0
1.5
""
1.5
1.9
"casa"
1.9
4
"spn"
'''


def test_textgrid_long_and_short_formats(tmp_path):
    (tmp_path / "long.TextGrid").write_text(LONG_TEXTGRID, encoding="utf-8")
    (tmp_path / "short.TextGrid").write_bytes(SHORT_TEXTGRID.encode("utf-16"))
    tiers = parse_textgrid(tmp_path / "long.TextGrid")
    assert tiers["words"][1] == (1.5, 1.9, "casa") and len(tiers["words"]) == 4
    assert tiers["phones"] == [(0.0, 4.0, 'say "a" [1]')]
    assert parse_textgrid(tmp_path / "short.TextGrid")["words"][:2] == tiers["words"][:2]
    (tmp_path / "bad.TextGrid").write_text('File type = "ooTextFile"\nObject class = "TextGrid"\n0\n4\n<exists>\n1\n',
                                           encoding="utf-8")
    with pytest.raises(Exception, match="bad.TextGrid: TextGrid ends early"):
        parse_textgrid(tmp_path / "bad.TextGrid")


def test_mfa_output_directory_mirrors_the_recordings(tmp_path):
    recs, aligned = tmp_path / "recs", tmp_path / "aligned"
    for speaker in ("ana", "bea"):
        (recs / speaker).mkdir(parents=True)
        (aligned / speaker).mkdir(parents=True)
        sf.write(recs / speaker / "utt1.flac", recording([(1.5, 1.9, 880.0), (3.0, 3.4, 440.0)], 4.0), SR)
        (aligned / speaker / "utt1.TextGrid").write_text(LONG_TEXTGRID, encoding="utf-8")
    words = read_alignments(aligned, recs)
    assert [(w.word, w.speaker, Path(w.recording).parent.name) for w in words] == [
        ("casa", "ana", "ana"), ("Hola", "ana", "ana"), ("casa", "bea", "bea"), ("Hola", "bea", "bea")]
    out = tmp_path / "corpus"
    assert main(["--lang", "es", "--recordings", str(recs), "--alignments", str(aligned),
                 "--out", str(out), "-q", "--workers", "0", "--split-by", "clip"]) == 0
    records = read_splits(out, "es")
    assert sorted(r.word for r in records) == ["casa", "casa", "hola", "hola"]
    # Same file name in two directories: clip names stay unique.
    assert len({r.link for r in records}) == 4
    (recs / "bea" / "utt1.flac").unlink()
    assert main(["--lang", "es", "--recordings", str(recs), "--alignments", str(aligned),
                 "--out", str(tmp_path / "c2"), "-q"]) == 1


def test_mfa_textgrids_next_to_recordings(tmp_path):
    root = tmp_path / "data"
    for speaker in ("ana", "bea", "carla"):
        (root / speaker).mkdir(parents=True)
        sf.write(root / speaker / "utt1.wav", recording([(1.5, 1.9, 880.0), (3.0, 3.4, 440.0)], 4.0), SR)
        (root / speaker / "utt1.TextGrid").write_text(LONG_TEXTGRID, encoding="utf-8")
    out = tmp_path / "corpus"
    assert main(["--lang", "es", "--recordings", str(root), "--alignments", str(root),
                 "--out", str(out), "-q", "--workers", "0"]) == 0
    records = read_splits(out, "es")
    assert sorted(r.word for r in records) == ["casa"] * 3 + ["hola"] * 3
    assert {r.speaker for r in records} == {"ana", "bea", "carla"}
    assert len({r.link for r in records}) == 6


def test_missing_tier_and_missing_columns_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "r.TextGrid").write_text(LONG_TEXTGRID, encoding="utf-8")
    sf.write(tmp_path / "r.wav", np.zeros(SR, np.float32), SR)
    assert main(["--lang", "es", "--recordings", str(tmp_path), "--alignments", str(tmp_path / "r.TextGrid"),
                 "--tier", "syllables", "--out", str(tmp_path / "o"), "-q"]) == 1
    assert "no tier named 'syllables' (tiers: words, phones)" in capsys.readouterr().err
    write_csv(tmp_path / "bad.csv", [{"path": "r.wav", "word": "x"}])
    assert main(["--lang", "es", "--recordings", str(tmp_path), "--alignments", str(tmp_path / "bad.csv"),
                 "--out", str(tmp_path / "o"), "-q"]) == 1
    assert "lacks column(s) file, start, end" in capsys.readouterr().err


def test_cut_clip_centres_and_pads():
    y = np.arange(1, 101, dtype=np.float32)  # 100 samples at sr=10
    clip = cut_clip(y, 10, start=0.0, end=0.2)  # centre 0.1 s -> window [-0.4, 0.6) s
    assert clip.shape == (10,) and list(clip[:4]) == [0, 0, 0, 0] and list(clip[4:]) == [1, 2, 3, 4, 5, 6]
    assert list(cut_clip(y, 10, 4.0, 6.0)) == list(range(46, 56))
    assert list(cut_clip(y, 10, 9.6, 9.8)[-3:]) == [100, 0, 0]


def test_words_are_normalised():
    assert clip_word("¡Hola,") == "hola"
    assert clip_word("An\u0303o") == "año"
    assert clip_word("Año", keep_case=True) == "Año"
    assert clip_word("a/b") == "" and clip_word("...") == ""


def test_assign_splits_hits_the_ratios_and_is_seeded():
    units = {f"s{i:03d}": 1 for i in range(100)}
    split = assign_splits(units, (80, 10, 10), seed=0)
    assert collections.Counter(split.values()) == {"TRAIN": 80, "DEV": 10, "TEST": 10}
    assert split == assign_splits(units, (80, 10, 10), seed=0)
    assert split != assign_splits(units, (80, 10, 10), seed=1)
    assert set(assign_splits({"a": 5, "b": 1}, (1, 0, 0), seed=0).values()) == {"TRAIN"}
    assert sorted(assign_splits({"a": 9, "b": 1, "c": 1}, (80, 10, 10), seed=0).values()) == \
        ["DEV", "TEST", "TRAIN"]


# ------------------------------------------------------------------ faults: names, silence, encodings


def _one_error_line(code: int, err: str, expected: int, fragment: str) -> None:
    assert code == expected, err
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("extract-clips: error: "), err
    assert fragment in err, err


def test_a_recording_with_a_non_utf8_name_is_read_and_a_silent_one_skipped_and_named(tmp_path, capsys):
    import os

    rec = tmp_path / "recs"
    rec.mkdir()
    # Latin-1 bytes: not a valid UTF-8 name (libsndfile cannot open it by a str path).
    sf.write(os.path.join(os.fsencode(rec), b"grabaci\xf3n.wav"),
             recording([(0.5, 0.9, 440.0), (2.0, 2.4, 880.0)], 3.0), SR)
    sf.write(rec / "silence.wav", np.zeros(3 * SR, np.float32), SR)
    grid = ('File type = "ooTextFile"\nObject class = "TextGrid"\n0\n3\n<exists>\n1\n"IntervalTier"\n'
            '"words"\n0\n3\n3\n0\n0.5\n""\n0.5\n0.9\n"hola"\n2.0\n2.4\n"casa"\n')
    grids = tmp_path / "grids"
    grids.mkdir()
    with open(os.path.join(grids, os.fsdecode(b"grabaci\xf3n.TextGrid")), "w", encoding="utf-8") as f:
        f.write(grid)
    (grids / "silence.TextGrid").write_text(grid, encoding="utf-8")
    out = tmp_path / "corpus"
    code = main(["--lang", "es", "--recordings", str(rec), "--alignments", str(grids), "--out", str(out),
                 "--workers", "0", "--split-by", "clip"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    records = read_splits(out, "es")
    # The Latin-1 name is read as Latin-1: clip names are UTF-8 text.
    assert sorted(r.link for r in records) == ["casa/grabación_00002000.opus", "hola/grabación_00000500.opus"]
    # The all-zero recording is refused, and named although the run is not --strict.
    assert "skipped " in captured.err and "silence.wav: silent (the whole recording is silent" in captured.err
    assert "skipped 1 {'silent': 1}" in captured.out
    assert main(["--lang", "es", "--recordings", str(rec), "--alignments", str(grids),
                 "--out", str(tmp_path / "strict"), "--workers", "0", "--strict", "--quiet"]) == 1
    _one_error_line(1, capsys.readouterr().err, 1, "silence.wav: silent")


def test_a_latin1_or_ragged_alignment_csv_is_one_line(recordings, tmp_path, capsys):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("file,word,start,end\nspk0_0.wav,canción,0.1,0.4\n".encode("latin-1"))
    args = ["--lang", "es", "--recordings", str(recordings), "--out", str(tmp_path / "c"), "--quiet"]
    code = main([*args, "--alignments", str(latin1)])
    _one_error_line(code, capsys.readouterr().err, 1, "not UTF-8 text (byte 0xf3")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("file,word,start,end\nspk0_0.wav,hola,0.1,0.4,extra\n", encoding="utf-8")
    code = main([*args, "--alignments", str(ragged)])
    _one_error_line(code, capsys.readouterr().err, 1, "ragged.csv:2: 5 fields, the header has 4")
    assert not (tmp_path / "c").exists()


def test_extract_help_ends_with_the_exit_statuses(capsys):
    from protos.errors import EXIT_STATUS_HELP

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert " ".join(capsys.readouterr().out.split()).endswith(EXIT_STATUS_HELP)
