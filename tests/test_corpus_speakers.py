"""corpus.speakers: the {lang}_speakers.csv sidecar, written and read in one place."""

from __future__ import annotations

import pytest

from corpus.layout import CorpusError
from corpus.speakers import find_speakers_csv, read_speakers, read_voices, write_speakers

COLUMNS = ("speaker", "lang", "engine", "voice", "variant", "snr_db")


def test_round_trip_and_voice_keys(tmp_path):
    write_speakers(tmp_path / "es_speakers.csv", COLUMNS,
                   [("s1", "es", "espeak-ng", "es", "f3", 12.5), ("s2", "es", "flite", "kal", "", 0.0)])
    text = (tmp_path / "es_speakers.csv").read_bytes().decode("utf-8")
    assert text == "speaker,lang,engine,voice,variant,snr_db\ns1,es,espeak-ng,es,f3,12.5\ns2,es,flite,kal,,0.0\n"
    assert read_speakers(tmp_path, "es")[0] == dict(zip(COLUMNS, ("s1", "es", "espeak-ng", "es", "f3", "12.5")))
    assert read_voices(tmp_path, "es") == {"s1": "espeak-ng:es:f3", "s2": "flite:kal:"}


def test_no_sidecar_means_every_speaker_is_its_own_voice(tmp_path):
    assert read_voices(tmp_path, "es") == {} and find_speakers_csv(tmp_path, "es") is None


def test_header_case_and_missing_columns(tmp_path):
    (tmp_path / "es_speakers.csv").write_text("SPEAKER,Voice\nabc,\n", encoding="utf-8")
    assert read_voices(tmp_path, "es") == {"abc": "unknown:abc:"}


def test_sidecar_is_found_beside_the_splits(tmp_path):
    (tmp_path / "splits" / "es").mkdir(parents=True)
    write_speakers(tmp_path / "splits" / "es" / "es_speakers.csv", ("speaker", "engine"), [("s", "flite")])
    assert read_voices(tmp_path, "es") == {"s": "flite:s:"}


@pytest.mark.parametrize(
    "raw, complaint",
    [
        ("speaker,engine\ns1,fl\u00eete\n".encode("latin-1"), r"es_speakers.csv:2: not UTF-8 text \(byte 0xee\)"),
        (b"engine,voice\nflite,kal\n", "no 'speaker' column"),
        (b"speaker,engine\ns1,flite,extra\n", r"es_speakers.csv:2: 3 fields, expected 2"),
    ],
)
def test_bad_sidecar_is_one_clear_error(tmp_path, raw, complaint):
    (tmp_path / "es_speakers.csv").write_bytes(raw)
    with pytest.raises(CorpusError, match=complaint):
        read_voices(tmp_path, "es")


def test_writer_refuses_rows_that_do_not_fit_the_header(tmp_path):
    with pytest.raises(ValueError, match="speaker"):
        write_speakers(tmp_path / "x.csv", ("engine",), [("flite",)])
    with pytest.raises(ValueError, match="2 values for 3 columns"):
        write_speakers(tmp_path / "x.csv", ("speaker", "engine", "voice"), [("s", "flite")])
    assert not (tmp_path / "x.csv").exists()
