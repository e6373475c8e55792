"""The ``{lang}_speakers.csv`` sidecar: which voice each speaker of a synthetic corpus is.

The real MSWC has no such file (a speaker is then its own voice); the synthesizer
writes one beside ``{lang}_splits.csv``, and the training plan reads it to hold whole
TTS engines and voices out::

    speaker,lang,gender,split,engine,voice,variant,family,...   (UTF-8, one row per speaker)

Only ``speaker`` is required to read it; ``engine``, ``voice`` and ``variant`` make
the voice key ``"engine:voice:variant"``. Header case does not matter; further
columns (the synthesizer records each speaker's channel) are kept as they are.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from corpus.layout import CorpusError, read_text, splits_csv_candidates
from protos.atomic import atomic_write_bytes

VOICE_COLUMNS = ("speaker", "engine", "voice", "variant")
"""The columns a voice key is made of (``speaker`` is the row's key)."""


def speakers_csv_name(lang: str) -> str:
    """File name of the sidecar of ``lang``."""
    return f"{lang}_speakers.csv"


def find_speakers_csv(root: str | os.PathLike, lang: str) -> Path | None:
    """The sidecar of ``lang``, looked for wherever a splits CSV may be; None if there is none."""
    for splits in splits_csv_candidates(root, lang):
        path = splits.with_name(speakers_csv_name(lang))
        if path.is_file():
            return path
    return None


def write_speakers(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a speakers sidecar atomically (UTF-8, ``\\n`` line ends).

    Args:
        path: destination, normally ``ROOT/{lang}_speakers.csv``.
        columns: the header; must include ``speaker``.
        rows: one sequence of values per speaker, in ``columns`` order (written as
            :func:`str` would show them).
    """
    if "speaker" not in columns:
        raise ValueError(f"a speakers sidecar needs a 'speaker' column, got {list(columns)}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"speaker row has {len(row)} values for {len(columns)} columns: {list(row)}")
        writer.writerow(row)
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def read_speakers(root: str | os.PathLike, lang: str) -> list[dict[str, str]]:
    """Rows of the sidecar of ``lang``, keys lower-cased; empty if there is no sidecar.

    Raises:
        CorpusError: the file is not UTF-8, lacks a ``speaker`` column, or a row has
            another number of fields than the header.
    """
    path = find_speakers_csv(root, lang)
    if path is None:
        return []
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    if "speaker" not in header:
        raise CorpusError(f"{path}: header {','.join(header) or '(empty)'} has no 'speaker' column")
    rows = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise CorpusError(f"{path}:{reader.line_num}: {len(row)} fields, expected {len(header)}")
        rows.append(dict(zip(header, row)))
    return rows


def voice_key(row: Mapping[str, str]) -> str:
    """``"engine:voice:variant"`` of a sidecar row (engine ``unknown`` and voice = speaker when absent)."""
    engine = (row.get("engine") or "").strip() or "unknown"
    voice = (row.get("voice") or row.get("speaker") or "").strip()
    variant = (row.get("variant") or "").strip()
    return f"{engine}:{voice}:{variant}"


def read_voices(root: str | os.PathLike, lang: str) -> dict[str, str]:
    """speaker -> voice key ``"engine:voice:variant"`` from the sidecar of ``lang``.

    Empty if the sidecar is absent (a real MSWC corpus): each speaker is then its own voice.
    """
    return {row["speaker"]: voice_key(row) for row in read_speakers(root, lang)}
