"""The Multilingual Spoken Words Corpus (MSWC) layout on disk.

::

    ROOT/{lang}/clips/{word}/{clip}.opus     48 kHz Ogg/Opus, about 1 s, word centred
    ROOT/{lang}_splits.csv                   SET,LINK,WORD,VALID,SPEAKER,GENDER
    ROOT/metadata.json.gz                    {lang: {"wordcounts": {word: n},
                                                     "filenames": {word: [clip, ...]}}}

``LINK`` is ``word/clip.opus`` and doubles as the sample id (unique within a
language). The public archives unpack the splits in slightly different places, so
the reader also looks in ``ROOT/{lang}/``, ``ROOT/splits/`` and
``ROOT/splits/{lang}/``; :func:`corpus_langs` finds languages in the same four
places. Every text file is UTF-8 ("año" is a word like any other); a file in another
encoding is refused with one line naming it.
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
from protos.errors import InputError

SPLITS_HEADER = ("SET", "LINK", "WORD", "VALID", "SPEAKER", "GENDER")
SPLITS = ("TRAIN", "DEV", "TEST")
METADATA_NAMES = ("metadata.json.gz", "metadata.json")
TEXT_ENCODING = "utf-8"
"""Encoding of every text file of the corpus (a UTF-8 byte-order mark is tolerated)."""


class CorpusError(InputError):
    """The corpus on disk is missing something or is malformed; the message says where."""


def decode_text(path: str | os.PathLike, raw: bytes) -> str:
    """``raw``, the bytes of the corpus file ``path``, as text.

    Raises:
        CorpusError: the bytes are not :data:`TEXT_ENCODING`; the message names the
            file, the first bad byte and the encoding expected.
    """
    try:
        # utf-8-sig: spreadsheet tools like to prepend a BOM when they re-save a CSV.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise CorpusError(
            f"{path}:{line}: not {TEXT_ENCODING.upper()} text (byte 0x{raw[e.start]:02x}); "
            f"re-save the file as {TEXT_ENCODING.upper()}"
        ) from None


def read_text(path: str | os.PathLike) -> str:
    """The corpus text file ``path``, decoded with :func:`decode_text`."""
    return decode_text(path, Path(path).read_bytes())


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


def corpus_langs(root: str | os.PathLike) -> list[str]:
    """Languages with a splits CSV in any place :func:`find_splits_csv` looks, sorted."""
    root = Path(root)
    langs: set[str] = set()
    for pattern in ("*_splits.csv", "*/*_splits.csv", "splits/*_splits.csv", "splits/*/*_splits.csv"):
        for path in root.glob(pattern):
            lang = path.name[: -len("_splits.csv")]
            if lang and path.is_file() and path in splits_csv_candidates(root, lang):
                langs.add(lang)
    return sorted(langs)


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
        CorpusError: missing file, not UTF-8, wrong header, a row with too few or
            too many fields, unknown SET, or a malformed LINK.
    """
    path = find_splits_csv(root, lang)
    try:
        # Streamed: a big language's splits file is hundreds of MB.
        with open(path, newline="", encoding="utf-8-sig") as f:
            return _parse_splits(path, csv.reader(f))
    except UnicodeDecodeError:
        read_text(path)  # raises the CorpusError that names the line and the byte
        raise


def _parse_splits(path: Path, reader) -> list[ClipRecord]:
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
    for row in reader:
        if not row or all(not cell.strip() for cell in row):
            continue
        # The reader's own count: a quoted field may span lines.
        where = f"{path}:{reader.line_num}"
        if len(row) != len(header):
            raise CorpusError(
                f"{where}: {len(row)} fields, expected {len(header)} ({','.join(header)}); "
                "quote a field that contains a comma"
            )
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
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise CorpusError(f"{path}: not a readable metadata file ({e})") from e
        try:
            data = json.loads(decode_text(path, raw))
        except json.JSONDecodeError as e:
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
