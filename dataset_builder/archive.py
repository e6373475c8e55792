"""MSWC's per-language tar archives, read in one streaming pass.

The published archives are ``audio/{lang}.tar.gz`` (clips under
``{lang}/clips/{word}/{clip}.opus``) and ``splits/{lang}.tar.gz`` (holding
``{lang}_splits.csv``). Big languages are tens of GB, so nothing is unpacked:
the archive is read once, front to back, and only the members the experiment
needs are kept, in memory, for the decoders. Members are checked before anything
is done with them: absolute paths, ``..`` components, symbolic and hard links,
devices and FIFOs stop the run (:class:`UnsafeArchiveError`), because an archive
that contains them is not an MSWC archive and may be hostile.

Every archive is read to its end, also after the last clip the build needs: every
member header is checked, the tar end-of-archive blocks must be there, and the
compression's own trailer is verified (gzip: CRC-32 and length of every member;
bzip2 and xz: their block checksums). A damaged or truncated archive therefore
stops the build, wherever the damage is. The cost: the whole archive is read
(and, over HTTP, downloaded) even when the chosen clips come early in it.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import posixpath
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Mapping

from dataset_builder.errors import BuildError, UnsafeArchiveError
from dataset_builder.fetch import open_stream


def check_member(member: tarfile.TarInfo, archive: str) -> None:
    """Refuse a member that is not a plain file or directory inside the archive root.

    Raises:
        UnsafeArchiveError: absolute path, ``..`` component, link, device or FIFO.
    """
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        why = "absolute path"
    elif ".." in name.replace("\\", "/").split("/"):
        why = "'..' in its path"
    elif member.issym():
        why = f"symbolic link to {member.linkname!r}"
    elif member.islnk():
        why = f"hard link to {member.linkname!r}"
    elif member.ischr() or member.isblk():
        why = "device file"
    elif member.isfifo():
        why = "FIFO"
    elif not (member.isfile() or member.isdir()):
        why = f"unsupported member type {member.type!r}"
    else:
        return
    raise UnsafeArchiveError(
        f"{archive}: refusing unsafe member {name!r} ({why}); this is not an MSWC archive "
        "or it was tampered with"
    )


class _Prepended(io.RawIOBase):
    """``head`` then the rest of ``stream``: a sniffed stream that cannot peek, made whole again."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self.head = head
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _decompressed(stream: BinaryIO) -> BinaryIO:
    """The archive's tar bytes: gzip, bzip2 and xz are decoded by readers that verify
    their trailers (tarfile's own stream reader does not check gzip's CRC or length)."""
    if hasattr(stream, "peek"):
        head = stream.peek(6)[:6]
    else:
        head = stream.read(6)
        stream = io.BufferedReader(_Prepended(head, stream))
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(stream, mode="rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(stream, mode="rb")
    return stream


def iter_files(stream: BinaryIO, archive: str) -> Iterator[tuple[str, tarfile.TarFile, tarfile.TarInfo]]:
    """Stream a (possibly compressed) tar archive to its end: yield its regular files in order.

    Args:
        stream: the archive bytes, read sequentially (gzip, bz2, xz or plain tar).
        archive: name for messages.

    Yields:
        ``(normalised member path, tar, member)``; read a member's bytes with
        :func:`read_member` before advancing. Keep iterating to the end: the
        checks of the members after the last one you need, of the end-of-archive
        blocks and of the compression trailer run only then.

    Raises:
        UnsafeArchiveError: see :func:`check_member`.
        BuildError: the stream is not a tar archive, is truncated or corrupt.
    """
    try:
        data = _decompressed(stream)
        with tarfile.open(fileobj=data, mode="r|") as tar:
            last = None
            for member in tar:
                check_member(member, archive)
                last = member.name
                if member.isfile():
                    yield posixpath.normpath(member.name), tar, member
            _check_end(tar, archive, last)
        while data.read(1 << 20):  # the compression trailer is checked at its end
            pass
    except (tarfile.TarError, EOFError) as e:
        raise BuildError(f"{archive}: not a readable tar archive or truncated ({e})") from None
    except (OSError, zlib.error, lzma.LZMAError) as e:  # gzip/bz2/xz errors
        raise BuildError(f"{archive}: corrupt compressed data ({e})") from None


def read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: str) -> bytes:
    """The bytes of the current member of a streamed archive.

    Raises:
        BuildError: the data is truncated or its compression is corrupt.
    """
    try:
        return tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BuildError(f"{archive}: cannot read member {member.name!r}: damaged or truncated ({e})") from None


