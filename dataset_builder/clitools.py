"""Small helpers shared by the builder's command-line tools."""

from __future__ import annotations

import argparse
import contextlib
import signal
from typing import Iterator

#: Worker processes a builder command starts by default (decoding, cutting clips): the
#: project's machines have 2 cores; ``build-dataset`` caps its runners at the core count.
DEFAULT_WORKERS = 2
#: Clips per embedding batch in build-dataset, local and Beam (the mswc backend's
#: throughput sweet spot on 2 cores).
DEFAULT_BATCH_SIZE = 256


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only when it has a real one the help does not already give."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


def ignore_sigint() -> None:
    """Worker initializer: a terminal's Ctrl-C reaches the whole process group, and only
    the main process answers it (one line, exit status 130)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """Start worker processes that ignore SIGINT from their first instruction.

    An ignored signal stays ignored across ``exec``, so a spawned interpreter
    started inside this block ignores Ctrl-C before any of its own code runs (a
    Ctrl-C during its start-up would otherwise print a traceback from it). The
    main process ignores SIGINT for those few milliseconds too; it also blocks it,
    so that when it is the only thread a Ctrl-C arrives late rather than never.
    """
    try:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (AttributeError, ValueError, OSError):  # not the main thread, or no POSIX signals
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
