"""The project's exception root and the one meaning of each exit code.

Every command of the project ends with one of these exit statuses::

    0    success
    1    bad input or data (a file, a clip, a value the command cannot use)
    2    usage error (unknown flag, missing argument: argparse's own status)
    3    environment (a missing package, system library or model; an output
         location that cannot be written; a full disk)
    130  interrupted (Ctrl-C / SIGINT)

Errors the project raises on purpose derive from :class:`DataperfSpeechError` and
carry their exit status; :func:`run_cli` turns them, ``KeyboardInterrupt`` and the
operating system's disk errors into one line on stderr and that status. Standard
library only, at the bottom of the import graph: every package may import it.
"""

from __future__ import annotations

import errno
import sys
from typing import Callable, Sequence

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = (
    "exit status: 0 success; 1 bad input or data; 2 usage error; "
    "3 environment (missing package, model or system library, unwritable output, full disk); "
    "130 interrupted"
)


class DataperfSpeechError(Exception):
    """Root of every error the project raises on purpose. Exit status 1 unless overridden."""

    exit_code = EXIT_BAD_INPUT


class InputError(DataperfSpeechError, ValueError):
    """The input (a file, a clip, a flag's value) cannot be used: exit status 1."""

    exit_code = EXIT_BAD_INPUT


class EnvironmentProblem(DataperfSpeechError, RuntimeError):
    """Something the machine lacks (a package, library, model, writable output): exit status 3."""

    exit_code = EXIT_ENVIRONMENT


_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def exit_code_for(exc: BaseException) -> int:
    """The exit status an exception stands for (see the module docstring)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, DataperfSpeechError):
        return int(exc.exit_code)
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return EXIT_ENVIRONMENT
    return EXIT_BAD_INPUT


def run_cli(prog: str, main: Callable[[Sequence[str] | None], int | None],
            argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main(argv)`` and map what escapes it to one stderr line + status.

    Project errors and the disk errors of ``OSError`` (full disk, read-only or
    forbidden location) print ``PROG: error: MESSAGE``; Ctrl-C prints
    ``PROG: interrupted`` and returns 130. Anything else is a bug and keeps its
    traceback.
    """
    try:
        status = main(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DataperfSpeechError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except OSError as exc:
        if exc.errno not in _DISK_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{prog}: error: {exc.strerror}{where}: free space or choose another location",
              file=sys.stderr)
        return EXIT_ENVIRONMENT
    return EXIT_OK if status is None else int(status)
