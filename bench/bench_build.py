"""Throughput and memory of build-dataset, stage by stage and end to end.

    python bench/bench_build.py --corpus /work/data/bench-corpus --lang es --json bench-build.json

On the clips of an MSWC-layout corpus (Opus; at least 5,000 for the report), measures:

- the floor: ``load_clip`` (read + decode + normalise, exactly what the build's
  workers run) on one process, plus features + embedding (the backend, batches of
  256), in CPU ms per clip;
- write (samples.pb of all embeddings);
- end to end: the builder's own runner (``dataset_builder.build.embed_clips``:
  decoding workers + batched embedding) plus the write, on the Opus clips and on
  16 kHz WAV copies of them, in CPU ms per clip of the whole process tree, and its
  ratio to the floor (the goal of issue 17: at most 1.15x);
- peak RSS of end-to-end runs over a quarter of the clips and over all of them
  (each in a fresh process), to show memory does not grow with corpus size.

CPU time per clip does not depend on the machine's load; wall-clock rates do (the
script prints the load average it saw). ``--e2e-only`` runs one end-to-end build
and prints its JSON line (for repeated, paired runs).
"""

from __future__ import annotations

import argparse
import json
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
        self.cpu_seconds = 0.0
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
        # Scanning /proc costs CPU of this process: reported, and left out of the build's cost.
        self.cpu_seconds = time.thread_time()

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
    cpu -= sampler.cpu_seconds
    return {
        "clips": len(clips),
        "skipped": len(result.failures),
        "seconds": round(seconds, 2),
        "clips_per_s": round(len(clips) / seconds, 1),
        "cpu_ms_per_clip": round(1000 * cpu / len(clips), 3),
        "rss_sampler_cpu_seconds": round(sampler.cpu_seconds, 3),
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


def _floor_part(paths: list[str]) -> tuple[float, np.ndarray]:
    """CPU ms per clip of ``load_clip`` (what the build's workers run) in this process, and the clips."""
    from corpus.audio import ClipError, load_clip

    out = []
    cpu = time.process_time()
    for p in paths:
        try:
            out.append(load_clip(p))
        except ClipError:
            pass
    return 1000 * (time.process_time() - cpu) / len(paths), np.stack(out)


def _embed_cpu_ms(backend, clips: np.ndarray, total: int = 2048) -> tuple[float, float]:
    """CPU ms per clip and clips/s of the backend on batches of 256 (all its threads)."""
    batch = np.concatenate([clips] * max(1, -(-total // len(clips))))[:total]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(batch), 256):
        backend.embed(batch[i : i + 256])
    return 1000 * (time.process_time() - cpu) / len(batch), len(batch) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("/work/data/bench-corpus"))
    parser.add_argument("--lang", default="es")
    parser.add_argument("--clips", type=int, help="use the first N clips (default: all)")
    parser.add_argument("--floor-clips", type=int, default=2000,
                        help="clips decoded in this process to measure the floor's decode cost")
    parser.add_argument("--model", help="mswc model (default: the shipped one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wav-dir", type=Path, help="where the 16 kHz WAV copies are (made if missing)")
    parser.add_argument("--no-wav", action="store_true", help="skip the 16 kHz WAV end-to-end run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--e2e-only", action="store_true",
                        help="only one end-to-end run in this process; print its JSON line")
    args = parser.parse_args(argv)

    if args.e2e_only:
        print(json.dumps(e2e(args.corpus, args.lang, args.clips, args.model, args.workers, args.wav_dir)))
        return 0

    from embedding_model.backends import get_backend

    load_start = os.getloadavg()
    clips, paths = _clips_and_paths(args.corpus, args.lang, args.clips)
    n = len(clips)
    print(f"{n} clips from {args.corpus} ({args.lang}); load average {load_start[0]:.2f}", flush=True)
    results: dict = {"clips": n, "cpus": os.cpu_count(), "loadavg_start": load_start}

    # The floor: what decoding and embedding cost by themselves, one after the other
    # in one process (CPU time, so the machine's load does not enter).
    sample = paths[: min(n, args.floor_clips)]
    decode_ms, decoded = _floor_part(sample)
    backend = get_backend("mswc", **({"model": args.model} if args.model else {}))
    backend.embed(decoded[:8])
    embed_ms, embed_rate = _embed_cpu_ms(backend, decoded)
    results.update({"decode_cpu_ms_per_clip": round(decode_ms, 3), "embed_cpu_ms_per_clip": round(embed_ms, 3),
                    "embed_clips_per_s": round(embed_rate, 1),
                    "floor_cpu_ms_per_clip": round(decode_ms + embed_ms, 3),
                    "backend": {"name": backend.name, "dim": backend.dim, "identity": backend.identity}})
    print(f"decode (load_clip, 1 process, {len(sample)} clips): {decode_ms:.3f} CPU ms/clip; "
          f"features + embedding (batches of 256): {embed_ms:.3f} CPU ms/clip ({embed_rate:.0f} clips/s); "
          f"floor {decode_ms + embed_ms:.3f} CPU ms/clip", flush=True)

    # Write samples.pb of n embeddings.
    from protos import DatasetMetadata, write_samples

    emb = np.tile(backend.embed(decoded[:1]), (n, 1))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_samples(Path(tmp) / "samples.pb", assemble(clips, emb, DatasetMetadata(language=args.lang)))
        results["write_clips_per_s"] = round(n / (time.perf_counter() - start), 1)
    print(f"write: {results['write_clips_per_s']} clips/s", flush=True)

    # End to end, Opus, a quarter and all of the clips, each in a fresh process.
    quarter = _e2e_subprocess(args, max(1, n // 4))
    full = _e2e_subprocess(args, args.clips)
    results["e2e_opus_quarter"], results["e2e_opus"] = quarter, full
    results["e2e_opus_vs_floor"] = round(full["cpu_ms_per_clip"] / results["floor_cpu_ms_per_clip"], 3)
    print(f"end to end (Opus, {args.workers} decoding workers + batched embedding + write): "
          f"{full['clips_per_s']} clips/s; {full['cpu_ms_per_clip']} CPU ms/clip = "
          f"{results['e2e_opus_vs_floor']:.2f}x the floor ({results['floor_cpu_ms_per_clip']}; goal <= 1.15x); "
          f"peak RSS main + workers {quarter['peak_rss_total_mb']} MB ({quarter['clips']} clips) vs "
          f"{full['peak_rss_total_mb']} MB ({full['clips']} clips); main alone {full['peak_rss_main_mb']} MB "
          f"(TensorFlow and the model: {full['rss_main_before_mb']} MB before the run)", flush=True)

    if not args.no_wav:
        # End to end, 16 kHz WAV copies of the same clips, against their own floor.
        wav_dir = args.wav_dir or (args.corpus.parent / f"{args.corpus.name}-wav16k")
        _make_wav_copies(paths, clips, wav_dir)
        wav_paths = [str(wav_dir / (c.link.rsplit(".", 1)[0] + ".wav")) for c in clips]
        wav_decode_ms, _ = _floor_part(wav_paths[: len(sample)])
        wav = _e2e_subprocess(args, args.clips, wav_dir)
        results["e2e_wav"] = wav
        results["wav_decode_cpu_ms_per_clip"] = round(wav_decode_ms, 3)
        results["wav_floor_cpu_ms_per_clip"] = round(wav_decode_ms + embed_ms, 3)
        results["e2e_wav_vs_floor"] = round(wav["cpu_ms_per_clip"] / results["wav_floor_cpu_ms_per_clip"], 3)
        print(f"end to end (16 kHz WAV): {wav['clips_per_s']} clips/s; {wav['cpu_ms_per_clip']} CPU ms/clip = "
              f"{results['e2e_wav_vs_floor']:.2f}x its floor ({results['wav_floor_cpu_ms_per_clip']}: "
              f"decode {wav_decode_ms:.3f} + embed {embed_ms:.3f})", flush=True)

    results["loadavg_end"] = os.getloadavg()
    print(f"load average at the end {results['loadavg_end'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
