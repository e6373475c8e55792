"""What the launcher keeps in memory while it plans a large build (splits -> experiment -> plan.jsonl).

    python bench/bench_plan.py --rows 1000000 --json bench-plan.json

Writes a synthetic MSWC splits CSV (``--words`` words x ``--clips-per-word`` clips,
MSWC-like links ``word/common_voice_LANG_NNNNNNNN.opus`` and ~50 clips per speaker;
no audio), then, in a fresh process for each step so that each peak is its own:

1. the interpreter with the launcher's modules and Apache Beam imported (the baseline);
2. reading the splits (``MswcDirectory.records``);
3. + the experiment protocol (``launcher.plan_experiment``) choosing almost every
   row (all but ``--spare-words`` words as nontarget, ``--clips-per-word - 1``
   clips each, plus 5 keywords with all their clips);
4. + writing the Beam plan (``beam_plan.write_plan``: one JSON line per planned clip).

Reported per step: peak resident memory (``ru_maxrss``), CPU seconds, and the
bytes per row / per planned clip above the baseline, which is what the launcher
would need for 23.4 M clips (the whole of MSWC) in one build.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LANG = "xx"
MSWC_CLIPS = 23_400_000


def write_synthetic_splits(root: Path, words: int, clips_per_word: int) -> int:
    """``{LANG}_splits.csv`` under ``root``: words ``w00000...``; returns the number of rows."""
    from corpus.layout import SPLITS_HEADER

    rows = 0
    with open(root / f"{LANG}_splits.csv", "w", encoding="utf-8", newline="") as f:
        f.write(",".join(SPLITS_HEADER) + "\n")
        clip = 10_000_000
        for w in range(words):
            word = f"w{w:05d}"
            for c in range(clips_per_word):
                split = "TRAIN" if c % 10 < 8 else "DEV" if c % 10 == 8 else "TEST"
                speaker = f"spk{(clip // 50) % 400_000:06d}"
                f.write(f"{split},{word}/common_voice_{LANG}_{clip}.opus,{word},True,{speaker},NAN\n")
                clip += 1
                rows += 1
    return rows


def step(root: str, upto: int, words: int, clips_per_word: int, spare_words: int) -> dict:
    """Run the steps up to ``upto`` in this process; peak RSS and CPU."""
    from apache_beam.io.filesystems import FileSystems  # noqa: F401 - imported in the baseline too

    from dataset_builder.beam_io import import_beam
    from dataset_builder.beam_plan import write_plan
    from dataset_builder.launcher import plan_experiment
    from dataset_builder.protocol import ExperimentParams
    from dataset_builder.sources import MswcDirectory

    import_beam()
    out: dict = {"step": upto}
    cpu = time.process_time()
    source = MswcDirectory(root, LANG)
    if upto == 2:
        records = source.records()
        out["rows"] = len(records)
    elif upto >= 3:
        nontarget = words - 5 - spare_words
        params = ExperimentParams(
            keywords=tuple(f"w{w:05d}" for w in range(5)),
            known_words=nontarget // 2, unknown_words=nontarget - nontarget // 2,
            clips_per_word=clips_per_word - 1, min_word_clips=clips_per_word - 2,
            min_target_train=1, min_target_eval=1)
        experiment, rows = plan_experiment(source, params)
        clips = experiment.samples + experiment.eval
        out.update({"rows": rows, "planned": len(clips)})
        if upto == 4:
            plan = os.path.join(root, "plan.jsonl")
            write_plan(plan, clips)
            out["plan_bytes"] = os.path.getsize(plan)
    out["cpu_seconds"] = round(time.process_time() - cpu, 2)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--words", type=int, default=5000)
    parser.add_argument("--clips-per-word", type=int, default=200)
    parser.add_argument("--spare-words", type=int, default=10, help="words the protocol leaves out")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--step", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        print(json.dumps(step(args.root, args.step, args.words, args.clips_per_word, args.spare_words)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-plan-") as root:
        rows = write_synthetic_splits(Path(root), args.words, args.clips_per_word)
        csv_bytes = os.path.getsize(Path(root) / f"{LANG}_splits.csv")
        print(f"{rows:,} rows, splits CSV {csv_bytes / 2**20:.1f} MiB; load average {os.getloadavg()[0]:.2f}",
              flush=True)
        results = {"rows": rows, "splits_csv_bytes": csv_bytes, "steps": []}
        for upto in (1, 2, 3, 4):
            command = [sys.executable, __file__, "--step", str(upto), "--root", root, "--words", str(args.words),
                       "--clips-per-word", str(args.clips_per_word), "--spare-words", str(args.spare_words)]
            done = json.loads(subprocess.run(command, check=True, capture_output=True, text=True)
                              .stdout.strip().splitlines()[-1])
            results["steps"].append(done)
            print(json.dumps(done), flush=True)
    base = results["steps"][0]["peak_rss_mib"]
    read, planned, written = results["steps"][1], results["steps"][2], results["steps"][3]
    per_row = (read["peak_rss_mib"] - base) * 2**20 / rows
    per_planned = (written["peak_rss_mib"] - base) * 2**20 / written["planned"]
    results.update({
        "baseline_mib": base,
        "read_bytes_per_row": round(per_row),
        "plan_bytes_per_planned_clip_peak": round(per_planned),
        "plan_file_bytes_per_clip": round(written["plan_bytes"] / written["planned"], 1),
        "mswc_23_4M_estimate_gib": round((base * 2**20 + per_planned * MSWC_CLIPS) / 2**30, 1),
    })
    print(f"baseline {base} MiB; reading the splits: {per_row:.0f} bytes per row above it; "
          f"read + plan + write plan.jsonl: peak {written['peak_rss_mib']} MiB for {written['planned']:,} planned "
          f"clips = {per_planned:.0f} bytes per planned clip; plan.jsonl {results['plan_file_bytes_per_clip']} "
          f"bytes per clip; for all of MSWC (23.4 M clips) in one build: "
          f"~{results['mswc_23_4M_estimate_gib']} GiB on the launcher")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
