"""corpus.audio: decoding any format, normalising to one 16 kHz second, deterministic Opus."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf
import soxr

from corpus import _opus
from protos.errors import InputError
from corpus._ogg import ogg_crc, set_stream_serial
from corpus._opus_decode import NativeDecodeError, decode_ogg_opus, is_ogg_opus
from corpus.audio import (
    CLIP_SAMPLES,
    SAMPLE_RATE,
    ClipError,
    _encode_opus_libsndfile,
    decode_audio,
    encode_opus,
    load_clip,
    normalize_clip,
    write_opus,
)


def tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(y: np.ndarray, sr: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def dominant_freq(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spectrum)])


def test_short_clip_is_centre_padded(tmp_path):
    y = np.full(int(0.3 * SAMPLE_RATE), 0.25, dtype=np.float32)
    path = tmp_path / "short.wav"
    sf.write(path, y, SAMPLE_RATE, subtype="FLOAT")
    clip = load_clip(path)
    assert clip.shape == (CLIP_SAMPLES,) and clip.dtype == np.float32
    nonzero = np.flatnonzero(clip)
    left = (CLIP_SAMPLES - len(y)) // 2
    assert nonzero[0] == left and nonzero[-1] == left + len(y) - 1
    np.testing.assert_allclose(clip[nonzero], 0.25)


def test_long_clip_keeps_its_middle_second(tmp_path):
    n = 3 * SAMPLE_RATE
    ramp = np.linspace(-0.9, 0.9, n, dtype=np.float32)
    path = tmp_path / "long.flac"
    sf.write(path, ramp, SAMPLE_RATE, subtype="PCM_24")
    clip = load_clip(path)
    start = (n - CLIP_SAMPLES) // 2
    np.testing.assert_allclose(clip, ramp[start : start + CLIP_SAMPLES], atol=1e-6)


def test_stereo_44k1_wav_is_mixed_and_resampled():
    left = tone(1.0, 44100, 440.0, 0.6)
    right = tone(1.0, 44100, 440.0, 0.2)
    y, sr = decode_audio(wav_bytes(np.stack([left, right], axis=1), 44100, subtype="FLOAT"))
    assert sr == 44100 and y.ndim == 1
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)
    clip = normalize_clip(y, sr)
    assert clip.shape == (CLIP_SAMPLES,)
    assert abs(dominant_freq(clip, SAMPLE_RATE) - 440.0) < 2.0
    # High-quality resampling keeps the amplitude (mono mix = 0.4).
    assert np.max(np.abs(clip[2000:-2000])) == pytest.approx(0.4, abs=0.01)


def test_decodes_opus_flac_mp3_from_path_bytes_and_file_object(tmp_path):
    y = tone(1.0, 48000, 1000.0)
    opus = encode_opus(y)
    for source in (opus, io.BytesIO(opus)):
        decoded, sr = decode_audio(source)
        assert sr == 48000 and decoded.shape == (48000,)
    flac = tmp_path / "x.flac"
    sf.write(flac, y, 48000)
    assert decode_audio(flac)[0].shape == (48000,)
    mp3 = wav_bytes(y, 48000, fmt="MP3")
    decoded, sr = decode_audio(mp3)
    assert sr == 48000 and abs(dominant_freq(decoded, sr) - 1000.0) < 5.0


def test_corrupt_opus_is_unreadable():
    opus = bytearray(encode_opus(tone(1.0, 48000)))
    opus[28:36] = b"NotOpus!"  # the OpusHead magic of the first packet
    with pytest.raises(ClipError) as err:
        load_clip(bytes(opus))
    assert err.value.reason == "unreadable"
    with pytest.raises(ClipError) as err:
        load_clip(b"this is not audio at all" * 10)
    assert err.value.reason == "unreadable"


def test_unreadable_message_is_the_same_every_time():
    # Skip reasons end up in manifest.json, which must be byte-identical run to run.
    messages = set()
    for _ in range(2):
        with pytest.raises(ClipError) as err:
            load_clip(io.BytesIO(b"this is not audio at all" * 10))
        messages.add(str(err.value))
    assert len(messages) == 1
    assert "0x" not in messages.pop()


def test_empty_and_silent_files(tmp_path):
    empty = tmp_path / "empty.opus"
    empty.write_bytes(b"")
    with pytest.raises(ClipError) as err:
        load_clip(empty)
    assert err.value.reason == "empty" and "empty.opus" in str(err.value)
    with pytest.raises(ClipError) as err:
        load_clip(wav_bytes(np.zeros(0, np.float32), 16000))
    assert err.value.reason == "empty"
    with pytest.raises(ClipError) as err:
        load_clip(wav_bytes(np.zeros(16000, np.float32), 16000))
    assert err.value.reason == "silent"
    with pytest.raises(ClipError) as err:
        load_clip(tmp_path / "missing.opus")
    assert err.value.reason == "unreadable"


def test_accented_word_in_path(tmp_path):
    path = tmp_path / "es" / "clips" / "año" / "común.opus"
    path.parent.mkdir(parents=True)
    write_opus(path, tone(0.8, 48000, 300.0))
    clip = load_clip(path)
    assert clip.shape == (CLIP_SAMPLES,)
    assert abs(dominant_freq(clip, SAMPLE_RATE) - 300.0) < 3.0
    assert [p.name for p in path.parent.iterdir()] == ["común.opus"]  # no temporary left behind


@pytest.mark.needs_system("libopus0")
def test_encode_opus_is_deterministic_and_exact_length():
    rng = np.random.default_rng(0)
    y = (tone(1.0, 48000, 220.0) + 0.01 * rng.standard_normal(48000)).astype(np.float32)
    a, b = encode_opus(y), encode_opus(y.copy())
    assert a == b
    assert encode_opus(y * 0.5) != a
    decoded, sr = decode_audio(a)
    assert sr == 48000 and decoded.shape == y.shape
    # The pre-skip is right: the decoded signal lines up with the input sample for sample.
    snr = 10 * np.log10(np.sum(y**2) / np.sum((decoded - y) ** 2))
    assert snr > 10
    small = encode_opus(y, bitrate=12000)
    assert len(small) < len(a)
    short, sr16 = decode_audio(encode_opus(y[:8000], sr=16000))
    assert sr16 == 16000 and short.shape == (8000,)


def test_encode_opus_validates_arguments():
    with pytest.raises(ValueError, match="sample rate"):
        encode_opus(tone(0.1, 44100), sr=44100)
    with pytest.raises(ValueError, match="mono"):
        encode_opus(np.zeros((10, 2), np.float32))
    with pytest.raises(ValueError, match="bitrate"):
        encode_opus(tone(0.1, 48000), bitrate=1000)


def test_libsndfile_fallback_gets_a_fixed_serial():
    y = tone(0.5, 48000)
    a, b = _encode_opus_libsndfile(y, 48000), _encode_opus_libsndfile(y, 48000)
    assert a == b
    assert decode_audio(a)[0].shape == (24000,)


def test_ogg_crc_matches_libsndfile_pages():
    buf = io.BytesIO()
    sf.write(buf, tone(0.5, 48000), 48000, format="OGG", subtype="OPUS")
    raw = buf.getvalue()
    n_segments = raw[26]
    end = 27 + n_segments + sum(raw[27 : 27 + n_segments])
    page = bytearray(raw[:end])
    stored = struct.unpack("<I", page[22:26])[0]
    page[22:26] = b"\0\0\0\0"
    assert ogg_crc(bytes(page)) == stored
    serial = struct.unpack("<I", raw[14:18])[0]
    assert set_stream_serial(raw, serial) == raw
    with pytest.raises(ValueError, match="Ogg page"):
        set_stream_serial(raw[:-5], 1)


@pytest.mark.needs_system("libopus0")
def test_libopus_is_used_when_present():
    # The fast path is what the synthesizer's throughput depends on.
    assert _opus.libopus() is not None


# --- native libopus decoding at 16 kHz (corpus._opus_decode) ---


def speechlike(seconds: float, sr: int = 48000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    noise = np.convolve(rng.standard_normal(n), np.ones(6) / 6, mode="same")
    return (0.3 * noise * np.clip(np.sin(2 * np.pi * 3 * t), 0, None) * np.hanning(n)).astype(np.float32)


def with_output_gain(opus: bytes, gain_q8: int) -> bytes:
    """``opus`` with the OpusHead output gain (Q7.8 dB) set, first page's CRC redone."""
    out = bytearray(opus)
    head = 27 + out[26]  # the OpusHead packet starts right after the segment table
    assert out[head : head + 8] == b"OpusHead"
    out[head + 16 : head + 18] = struct.pack("<h", gain_q8)
    page_end = head + sum(out[27:head])
    page = bytearray(out[:page_end])
    page[22:26] = b"\0\0\0\0"
    out[22:26] = struct.pack("<I", ogg_crc(bytes(page)))
    return bytes(out)


