"""Resumable, verified downloads (dataset_builder.fetch) against a server on 127.0.0.1.

The server below (also used by test_archive_source.py) answers Range and If-Range
requests and can drop the connection midway through a body.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from dataset_builder.errors import DownloadError
from dataset_builder.fetch import RemoteFile, download, open_stream


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        server: FileServer = self.server  # type: ignore[assignment]
        body = server.files.get(self.path)
        range_header = self.headers.get("Range")
        server.requests.append((self.path, range_header))
        if body is None:
            self.send_error(404, "Not Found")
            return
        etag = '"%s"' % hashlib.sha1(body).hexdigest()
        start = 0
        partial = False
        if range_header and server.honor_range:
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range == etag:
                start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
                partial = True
        if partial and start >= len(body):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if partial else 200)
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes" if server.honor_range else "none")
        self.end_headers()
        payload = body[start:]
        if server.drops > 0 and len(payload) > server.drop_after:
            server.drops -= 1
            self.wfile.write(payload[: server.drop_after])
            self.wfile.flush()
            # Simulate a network failure midway through the body.
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(payload)


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes) from 127.0.0.1.

    Attributes:
        drops: how many responses to cut short (each after ``drop_after`` body bytes).
        honor_range: answer Range requests with 206 (else always 200, full body).
        requests: ``(path, Range header)`` of every request, in order.
    """

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = dict(files)
        self.drops = 0
        self.drop_after = 0
        self.honor_range = True
        self.requests: list[tuple[str, str | None]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@contextlib.contextmanager
def serve(files: dict[str, bytes]) -> Iterator[FileServer]:
    """Run a :class:`FileServer` in a thread for the duration of the block."""
    server = FileServer(files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------- tests

DATA = bytes(range(256)) * 4000  # ~1 MB, every byte position distinguishable
SHA = hashlib.sha256(DATA).hexdigest()


def test_stream_resumes_after_dropped_connections():
    with serve({"/a.tar.gz": DATA}) as server:
        server.drops, server.drop_after = 2, 300_000
        with open_stream(server.url("/a.tar.gz"), sha256=SHA, backoff=0) as f:
            got = f.read()
        assert got == DATA
        ranges = [r for _, r in server.requests]
        assert ranges == [None, "bytes=300000-", "bytes=600000-"]


def test_stream_gives_up_after_retries_and_says_how_to_resume():
    with serve({"/a": DATA}) as server:
        # Each response carries no new byte: consecutive failures exhaust the retries.
        server.drops, server.drop_after = 10, 0
        with pytest.raises(DownloadError, match=r"connection lost at byte 0 .*run again to resume"):
            with open_stream(server.url("/a"), retries=2, backoff=0) as f:
                f.read()


def test_checksum_mismatch_is_reported():
    with serve({"/a": DATA}) as server:
        with pytest.raises(DownloadError, match="SHA-256 is .* expected 00"):
            with open_stream(server.url("/a"), sha256="00" * 32) as f:
                f.read()


def test_size_mismatch_is_reported():
    with serve({"/a": DATA}) as server:
        remote = RemoteFile(server.url("/a"), expected_size=len(DATA) + 1)
        with pytest.raises(DownloadError, match=f"server says {len(DATA)} bytes, expected {len(DATA) + 1}"):
            remote.read(10)


def test_http_error_is_one_line():
    with serve({}) as server:
        with pytest.raises(DownloadError, match=r"^http://127\.0\.0\.1:\d+/missing: HTTP 404"):
            with open_stream(server.url("/missing")) as f:
                f.read()


def test_server_without_range_support_still_gives_the_right_bytes():
    with serve({"/a": DATA}) as server:
        server.honor_range = False
        server.drops, server.drop_after = 1, 500_000
        with open_stream(server.url("/a"), sha256=SHA, backoff=0) as f:
            assert f.read() == DATA
        assert len(server.requests) == 2


def test_download_resumes_a_part_file_from_an_earlier_run(tmp_path):
    dest = tmp_path / "dl" / "es.tar.gz"
    with serve({"/es.tar.gz": DATA}) as server:
        server.drops, server.drop_after = 1, 400_000
        with pytest.raises(DownloadError):
            download(server.url("/es.tar.gz"), dest, sha256=SHA, retries=0)
        part = dest.with_name("es.tar.gz.part")
        assert not dest.exists() and part.stat().st_size == 400_000

        download(server.url("/es.tar.gz"), dest, sha256=SHA)
        assert dest.read_bytes() == DATA and not part.exists()
        assert server.requests[-1] == ("/es.tar.gz", "bytes=400000-")

        # A verified file is reused without touching the network.
        before = len(server.requests)
        download(server.url("/es.tar.gz"), dest, sha256=SHA)
        assert len(server.requests) == before


def test_download_of_a_complete_part_file_finishes(tmp_path):
    dest = tmp_path / "x.bin"
    dest.with_name("x.bin.part").write_bytes(DATA)
    with serve({"/x.bin": DATA}) as server:
        download(server.url("/x.bin"), dest, sha256=SHA)
    assert dest.read_bytes() == DATA


def test_download_refuses_to_resume_a_file_that_changed(tmp_path):
    dest = tmp_path / "x.bin"
    with serve({"/x.bin": DATA}) as server:
        server.drops, server.drop_after = 1, 100_000
        with pytest.raises(DownloadError):
            download(server.url("/x.bin"), dest, retries=0)
        server.files["/x.bin"] = DATA[::-1]
        # The .part holds bytes of the old version: If-Range makes the server send
        # the new file whole, which the client must not splice onto the old bytes.
        with pytest.raises(DownloadError, match="changed on the server"):
            download(server.url("/x.bin"), dest)
        assert not dest.exists()
        assert not dest.with_name("x.bin.part").exists()
        download(server.url("/x.bin"), dest)
    assert dest.read_bytes() == DATA[::-1]


def test_local_file_checksum(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(DATA)
    with open_stream(path, sha256=SHA) as f:
        assert f.read() == DATA
    with pytest.raises(DownloadError, match="SHA-256"):
        with open_stream(path, sha256="ab" * 32) as f:
            f.read()
    with pytest.raises(DownloadError, match="no such file"):
        open_stream(tmp_path / "nope.tar.gz")
