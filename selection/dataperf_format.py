"""Convert between this project's files and DataPerf's published speech-data layout.

DataPerf's later releases ship one directory per language (``dataperf_{lang}_data/``)::

    allowed_training_set.yaml   {"targets": {keyword: [clip_id, ...]}, "nontargets": [clip_id, ...]}
    eval.yaml                   the same structure, for the scoring clips
    train_embeddings/{word}.parquet   columns clip_id (string), mswc_embedding_vector (list of float)
    eval_embeddings/{word}.parquet    the same, for the scoring clips

and a submission is a ``{lang}_{size}_train.json`` with the structure of
allowed_training_set.yaml (the chosen ids only). A clip id starts with its word
(``"word/clip.wav"``): DataPerf's loader finds a nontarget's parquet file from the id's
first path component, and a target's from its keyword. See docs/SELECTION.md for the
assumptions made about the layout.

Subcommands::

    python -m selection.dataperf_format import --data_dir dataperf_en_data --outdir work/en
        -> work/en/samples.pb, work/en/eval.pb
    python -m selection.dataperf_format export --samples samples.pb --eval eval.pb \\
        --outdir dataperf_xx_data
    python -m selection.dataperf_format to-json --train_file train.npz --outdir submission/
        -> submission/{lang}_{size}_train.json
    python -m selection.dataperf_format from-json --train_json en_25_train.json \\
        --samples samples.pb --outdir .        -> ./train.npz

pyarrow (parquet) and PyYAML are imported only when needed (the ``interop`` extra);
nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from protos import NONTARGET, TARGET, DatasetMetadata, SampleSet, SamplesFormatError, read_samples, write_samples
from protos.atomic import atomic_write_bytes, atomic_write_text
from protos.dataperf import dataperf_training_order
from protos.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_STATUS_HELP, EXIT_USAGE, EnvironmentProblem, InputError, run_cli
from protos.outputs import check_output_dir
from protos.train_file import TRAIN_FILE_NAME, TrainFileError, TrainSet, load_train_file, write_train_file

ALLOWED_TRAINING_SET = "allowed_training_set.yaml"
EVAL_YAML = "eval.yaml"
TRAIN_EMBEDDINGS = "train_embeddings"
EVAL_EMBEDDINGS = "eval_embeddings"
CLIP_ID_COLUMN = "clip_id"
VECTOR_COLUMN = "mswc_embedding_vector"
#: Backend recorded for vectors imported from DataPerf's files (their MSWC embedding model).
IMPORTED_BACKEND = "mswc"
#: Parquet schema-metadata key under which export records backend / model id / dim.
PROVENANCE_KEY = "dataperf_speech.provenance"

PROG = "python -m selection.dataperf_format"
__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_USAGE", "DataPerfFormatError", "main"]


class DataPerfFormatError(InputError):
    """A file in DataPerf's layout (or a file to convert into it) is missing or invalid."""


def _require(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        package = {"pyarrow.parquet": "pyarrow", "pyarrow": "pyarrow", "yaml": "pyyaml"}[module]
        raise EnvironmentProblem(
            f"DataPerf's format needs {package}, which is not installed: "
            "pip install 'dataperf-speech[interop]'") from None


def word_of_clip(clip_id: str) -> str:
    """The word a DataPerf clip id names: its first path component (``"word/x.wav"``)."""
    head, sep, _ = clip_id.partition("/")
    return head if sep else ""


# -------------------------------------------------------------------------- yaml / json


def read_id_lists(path: Path) -> tuple[dict[str, list[str]], list[str]]:
    """Read allowed_training_set.yaml / eval.yaml / a train json.

    Returns:
        (targets, nontargets): ``{keyword: [clip_id, ...]}`` and ``[clip_id, ...]``.

    Raises:
        DataPerfFormatError: missing file, not YAML/JSON, or not that structure.
    """
    if not path.is_file():
        raise DataPerfFormatError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataPerfFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                  "DataPerf's yaml and json files are UTF-8") from None
    try:
        if path.suffix == ".json":
            document = json.loads(text)
        else:
            yaml = _require("yaml")
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            document = yaml.load(text, Loader=loader)
    except DataPerfFormatError:
        raise
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError: both one line here
        raise DataPerfFormatError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'} "
                                  f"({str(exc).splitlines()[0]})") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("targets"), Mapping):
        raise DataPerfFormatError(f"{path}: expected a mapping with 'targets' "
                                  "({keyword: [clip ids]}) and 'nontargets' ([clip ids])")
    nontargets = document.get("nontargets") or []
    targets = document["targets"]
    if not isinstance(nontargets, list) or not all(
            isinstance(ids, list) for ids in targets.values()):
        raise DataPerfFormatError(f"{path}: 'nontargets' and every target must map to a list "
                                  "of clip ids")
    for ids in [nontargets, *targets.values()]:
        bad = [i for i in ids if not isinstance(i, str)]
        if bad:
            raise DataPerfFormatError(f"{path}: clip ids must be strings, found {bad[0]!r}")
    return {str(k): list(v) for k, v in targets.items()}, list(nontargets)


