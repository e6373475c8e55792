"""Property tests of the two readers every stage trusts: samples.pb and the splits CSV.

Whatever bytes they are given, they either return a well-formed result or raise the
project's one input error for that format (a clean line for the user); never another
exception, which would reach the user as a traceback.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from corpus.layout import CorpusError, read_splits  # noqa: E402
from protos import SamplesFormatError, read_samples, serialize_samples  # noqa: E402
from protos.errors import InputError  # noqa: E402
from protos.synthetic import random_sample_set  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
VALID_PB = serialize_samples(random_sample_set(12, dim=8, seed=3))
HEADER = "SET,LINK,WORD,VALID,SPEAKER,GENDER\n"
ROW = "TRAIN,casa/a.opus,casa,True,spk1,MALE\n"


def _read_pb(tmp_path, data: bytes):
    path = tmp_path / "samples.pb"
    path.write_bytes(data)
    return read_samples(path)


def _check_sample_set(sample_set) -> None:
    n = len(sample_set.ids)
    assert sample_set.embeddings.shape[0] == n and sample_set.embeddings.dtype == np.float32


def test_the_valid_file_reads():
    assert len(VALID_PB) > 100


@SETTINGS
@given(data=st.binary(max_size=600))
def test_random_bytes_read_or_raise_the_format_error(tmp_path, data):
    try:
        _check_sample_set(_read_pb(tmp_path, data))
    except SamplesFormatError as exc:
        assert isinstance(exc, InputError) and "\n" not in str(exc)


@SETTINGS
@given(cut=st.integers(min_value=0, max_value=len(VALID_PB) - 1),
       flips=st.lists(st.tuples(st.integers(min_value=0, max_value=len(VALID_PB) - 1),
                                st.integers(min_value=1, max_value=255)), max_size=4))
def test_a_truncated_or_damaged_file_reads_or_raises_the_format_error(tmp_path, cut, flips):
    data = bytearray(VALID_PB)
    for position, mask in flips:
        data[position] ^= mask
    data = bytes(data[: cut if not flips else len(data)])
    try:
        _check_sample_set(_read_pb(tmp_path, data))
    except SamplesFormatError as exc:
        assert "\n" not in str(exc)


def test_a_file_cut_between_samples_is_refused(tmp_path):
    # The trailing num_samples field is what tells a cut file from a whole one.
    whole = _read_pb(tmp_path, VALID_PB)
    assert len(whole.ids) == 12
    with pytest.raises(SamplesFormatError):
        _read_pb(tmp_path, VALID_PB[: len(VALID_PB) // 2])


def _read_csv(tmp_path, data: bytes):
    root = tmp_path / "corpus"
    root.mkdir(exist_ok=True)
    (root / "es_splits.csv").write_bytes(data)
    return read_splits(root, "es")


@SETTINGS
@given(data=st.binary(max_size=400))
def test_random_bytes_as_splits_csv_read_or_raise_the_corpus_error(tmp_path, data):
    try:
        _read_csv(tmp_path, data)
    except CorpusError as exc:
        assert isinstance(exc, InputError) and "\n" not in str(exc)


@SETTINGS
@given(text=st.text(alphabet=st.sampled_from(list("TRAINDEVS,/.aos01\"\n\r\t é")), max_size=200))
def test_mutated_splits_rows_read_or_raise_the_corpus_error(tmp_path, text):
    try:
        records = _read_csv(tmp_path, (HEADER + ROW + text).encode("utf-8"))
    except CorpusError as exc:
        assert "\n" not in str(exc)
        return
    assert records[0].link == "casa/a.opus" and records[0].split == "TRAIN"
    for record in records:
        assert record.split in {"TRAIN", "DEV", "TEST"}
        assert not record.link.startswith("/") and ".." not in record.link.split("/")
