"""Read and write samples.pb / eval.pb files as numpy arrays.

A file is a ``Samples`` message (see ``samples.proto``): one ``Sample`` per clip
(sample type, id, embedding vector, spoken keyword) plus file-level metadata.
:func:`read_samples` returns a :class:`SampleSet`; :func:`write_samples` writes one
atomically. Both validate, and every problem is reported as a
:class:`SamplesFormatError` whose message is one line naming the file.

Pools too large for one message (protobuf stops at 2 GiB, about 517,000 vectors of
1024-d) are written as shards (:func:`write_sharded_samples`, names from
:mod:`protos.shards`); :func:`read_samples` reads a directory, a glob or the
unsharded name of such a set as one dataset, :func:`iter_samples` shard by shard.

Speed: the vectors are decoded with a *wire view* of the schema in which field 3
of ``Sample`` (``repeated float``, packed) is declared ``repeated bytes``. Packed
floats and bytes share a wire type, so protobuf's C parser hands each vector over
as one little-endian float32 buffer and numpy takes it from there: a 50,000 x 1024
file reads in about a second, with no Python-level loop over floats. The wire view
is derived from the real descriptor at import time, so the two cannot drift. Files
whose vectors are not packed (legal protobuf, produced by no writer we know of) are
read through the real schema instead: slower, same result.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import unknown_fields as _unknown_fields

from protos.errors import InputError
from google.protobuf.message import DecodeError

from protos import samples_pb2
from protos.atomic import atomic_write_bytes
from protos.clip_format import SAMPLE_RATE
from protos.shards import ShardSetError, parse_shard_name, resolve_sample_files, shard_glob, shard_name

TARGET: int = samples_pb2.TARGET  # 0, as in the seed schema
NONTARGET: int = samples_pb2.NONTARGET  # 1

#: Label name of class 0.
NONTARGET_LABEL = "nontarget"
#: Label name of class 1 in a seed-schema file (no keywords): a two-class task.
SEED_TARGET_LABEL = "target"
#: Sample rate assumed when a file does not record one (MSWC clips are 16 kHz).
DEFAULT_SAMPLE_RATE = SAMPLE_RATE

_VECTOR_FIELD = samples_pb2.Sample.MSWC_EMBEDDING_VECTOR_FIELD_NUMBER

#: Protobuf refuses to parse (and the C++ runtime to serialize) messages of 2 GiB or more.
MAX_MESSAGE_BYTES = 2**31 - 1


class SamplesFormatError(InputError):
    """A samples.pb / eval.pb file (or a SampleSet about to be written) is invalid."""


@dataclass
class DatasetMetadata:
    """File-level description of a samples.pb / eval.pb.

    Attributes:
        language: corpus language code, e.g. ``"es"``.
        target_keywords: the target keywords, sorted; class ids 1..K follow this order.
            Empty for a seed-schema file.
        backend: embedding backend name, e.g. ``"mswc"``.
        embedding_dim: length of every embedding vector (0 = not recorded).
        model_id: stable identity (hash) of the embedding model.
        sample_rate: sample rate the clips were embedded at, in Hz.
        role: ``"samples"`` (pool to select from) or ``"eval"`` (scoring set).
        params: creation parameters, as strings.
    """

    language: str = ""
    target_keywords: list[str] = field(default_factory=list)
    backend: str = ""
    embedding_dim: int = 0
    model_id: str = ""
    sample_rate: int = DEFAULT_SAMPLE_RATE
    role: str = ""
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class SampleSet:
    """A pool of clips as embeddings: the contents of one samples.pb / eval.pb.

    Inputs are coerced on construction (lists are fine); ``keywords=None`` means
    "no keywords" (a seed-schema, two-class set).

    Attributes:
        ids : np.ndarray [shape=(N,)] str. Unique sample ids.
        sample_types : np.ndarray [shape=(N,)] int32. ``TARGET`` (0) or ``NONTARGET`` (1).
        keywords : np.ndarray [shape=(N,)] str. The word spoken in each clip, targets
            and nontargets alike; ``""`` everywhere in a seed-schema file.
        embeddings : np.ndarray [shape=(N, D)] float32.
        metadata : DatasetMetadata.
        speakers : np.ndarray [shape=(N,)] str. Who spoke each clip (the corpus's
            speaker id); ``""`` where unknown (``speakers=None``: unknown for all, as in
            files written before the field existed).
    """

    ids: np.ndarray
    sample_types: np.ndarray
    keywords: np.ndarray | None
    embeddings: np.ndarray
    metadata: DatasetMetadata = field(default_factory=DatasetMetadata)
    speakers: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids = _as_str_array(self.ids)
        self.sample_types = np.asarray(self.sample_types, dtype=np.int32)
        if self.keywords is None:
            self.keywords = np.full(len(self.ids), "", dtype="<U1")
        self.keywords = _as_str_array(self.keywords)
        if self.speakers is None:
            self.speakers = np.full(len(self.ids), "", dtype="<U1")
        self.speakers = _as_str_array(self.speakers)
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def embedding_dim(self) -> int:
        """D, the length of every embedding vector."""
        return int(self.embeddings.shape[1]) if self.embeddings.ndim == 2 else 0

    @property
    def label_names(self) -> list[str]:
        """``["nontarget", *sorted target keywords]``; ``["nontarget", "target"]`` for a
        seed-schema set. Index i is the name of class id i."""
        return [NONTARGET_LABEL, *_target_label_names(self)]

    @property
    def labels(self) -> np.ndarray:
        """np.ndarray [shape=(N,)] int64: 0 for nontarget, 1..K for the sorted targets.

        Raises:
            SamplesFormatError: a target's keyword is not among the target keywords.
        """
        names = _target_label_names(self)
        labels = np.zeros(len(self.ids), dtype=np.int64)
        is_target = self.sample_types == TARGET
        if not self.metadata.target_keywords and not (self.keywords[is_target] != "").any():
            labels[is_target] = 1
            return labels
        names_arr = np.asarray(names)
        target_keywords = self.keywords[is_target]
        pos = np.searchsorted(names_arr, target_keywords)
        pos_clipped = np.minimum(pos, len(names_arr) - 1)
        unknown = names_arr[pos_clipped] != target_keywords
        if unknown.any():
            bad = int(np.flatnonzero(is_target)[np.argmax(unknown)])
            raise SamplesFormatError(
                f"target sample {self.ids[bad]!r} has keyword {self.keywords[bad]!r}, "
                f"which is not among the target keywords {names}"
            )
        labels[is_target] = pos + 1
        return labels

    def subset(self, indices) -> "SampleSet":
        """The samples at ``indices`` (int array or boolean mask), same metadata."""
        indices = np.asarray(indices)
        return SampleSet(
            ids=self.ids[indices],
            sample_types=self.sample_types[indices],
            keywords=self.keywords[indices],
            embeddings=self.embeddings[indices],
            metadata=dataclasses.replace(
                self.metadata,
                target_keywords=list(self.metadata.target_keywords),
                params=dict(self.metadata.params),
            ),
            speakers=self.speakers[indices],
        )


def _as_str_array(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "S":
        return arr.astype(str)
    if arr.size == 0:
        return np.zeros(arr.shape, dtype="<U1")
    return np.asarray([str(v) for v in arr.ravel().tolist()], dtype=str).reshape(arr.shape)


def _target_label_names(sample_set: SampleSet) -> list[str]:
    if sample_set.metadata.target_keywords:
        return sorted(set(sample_set.metadata.target_keywords))
    found = sorted(set(sample_set.keywords[sample_set.sample_types == TARGET].tolist()) - {""})
    return found or [SEED_TARGET_LABEL]


# ---------------------------------------------------------------------------- validation


def _validate(sample_set: SampleSet, where: str) -> None:
    """Raise SamplesFormatError(f"{where}: ...") on the first problem found."""

    def fail(what: str) -> None:
        raise SamplesFormatError(f"{where}: {what}")

    ids, types, keywords, emb = (sample_set.ids, sample_set.sample_types,
                                 sample_set.keywords, sample_set.embeddings)
    n = len(ids)
    if n == 0:
        fail("contains no samples (an empty file, or not a samples.pb)")
    if ids.ndim != 1 or types.shape != (n,) or keywords.shape != (n,):
        fail(f"ids, sample_types and keywords must all have shape ({n},); got "
             f"{ids.shape}, {types.shape} and {keywords.shape}")
    if sample_set.speakers.shape != (n,):
        fail(f"speakers must have shape ({n},), got {sample_set.speakers.shape}")
    if emb.ndim != 2 or emb.shape[0] != n:
        fail(f"embeddings must have shape ({n}, D); got {emb.shape}")
    if emb.shape[1] == 0:
        fail("embedding vectors are empty (0 values per sample)")
    bad_type = ~np.isin(types, (TARGET, NONTARGET))
    if bad_type.any():
        i = int(np.argmax(bad_type))
        fail(f"sample {ids[i]!r} (#{i}) has sample_type {int(types[i])}; expected "
             f"{TARGET} (TARGET) or {NONTARGET} (NONTARGET)")
    empty_id = ids == ""
    if empty_id.any():
        fail(f"sample #{int(np.argmax(empty_id))} has an empty sample_id")
    _check_unique_ids(ids, fail)
    finite_rows = np.isfinite(emb).all(axis=1)
    if not finite_rows.all():
        bad_rows = np.flatnonzero(~finite_rows)
        fail(f"{len(bad_rows)} sample(s) have NaN/inf embedding values, first "
             f"{ids[bad_rows[0]]!r} (#{bad_rows[0]})")
    meta = sample_set.metadata
    if meta.embedding_dim and meta.embedding_dim != emb.shape[1]:
        fail(f"metadata says embedding_dim={meta.embedding_dim} but the vectors have "
             f"{emb.shape[1]} values")
    if "" in meta.target_keywords:
        fail("metadata.target_keywords contains an empty keyword")
    if len(set(meta.target_keywords)) != len(meta.target_keywords):
        fail(f"metadata.target_keywords has duplicates: {meta.target_keywords}")
    target_keywords = keywords[types == TARGET]
    has_keyword = target_keywords != ""
    if has_keyword.any() and not has_keyword.all():
        fail(f"{int((~has_keyword).sum())} target sample(s) have no keyword while "
             f"{int(has_keyword.sum())} do; either every target has one or none does")
    if meta.target_keywords and not has_keyword.all():
        fail("metadata lists target keywords but target samples carry no keyword")
    if NONTARGET_LABEL in _target_label_names(sample_set) and (
            meta.target_keywords or has_keyword.any()):
        fail(f"{NONTARGET_LABEL!r} cannot be a target keyword (it names class 0)")
    try:
        sample_set.labels
    except SamplesFormatError as exc:
        fail(str(exc))


def _check_unique_ids(ids: np.ndarray, fail) -> None:
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup_mask = counts > 1
        dup = uniq[dup_mask][np.argmin(first[dup_mask])]
        where = np.flatnonzero(ids == dup)
        fail(f"duplicate sample id {str(dup)!r} (#{where[0]} and #{where[1]}; "
             f"{int(dup_mask.sum())} id(s) repeated)")


# ---------------------------------------------------------------------------- wire view


def _build_wire_view():
    """The Samples class of a copy of the schema where Sample field 3 is ``repeated bytes``."""
    file_proto = descriptor_pb2.FileDescriptorProto()
    samples_pb2.DESCRIPTOR.CopyToProto(file_proto)
    old_prefix = f".{file_proto.package}."
    file_proto.name = "dataperf_speech_wire_view.proto"
    file_proto.package = "dataperf_speech_wire_view"
    new_prefix = f".{file_proto.package}."

    def retarget(message_proto) -> None:
        for f in message_proto.field:
            if f.type_name.startswith(old_prefix):
                f.type_name = new_prefix + f.type_name[len(old_prefix):]
        for nested in message_proto.nested_type:
            retarget(nested)

    for message_proto in file_proto.message_type:
        retarget(message_proto)
        if message_proto.name == "Sample":
            for f in message_proto.field:
                if f.number == _VECTOR_FIELD:
                    f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    f.ClearField("options")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{file_proto.package}.Samples"))


_WireSamples = _build_wire_view()


# ---------------------------------------------------------------------------- reading


def read_samples(path: str | os.PathLike) -> SampleSet:
    """Read a samples.pb / eval.pb (this project's schema or the seed's), whole or sharded.

    Args:
        path: a file; or a sharded dataset (see :mod:`protos.shards`) given as a
            directory, a glob (``out/samples-*.pb``) or its unsharded name
            (``out/samples.pb`` when only ``out/samples-?????-of-?????.pb`` exist).

    Returns:
        The validated SampleSet; shards are concatenated in index order. A
        seed-schema file (no keywords, no metadata) has
        ``label_names == ["nontarget", "target"]``.

    Raises:
        FileNotFoundError / OSError: the file cannot be read, or nothing matches.
        SamplesFormatError: a file is empty, truncated, not a protocol buffer, or
            its contents are inconsistent (vector lengths, NaN/inf, duplicate ids, ...);
            shards are incomplete or disagree on their metadata.
    """
    try:
        files = resolve_sample_files(path)
    except ShardSetError as exc:
        raise SamplesFormatError(str(exc)) from None
    if len(files) == 1:
        return _read_one(files[0])
    return concatenate([_read_one(f) for f in files], where=os.fspath(path),
                       names=[f.name for f in files])


def iter_samples(path: str | os.PathLike) -> Iterator[tuple[Path, SampleSet]]:
    """Read a (possibly sharded) dataset one file at a time, for pools larger than memory.

    Yields:
        ``(file, SampleSet)`` per file, in dataset order. Ids are checked for
        uniqueness within each file only (use :func:`read_samples` for the whole check).
    """
    try:
        files = resolve_sample_files(path)
    except ShardSetError as exc:
        raise SamplesFormatError(str(exc)) from None
    for f in files:
        yield f, _read_one(f)


def concatenate(parts: Sequence[SampleSet], where: str = "samples", names: Sequence[str] | None = None) -> SampleSet:
    """One SampleSet from several with the same metadata (the shards of one dataset).

    Args:
        parts: the sets, in order.
        where: what to name in error messages.
        names: a name per part for error messages (default ``part #i``).

    Raises:
        SamplesFormatError: the parts disagree on metadata or vector length, or an
            id occurs in more than one part.
    """
    if not parts:
        raise SamplesFormatError(f"{where}: no samples to concatenate")
    names = list(names) if names is not None else [f"part #{i}" for i in range(len(parts))]
    first = parts[0]
    for name, part in zip(names[1:], parts[1:]):
        for f in dataclasses.fields(DatasetMetadata):
            a, b = getattr(first.metadata, f.name), getattr(part.metadata, f.name)
            if a != b:
                raise SamplesFormatError(
                    f"{where}: {name} has metadata {f.name}={b!r} but {names[0]} has {a!r}; "
                    "these files are not shards of one dataset")
        if part.embedding_dim != first.embedding_dim:
            raise SamplesFormatError(
                f"{where}: {name} has {part.embedding_dim}-d vectors, {names[0]} has "
                f"{first.embedding_dim}-d")
    combined = SampleSet(
        ids=np.concatenate([p.ids for p in parts]),
        sample_types=np.concatenate([p.sample_types for p in parts]),
        keywords=np.concatenate([p.keywords for p in parts]),
        speakers=np.concatenate([p.speakers for p in parts]),
        embeddings=np.concatenate([p.embeddings for p in parts]),
        metadata=dataclasses.replace(first.metadata,
                                     target_keywords=list(first.metadata.target_keywords),
                                     params=dict(first.metadata.params)),
    )
    _validate(combined, where)
    return combined


def _read_one(path: Path) -> SampleSet:
    """Read and validate one samples.pb file."""
    where = str(path)
    data = path.read_bytes()
    if not data:
        raise SamplesFormatError(f"{where}: file is empty (0 bytes)")
    try:
        wire = _WireSamples.FromString(data)
    except DecodeError:
        raise SamplesFormatError(
            f"{where}: not a valid samples.pb: truncated, or not a protocol buffer at all; "
            "copy or rebuild it") from None
    samples = wire.samples
    n = len(samples)
    if n == 0:
        raise SamplesFormatError(
            f"{where}: contains no samples (an empty Samples message, or not a samples.pb)")
    if wire.num_samples and wire.num_samples != n:
        raise SamplesFormatError(
            f"{where}: the file says it holds {wire.num_samples} samples but has {n}: "
            "it was truncated or several files were concatenated")
    ids = np.asarray([s.sample_id for s in samples], dtype=str)
    types = np.asarray([s.sample_type for s in samples], dtype=np.int32)
    keywords = np.asarray([s.keyword for s in samples], dtype=str)
    speakers = np.asarray([s.speaker for s in samples], dtype=str)
    if not wire.num_samples and (wire.HasField("metadata") or (keywords != "").any()):
        # write_samples always ends a file with num_samples; only seed-schema files
        # (no keywords, no metadata) lack it.
        raise SamplesFormatError(
            f"{where}: has keywords or metadata but no trailing num_samples: the file was "
            "truncated, or written without protos.write_samples (set Samples.num_samples)")
    metadata = _metadata_from_proto(wire.metadata)

    if _has_unpacked_vectors(samples):
        del wire, samples
        embeddings = _vectors_via_real_schema(data, ids, where)
    else:
        del data
        vectors = [v[0] if len(v) == 1 else b"".join(v)
                   for v in (s.mswc_embedding_vector for s in samples)]
        del wire, samples
        nbytes = np.fromiter(map(len, vectors), dtype=np.int64, count=n)
        if (nbytes % 4).any():
            raise SamplesFormatError(
                f"{where}: not a valid samples.pb: a vector's byte length is not a "
                "multiple of 4 (corrupt file)")
        _check_lengths(nbytes // 4, ids, where)
        buffer = bytearray().join(vectors)  # a bytearray gives numpy a writable array
        del vectors
        embeddings = np.frombuffer(buffer, dtype="<f4").reshape(n, -1)
        embeddings = embeddings.astype(np.float32, copy=False)

    sample_set = SampleSet(ids=ids, sample_types=types, keywords=keywords,
                           embeddings=embeddings, metadata=metadata, speakers=speakers)
    _validate(sample_set, where)
    return sample_set


def _has_unpacked_vectors(samples) -> bool:
    """True if any sample stores floats one by one (wire type 5) instead of packed."""
    for sample in samples:
        unknown = _unknown_fields.UnknownFieldSet(sample)
        if len(unknown) and any(f.field_number == _VECTOR_FIELD for f in unknown):
            return True
    return False


def _vectors_via_real_schema(data: bytes, ids: np.ndarray, where: str) -> np.ndarray:
    """Slow path for unpacked vectors: parse with the real schema, convert per sample."""
    message = samples_pb2.Samples.FromString(data)
    lengths = np.fromiter((len(s.mswc_embedding_vector) for s in message.samples),
                          dtype=np.int64, count=len(message.samples))
    _check_lengths(lengths, ids, where)
    embeddings = np.empty((len(lengths), int(lengths[0])), dtype=np.float32)
    for row, sample in zip(embeddings, message.samples):
        row[:] = sample.mswc_embedding_vector
    return embeddings


def _check_lengths(lengths: np.ndarray, ids: np.ndarray, where: str) -> None:
    """All vectors must have the same, non-zero length."""
    if lengths[0] == 0:
        raise SamplesFormatError(f"{where}: sample {ids[0]!r} (#0) has an empty embedding vector")
    bad = np.flatnonzero(lengths != lengths[0])
    if len(bad):
        i = int(bad[0])
        raise SamplesFormatError(
            f"{where}: inconsistent vector lengths: sample {ids[i]!r} (#{i}) has "
            f"{lengths[i]} values, the first sample has {lengths[0]} "
            f"({len(bad)} sample(s) differ)")


def _metadata_from_proto(meta) -> DatasetMetadata:
    return DatasetMetadata(
        language=meta.language,
        target_keywords=sorted(meta.target_keywords),
        backend=meta.backend,
        embedding_dim=int(meta.embedding_dim),
        model_id=meta.model_id,
        sample_rate=int(meta.sample_rate) or DEFAULT_SAMPLE_RATE,
        role=meta.role,
        params=dict(meta.params),
    )


# ---------------------------------------------------------------------------- writing


def write_samples(path: str | os.PathLike, sample_set: SampleSet) -> None:
    """Validate ``sample_set`` and write it to ``path`` atomically.

    The file parses with the seed schema too (it ignores keywords and metadata).
    ``metadata.embedding_dim`` is written as D; ``metadata.target_keywords`` as the
    set's target label names (empty for a seed-style, keyword-less set).

    Raises:
        SamplesFormatError: the set is invalid (same checks as :func:`read_samples`).
    """
    path = Path(path)
    atomic_write_bytes(path, serialize_samples(sample_set, where=f"cannot write {path}"))


def serialize_samples(sample_set: SampleSet, where: str = "cannot serialize samples") -> bytes:
    """The bytes :func:`write_samples` writes: validated, deterministic for equal inputs.

    For writers that do not write local files (a distributed pipeline writing to
    object storage): same checks, same bytes.

    Raises:
        SamplesFormatError: the set is invalid, or too large for one message
            (protobuf's 2 GiB limit: shard it, see :func:`write_sharded_samples`).
    """
    # The size check first: it is cheap, and a set this large is costly to validate.
    if sample_set.embeddings.ndim == 2 and len(sample_set.ids):
        n, dim = sample_set.embeddings.shape
        if n > max_samples_per_file(dim, id_chars=len(sample_set.ids[0])):
            raise SamplesFormatError(
                f"{where}: {n:,} samples of {dim} floats make a message over 2 GiB, where protobuf "
                f"stops: write shards (at most ~{max_samples_per_file(dim):,} samples each, "
                "see protos.write_sharded_samples)")
    _validate(sample_set, where)
    n, dim = sample_set.embeddings.shape
    message = _WireSamples()
    vectors = np.ascontiguousarray(sample_set.embeddings, dtype="<f4")
    for sample_id, sample_type, keyword, speaker, vector in zip(
            sample_set.ids.tolist(), sample_set.sample_types.tolist(),
            sample_set.keywords.tolist(), sample_set.speakers.tolist(), vectors):
        sample = message.samples.add()
        sample.sample_type = sample_type
        sample.sample_id = sample_id
        sample.mswc_embedding_vector.append(vector.tobytes())
        if keyword:
            sample.keyword = keyword
        if speaker:
            sample.speaker = speaker
    meta = sample_set.metadata
    out = message.metadata
    out.language = meta.language
    keyworded = meta.target_keywords or (sample_set.keywords[sample_set.sample_types == TARGET]
                                         != "").any()
    if keyworded:
        out.target_keywords.extend(sample_set.label_names[1:])
    out.backend = meta.backend
    out.embedding_dim = dim
    out.model_id = meta.model_id
    out.sample_rate = meta.sample_rate
    out.role = meta.role
    for key, value in meta.params.items():
        out.params[str(key)] = str(value)
    message.num_samples = n
    return message.SerializeToString()


def max_samples_per_file(dim: int, id_chars: int = 40) -> int:
    """Most samples of ``dim`` float32 that fit one samples.pb under protobuf's 2 GiB limit.

    Each sample costs ``4 * dim`` bytes of floats plus about ``id_chars + 16`` bytes of
    id, keyword and framing (MSWC ids are ~30-40 characters).
    """
    return int((MAX_MESSAGE_BYTES - 2**20) // (4 * dim + id_chars + 16))


def write_sharded_samples(directory: str | os.PathLike, stem: str, sample_set: SampleSet,
                          num_shards: int, suffix: str = ".pb") -> list[Path]:
    """Write ``sample_set`` as ``num_shards`` contiguous shards ``{stem}-00000-of-N{suffix}``.

    Each shard is a complete samples.pb with the set's metadata; read them back as
    one dataset with :func:`read_samples` (directory, glob or ``{stem}{suffix}``).
    Stale files of the same dataset (an unsharded ``{stem}{suffix}``, shards with
    another count) are removed after the new shards are written.

    Returns:
        The shard paths, in order.

    Raises:
        SamplesFormatError: the set is invalid, or has fewer samples than shards.
    """
    directory = Path(directory)
    n = len(sample_set)
    if num_shards < 1 or num_shards > n:
        raise SamplesFormatError(
            f"cannot write {n} samples as {num_shards} shards: need 1 <= shards <= samples")
    _validate(sample_set, f"cannot write {directory / (stem + suffix)}")
    bounds = [n * i // num_shards for i in range(num_shards + 1)]
    paths = [directory / shard_name(stem, i, num_shards, suffix) for i in range(num_shards)]
    for i, path in enumerate(paths):
        write_samples(path, sample_set.subset(np.arange(bounds[i], bounds[i + 1])))
    remove_stale_outputs(directory, stem, suffix, keep=paths)
    return paths


def remove_stale_outputs(directory: str | os.PathLike, stem: str, suffix: str, keep: Sequence[Path]) -> list[Path]:
    """Delete files of dataset ``{stem}{suffix}`` in ``directory`` other than ``keep``.

    A directory must never hold two versions of a dataset (the unsharded file and
    shards, or shards of two counts): readers could not tell which is current.

    Returns:
        The files removed.
    """
    directory = Path(directory)
    keep_names = {Path(k).name for k in keep}
    removed = []
    candidates = [directory / f"{stem}{suffix}", *map(Path, glob.glob(shard_glob(directory / f"{stem}{suffix}")))]
    for path in candidates:
        parsed = parse_shard_name(path.name)
        is_ours = path.name == f"{stem}{suffix}" or (parsed is not None and parsed[0] == stem and parsed[3] == suffix)
        if is_ours and path.name not in keep_names and path.is_file():
            path.unlink()
            removed.append(path)
    return removed