def _yaml_text(targets: Mapping[str, list[str]], nontargets: list[str]) -> str:
    yaml = _require("yaml")
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump({"targets": {k: list(v) for k, v in sorted(targets.items())},
                      "nontargets": list(nontargets)}, Dumper=dumper, sort_keys=True,
                     allow_unicode=True, default_flow_style=False)


def train_json_text(targets: Mapping[str, list[str]], nontargets: list[str]) -> str:
    """A DataPerf submission: ``{"nontargets": [...], "targets": {kw: [...]}}``, sorted keys."""
    return json.dumps({"targets": {k: list(v) for k, v in targets.items()},
                       "nontargets": list(nontargets)}, sort_keys=True, indent=4,
                      ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------ parquet


def read_parquet_vectors(path: Path) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Read one DataPerf embeddings parquet file.

    Returns:
        (clip_ids, vectors, provenance): N ids, np.ndarray [shape=(N, D)] float32, and
        the embedding's provenance if this project wrote the file (else ``{}``).

    Raises:
        DataPerfFormatError: missing/unreadable file, missing columns, ragged vectors.
    """
    pq = _require("pyarrow.parquet")
    pa = _require("pyarrow")
    if not path.is_file():
        raise DataPerfFormatError(f"{path}: no such file")
    try:
        table = pq.read_table(path, columns=[CLIP_ID_COLUMN, VECTOR_COLUMN])
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise DataPerfFormatError(f"{path}: cannot read {CLIP_ID_COLUMN!r} and "
                                  f"{VECTOR_COLUMN!r} from it ({str(exc).splitlines()[0]})") from None
    ids = [str(i) for i in table.column(CLIP_ID_COLUMN).to_pylist()]
    column = table.column(VECTOR_COLUMN).combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
            or pa.types.is_fixed_size_list(column.type)):
        raise DataPerfFormatError(f"{path}: {VECTOR_COLUMN!r} must hold lists of floats, "
                                  f"got {column.type}")
    if column.null_count:
        raise DataPerfFormatError(f"{path}: {column.null_count} clip(s) have no vector")
    lengths = np.asarray(column.value_lengths()) if not pa.types.is_fixed_size_list(
        column.type) else np.full(len(column), column.type.list_size)
    if len(lengths) and (lengths != lengths[0]).any():
        i = int(np.argmax(lengths != lengths[0]))
        raise DataPerfFormatError(f"{path}: clip {ids[i]!r} has a {lengths[i]}-d vector, the "
                                  f"first has {lengths[0]}-d")
    flat = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    dim = int(lengths[0]) if len(lengths) else 0
    raw = (table.schema.metadata or {}).get(PROVENANCE_KEY.encode())
    try:
        provenance = {str(k): str(v) for k, v in json.loads(raw).items()} if raw else {}
    except (ValueError, AttributeError):
        provenance = {}
    return ids, flat.reshape(len(ids), dim), provenance


def write_parquet_vectors(path: Path, clip_ids: list[str], vectors: np.ndarray,
                          provenance: Mapping[str, str] | None = None) -> None:
    """Write one embeddings parquet file (``clip_id`` string, ``mswc_embedding_vector``
    list<float32>) atomically; ``provenance`` (backend, model id, ...) goes into the
    file's schema metadata, which DataPerf's readers ignore."""
    pq = _require("pyarrow.parquet")
    pa = _require("pyarrow")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    values = pa.array(vectors.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(len(vectors) + 1, dtype=np.int32) * vectors.shape[1])
    table = pa.table({CLIP_ID_COLUMN: pa.array(clip_ids, type=pa.string()),
                      VECTOR_COLUMN: pa.ListArray.from_arrays(offsets, values)})
    if provenance:
        table = table.replace_schema_metadata(
            {PROVENANCE_KEY: json.dumps(dict(provenance), sort_keys=True)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    atomic_write_bytes(path, buffer.getvalue())


# ------------------------------------------------------------------------- conversions


def load_split(id_file: Path, embeddings_dir: Path, language: str, role: str) -> SampleSet:
    """One DataPerf split (allowed training set or eval set) as a SampleSet.

    Target clips are read from ``{keyword}.parquet``, nontargets from the parquet named
    by the first component of their id. The keyword of a nontarget is that word.

    Raises:
        DataPerfFormatError: a listed clip is missing from its parquet file, an id is
            listed twice, vectors differ in length, ...
    """
    targets, nontargets = read_id_lists(id_file)
    if not targets:
        raise DataPerfFormatError(f"{id_file}: lists no target keyword")
    wanted: dict[str, list[tuple[str, str, int]]] = {}  # parquet word -> (id, keyword, type)
    for keyword, ids in targets.items():
        wanted.setdefault(keyword, []).extend((i, keyword, TARGET) for i in ids)
    for clip_id in nontargets:
        word = word_of_clip(clip_id)
        if not word:
            raise DataPerfFormatError(f"{id_file}: nontarget id {clip_id!r} does not start "
                                      "with its word ('word/clip'), so its parquet file "
                                      "cannot be found")
        wanted.setdefault(word, []).append((clip_id, word, NONTARGET))
    ids, types, keywords, blocks = [], [], [], []
    provenance: dict[str, str] = {}
    for word in sorted(wanted):
        path = embeddings_dir / f"{word}.parquet"
        file_ids, vectors, file_provenance = read_parquet_vectors(path)
        provenance = provenance or file_provenance
        row_of = {}
        for row, clip_id in enumerate(file_ids):
            row_of.setdefault(clip_id, row)
        rows = []
        for clip_id, keyword, sample_type in wanted[word]:
            row = row_of.get(clip_id)
            if row is None:
                raise DataPerfFormatError(f"{id_file} lists {clip_id!r}, which is not in {path}")
            rows.append((row, clip_id, keyword, sample_type))
        # The parquet file's order, as DataPerf's loader reads a keyword's clips: the
        # pool's row order then stands for it (see protos.dataperf.dataperf_training_order).
        rows.sort(key=lambda item: item[0])
        for _, clip_id, keyword, sample_type in rows:
            ids.append(clip_id)
            types.append(sample_type)
            keywords.append(keyword)
        blocks.append(vectors[np.asarray([item[0] for item in rows], dtype=np.int64)])
    dims = {block.shape[1] for block in blocks}
    if len(dims) > 1:
        raise DataPerfFormatError(f"{embeddings_dir}: vectors of different lengths {sorted(dims)}")
    metadata = DatasetMetadata(language=language or provenance.get("language", ""),
                               target_keywords=sorted(targets),
                               backend=provenance.get("backend", IMPORTED_BACKEND),
                               model_id=provenance.get("model_id", ""), role=role,
                               params={"source": f"dataperf:{id_file.name}"})
    sample_set = SampleSet(ids=ids, sample_types=types, keywords=keywords,
                           embeddings=np.concatenate(blocks), metadata=metadata)
    return sample_set


def import_dataperf(data_dir: Path, outdir: Path, language: str | None = None,
                    train_embeddings: Path | None = None,
                    eval_embeddings: Path | None = None) -> tuple[Path, Path]:
    """DataPerf's ``dataperf_{lang}_data/`` -> ``outdir/samples.pb`` + ``outdir/eval.pb``.

    Returns:
        The two paths written.
    """
    if not data_dir.is_dir():
        raise DataPerfFormatError(f"{data_dir}: no such directory (--data_dir)")
    if language is None:
        # "dataperf_en_data" -> "en"
        name = data_dir.resolve().name
        parts = name.split("_")
        language = parts[1] if len(parts) == 3 and parts[0] == "dataperf" else ""
    train_embeddings = train_embeddings or data_dir / TRAIN_EMBEDDINGS
    eval_embeddings = eval_embeddings or data_dir / EVAL_EMBEDDINGS
    samples = load_split(data_dir / ALLOWED_TRAINING_SET, train_embeddings, language, "samples")
    eval_set = load_split(data_dir / EVAL_YAML, eval_embeddings, language, "eval")
    if samples.label_names != eval_set.label_names:
        raise DataPerfFormatError(f"{data_dir}: the training set's keywords "
                                  f"{samples.label_names[1:]} differ from the eval set's "
                                  f"{eval_set.label_names[1:]}")
    outdir.mkdir(parents=True, exist_ok=True)
    samples_path, eval_path = outdir / "samples.pb", outdir / "eval.pb"
    try:
        write_samples(samples_path, samples)
        write_samples(eval_path, eval_set)
    except SamplesFormatError as exc:
        raise DataPerfFormatError(str(exc)) from None
    return samples_path, eval_path


def _split_ids(sample_set: SampleSet, rows: np.ndarray | None = None
               ) -> tuple[dict[str, list[str]], list[str]]:
    rows = np.arange(len(sample_set)) if rows is None else rows
    names = sample_set.label_names
    labels = sample_set.labels
    targets: dict[str, list[str]] = {name: [] for name in names[1:]}
    nontargets: list[str] = []
    for row in rows.tolist():
        if labels[row] == 0:
            nontargets.append(str(sample_set.ids[row]))
        else:
            targets[names[labels[row]]].append(str(sample_set.ids[row]))
    return targets, nontargets


def _write_embeddings(sample_set: SampleSet, directory: Path, where: str) -> int:
    """Group clips into per-word parquet files the way DataPerf's loader looks them up."""
    directory.mkdir(parents=True, exist_ok=True)
    names, labels = sample_set.label_names, sample_set.labels
    files: dict[str, list[int]] = {}
    for row, (clip_id, label) in enumerate(zip(sample_set.ids.tolist(), labels.tolist())):
        if label > 0:
            word = names[label]
        else:
            word = word_of_clip(clip_id)
            if not word:
                raise DataPerfFormatError(
                    f"{where}: nontarget id {clip_id!r} does not start with its word "
                    "('word/clip'); DataPerf's loader could not find its vector")
        if "/" in word or word in ("", ".", ".."):
            raise DataPerfFormatError(f"{where}: word {word!r} cannot name a parquet file")
        files.setdefault(word, []).append(row)
    meta = sample_set.metadata
    provenance = {"backend": meta.backend, "model_id": meta.model_id, "language": meta.language}
    for word, rows in sorted(files.items()):
        index = np.asarray(rows, dtype=np.int64)
        write_parquet_vectors(directory / f"{word}.parquet", sample_set.ids[index].tolist(),
                              sample_set.embeddings[index], provenance)
    return len(files)


def export_dataperf(samples: SampleSet, eval_set: SampleSet, outdir: Path) -> None:
    """samples.pb + eval.pb -> DataPerf's layout in ``outdir`` (yaml files, two parquet dirs)."""
    if samples.label_names != eval_set.label_names:
        raise DataPerfFormatError(f"classes differ: samples {samples.label_names}, "
                                  f"eval {eval_set.label_names}")
    if samples.embedding_dim != eval_set.embedding_dim:
        raise DataPerfFormatError(f"embedding dims differ: samples {samples.embedding_dim}-d, "
                                  f"eval {eval_set.embedding_dim}-d")
    outdir.mkdir(parents=True, exist_ok=True)
    for sample_set, yaml_name, dir_name in ((samples, ALLOWED_TRAINING_SET, TRAIN_EMBEDDINGS),
                                            (eval_set, EVAL_YAML, EVAL_EMBEDDINGS)):
        _write_embeddings(sample_set, outdir / dir_name, yaml_name)
        atomic_write_text(outdir / yaml_name, _yaml_text(*_split_ids(sample_set)))


def train_json_name(language: str, train_size: int) -> str:
    """``{lang}_{size}_train.json``, DataPerf's submission file name."""
    return f"{language or 'xx'}_{train_size}_train.json"


def npz_to_train_json(train_file: Path, outdir: Path, language: str | None = None,
                      train_size: int | None = None) -> Path:
    """A train.npz from ``selection.main`` -> DataPerf's ``{lang}_{size}_train.json``."""
    try:
        train = load_train_file(train_file)
    except TrainFileError as exc:
        raise DataPerfFormatError(str(exc)) from None
    missing = [n for n, v in (("train_ids", train.ids), ("label_names", train.label_names))
               if v is None]
    if missing:
        raise DataPerfFormatError(f"{train_file}: has no {', '.join(missing)}; the json names "
                                  "clips by id (write train.npz with python -m selection.main)")
    ids = train.ids.tolist()
    labels = train.y.tolist()
    label_names = train.label_names
    if any(not 0 <= y < len(label_names) for y in labels):
        raise DataPerfFormatError(f"{train_file}: train_ids, train_y and label_names disagree")
    recorded_lang = train.language
    recorded_size = train.train_size
    language = language or recorded_lang
    if not language:
        raise DataPerfFormatError(f"{train_file}: records no language; pass --language")
    train_size = train_size or recorded_size or len(ids)
    if len(ids) > train_size:
        raise DataPerfFormatError(f"{train_file}: {len(ids)} clips, more than train size "
                                  f"{train_size}")
    targets: dict[str, list[str]] = {name: [] for name in label_names[1:]}
    nontargets: list[str] = []
    for clip_id, label in zip(ids, labels):
        if label == 0:
            nontargets.append(clip_id)
        else:
            targets[label_names[label]].append(clip_id)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / train_json_name(language, train_size)
    atomic_write_text(path, train_json_text(targets, nontargets))
    return path


def train_json_to_npz(train_json: Path, samples: SampleSet, outdir: Path,
                      train_size: int | None = None) -> Path:
    """DataPerf's train json + the pool it was chosen from -> ``outdir/train.npz``.

    The arrays are those ``selection.main`` writes, so ``python -m eval`` scores it.
    """
    targets, nontargets = read_id_lists(train_json)
    names = samples.label_names
    unknown = sorted(set(targets) - set(names[1:]))
    if unknown:
        raise DataPerfFormatError(f"{train_json}: keyword(s) {unknown} are not targets of the "
                                  f"pool {names[1:]}")
    row_of = {clip_id: row for row, clip_id in enumerate(samples.ids.tolist())}
    labels = samples.labels
    rows: list[int] = []
    for class_name, ids in [("nontarget", nontargets), *sorted(targets.items())]:
        class_id = names.index(class_name)
        for clip_id in ids:
            row = row_of.get(clip_id)
            if row is None:
                raise DataPerfFormatError(f"{train_json}: {clip_id!r} is not in the pool")
            if labels[row] != class_id:
                raise DataPerfFormatError(f"{train_json}: {clip_id!r} is listed as "
                                          f"{class_name!r} but is a {names[labels[row]]!r} clip")
            rows.append(row)
    if len(set(rows)) != len(rows):
        raise DataPerfFormatError(f"{train_json}: a clip is listed twice")
    if not rows:
        raise DataPerfFormatError(f"{train_json}: selects no clip")
    if train_size is None:
        stem = train_json.name.split("_")
        train_size = int(stem[1]) if len(stem) >= 3 and stem[1].isdigit() else len(rows)
    index = np.asarray(rows, dtype=np.int64)
    # The rows DataPerf's harness would train on, in its order (the pool's row order
    # stands for its parquet files' order).
    index = index[dataperf_training_order(samples.ids[index], labels[index], index)]
    meta = samples.metadata
    outdir.mkdir(parents=True, exist_ok=True)
    return write_train_file(outdir / TRAIN_FILE_NAME, TrainSet(
        x=samples.embeddings[index], y=labels[index], ids=samples.ids[index],
        label_names=list(names), backend=meta.backend, model_id=meta.model_id,
        embedding_dim=samples.embedding_dim, language=meta.language,
        algorithm=f"dataperf-json:{train_json.name}", train_size=train_size, seed=0))


# ---------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert between samples.pb/eval.pb/train.npz and DataPerf's published "
        "layout (allowed_training_set.yaml, eval.yaml, train_embeddings/ and "
        "eval_embeddings/ with per-word parquet files, {lang}_{size}_train.json).",
        epilog=EXIT_STATUS_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("import", help="dataperf_{lang}_data/ -> samples.pb + eval.pb")
    p.add_argument("--data_dir", required=True, type=Path,
                   help="DataPerf's per-language directory (allowed_training_set.yaml, ...)")
    p.add_argument("--outdir", required=True, type=Path, help="where to write the .pb files")
    p.add_argument("--language", help="language code (default: from dataperf_{lang}_data)")
    p.add_argument("--train_embeddings_dir", type=Path,
                   help=f"default DATA_DIR/{TRAIN_EMBEDDINGS}")
    p.add_argument("--eval_embeddings_dir", type=Path,
                   help=f"default DATA_DIR/{EVAL_EMBEDDINGS} (may be the same directory)")

    p = sub.add_parser("export", help="samples.pb + eval.pb -> DataPerf's layout")
    p.add_argument("--samples", required=True, type=Path, help="samples.pb")
    p.add_argument("--eval", required=True, type=Path, help="eval.pb")
    p.add_argument("--outdir", required=True, type=Path,
                   help="the dataperf_{lang}_data directory to write")

    p = sub.add_parser("to-json", help="train.npz -> {lang}_{size}_train.json (a submission)")
    p.add_argument("--train_file", required=True, type=Path, help="train.npz")
    p.add_argument("--outdir", required=True, type=Path, help="where to write the json")
    p.add_argument("--language", help="default: the language train.npz records")
    p.add_argument("--train_size", type=int,
                   help="the leaderboard's size in the file name (default: as recorded)")

    p = sub.add_parser("from-json", help="{lang}_{size}_train.json + samples.pb -> train.npz")
    p.add_argument("--train_json", required=True, type=Path)
    p.add_argument("--samples", required=True, type=Path, help="the pool it selects from")
    p.add_argument("--outdir", required=True, type=Path, help="where to write train.npz")
    p.add_argument("--train_size", type=int, help="default: from the file name")
    return parser


def _read(path: Path) -> SampleSet:
    if not path.is_file():
        raise DataPerfFormatError(f"{path}: no such file")
    try:
        return read_samples(path)
    except SamplesFormatError as exc:
        raise DataPerfFormatError(str(exc)) from None


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_output_dir(args.outdir, "--outdir")
    try:
        if args.command == "import":
            s, e = import_dataperf(args.data_dir, args.outdir, args.language,
                                   args.train_embeddings_dir, args.eval_embeddings_dir)
            print(f"wrote {s} and {e}")
        elif args.command == "export":
            export_dataperf(_read(args.samples), _read(args.eval), args.outdir)
            print(f"wrote {args.outdir}/{{{ALLOWED_TRAINING_SET},{EVAL_YAML},"
                  f"{TRAIN_EMBEDDINGS}/,{EVAL_EMBEDDINGS}/}}")
        elif args.command == "to-json":
            if args.train_size is not None and args.train_size < 1:
                raise DataPerfFormatError(f"--train_size must be at least 1, got {args.train_size}")
            print(f"wrote {npz_to_train_json(args.train_file, args.outdir, args.language, args.train_size)}")
        else:
            path = train_json_to_npz(args.train_json, _read(args.samples), args.outdir,
                                     args.train_size)
            print(f"wrote {path}")
    except OSError as exc:
        if exc.filename:  # names the file it failed on
            raise EnvironmentProblem(f"{exc.filename}: {exc.strerror}") from None
        raise EnvironmentProblem(f"cannot write into {args.outdir} (--outdir): {exc.strerror}; "
                                 "free space or choose another location") from None
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``python -m selection.dataperf_format``: exit status as in :mod:`protos.errors`,
    errors as one line on stderr."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
