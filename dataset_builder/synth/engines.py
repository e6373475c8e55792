"""Text-to-speech engines installed on the machine, and one-word synthesis with each.

Three engines, all run as subprocesses (their output is deterministic per call,
whereas espeak-ng used in-process carries oscillator and noise state from one
utterance to the next):

* ``espeak-ng``: every voice of the language (``es``, ``es-419``, ...) combined with
  every variant (``+f3``, ``+klatt2``, ``+whisper``, ...); rate and pitch set per speaker.
* ``festival``: the festvox voices Debian ships. Each reads its text in a fixed
  8-bit encoding (the Italian and Finnish diphone voices stop at the first accented
  letter given UTF-8), so every voice carries its encoding; festival starts slowly
  (about 0.5 s), so a speaker's words go to one festival process.
* ``flite``: English voices; one short process per word.
"""

from __future__ import annotations

import functools
import glob
import io
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from protos.errors import EnvironmentProblem

ESPEAK = "espeak-ng"
FESTIVAL = "festival"
FLITE = "flite"
ENGINES = (ESPEAK, FESTIVAL, FLITE)

_TIMEOUT_PER_WORD_S = 20.0


class EngineError(EnvironmentProblem):
    """A TTS engine is missing or failed as a whole (not a single word)."""


@dataclass(frozen=True)
class Voice:
    """One voice of one engine, before per-speaker parameters are applied.

    Attributes:
        engine: ``"espeak-ng"``, ``"festival"`` or ``"flite"``.
        name: the engine's voice name (espeak-ng language code such as ``"es-419"``,
            festival voice such as ``"kal_diphone"``, flite voice such as ``"slt"``).
        variant: espeak-ng variant (``"f3"``, ``"klatt2"``), ``""`` for none / other engines.
        gender: ``"MALE"`` or ``"FEMALE"``.
        encoding: text encoding the engine expects for this voice.
    """

    engine: str
    name: str
    variant: str
    gender: str
    encoding: str = "utf-8"

    @property
    def family(self) -> str:
        """``engine:name``: the unit to hold out when testing on unseen voices."""
        return f"{self.engine}:{self.name}"

    def can_say(self, word: str) -> bool:
        """False if ``word`` has letters this voice's text encoding cannot carry."""
        try:
            word.encode(self.encoding)
        except UnicodeEncodeError:
            return False
        return True


# Festival voices Debian ships: language, gender, and the text encoding each expects
# (checked here by synthesizing an accented word in each candidate encoding).
# hindi_NSK_diphone is left out: it spelled words letter by letter in that check.
_FESTIVAL_VOICES = {
    "en": [
        ("kal_diphone", "MALE", "ascii"),
        ("ked_diphone", "MALE", "ascii"),
        ("cmu_us_slt_arctic_hts", "FEMALE", "ascii"),
    ],
    "it": [("lp_diphone", "FEMALE", "latin-1"), ("pc_diphone", "MALE", "latin-1")],
    "cs": [("czech_machac", "MALE", "iso-8859-2"), ("czech_ph", "MALE", "iso-8859-2")],
    "fi": [("hy_fi_mv_diphone", "MALE", "latin-1"), ("suo_fi_lj_diphone", "FEMALE", "latin-1")],
    "ru": [("msu_ru_nsh_clunits", "MALE", "utf-8")],
    "ca": [("upc_ca_ona_hts", "FEMALE", "utf-8")],
}
# Voice state a word's synthesis leaves behind: reset before every word. The Czech
# voices size their random range from the first 100 draws and keep it.
_FESTIVAL_RESET = {"czech_machac": "(set! czech-rand-range nil) ", "czech_ph": "(set! czech-rand-range nil) "}
_FESTIVAL_VOICE_DIRS = ("/usr/share/festival/voices", "/usr/lib/festival/voices", "/usr/local/share/festival/voices")

_FLITE_VOICES = {"en": [("kal", "MALE"), ("kal16", "MALE"), ("awb", "MALE"), ("rms", "MALE"), ("slt", "FEMALE")]}

# espeak-ng voices written in another script than the language's usual one.
_ESPEAK_SKIP = re.compile(r"-latn")


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)


