"""Few-shot keyword spotting on real human voices: the 26 English letter names, 4 speakers.

The clips come from ``bench/real_speech.py`` (Debian's Asterisk en/ru letter prompts
and KLettres en / en_GB; fetched with ``apt-get download`` + ``dpkg -x`` on first
use). Each episode is cross-speaker: shots come from one speaker, scoring clips from
another, over every ordered pair of the four speakers (12 pairs). In an episode, 5
target letters get 5 shots each (augmented copies of the shot speaker's recording);
the other 21 letters are split into known (10, giving 25 nontarget shots) and
unknown (11, test only). DataPerf's classifier (``eval.scoring.make_classifier``)
is trained on the shots and scored with macro-F1 (5 targets + nontarget) on the
other speaker's copies of the targets plus as many of its other letters. Also
reported, per ordered pair: nearest-centroid accuracy over all 26 letters (each
letter's centroid is the mean unit vector of the shot speaker's copies; every copy
by the other speaker is assigned to the nearest centroid by cosine; chance 0.04),
and inside each episode the nearest-centroid accuracy among its 5 targets (cosine
to the shots' mean, as ``bench_fewshot.py`` reports; chance 0.2).
Every representation is scored on the same episodes: the shipped ``mswc`` model,
openWakeWord, EfficientWord-Net, raw log-mel and MFCC.

    python bench/bench_realspeech.py [--model models] [--episodes-per-pair 10] [--json out.json]

``--geometry`` also scores the ``mswc`` vectors under scale factors, centring,
per-dimension standardisation, unit norm, PCA and PCA whitening, with statistics
from the benchmark's own clips (an upper bound for a transform folded into the
graph) or, with ``--geometry-fit DIR``, from unlabelled real windows of other
speakers (what a folded transform could use); every representation's variance
profile (principal components carrying 50/90/95/99% of the variance) is reported.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_fewshot import extra_models  # noqa: E402
from bench.real_speech import DEFAULT_CACHE, DEFAULT_COPIES, LETTERS, load_letter_clips  # noqa: E402
from protos.errors import EXIT_STATUS_HELP, EnvironmentProblem, InputError, run_cli  # noqa: E402

REPRESENTATIONS = ("mswc", "openwakeword", "efficientword-net", "logmel", "mfcc")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_realspeech",
        description="Cross-speaker few-shot keyword spotting (5-way, 5-shot, DataPerf classifier) "
        "on real recordings of the English letter names by four speakers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=EXIT_STATUS_HELP,
    )
    p.add_argument("--model", type=Path, default=Path(__file__).resolve().parent.parent / "models",
                   help="directory with mswc_embedding.keras (the mswc representation)")
    p.add_argument("--extra-model", action="append", default=[], metavar="NAME=DIR",
                   help="also score this model as representation mswc:NAME; repeatable")
    p.add_argument("--representations", default=",".join(REPRESENTATIONS),
                   help="comma-separated subset of " + ", ".join(REPRESENTATIONS))
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                   help="where the Debian packages are unpacked and vectors cached")
    p.add_argument("--episodes-per-pair", type=int, default=10, help="episodes per ordered speaker pair")
    p.add_argument("--copies", type=int, default=DEFAULT_COPIES, help="augmented copies per recording")
    p.add_argument("--targets", type=int, default=5)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--nontarget-shots", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--geometry", action="store_true",
                   help="also score transforms of the mswc vectors (scale, centring, standardisation, whitening)")
    p.add_argument("--geometry-fit", type=Path, default=None, metavar="DIR",
                   help="estimate the transforms' statistics on these unlabelled windows (python -m "
                   "embedding_model.unlabelled --out DIR) instead of on the benchmark's own clips")
    p.add_argument("--no-vector-cache", action="store_true", help="recompute every representation's vectors")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    return p


# --- episodes -------------------------------------------------------------------------


def make_episodes(speakers: list[str], copies: int, episodes_per_pair: int, seed: int = 0,
                  targets: int = 5, shots: int = 5, nontarget_shots: int = 25) -> list[dict]:
    """Cross-speaker episodes over every ordered pair of ``speakers``.

    Clips are addressed as (speaker, letter index, copy index). Each episode is drawn
    from a generator seeded by (seed, pair index, episode index).

    Returns:
        list of {"shot_speaker", "test_speaker", "targets": [letters],
        "train": [((speaker, letter, copy), label)], "test": [...]}, label 0 =
        nontarget, 1..targets = the sorted target letters.
    """
    if shots > copies:
        raise InputError(f"--shots {shots} needs at least as many copies per recording (--copies {copies})")
    n_letters = len(LETTERS)
    if targets + 2 > n_letters:
        raise InputError(f"--targets {targets} leaves too few nontarget letters")
    episodes = []
    for pair, (shot_spk, test_spk) in enumerate(itertools.permutations(speakers, 2)):
        for e in range(episodes_per_pair):
            rng = np.random.default_rng([seed, pair, e])
            chosen = np.sort(rng.choice(n_letters, size=targets, replace=False))
            others = rng.permutation([i for i in range(n_letters) if i not in set(chosen.tolist())])
            known = others[: len(others) // 2]
            train, test = [], []
            for label, letter in enumerate(chosen, start=1):
                for c in rng.choice(copies, size=shots, replace=False):
                    train.append(((shot_spk, int(letter), int(c)), label))
                for c in range(copies):
                    test.append(((test_spk, int(letter), c), label))
            known_clips = [(int(letter), c) for letter in known for c in range(copies)]
            for i in rng.choice(len(known_clips), size=min(nontarget_shots, len(known_clips)), replace=False):
                train.append(((shot_spk, *known_clips[i]), 0))
            other_clips = [(int(letter), c) for letter in others for c in range(copies)]
            n_target_test = len(test)
            for i in rng.choice(len(other_clips), size=min(n_target_test, len(other_clips)), replace=False):
                test.append(((test_spk, *other_clips[i]), 0))
            episodes.append({"shot_speaker": shot_spk, "test_speaker": test_spk,
                             "targets": [LETTERS[i] for i in chosen], "train": train, "test": test})
    return episodes


def score_episode(vectors: np.ndarray, index: dict, episode: dict, seed: int) -> tuple[float, float]:
    """(macro-F1 of DataPerf's classifier, nearest-centroid accuracy among the targets).

    Args:
        vectors: np.ndarray [shape=(N, D)] float32, every benchmark clip.
        index: (speaker, letter index, copy) -> row of ``vectors``.
        episode: from :func:`make_episodes`.
        seed: the classifier's seed.
    """
    from sklearn.metrics import f1_score

    from eval.scoring import make_classifier

    xtr = vectors[[index[k] for k, _ in episode["train"]]]
    ytr = np.array([y for _, y in episode["train"]])
    xte = vectors[[index[k] for k, _ in episode["test"]]]
    yte = np.array([y for _, y in episode["test"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = make_classifier(seed).fit(xtr, ytr)
        f1 = float(f1_score(yte, clf.predict(xte), average="macro"))
    labels = sorted(set(ytr.tolist()) - {0})
    unit = lambda a: a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)  # noqa: E731
    centroids = unit(np.stack([xtr[ytr == y].mean(0) for y in labels]))
    mask = yte > 0
    pred = np.array(labels)[np.argmax(unit(xte[mask]) @ centroids.T, axis=1)]
    return f1, float(np.mean(pred == yte[mask]))


def letter_centroid_accuracy(vectors: np.ndarray, index: dict, shot_speaker: str, test_speaker: str) -> float:
    """26-way nearest-centroid accuracy: centroids from ``shot_speaker``, clips of ``test_speaker``."""
    unit = lambda a: a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-12)  # noqa: E731
    rows = {}
    for (spk, letter, _), i in index.items():
        rows.setdefault(spk, {}).setdefault(letter, []).append(i)
    letters = sorted(rows[shot_speaker])
    centroids = unit(np.stack([unit(vectors[rows[shot_speaker][l]]).mean(0) for l in letters]))
    test_rows = [i for l in letters for i in rows[test_speaker][l]]
    truth = np.array([l for l in letters for _ in rows[test_speaker][l]])
    pred = np.array(letters)[np.argmax(unit(vectors[test_rows]) @ centroids.T, axis=1)]
    return float(np.mean(pred == truth))


def score_vectors(vectors: np.ndarray, index: dict, episodes: list[dict], seed: int = 0) -> dict:
    """Scores of one representation.

    Returns:
        {"f1_mean", "f1_std", "centroid_acc_mean", "centroid_acc_std" (5 targets,
        per episode), "letter_centroid_acc" (26 letters, mean over ordered pairs),
        "episodes", "pairs": {"A->B": [F1, 5-way centroid, 26-way centroid]}}.
    """
    from threadpoolctl import threadpool_limits

    vectors = vectors.astype(np.float64) if vectors.dtype != np.float64 else vectors
    with threadpool_limits(1):
        scores = np.array([score_episode(vectors, index, e, seed + i) for i, e in enumerate(episodes)])
    pairs: dict[str, list] = {}
    for e, s in zip(episodes, scores):
        pairs.setdefault((e["shot_speaker"], e["test_speaker"]), []).append(s)
    letter_acc = {pair: letter_centroid_accuracy(vectors, index, *pair) for pair in pairs}
    out = {"f1_mean": round(float(scores[:, 0].mean()), 4), "f1_std": round(float(scores[:, 0].std()), 4),
           "letter_centroid_acc": round(float(np.mean(list(letter_acc.values()))), 4),
           "centroid_acc_mean": round(float(scores[:, 1].mean()), 4),
           "centroid_acc_std": round(float(scores[:, 1].std()), 4), "episodes": len(episodes), "pairs": {}}
    for pair, rows in pairs.items():
        rows = np.array(rows)
        out["pairs"]["->".join(pair)] = [round(float(rows[:, 0].mean()), 4), round(float(rows[:, 1].mean()), 4),
                                         round(letter_acc[pair], 4)]
    return out


class RealSpeechBenchmark:
    """The benchmark's clips and episodes, to score any ``embed`` function on.

    Other code (checkpoint selection, ablations) uses it as::

        bench = RealSpeechBenchmark(cache_dir)
        result = bench.evaluate(backend.embed)    # {"f1_mean", "centroid_acc_mean", ...}
    """

    def __init__(self, cache_dir: Path | None = None, copies: int = DEFAULT_COPIES, seed: int = 0,
                 episodes_per_pair: int = 10, targets: int = 5, shots: int = 5, nontarget_shots: int = 25):
        per_speaker, _ = load_letter_clips(cache_dir, copies=copies, seed=seed)
        self.speakers = list(per_speaker)
        self.clips = np.concatenate([per_speaker[s] for s in self.speakers])  # [N, 16000]
        self.index = {(s, letter, c): i * len(LETTERS) * copies + letter * copies + c
                      for i, s in enumerate(self.speakers) for letter in range(len(LETTERS)) for c in range(copies)}
        self.episodes = make_episodes(self.speakers, copies, episodes_per_pair, seed, targets, shots, nontarget_shots)
        self.seed = seed
        self.digest = hashlib.sha256(self.clips.tobytes()).hexdigest()[:16]

    def evaluate(self, embed) -> dict:
        """Score ``embed`` (clips [N, 16000] -> vectors [N, D]) on every episode."""
        return score_vectors(np.asarray(embed(self.clips), dtype=np.float32), self.index, self.episodes, self.seed)

    def score(self, vectors: np.ndarray) -> dict:
        """Score precomputed vectors of :attr:`clips` (same row order)."""
        if vectors.shape[0] != self.clips.shape[0]:
            raise InputError(f"expected {self.clips.shape[0]} vectors, got {vectors.shape[0]}")
        return score_vectors(np.asarray(vectors, dtype=np.float32), self.index, self.episodes, self.seed)


# --- representations --------------------------------------------------------------------


def representation(name: str, model_dir: Path):
    """name -> (embed function, identity string)."""
    from embedding_model.frontend import log_mel_numpy

    if name == "logmel":
        return (lambda c: log_mel_numpy(c).reshape(len(c), -1)), "logmel-v1"
    if name == "mfcc":
        from scipy.fft import dct

        return (lambda c: dct(log_mel_numpy(c), type=2, norm="ortho", axis=-1)[..., :13].reshape(len(c), -1)), "mfcc-v1"
    try:
        if name == "efficientword-net":
            from embedding_model.ewn import EfficientWordNetBackend, EfficientWordNetMissing

            try:
                backend = EfficientWordNetBackend()
            except EfficientWordNetMissing as exc:
                raise EnvironmentProblem(str(exc)) from exc
            return backend.embed, backend.identity
        from embedding_model import BackendUnavailable, get_backend

        try:
            backend = get_backend("mswc", model=model_dir) if name.startswith("mswc") else get_backend(name)
        except (BackendUnavailable, RuntimeError) as exc:
            raise EnvironmentProblem(f"{name}: {exc}") from exc
        return backend.embed, backend.identity
    except ImportError as exc:
        raise EnvironmentProblem(f"{name}: a package is missing ({exc})") from exc


def cached_vectors(name: str, model_dir: Path, bench: RealSpeechBenchmark, cache_dir: Path, use_cache: bool):
    embed, identity = representation(name, model_dir)
    path = cache_dir / "vectors" / f"{name.replace(':', '_')}-{identity}-{bench.digest}.npy"
    if use_cache and path.is_file():
        return np.load(path), 0.0
    start = time.perf_counter()
    vectors = np.asarray(embed(bench.clips), dtype=np.float32)
    seconds = time.perf_counter() - start
    from protos.atomic import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.save(f, vectors)
    return vectors, seconds


# --- geometry ---------------------------------------------------------------------------


def geometry_variants(vectors: np.ndarray, fit: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Transforms of one representation's vectors, each a candidate to fold into the graph.

    Args:
        vectors: np.ndarray [shape=(N, D)], the benchmark clips' vectors.
        fit: np.ndarray [shape=(M, D)], vectors the statistics (mean, std, principal
            axes) are estimated on; default ``vectors`` itself (an upper bound: a
            folded transform would be fitted on other audio).

    Returns:
        {name: np.ndarray [shape=(N, D')] float32}.
    """
    x = vectors.astype(np.float64)
    f = x if fit is None else fit.astype(np.float64)
    mean = f.mean(0)
    std = f.std(0) + 1e-8
    centred = x - mean
    out = {f"scale x{k:g}": x * k for k in (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)}
    out["centred"] = centred
    for k in (1.0, 3.0, 10.0):
        out[f"standardised x{k:g}"] = k * centred / std
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    for k in (1.0, 10.0, 30.0):
        out[f"unit norm x{k:g}"] = k * unit
    _, s, vt = np.linalg.svd(f - mean, full_matrices=False)
    eig = s**2 / (len(f) - 1)
    for k in (32, 64, 128):
        if k < len(s):
            out[f"PCA {k}"] = centred @ vt[:k].T
            out[f"PCA {k} x10"] = 10 * centred @ vt[:k].T
    if 32 < len(s):
        out["PCA 32 whitened"] = centred @ vt[:32].T / np.sqrt(eig[:32] + 1e-8)
    keep = eig > eig[0] * 1e-6
    out["PCA whitened (full rank)"] = centred @ vt[keep].T / np.sqrt(eig[keep])
    return {k: v.astype(np.float32) for k, v in out.items()}


def variance_profile(vectors: np.ndarray) -> dict:
    """How many principal components carry 90 / 95 / 99% of the variance; the norm."""
    x = vectors.astype(np.float64)
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    cum = np.cumsum(s**2) / np.sum(s**2)
    norms = np.linalg.norm(x, axis=1)
    ratio = float(s[0] ** 2 / np.sum(s**2))
    return {f"components_{int(p * 100)}": int(np.searchsorted(cum, p) + 1) for p in (0.5, 0.9, 0.95, 0.99)} | {
        "dim": int(x.shape[1]), "first_component_share": round(ratio, 4),
        "norm_mean": round(float(norms.mean()), 3), "norm_std": round(float(norms.std()), 3),
        "dim_std_median": round(float(np.median(x.std(0))), 4)}


# --- main -------------------------------------------------------------------------------


def format_table(results: dict) -> str:
    lines = ["| representation | dim | macro-F1 (mean ± sd) | centroid acc, 26 letters | centroid acc, 5 targets (mean ± sd) |",
             "|---|---|---|---|---|"]
    for name, s in results["scores"].items():
        lines.append(f"| {name} | {s.get('dim', '')} | {s['f1_mean']:.3f} ± {s['f1_std']:.3f} | {s['letter_centroid_acc']:.3f} "
                     f"| {s['centroid_acc_mean']:.3f} ± {s['centroid_acc_std']:.3f} |")
    if results.get("geometry"):
        lines += ["", "| mswc vectors transformed | dim | macro-F1 | centroid acc, 26 letters | centroid acc, 5 targets |",
                  "|---|---|---|---|---|"]
        for name, s in results["geometry"].items():
            lines.append(f"| {name} | {s['dim']} | {s['f1_mean']:.3f} | {s['letter_centroid_acc']:.3f} "
                         f"| {s['centroid_acc_mean']:.3f} |")
    for name, prof in results.get("variance", {}).items():
        lines.append(f"\n{name}: {prof}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    names = [n for n in args.representations.split(",") if n]
    for n in names:
        if n not in REPRESENTATIONS:
            raise InputError(f"--representations: unknown {n!r}; choose from {', '.join(REPRESENTATIONS)}")
    try:
        extra = extra_models(args.extra_model)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    models = {"mswc": args.model, **extra}
    names += list(extra)
    bench = RealSpeechBenchmark(args.cache_dir, args.copies, args.seed, args.episodes_per_pair,
                                args.targets, args.shots, args.nontarget_shots)
    results: dict = {"speakers": bench.speakers, "clips": int(len(bench.clips)), "episodes": len(bench.episodes),
                     "copies": args.copies, "seed": args.seed, "scores": {}, "variance": {}}
    for name in names:
        vectors, seconds = cached_vectors(name, models.get(name, args.model), bench, args.cache_dir,
                                          not args.no_vector_cache)
        result = bench.score(vectors)
        result["dim"] = int(vectors.shape[1])
        if seconds:
            result["embed_seconds"] = round(seconds, 1)
        results["scores"][name] = result
        results["variance"][name] = variance_profile(vectors)
        print(f"{name}: F1 {result['f1_mean']:.3f} / centroid {result['letter_centroid_acc']:.3f} (26 letters) "
              f"{result['centroid_acc_mean']:.3f} (5 targets)", file=sys.stderr)
        if args.geometry and name == "mswc":
            results["geometry"] = {}
            fit = None
            if args.geometry_fit is not None:
                from embedding_model.unlabelled import load_windows

                embed, _ = representation(name, models[name])
                fit = embed(load_windows(args.geometry_fit))
                results["geometry_fit"] = {"windows": int(len(fit)), "dir": str(args.geometry_fit)}
            for vname, v in geometry_variants(vectors, fit).items():
                s = bench.score(v)
                results["geometry"][vname] = {k: s[k] for k in ("f1_mean", "f1_std", "letter_centroid_acc",
                                                                 "centroid_acc_mean", "centroid_acc_std")}
                results["geometry"][vname]["dim"] = int(v.shape[1])
                print(f"  {vname}: F1 {s['f1_mean']:.3f} / centroid {s['letter_centroid_acc']:.3f}", file=sys.stderr)
    print(format_table(results))
    if args.json:
        from protos.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli("bench_realspeech", main))
