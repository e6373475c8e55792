"""The Multilingual Spoken Words Corpus (MSWC) layout on disk.

::

    ROOT/{lang}/clips/{word}/{clip}.opus     48 kHz Ogg/Opus, about 1 s, word centred
    ROOT/{lang}_splits.csv                   SET,LINK,WORD,VALID,SPEAKER,GENDER
    ROOT/metadata.json.gz                    {lang: {"wordcounts": {word: n},
                                                     "filenames": {word: [clip, ...]}}}

``LINK`` is ``word/clip.opus`` and doubles as the sample id (unique within a
language). The public archives unpack the splits in slightly different places, so
the reader also looks in ``ROOT/{lang}/``, ``ROOT/splits/`` and
``ROOT/splits/{lang}/``. Everything is UTF-8 ("año" is a word like any other).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from protos.atomic import atomic_write_bytes

SPLITS_HEADER = ("SET", "LINK", "WORD", "VALID", "SPEAKER", "GENDER")
SPLITS = ("TRAIN", "DEV", "TEST")
METADATA_NAMES = ("metadata.json.gz", "metadata.json")


class CorpusError(ValueError):
    """The corpus on disk is missing something or is malformed; the message says where."""


@dataclass(frozen=True)
class ClipRecord:
    """One row of a ``{lang}_splits.csv``.

    Attributes:
        link: ``word/clip.opus``, relative to ``ROOT/{lang}/clips``; the sample id.
        word: the keyword spoken in the clip.
        split: ``"TRAIN"``, ``"DEV"`` or ``"TEST"``.
        valid: MSWC's ``VALID`` flag.
        speaker: speaker id (splits are speaker-disjoint).
        gender: as in MSWC (``"MALE"``, ``"FEMALE"``, ``"OTHER"``, ``"NAN"``, ...).
    """

    link: str
    word: str
    split: str
    valid: bool
    speaker: str
    gender: str


def splits_csv_candidates(root: str | os.PathLike, lang: str) -> list[Path]:
    """The places a ``{lang}_splits.csv`` may live, in the order they are tried."""
    root = Path(root)
    name = f"{lang}_splits.csv"
    return [root / name, root / lang / name, root / "splits" / name, root / "splits" / lang / name]


def find_splits_csv(root: str | os.PathLike, lang: str) -> Path:
    """Locate the splits CSV of ``lang`` under ``root``.

    Raises:
        CorpusError: if none of :func:`splits_csv_candidates` exists.
    """
    candidates = splits_csv_candidates(root, lang)
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise CorpusError(
        f"no splits file for language {lang!r} under {root}: tried {tried}; "
        f"pass the MSWC root that contains {lang}_splits.csv (or unpack splits/{lang}.tar.gz there)"
    )


def _parse_valid(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no", ""):
        return False
    raise CorpusError(f"{where}: VALID must be True or False, got {value!r}")


def read_splits(root: str | os.PathLike, lang: str) -> list[ClipRecord]:
    """Read the splits CSV of ``lang``.

    Args:
        root: the corpus root.
        lang: language code, e.g. ``"es"``.

    Returns:
        One :class:`ClipRecord` per row, in file order.

    Raises:
        CorpusError: missing file, wrong header, unknown SET, or a malformed LINK.
    """
    path = find_splits_csv(root, lang)
    # utf-8-sig: spreadsheet tools like to prepend a BOM when they re-save a CSV.
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise CorpusError(f"{path}: empty file, expected header {','.join(SPLITS_HEADER)}") from None
        header = [h.strip().upper() for h in header]
        missing = [h for h in SPLITS_HEADER if h not in header]
        if missing:
            raise CorpusError(
                f"{path}: header {','.join(header)} lacks {','.join(missing)}; "
                f"expected {','.join(SPLITS_HEADER)}"
            )
        col = {h: header.index(h) for h in SPLITS_HEADER}
        records = []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            where = f"{path}:{line_no}"
            if len(row) < len(header):
                raise CorpusError(f"{where}: {len(row)} fields, expected {len(header)}")
            split = row[col["SET"]].strip().upper()
            if split not in SPLITS:
                raise CorpusError(f"{where}: SET must be one of {', '.join(SPLITS)}, got {row[col['SET']]!r}")
            link = row[col["LINK"]].strip()
            _check_link(link, where)
            records.append(
                ClipRecord(
                    link=link,
                    word=row[col["WORD"]].strip(),
                    split=split,
                    valid=_parse_valid(row[col["VALID"]], where),
                    speaker=row[col["SPEAKER"]].strip(),
                    gender=row[col["GENDER"]].strip(),
                )
            )
    return records


def _check_link(link: str, where: str) -> None:
    p = PurePosixPath(link)
    if not link or p.is_absolute() or ".." in p.parts or "\\" in link or len(p.parts) != 2:
        raise CorpusError(f"{where}: LINK must look like word/clip.opus, got {link!r}")


def read_metadata(root: str | os.PathLike) -> dict | None:
    """Read ``ROOT/metadata.json.gz`` (or an uncompressed ``metadata.json``); None if absent.

    Raises:
        CorpusError: if the file exists but is not valid (gzipped) JSON.
    """
    for name in METADATA_NAMES:
        path = Path(root) / name
        if not path.is_file():
            continue
        try:
            raw = path.read_bytes()
            if name.endswith(".gz"):
                raw = gzip.decompress(raw)
            data = json.loads(raw.decode("utf-8"))
        except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CorpusError(f"{path}: not a readable metadata file ({e})") from e
        if not isinstance(data, dict):
            raise CorpusError(f"{path}: expected a JSON object keyed by language")
        return data
    return None


def read_word_counts(root: str | os.PathLike, lang: str) -> dict[str, int]:
    """Number of clips per word: from ``metadata.json.gz`` when it covers ``lang``, else counted from the splits.

    Returns:
        ``{word: clip count}``.
    """
    metadata = read_metadata(root)
    if metadata is not None and isinstance(metadata.get(lang), dict) and "wordcounts" in metadata[lang]:
        counts = metadata[lang]["wordcounts"]
        if not isinstance(counts, dict):
            raise CorpusError(f"{root}/metadata: {lang}.wordcounts must be an object")
        return {str(w): int(n) for w, n in counts.items()}
    return dict(Counter(r.word for r in read_splits(root, lang)))


def clip_path(root: str | os.PathLike, lang: str, link: str) -> Path:
    """Path of the clip ``link`` (``word/clip.opus``): ``ROOT/{lang}/clips/{link}``.

    Raises:
        CorpusError: if ``link`` is absolute or climbs out with ``..``.
    """
    _check_link(link, f"clip link for {lang}")
    return Path(root) / lang / "clips" / link


def _csv_text(records: Iterable[ClipRecord]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SPLITS_HEADER)
    for r in records:
        if r.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {r.split!r} for {r.link}")
        writer.writerow([r.split, r.link, r.word, "True" if r.valid else "False", r.speaker, r.gender])
    return buf.getvalue()


def write_splits(path: str | os.PathLike, records: Iterable[ClipRecord]) -> None:
    """Write a splits CSV (UTF-8, header :data:`SPLITS_HEADER`) atomically."""
    atomic_write_bytes(path, _csv_text(records).encode("utf-8"))


def write_metadata(path: str | os.PathLike, metadata: Mapping[str, Mapping]) -> None:
    """Write ``{lang: {"wordcounts": ..., "filenames": ...}}`` as JSON, atomically.

    A path ending in ``.gz`` is gzipped with a zero timestamp, so identical
    metadata gives identical bytes.
    """
    raw = json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if str(path).endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=9, mtime=0)
    atomic_write_bytes(path, raw)
