"""Real human speech shipped in Debian packages: fetch, unpack, decode, trim.

A package is fetched with ``apt-get download`` and unpacked with ``dpkg -x`` into a
cache directory (nothing is installed, no root needed beyond what apt-get download
needs). Used by the real-speech benchmark (``bench/real_speech.py``: the English
letter names by four speakers) and by the unlabelled real-speech windows for
distillation (``embedding_model.unlabelled``)::

    root = fetch_package("klettres-data", cache_dir)       # cache_dir/pkgs/klettres-data/
    speech = load_recording(root / "usr/share/klettres/de/alpha/a.ogg")   # [m] float32, 16 kHz

The Spanish, French and Italian Asterisk voices are reserved for independent
verification: :func:`fetch_package` refuses them by name, before any download.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from corpus.clip import CLIP_SAMPLES, SAMPLE_RATE
from protos.errors import EnvironmentProblem, InputError

TRIM_DB = 40.0

# Never downloaded, trained, tuned or measured on (independent verification).
RESERVED_PACKAGE = re.compile(
    r"^(asterisk-core-sounds-(es|fr|it)(-|$)|asterisk-prompt-es-co|asterisk-prompt-fr-armelle|asterisk-prompt-it-menardi)"
)


class RealSpeechError(EnvironmentProblem):
    """A package cannot be fetched or a recording is missing or unreadable (exit status 3)."""


class ReservedVoiceError(InputError):
    """A package reserved for independent verification was asked for (exit status 1)."""


def check_not_reserved(package: str) -> None:
    """Raise :class:`ReservedVoiceError` for a package reserved for independent verification."""
    if RESERVED_PACKAGE.match(package):
        raise ReservedVoiceError(
            f"{package} is reserved for independent verification: it is never downloaded, "
            "trained, tuned or measured on")


def fetch_package(package: str, cache_dir: Path) -> Path:
    """Download one Debian package and unpack it (``apt-get download`` + ``dpkg -x``).

    Args:
        package: the Debian package name.
        cache_dir: the cache root; the tree goes to ``cache_dir/pkgs/{package}/``.

    Returns:
        the unpacked tree's root. Reused when already there (``.complete`` marker
        holding the .deb's name, size and SHA-256).

    Raises:
        ReservedVoiceError: a reserved package.
        RealSpeechError: apt-get or dpkg failed.
    """
    check_not_reserved(package)
    root = Path(cache_dir) / "pkgs" / package
    if (root / ".complete").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise RealSpeechError(f"{tool} not found: the real-speech data comes from Debian packages")
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=f".{package}-") as tmp:
        tmp = Path(tmp)
        run = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = sorted(tmp.glob(f"{package}_*.deb"))
        if run.returncode != 0 or not debs:
            detail = (run.stderr.strip().splitlines() or ["no .deb written"])[-1]
            raise RealSpeechError(f"apt-get download {package} failed: {detail} (try `apt-get update`)")
        tree = tmp / "tree"
        run = subprocess.run(["dpkg", "-x", str(debs[0]), str(tree)], capture_output=True, text=True)
        if run.returncode != 0:
            raise RealSpeechError(f"dpkg -x {debs[0].name} failed: {run.stderr.strip()}")
        data = debs[0].read_bytes()
        info = {"deb": debs[0].name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (tree / ".complete").write_text(json.dumps(info) + "\n", encoding="utf-8")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tree, root)
    return root


def package_info(cache_dir: Path) -> dict[str, dict]:
    """{package: {deb, bytes, sha256}} of the packages fetched into ``cache_dir``."""
    out = {}
    for marker in sorted((Path(cache_dir) / "pkgs").glob("*/.complete")):
        out[marker.parent.name] = json.loads(marker.read_text(encoding="utf-8"))
    return out


def trim(y: np.ndarray, sr: int, floor_db: float = TRIM_DB, margin_s: float = 0.03) -> np.ndarray:
    """Keep the span from the first to the last frame of speech.

    A frame is speech when its level is within ``floor_db`` of the loudest frame and
    at least 12 dB above the recording's noise floor (the 10th percentile of frame
    levels, digital silence left out): some KLettres recordings have a noise floor
    only 30 dB below the word, the Asterisk prompts are cut close, and a
    fricative (the end of "s", "f", "x") can be 35 dB below the vowel.

    Args:
        y: np.ndarray [shape=(n,)] float mono audio.
        sr: its sample rate.
        floor_db: frames quieter than the loudest by more than this are silence.
        margin_s: kept on each side of the speech.

    Returns:
        np.ndarray [shape=(m,)] float32, m <= n.
    """
    y = np.asarray(y, dtype=np.float32)
    frame, hop = max(1, int(0.02 * sr)), max(1, int(0.01 * sr))
    if y.size <= frame:
        return y
    starts = np.arange(0, y.size - frame + 1, hop)
    energy = np.array([np.mean(np.square(y[s : s + frame], dtype=np.float64)) for s in starts])
    level = 10 * np.log10(energy + 1e-20)
    peak = level.max()
    audible = level[level > -120.0]
    noise_floor = float(np.percentile(audible, 10)) if audible.size else -120.0
    threshold = min(max(peak - floor_db, noise_floor + 12.0), peak - 6.0)
    loud = np.flatnonzero(level >= threshold)
    margin = int(margin_s * sr)
    begin = max(0, int(starts[loud[0]]) - margin)
    end = min(y.size, int(starts[loud[-1]]) + frame + margin)
    return y[begin:end]


def load_recording(path: Path, max_samples: int | None = CLIP_SAMPLES) -> np.ndarray:
    """Decode, trim and resample one recording to 16 kHz.

    Args:
        path: any file libsndfile reads.
        max_samples: a longer recording keeps its most energetic ``max_samples``
            (None: keep it whole).

    Returns:
        np.ndarray [shape=(m,)] float32, the speech at 16 kHz, peak 1, m <= max_samples.
    """
    import soundfile as sf
    import soxr

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise RealSpeechError(f"{path}: unreadable ({exc})") from exc
    y = data.mean(axis=1)
    if y.size == 0 or np.max(np.abs(y)) < 1e-4:
        raise RealSpeechError(f"{path}: silent or empty")
    y = trim(y, sr)
    if sr != SAMPLE_RATE:
        y = soxr.resample(y, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    if max_samples is not None and y.size > max_samples:
        power = np.cumsum(np.concatenate([[0.0], np.square(y, dtype=np.float64)]))
        window = power[max_samples:] - power[:-max_samples]
        start = int(np.argmax(window))
        y = y[start : start + max_samples]
    return (y / np.max(np.abs(y))).astype(np.float32)
