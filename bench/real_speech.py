"""Real human recordings of the 26 English letter names, by four speakers, from Debian.

The real-speech benchmark (``bench/bench_realspeech.py``) and anything that needs the
same clips import this module::

    from bench.real_speech import load_letter_clips
    clips, labels = load_letter_clips(cache_dir)   # {speaker: [N, 16000] float32}, {speaker: [N] str}

Speakers (each package is fetched with ``apt-get download`` and unpacked with
``dpkg -x`` into ``cache_dir``; nothing is installed):

=================  ===============================  ====================================  ============
speaker            package                          files                                 licence
=================  ===============================  ====================================  ============
``asterisk_en``    ``asterisk-core-sounds-en-wav``  ``.../en_US_f_Allison/letters/a.wav``  CC-BY-SA-3.0
``klettres_en``    ``klettres-data``                ``usr/share/klettres/en/alpha/A.ogg``  GPL-2+
``klettres_en_GB`` ``klettres-data``                ``.../en_GB/alpha/a.ogg``              GPL-2+
``asterisk_ru``    ``asterisk-core-sounds-ru-wav``  ``.../ru_RU_f_IvrvoiceRU/letters/``    CC-BY-3.0
=================  ===============================  ====================================  ============

(``asterisk_ru``'s ``letters/`` are the Latin letters a..z read by a Russian speaker;
only those 26 files are used.) Licences are the packages' ``debian/copyright``.

Each recording is trimmed to its speech (frames within 40 dB of the loudest and
12 dB above the noise floor), resampled to 16 kHz (soxr) and placed in 1 s; ``copies`` seeded
channel-augmented versions are made of it (a shift that keeps the word inside the
second, white or pink noise at 30, 20 or 12 dB SNR in turn, a peak level from -26 to
-1 dBFS). Copy ``i`` of (speaker, letter) depends only on (seed, speaker, letter, i).

The Spanish, French and Italian Asterisk voices are reserved for independent
verification: :func:`corpus.debian_speech.fetch_package` refuses them by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import string
from pathlib import Path

import numpy as np

from corpus.debian_speech import (  # noqa: F401  (re-exported for the benchmark's users)
    CLIP_SAMPLES,
    RESERVED_PACKAGE,
    SAMPLE_RATE,
    RealSpeechError,
    ReservedVoiceError,
    check_not_reserved,
    fetch_package,
    load_recording,
    package_info,
    trim,
)

LETTERS = tuple(string.ascii_lowercase)
SNR_DB = (30.0, 20.0, 12.0)
DEFAULT_COPIES = 10
DEFAULT_CACHE = Path(os.environ.get("DATAPERF_REALSPEECH_CACHE", "/work/data/realspeech-cache"))


@dataclasses.dataclass(frozen=True)
class Speaker:
    """One speaker of the benchmark: a Debian package and where its letter files are."""

    name: str
    package: str
    pattern: str  # path inside the package, '{letter}' / '{LETTER}' replaced
    licence: str
    note: str


SPEAKERS: tuple[Speaker, ...] = (
    Speaker("asterisk_en", "asterisk-core-sounds-en-wav",
            "usr/share/asterisk/sounds/en_US_f_Allison/letters/{letter}.wav", "CC-BY-SA-3.0",
            "Allison Smith, US English, 8 kHz telephone prompts"),
    Speaker("klettres_en", "klettres-data", "usr/share/klettres/en/alpha/{LETTER}.ogg", "GPL-2+",
            "KLettres English, wideband"),
    Speaker("klettres_en_GB", "klettres-data", "usr/share/klettres/en_GB/alpha/{letter}.ogg", "GPL-2+",
            "KLettres British English, wideband"),
    Speaker("asterisk_ru", "asterisk-core-sounds-ru-wav",
            "usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU/letters/{letter}.wav", "CC-BY-3.0",
            "Russian Asterisk voice reading the Latin letters, 8 kHz"),
)


def speaker_files(speaker: Speaker, cache_dir: Path) -> dict[str, Path]:
    """letter -> recording file of ``speaker`` (fetching its package if needed)."""
    root = fetch_package(speaker.package, cache_dir)
    files = {}
    for letter in LETTERS:
        path = root / speaker.pattern.format(letter=letter, LETTER=letter.upper())
        if not path.is_file():
            raise RealSpeechError(f"{speaker.name}: {path} is missing from {speaker.package}")
        files[letter] = path
    return files


def _key_seed(*parts) -> np.random.Generator:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
    noise = np.fft.irfft(spec / freqs ** (exponent / 2), n)
    return noise / (np.std(noise) + 1e-12)


def augmented_copies(speech: np.ndarray, copies: int, seed: int, key: str) -> np.ndarray:
    """Seeded channel-augmented copies of one trimmed recording, each 1 s.

    Copy ``i``: the speech placed at a random offset (inside the second, at most
    +-100 ms from centred), white or pink noise at ``SNR_DB[i % 3]`` relative to the
    speech's power, peak level uniform in [-26, -1] dBFS.

    Args:
        speech: np.ndarray [shape=(m,)] float32, m <= 16000, 16 kHz.
        copies: how many copies.
        seed: benchmark seed.
        key: names the recording (e.g. ``"asterisk_en/b"``); with ``seed`` and the copy
            index it seeds each copy.

    Returns:
        np.ndarray [shape=(copies, 16000)] float32 in [-1, 1].
    """
    speech = np.asarray(speech, dtype=np.float64)
    m = speech.size
    if m > CLIP_SAMPLES:
        raise ValueError(f"{key}: speech of {m} samples does not fit in {CLIP_SAMPLES}")
    out = np.empty((copies, CLIP_SAMPLES), dtype=np.float32)
    power = np.mean(np.square(speech)) + 1e-12
    centre = (CLIP_SAMPLES - m) // 2
    for i in range(copies):
        rng = _key_seed(seed, key, i)
        slack = min(centre, 1600)
        start = centre + int(rng.integers(-slack, slack + 1))
        y = np.zeros(CLIP_SAMPLES)
        y[start : start + m] = speech
        noise = _colored_noise(rng, CLIP_SAMPLES, float(rng.choice([0.0, 1.0])))
        snr = SNR_DB[i % len(SNR_DB)]
        y = y + noise * np.sqrt(power / 10 ** (snr / 10))
        y = y / (np.max(np.abs(y)) + 1e-12) * 10 ** (rng.uniform(-26.0, -1.0) / 20)
        out[i] = y
    return out


def load_recordings(cache_dir: Path | None = None,
                    speakers: tuple[Speaker, ...] = SPEAKERS) -> dict[str, dict[str, np.ndarray]]:
    """speaker -> letter -> trimmed speech [m] float32 at 16 kHz (fetching what is missing)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    return {s.name: {letter: load_recording(path) for letter, path in speaker_files(s, cache_dir).items()}
            for s in speakers}


def load_letter_clips(cache_dir: Path | None = None, copies: int = DEFAULT_COPIES, seed: int = 0,
                      speakers: tuple[Speaker, ...] = SPEAKERS
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The benchmark's clips: per speaker, ``copies`` augmented 1-s clips of each letter.

    Args:
        cache_dir: where packages are fetched and unpacked (default
            ``$DATAPERF_REALSPEECH_CACHE`` or ``/work/data/realspeech-cache``).
        copies: augmented copies per recording.
        seed: augmentation seed.
        speakers: which speakers (default all four).

    Returns:
        clips: {speaker: np.ndarray [shape=(26 * copies, 16000)] float32}, letter-major
            (rows ``i * copies .. (i + 1) * copies`` are letter ``LETTERS[i]``);
        labels: {speaker: np.ndarray [shape=(26 * copies,)] str}, the letter of each row.
    """
    recordings = load_recordings(cache_dir, speakers)
    clips, labels = {}, {}
    for name, by_letter in recordings.items():
        clips[name] = np.concatenate(
            [augmented_copies(by_letter[letter], copies, seed, f"{name}/{letter}") for letter in LETTERS])
        labels[name] = np.repeat(np.array(LETTERS), copies)
    return clips, labels
