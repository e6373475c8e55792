"""The output directory of ``build-dataset``: checked first, locked, published as a set, verifiable.

A build never writes into ``--out`` directly. Everything it makes (pool files,
eval.pb, manifest.json) goes into a staging directory *beside* ``--out``
(``.NAME.staging-TOKEN`` in the same parent, so on the same filesystem), and is
published in one step:

- ``--out`` does not exist yet: one ``rename(staging, out)``.
- ``--out`` exists: one ``renameat2(staging, out, RENAME_EXCHANGE)`` swaps the two
  directories atomically (Linux >= 3.15 on ext4, xfs, btrfs, tmpfs, ...). Where the
  filesystem cannot exchange, two renames do it (``out -> .NAME.old-TOKEN``,
  ``staging -> out``): between them ``--out`` is briefly missing.

Either way a reader sees the previous complete set or the new complete set,
never a mix. Entries of ``--out`` that the build does not write (your
``train.npz``, a selection's directory) are then moved across into the new
directory, one rename each, and the old set is deleted. A journal
(``.NAME.publish``) written before the swap lets the next build finish or undo
a publish that was interrupted half-way (power loss, SIGKILL): it restores the
previous set when ``--out`` is missing and moves your entries across when they
were left behind. Ctrl-C (SIGINT) and SIGTERM are held back during the few
renames of a publish.

When ``--out`` is the working directory (or contains it), a mount point, or sits
in a directory the build may not write (then the staging directory and the lock
are kept inside ``--out``), the directory cannot be swapped: the staged files
are renamed into it one by one and manifest.json last (each file atomic, the set not; the manifest's
checksums tell a reader whether the files belong together: :func:`verify_dataset`).

A lock file beside ``--out`` (``.NAME.lock``, held with ``flock``) refuses a
second build into the same directory with one line naming the process that
holds it. The kernel drops a lock when its process dies, so a lock left by a
killed build is simply taken over.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

from dataset_builder.errors import BuildEnvironmentError, BuildError

MANIFEST_NAME = "manifest.json"
#: Names of the staging directory and lock kept inside ``--out`` when its parent is not writable.
INSIDE_PREFIX = ".build-dataset-"
#: ``(role, file name)`` of the two datasets, in writing order.
ROLES = (("samples", "samples.pb"), ("eval", "eval.pb"))
#: Vector size assumed by the free-space estimate, which runs before a model is loaded.
ESTIMATE_DIM = 1024
#: Bytes per clip beyond its vector (id, keyword, framing), generous.
ESTIMATE_OVERHEAD = 256


def is_dataset_file(name: str) -> bool:
    """True for the names the build writes its datasets under: samples.pb, eval.pb and their shards."""
    from protos.shards import parse_shard_name

    if name in {file for _, file in ROLES}:
        return True
    parsed = parse_shard_name(name)
    return parsed is not None and parsed[0] in {role for role, _ in ROLES} and parsed[3] == ".pb"


def is_build_output(name: str) -> bool:
    """True for every name a build writes (datasets and manifest.json); other entries are the user's."""
    return name == MANIFEST_NAME or is_dataset_file(name)


def stale_outputs(existing: Iterable[str], keep: Iterable[str]) -> list[str]:
    """Dataset files of an earlier build that the new one does not write (plain or sharded)."""
    keep = set(keep)
    return sorted(name for name in existing if is_dataset_file(name) and name not in keep)