@pytest.mark.needs_system("libopus0")
def test_native_opus_decode_matches_libsndfile_path(tmp_path):
    opus = encode_opus(speechlike(1.0))
    reference = normalize_clip(*decode_audio(opus))  # libsndfile at 48 kHz + soxr
    native = decode_ogg_opus(opus, SAMPLE_RATE)
    assert native.shape == (CLIP_SAMPLES,) and native.dtype == np.float32
    assert np.corrcoef(native, reference)[0, 1] > 0.99
    # At 48 kHz the container handling (pre-skip, trimming) is exactly libsndfile's.
    np.testing.assert_array_equal(decode_ogg_opus(opus, 48000), decode_audio(opus)[0])
    # load_clip takes the native path for every kind of source, and is deterministic.
    path = tmp_path / "clip.bin"  # detection is by content, not by name
    path.write_bytes(opus)
    for source in (opus, io.BytesIO(opus), path):
        np.testing.assert_array_equal(load_clip(source), native)


def test_opus_decoder_libsndfile_skips_the_native_path(tmp_path, monkeypatch):
    """DATAPERF_OPUS_DECODER=libsndfile: Opus goes through libsndfile at 48 kHz + soxr,
    with or without a system libopus (the demo's setting: one table everywhere)."""
    from corpus.audio import OPUS_DECODER_ENV, opus_decoder

    opus = encode_opus(speechlike(1.0))
    reference = normalize_clip(*decode_audio(opus))
    monkeypatch.setenv(OPUS_DECODER_ENV, "libsndfile")
    assert opus_decoder() == "libsndfile"
    path = tmp_path / "clip.opus"
    path.write_bytes(opus)
    for source in (opus, io.BytesIO(opus), path):
        np.testing.assert_array_equal(load_clip(source), reference)
    if _opus.libopus() is not None:  # auto takes the native path, which differs in the last bits
        monkeypatch.setenv(OPUS_DECODER_ENV, "auto")
        np.testing.assert_array_equal(load_clip(opus), decode_ogg_opus(opus, SAMPLE_RATE))
        assert not np.array_equal(load_clip(opus), reference)
    monkeypatch.setenv(OPUS_DECODER_ENV, "")
    assert opus_decoder() == "auto"
    monkeypatch.setenv(OPUS_DECODER_ENV, "ffmpeg")
    with pytest.raises(InputError, match="DATAPERF_OPUS_DECODER='ffmpeg' is not a decoder"):
        load_clip(opus)


