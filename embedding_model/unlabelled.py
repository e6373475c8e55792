"""Unlabelled real speech for distillation: 1-s windows from Debian packages.

A teacher needs no labels, so real recordings can teach the student what real
voices sound like. This module cuts 1-second windows (16 kHz) from real recordings
whose speakers are NOT speakers of the real-speech benchmark (``bench/real_speech.py``):

* ``klettres-data`` (GPL-2+): letters and syllables read by native speakers of ~20
  languages; ``en`` and ``en_GB`` are benchmark speakers and are left out;
* ``ktuberling-data`` (GPL-2+): the names of KTuberling's objects, spoken in ~25
  languages; ``en`` is left out (its speaker is not named, so it could be one of the
  benchmark's English speakers).

No Asterisk package is used (two Asterisk voices are benchmark speakers; the
Spanish, French and Italian ones are reserved for independent verification).
Identical files (some languages share recordings) are kept once; windows of a long
recording that fall in a pause (RMS below -50 dBFS) are dropped.

    python -m embedding_model.unlabelled --out /work/data/unlabelled-real [--cache-dir DIR]

Writes ``OUT/windows.npy`` (int16 [N, 16000]), ``OUT/windows.csv`` (row, package,
language, file, start) and ``OUT/manifest.json`` (packages, their .deb SHA-256,
licences, what was left out). :func:`load_windows` reads them back as float32.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np

from corpus.clip import CLIP_SAMPLES
from protos.errors import EXIT_STATUS_HELP, InputError, run_cli

HOP_SAMPLES = 8000
SILENT_RMS = 10 ** (-50 / 20)  # windows quieter than -50 dBFS RMS (speech peaks at 0 dBFS) are dropped


@dataclasses.dataclass(frozen=True)
class UnlabelledSource:
    """A package and the folder holding one folder per language."""

    package: str
    languages_dir: str
    licence: str
    excluded_languages: tuple[str, ...]


SOURCES = (
    UnlabelledSource("klettres-data", "usr/share/klettres", "GPL-2+", ("en", "en_GB")),
    UnlabelledSource("ktuberling-data", "usr/share/ktuberling/sounds", "GPL-2+", ("en",)),
)


def windows_of(speech: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Cut trimmed speech into 1-s windows.

    Args:
        speech: np.ndarray [shape=(m,)] float32 at 16 kHz.

    Returns:
        [(start, window [16000] float32)]: one centred window when m <= 16000
        (start negative: the padding before the speech), else windows every 0.5 s
        with the last one ending at the speech's end.
    """
    m = speech.size
    if m <= CLIP_SAMPLES:
        left = (CLIP_SAMPLES - m) // 2
        out = np.zeros(CLIP_SAMPLES, np.float32)
        out[left : left + m] = speech
        return [(-left, out)]
    starts = list(range(0, m - CLIP_SAMPLES + 1, HOP_SAMPLES))
    if starts[-1] != m - CLIP_SAMPLES:
        starts.append(m - CLIP_SAMPLES)
    return [(s, speech[s : s + CLIP_SAMPLES].astype(np.float32)) for s in starts]


def collect_files(cache_dir: Path, sources=None) -> list[tuple[str, str, Path]]:
    """[(package, language, path)] of every usable recording, sorted, duplicates dropped.

    ``sources`` defaults to :data:`SOURCES`.
    """
    from corpus.debian_speech import fetch_package

    files, seen = [], set()
    for source in SOURCES if sources is None else sources:
        root = fetch_package(source.package, cache_dir) / source.languages_dir
        for lang_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if lang_dir.name in source.excluded_languages:
                continue
            for path in sorted(lang_dir.rglob("*")):
                if path.suffix.lower() not in (".ogg", ".wav", ".flac") or not path.is_file():
                    continue
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                if digest in seen:
                    continue
                seen.add(digest)
                files.append((source.package, lang_dir.name, path))
    return files


