"""samples.pb format: round trips, seed-schema compatibility, generated code, bad files."""

from __future__ import annotations

import importlib.util
import struct
import sys
import textwrap

import numpy as np
import pytest

import protos
from protos import (
    NONTARGET,
    TARGET,
    DatasetMetadata,
    SampleSet,
    SamplesFormatError,
    read_samples,
    samples_pb2,
    write_samples,
)
from protos.synthetic import random_sample_set

# The original DataPerf example's schema, as its README documents it.
SEED_PROTO = textwrap.dedent("""\
    syntax = "proto3";
    package selection;
    enum SampleType {
        TARGET = 0;
        NONTARGET = 1;
    }
    message Sample {
        optional SampleType sample_type = 1;
        optional string sample_id = 2;
        repeated float mswc_embedding_vector = 3;
    }
    message Samples {
        repeated Sample samples = 1;
    }
""")


@pytest.fixture(scope="module")
def seed_pb2(tmp_path_factory):
    """The seed schema compiled with grpcio-tools' protoc into a temporary directory."""
    protoc = pytest.importorskip("grpc_tools.protoc")
    out = tmp_path_factory.mktemp("seed_schema")
    (out / "dataperf_seed_samples.proto").write_text(SEED_PROTO)
    assert protoc.main(["protoc", f"--proto_path={out}", f"--python_out={out}",
                        "dataperf_seed_samples.proto"]) == 0
    spec = importlib.util.spec_from_file_location(
        "dataperf_seed_samples_pb2", out / "dataperf_seed_samples_pb2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pool() -> SampleSet:
    return random_sample_set(120, dim=16, target_keywords=["zeta", "año", "beta"], seed=3)


def assert_same(a: SampleSet, b: SampleSet) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.sample_types, b.sample_types)
    np.testing.assert_array_equal(a.keywords, b.keywords)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)


# ------------------------------------------------------------------------- round trips


def test_round_trip_keeps_arrays_metadata_and_labels(tmp_path, pool):
    pool.metadata.params = {"corpus": "tiny", "seed": "3"}
    pool.metadata.language = "es"
    path = tmp_path / "samples.pb"
    write_samples(path, pool)
    back = read_samples(path)
    assert_same(back, pool)
    assert back.embeddings.dtype == np.float32 and back.embeddings.shape == (120, 16)
    assert back.sample_types.dtype == np.int32
    assert back.embeddings.flags.writeable
    assert back.metadata == DatasetMetadata(
        language="es", target_keywords=["año", "beta", "zeta"], backend="synthetic",
        embedding_dim=16, model_id="synthetic-1", sample_rate=16000, role="samples",
        params={"corpus": "tiny", "seed": "3"})
    assert back.label_names == ["nontarget", "año", "beta", "zeta"]
    expected = np.array([0 if t == NONTARGET else back.label_names.index(k)
                         for t, k in zip(pool.sample_types, pool.keywords)])
    np.testing.assert_array_equal(back.labels, expected)
    assert back.labels.dtype == np.int64


def test_labels_sorted_targets_and_nontarget_keywords_kept(pool):
    names = pool.label_names
    assert names[0] == "nontarget" and names[1:] == sorted(names[1:])
    nontarget = pool.sample_types == NONTARGET
    assert (pool.labels[nontarget] == 0).all()
    assert set(pool.keywords[nontarget]) <= {"one", "two", "three", "four", "five"}


def test_target_keywords_derived_when_metadata_has_none(tmp_path, pool):
    pool.metadata.target_keywords = []
    write_samples(tmp_path / "s.pb", pool)
    back = read_samples(tmp_path / "s.pb")
    assert back.metadata.target_keywords == ["año", "beta", "zeta"]
    np.testing.assert_array_equal(back.labels, pool.labels)


def test_keywordless_set_is_two_class_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    seedlike = SampleSet(ids=[f"c{i}" for i in range(10)], sample_types=[0, 1] * 5,
                         keywords=None, embeddings=rng.standard_normal((10, 4)))
    assert seedlike.label_names == ["nontarget", "target"]
    np.testing.assert_array_equal(seedlike.labels, [1, 0] * 5)
    write_samples(tmp_path / "s.pb", seedlike)
    back = read_samples(tmp_path / "s.pb")
    assert back.label_names == ["nontarget", "target"]
    np.testing.assert_array_equal(back.labels, [1, 0] * 5)
    assert (back.keywords == "").all()


def test_subset_keeps_rows_and_metadata(pool):
    part = pool.subset(np.arange(0, 120, 3))
    assert len(part) == 40
    np.testing.assert_array_equal(part.embeddings, pool.embeddings[::3])
    assert part.label_names == pool.label_names
    part.metadata.params["x"] = "y"
    assert "x" not in pool.metadata.params


# ------------------------------------------------------------------ seed-schema compatibility