@functools.lru_cache(maxsize=None)
def have(engine: str) -> bool:
    """True if ``engine`` is on PATH."""
    return shutil.which(engine) is not None


@functools.lru_cache(maxsize=None)
def espeak_languages() -> tuple[str, ...]:
    """Language codes of the installed espeak-ng voices (``es``, ``es-419``, ``en-us``, ...)."""
    if not have(ESPEAK):
        return ()
    out = _run([ESPEAK, "--voices"], 30).stdout.decode("utf-8", "replace")
    langs = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4 and parts[0].isdigit():
            langs.append(parts[1])
    return tuple(sorted(set(langs)))


@functools.lru_cache(maxsize=None)
def espeak_variants() -> tuple[tuple[str, str], ...]:
    """espeak-ng's voice variants as ``(variant, gender)``, e.g. ``("f3", "FEMALE")``.

    Variants whose file name has a space are skipped: ``-v lang+name`` cannot carry it.
    """
    if not have(ESPEAK):
        return ()
    out = _run([ESPEAK, "--voices=variant"], 30).stdout.decode("utf-8", "replace")
    variants = []
    for line in out.splitlines()[1:]:
        m = re.match(r"^\s*\d+\s+variant\s+\S+/([MF-])\s+\S+\s+!v/(.+?)\s*(\(.*\))?\s*$", line)
        if not m or " " in m.group(2):
            continue
        variants.append((m.group(2), "FEMALE" if m.group(1) == "F" else "MALE"))
    return tuple(sorted(set(variants)))


def espeak_voice_names(lang: str) -> list[str]:
    """espeak-ng voices of ``lang``: its own code and regional forms (``es``, ``es-419``)."""
    return [
        code
        for code in espeak_languages()
        if (code == lang or code.startswith(lang + "-")) and not _ESPEAK_SKIP.search(code)
    ]


@functools.lru_cache(maxsize=None)
def _festival_voice_installed(name: str) -> bool:
    return any(glob.glob(f"{d}/*/{name}") for d in _FESTIVAL_VOICE_DIRS)


@functools.lru_cache(maxsize=None)
def _flite_voices_installed() -> frozenset[str]:
    if not have(FLITE):
        return frozenset()
    out = _run([FLITE, "-lv"], 30)
    text = (out.stdout + out.stderr).decode("utf-8", "replace")
    _, _, names = text.partition(":")
    return frozenset(names.split())


def voices_for(lang: str, engines: tuple[str, ...] = ENGINES) -> list[Voice]:
    """Every installed voice (with every espeak-ng variant) that speaks ``lang``.

    Args:
        lang: language code (``"es"``).
        engines: engines to consider.

    Returns:
        Voices sorted by family then variant; empty if no installed engine speaks ``lang``.
    """
    voices: list[Voice] = []
    if ESPEAK in engines:
        variants = [("", "MALE")] + list(espeak_variants())
        for name in espeak_voice_names(lang):
            voices += [Voice(ESPEAK, name, variant, gender) for variant, gender in variants]
    if FESTIVAL in engines and have(FESTIVAL):
        for name, gender, encoding in _FESTIVAL_VOICES.get(lang, []):
            if _festival_voice_installed(name):
                voices.append(Voice(FESTIVAL, name, "", gender, encoding))
    if FLITE in engines:
        installed = _flite_voices_installed()
        for name, gender in _FLITE_VOICES.get(lang, []):
            if name in installed:
                voices.append(Voice(FLITE, name, "", gender, "ascii"))
    return sorted(voices, key=lambda v: (v.family, v.variant))


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    try:
        y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise EngineError(f"engine wrote audio that cannot be read: {e}") from e
    return np.ascontiguousarray(y.mean(axis=1), dtype=np.float32), int(sr)


