"""Reading archives from a local path or an http(s) URL, resumably and verified.

MSWC's per-language archives are tens of GB, so they are read as a stream:
:class:`RemoteFile` is a sequential file object over an HTTP resource that, when
the connection drops, reconnects with an HTTP ``Range`` request at the byte where
it stopped (``If-Range`` guards against the file changing in between). At the
end of the stream it checks the size the server announced and, when given, the
SHA-256 checksum. :func:`download` keeps a copy on disk instead, resuming a
``.part`` file left by an interrupted earlier run.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO, Callable

from dataset_builder.errors import DownloadError
from protos.atomic import atomic_write_text

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def is_url(location: str | os.PathLike) -> bool:
    """True for http(s) URLs, False for local paths."""
    return urllib.parse.urlsplit(str(location)).scheme in ("http", "https")


def _describe(url: str) -> str:
    # Never echo credentials a user may have put in the URL.
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RemoteFile(io.RawIOBase):
    """A read-only, sequential file object over an HTTP(S) resource.

    Args:
        url: http or https URL.
        start: byte offset to start at (resuming a partial download).
        sha256: expected hex SHA-256 of the WHOLE resource; checked at end of stream.
        hasher: a hash object already fed with bytes ``[0, start)``; needed to
            check ``sha256`` when ``start > 0``.
        expected_size: expected total size in bytes, if known in advance.
        retries: reconnections allowed after dropped connections (consecutive
            failures without progress; any progress resets the count).
        timeout: socket timeout in seconds.
        backoff: seconds to wait before the first retry, doubled each time.
        on_progress: called with the number of new bytes after each read.
        validator: the ETag or Last-Modified seen when the first ``start`` bytes
            were fetched; sent as ``If-Range`` so a changed file is detected.

    Raises (from ``read``):
        DownloadError: the server fails, the file changes on the server while
            resuming, retries run out, or size or checksum do not match.
    """

    def __init__(
        self,
        url: str,
        *,
        start: int = 0,
        sha256: str | None = None,
        hasher=None,
        expected_size: int | None = None,
        retries: int = 5,
        timeout: float = 60.0,
        backoff: float = 0.5,
        on_progress: Callable[[int], None] | None = None,
        validator: str | None = None,
    ):
        super().__init__()
        if not is_url(url):
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.name = _describe(url)
        self.pos = start
        self.size: int | None = expected_size
        self.expected_size = expected_size
        self.sha256 = sha256.lower() if sha256 else None
        if self.sha256 and start and hasher is None:
            raise ValueError("resuming with a checksum needs the hash of the first `start` bytes")
        self._hasher = hasher if hasher is not None else (hashlib.sha256() if self.sha256 else None)
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.on_progress = on_progress
        self.reconnects = 0
        self._validator = validator  # ETag or Last-Modified of the first response
        self._resp: http.client.HTTPResponse | None = None
        self._verified = False

    def readable(self) -> bool:
        return True

    # -- connection handling -------------------------------------------------

    def _connect(self) -> None:
        headers = {"User-Agent": "dataperf-speech-build-dataset", "Accept-Encoding": "identity"}
        if self.pos > 0:
            headers["Range"] = f"bytes={self.pos}-"
            if self._validator:
                headers["If-Range"] = self._validator
        request = urllib.request.Request(self.url, headers=headers)
        try:
            resp = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416:
                # "Range not satisfiable": fine when we already hold every byte.
                match = _CONTENT_RANGE.fullmatch(
                    (e.headers.get("Content-Range") or "").replace("bytes */", "bytes 0-0/").strip()
                )
                total = int(match.group(3)) if match and match.group(3) != "*" else self.size
                if total is not None and self.pos == total:
                    self.size = total
                    self._resp = None
                    return
                if total is not None and self.pos > total:
                    raise DownloadError(
                        f"{self.name}: the file changed on the server (now {total} bytes, "
                        f"{self.pos} already read); start the download again"
                    ) from None
            raise DownloadError(f"{self.name}: HTTP {e.code} {e.reason}") from None
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        if resp.status == 206:
            match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != self.pos:
                resp.close()
                raise DownloadError(
                    f"{self.name}: server answered a resume at byte {self.pos} with "
                    f"Content-Range {resp.headers.get('Content-Range')!r}"
                )
            total = None if match.group(3) == "*" else int(match.group(3))
        elif resp.status == 200:
            if self.pos > 0:
                if self._validator and validator and validator != self._validator:
                    resp.close()
                    raise DownloadError(
                        f"{self.name}: the file changed on the server during the download "
                        "(ETag/Last-Modified differ); start it again"
                    )
                # The server ignores Range: skip what we already have.
                self._skip(resp, self.pos)
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None else None
        else:
            resp.close()
            raise DownloadError(f"{self.name}: unexpected HTTP status {resp.status}")
        if total is not None:
            if self.expected_size is not None and total != self.expected_size:
                resp.close()
                raise DownloadError(
                    f"{self.name}: server says {total} bytes, expected {self.expected_size}"
                )
            if self.size is not None and total != self.size:
                resp.close()
                raise DownloadError(
                    f"{self.name}: size changed from {self.size} to {total} bytes while "
                    "resuming; start the download again"
                )
            self.size = total
        if self._validator is None:
            self._validator = validator
        self._resp = resp

    @property
    def validator(self) -> str | None:
        """ETag (or Last-Modified) of the resource, once connected."""
        return self._validator

    def _skip(self, resp, n: int) -> None:
        buf = bytearray(min(CHUNK, n))
        while n > 0:
            got = resp.readinto(memoryview(buf)[: min(len(buf), n)])
            if not got:
                raise DownloadError(f"{self.name}: connection closed while skipping to byte {self.pos}")
            n -= got

    def _drop(self) -> None:
        if self._resp is not None:
            try:
                self._resp.close()
            except OSError:
                pass
            self._resp = None

    # -- reading --------------------------------------------------------------

    def readinto(self, b) -> int:
        if self.size is not None and self.pos >= self.size:
            self._finish()
            return 0
        failures = 0
        while True:
            try:
                if self._resp is None:
                    self._connect()
                    if self._resp is None:  # 416 at the end: nothing left
                        self._finish()
                        return 0
                n = self._resp.readinto(b)
            except DownloadError:
                raise
            except (OSError, http.client.HTTPException) as e:
                n, error = 0, e
            else:
                error = None
            if n:
                self.pos += n
                if self._hasher is not None:
                    self._hasher.update(memoryview(b)[:n])
                if self.on_progress:
                    self.on_progress(n)
                return n
            if error is None and self.size is None:
                # No announced size: a clean close is the end of the resource.
                self._finish()
                return 0
            if error is None and self.pos >= self.size:
                self._finish()
                return 0
            # Dropped midway: reconnect and ask for the rest.
            self._drop()
            failures += 1
            self.reconnects += 1
            if failures > self.retries:
                reason = f" ({error})" if error else ""
                raise DownloadError(
                    f"{self.name}: connection lost at byte {self.pos} of "
                    f"{self.size if self.size is not None else '?'} after {self.retries} "
                    f"retries{reason}; run again to resume"
                )
            time.sleep(self.backoff * 2 ** (failures - 1))

    def _finish(self) -> None:
        self._drop()
        if self._verified:
            return
        self._verified = True
        if self.expected_size is not None and self.pos != self.expected_size:
            raise DownloadError(f"{self.name}: got {self.pos} bytes, expected {self.expected_size}")
        if self.sha256 is not None:
            got = self._hasher.hexdigest()
            if got != self.sha256:
                raise DownloadError(f"{self.name}: SHA-256 is {got}, expected {self.sha256}")

    def close(self) -> None:
        self._drop()
        super().close()


class _HashingFile(io.RawIOBase):
    """A local file read sequentially, checked against a SHA-256 at end of file."""

    def __init__(self, path: Path, sha256: str):
        super().__init__()
        self.name = str(path)
        self._f = open(path, "rb")
        self._hasher = hashlib.sha256()
        self._sha256 = sha256.lower()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        if n:
            self._hasher.update(memoryview(b)[:n])
        elif not self._done:
            self._done = True
            got = self._hasher.hexdigest()
            if got != self._sha256:
                raise DownloadError(f"{self.name}: SHA-256 is {got}, expected {self._sha256}")
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def open_stream(location: str | os.PathLike, *, sha256: str | None = None, **remote_options) -> BinaryIO:
    """Open a local file or an http(s) URL for one sequential pass.

    Args:
        location: a path or an http(s) URL.
        sha256: expected hex SHA-256; a mismatch raises :class:`DownloadError`
            when the end of the stream is read.
        remote_options: passed to :class:`RemoteFile` for URLs.

    Returns:
        A buffered binary file object; close it when done.

    Raises:
        DownloadError: the local file does not exist.
    """
    if is_url(location):
        raw: io.RawIOBase = RemoteFile(str(location), sha256=sha256, **remote_options)
    else:
        path = Path(location)
        if not path.is_file():
            raise DownloadError(f"{path}: no such file")
        if sha256 is None:
            return open(path, "rb")
        raw = _HashingFile(path, sha256)
    return io.BufferedReader(raw, buffer_size=CHUNK)


def _file_sha256(path: Path) -> "hashlib._Hash":
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return hasher


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    **remote_options,
) -> Path:
    """Download ``url`` to ``dest``, resuming an interrupted earlier download.

    Bytes go to ``dest + ".part"``; an existing ``.part`` is continued with an HTTP
    Range request. Only a complete, verified file is renamed to ``dest``. An
    existing ``dest`` is reused when it matches ``sha256`` (or when no checksum
    is given).

    Args:
        url: http(s) URL.
        dest: destination file; its directory is created.
        sha256: expected hex SHA-256 of the whole file.
        on_progress: called with the number of new bytes as they arrive.
        remote_options: passed to :class:`RemoteFile` (retries, timeout, ...).

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: as :class:`RemoteFile`; the ``.part`` file is kept for the
            next attempt unless its content is proven wrong.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        if sha256 is None or _file_sha256(dest).hexdigest() == sha256.lower():
            return dest
        raise DownloadError(
            f"{dest} exists but its SHA-256 does not match {sha256}; delete it to download again"
        )
    part = dest.with_name(dest.name + ".part")
    # The server's ETag/Last-Modified for the bytes in .part, so a later run can
    # tell whether the file on the server is still the one it started.
    sidecar = dest.with_name(dest.name + ".part.validator")
    start = part.stat().st_size if part.is_file() else 0
    validator = None
    if start and sidecar.is_file():
        validator = sidecar.read_text(encoding="utf-8").strip() or None
    hasher = _file_sha256(part) if (sha256 and start) else None
    remote = RemoteFile(
        url, start=start, sha256=sha256, hasher=hasher, on_progress=on_progress,
        validator=validator, **remote_options,
    )
    try:
        with open(part, "ab") as out:
            while chunk := remote.read(CHUNK):
                if validator is None and remote.validator:
                    validator = remote.validator
                    atomic_write_text(sidecar, validator)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except DownloadError as e:
        if "SHA-256" in str(e) or "changed" in str(e):
            # Resuming corrupt or stale bytes can never succeed: start over next time.
            part.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
        raise
    finally:
        remote.close()
    os.replace(part, dest)
    sidecar.unlink(missing_ok=True)
    return dest