def test_seed_schema_file_reads_as_two_classes(tmp_path, seed_pb2):
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((30, 8)).astype(np.float32)
    types = rng.integers(0, 2, 30)
    message = seed_pb2.Samples()
    for i, (vector, sample_type) in enumerate(zip(vectors, types)):
        sample = message.samples.add()
        sample.sample_type = int(sample_type)
        sample.sample_id = f"word{i % 4}/clip{i}.opus"
        sample.mswc_embedding_vector.extend(vector.tolist())
    path = tmp_path / "seed_samples.pb"
    path.write_bytes(message.SerializeToString())

    back = read_samples(path)
    assert back.label_names == ["nontarget", "target"]
    np.testing.assert_array_equal(back.labels, np.where(types == TARGET, 1, 0))
    np.testing.assert_array_equal(back.embeddings, vectors)
    assert back.ids.tolist() == [f"word{i % 4}/clip{i}.opus" for i in range(30)]
    assert (back.keywords == "").all()
    assert back.metadata == DatasetMetadata()


def test_our_file_parses_with_seed_schema(tmp_path, pool, seed_pb2):
    path = tmp_path / "samples.pb"
    write_samples(path, pool)
    message = seed_pb2.Samples.FromString(path.read_bytes())
    assert [s.sample_id for s in message.samples] == pool.ids.tolist()
    assert [s.sample_type for s in message.samples] == pool.sample_types.tolist()
    vectors = np.array([list(s.mswc_embedding_vector) for s in message.samples], np.float32)
    np.testing.assert_array_equal(vectors, pool.embeddings)


def test_unpacked_vectors_read_through_the_slow_path(tmp_path):
    """Protobuf allows repeated floats one by one (wire type 5); no writer we know does."""
    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    def field(number: int, wire_type: int, payload: bytes) -> bytes:
        return varint(number << 3 | wire_type) + payload

    vectors = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    data = b""
    for i, vector in enumerate(vectors):
        sample = field(1, 0, varint(i % 2)) + field(2, 2, varint(2) + f"s{i}".encode())
        sample += b"".join(field(3, 5, struct.pack("<f", v)) for v in vector)
        data += field(1, 2, varint(len(sample)) + sample)
    path = tmp_path / "unpacked.pb"
    path.write_bytes(data)
    back = read_samples(path)
    np.testing.assert_array_equal(back.embeddings, vectors)
    assert back.ids.tolist() == ["s0", "s1", "s2"]
    np.testing.assert_array_equal(back.sample_types, [0, 1, 0])


# --------------------------------------------------------------------------- generated code


def test_generated_code_is_up_to_date():
    pytest.importorskip("grpc_tools")
    from protos.generate import PROTO_DIR, generated_bytes

    fresh = generated_bytes()
    assert set(fresh) == {"samples_pb2.py", "samples_pb2.pyi"}
    for name, data in fresh.items():
        assert (PROTO_DIR / name).read_bytes() == data, f"{name} is stale: python -m protos.generate"


def test_public_api():
    assert (protos.TARGET, protos.NONTARGET) == (0, 1)
    assert issubclass(protos.SamplesFormatError, ValueError)
    for name in ("read_samples", "write_samples", "SampleSet", "DatasetMetadata"):
        assert hasattr(protos, name)


# ------------------------------------------------------------------------------- bad files


