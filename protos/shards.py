"""Sharded pools: one dataset stored as ``NAME-00000-of-00016.pb`` ... ``NAME-00015-of-00016.pb``.

A single samples.pb is one protocol-buffer message, and protobuf refuses messages of
2 GiB or more (about 517,000 vectors of 1024 float32; see docs/SCALE.md). Larger
pools are split into shards, each a complete, valid samples.pb of its own (same
metadata, ``num_samples`` of its own), holding a contiguous run of the dataset's
samples: reading the shards in index order gives the samples in dataset order.

:func:`resolve_sample_files` turns what a user passes into the files to read:

- an existing file: that file;
- a directory: the one dataset in it (``*.pb``; several datasets is an error that
  names them);
- a glob (``out/samples-*.pb``): the matching files;
- a name that does not exist but whose shards do (``out/samples.pb`` when only
  ``out/samples-?????-of-?????.pb`` exist): those shards.

A set of shards must be complete (every index of ``-of-N`` present once, one N).
Standard library only, like :mod:`protos.atomic`.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from protos.errors import InputError

#: ``stem-00003-of-00016.pb`` -> stem, index, count, suffix.
SHARD_PATTERN = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5,})-of-(?P<count>\d{5,})(?P<suffix>\.[^./]+)$")

_GLOB_CHARS = re.compile(r"[*?\[]")


class ShardSetError(InputError):
    """The files named by a path, directory or glob are not one complete dataset."""


def shard_name(stem: str, index: int, count: int, suffix: str = ".pb") -> str:
    """``shard_name("samples", 3, 16)`` -> ``"samples-00003-of-00016.pb"``.

    Raises:
        ValueError: ``index`` is not in ``[0, count)``.
    """
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in [0, {count})")
    return f"{stem}-{index:05d}-of-{count:05d}{suffix}"


def parse_shard_name(name: str) -> tuple[str, int, int, str] | None:
    """``(stem, index, count, suffix)`` of a shard file name, or None if it is not one."""
    m = SHARD_PATTERN.match(os.path.basename(name))
    if m is None:
        return None
    return m["stem"], int(m["index"]), int(m["count"]), m["suffix"]


def dataset_name(name: str) -> str:
    """The dataset a file belongs to: ``samples-00003-of-00016.pb`` -> ``samples.pb``."""
    parsed = parse_shard_name(name)
    base = os.path.basename(name)
    return base if parsed is None else parsed[0] + parsed[3]


def shard_glob(path: str | os.PathLike) -> str:
    """Glob of the shards of the dataset ``path``: ``out/samples.pb`` -> ``out/samples-*-of-*.pb``."""
    path = Path(path)
    stem, suffix = (path.stem, path.suffix) if path.suffix else (path.name, "")
    return str(path.parent / f"{glob.escape(stem)}-*-of-*{suffix}")


def resolve_sample_files(path: str | os.PathLike) -> list[Path]:
    """The files that make up the dataset ``path`` (a file, directory, glob or sharded name).

    Returns:
        The files, shards in index order (other files in name order).

    Raises:
        FileNotFoundError: nothing matches ``path``.
        ShardSetError: shards are missing, repeated, disagree on their count, or a
            directory holds more than one dataset.
    """
    text = os.fspath(path)
    p = Path(text)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.glob("*.pb") if f.is_file())
        if not files:
            raise FileNotFoundError(f"{p}: directory holds no .pb files")
        names = sorted({dataset_name(f.name) for f in files})
        if len(names) > 1:
            raise ShardSetError(
                f"{p}: directory holds {len(names)} datasets ({', '.join(names)}); "
                f"name one, e.g. {p / names[0]}")
        return _ordered(files, where=str(p))
    if _GLOB_CHARS.search(text):
        files = sorted(Path(f) for f in glob.glob(text) if os.path.isfile(f))
        if not files:
            raise FileNotFoundError(f"{text}: no file matches this pattern")
        return _ordered(files, where=text)
    shards = sorted(Path(f) for f in glob.glob(shard_glob(p)) if os.path.isfile(f))
    shards = [f for f in shards if parse_shard_name(f.name) is not None]
    if shards:
        return _ordered(shards, where=text)
    raise FileNotFoundError(f"{text}: no such file, and no shards {Path(shard_glob(p)).name} beside it")


def _ordered(files: list[Path], where: str) -> list[Path]:
    """Check a set of files is complete when it is made of shards; return them in order."""
    parsed = [parse_shard_name(f.name) for f in files]
    if not any(parsed):
        return files
    if not all(parsed):
        plain = next(f for f, s in zip(files, parsed) if s is None)
        raise ShardSetError(f"{where}: mixes shards and a plain file ({plain.name}); "
                            "remove the stale one")
    groups = {(s[0], s[3]) for s in parsed}
    if len(groups) > 1:
        names = sorted(stem + suffix for stem, suffix in groups)
        raise ShardSetError(f"{where}: shards of {len(names)} datasets ({', '.join(names)}); name one")
    counts = sorted({s[2] for s in parsed})
    if len(counts) > 1:
        raise ShardSetError(f"{where}: shards disagree on their count (-of-{counts[0]:05d} and "
                            f"-of-{counts[1]:05d}): remove the stale ones")
    count = counts[0]
    by_index: dict[int, Path] = {}
    for f, s in zip(files, parsed):
        if s[1] >= count:
            raise ShardSetError(f"{where}: {f.name} has index {s[1]} beyond its count {count}")
        by_index[s[1]] = f
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        stem, _, _, suffix = parsed[0]
        first = shard_name(stem, missing[0], count, suffix)
        raise ShardSetError(f"{where}: {len(missing)} of {count} shards missing, first {first}")
    return [by_index[i] for i in range(count)]
