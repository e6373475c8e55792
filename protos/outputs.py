"""Check output locations before the work, not after it.

A command that would spend minutes (selecting, scoring) and then fail to write its
result checks first, with these functions, that the result can be written: the
location is (or can become) a directory, and the user may write there. Standard
library only.
"""

from __future__ import annotations

import os
from pathlib import Path

from protos.errors import EnvironmentProblem


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Refuse a directory the command could not write into (it may not exist yet).

    Args:
        path: the output directory.
        flag: the option that named it, for the message (``"--outdir"``).

    Raises:
        EnvironmentProblem: ``path`` (or the first existing part of it) is a file, or
            is not writable; one line naming the path, the flag and what to do.
    """
    path = Path(path)
    existing = _nearest_existing(path.absolute())
    if not existing.is_dir():
        what = "is a file" if existing == path.absolute() else f"is inside {existing}, a file"
        raise EnvironmentProblem(f"{path} ({flag}) {what}, not a directory: choose a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise EnvironmentProblem(f"{path} ({flag}) cannot be written ({existing} is not "
                                 "writable): choose another location")
    return path


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Refuse an output file path the command could not write (see :func:`check_output_dir`).

    Raises:
        EnvironmentProblem: ``path`` is a directory, or its directory cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise EnvironmentProblem(f"{path} ({flag}) is a directory: name a file")
    check_output_dir(path.parent, flag)
    return path