def synth_espeak(voice: Voice, word: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    """Synthesize ``word`` with espeak-ng.

    Args:
        voice: an espeak-ng :class:`Voice`.
        word: the text.
        rate: words per minute (espeak-ng ``-s``, 80-450).
        pitch: 0-99 (espeak-ng ``-p``).

    Returns:
        y : np.ndarray [shape=(n,)] float32 mono, and its sample rate (22050).
    """
    name = voice.name + (f"+{voice.variant}" if voice.variant else "")
    proc = _run([ESPEAK, "-v", name, "-s", str(rate), "-p", str(pitch), "-b", "1", "--stdout", word], _TIMEOUT_PER_WORD_S)
    if proc.returncode != 0 or not proc.stdout:
        raise EngineError(f"espeak-ng -v {name} failed on {word!r}: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return _read_wav(proc.stdout)


def synth_flite(voice: Voice, word: str, duration_stretch: float) -> tuple[np.ndarray, int]:
    """Synthesize ``word`` with flite; ``duration_stretch`` > 1 speaks slower.

    Returns:
        y : np.ndarray [shape=(n,)] float32 mono, and its sample rate.
    """
    with tempfile.TemporaryDirectory(prefix="flite-") as tmp:
        out = Path(tmp) / "w.wav"
        proc = _run(
            [FLITE, "-voice", voice.name, "--setf", f"duration_stretch={duration_stretch:.3f}", "-t", word, "-o", str(out)],
            _TIMEOUT_PER_WORD_S,
        )
        if proc.returncode != 0 or not out.is_file():
            raise EngineError(f"flite -voice {voice.name} failed on {word!r}: {proc.stderr.decode('utf-8', 'replace').strip()}")
        return _read_wav(out.read_bytes())


def synth_festival(voice: Voice, words: list[str], duration_stretch: float) -> dict[str, tuple[np.ndarray, int]]:
    """Synthesize several words with as few festival processes as possible.

    Args:
        voice: a festival :class:`Voice` (its ``encoding`` is used for the script).
        words: the words; each must satisfy ``voice.can_say``.
        duration_stretch: festival's ``Duration_Stretch`` (> 1 speaks slower).

    Returns:
        ``{word: (y, sr)}`` for the words festival produced audio for (y float32 mono);
        words it failed on are missing.
    """
    results: dict[str, tuple[np.ndarray, int]] = {}
    pending = list(dict.fromkeys(words))
    while pending:
        done, crashed = _festival_batch(voice, pending, duration_stretch)
        results.update(done)
        if not crashed:
            break
        # Festival can crash outright on a word (pc_diphone segfaults on "fra" at some
        # duration stretches), taking the rest of the batch with it: the first word
        # without audio is the culprit; go on with the words after it.
        culprit = next(i for i, w in enumerate(pending) if w not in done)
        pending = [w for w in pending[culprit + 1 :] if w not in done]
    return results


def _festival_batch(
    voice: Voice, words: list[str], duration_stretch: float
) -> tuple[dict[str, tuple[np.ndarray, int]], bool]:
    """One festival process over ``words``: the audio it made, and whether it died before the end."""
    results: dict[str, tuple[np.ndarray, int]] = {}
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        lines = [f"(voice_{voice.name})", f"(Parameter.set 'Duration_Stretch {duration_stretch:.3f})"]
        for i, word in enumerate(words):
            # Some voices randomise their prosody (the Czech ones call `rand`): reseed per
            # word, so a word sounds the same whichever words share its festival process.
            seed = zlib.crc32(f"{voice.name}\x1f{word}\x1f{duration_stretch:.3f}".encode("utf-8")) & 0x7FFFFFFF
            # unwind-protect: a word festival reports an error on does not stop the rest.
            lines.append(
                f'(srand {seed}) {_FESTIVAL_RESET.get(voice.name, "")}'
                f'(unwind-protect (utt.save.wave (utt.synth (Utterance Text "{word}")) "{tmp}/{i}.wav" \'riff) nil)'
            )
        lines.append('(print "done")')
        script = Path(tmp) / "say.scm"
        script.write_bytes(("\n".join(lines) + "\n").encode(voice.encoding))
        try:
            proc = _run([FESTIVAL, "-b", str(script)], 10.0 + _TIMEOUT_PER_WORD_S * len(words))
            finished = proc.returncode == 0 and b"done" in proc.stdout
        except subprocess.TimeoutExpired:
            finished = False
        for i, word in enumerate(words):
            wav = Path(tmp) / f"{i}.wav"
            if wav.is_file() and wav.stat().st_size > 44:
                try:
                    results[word] = _read_wav(wav.read_bytes())
                except EngineError:
                    continue
    crashed = not finished and len(results) < len(words)
    return results, crashed
