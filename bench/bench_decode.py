"""Decode throughput of corpus.audio: one-second 48 kHz Opus clips per second per core.

    python bench/bench_decode.py --clips 500
    python bench/bench_decode.py --corpus dataset_builder/demo_corpus --lang es

Times, on one process: ``decode_audio`` (libsndfile Opus decode at 48 kHz + mono), then
``normalize_clip`` (soxr HQ resample to 16 kHz + centre pad/crop), then the libsndfile
path of ``load_clip`` (both, plus the silence check), then ``load_clip`` itself (Ogg/Opus
decoded natively at 16 kHz by libopus) on the same files, and ``encode_opus`` for
reference; each as clips per wall-clock second and per CPU second of the process, and
CPU ms per clip for the two ``load_clip`` paths.
Without ``--corpus`` the clips are made here: speech-like noise bursts, encoded at
32 kbit/s. Results depend on the machine's load, which is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from corpus.audio import SILENCE_PEAK, ClipError, decode_audio, encode_opus, load_clip, normalize_clip  # noqa: E402
from corpus.layout import clip_path, read_splits  # noqa: E402


def make_clips(n: int, out: Path, seed: int) -> tuple[list[Path], float]:
    """``n`` one-second 48 kHz Opus files of band-limited noise under a syllable envelope; returns paths and encode CPU s/clip."""
    rng = np.random.default_rng(seed)
    t = np.arange(48000) / 48000
    paths = []
    encode_seconds = 0.0
    for i in range(n):
        noise = np.convolve(rng.standard_normal(48000), np.ones(6) / 6, mode="same")
        envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t), 0, None) * np.hanning(48000)
        y = (0.3 * noise * envelope).astype(np.float32)
        start = time.process_time()
        data = encode_opus(y)
        encode_seconds += time.process_time() - start
        path = out / f"clip_{i:05d}.opus"
        path.write_bytes(data)
        paths.append(path)
    return paths, encode_seconds / n


def load_clip_libsndfile(path: Path) -> np.ndarray:
    """``load_clip`` as it was before the native Opus decoder: libsndfile at 48 kHz, then soxr."""
    y, sr = decode_audio(path)
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise ClipError("silent", str(path))
    return normalize_clip(y, sr)


def rate(fn, items) -> tuple[float, float, list]:
    """Items per wall-clock second and per CPU second of this process (the latter barely moves with load)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = [fn(x) for x in items]
    return len(items) / (time.perf_counter() - start), len(items) / (time.process_time() - cpu), out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=500, help="clips to make (without --corpus) or to read at most")
    p.add_argument("--corpus", type=Path, default=None, help="an MSWC-layout corpus to read clips from")
    p.add_argument("--lang", default="es")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        encode_ms = None
        if args.corpus:
            records = read_splits(args.corpus, args.lang)[: args.clips]
            paths = [clip_path(args.corpus, args.lang, r.link) for r in records]
        else:
            paths, encode_s = make_clips(args.clips, Path(tmp), args.seed)
            encode_ms = round(1000 * encode_s, 2)
        # Warm the page cache so the numbers are about decoding, not the disk.
        for path in paths:
            path.read_bytes()
        load = os.getloadavg()
        decode_rate, decode_cpu, decoded = rate(decode_audio, paths)
        resample_rate, resample_cpu, _ = rate(lambda d: normalize_clip(*d), decoded)
        sndfile_rate, sndfile_cpu, _ = rate(load_clip_libsndfile, paths)
        load_rate, load_cpu, _ = rate(load_clip, paths)
        result = {
            "command": " ".join([sys.executable, *sys.argv]),
            "clips": len(paths),
            "source": str(args.corpus) if args.corpus else "synthetic 1-s 48 kHz Opus, 32 kbit/s",
            "decode_clips_per_s_per_core": round(decode_rate, 1),
            "normalize_clips_per_s_per_core": round(resample_rate, 1),
            "load_clip_clips_per_s_per_core": round(load_rate, 1),
            "decode_clips_per_cpu_s": round(decode_cpu, 1),
            "normalize_clips_per_cpu_s": round(resample_cpu, 1),
            "load_clip_clips_per_cpu_s": round(load_cpu, 1),
            "load_clip_libsndfile_clips_per_s_per_core": round(sndfile_rate, 1),
            "load_clip_libsndfile_clips_per_cpu_s": round(sndfile_cpu, 1),
            "load_clip_native_cpu_ms_per_clip": round(1000 / load_cpu, 2),
            "load_clip_libsndfile_cpu_ms_per_clip": round(1000 / sndfile_cpu, 2),
            "encode_opus_cpu_ms_per_clip": encode_ms,
            "load_average": [round(x, 2) for x in load],
        }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