@pytest.mark.needs_system("libopus0")
def test_native_opus_trims_pre_skip_and_end():
    y = speechlike(0.3)
    opus = encode_opus(y)
    native = decode_ogg_opus(opus, SAMPLE_RATE)
    assert native.shape == (4800,)
    # Pre-skip is right: lined up with the libsndfile decode, not shifted.
    reference = soxr.resample(decode_audio(opus)[0], 48000, SAMPLE_RATE, quality="HQ")
    assert np.corrcoef(native, reference[:4800])[0, 1] > 0.99
    clip = load_clip(opus)
    left = (CLIP_SAMPLES - 4800) // 2
    assert not clip[:left].any() and not clip[left + 4800 :].any()
    # Encoded at 16 kHz (pre-skip still counted at 48 kHz): the same 4800 samples.
    assert decode_ogg_opus(encode_opus(speechlike(0.3, sr=16000), sr=16000), SAMPLE_RATE).shape == (4800,)


@pytest.mark.needs_system("libopus0")
def test_native_opus_mixes_stereo_to_mono():
    left, right = tone(1.0, 48000, 440.0, 0.6), tone(1.0, 48000, 440.0, 0.2)
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, right], axis=1), 48000, format="OGG", subtype="OPUS")
    native = decode_ogg_opus(buf.getvalue(), SAMPLE_RATE)
    assert native.shape == (CLIP_SAMPLES,)
    assert np.max(np.abs(native[2000:-2000])) == pytest.approx(0.4, abs=0.02)
    reference = normalize_clip(*decode_audio(buf.getvalue()))
    assert np.corrcoef(native, reference)[0, 1] > 0.99


@pytest.mark.needs_system("libopus0")
def test_native_opus_applies_output_gain():
    opus = encode_opus(tone(1.0, 48000, 440.0, 0.2))
    plain = load_clip(opus)
    louder = load_clip(with_output_gain(opus, 6 * 256))  # +6 dB
    np.testing.assert_allclose(louder, plain * 10 ** (6 / 20), rtol=1e-5, atol=1e-7)


@pytest.mark.needs_system("libopus0")
def test_truncated_or_damaged_opus_is_unreadable():
    opus = encode_opus(speechlike(1.0))
    with pytest.raises(NativeDecodeError):
        decode_ogg_opus(opus[: len(opus) // 2], SAMPLE_RATE)
    for broken in (opus[: len(opus) // 2], opus[:60]):
        with pytest.raises(ClipError) as err:
            load_clip(broken)
        assert err.value.reason == "unreadable"
    damaged = bytearray(opus)
    damaged[-100] ^= 0xFF  # audio bytes changed: the page checksum no longer matches
    with pytest.raises(NativeDecodeError, match="checksum"):
        decode_ogg_opus(bytes(damaged), SAMPLE_RATE)
    # A lost page (the third: first audio page) is noticed from the page sequence numbers.
    starts = [i for i in range(len(opus)) if opus[i : i + 4] == b"OggS"]
    assert len(starts) >= 4
    with pytest.raises(NativeDecodeError, match="expected"):
        decode_ogg_opus(opus[: starts[2]] + opus[starts[3] :], SAMPLE_RATE)
    assert not is_ogg_opus(wav_bytes(tone(0.1, 16000), 16000)) and is_ogg_opus(opus)


def test_silent_opus_is_silent():
    with pytest.raises(ClipError) as err:
        load_clip(encode_opus(np.zeros(48000, np.float32)))
    assert err.value.reason == "silent"
