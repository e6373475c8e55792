"""corpus.layout: reading and writing the MSWC splits, metadata and clip paths."""

from __future__ import annotations

import gzip
import json

import pytest

from corpus.layout import (
    SPLITS_HEADER,
    ClipRecord,
    CorpusError,
    clip_path,
    corpus_langs,
    read_metadata,
    read_splits,
    read_word_counts,
    write_metadata,
    write_splits,
)

RECORDS = [
    ClipRecord("año/common_voice_es_1.opus", "año", "TRAIN", True, "spk1", "FEMALE"),
    ClipRecord("año/common_voice_es_2.opus", "año", "DEV", True, "spk2", "MALE"),
    ClipRecord("casa/common_voice_es_3.opus", "casa", "TEST", False, "spk3", "NAN"),
]


def test_splits_round_trip_in_utf8(tmp_path):
    path = tmp_path / "es_splits.csv"
    write_splits(path, RECORDS)
    text = path.read_bytes().decode("utf-8")
    assert text.splitlines()[0] == ",".join(SPLITS_HEADER) == "SET,LINK,WORD,VALID,SPEAKER,GENDER"
    assert "TRAIN,año/common_voice_es_1.opus,año,True,spk1,FEMALE" in text.splitlines()
    assert read_splits(tmp_path, "es") == RECORDS


@pytest.mark.parametrize(
    "where", ["{lang}_splits.csv", "{lang}/{lang}_splits.csv", "splits/{lang}_splits.csv", "splits/{lang}/{lang}_splits.csv"]
)
def test_splits_found_where_archives_put_them(tmp_path, where):
    path = tmp_path / where.format(lang="es")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_splits(path, RECORDS)
    assert read_splits(tmp_path, "es") == RECORDS


def test_missing_splits_says_where_it_looked(tmp_path):
    with pytest.raises(CorpusError) as err:
        read_splits(tmp_path, "de")
    message = str(err.value)
    assert "de_splits.csv" in message and str(tmp_path / "splits" / "de") in message


def test_bom_and_lower_case_valid_are_accepted(tmp_path):
    text = "SET,LINK,WORD,VALID,SPEAKER,GENDER\ntrain,año/a.opus,año,true,s,MALE\n"
    (tmp_path / "es_splits.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_splits(tmp_path, "es") == [ClipRecord("año/a.opus", "año", "TRAIN", True, "s", "MALE")]


@pytest.mark.parametrize(
    "row, complaint",
    [
        ("VALIDATION,a/b.opus,a,True,s,MALE", "SET must be one of"),
        ("TRAIN,../../etc/passwd,a,True,s,MALE", "LINK must look like word/clip.opus"),
        ("TRAIN,a/b.opus,a,maybe,s,MALE", "VALID must be True or False"),
        ("TRAIN,a/b.opus,a,True,s", "5 fields, expected 6"),
        ("TRAIN,a/b.opus,a,b,True,s,MALE", "7 fields, expected 6"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, row, complaint):
    (tmp_path / "es_splits.csv").write_text("SET,LINK,WORD,VALID,SPEAKER,GENDER\n" + row + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=complaint) as err:
        read_splits(tmp_path, "es")
    assert "es_splits.csv:2" in str(err.value)


def test_latin1_splits_is_one_line_naming_file_line_and_encoding(tmp_path):
    text = "SET,LINK,WORD,VALID,SPEAKER,GENDER\nTRAIN,casa/a.opus,casa,True,s,MALE\nTRAIN,año/b.opus,año,True,s,MALE\n"
    (tmp_path / "es_splits.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(CorpusError) as err:
        read_splits(tmp_path, "es")
    message = str(err.value)
    assert "\n" not in message and "es_splits.csv:3: not UTF-8 text (byte 0xf1)" in message
    assert "re-save the file as UTF-8" in message


def test_languages_are_found_in_every_place_the_splits_may_be(tmp_path):
    for where in ("en_splits.csv", "es/es_splits.csv", "splits/de_splits.csv", "splits/fr/fr_splits.csv"):
        (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
        write_splits(tmp_path / where, RECORDS)
    # Not places the reader looks: a language directory with another language's file, a directory.
    (tmp_path / "it").mkdir()
    write_splits(tmp_path / "it" / "pt_splits.csv", RECORDS)
    (tmp_path / "nl_splits.csv").mkdir()
    assert corpus_langs(tmp_path) == ["de", "en", "es", "fr"]
    assert all(read_splits(tmp_path, lang) == RECORDS for lang in corpus_langs(tmp_path))


def test_wrong_header_is_reported(tmp_path):
    (tmp_path / "es_splits.csv").write_text("SET,LINK,WORD\nTRAIN,a/b.opus,a\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="lacks VALID,SPEAKER,GENDER"):
        read_splits(tmp_path, "es")


def test_word_counts_from_metadata_or_splits(tmp_path):
    write_splits(tmp_path / "es_splits.csv", RECORDS)
    assert read_word_counts(tmp_path, "es") == {"año": 2, "casa": 1}
    metadata = {"es": {"wordcounts": {"año": 7}, "filenames": {"año": ["x.opus"]}}}
    write_metadata(tmp_path / "metadata.json.gz", metadata)
    assert read_metadata(tmp_path) == metadata
    assert read_word_counts(tmp_path, "es") == {"año": 7}
    # A language the metadata does not cover falls back to its splits.
    write_splits(tmp_path / "en_splits.csv", [ClipRecord("dog/a.opus", "dog", "TRAIN", True, "s", "MALE")])
    assert read_word_counts(tmp_path, "en") == {"dog": 1}


def test_metadata_is_byte_reproducible_gzip(tmp_path):
    metadata = {"es": {"wordcounts": {"año": 1}, "filenames": {"año": ["común.opus"]}}}
    write_metadata(tmp_path / "a.json.gz", metadata)
    write_metadata(tmp_path / "b.json.gz", metadata)
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    assert json.loads(gzip.decompress((tmp_path / "a.json.gz").read_bytes()).decode("utf-8")) == metadata
    (tmp_path / "metadata.json.gz").write_bytes(b"not gzip")
    with pytest.raises(CorpusError, match="metadata"):
        read_metadata(tmp_path)


def test_clip_path_refuses_escaping_links(tmp_path):
    assert clip_path(tmp_path, "es", "año/x.opus") == tmp_path / "es" / "clips" / "año" / "x.opus"
    for bad in ("/etc/passwd", "../x.opus", "año/../../x.opus", "x.opus"):
        with pytest.raises(CorpusError):
            clip_path(tmp_path, "es", bad)


def test_corpus_package_imports_nothing_above_it():
    import subprocess
    import sys

    code = (
        "import sys, corpus, corpus.audio, corpus.layout, corpus.words, corpus.speakers, corpus.clip\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'embedding_model', 'dataset_builder'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
