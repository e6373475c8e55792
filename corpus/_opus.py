"""A small Ogg/Opus writer over libopus (ctypes), for fast and byte-reproducible clips.

libsndfile can write Ogg/Opus too, but it always runs the encoder at its slowest
setting (about 40 ms per one-second clip here, slower than synthesizing the clip)
and picks a random stream serial. Driving libopus directly lets the caller choose
the encoder complexity and bitrate, and the container is written here with a
serial number derived from the audio, so the same samples always give the same
bytes. The stream follows RFC 7845: an ``OpusHead`` page, an ``OpusTags`` page,
then audio pages; the last page's granule position trims the encoder's padding,
so a decoder returns exactly the input length.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import struct
import zlib

import numpy as np

from corpus._ogg import ogg_crc

_OPUS_APPLICATION_AUDIO = 2049
_OPUS_SET_BITRATE = 4002
_OPUS_SET_VBR = 4006
_OPUS_SET_COMPLEXITY = 4010
_OPUS_GET_LOOKAHEAD = 4027
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
"""The sample rates libopus encodes and decodes at."""
_MAX_PACKET = 4000  # libopus's recommended output buffer size
_PACKETS_PER_PAGE = 50  # one second of 20 ms frames, as opusenc does


@functools.lru_cache(maxsize=1)
def libopus() -> ctypes.CDLL | None:
    """The libopus shared library, or None when it cannot be loaded."""
    for name in ("libopus.so.0", ctypes.util.find_library("opus")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.opus_encoder_create.restype = ctypes.c_void_p
        lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_encode_float.restype = ctypes.c_int32
        lib.opus_encode_float.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_float),
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int32,
        ]
        lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_get_version_string.restype = ctypes.c_char_p
        # Decoder, for corpus._opus_decode.
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_decode_float.restype = ctypes.c_int
        lib.opus_decode_float.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.POINTER(ctypes.c_float),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        return lib
    return None


def _page(header_type: int, granule: int, serial: int, sequence: int, packets: list[bytes]) -> bytes:
    lacing = bytearray()
    for p in packets:
        lacing += b"\xff" * (len(p) // 255) + bytes([len(p) % 255])
    if len(lacing) > 255:
        raise ValueError("too many segments for one Ogg page")
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, header_type, granule, serial, sequence, 0, len(lacing))
    page = bytearray(header + lacing + b"".join(packets))
    page[22:26] = struct.pack("<I", ogg_crc(bytes(page)))
    return bytes(page)


def encode_ogg_opus(y: np.ndarray, sr: int, bitrate: int, complexity: int) -> bytes:
    """Encode mono float audio as an Ogg/Opus file with libopus.

    Args:
        y : np.ndarray [shape=(n,)] float32 mono in [-1, 1].
        sr : int, one of 8000, 12000, 16000, 24000, 48000.
        bitrate: target bits per second (variable bitrate), 6000-510000.
        complexity: libopus encoder complexity 0-10 (quality vs. speed).

    Returns:
        The Ogg/Opus bytes; identical for identical arguments.

    Raises:
        RuntimeError: libopus is missing or refused the settings.
    """
    lib = libopus()
    if lib is None:
        raise RuntimeError("libopus is not available")
    if sr not in OPUS_RATES:
        raise ValueError(f"Opus needs a sample rate of 8/12/16/24/48 kHz, got {sr}")
    y = np.ascontiguousarray(y, dtype=np.float32)
    err = ctypes.c_int(0)
    enc = lib.opus_encoder_create(sr, 1, _OPUS_APPLICATION_AUDIO, ctypes.byref(err))
    if not enc or err.value != 0:
        raise RuntimeError(f"opus_encoder_create failed with error {err.value}")
    try:
        handle = ctypes.c_void_p(enc)
        for request, value in ((_OPUS_SET_BITRATE, bitrate), (_OPUS_SET_VBR, 1), (_OPUS_SET_COMPLEXITY, complexity)):
            status = lib.opus_encoder_ctl(handle, ctypes.c_int(request), ctypes.c_int(value))
            if status != 0:
                raise RuntimeError(f"opus_encoder_ctl({request}, {value}) failed with error {status}")
        lookahead = ctypes.c_int(0)
        lib.opus_encoder_ctl(handle, ctypes.c_int(_OPUS_GET_LOOKAHEAD), ctypes.byref(lookahead))
        scale = 48000 // sr  # granule positions and pre-skip count 48 kHz samples
        frame = sr // 50
        n = y.shape[0]
        # Encode past the end by the encoder delay, so the last input samples come out.
        total = -(-(n + lookahead.value) // frame) * frame
        pcm = np.zeros(total, dtype=np.float32)
        pcm[:n] = y
        out = ctypes.create_string_buffer(_MAX_PACKET)
        packets = []
        for start in range(0, total, frame):
            chunk = pcm[start : start + frame]
            size = lib.opus_encode_float(enc, chunk.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), frame, out, _MAX_PACKET)
            if size < 0:
                raise RuntimeError(f"opus_encode_float failed with error {size}")
            packets.append(out.raw[:size])
    finally:
        lib.opus_encoder_destroy(ctypes.c_void_p(enc))

    pre_skip = lookahead.value * scale
    serial = (zlib.crc32(y.tobytes()) ^ (sr * 2654435761)) & 0xFFFFFFFF
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, sr, 0, 0)
    vendor = lib.opus_get_version_string() or b"libopus"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    pages = [_page(0x02, 0, serial, 0, [head]), _page(0x00, 0, serial, 1, [tags])]
    end_granule = pre_skip + n * scale
    for i in range(0, len(packets), _PACKETS_PER_PAGE):
        group = packets[i : i + _PACKETS_PER_PAGE]
        last = i + _PACKETS_PER_PAGE >= len(packets)
        # Samples decoded up to the page's last packet, pre-skip included (RFC 7845 4);
        # the final page's smaller value tells the decoder where the input ended.
        granule = end_granule if last else (i + len(group)) * frame * scale
        pages.append(_page(0x04 if last else 0x00, granule, serial, len(pages), group))
    return b"".join(pages)