def one_line_error(path, match: str) -> str:
    with pytest.raises(SamplesFormatError) as info:
        read_samples(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert match in message, message
    return message


def crafted(tmp_path, rows, name="crafted.pb"):
    """Write (id, type, vector) rows with the generated class, bypassing validation."""
    message = samples_pb2.Samples()
    for sample_id, sample_type, vector in rows:
        sample = message.samples.add()
        sample.sample_id = sample_id
        sample.sample_type = sample_type
        sample.mswc_embedding_vector.extend(vector)
    path = tmp_path / name
    path.write_bytes(message.SerializeToString())
    return path


def test_empty_file(tmp_path):
    (tmp_path / "empty.pb").write_bytes(b"")
    one_line_error(tmp_path / "empty.pb", "empty")


@pytest.mark.parametrize("content", [
    b"SET,LINK,WORD\nTRAIN,a/b.opus,a\n",
    b'{"samples": []}',
    b"PK\x03\x04" + bytes(range(256)) * 4,
    np.random.default_rng(0).bytes(4096),
])
def test_not_a_protocol_buffer(tmp_path, content):
    path = tmp_path / "junk.pb"
    path.write_bytes(content)
    with pytest.raises(SamplesFormatError) as info:
        read_samples(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_every_truncation_is_detected(tmp_path, pool):
    path = tmp_path / "full.pb"
    write_samples(path, pool.subset(np.arange(20)))
    data = path.read_bytes()
    cut = tmp_path / "cut.pb"
    for length in list(range(1, 200, 7)) + list(range(len(data) - 200, len(data), 3)):
        cut.write_bytes(data[:length])
        with pytest.raises(SamplesFormatError):
            read_samples(cut)


def test_truncation_at_a_sample_boundary(tmp_path, pool):
    """Only the trailing sample count can tell a file cut between two samples."""
    message = samples_pb2.Samples.FromString(
        (write_samples(tmp_path / "s.pb", pool), (tmp_path / "s.pb").read_bytes())[1])
    message.ClearField("num_samples")
    del message.samples[-1]
    (tmp_path / "cut.pb").write_bytes(message.SerializeToString())
    one_line_error(tmp_path / "cut.pb", "truncated")


def test_concatenated_files(tmp_path, pool):
    write_samples(tmp_path / "a.pb", pool.subset(np.arange(10)))
    write_samples(tmp_path / "b.pb", pool.subset(np.arange(10, 15)))
    both = tmp_path / "both.pb"
    both.write_bytes((tmp_path / "a.pb").read_bytes() + (tmp_path / "b.pb").read_bytes())
    one_line_error(both, "concatenated")


def test_inconsistent_vector_lengths(tmp_path):
    path = crafted(tmp_path, [("a", 0, [1.0, 2.0, 3.0]), ("b", 1, [1.0, 2.0, 3.0]),
                              ("c", 1, [1.0, 2.0])])
    message = one_line_error(path, "inconsistent vector lengths")
    assert "'c'" in message and "2 values" in message and "3" in message


def test_empty_vector(tmp_path):
    one_line_error(crafted(tmp_path, [("a", 0, []), ("b", 1, [])]), "empty embedding")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values(tmp_path, bad):
    path = crafted(tmp_path, [("a", 0, [1.0, 2.0]), ("b", 1, [bad, 0.0]), ("c", 1, [0.0, 0.0])])
    message = one_line_error(path, "NaN/inf")
    assert "'b'" in message


def test_duplicate_ids(tmp_path):
    path = crafted(tmp_path, [("a", 0, [1.0]), ("b", 1, [2.0]), ("a", 1, [3.0])])
    message = one_line_error(path, "duplicate sample id 'a'")
    assert "#0" in message and "#2" in message


def test_unknown_sample_type(tmp_path):
    one_line_error(crafted(tmp_path, [("a", 0, [1.0]), ("b", 7, [2.0])]), "sample_type 7")


def test_empty_id(tmp_path):
    one_line_error(crafted(tmp_path, [("a", 0, [1.0]), ("", 1, [2.0])]), "empty sample_id")


def test_no_samples(tmp_path):
    path = tmp_path / "none.pb"
    path.write_bytes(samples_pb2.Samples(metadata=samples_pb2.DatasetMetadata(language="es"))
                     .SerializeToString())
    one_line_error(path, "no samples")


def test_metadata_dim_must_match(tmp_path, pool):
    message = samples_pb2.Samples.FromString(
        (write_samples(tmp_path / "s.pb", pool), (tmp_path / "s.pb").read_bytes())[1])
    message.metadata.embedding_dim = 99
    (tmp_path / "bad.pb").write_bytes(message.SerializeToString())
    one_line_error(tmp_path / "bad.pb", "embedding_dim=99")


# --------------------------------------------------------------------------- bad sample sets


def test_write_refuses_invalid_sets_and_keeps_the_old_file(tmp_path, pool):
    path = tmp_path / "s.pb"
    write_samples(path, pool)
    before = path.read_bytes()
    broken = pool.subset(np.arange(len(pool)))
    broken.embeddings[5, 3] = np.nan
    with pytest.raises(SamplesFormatError, match=r"^cannot write .*NaN/inf"):
        write_samples(path, broken)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pb"]


@pytest.mark.parametrize("mutate, match", [
    (lambda s: s.keywords.__setitem__(np.flatnonzero(s.sample_types == TARGET)[0], ""),
     "no keyword"),
    (lambda s: s.keywords.__setitem__(np.flatnonzero(s.sample_types == TARGET)[0], "delta"),
     "not among the target keywords"),
    (lambda s: setattr(s.metadata, "target_keywords", ["beta", "beta", "zeta", "año"]),
     "duplicates"),
    (lambda s: s.ids.__setitem__(7, s.ids[3]), "duplicate sample id"),
    (lambda s: setattr(s, "embeddings", s.embeddings[:, :0]), "empty"),
])
def test_inconsistent_sets_are_refused(tmp_path, pool, mutate, match):
    pool.keywords = pool.keywords.astype("<U16")
    mutate(pool)
    with pytest.raises(SamplesFormatError, match=match):
        write_samples(tmp_path / "s.pb", pool)


def test_nontarget_is_not_a_valid_target_keyword(tmp_path):
    bad = random_sample_set(20, dim=4, target_keywords=["nontarget", "b"], seed=1)
    with pytest.raises(SamplesFormatError, match="cannot be a target keyword"):
        write_samples(tmp_path / "s.pb", bad)


def test_missing_file_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_samples(tmp_path / "nope.pb")


def test_import_costs():
    """protos never pulls in TensorFlow or scikit-learn; protos.atomic not even protobuf."""
    import subprocess

    code = ("import sys, protos.atomic\n"
            "assert 'google.protobuf' not in sys.modules and 'numpy' not in sys.modules\n"
            "from protos import read_samples, SampleSet\n"
            "import protos.synthetic\n"
            "assert 'google.protobuf' in sys.modules\n"
            "assert 'tensorflow' not in sys.modules and 'sklearn' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
