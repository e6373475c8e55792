"""Word alignments of long recordings: a CSV, or Praat/Montreal Forced Aligner TextGrids.

Both readers produce :class:`AlignedWord` rows (recording, word, start, end in
seconds, plus optional speaker, split and gender), which
:mod:`dataset_builder.extract` cuts into 1-second clips.

CSV: a header with at least ``file,word,start,end`` (times in seconds); optional
``speaker``, ``split`` (TRAIN/DEV/TEST) and ``gender`` columns. ``file`` is
relative to the recordings directory (or absolute).

TextGrid: Praat's text formats, long or short (what MFA writes), UTF-8 or UTF-16.
The words come from the tier named ``words`` (MFA's name), else from the only
interval tier. The recording is the file with the TextGrid's name and any audio
extension.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from pathlib import Path
from typing import Iterator

from dataset_builder.errors import BuildError

#: Labels aligners use for silence, noise and unknown words, never keywords.
NON_WORDS = frozenset({"", "sil", "sp", "spn", "<eps>", "<sil>", "<unk>", "<noise>", "[noise]", "<spn>"})
AUDIO_EXTENSIONS = (".wav", ".flac", ".opus", ".ogg", ".mp3", ".m4a", ".aiff", ".aif")


@dataclasses.dataclass(frozen=True)
class AlignedWord:
    """One aligned word.

    Attributes:
        recording: path of the long recording.
        word: the word as aligned (normalised later).
        start, end: the word's interval in seconds.
        speaker, split, gender: from the alignment file when it has them, else "".
        where: file and line/interval, for messages.
    """

    recording: str
    word: str
    start: float
    end: float
    speaker: str = ""
    split: str = ""
    gender: str = ""
    where: str = ""


def read_csv_alignments(path: str | os.PathLike, recordings: str | os.PathLike) -> list[AlignedWord]:
    """Read a ``file,word,start,end[,speaker,split,gender]`` CSV.

    Raises:
        BuildError: missing columns or a value that is not a number.
    """
    path, recordings = Path(path), Path(recordings)
    try:
        return _read_csv_rows(path, recordings)
    except UnicodeDecodeError as e:
        raise BuildError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                         "save the alignment CSV as UTF-8") from None


def _read_csv_rows(path: Path, recordings: Path) -> list[AlignedWord]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        missing = [c for c in ("file", "word", "start", "end") if c not in columns]
        if missing:
            raise BuildError(
                f"{path}: alignment CSV lacks column(s) {', '.join(missing)}; "
                "expected a header file,word,start,end[,speaker,split,gender]"
            )
        out = []
        for line, row in enumerate(reader, start=2):
            def get(name: str) -> str:
                key = columns.get(name)
                return (row.get(key) or "").strip() if key else ""

            if None in row:  # DictReader files surplus fields under None
                raise BuildError(f"{path}:{line}: {len(row) - 1 + len(row[None])} fields, the header has "
                                 f"{len(reader.fieldnames)}; quote values that contain commas")
            try:
                start, end = float(get("start")), float(get("end"))
            except ValueError:
                raise BuildError(
                    f"{path}:{line}: start/end must be seconds, got {get('start')!r}, {get('end')!r}"
                ) from None
            file = get("file")
            out.append(AlignedWord(
                recording=str(Path(file) if os.path.isabs(file) else recordings / file),
                word=get("word"), start=start, end=end,
                speaker=get("speaker"), split=get("split").upper(), gender=get("gender"),
                where=f"{path}:{line}",
            ))
    return out


_TOKEN = re.compile(
    r'"(?:[^"]|"")*"'            # quoted string ("" escapes a quote)
    r"|\[\d*\]"                 # long format's item [1] / intervals [2]: skipped
    r"|<exists>|<absent>"
    r"|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
    r"|[A-Za-z_][\w]*"          # long format's key names: skipped
)


def _tokens(text: str) -> Iterator[str | float]:
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token[0] == '"':
            yield token[1:-1].replace('""', '"')
        elif token[0] == "[" or token[0].isalpha() or token[0] == "_":
            continue
        elif token[0] == "<":
            yield token
        else:
            yield float(token)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig")


def parse_textgrid(path: str | os.PathLike) -> dict[str, list[tuple[float, float, str]]]:
    """Interval tiers of a Praat TextGrid (long or short text format).

    Returns:
        ``{tier name: [(xmin, xmax, text), ...]}`` (point tiers are left out).

    Raises:
        BuildError: not a TextGrid, or truncated.
    """
    path = Path(path)
    try:
        tokens = list(_tokens(_read_text(path)))
    except (OSError, UnicodeDecodeError) as e:
        raise BuildError(f"{path}: cannot read TextGrid ({e})") from None
    pos = 0

    def take(kind: type):
        nonlocal pos
        if pos >= len(tokens):
            raise BuildError(f"{path}: TextGrid ends early (truncated?)")
        value = tokens[pos]
        pos += 1
        if kind is float and not isinstance(value, float):
            raise BuildError(f"{path}: malformed TextGrid: expected a number, got {value!r}")
        if kind is str and not isinstance(value, str):
            raise BuildError(f"{path}: malformed TextGrid: expected a string, got {value!r}")
        return value

    if take(str) != "ooTextFile" or take(str) != "TextGrid":
        raise BuildError(f"{path}: not a Praat TextGrid (expected 'ooTextFile' / 'TextGrid' header)")
    take(float), take(float)
    if take(str) != "<exists>":
        return {}
    tiers: dict[str, list[tuple[float, float, str]]] = {}
    for _ in range(int(take(float))):
        tier_class, name = take(str), take(str)
        take(float), take(float)
        n = int(take(float))
        if tier_class == "IntervalTier":
            tiers[name] = [(take(float), take(float), take(str)) for _ in range(n)]
        elif tier_class == "TextTier":
            for _ in range(n):
                take(float), take(str)
        else:
            raise BuildError(f"{path}: unknown tier class {tier_class!r}")
    return tiers


def _find_recording(textgrid: Path, relative: Path, recordings: Path) -> Path:
    """The recording of a TextGrid: same relative path under ``recordings`` (MFA
    mirrors the corpus's speaker directories), same name directly in it, or beside
    the TextGrid; any audio extension."""
    bases = (recordings / relative.with_suffix(""), recordings / textgrid.stem, textgrid.with_suffix(""))
    for base in bases:
        for ext in AUDIO_EXTENSIONS:
            candidate = base.with_name(base.name + ext)
            if candidate.is_file():
                return candidate
    raise BuildError(
        f"{textgrid}: no recording {relative.with_suffix('')}.* ({', '.join(AUDIO_EXTENSIONS)}) "
        f"in {recordings}, nor beside the TextGrid"
    )


def read_textgrid_alignments(path: str | os.PathLike, recordings: str | os.PathLike,
                             tier: str | None = None) -> list[AlignedWord]:
    """Aligned words of one TextGrid file or of every ``*.TextGrid`` under a directory.

    Args:
        path: a TextGrid or a directory searched recursively.
        recordings: where the recordings are (also looked for beside each TextGrid).
        tier: tier to read (default: ``words``, else the only interval tier).

    Raises:
        BuildError: no TextGrid found, no suitable tier, or no matching recording.
    """
    path, recordings = Path(path), Path(recordings)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".textgrid" and p.is_file())
    else:
        files = [path]
    if not files:
        raise BuildError(f"{path}: no *.TextGrid files in this directory")
    out = []
    for file in files:
        tiers = parse_textgrid(file)
        if tier is not None:
            name = tier
        elif "words" in tiers:
            name = "words"
        elif len(tiers) == 1:
            name = next(iter(tiers))
        else:
            name = None
        if name not in tiers:
            raise BuildError(
                f"{file}: no tier {'named ' + repr(tier) if tier else 'named words'} "
                f"(tiers: {', '.join(tiers) or 'none'}); choose one with --tier"
            )
        relative = file.relative_to(path) if path.is_dir() else Path(file.name)
        recording = str(_find_recording(file, relative, recordings))
        speaker = file.parent.name if file.parent != path else ""
        for i, (start, end, text) in enumerate(tiers[name], start=1):
            if text.strip().lower() in NON_WORDS:
                continue
            out.append(AlignedWord(recording=recording, word=text.strip(), start=start, end=end,
                                   speaker=speaker, where=f"{file} interval {i}"))
    return out


def read_alignments(path: str | os.PathLike, recordings: str | os.PathLike,
                    tier: str | None = None) -> list[AlignedWord]:
    """Read a CSV, a TextGrid, or a directory of TextGrids (chosen by what ``path`` is)."""
    path = Path(path)
    if not path.exists():
        raise BuildError(f"{path}: no such alignment file or directory")
    if path.is_dir() or path.suffix.lower() == ".textgrid":
        return read_textgrid_alignments(path, recordings, tier)
    return read_csv_alignments(path, recordings)
