"""The builder's user-facing errors, under the project's root :mod:`protos.errors`.

Every failure a user can fix (a missing keyword, a corpus too small for the
requested protocol, a broken download, an unsafe archive) is raised as a
:class:`BuildError` whose message is one line: what was wrong, where, and what to
do. What the machine lacks (an optional extra, a model, a writable output) is an
:class:`BuildEnvironmentError`. ``protos.errors.run_cli`` prints the line and
exits with the error's status; tracebacks are for bugs.
"""

from __future__ import annotations

from protos.errors import EnvironmentProblem, InputError


class BuildError(InputError):
    """A problem with the builder's inputs or parameters, explained in one line (exit status 1)."""


class DownloadError(BuildError):
    """A download failed, or what arrived does not match what was expected."""


class UnsafeArchiveError(BuildError):
    """An archive member would escape the extraction root or is not a plain file."""


class BuildEnvironmentError(EnvironmentProblem):
    """The machine lacks what the build needs: an optional extra (Apache Beam, a
    backend's packages), a model, a writable output location (exit status 3)."""
