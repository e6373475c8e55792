"""Clips per second of ``synthesize-corpus`` on this machine, overall and per engine.

    python bench/bench_synth.py --langs es,en --words-per-lang 20 --clips-per-word 10 --jobs 2

Runs the real synthesizer into a temporary directory (removed afterwards unless
``--keep``), then times one worker rendering clips of each engine alone, so the
report says both what a corpus costs end to end and where the time goes. Reports
wall-clock clips/s and CPU milliseconds per clip (this process, its workers and
their TTS subprocesses): on a shared machine the wall-clock rate falls with the
load average (printed too), the CPU cost per clip does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dataset_builder.synth import engines  # noqa: E402
from dataset_builder.synth.build import SynthConfig, plan_language, render_task, synthesize_corpus  # noqa: E402


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (workers, TTS subprocesses)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def per_engine(lang: str, out: Path, clips: int, seed: int) -> dict[str, float]:
    """Single-process clips/s for each engine that speaks ``lang`` (synthesis + channel + Opus + write)."""
    config = SynthConfig(out=out, langs=(lang,), words_per_lang=clips, clips_per_word=10, seed=seed,
                         include_number_words=False, jobs=1, progress=False)
    plan = plan_language(lang, engines.voices_for(lang), config)
    rates = {}
    for engine in sorted({s.engine for s in plan.speakers}):
        jobs = [j for j in plan.jobs if j.speaker.engine == engine][:clips]
        by_speaker: dict[str, list] = {}
        for j in jobs:
            by_speaker.setdefault(j.speaker.speaker, []).append(j)
        start = time.perf_counter()
        done = 0
        for speaker_jobs in by_speaker.values():
            items = [(j.word, str(out / "engines" / engine / j.word / j.clip)) for j in speaker_jobs]
            done += sum(reason is None for _, reason in render_task((speaker_jobs[0].speaker, items, seed, True)))
        rates[engine] = done / (time.perf_counter() - start)
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--langs", default="es,en")
    p.add_argument("--words-per-lang", type=int, default=20)
    p.add_argument("--clips-per-word", type=int, default=10)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--augment", choices=("none", "default"), default="default")
    p.add_argument("--engine-clips", type=int, default=60, help="clips per engine for the single-process breakdown (0 skips it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, default=None, help="synthesize here and keep the corpus")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    out = args.keep or tmp / "corpus"
    try:
        load_before = os.getloadavg()
        config = SynthConfig(
            out=out, langs=tuple(args.langs.split(",")), words_per_lang=args.words_per_lang,
            clips_per_word=args.clips_per_word, include_number_words=False, seed=args.seed, jobs=args.jobs,
            augment=args.augment == "default", progress=True,
        )
        usage_before = _cpu_seconds()
        summary = synthesize_corpus(config)
        cpu = _cpu_seconds() - usage_before
        size = sum(f.stat().st_size for f in out.rglob("*.opus"))
        result = {
            "command": " ".join([sys.executable, *sys.argv]),
            "cores": os.cpu_count(),
            "jobs": args.jobs,
            "langs": args.langs,
            "clips": summary.rendered,
            "seconds": round(summary.seconds, 2),
            "clips_per_s": round(summary.rendered / summary.seconds, 1),
            "clips_per_s_per_job": round(summary.rendered / summary.seconds / args.jobs, 1),
            "cpu_ms_per_clip": round(1000 * cpu / max(1, summary.rendered), 1),
            "clips_per_cpu_s": round(summary.rendered / cpu, 1),
            "mean_clip_bytes": round(size / max(1, summary.clips)),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        }
        if args.engine_clips:
            result["single_process_clips_per_s"] = {
                f"{lang}:{engine}": round(rate, 1)
                for lang in args.langs.split(",")
                for engine, rate in per_engine(lang, tmp / "engines", args.engine_clips, args.seed).items()
            }
        print(json.dumps(result, indent=1, ensure_ascii=False))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
