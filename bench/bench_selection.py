"""Selection quality: DataPerf's macro F1 of tuned against three baselines, per pool.

Pools:

- Gaussian-mixture pools shaped like DataPerf's protocol (``--mixture_seeds``), with
  pool and eval sharing speakers or not (``--mixture_shift K``: each keyword's pool
  clips from K voices, its eval clips from the others, as DataPerf's DEV/TEST eval
  clips come from speakers the pool never has);
- pools built with build-dataset from an MSWC-layout corpus (``--corpus``, a fresh
  ``synthesize-corpus`` run), or already built (``--experiment_dirs``);
- the same pools after a round trip through DataPerf's parquet/yaml layout with the
  converter (``--dataperf_layout``: no speakers, no protocol parameters);
- real-speech pools (``--real_speech_vectors``): the English letter names by four real
  speakers (``bench/real_speech.py``), pool from some speakers, eval from the others.

Baselines: class-balanced ``random`` (mean over 5 seeds), ``crossval`` (DataPerf's
nested cross-validation, mean over 3 seeds), ``cleanlab`` (label issues found with the
cleanlab library dropped, the best-quality half of each class kept, k-medoids per
class). ``tuned`` runs once with seed 0 (its simulation's predicted score reported
beside the measured one), then 3 times on vectors with 1e-6 relative noise; with
``--tuned_seeds N`` also with seeds 1..N-1, its mean and spread over seeds set beside
the baselines' means (a baseline's mean against one seed of tuned compares a draw with
an average). Every
score is DataPerf's (``eval.scoring.score``), training rows in the harness's order::

    nice python bench/bench_selection.py --mixture_seeds 2000 2001 --mixture_shift 0 1 \
        --experiment_dirs runs/pt_set0 --dataperf_layout --workdir runs --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
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
from protos.dataperf import dataperf_training_order  # noqa: E402
from selection import implementations  # noqa: E402
from selection.pool import Pool, validate_selection  # noqa: E402

ALGORITHMS = ("random", "crossval", "cleanlab", implementations.DEFAULT_ALGORITHM)
TRAIN_SIZES = (25, 60)
#: "random" is scored as the mean over this many seeds: one draw is too noisy a baseline.
RANDOM_DRAWS = 5
#: "crossval" runs with this many seeds (DataPerf's baseline is unseeded: runs differ).
CROSSVAL_RUNS = 3
#: "tuned" reruns on vectors with 1e-6 relative noise, for the spread of its score.
NOISE_RUNS = 3


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
    #: 0: every clip's voice drawn from all voices (pool and eval share speakers). k > 0:
    #: each keyword's pool clips come from k voices and its eval clips from the others,
    #: as in DataPerf (eval targets from DEV/TEST, speaker-disjoint from TRAIN).
    pool_voices_per_target: int = 0


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

    def clips(word: int, n: int, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        allowed = np.arange(s.n_voices) if allowed is None else np.asarray(allowed)
        who = allowed[rng.integers(len(allowed), size=n)]
        latent = (centres[word] + voices[who]
                  + s.clip_spread * rng.standard_normal((n, s.latent_dim)))
        return latent, who

    def embed(latent: np.ndarray) -> np.ndarray:
        return np.maximum(latent @ w1 + b1, 0.0).astype(np.float32) * 2.0

    pool_parts, eval_parts = [], []  # (word index, (latent, voice per clip))
    for t in range(s.n_targets):
        pool_voices = eval_voices = None
        if s.pool_voices_per_target:
            order = rng.permutation(s.n_voices)
            pool_voices = order[:s.pool_voices_per_target]
            eval_voices = order[s.pool_voices_per_target:]
        train, who = clips(t, s.target_train, pool_voices)
        noisy = rng.random(s.target_train) < s.label_noise
        for i in np.flatnonzero(noisy):
            train[i] = clips(int(rng.choice(np.delete(np.arange(n_words), t))), 1,
                             [who[i]])[0][0]
        pool_parts.append((t, (train, who)))
        eval_parts.append((t, clips(t, max(1, s.target_train // 4), eval_voices)))
    for w in range(s.n_targets, s.n_targets + s.known_words):
        half = s.clips_per_word // 2
        pool_parts.append((w, clips(w, half)))
        eval_parts.append((w, clips(w, s.clips_per_word - half)))
    for w in range(s.n_targets + s.known_words, n_words):
        eval_parts.append((w, clips(w, s.clips_per_word)))

    params = {"known_words": str(s.known_words), "unknown_words": str(s.unknown_words),
              "clips_per_word": str(s.clips_per_word), "seed": str(seed)}

    def build(parts, role: str) -> SampleSet:
        ids, types, kws, vecs, speakers = [], [], [], [], []
        for w, (latent, who) in parts:
            for i in range(len(latent)):
                ids.append(f"{words[w]}/{role}_{i:05d}.opus")
                types.append(TARGET if w < s.n_targets else NONTARGET)
                kws.append(words[w])
                speakers.append(f"v{who[i]}")
            vecs.append(embed(latent))
        meta = DatasetMetadata(language=f"mix{seed}", target_keywords=sorted(words[:s.n_targets]),
                               backend="mixture", model_id=f"mixture-{seed}", role=role,
                               params=dict(params))
        return SampleSet(ids=ids, sample_types=types, keywords=kws,
                         embeddings=np.concatenate(vecs), metadata=meta, speakers=speakers)

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


# ------------------------------------------------------------------ real-speech source


def real_speech_experiment(vectors_path: Path, pool_speakers: list[str], seed: int = 0,
                           n_targets: int = 5, n_known: int = 11, record_speakers: bool = True,
                           shuffle: bool = True) -> tuple[SampleSet, SampleSet]:
    """A (samples, eval) pair from the real-speech benchmark's letter clips.

    ``bench/real_speech.py`` (the real-voices issue) holds the 26 English letter names
    by four real speakers, 10 channel-augmented copies of each recording; its cached
    vectors (rows in ``RealSpeechBenchmark.clips`` order) are read from
    ``vectors_path``. Letters are drawn (seeded) into ``n_targets`` keywords,
    ``n_known`` known nontarget words and the rest unknown ones. The pool holds the
    targets and known words as spoken by ``pool_speakers``; eval holds targets and
    known words as spoken by the other speakers (DataPerf's speaker shift), and the
    unknown words as spoken by all four.

    Args:
        record_speakers: write each clip's speaker into the pool (False: the pool looks
            like DataPerf's files, which record none; copies of one recording are then
            found as near-duplicates).
        shuffle: put the pool's rows in an order drawn with ``seed`` (False: letter by
            letter, speaker by speaker, copy by copy, the order of the tables before
            2026-12-02). In that fixed order every draw's pool has the same layout, so
            a selection seed (random's, crossval's, tuned's) picks the same speakers and
            copies of its keywords in every draw, and its luck does not average out
            over the draws.
    """
    from bench.real_speech import DEFAULT_COPIES, LETTERS, SPEAKERS

    names = [s.name for s in SPEAKERS]
    copies = DEFAULT_COPIES
    vectors = np.load(vectors_path)
    if vectors.shape[0] != len(names) * len(LETTERS) * copies:
        raise ValueError(f"{vectors_path}: {vectors.shape[0]} rows, expected "
                         f"{len(names) * len(LETTERS) * copies} (4 speakers x 26 letters x {copies})")
    rng = np.random.default_rng(seed)
    order = [LETTERS[i] for i in rng.permutation(len(LETTERS))]
    targets, known, unknown = order[:n_targets], order[n_targets:n_targets + n_known], \
        order[n_targets + n_known:]
    eval_speakers = [n for n in names if n not in pool_speakers]
    # Known words: each speaker's copies on its side; unknown words (eval only): every
    # speaker's copies, so eval has as many clips per unknown word as a known word has
    # in all (DataPerf's protocol). Targets: as many eval clips as pool clips when the
    # two sides have as many speakers (recorded, so the simulation weighs them right).
    params = {"known_words": str(n_known), "unknown_words": str(len(unknown)),
              "clips_per_word": str(copies * len(names)), "seed": str(seed),
              "target_eval_ratio": str((len(names) - len(pool_speakers)) / len(pool_speakers))}

    def build(speakers: list[str], letters: list[str], role: str) -> SampleSet:
        ids, types, kws, rows, who = [], [], [], [], []
        for letter in letters:
            for speaker in speakers:
                for c in range(copies):
                    rows.append(names.index(speaker) * len(LETTERS) * copies
                                + LETTERS.index(letter) * copies + c)
                    ids.append(f"{letter}/{speaker}_{c:02d}.wav")
                    types.append(TARGET if letter in targets else NONTARGET)
                    kws.append(letter)
                    who.append(speaker if record_speakers or role == "eval" else "")
        meta = DatasetMetadata(language="en", target_keywords=sorted(targets),
                               backend="mswc", model_id=vectors_path.stem.split("-")[1],
                               role=role, params=dict(params))
        return SampleSet(ids=ids, sample_types=types, keywords=kws,
                         embeddings=vectors[np.asarray(rows)], metadata=meta, speakers=who)

    samples = build(pool_speakers, targets + known, "samples")
    if shuffle:
        samples = samples.subset(np.random.default_rng([seed, 1]).permutation(len(samples.ids)))
    eval_set = build(eval_speakers, targets + known, "eval")
    unknown_set = build(names, unknown, "eval")
    from protos.samples_io import concatenate

    return samples, concatenate([eval_set, unknown_set], "real-speech eval")


# ------------------------------------------------------------ DataPerf's published layout


def through_dataperf_layout(samples_path: Path, eval_path: Path, workdir: Path
                            ) -> tuple[SampleSet, SampleSet]:
    """samples.pb + eval.pb -> DataPerf's parquet/yaml layout -> back, with the converter.

    What comes back is what a participant gets from DataPerf's files: no speakers, no
    protocol parameters, rows in parquet order.
    """
    from selection.dataperf_format import main as convert

    layout, imported = workdir / "dataperf_xx_data", workdir / "imported"
    if not (imported / "samples.pb").is_file():
        if convert(["export", "--samples", str(samples_path), "--eval", str(eval_path),
                    "--outdir", str(layout)]) != 0:
            raise RuntimeError(f"export of {samples_path} failed")
        if convert(["import", "--data_dir", str(layout), "--outdir", str(imported),
                    "--language", "xx"]) != 0:
            raise RuntimeError(f"import of {layout} failed")
    return read_samples(imported / "samples.pb"), read_samples(imported / "eval.pb")


# ------------------------------------------------------------------ cleanlab baseline


def cleanlab_select(pool: Pool) -> dict[str, list[str]]:
    """A cleanlab-style baseline: out-of-fold class probabilities from a
    LogisticRegression, cleanlab's label issues dropped, the best-quality half of each
    class kept, then k-medoids per class with a class-balanced budget (the recipe of
    ``selection.implementations.quality``, with the ``cleanlab`` library's label
    issues and quality scores)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from selection.implementations.quality import quality_medoid_rows

    def by_cleanlab(labels, probs, classes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return find_label_issues(labels, probs), get_label_quality_scores(labels, probs)

    return pool.selection_from_indices(quality_medoid_rows(pool, by_cleanlab))


# ------------------------------------------------------------------------- running


def draw_summary(results: list[dict]) -> str:
    """The real-speech pools over their letter draws (pools named ``real-SPEAKERS`` and
    ``real-SPEAKERS-seedN``): per speaker set and train size, the mean over draws of
    each algorithm's score; tuned minus each baseline, paired draw by draw (mean ±
    standard error over draws; each baseline on its own, since the largest of three
    noisy means is biased upward); tuned's prediction error (predicted minus measured,
    on draws that give one: mean, mean absolute value, and how many within 0.1); and
    the spread of tuned's score over the eval's speakers (largest minus smallest of
    :func:`eval_speaker_subsets`' scores)."""
    baselines = ("random", "crossval", "cleanlab")
    table: dict[tuple[str, int], dict[str, dict[str, dict]]] = {}
    for r in results:
        if not r["pool"].startswith("real-"):
            continue
        base = re.sub(r"-seed\d+$", "", r["pool"])
        table.setdefault((base, r["train_size"]), {}).setdefault(r["pool"], {})[r["algorithm"]] = r
    lines = ["| pool (draws) | size | random | crossval | cleanlab | tuned | tuned - random "
             "| tuned - crossval | tuned - cleanlab | predicted - measured (mean / mean abs / "
             "within 0.1) | tuned over eval speakers, max - min |", "|" + "---|" * 11]

    def mean(values):
        return f"{np.mean(values):.3f}" if values else "-"

    def paired(values):
        if not values:
            return "-"
        if len(values) == 1:
            return f"{values[0]:+.3f}"
        return f"{np.mean(values):+.3f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):.3f}"

    for (base, size), draws in table.items():
        by_algo = {a: [d[a]["f1"] for d in draws.values() if a in d] for a in (*baselines, "tuned")}
        gaps = {a: [] for a in baselines}
        errors, spreads = [], []
        for d in draws.values():
            t = d.get("tuned")
            if t is None:
                continue
            for a in baselines:
                if a in d:
                    gaps[a].append(t["f1"] - d[a]["f1"])
            if t.get("predicted") is not None:
                errors.append(t["predicted"] - t["f1"])
            if t.get("eval_by_speaker"):
                spreads.append(max(t["eval_by_speaker"].values()) - min(t["eval_by_speaker"].values()))
        error = "no prediction" if not errors else (
            f"{np.mean(errors):+.3f} / {np.mean(np.abs(errors)):.3f} / "
            f"{int(np.sum(np.abs(errors) <= 0.1))} of {len(errors)}")
        lines.append(f"| {base} ({len(draws)}) | {size} | {mean(by_algo['random'])} | "
                     f"{mean(by_algo['crossval'])} | {mean(by_algo['cleanlab'])} | "
                     f"{mean(by_algo['tuned'])} | {paired(gaps['random'])} | "
                     f"{paired(gaps['crossval'])} | {paired(gaps['cleanlab'])} | {error} | "
                     f"{mean(spreads)} |")
    return "\n".join(lines)


def score_rows(samples: SampleSet, rows: np.ndarray, eval_set: SampleSet,
               embeddings: np.ndarray | None = None, eval_embeddings: np.ndarray | None = None
               ) -> float:
    """DataPerf's score of pool ``rows``, trained in the row order of DataPerf's harness."""
    x = samples.embeddings if embeddings is None else embeddings
    ex = eval_set.embeddings if eval_embeddings is None else eval_embeddings
    labels = samples.labels
    rows = rows[dataperf_training_order(samples.ids[rows], labels[rows], rows)]
    return score(x[rows], labels[rows], ex, eval_set.labels,
                 label_names=eval_set.label_names).score


#: Eval sets with at most this many speakers of the pool's words get one score per
#: speaker (a real-speech pool's eval: two or three voices decide the score).
MAX_EVAL_SPEAKERS_SPLIT = 4


def eval_speaker_subsets(samples: SampleSet, eval_set: SampleSet) -> dict[str, np.ndarray]:
    """Eval rows per eval speaker of the pool's words: ``{speaker: rows}``, each holding
    that speaker's clips of the targets and known words and every clip of the words the
    pool never has (unknown words). Empty unless 2 to :data:`MAX_EVAL_SPEAKERS_SPLIT`
    speakers are recorded there: how far one selection's score moves with the eval's
    voices, the noise a prediction made from the pool cannot beat."""
    pool_words = set(samples.keywords.tolist())
    in_pool = np.isin(eval_set.keywords, list(pool_words))
    speakers = sorted(set(eval_set.speakers[in_pool].tolist()) - {""})
    if not 2 <= len(speakers) <= MAX_EVAL_SPEAKERS_SPLIT or (eval_set.speakers[in_pool] == "").any():
        return {}
    return {who: np.flatnonzero(~in_pool | (eval_set.speakers == who)) for who in speakers}


def perturbed(samples: SampleSet, eval_set: SampleSet, seed: int, relative: float
              ) -> tuple[SampleSet, np.ndarray]:
    """Copies of the vectors with ``relative`` Gaussian noise (last-bit differences of
    another CPU, oneDNN on or off, at a larger scale)."""
    rng = np.random.default_rng(seed)
    x = samples.embeddings * (1 + relative * rng.standard_normal(samples.embeddings.shape))
    ex = eval_set.embeddings * (1 + relative * rng.standard_normal(eval_set.embeddings.shape))
    noisy = SampleSet(ids=samples.ids, sample_types=samples.sample_types,
                      keywords=samples.keywords, embeddings=x.astype(np.float32),
                      metadata=samples.metadata, speakers=samples.speakers)
    return noisy, ex.astype(np.float32)


def run_pool(samples: SampleSet, eval_set: SampleSet, train_sizes=TRAIN_SIZES,
             algorithms=ALGORITHMS, random_draws: int = RANDOM_DRAWS,
             crossval_runs: int = CROSSVAL_RUNS, noise_runs: int = NOISE_RUNS,
             noise: float = 1e-6, cleanlab_runs: int = 1, tuned_seeds: int = 1) -> list[dict]:
    """Score every algorithm at every train size on one pool.

    ``random`` runs with seeds 0..random_draws-1 and ``crossval`` with seeds
    0..crossval_runs-1 (DataPerf's own baseline is unseeded: one run is one draw of
    it), ``cleanlab`` with seeds 0..cleanlab_runs-1 (its folds, LogisticRegression and
    k-medoids are seeded: the runs measure how much that seed moves it); the row
    reports their mean and standard deviation. ``tuned`` runs once with
    seed 0 (its predicted score is its simulation's), then ``noise_runs`` times on
    vectors with ``noise`` relative noise: ``f1_runs`` holds those scores. With
    ``tuned_seeds`` > 1 it also runs with seeds 1..tuned_seeds-1 (the pool's seed drives
    its splits, pickers and floor, as a baseline's seed drives the baseline):
    ``f1_seeds`` holds every seed's score, ``f1_seed_mean`` and ``f1_seed_sd`` their
    mean and spread, the figures to set beside the baselines' means.
    """
    from selection.implementations import tuned

    rows = []
    for train_size in train_sizes:
        for name in algorithms:
            entry = {"train_size": train_size, "algorithm": name, "predicted": None,
                     "fallback": None, "config": None}
            start = time.process_time()
            if name in ("random", "crossval", "cleanlab"):
                runs = {"random": random_draws, "crossval": crossval_runs, "cleanlab": cleanlab_runs}[name]
                f1s = []
                for seed in range(runs):
                    pool = Pool.from_sample_set(samples, train_size, seed)
                    if name == "cleanlab":
                        answer = cleanlab_select(pool)
                    elif name == "crossval":
                        answer = implementations.get(name)(pool, verbose=False)
                    else:
                        answer = implementations.get(name)(pool)
                    f1s.append(score_rows(samples, validate_selection(answer, pool), eval_set))
                entry.update(f1=float(np.mean(f1s)), f1_runs=f1s)
            elif name == "tuned":
                def tuned_f1(pool_samples, seed, eval_embeddings=None):
                    """tuned's score on the pool of ``pool_samples`` drawn with ``seed``."""
                    pool = Pool.from_sample_set(pool_samples, train_size, seed)
                    picked = validate_selection(tuned.select(pool, verbose=False), pool)
                    return score_rows(pool_samples, picked, eval_set, eval_embeddings=eval_embeddings)

                pool = Pool.from_sample_set(samples, train_size, 0)
                answer, choice = tuned.select_with_choice(pool, verbose=False)
                f1 = score_rows(samples, validate_selection(answer, pool), eval_set)
                noisy_f1 = []
                for k in range(noise_runs):
                    noisy, noisy_eval = perturbed(samples, eval_set, 100 + k, noise)
                    noisy_f1.append(tuned_f1(noisy, 0, noisy_eval))
                if tuned_seeds > 1:
                    seeds = [f1, *(tuned_f1(samples, seed) for seed in range(1, tuned_seeds))]
                    entry.update(f1_seeds=seeds, f1_seed_mean=float(np.mean(seeds)),
                                 f1_seed_sd=float(np.std(seeds, ddof=1)))
                by_speaker = eval_speaker_subsets(samples, eval_set)
                if by_speaker:
                    picked = validate_selection(answer, pool)
                    entry["eval_by_speaker"] = {
                        who: score_rows(samples, picked, eval_set.subset(rows))
                        for who, rows in by_speaker.items()}
                entry.update(f1=f1, f1_runs=[f1, *noisy_f1],
                             predicted=None if choice is None else choice.predicted,
                             predicted_range=None if choice is None or choice.predicted_range is None
                             else list(choice.predicted_range),
                             fallback=None if choice is None else choice.fallback,
                             config=None if choice is None else choice.config.describe())
            else:
                raise ValueError(f"unknown algorithm {name!r}")
            entry["f1_sd"] = float(np.std(entry["f1_runs"], ddof=1)) if len(entry["f1_runs"]) > 1 else 0.0
            entry["cpu_seconds"] = time.process_time() - start
            rows.append(entry)
    return rows


def markdown(results: list[dict]) -> str:
    """Per pool and train size: every baseline (mean ± sd over its runs), tuned measured
    (± sd under noise), tuned predicted, and whether the floor was used; where tuned ran
    with several seeds, also its mean ± sd over them and that mean against the best
    baseline's."""
    seeded = any("f1_seed_mean" in r for r in results)
    header = ("| pool | size | random | crossval | cleanlab | tuned | tuned predicted | "
              "tuned - best baseline | floor used |")
    columns = 9
    if seeded:
        header += " tuned over seeds | seed mean - best baseline |"
        columns += 2
    lines = [header, "|" + "---|" * columns]
    table: dict[tuple[str, int], dict[str, dict]] = {}
    for r in results:
        table.setdefault((r["pool"], r["train_size"]), {})[r["algorithm"]] = r
    for (pool, size), by_name in table.items():
        def cell(name):
            r = by_name.get(name)
            if r is None:
                return "-"
            return f"{r['f1']:.3f} ± {r['f1_sd']:.3f}" if len(r["f1_runs"]) > 1 else f"{r['f1']:.3f}"
        t = by_name.get("tuned")
        baselines = [by_name[n]["f1"] for n in ("random", "crossval", "cleanlab") if n in by_name]
        gap = f"{t['f1'] - max(baselines):+.3f}" if t and baselines else "-"
        predicted = f"{t['predicted']:.3f}" if t and t["predicted"] is not None else "-"
        floor = "yes" if t and t["fallback"] else "no"
        line = (f"| {pool} | {size} | {cell('random')} | {cell('crossval')} | "
                f"{cell('cleanlab')} | {cell('tuned')} | {predicted} | {gap} | {floor} |")
        if seeded:
            if t and "f1_seed_mean" in t:
                mean_gap = f"{t['f1_seed_mean'] - max(baselines):+.3f}" if baselines else "-"
                line += f" {t['f1_seed_mean']:.3f} ± {t['f1_seed_sd']:.3f} | {mean_gap} |"
            else:
                line += " - | - |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mixture_seeds", type=int, nargs="*", default=[],
                        help="Gaussian-mixture pools with these seeds")
    parser.add_argument("--mixture_shift", type=int, nargs="*", default=[0],
                        help="voices per keyword in a mixture pool (0: pool and eval share "
                        "voices; k: the pool's keyword clips from k voices, eval's from the "
                        "others); one pool per value and seed")
    parser.add_argument("--real_speech_vectors", type=Path, metavar="NPY",
                        help="the real-speech benchmark's cached vectors of its letter clips "
                        "(bench/bench_realspeech.py writes CACHE/vectors/NAME-ID-DIGEST.npy)")
    parser.add_argument("--real_speech_pools", nargs="*", default=[
        "asterisk_en,klettres_en", "klettres_en_GB,asterisk_ru", "asterisk_en"],
        help="pool speakers of each real-speech pool (comma-separated; eval: the others)")
    parser.add_argument("--real_speech_seeds", "--real_speech_seed", type=int, nargs="+",
                        default=[0], metavar="SEED",
                        help="seeds of the real-speech pools' letter draws, one pool per seed "
                        "and speaker set (the benchmark's: 0 and 100-109, and 110-120 to "
                        "replicate; 1-6 and 200-205 were the development pools); with "
                        "several, a summary over the draws follows the table")
    parser.add_argument("--real_speech_fixed_order", action="store_true",
                        help="keep each real-speech pool's rows letter by letter, speaker by "
                        "speaker, copy by copy, as the tables before 2026-12-02 did (default: "
                        "an order drawn per letter draw, so a selection seed does not pick the "
                        "same speakers and copies in every draw)")
    parser.add_argument("--real_speech_hide_speakers", action="store_true",
                        help="also score each real-speech pool without its speakers recorded")
    parser.add_argument("--plan", type=Path, metavar="JSON",
                        help="corpus: {lang: [[keyword, ...], ...]} to build and score "
                        "(default: BENCH_PLAN)")
    parser.add_argument("--corpus", type=Path, help="corpus: MSWC-layout corpus root")
    parser.add_argument("--workdir", type=Path, help="where experiments are built / converted")
    parser.add_argument("--protocol_flags", default=BENCH_PROTOCOL_FLAGS,
                        help="corpus: build-dataset protocol flags, one string")
    parser.add_argument("--experiment_dirs", type=Path, nargs="*", default=[],
                        help="score already-built experiment dirs (samples.pb + eval.pb)")
    parser.add_argument("--dataperf_layout", action="store_true",
                        help="also score every built experiment after a round trip through "
                        "DataPerf's parquet/yaml layout (the converter; needs --workdir)")
    parser.add_argument("--train_sizes", type=int, nargs="+", default=list(TRAIN_SIZES))
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    parser.add_argument("--random_draws", type=int, default=RANDOM_DRAWS)
    parser.add_argument("--crossval_runs", type=int, default=CROSSVAL_RUNS)
    parser.add_argument("--cleanlab_runs", type=int, default=1,
                        help="cleanlab runs with seeds 0..N-1, for its spread (default: 1)")
    parser.add_argument("--noise_runs", type=int, default=NOISE_RUNS,
                        help="tuned reruns on vectors with 1e-6 relative noise")
    parser.add_argument("--tuned_seeds", type=int, default=1,
                        help="also run tuned with seeds 1..N-1 and report its mean and spread "
                        "over seeds beside the baselines' (default: 1, seed 0 only)")
    parser.add_argument("--json", type=Path, help="write every result as JSON")
    parser.add_argument("--markdown_from", type=Path, metavar="JSON", nargs="+",
                        help="print a markdown table of earlier --json files and exit (a "
                        "later file's row replaces an earlier one for the same pool, size "
                        "and algorithm)")
    args = parser.parse_args(argv)
    if args.markdown_from:
        merged: dict[tuple, dict] = {}
        for path in args.markdown_from:
            for row in json.loads(path.read_text()):
                merged[(row["pool"], row["train_size"], row["algorithm"])] = row
        print(markdown(list(merged.values())))
        if any(re.search(r"^real-.*-seed\d+$", pool) for pool, _, _ in merged):
            print()
            print(draw_summary(list(merged.values())))
        return 0
    # LogisticRegression's lbfgs stops at 100 iterations on raw vectors: part of the
    # fixed protocol, not news.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)

    experiments = []  # (name, loader)
    if args.real_speech_vectors:
        for draw in args.real_speech_seeds:
            for pool_speakers in args.real_speech_pools:
                speakers = pool_speakers.split(",")
                for record in (True, False) if args.real_speech_hide_speakers else (True,):
                    tag = "+".join(speakers) + ("" if record else "-nospeakers")
                    if draw:
                        tag += f"-seed{draw}"
                    experiments.append((f"real-{tag}", lambda speakers=speakers, record=record, draw=draw:
                                        real_speech_experiment(args.real_speech_vectors, speakers,
                                                               seed=draw, record_speakers=record,
                                                               shuffle=not args.real_speech_fixed_order)))
    built = []  # (name, dir)
    for d in args.experiment_dirs:
        built.append((d.name, d))
    if args.corpus:
        if not args.workdir:
            parser.error("--corpus needs --workdir")
        plan = json.loads(args.plan.read_text()) if args.plan else BENCH_PLAN
        for lang, keyword_sets in plan.items():
            for i, keywords in enumerate(keyword_sets):
                outdir = args.workdir / f"{lang}_set{i}"
                build_experiment(args.corpus, lang, keywords, outdir, args.protocol_flags.split())
                built.append((f"{lang}_set{i}", outdir))
    for name, d in built:
        experiments.append((name, lambda d=d: (read_samples(d / "samples.pb"),
                                               read_samples(d / "eval.pb"))))
        if args.dataperf_layout:
            if not args.workdir:
                parser.error("--dataperf_layout needs --workdir")
            experiments.append((f"{name}-dataperf", lambda d=d, name=name: through_dataperf_layout(
                d / "samples.pb", d / "eval.pb", args.workdir / f"{name}-dataperf")))

    for seed in args.mixture_seeds:
        for shift in args.mixture_shift:
            spec = MixtureSpec(pool_voices_per_target=shift)
            experiments.append((f"mixture-{seed}-voices{shift or 'all'}",
                                lambda seed=seed, spec=spec: mixture_experiment(seed, spec)))
    # One BLAS/OpenMP thread: the fits are small, and the 2 cores are shared.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    results = []
    for name, load in experiments:
        samples, eval_set = load()
        print(f"{name}: pool {len(samples)} clips ({len(set(samples.speakers.tolist()) - {''})} "
              f"speakers recorded), eval {len(eval_set)}, {len(samples.label_names) - 1} "
              f"keywords, {samples.embedding_dim}-d, model {samples.metadata.model_id or '?'}",
              flush=True)
        for row in run_pool(samples, eval_set, args.train_sizes, args.algorithms,
                            args.random_draws, args.crossval_runs, args.noise_runs,
                            cleanlab_runs=args.cleanlab_runs, tuned_seeds=args.tuned_seeds):
            row["pool"] = name
            results.append(row)
            extra = ""
            if row["algorithm"] == "tuned":
                extra = (f", predicted {row['predicted']:.4f}" if row["predicted"] is not None
                         else "") + (f", floor: {row['fallback']}" if row["fallback"] else
                                     f", {row['config']}")
            print(f"  size {row['train_size']:3d} {row['algorithm']:>9}: F1 {row['f1']:.4f} "
                  f"(sd {row['f1_sd']:.4f} over {len(row['f1_runs'])} runs, "
                  f"{row['cpu_seconds']:.0f} s CPU{extra})", flush=True)
            if "f1_seeds" in row:
                print(f"  size {row['train_size']:3d}     tuned: F1 {row['f1_seed_mean']:.4f} "
                      f"(sd {row['f1_seed_sd']:.4f} over seeds 0-{len(row['f1_seeds']) - 1})", flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    if len(args.real_speech_seeds) > 1:
        print()
        print(draw_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
