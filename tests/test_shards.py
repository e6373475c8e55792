"""Sharded pools: written as NAME-00000-of-0000N.pb, read back as one dataset."""

from __future__ import annotations

import numpy as np
import pytest

from protos import (
    SampleSet,
    SamplesFormatError,
    iter_samples,
    max_samples_per_file,
    read_samples,
    serialize_samples,
    write_samples,
    write_sharded_samples,
)
from protos.shards import dataset_name, parse_shard_name, resolve_sample_files, shard_name
from protos.synthetic import random_sample_set


@pytest.fixture
def pool():
    sample_set = random_sample_set(101, dim=8, target_keywords=["año", "sí"], seed=7)
    sample_set.metadata.language = "es"
    sample_set.metadata.role = "samples"
    sample_set.metadata.embedding_dim = 8
    return sample_set


def assert_same(a, b):
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.sample_types, b.sample_types)
    np.testing.assert_array_equal(a.keywords, b.keywords)
    assert a.embeddings.tobytes() == b.embeddings.tobytes()
    assert a.metadata == b.metadata


def test_shard_names_round_trip():
    assert shard_name("samples", 3, 16) == "samples-00003-of-00016.pb"
    assert parse_shard_name("out/samples-00003-of-00016.pb") == ("samples", 3, 16, ".pb")
    assert parse_shard_name("samples.pb") is None
    assert dataset_name("eval-00000-of-00002.pb") == "eval.pb"
    with pytest.raises(ValueError):
        shard_name("samples", 16, 16)


def test_shards_read_back_as_one_dataset_by_name_glob_or_directory(tmp_path, pool):
    paths = write_sharded_samples(tmp_path, "samples", pool, 4)
    assert [p.name for p in paths] == [f"samples-0000{i}-of-00004.pb" for i in range(4)]
    # Contiguous runs, each a valid file of its own with the pool's metadata.
    sizes = [len(read_samples(p)) for p in paths]
    assert sizes == [25, 25, 25, 26]
    for given in (tmp_path / "samples.pb", str(tmp_path / "samples-*.pb"), tmp_path):
        assert_same(read_samples(given), pool)
    streamed = list(iter_samples(tmp_path / "samples.pb"))
    assert [f.name for f, _ in streamed] == [p.name for p in paths]
    assert sum(len(s) for _, s in streamed) == len(pool)


def test_one_shard_is_byte_identical_to_the_unsharded_file(tmp_path, pool):
    write_samples(tmp_path / "plain.pb", pool)
    (path,) = write_sharded_samples(tmp_path / "", "samples", pool, 1)
    assert path.read_bytes() == (tmp_path / "plain.pb").read_bytes() == serialize_samples(pool)


def test_rewriting_with_another_count_removes_the_stale_version(tmp_path, pool):
    write_samples(tmp_path / "samples.pb", pool)
    write_sharded_samples(tmp_path, "samples", pool, 3)
    assert not (tmp_path / "samples.pb").exists()
    write_sharded_samples(tmp_path, "samples", pool, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "samples-00000-of-00002.pb", "samples-00001-of-00002.pb"]
    assert_same(read_samples(tmp_path / "samples.pb"), pool)


def test_incomplete_or_mixed_shard_sets_are_refused(tmp_path, pool):
    paths = write_sharded_samples(tmp_path, "samples", pool, 3)
    paths[1].unlink()
    with pytest.raises(SamplesFormatError, match="1 of 3 shards missing, first samples-00001-of-00003.pb"):
        read_samples(tmp_path / "samples.pb")
    write_sharded_samples(tmp_path, "samples", pool, 3)
    (tmp_path / "samples-00000-of-00002.pb").write_bytes(paths[0].read_bytes())
    with pytest.raises(SamplesFormatError, match="disagree on their count"):
        read_samples(str(tmp_path / "samples-*.pb"))


def test_directory_with_two_datasets_asks_for_one(tmp_path, pool):
    write_sharded_samples(tmp_path, "samples", pool, 2)
    evals = pool.subset(np.arange(10))
    evals.metadata.role = "eval"
    write_samples(tmp_path / "eval.pb", evals)
    with pytest.raises(SamplesFormatError, match=r"holds 2 datasets \(eval.pb, samples.pb\); name one"):
        read_samples(tmp_path)
    assert len(read_samples(tmp_path / "eval.pb")) == 10


def test_shards_of_different_datasets_or_overlapping_ids_are_refused(tmp_path, pool):
    a, b = pool.subset(np.arange(50)), pool.subset(np.arange(50, 101))
    b.metadata.model_id = "another-model"
    write_samples(tmp_path / "p-00000-of-00002.pb", a)
    write_samples(tmp_path / "p-00001-of-00002.pb", b)
    with pytest.raises(SamplesFormatError, match="model_id='another-model'.*not shards of one dataset"):
        read_samples(tmp_path / "p.pb")
    write_samples(tmp_path / "p-00001-of-00002.pb", pool.subset(np.arange(40, 101)))
    with pytest.raises(SamplesFormatError, match="duplicate sample id"):
        read_samples(tmp_path / "p.pb")


def test_nothing_to_read_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file, and no shards samples-\\*-of-\\*.pb"):
        read_samples(tmp_path / "samples.pb")
    with pytest.raises(FileNotFoundError, match="no file matches"):
        read_samples(str(tmp_path / "x-*.pb"))
    with pytest.raises(FileNotFoundError, match="holds no .pb files"):
        resolve_sample_files(tmp_path)


def test_too_many_shards_is_refused(tmp_path, pool):
    with pytest.raises(SamplesFormatError, match="need 1 <= shards <= samples"):
        write_sharded_samples(tmp_path, "samples", pool.subset(np.arange(2)), 3)


def test_single_file_limit_follows_protobufs_2_gib():
    # 1024 float32 = 4096 bytes per vector + id/keyword/framing: about 517,000 per file.
    assert 515_000 < max_samples_per_file(1024) < 520_000
    assert 4_500_000 < max_samples_per_file(96) < 5_000_000


def test_a_set_past_the_limit_is_refused_with_a_pointer_to_shards():
    n = 600_000  # x ~4.1 kB each: 2.3 GiB
    huge = SampleSet(ids=np.char.add("w/", np.arange(n).astype(str)),
                     sample_types=np.zeros(n, np.int32),
                     keywords=np.broadcast_to(np.asarray(["w"]), (n,)),
                     # One row repeated: no memory, the size is what is checked.
                     embeddings=np.broadcast_to(np.zeros(1024, np.float32), (n, 1024)))
    with pytest.raises(SamplesFormatError, match="over 2 GiB, where protobuf stops: write shards"):
        serialize_samples(huge)


def test_selection_and_eval_clis_accept_a_sharded_pool(tmp_path):
    """A sharded pool is one dataset for the seed commands too, not only for read_samples."""
    import subprocess
    import sys

    from protos import write_sharded_samples
    from protos.synthetic import random_sample_set

    pool = random_sample_set(96, dim=8, seed=3)
    write_sharded_samples(tmp_path, "samples", pool, num_shards=3)
    assert not (tmp_path / "samples.pb").exists()
    result = subprocess.run(
        [sys.executable, "-m", "selection.main", "--input_samples", str(tmp_path / "samples.pb"),
         "--outdir", str(tmp_path), "--train_size", "10", "--algorithm", "random"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "train.npz").exists()