def estimate_bytes(n_clips: int, dim: int = ESTIMATE_DIM) -> int:
    """Disk space a build of ``n_clips`` clips needs for its staged files (an upper estimate)."""
    return int(n_clips) * (4 * int(dim) + ESTIMATE_OVERHEAD) + (64 << 10)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _existing_ancestor(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Defer SIGINT and SIGTERM until the block ends (main thread only).

    Python handlers, not a signal mask: whichever thread the kernel hands the
    signal to (TensorFlow keeps many), Python runs its handler in the main thread,
    and here that handler only takes note.
    """
    pending: list[int] = []
    try:
        old = {sig: signal.signal(sig, lambda number, frame: pending.append(number))
               for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: nothing to hold
        yield
        return
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if signal.SIGTERM in pending:
            os.kill(os.getpid(), signal.SIGTERM)
        if signal.SIGINT in pending:
            raise KeyboardInterrupt


class LocalOutput:
    """A local ``--out`` directory, written as a set (see the module docstring).

    Lifecycle: :meth:`check` (before any work), :meth:`lock`, :meth:`prepare`
    (the staging directory), runner writes into :attr:`staging`, :meth:`publish`,
    :meth:`discard` (always), :meth:`unlock`.

    Args:
        out: the output directory (created with its parents when missing).
    """

    def __init__(self, out: str | os.PathLike):
        self.given = os.fspath(out)
        self.location = os.path.realpath(self.given)
        self.parent, self.name = os.path.split(self.location)
        if not self.name:  # "/" itself
            raise BuildError(f"--out {self.given}: choose a directory below the filesystem root")
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.staging = os.path.join(self.parent, f".{self.name}.staging-{self.token}")
        self.lock_path = os.path.join(self.parent, f".{self.name}.lock")
        self.journal_path = os.path.join(self.parent, f".{self.name}.publish")
        self._lock_fd: int | None = None
        self.inside = False  # staged inside --out (see _stage_inside)
        # Set once the new set is in place: from then on, what is left beside --out
        # (the previous set, the user's entries in it) is the recovery's to sort out.
        self._swapped = False

    # ------------------------------------------------------------------ before any work

    def check(self, needed_bytes: int = 0) -> None:
        """Refuse an output that cannot be written, before a model is loaded or a clip read.

        Raises:
            BuildError: ``--out`` names something that is not a directory.
            BuildEnvironmentError: it (or the directory it would be created in) is
                not writable, or the filesystem has less free space than ``needed_bytes``.
        """
        if os.path.lexists(self.given) and not os.path.isdir(self.given):
            raise BuildError(f"--out {self.given} is a file, not a directory: choose a directory")
        base = _existing_ancestor(self.parent)
        if not os.path.isdir(base):
            raise BuildError(f"--out {self.given}: {base} is a file, not a directory")
        if os.path.isdir(self.location):
            self._probe(self.location)
        try:
            self._probe(base)
        except BuildEnvironmentError:
            if not os.path.isdir(self.location):
                raise
            self._stage_inside()  # --out is writable, the directory around it is not
        free = shutil.disk_usage(base).free
        if needed_bytes and free < needed_bytes:
            raise BuildEnvironmentError(
                f"--out {self.given}: the build needs about {_mb(needed_bytes)}, "
                f"{_mb(free)} are free on {base}: free space or choose another location")

    def _stage_inside(self) -> None:
        """Stage and lock inside ``--out`` (its parent is not writable): published in place."""
        self.inside = True
        self.staging = os.path.join(self.location, f"{INSIDE_PREFIX}staging-{self.token}")
        self.lock_path = os.path.join(self.location, f"{INSIDE_PREFIX}lock")

    def _probe(self, directory: str) -> None:
        probe = os.path.join(directory, f".build-dataset-probe-{self.token}")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"\0")
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as e:
            raise BuildEnvironmentError(
                f"--out {self.given}: cannot write in {directory} ({e.strerror}): "
                "choose a writable location") from None

    # ------------------------------------------------------------------ the lock

    def lock(self) -> None:
        """Take the output's lock, then finish or undo an interrupted earlier publish.

        Raises:
            BuildEnvironmentError: another live build holds the lock.
        """
        os.makedirs(self.parent, exist_ok=True)
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 512).decode("utf-8", "replace").strip() or "unknown process"
                os.close(fd)
                raise BuildEnvironmentError(
                    f"another build-dataset ({holder}) is writing {self.given}: wait for it to finish "
                    f"or choose another --out") from None
            # The previous holder unlinks the file when it is done: make sure the
            # lock we hold is on the file that is still there.
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode())
        self._lock_fd = fd
        self.recover()

    def unlock(self) -> None:
        if self._lock_fd is None:
            return
        try:
            os.unlink(self.lock_path)
        except OSError:
            pass
        os.close(self._lock_fd)
        self._lock_fd = None

    def recover(self) -> None:
        """Finish or undo what an interrupted build left beside ``--out`` (under the lock)."""
        prefix = f".{self.name}."
        if os.path.exists(self.journal_path):
            with open(self.journal_path, encoding="utf-8") as f:
                journal = json.load(f)
            new, old, new_ino = journal["new"], journal["old"], journal["new_ino"]
            if not os.path.lexists(self.location) and os.path.isdir(old):
                os.rename(old, self.location)  # the swap was half done: the previous set again
            elif os.path.isdir(self.location) and os.stat(self.location).st_ino == new_ino:
                # Published: bring the user's entries across from wherever the previous set is.
                self._carry_over(new)
                self._carry_over(old)
            _fsync_dir(self.parent)
            for leftover in {new, old}:
                if os.path.isdir(leftover) and os.path.realpath(leftover) != self.location:
                    shutil.rmtree(leftover, ignore_errors=True)
            os.unlink(self.journal_path)
        if self.inside:
            for entry in os.listdir(self.location):
                if entry.startswith(INSIDE_PREFIX + "staging-"):
                    shutil.rmtree(os.path.join(self.location, entry), ignore_errors=True)
            return
        # Staging directories of builds that died before publishing.
        for entry in os.listdir(self.parent):
            if entry.startswith(prefix + "staging-") or entry.startswith(prefix + "old-"):
                path = os.path.join(self.parent, entry)
                if entry.startswith(prefix + "old-") and os.path.isdir(self.location):
                    self._carry_over(path)
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------------ staging and publishing

    def prepare(self) -> None:
        os.makedirs(self.parent, exist_ok=True)
        os.mkdir(self.staging)
        if os.path.isdir(self.location):
            os.chmod(self.staging, os.stat(self.location).st_mode & 0o7777)

    def _in_place(self) -> bool:
        """True when ``--out`` cannot be swapped: it holds the working directory, is a mount
        point, or its parent is not writable."""
        cwd = os.path.realpath(os.getcwd())
        return (self.inside or cwd == self.location or cwd.startswith(self.location + os.sep)
                or os.path.ismount(self.location))

    def publish(self, staged: Mapping[str, str], manifest_text: str) -> None:
        """Make the staged files (final name -> staged name) and the manifest the contents of ``--out``."""
        from protos.atomic import atomic_write_text

        for final, name in staged.items():
            if final != name:
                os.replace(os.path.join(self.staging, name), os.path.join(self.staging, final))
        for entry in os.listdir(self.staging):
            if entry not in staged:
                path = os.path.join(self.staging, entry)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
        atomic_write_text(os.path.join(self.staging, MANIFEST_NAME), manifest_text)
        _fsync_dir(self.staging)
        with _signals_held():
            if not os.path.lexists(self.location):
                os.rename(self.staging, self.location)
                self._swapped = True
                _fsync_dir(self.parent)
            elif self._in_place():
                self._publish_in_place(staged)
            else:
                self._swap()

    def _swap(self) -> None:
        from protos.atomic import atomic_write_text

        old = os.path.join(self.parent, f".{self.name}.old-{self.token}")
        journal = {"new": self.staging, "old": old, "new_ino": os.stat(self.staging).st_ino}
        atomic_write_text(self.journal_path, json.dumps(journal) + "\n")
        if _exchange(self.staging, self.location):
            self._swapped = True
            previous = self.staging  # the exchange left the previous set where the new one was
        else:
            os.rename(self.location, old)
            self._swapped = True
            os.rename(self.staging, self.location)
            previous = old
        _fsync_dir(self.parent)
        self._carry_over(previous)
        shutil.rmtree(previous, ignore_errors=True)
        os.unlink(self.journal_path)
        _fsync_dir(self.parent)

    def _carry_over(self, old: str) -> None:
        """Move the user's entries (anything a build does not write) from ``old`` into ``--out``."""
        if not os.path.isdir(old):
            return
        for entry in os.listdir(old):
            target = os.path.join(self.location, entry)
            if not is_build_output(entry) and not os.path.lexists(target):
                os.rename(os.path.join(old, entry), target)
        _fsync_dir(self.location)

    def _publish_in_place(self, staged: Mapping[str, str]) -> None:
        for final in staged:
            os.replace(os.path.join(self.staging, final), os.path.join(self.location, final))
        for name in stale_outputs(os.listdir(self.location), staged):
            os.remove(os.path.join(self.location, name))
        os.replace(os.path.join(self.staging, MANIFEST_NAME), os.path.join(self.location, MANIFEST_NAME))
        _fsync_dir(self.location)

    def discard(self) -> None:
        """Remove the staging directory of a run that did not publish (a failure, Ctrl-C)."""
        if self._swapped:
            return  # whatever the staging path holds now is the previous set: see recover()
        if os.path.isdir(self.staging) and os.path.realpath(self.staging) != self.location:
            shutil.rmtree(self.staging, ignore_errors=True)


def verify_dataset(out: str | os.PathLike) -> dict[str, Any]:
    """Check that the files in ``out`` are the ones its manifest.json lists, byte for byte.

    Every file the manifest lists must exist with its recorded size and SHA-256,
    and no other dataset file (samples*.pb, eval*.pb) may be present.

    Returns:
        The manifest.

    Raises:
        BuildError: naming the first mismatch (and how many there are).
    """
    out = os.fspath(out)
    path = os.path.join(out, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
        files = manifest["files"]
    except FileNotFoundError:
        raise BuildError(f"{path}: no manifest; is {out} a build-dataset output?") from None
    except (ValueError, KeyError, TypeError) as e:
        raise BuildError(f"{path}: not a build manifest ({e})") from None
    problems = []
    for name, info in files.items():
        file = os.path.join(out, name)
        if not os.path.isfile(file):
            problems.append(f"{name} is missing")
        elif os.path.getsize(file) != info["bytes"]:
            problems.append(f"{name} has {os.path.getsize(file)} bytes, the manifest says {info['bytes']}")
        elif file_sha256(file) != info["sha256"]:
            problems.append(f"{name} does not match its SHA-256 in the manifest")
    extra = stale_outputs(os.listdir(out), files)
    problems += [f"{name} is not listed in the manifest" for name in extra]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BuildError(f"{out}: {problems[0]}{more}: the dataset is damaged or mixed; build it again")
    return manifest
