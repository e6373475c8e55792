"""Ogg page rewriting: give every page of a logical stream a fixed serial number.

libsndfile picks the Ogg stream serial number at random, so encoding the same
audio twice gives files that differ in the serial (bytes 14-17 of every page)
and, through it, in every page checksum. The Opus packets themselves are
deterministic. Rewriting the serial and recomputing the checksums makes the
output a pure function of the input, which the corpus synthesizer needs for
byte-identical reruns.
"""

from __future__ import annotations

import struct
import zlib

_CAPTURE = b"OggS"
_HEADER_BYTES = 27  # fixed part of a page header, before the segment table
_SERIAL = slice(14, 18)
_CHECKSUM = slice(22, 26)

# Bit-reversal of every byte value; Ogg's CRC is the MSB-first twin of zlib's.
_REVERSE_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _reverse32(x: int) -> int:
    return int(f"{x:032b}"[::-1], 2)


def ogg_crc(data: bytes) -> int:
    """Ogg page checksum: CRC-32, polynomial 0x04C11DB7, MSB first, init 0, no final xor.

    Computed through ``zlib.crc32`` (the reflected form of the same polynomial, with
    init and final xor 0xFFFFFFFF): reversing the bits of every input byte and of the
    result turns one into the other, and xoring the CRC of an all-zero message of the
    same length cancels zlib's init/xor constants (CRCs are affine in the message).
    C speed, no table in Python.
    """
    reflected = zlib.crc32(data.translate(_REVERSE_BITS)) ^ zlib.crc32(bytes(len(data)))
    return _reverse32(reflected)


def set_stream_serial(ogg: bytes, serial: int) -> bytes:
    """Return ``ogg`` with every page's serial number set to ``serial``, checksums redone.

    Args:
        ogg: a complete Ogg file with a single logical stream (what libsndfile writes).
        serial: the new serial number, 0 <= serial < 2**32.

    Raises:
        ValueError: if ``ogg`` is not a well-formed sequence of Ogg pages.
    """
    if not 0 <= serial < 2**32:
        raise ValueError(f"Ogg serial must fit in 32 bits, got {serial}")
    out = bytearray(ogg)
    packed_serial = struct.pack("<I", serial)
    pos = 0
    while pos < len(out):
        if out[pos : pos + 4] != _CAPTURE or pos + _HEADER_BYTES > len(out):
            raise ValueError(f"not an Ogg page at byte {pos}")
        n_segments = out[pos + 26]
        table_end = pos + _HEADER_BYTES + n_segments
        page_end = table_end + sum(out[pos + _HEADER_BYTES : table_end])
        if page_end > len(out):
            raise ValueError(f"truncated Ogg page at byte {pos}")
        page = out[pos:page_end]
        page[_SERIAL] = packed_serial
        page[_CHECKSUM] = b"\0\0\0\0"
        page[_CHECKSUM] = struct.pack("<I", ogg_crc(bytes(page)))
        out[pos:page_end] = page
        pos = page_end
    return bytes(out)
