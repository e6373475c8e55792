"""Throughput and memory of build-dataset, stage by stage and end to end.

    python bench/bench_build.py --corpus /work/data/bench-corpus --lang es --json bench-build.json

On the clips of an MSWC-layout corpus (Opus; at least 5,000 for the report), measures:

- read+decode (one core, and both cores: the "decode-only" reference),
- resample + centre pad/crop to [16000] (one core),
- features + embedding (the backend, batches of 256),
- write (samples.pb of all embeddings),
- end to end: the builder's own runner (``dataset_builder.build.embed_clips``:
  decoding workers + batched embedding) plus the write, on the Opus clips and on
  16 kHz WAV copies of them,
- peak RSS of end-to-end runs over a quarter of the clips and over all of them
  (each in a fresh process), to show memory does not grow with corpus size.

Numbers depend on the machine's load: the script prints the load average it saw.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dataset_builder.build import RunOptions, embed_clips  # noqa: E402
from dataset_builder.protocol import NONTARGET, ChosenClip  # noqa: E402
from dataset_builder.stages import assemble  # noqa: E402


class PathSource:
    """A clip source over explicit file paths (the WAV copies)."""

    lang = "bench"
    kind = "paths"

    def __init__(self, paths: list[str]):
        self.paths = paths

    def iter_audio(self, clips):
        for index in range(len(clips)):
            yield index, self.paths[index]


def _clips_and_paths(corpus: Path, lang: str, limit: int | None) -> tuple[list[ChosenClip], list[str]]:
    from corpus.layout import clip_path, read_splits

    records = sorted(read_splits(corpus, lang), key=lambda r: r.link)[:limit]
    clips = [ChosenClip(r.link, r.word, r.split, r.speaker, NONTARGET) for r in records]
    return clips, [str(clip_path(corpus, lang, r.link)) for r in records]


def _decode_only(paths: list[str]) -> float:
    from corpus.audio import decode_audio

    start = time.perf_counter()
    for p in paths:
        decode_audio(p)
    return time.perf_counter() - start


def _cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _status_kb(pid: int | str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples the resident memory of this process and its children every 0.1 s.

    ``ru_maxrss`` of children is useless here: a spawned worker is forked before
    it execs, and Linux keeps the forked copy's (shared) pages in its high-water mark.
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_children_kb = 0
        self.peak_total_kb = 0
        self._stop_event = threading.Event()

    def _children(self) -> list[str]:
        me, out = str(os.getpid()), []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                        if f.read().rsplit(")", 1)[1].split()[1] == me:
                            out.append(entry)
                except (OSError, IndexError):
                    pass
        return out

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            children = sum(_status_kb(pid, "VmRSS") for pid in self._children())
            self.peak_children_kb = max(self.peak_children_kb, children)
            self.peak_total_kb = max(self.peak_total_kb, children + _status_kb("self", "VmRSS"))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def e2e(corpus: Path, lang: str, limit: int | None, model: str | None, workers: int,
        wav_dir: Path | None = None) -> dict:
    """One end-to-end run (decode workers + embedding + write), in this process."""
    from embedding_model.backends import get_backend
    from protos import DatasetMetadata, write_samples

    clips, paths = _clips_and_paths(corpus, lang, limit)
    if wav_dir is not None:
        paths = [str(wav_dir / (c.link.rsplit(".", 1)[0] + ".wav")) for c in clips]
    backend = get_backend("mswc", **({"model": model} if model else {}))
    backend.embed(np.zeros((8, 16000), np.float32))  # build the graph outside the timing
    rss_before = _status_kb("self", "VmRSS") / 1024
    sampler = RssSampler()
    sampler.start()
    cpu_start = _cpu_seconds() + _cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = embed_clips(PathSource(paths), clips, backend, RunOptions(workers=workers))
    with tempfile.TemporaryDirectory() as tmp:
        sample_set = assemble(clips, result.embeddings,
                              DatasetMetadata(language=lang, backend=backend.name, embedding_dim=backend.dim))
        write_samples(Path(tmp) / "samples.pb", sample_set)
    seconds = time.perf_counter() - start
    # Workers are reaped when the pool closes, so their CPU time is in RUSAGE_CHILDREN.
    cpu = _cpu_seconds() + _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_start
    sampler.stop()
    return {
        "clips": len(clips),
        "skipped": len(result.failures),
        "seconds": round(seconds, 2),
        "clips_per_s": round(len(clips) / seconds, 1),
        "cpu_ms_per_clip": round(1000 * cpu / len(clips), 3),
        "embed_seconds": round(result.embed_seconds, 2),
        "decode_worker_seconds": round(result.decode_seconds, 2),
        "rss_main_before_mb": round(rss_before, 1),
        "peak_rss_main_mb": round(_status_kb("self", "VmHWM") / 1024, 1),
        "peak_rss_workers_mb": round(sampler.peak_children_kb / 1024, 1),
        "peak_rss_total_mb": round(sampler.peak_total_kb / 1024, 1),
    }


def _e2e_subprocess(args, limit: int | None, wav_dir: Path | None = None) -> dict:
    command = [sys.executable, __file__, "--corpus", str(args.corpus), "--lang", args.lang,
               "--workers", str(args.workers), "--e2e-only"]
    if limit:
        command += ["--clips", str(limit)]
    if args.model:
        command += ["--model", args.model]
    if wav_dir is not None:
        command += ["--wav-dir", str(wav_dir)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _make_wav_copies(paths: list[str], clips: list[ChosenClip], wav_dir: Path) -> None:
    import soundfile as sf

    from corpus.audio import load_clip

    for path, clip in zip(paths, clips):
        dest = wav_dir / (clip.link.rsplit(".", 1)[0] + ".wav")
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        sf.write(dest, load_clip(path), 16000, subtype="PCM_16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("/work/data/bench-corpus"))
    parser.add_argument("--lang", default="es")
    parser.add_argument("--clips", type=int, help="use the first N clips (default: all)")
    parser.add_argument("--model", help="mswc model (default: the shipped one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wav-dir", type=Path, help="where the 16 kHz WAV copies are (made if missing)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--e2e-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.e2e_only:
        print(json.dumps(e2e(args.corpus, args.lang, args.clips, args.model, args.workers, args.wav_dir)))
        return 0

    from corpus.audio import decode_audio, normalize_clip

    from embedding_model.backends import get_backend

    load_start = os.getloadavg()
    clips, paths = _clips_and_paths(args.corpus, args.lang, args.clips)
    n = len(clips)
    print(f"{n} clips from {args.corpus} ({args.lang}); load average {load_start[0]:.2f}", flush=True)
    results: dict = {"clips": n, "cpus": os.cpu_count(), "loadavg_start": load_start}

    # Stage 1: read + decode, one core, then both cores (the reference).
    sample = paths[: min(n, 1000)]
    cpu = time.process_time()
    seconds = _decode_only(sample)
    results["decode_1core_clips_per_s"] = round(len(sample) / seconds, 1)
    results["decode_cpu_ms_per_clip"] = round(1000 * (time.process_time() - cpu) / len(sample), 3)
    children_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN)
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        pool.map(_decode_only, [paths[:4]] * args.workers)  # warm up imports
        chunks = [paths[i : i + 64] for i in range(0, n, 64)]
        start = time.perf_counter()
        pool.map(_decode_only, chunks, chunksize=1)
        seconds = time.perf_counter() - start
    results["decode_allcores_clips_per_s"] = round(n / seconds, 1)
    results["decode_allcores_cpu_ms_per_clip"] = round(
        1000 * (_cpu_seconds(resource.RUSAGE_CHILDREN) - children_cpu) / n, 3)
    print(f"read+decode: {results['decode_1core_clips_per_s']} clips/s on 1 core, "
          f"{results['decode_allcores_clips_per_s']} on {args.workers} processes; "
          f"{results['decode_cpu_ms_per_clip']} CPU ms/clip", flush=True)

    # Stage 2: resample + pad/crop, one core.
    decoded = [decode_audio(p) for p in sample]
    start, cpu = time.perf_counter(), time.process_time()
    normalized = np.stack([normalize_clip(y, sr) for y, sr in decoded])
    results["resample_1core_clips_per_s"] = round(len(decoded) / (time.perf_counter() - start), 1)
    results["resample_cpu_ms_per_clip"] = round(1000 * (time.process_time() - cpu) / len(decoded), 3)
    print(f"resample+pad: {results['resample_1core_clips_per_s']} clips/s on 1 core; "
          f"{results['resample_cpu_ms_per_clip']} CPU ms/clip", flush=True)

    # Stage 3: features + embedding.
    backend = get_backend("mswc", **({"model": args.model} if args.model else {}))
    backend.embed(normalized[:8])
    batch = np.concatenate([normalized] * max(1, 2048 // len(normalized)))[:2048]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(batch), 256):
        embeddings = backend.embed(batch[i : i + 256])
    results["embed_clips_per_s"] = round(len(batch) / (time.perf_counter() - start), 1)
    results["embed_cpu_ms_per_clip"] = round(1000 * (time.process_time() - cpu) / len(batch), 3)
    results["backend"] = {"name": backend.name, "dim": backend.dim, "identity": backend.identity}
    print(f"features+embedding: {results['embed_clips_per_s']} clips/s ({backend.dim}-d); "
          f"{results['embed_cpu_ms_per_clip']} CPU ms/clip", flush=True)

    # Stage 4: write samples.pb of n embeddings.
    from protos import DatasetMetadata, write_samples

    emb = np.tile(embeddings[:1], (n, 1))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_samples(Path(tmp) / "samples.pb", assemble(clips, emb, DatasetMetadata(language=args.lang)))
        results["write_clips_per_s"] = round(n / (time.perf_counter() - start), 1)
    print(f"write: {results['write_clips_per_s']} clips/s", flush=True)

    # End to end, Opus, a quarter and all of the clips, each in a fresh process.
    quarter = _e2e_subprocess(args, max(1, n // 4))
    full = _e2e_subprocess(args, args.clips)
    results["e2e_opus_quarter"], results["e2e_opus"] = quarter, full
    results["e2e_vs_decode_allcores"] = round(full["clips_per_s"] / results["decode_allcores_clips_per_s"], 3)
    # On a busy machine wall-clock rates measure the share of CPU we got; CPU time
    # per clip does not, so also compare CPU costs (same ratio on an idle machine
    # if both scale to all cores).
    results["e2e_vs_decode_cpu"] = round(
        results["decode_allcores_cpu_ms_per_clip"] / full["cpu_ms_per_clip"], 3)
    print(f"end to end (Opus): {full['clips_per_s']} clips/s = "
          f"{100 * results['e2e_vs_decode_allcores']:.0f}% of decode-only on {args.workers} processes; "
          f"{full['cpu_ms_per_clip']} CPU ms/clip = {100 * results['e2e_vs_decode_cpu']:.0f}% of "
          f"decode-only's CPU efficiency; "
          f"peak RSS main + workers {quarter['peak_rss_total_mb']} MB ({quarter['clips']} clips) vs "
          f"{full['peak_rss_total_mb']} MB ({full['clips']} clips); main alone {full['peak_rss_main_mb']} MB "
          f"(TensorFlow and the model: {full['rss_main_before_mb']} MB before the run)",
          flush=True)

    # End to end, 16 kHz WAV copies of the same clips.
    wav_dir = args.wav_dir or (args.corpus.parent / f"{args.corpus.name}-wav16k")
    _make_wav_copies(paths, clips, wav_dir)
    wav = _e2e_subprocess(args, args.clips, wav_dir)
    results["e2e_wav"] = wav
    print(f"end to end (16 kHz WAV): {wav['clips_per_s']} clips/s; {wav['cpu_ms_per_clip']} CPU ms/clip",
          flush=True)

    results["loadavg_end"] = os.getloadavg()
    print(f"load average at the end {results['loadavg_end'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