def build(cache_dir: Path, out: Path, progress: bool = True, limit: int | None = None) -> dict:
    """Fetch the packages, cut the windows and write them to ``out``; returns the manifest."""
    from tqdm import tqdm

    from corpus.debian_speech import RealSpeechError, load_recording, package_info
    from protos.atomic import atomic_write, atomic_write_bytes, atomic_write_text

    files = collect_files(cache_dir)
    if limit is not None:
        files = files[:limit]
    rows, windows, skipped = [], [], []
    for package, lang, path in tqdm(files, desc="cutting windows", disable=not progress):
        try:
            speech = load_recording(path, max_samples=None)
        except RealSpeechError as exc:
            skipped.append(str(exc))
            continue
        rel = str(path).split(f"/pkgs/{package}/", 1)[-1]
        for start, window in windows_of(speech):
            if np.sqrt(np.mean(np.square(window, dtype=np.float64))) < SILENT_RMS:
                continue  # a pause between syllables: nothing to teach
            rows.append((len(rows), package, lang, rel, start))
            windows.append(np.round(np.clip(window, -1.0, 1.0) * 32767).astype(np.int16))
    if not windows:
        raise InputError(f"no usable recordings found under {cache_dir}")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "windows.npy", "wb") as f:
        np.save(f, np.stack(windows))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["row", "package", "language", "file", "start"])
    writer.writerows(rows)
    atomic_write_bytes(out / "windows.csv", text.getvalue().encode())
    infos = package_info(cache_dir)
    langs: dict[str, int] = {}
    for _, package, lang, _, _ in rows:
        langs[f"{package}:{lang}"] = langs.get(f"{package}:{lang}", 0) + 1
    manifest = {
        "windows": len(rows), "recordings": len(files) - len(skipped), "skipped": skipped,
        "sample_rate": 16000, "clip_samples": CLIP_SAMPLES,
        "sources": [dataclasses.asdict(s) | {"deb": infos.get(s.package)} for s in SOURCES
                    if s.package in {package for _, package, *_ in rows}],
        "windows_per_language": dict(sorted(langs.items())),
        "rule": "speakers of the real-speech benchmark (Asterisk en/ru, KLettres en/en_GB) and the reserved "
                "Asterisk es/fr/it voices are never used; KTuberling en is left out (unnamed speaker)",
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_windows(out: Path) -> np.ndarray:
    """The windows written by :func:`build`: np.ndarray [shape=(N, 16000)] float32 in [-1, 1]."""
    path = Path(out) / "windows.npy"
    if not path.is_file():
        raise InputError(f"{path} not found: run python -m embedding_model.unlabelled --out {out}")
    return np.load(path).astype(np.float32) / 32767.0


class _OwwTeacher:
    """openWakeWord's embedder with the ``dim`` that :func:`embedding_model.ewn.compute_targets` reads."""

    def __init__(self, teacher: str):
        from embedding_model.oww import DIM, OpenWakeWordEmbedder

        context, step = teacher.split(":")
        self._emb = OpenWakeWordEmbedder(context=context, window_step=int(step), threads=1)
        self.dim = DIM
        self.identity = self._emb.identity

    def embed(self, clips: np.ndarray) -> np.ndarray:
        return self._emb.embed(clips)


def distillation_set(out: Path, views: int = 4, seed: int = 0, rirs=None, teacher: str | None = "centered2s:16",
                     ewn: bool = False, progress: bool = True) -> dict[str, np.ndarray]:
    """Training input for distillation-only rows: augmented log-mel views and teacher targets.

    View 0 is the window at a random level, the others pass through the same seeded
    channel augmentation as the corpus cache (:class:`embedding_model.augment.ChannelAugmenter`),
    seeded by (seed, window row, view). Features are cached in ``out`` per (views, seed,
    rooms); teacher targets per teacher (:func:`embedding_model.ewn.compute_targets`).

    Args:
        out: a directory written by :func:`build`.
        views: views per window.
        seed: augmentation seed.
        rirs: room impulse responses (:func:`embedding_model.augment.make_rir_bank`); None or [] disables rooms.
        teacher: openWakeWord's ``"context:window_step"`` (as ``train-embedding --teacher``), or None.
        ewn: also EfficientWord-Net's targets (``python -m embedding_model.ewn --windows OUT``
            computes them ahead, resumably).

    Returns:
        {"features": [N, views, 49, 40] float16, "oww": [N, 96] float32 (if teacher),
        "ewn": [N, 2048] float16 (if ewn)}.
    """
    from embedding_model.augment import ChannelAugmenter
    from embedding_model.frontend import log_mel_numpy
    from protos.atomic import atomic_write

    out = Path(out)
    windows = load_windows(out)
    rirs = list(rirs or [])
    rooms = hashlib.sha256(b"".join(np.asarray(r, np.float32).tobytes() for r in rirs)).hexdigest()[:8]
    path = out / f"features-v{views}-s{seed}-r{rooms}.npy"
    result: dict[str, np.ndarray] = {}
    if path.is_file():
        result["features"] = np.load(path)
    else:
        augmenter = ChannelAugmenter(rirs=rirs, babble=None)
        feats = np.empty((len(windows), views, 49, 40), np.float16)
        for i, clip in enumerate(windows):
            rng = np.random.default_rng([seed, i])
            per = [np.clip(clip * 10 ** (rng.uniform(-20.0, 3.0) / 20), -1, 1).astype(np.float32)]
            per += [augmenter(clip, rng) for _ in range(views - 1)]
            feats[i] = log_mel_numpy(np.stack(per)).astype(np.float16)
        with atomic_write(path, "wb") as f:
            np.save(f, feats)
        result["features"] = feats
    keys = [str(i) for i in range(len(windows))]
    if teacher:
        from embedding_model.ewn import compute_targets

        name = "oww-" + teacher.replace(":", "-")
        result["oww"] = compute_targets(keys, lambda k: windows[int(k)], out, _OwwTeacher(teacher),
                                        progress=progress, name=name).astype(np.float32)
    if ewn:
        from embedding_model.ewn import compute_targets

        result["ewn"] = compute_targets(keys, lambda k: windows[int(k)], out, progress=progress)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m embedding_model.unlabelled",
        description="Cut 1-s windows of unlabelled real speech (KLettres and KTuberling, benchmark "
        "speakers left out) for distillation-only training.",
        epilog=EXIT_STATUS_HELP,
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--cache-dir", type=Path, default=Path("/work/data/realspeech-cache"),
                   help="where the Debian packages are downloaded and unpacked")
    p.add_argument("--limit", type=int, default=None, help="use only the first N recordings (for trials)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    manifest = build(args.cache_dir, args.out, progress=not args.no_progress, limit=args.limit)
    print(f"{manifest['windows']} windows from {manifest['recordings']} recordings -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli("embedding_model.unlabelled", main))
