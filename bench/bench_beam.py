"""The Beam build on the DirectRunner and on Dask (2 worker processes each) against the local build.

    python bench/bench_beam.py --corpus /work/data/bench-corpus --json bench-beam.json

All builds run the same experiment on the same corpus (by default 5 keywords +
44 known + 44 unknown nontarget words of 54 clips: 5,027 clips from the
166-word x 55-clip synthesized Spanish corpus), each as a fresh process, as a
user would run them:

- single machine: ``build-dataset ... --workers 2`` (2 decoding processes + the
  embedding in the main process);
- DirectRunner: ``build-dataset ... --runner DirectRunner --direct_running_mode=multi_processing
  --direct_num_workers=2``;
- Dask: ``build-dataset ... --runner DaskRunner --workers 2`` (a dask.distributed
  LocalCluster of 2 worker processes: a real scheduler, as on a cluster).

Reported per build: wall time (process start to exit, so model loading and worker
start-up are included), clips/s over that wall time, the pipeline's own clips/s
from manifest.json, CPU time of the whole process tree per clip (load-independent,
unlike wall time), and the peak resident memory of the whole process tree and of
its largest process (sampled every 0.1 s from /proc). Then whether each Beam build
wrote samples.pb / eval.pb identical to the local build's, and the cost arithmetic
for the full MSWC corpus from each runner's CPU time per clip: with start-up
included, and marginal (each Beam build is run a second time on a few words; the
CPU difference over the clip difference is the cost of a clip alone).

Numbers depend on the machine's load: the script records ``uptime`` before and after.
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

REPO = Path(__file__).resolve().parent.parent

#: Clips in the full Multilingual Spoken Words Corpus (50 languages).
MSWC_CLIPS = 23_400_000

KEYWORDS = "que,los,por,del,las"


def _tree_rss_bytes(root_pid: int) -> tuple[int, int, int]:
    """Resident memory of ``root_pid`` and all its descendants, in bytes (Linux /proc):
    ``(sum, largest single process, number of processes)``."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().rsplit(b")", 1)[1].split()
            ppid, resident = int(stat[1]), int(stat[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = resident * page
    total, largest, count, stack = 0, 0, 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        largest = max(largest, rss.get(pid, 0))
        count += 1
        stack.extend(children.get(pid, []))
    return total, largest, count


def run_measured(command: list[str], log: Path) -> dict:
    """Run ``command``; wall seconds, CPU seconds of the whole process tree, exit code, peak RSS
    (of the tree, and of its largest process: a worker or the launcher)."""
    peak = peak_single = processes = 0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak, peak_single, processes
            while not done.is_set():
                total, single, count = _tree_rss_bytes(proc.pid)
                peak, peak_single, processes = max(peak, total), max(peak_single, single), max(processes, count)
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    wall = time.perf_counter() - start
    # Waited-for descendants (decoding pool, Beam workers) roll up into RUSAGE_CHILDREN.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"exit_code": code, "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "peak_rss_mib": round(peak / 2**20, 1), "peak_rss_largest_process_mib": round(peak_single / 2**20, 1),
            "processes": processes}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cost_estimate(clips_per_second: float, cores: int, vcpu_hour_usd: float, gb_hour_usd: float,
                  gb_per_vcpu: float) -> dict:
    """vCPU-hours and cost of building all of MSWC at ``clips_per_second`` on ``cores`` busy vCPUs."""
    vcpu_seconds_per_clip = cores / clips_per_second
    vcpu_hours = MSWC_CLIPS * vcpu_seconds_per_clip / 3600
    usd = vcpu_hours * (vcpu_hour_usd + gb_per_vcpu * gb_hour_usd)
    return {
        "vcpu_seconds_per_clip": round(vcpu_seconds_per_clip, 5),
        "vcpu_hours": round(vcpu_hours, 1),
        "usd": round(usd, 2),
        "arithmetic": (
            f"{cores} vCPU / {clips_per_second:.1f} clips/s = {vcpu_seconds_per_clip:.5f} vCPU-s per clip; "
            f"x {MSWC_CLIPS:,} clips / 3600 = {vcpu_hours:,.1f} vCPU-hours; "
            f"x (${vcpu_hour_usd}/vCPU-h + {gb_per_vcpu} GB x ${gb_hour_usd}/GB-h) = ${usd:,.2f}"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="/work/data/bench-corpus", help="MSWC-layout corpus")
    parser.add_argument("--lang", default="es")
    parser.add_argument("--keywords", default=KEYWORDS, help="comma-separated target keywords")
    parser.add_argument("--known-words", type=int, default=44)
    parser.add_argument("--unknown-words", type=int, default=44)
    parser.add_argument("--clips-per-word", type=int, default=54)
    parser.add_argument("--min-word-clips", type=int, default=53)
    parser.add_argument("--small-words", type=int, default=4,
                        help="known (and unknown) words of the small run that measures start-up cost")
    parser.add_argument("--min-target-train", type=int, default=20)
    parser.add_argument("--min-target-eval", type=int, default=5)
    parser.add_argument("--model", default=str(REPO / "models"),
                        help="mswc model directory (holds mswc_embedding.keras); default: the shipped model")
    parser.add_argument("--workers", type=int, default=2, help="processes for both builds")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--runners", default="direct,dask",
                        help="Beam runners to measure: direct (DirectRunner, multi_processing), "
                             "dask (DaskRunner on a LocalCluster of --workers processes)")
    parser.add_argument("--out", default=None, help="where the builds write (default: a temporary directory)")
    parser.add_argument("--json", default=None, help="write the results here too")
    parser.add_argument("--vcpu-hour-usd", type=float, default=0.056,
                        help="price per vCPU-hour (default: Dataflow batch, us-central1)")
    parser.add_argument("--gb-hour-usd", type=float, default=0.003557,
                        help="price per GB-hour of worker memory (default: Dataflow batch, us-central1)")
    parser.add_argument("--gb-per-vcpu", type=float, default=4.0,
                        help="worker memory per vCPU (n1/n2-standard: 3.75-4 GB)")
    args = parser.parse_args(argv)

    python = sys.executable
    base = ["--lang", args.lang, "--mswc-root", args.corpus, "--keyword", args.keywords,
            "--backend", "mswc", "--model", args.model, "--batch-size", str(args.batch_size),
            "--quiet"]
    for flag in ("clips_per_word", "min_word_clips", "min_target_train", "min_target_eval"):
        base += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    common = [*base, "--known-words", str(args.known_words), "--unknown-words", str(args.unknown_words)]
    small = [*base, "--known-words", str(args.small_words), "--unknown-words", str(args.small_words)]
    runner_flags = {
        "direct": ["--runner", "DirectRunner", "--direct_running_mode=multi_processing",
                   f"--direct_num_workers={args.workers}"],
        # No scheduler address: build-dataset starts a LocalCluster of --workers processes.
        "dask": ["--runner", "DaskRunner", "--workers", str(args.workers)],
    }
    chosen = [r.strip() for r in args.runners.split(",") if r.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-beam-") as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        load_before = uptime()
        runs = {"single_machine": ("local", run_measured(
            [python, "-m", "dataset_builder.cli", *common, "--out", str(out / "local"), "--workers", str(args.workers)],
            out / "local.log"))}
        for runner in chosen:
            flags = runner_flags[runner]
            runs[f"{runner}_{args.workers}_workers"] = (runner, run_measured(
                [python, "-m", "dataset_builder.cli", *common, "--out", str(out / runner), *flags],
                out / f"{runner}.log"))
            # The same build on a few words: the difference in CPU time is the cost of the
            # extra clips alone, without start-up (imports, model loading, worker launch).
            runs[f"{runner}_small_run"] = (f"{runner}-small", run_measured(
                [python, "-m", "dataset_builder.cli", *small, "--out", str(out / f"{runner}-small"), *flags],
                out / f"{runner}-small.log"))
        load_after = uptime()
        results = {"load_before": load_before, "load_after": load_after, "cores": os.cpu_count()}
        for name, (folder, measured) in runs.items():
            manifest_path = out / folder / "manifest.json"
            if measured["exit_code"] != 0 or not manifest_path.is_file():
                log = (out / f"{folder}.log").read_text(errors="replace")
                print(f"{name} failed (exit {measured['exit_code']}):\n{log[-2000:]}", file=sys.stderr)
                return 1
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            clips = sum(sum(c.values()) for c in manifest["planned_counts"].values())
            measured.update({
                "clips": clips,
                "clips_per_second_end_to_end": round(clips / measured["wall_seconds"], 1),
                "cpu_ms_per_clip": round(1000 * measured["cpu_seconds"] / clips, 2),
                "clips_per_second_pipeline": manifest["timings"].get("clips_per_second"),
                "skipped": manifest["skipped"]["total"],
                "backend": manifest["backend"],
            })
            results[name] = measured
        assumptions = {"clips": MSWC_CLIPS, "vcpu_hour_usd": args.vcpu_hour_usd,
                       "gb_hour_usd": args.gb_hour_usd, "gb_per_vcpu": args.gb_per_vcpu}
        results["full_mswc_estimate"] = {"assumptions": assumptions}
        for runner in chosen:
            results[f"{runner}_identical_files"] = {
                name: (out / "local" / name).read_bytes() == (out / runner / name).read_bytes()
                for name in ("samples.pb", "eval.pb")}
            # CPU time per clip does not depend on the machine's load (wall time does):
            # it is the basis of the estimate, as if every vCPU were kept busy.
            big, little = results[f"{runner}_{args.workers}_workers"], results[f"{runner}_small_run"]
            marginal_ms = 1000 * (big["cpu_seconds"] - little["cpu_seconds"]) / (big["clips"] - little["clips"])
            results[f"{runner}_marginal_cpu_ms_per_clip"] = round(marginal_ms, 2)
            results["full_mswc_estimate"][runner] = {
                "marginal": {"basis": f"{runner}: CPU time per extra clip (start-up excluded)",
                             **cost_estimate(1000 / marginal_ms, 1, args.vcpu_hour_usd, args.gb_hour_usd,
                                             args.gb_per_vcpu)},
                "with_startup": {"basis": f"{runner}: CPU time per clip of the {big['clips']}-clip run",
                                 **cost_estimate(1000 / big["cpu_ms_per_clip"], 1, args.vcpu_hour_usd,
                                                 args.gb_hour_usd, args.gb_per_vcpu)},
            }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
