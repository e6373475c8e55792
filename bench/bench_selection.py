"""Selection quality: macro F1 (DataPerf's protocol) of random, crossval and the default.

Two sources of experiments:

``--source corpus`` (the benchmark): for each language and keyword set, build-dataset
makes samples.pb / eval.pb from an MSWC-layout corpus (a synthesized one), each
algorithm selects 25 and 60 clips from samples.pb, and ``eval.scoring.score`` scores
the pick on eval.pb::

    python bench/bench_selection.py --source corpus --corpus /work/data/selbench/corpus \\
        --workdir /work/data/selbench/runs --json out.json

``--source mixture`` (development): protocol-shaped Gaussian-mixture experiments (target
words, known and unknown nontarget words, speaker offsets, confusable words, a little
label noise, a ReLU layer), so an algorithm can be tuned without touching any
benchmark eval.pb::

    python bench/bench_selection.py --source mixture --experiments 6

Prints a table per experiment and a summary per train size: mean and worst-set
differences of the default against random and crossval.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from eval.scoring import score  # noqa: E402
from protos import NONTARGET, TARGET, DatasetMetadata, SampleSet, read_samples  # noqa: E402
from selection import implementations  # noqa: E402
from selection.pool import Pool, validate_selection  # noqa: E402

ALGORITHMS = ("random", "crossval", implementations.DEFAULT_ALGORITHM)
TRAIN_SIZES = (25, 60)
#: "random" is scored as the mean over this many seeds: one draw is too noisy a baseline.
RANDOM_DRAWS = 5


# --------------------------------------------------------------------- mixture source


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
    """Shape of one protocol-like Gaussian-mixture experiment."""

    n_targets: int = 5
    known_words: int = 20
    unknown_words: int = 20
    clips_per_word: int = 60
    target_train: int = 80
    latent_dim: int = 16
    dim: int = 128
    n_voices: int = 12
    voice_spread: float = 0.6
    clip_spread: float = 0.7
    confusable_share: float = 0.25
    label_noise: float = 0.03


def mixture_experiment(seed: int, spec: MixtureSpec = MixtureSpec()) -> tuple[SampleSet, SampleSet]:
    """A (samples, eval) pair shaped like DataPerf's protocol, in a random embedding space.

    Words are Gaussian centres in a latent space; each clip adds a voice offset (shared
    across words, like a speaker) and noise; some nontarget words sit near a target
    (they sound alike); a few target pool clips carry another word's vector (mis-cut
    clips); a random ReLU layer maps the latent to ``spec.dim`` non-negative values.

    Returns:
        (samples, eval): SampleSets with roles "samples" / "eval"; eval has a quarter
        as many target clips as the pool, half of each known word's clips and all of
        each unknown word's.
    """
    rng = np.random.default_rng(seed)
    s = spec
    n_words = s.n_targets + s.known_words + s.unknown_words
    centres = rng.standard_normal((n_words, s.latent_dim))
    nontarget_ids = np.arange(s.n_targets, n_words)
    confusable = rng.choice(nontarget_ids, int(round(s.confusable_share * len(nontarget_ids))),
                            replace=False)
    for w in confusable:
        centres[w] = centres[rng.integers(s.n_targets)] + 0.7 * rng.standard_normal(s.latent_dim)
    voices = s.voice_spread * rng.standard_normal((s.n_voices, s.latent_dim))
    w1 = rng.standard_normal((s.latent_dim, s.dim)) / np.sqrt(s.latent_dim)
    b1 = 0.3 * rng.standard_normal(s.dim)
    words = [f"t{seed}_{i}" for i in range(s.n_targets)] + [
        f"w{seed}_{i}" for i in range(s.n_targets, n_words)]

    def clips(word: int, n: int) -> np.ndarray:
        latent = (centres[word] + voices[rng.integers(s.n_voices, size=n)]
                  + s.clip_spread * rng.standard_normal((n, s.latent_dim)))
        return latent

    def embed(latent: np.ndarray) -> np.ndarray:
        return np.maximum(latent @ w1 + b1, 0.0).astype(np.float32) * 2.0

    pool_parts, eval_parts = [], []  # (word index, latent)
    for t in range(s.n_targets):
        train = clips(t, s.target_train)
        noisy = rng.random(s.target_train) < s.label_noise
        for i in np.flatnonzero(noisy):
            train[i] = clips(int(rng.choice(np.delete(np.arange(n_words), t))), 1)[0]
        pool_parts.append((t, train))
        eval_parts.append((t, clips(t, max(1, s.target_train // 4))))
    for w in range(s.n_targets, s.n_targets + s.known_words):
        half = s.clips_per_word // 2
        pool_parts.append((w, clips(w, half)))
        eval_parts.append((w, clips(w, s.clips_per_word - half)))
    for w in range(s.n_targets + s.known_words, n_words):
        eval_parts.append((w, clips(w, s.clips_per_word)))

    params = {"known_words": str(s.known_words), "unknown_words": str(s.unknown_words),
              "clips_per_word": str(s.clips_per_word), "seed": str(seed)}

    def build(parts, role: str) -> SampleSet:
        ids, types, kws, vecs = [], [], [], []
        for w, latent in parts:
            for i in range(len(latent)):
                ids.append(f"{words[w]}/{role}_{i:05d}.opus")
                types.append(TARGET if w < s.n_targets else NONTARGET)
                kws.append(words[w])
            vecs.append(embed(latent))
        meta = DatasetMetadata(language=f"mix{seed}", target_keywords=sorted(words[:s.n_targets]),
                               backend="mixture", model_id=f"mixture-{seed}", role=role,
                               params=dict(params))
        return SampleSet(ids=ids, sample_types=types, keywords=kws,
                         embeddings=np.concatenate(vecs), metadata=meta)

    return build(pool_parts, "samples"), build(eval_parts, "eval")


# ---------------------------------------------------------------------- corpus source


#: The benchmark's plan: language -> keyword sets, fixed before any run (common
#: 1-3 syllable nouns, given 100 clips each when the corpus was synthesized).
BENCH_PLAN: dict[str, list[list[str]]] = {
    "es": [["casa", "tiempo", "mujer", "ciudad"], ["agua", "noche", "gente", "mundo"],
           ["hombre", "padre", "trabajo", "nombre"]],
    "en": [["house", "water", "people", "music"], ["money", "family", "morning", "window"],
           ["mother", "country", "number", "paper"]],
    "de": [["haus", "wasser", "stadt", "zeit"], ["kinder", "leben", "frau", "arbeit"],
           ["musik", "morgen", "abend", "wetter"]],
}
#: Small-scale protocol: 30 known + 30 unknown nontarget words, 40 clips each.
BENCH_PROTOCOL_FLAGS = ("--known-words 30 --unknown-words 30 --clips-per-word 40 "
                        "--min-word-clips 39 --min-target-train 20 --min-target-eval 5")


def build_experiment(corpus: Path, lang: str, keywords: list[str], outdir: Path,
                     protocol_flags: list[str]) -> tuple[Path, Path]:
    """Run build-dataset once (cached: an existing samples.pb/eval.pb pair is reused)."""
    samples, eval_path = outdir / "samples.pb", outdir / "eval.pb"
    if samples.is_file() and eval_path.is_file():
        return samples, eval_path
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "dataset_builder.cli", "--mswc-root", str(corpus),
           "--lang", lang, "--keyword", ",".join(keywords), "--out", str(outdir), "--quiet",
           *protocol_flags]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"build-dataset failed for {lang} {keywords}: "
                           f"{result.stderr.strip().splitlines()[-1:]}")
    return samples, eval_path


# ------------------------------------------------------------------------- running


def run_algorithms(samples: SampleSet, eval_set: SampleSet, train_sizes=TRAIN_SIZES,
                   algorithms=ALGORITHMS, seed: int = 0) -> list[dict]:
    """Score every algorithm at every train size on one experiment.

    "random" is the mean over :data:`RANDOM_DRAWS` seeds (``seed``, ``seed + 1``, ...);
    the others run once with ``seed``. ``select_seconds`` is wall time, ``select_cpu``
    process CPU time (the machine is shared, so wall time overstates the cost).
    """
    rows = []
    for train_size in train_sizes:
        for name in algorithms:
            draws = RANDOM_DRAWS if name == "random" else 1
            f1s, wall, cpu = [], 0.0, 0.0
            for draw in range(draws):
                pool = Pool.from_sample_set(samples, train_size, seed + draw)
                start, start_cpu = time.perf_counter(), time.process_time()
                picked = validate_selection(implementations.get(name)(pool), pool)
                wall += time.perf_counter() - start
                cpu += time.process_time() - start_cpu
                result = score(samples.embeddings[picked], pool.labels[picked],
                               eval_set.embeddings, eval_set.labels,
                               label_names=eval_set.label_names)
                f1s.append(result.score)
            rows.append({"train_size": train_size, "algorithm": name,
                         "f1": float(np.mean(f1s)), "f1_draws": f1s,
                         "select_seconds": wall / draws, "select_cpu": cpu / draws})
    return rows


def summarise(results: list[dict], default: str) -> list[str]:
    """Mean and worst-set gaps of ``default`` against each baseline, per train size."""
    lines = []
    for train_size in sorted({r["train_size"] for r in results}):
        table: dict[str, dict[str, float]] = {}
        for r in results:
            if r["train_size"] == train_size:
                table.setdefault(r["experiment"], {})[r["algorithm"]] = r["f1"]
        names = sorted({a for scores in table.values() for a in scores})
        means = {a: np.mean([t[a] for t in table.values()]) for a in names}
        lines.append(f"train_size {train_size}: {len(table)} sets; mean F1 "
                     + ", ".join(f"{a} {means[a]:.4f}" for a in names))
        for base in names:
            if base == default:
                continue
            gaps = np.array([t[default] - t[base] for t in table.values()])
            lines.append(f"  {default} - {base}: mean {gaps.mean():+.4f}, worst set "
                         f"{gaps.min():+.4f}, ahead on {int((gaps > 0).sum())}/{len(gaps)}")
    return lines


def markdown(results: list[dict], default: str) -> str:
    """Per-set table (F1 of every algorithm at every size) plus the summary lines."""
    sizes = sorted({r["train_size"] for r in results})
    names = [a for a in ALGORITHMS if any(r["algorithm"] == a for r in results)]
    table: dict[str, dict[tuple[int, str], float]] = {}
    for r in results:
        table.setdefault(r["experiment"], {})[(r["train_size"], r["algorithm"])] = r["f1"]
    header = "| set | " + " | ".join(f"{a} @{n}" for n in sizes for a in names) + " |"
    lines = [header, "|" + "---|" * (1 + len(sizes) * len(names))]
    for experiment, scores in table.items():
        cells = [f"{scores[(n, a)]:.4f}" if (n, a) in scores else "-" for n in sizes for a in names]
        lines.append(f"| {experiment} | " + " | ".join(cells) + " |")
    means = [np.mean([s[(n, a)] for s in table.values() if (n, a) in s]) for n in sizes for a in names]
    lines.append("| **mean** | " + " | ".join(f"**{m:.4f}**" for m in means) + " |")
    return "\n".join(lines + [""] + [f"    {line}" for line in summarise(results, default)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("mixture", "corpus"), default="mixture")
    parser.add_argument("--experiments", type=int, default=6,
                        help="mixture: number of experiments (seeds --first_seed...)")
    parser.add_argument("--first_seed", type=int, default=1000,
                        help="mixture: seed of the first experiment")
    parser.add_argument("--plan", type=Path, metavar="JSON",
                        help="corpus: {lang: [[keyword, ...], ...]} to build and score "
                        "(default: BENCH_PLAN)")
    parser.add_argument("--corpus", type=Path, help="corpus: MSWC-layout corpus root")
    parser.add_argument("--workdir", type=Path, help="corpus: where experiments are built")
    parser.add_argument("--protocol_flags", default=BENCH_PROTOCOL_FLAGS,
                        help="corpus: build-dataset protocol flags, one string (default: "
                        f"{BENCH_PROTOCOL_FLAGS!r})")
    parser.add_argument("--experiment_dirs", type=Path, nargs="*", default=[],
                        help="score already-built experiment dirs (samples.pb + eval.pb)")
    parser.add_argument("--train_sizes", type=int, nargs="+", default=list(TRAIN_SIZES))
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    parser.add_argument("--json", type=Path, help="write every result as JSON")
    parser.add_argument("--markdown_from", type=Path, metavar="JSON",
                        help="print a markdown table of an earlier --json file and exit")
    args = parser.parse_args(argv)
    if args.markdown_from:
        print(markdown(json.loads(args.markdown_from.read_text()),
                       implementations.DEFAULT_ALGORITHM))
        return 0
    # LogisticRegression's lbfgs stops at 100 iterations on raw vectors: part of the
    # fixed protocol, not news.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)

    experiments = []  # (name, samples, eval)
    if args.experiment_dirs:
        for d in args.experiment_dirs:
            experiments.append((d.name, lambda d=d: (read_samples(d / "samples.pb"),
                                                     read_samples(d / "eval.pb"))))
    elif args.source == "mixture":
        for i in range(args.experiments):
            seed = args.first_seed + i
            experiments.append((f"mixture-{seed}", lambda seed=seed: mixture_experiment(seed)))
    else:
        if not (args.corpus and args.workdir):
            parser.error("--source corpus needs --corpus and --workdir")
        plan = json.loads(args.plan.read_text()) if args.plan else BENCH_PLAN
        for lang, keyword_sets in plan.items():
            for i, keywords in enumerate(keyword_sets):
                outdir = args.workdir / f"{lang}_set{i}"

                def load(lang=lang, keywords=keywords, outdir=outdir):
                    s, e = build_experiment(args.corpus, lang, keywords, outdir,
                                            args.protocol_flags.split())
                    return read_samples(s), read_samples(e)
                experiments.append((f"{lang}_set{i}", load))

    results = []
    for name, load in experiments:
        samples, eval_set = load()
        print(f"{name}: pool {len(samples)} clips, eval {len(eval_set)}, "
              f"{len(samples.label_names) - 1} keywords, {samples.embedding_dim}-d, "
              f"model {samples.metadata.model_id or '?'}", flush=True)
        for row in run_algorithms(samples, eval_set, args.train_sizes, args.algorithms):
            row["experiment"] = name
            row["model_id"] = samples.metadata.model_id
            results.append(row)
            print(f"  size {row['train_size']:3d} {row['algorithm']:>9}: F1 {row['f1']:.4f} "
                  f"(select {row['select_seconds']:.1f} s wall, {row['select_cpu']:.1f} s CPU)",
                  flush=True)
    default = implementations.DEFAULT_ALGORITHM
    if default in args.algorithms:
        for line in summarise(results, default):
            print(line)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
