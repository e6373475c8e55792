"""Each clip's speaker: recorded in samples.pb (Sample.speaker = 5), read back, exposed to selection."""

from __future__ import annotations

import csv

import numpy as np

from protos import SampleSet, read_samples, write_samples
from protos import samples_pb2
from protos.synthetic import random_sample_set
from selection.pool import Pool


def test_speakers_round_trip_and_field_number(tmp_path):
    base = random_sample_set(40, dim=6, seed=3)
    speakers = np.asarray([f"spk{i % 5}" if i % 7 else "" for i in range(40)])
    with_speakers = SampleSet(ids=base.ids, sample_types=base.sample_types,
                              keywords=base.keywords, embeddings=base.embeddings,
                              metadata=base.metadata, speakers=speakers)
    write_samples(tmp_path / "s.pb", with_speakers)
    back = read_samples(tmp_path / "s.pb")
    assert back.speakers.tolist() == speakers.tolist()
    assert back.subset(np.arange(5, 10)).speakers.tolist() == speakers[5:10].tolist()
    # A new field number: the seed's fields 1-4 keep theirs.
    fields = {f.name: f.number for f in samples_pb2.Sample.DESCRIPTOR.fields}
    assert fields == {"sample_type": 1, "sample_id": 2, "mswc_embedding_vector": 3,
                      "keyword": 4, "speaker": 5}
    pool = Pool.from_sample_set(back, 10, 0)
    assert pool.speakers.tolist() == speakers.tolist()
    assert not pool.speakers.flags.writeable


def test_files_without_speakers_still_parse(tmp_path):
    """Files written before the field existed (and seed-schema files) read as unknown."""
    base = random_sample_set(20, dim=4, seed=4)
    write_samples(tmp_path / "old.pb", base)  # speakers=None: field 5 never written
    data = (tmp_path / "old.pb").read_bytes()
    message = samples_pb2.Samples.FromString(data)
    assert all(not s.speaker for s in message.samples)
    back = read_samples(tmp_path / "old.pb")
    assert back.speakers.tolist() == [""] * 20
    assert Pool.from_sample_set(back, 5, 0).speakers.tolist() == [""] * 20


def test_build_dataset_records_the_splits_speakers(tmp_path):
    from dataset_builder import cli
    from tests.builder_helpers import make_tone_corpus

    words = ["año", "sí", *[f"w{i}" for i in range(6)]]
    corpus = make_tone_corpus(tmp_path / "mswc", "es", words, 16, n_train=10, n_dev=3,
                              n_speakers=4, seed=0, bad=())
    out = tmp_path / "out"
    assert cli.main(["--lang", "es", "--mswc-root", str(corpus), "--out", str(out),
                     "--backend", "test-bands", "--workers", "0", "--quiet",
                     "--known-words", "3", "--unknown-words", "3", "--clips-per-word", "8",
                     "--min-word-clips", "15", "--min-target-train", "8",
                     "--min-target-eval", "3", "--keyword", "año", "--keyword", "sí"]) == 0
    with open(corpus / "es_splits.csv", encoding="utf-8", newline="") as f:
        speaker_of = {row["LINK"]: row["SPEAKER"] for row in csv.DictReader(f)}
    for name in ("samples.pb", "eval.pb"):
        sample_set = read_samples(out / name)
        assert sample_set.speakers.tolist() == [speaker_of[i] for i in sample_set.ids.tolist()]
        assert set(sample_set.speakers.tolist()) <= {"spk0", "spk1", "spk2", "spk3"}