def _check_end(tar: tarfile.TarFile, archive: str, last: str | None) -> None:
    """Refuse an archive whose member list ended on a damaged or missing block.

    tarfile ends the member list quietly when a header after the first is
    unreadable, which would turn a truncated or corrupt archive into "missing
    clips". A well-formed archive ends with zero blocks (at least 1,024 bytes, of
    which tarfile has read the first 512), and nothing else.
    """
    remaining = 0
    while block := tar.fileobj.read(1 << 16):
        if block.count(0) != len(block):
            break
        remaining += len(block)
    else:
        if remaining >= 512:
            return
    after = f"after member {last!r}" if last else "at its start"
    raise BuildError(f"{archive}: the archive is damaged or truncated {after}; download it again")


def link_of(member_path: str) -> str | None:
    """The MSWC link (``word/clip.opus``) of an audio archive member, or None.

    Clips live at ``{lang}/clips/{word}/{clip}``; the link is the last two parts,
    whatever prefix the archive uses.
    """
    parts = member_path.split("/")
    if len(parts) < 3 or parts[-3] != "clips":
        return None
    return f"{parts[-2]}/{parts[-1]}"


def read_splits_archive(location: str | os.PathLike, lang: str, *, sha256: str | None = None,
                        **remote_options):
    """Read ``{lang}_splits.csv`` out of an MSWC splits archive (path or URL).

    Returns:
        list[corpus.layout.ClipRecord], parsed by the corpus package's reader.

    Raises:
        BuildError: the archive holds no ``{lang}_splits.csv``; see also :func:`iter_files`.
    """
    from corpus import layout

    wanted = f"{lang}_splits.csv"
    with open_stream(location, sha256=sha256, **remote_options) as stream:
        data = None
        for path, tar, member in iter_files(stream, str(location)):
            if posixpath.basename(path) == wanted and data is None:
                data = read_member(tar, member, str(location))
        while stream.read(1 << 20):  # the end of the stream is where the checksum is checked
            pass
    if data is None:
        raise BuildError(f"{location}: no {wanted} inside; is this the splits archive of {lang!r}?")
    with tempfile.TemporaryDirectory(prefix="mswc-splits-") as tmp:
        (Path(tmp) / wanted).write_bytes(data)
        return layout.read_splits(Path(tmp), lang)


class _Counted(io.RawIOBase):
    """A stream that reports how many bytes were read from it (progress of a long read)."""

    def __init__(self, stream: BinaryIO, on_bytes: Callable[[int], object]):
        self.stream = stream
        self.on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        buffer[:len(data)] = data
        if data:
            self.on_bytes(len(data))
        return len(data)


def iter_archive_clips(
    location: str | os.PathLike,
    wanted: Mapping[str, int],
    *,
    sha256: str | None = None,
    on_bytes: Callable[[int], object] | None = None,
    **remote_options,
) -> Iterator[tuple[int, bytes | None]]:
    """Stream an MSWC audio archive once, yielding the clips in ``wanted``.

    Args:
        location: path or http(s) URL of ``audio/{lang}.tar.gz``.
        wanted: link -> index of the clip in the experiment.
        sha256: expected checksum of the archive, verified at its end. The archive
            is always read to its end (see the module docstring).
        on_bytes: called with the number of (compressed) bytes read, as they are
            read: progress through the archive, also after the last wanted clip.

    Yields:
        ``(index, encoded clip bytes)`` in archive order, then ``(index, None)``
        for every wanted clip the archive does not contain.
    """
    found: set[str] = set()
    with open_stream(location, sha256=sha256, **remote_options) as stream:
        counted = stream if on_bytes is None else io.BufferedReader(_Counted(stream, on_bytes))
        for path, tar, member in iter_files(counted, str(location)):
            link = link_of(path)
            if link is None or link not in wanted or link in found:
                continue
            found.add(link)
            yield wanted[link], read_member(tar, member, str(location))
        while stream.read(1 << 20):  # the end of the stream is where the checksum is checked
            pass
    for link, index in wanted.items():
        if link not in found:
            yield index, None
