"""The builder's user-facing error.

Every failure a user can fix (a missing keyword, a corpus too small for the
requested protocol, a broken download, an unsafe archive) is raised as a
:class:`BuildError` whose message is one line: what was wrong, where, and what to
do. The command-line tools print that line and exit non-zero; tracebacks are
for bugs.
"""

from __future__ import annotations


class BuildError(Exception):
    """A problem with the builder's inputs or parameters, explained in one line."""


class DownloadError(BuildError):
    """A download failed, or what arrived does not match what was expected."""


class UnsafeArchiveError(BuildError):
    """An archive member would escape the extraction root or is not a plain file."""
