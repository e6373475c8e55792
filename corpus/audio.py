"""Decoding and normalising keyword clips, and writing them as Ogg/Opus.

Every clip that enters the pipeline ends up as the same thing: float32 in [-1, 1],
mono, 16 kHz, exactly :data:`CLIP_SAMPLES` samples, the word centred (as MSWC cut
its clips). :func:`load_clip` decodes Ogg/Opus (recognised by its ``OpusHead``
header, not the file name) with libopus straight at 16 kHz (:mod:`corpus._opus_decode`),
which is several times cheaper than decoding at 48 kHz and resampling. Everything else,
and any Opus file that path cannot parse, goes through libsndfile (via ``soundfile``),
which reads Opus, Vorbis, WAV, FLAC and MP3 in-process: no ``opusdec``/``ffmpeg``
subprocess per clip. Resampling uses soxr's high-quality setting. Encoding drives libopus
directly (:mod:`corpus._opus`): faster than libsndfile's encoder and byte-reproducible.

The two Opus paths differ in the last bits (libopus's own resampler against soxr's),
and those differences can flip a selection. ``DATAPERF_OPUS_DECODER=libsndfile``
(``build-dataset --opus-decoder libsndfile``; the demo uses it) sends Opus through
libsndfile too, the copy bundled with the ``soundfile`` wheel, so the same wheel gives
the same samples whether or not the system has libopus.
"""

from __future__ import annotations

import io
import os
import re
import zlib
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf
import soxr

from corpus import _opus
from corpus._ogg import set_stream_serial
from corpus._opus_decode import NativeDecodeError, decode_ogg_opus, is_ogg_opus
from corpus.clip import CLIP_SAMPLES, SAMPLE_RATE
from protos.atomic import atomic_write_bytes
from protos.errors import InputError

OPUS_SAMPLE_RATE = 48000
"""Sample rate of MSWC's Opus files, and the rate libsndfile always decodes Opus at."""

SILENCE_PEAK = 1e-4
"""Peak amplitude below which a decoded clip counts as silent (-80 dBFS)."""

AudioSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

OPUS_DECODER_ENV = "DATAPERF_OPUS_DECODER"
"""Environment variable choosing the Ogg/Opus decoder, one of :data:`OPUS_DECODERS`."""

OPUS_DECODERS = ("auto", "libsndfile")
"""``auto``: libopus at 16 kHz when it loads, else libsndfile; ``libsndfile``: always
libsndfile at 48 kHz, then soxr (the same samples on every machine with the same wheel)."""


def opus_decoder() -> str:
    """The Ogg/Opus decoder :envvar:`DATAPERF_OPUS_DECODER` asks for (unset or empty: auto).

    Raises:
        InputError: any other value (the message names the variable and the choices).
    """
    value = os.environ.get(OPUS_DECODER_ENV, "") or "auto"
    if value not in OPUS_DECODERS:
        raise InputError(f"{OPUS_DECODER_ENV}={value!r} is not a decoder: set it to "
                         f"{' or '.join(OPUS_DECODERS)}, or unset it")
    return value


class ClipError(InputError):
    """A clip that cannot be used, with a machine-readable ``reason``.

    Attributes:
        reason: ``"unreadable"`` (not audio libsndfile can decode, or corrupt),
            ``"empty"`` (no samples at all) or ``"silent"`` (digital silence).
        source: a short description of where the clip came from.
    """

    REASONS = ("unreadable", "empty", "silent")

    def __init__(self, reason: str, source: str, detail: str = ""):
        if reason not in self.REASONS:
            raise ValueError(f"unknown ClipError reason {reason!r}")
        self.reason = reason
        self.source = source
        message = f"{source}: {reason}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


_MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _describe(source: AudioSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return str(getattr(source, "name", "<file object>"))


def decode_audio(source: AudioSource) -> tuple[np.ndarray, int]:
    """Decode any audio libsndfile reads, mixed down to mono.

    Args:
        source: a path, the encoded bytes, or a binary file object
            (Opus, Ogg/Vorbis, WAV, FLAC, MP3, ...).

    Returns:
        y : np.ndarray [shape=(n,)] float32, mono (channel mean), at the file's rate.
        sr : int, the file's sample rate in Hz.

    Raises:
        ClipError: ``"empty"`` for a zero-length input or a file without samples,
            ``"unreadable"`` when libsndfile cannot decode it.
    """
    name = _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ClipError("empty", name, "0 bytes")
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        try:
            if os.path.getsize(source) == 0:
                raise ClipError("empty", name, "0 bytes")
        except OSError as e:
            raise ClipError("unreadable", name, e.strerror or str(e)) from e
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        # libsndfile's own text, not str(e): that embeds the file object's repr, whose
        # memory address would make skip reasons (and manifests) differ run to run.
        detail = getattr(e, "error_string", None) or (str(e).strip().splitlines()[0] if str(e) else "")
        raise ClipError("unreadable", name, _MEMORY_ADDRESS.sub("", detail)) from e
    if data.shape[0] == 0:
        raise ClipError("empty", name, "no samples")
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise ClipError("unreadable", name, "non-finite samples")
    return np.ascontiguousarray(y, dtype=np.float32), int(sr)


def normalize_clip(y: np.ndarray, sr: int) -> np.ndarray:
    """Resample to 16 kHz (soxr, high quality) and centre-pad or centre-crop to one second.

    Args:
        y : np.ndarray [shape=(n,)] float mono audio.
        sr : int, its sample rate in Hz.

    Returns:
        np.ndarray [shape=(16000,)] float32. A shorter input is zero-padded equally
        on both sides (the extra sample, if odd, goes to the end); a longer one keeps
        its middle second, as MSWC centres the word in its clips.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n,), got shape {y.shape}")
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if sr != SAMPLE_RATE and y.size:
        y = soxr.resample(y, sr, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    n = y.shape[0]
    if n == CLIP_SAMPLES:
        return np.ascontiguousarray(y)
    if n > CLIP_SAMPLES:
        start = (n - CLIP_SAMPLES) // 2
        return np.ascontiguousarray(y[start : start + CLIP_SAMPLES])
    out = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    left = (CLIP_SAMPLES - n) // 2
    out[left : left + n] = y
    return out


def load_clip(source: AudioSource) -> np.ndarray:
    """Decode and normalise one clip.

    Ogg/Opus input is decoded by libopus directly at 16 kHz (no resampling); anything
    else, or Opus the native decoder rejects, goes through :func:`decode_audio`
    (libsndfile at the file's rate, then soxr), so odd and damaged files keep exactly
    the libsndfile behaviour and error reasons.

    Args:
        source: a path, the encoded bytes, or a binary file object.

    Returns:
        np.ndarray [shape=(16000,)] float32 in [-1, 1], 16 kHz mono.

    Raises:
        ClipError: with ``reason`` ``"unreadable"``, ``"empty"`` or ``"silent"``.
    """
    y = _load_opus_native(source)
    if y is not None:
        sr = SAMPLE_RATE
    else:
        y, sr = decode_audio(source)
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise ClipError("silent", _describe(source), f"peak below {SILENCE_PEAK:g}")
    return normalize_clip(y, sr)


_PEEK_BYTES = 512  # enough for any first Ogg page header plus the OpusHead magic


def _read_if_opus(source: AudioSource) -> bytes | None:
    """The whole of ``source`` if it starts like an Ogg/Opus file, else None.

    A file object is left at its starting position either way, so the libsndfile
    fallback reads it as if nothing had happened; unseekable ones are not peeked at.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source) if is_ogg_opus(bytes(source[:_PEEK_BYTES])) else None
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                # Peek first: a large WAV or FLAC should not be read twice.
                head = f.read(_PEEK_BYTES)
                return head + f.read() if is_ogg_opus(head) else None
        except OSError:
            return None  # decode_audio reports it, with its usual reason
    try:
        start = source.tell()
    except (AttributeError, OSError, ValueError):
        return None
    try:
        head = source.read(_PEEK_BYTES)
        return head + source.read() if isinstance(head, bytes) and is_ogg_opus(head) else None
    except (OSError, ValueError):
        return None
    finally:
        source.seek(start)


def _load_opus_native(source: AudioSource) -> np.ndarray | None:
    """Decode Ogg/Opus at 16 kHz with libopus; None whenever libsndfile should decide instead.

    Returns:
        np.ndarray [shape=(n,)] float32 mono at :data:`SAMPLE_RATE`, n > 0, all finite;
        or None for non-Opus input, a stream the native decoder rejects, or a result
        (no samples, non-finite values) whose error reason libsndfile should give.
    """
    if opus_decoder() == "libsndfile":
        return None
    data = _read_if_opus(source)
    if data is None:
        return None
    try:
        y = decode_ogg_opus(data, SAMPLE_RATE)
    except NativeDecodeError:
        return None
    if y.size == 0 or not np.all(np.isfinite(y)):
        return None
    return y


def encode_opus(y: np.ndarray, sr: int = OPUS_SAMPLE_RATE, bitrate: int = 32000, complexity: int = 5) -> bytes:
    """Encode mono audio as Ogg/Opus, byte-identically for identical input.

    Args:
        y : np.ndarray [shape=(n,)] float mono audio in [-1, 1].
        sr : int, its sample rate; Opus accepts 8000, 12000, 16000, 24000 or 48000.
        bitrate: target bits per second (variable bitrate), 6000-510000. 32 kbit/s
            keeps a voice clean; 12 kbit/s is audibly lossy and half the size.
        complexity: libopus encoder effort 0-10; 5 costs a few ms per second of audio,
            10 several times that for little gain on speech.

    Returns:
        The bytes of an Ogg/Opus file that decodes to exactly ``n`` samples. The same
        arguments always give the same bytes (the stream serial is derived from the
        samples, not drawn at random).
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n,), got shape {y.shape}")
    if sr not in _opus.OPUS_RATES:
        raise ValueError(f"Opus needs a sample rate of 8/12/16/24/48 kHz, got {sr}")
    if not 6000 <= bitrate <= 510000:
        raise ValueError(f"Opus bitrate must be 6000-510000 bit/s, got {bitrate}")
    if not 0 <= complexity <= 10:
        raise ValueError(f"Opus complexity must be 0-10, got {complexity}")
    if _opus.libopus() is not None:
        return _opus.encode_ogg_opus(y, sr, bitrate, complexity)
    return _encode_opus_libsndfile(y, sr)


def _encode_opus_libsndfile(y: np.ndarray, sr: int) -> bytes:
    """Fallback without a loadable libopus: libsndfile's encoder, its random serial replaced."""
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="OGG", subtype="OPUS")
    serial = zlib.crc32(y.tobytes()) ^ zlib.crc32(np.int64(sr).tobytes())
    return set_stream_serial(buf.getvalue(), serial & 0xFFFFFFFF)


def write_opus(
    path: str | os.PathLike, y: np.ndarray, sr: int = OPUS_SAMPLE_RATE, bitrate: int = 32000, complexity: int = 5
) -> Path:
    """Encode ``y`` with :func:`encode_opus` and write it to ``path`` atomically.

    Args:
        path: destination file; its directory must exist.
        y : np.ndarray [shape=(n,)] float mono audio in [-1, 1].
        sr, bitrate, complexity: see :func:`encode_opus`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    atomic_write_bytes(path, encode_opus(y, sr, bitrate=bitrate, complexity=complexity))
    return path
