"""Few-shot keyword-spotting quality of embeddings on words, languages and voices never trained on.

The protocol of Mazumder et al. (2021) on our corpus, for each kind of held-out data
the model's ``holdout.json`` names:

* (a) ``unseen_words``: held-out words (all number words + a random sample) of the
  training languages, from training voices;
* (b) ``unseen_language``: words of languages never trained on;
* (c) ``unseen_voices``: the held-out words again, but every test clip comes from a
  held-out voice (the held-out TTS engine and voices); shots come from training voices.

Each episode picks one language and 5 target words. The DataPerf classifier
(``eval.scoring.make_classifier``: soft vote of RBF SVC and LogisticRegression on raw
vectors) trains on 5 shots per target plus 25 nontarget clips (other words), and is
scored with macro-F1 (targets + nontarget) on clips from speakers that gave no target
shot (a synthetic speaker is a voice with its own prosody and recording channel); half
the nontarget test words were never among the shots. Also
reported: nearest-centroid accuracy among the 5 targets (cosine to the mean of the
shots), across voices. Every representation is scored on the same episodes: raw
log-mel, MFCC, openWakeWord's embedding and the model's.

    python bench/bench_fewshot.py --model models [--corpus ROOT] [--episodes 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

KINDS = ("unseen_words", "unseen_language", "unseen_voices")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Few-shot keyword-spotting quality (5-way, 5-shot, DataPerf classifier, cross-voice) "
        "of embeddings on held-out words, languages and voices.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", type=Path, default=Path(__file__).resolve().parent.parent / "models",
                   help="model directory with mswc_embedding.keras and holdout.json")
    p.add_argument("--corpus", type=Path, default=None, help="corpus root (default: the one in holdout.json)")
    p.add_argument("--episodes", type=int, default=40, help="episodes per kind")
    p.add_argument("--targets", type=int, default=5, help="target words per episode")
    p.add_argument("--shots", type=int, default=5, help="training clips per target word")
    p.add_argument("--nontarget-shots", type=int, default=25, help="nontarget training clips per episode")
    p.add_argument("--max-test-per-word", type=int, default=12, help="test clips per word per episode")
    p.add_argument("--representations", default="logmel,mfcc,openwakeword,mswc",
                   help="comma-separated: logmel, mfcc, openwakeword, mswc")
    p.add_argument("--extra-model", action="append", default=[], metavar="NAME=DIR",
                   help="also score this model as representation mswc:NAME; repeatable (if its "
                   "holdout.json differs, every model is measured on what all of them hold out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vector-cache", type=Path, default=None,
                   help="directory to cache the baselines' vectors (logmel, mfcc, openwakeword) between runs")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--no-progress", action="store_true")
    return p


def extra_models(items: list[str]) -> dict[str, Path]:
    """``--extra-model NAME=DIR`` values -> ``{"mswc:NAME": DIR}``.

    Raises:
        ValueError: an item is not NAME=DIR with DIR/mswc_embedding.keras.
    """
    models = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not (Path(path) / "mswc_embedding.keras").is_file():
            raise ValueError(f"--extra-model {item!r}: expected NAME=DIR with DIR/mswc_embedding.keras")
        models[f"mswc:{name}"] = Path(path)
    return models


def fail(msg: str) -> int:
    print(f"bench_fewshot: error: {msg}", file=sys.stderr)
    return 2


class Pool:
    """Clips of one kind and language: word -> speaker -> [clip keys].

    ``test_only`` speakers (those of held-out voices, kind (c)) never give shots; when
    a pool has them, shots come from the other speakers and test clips from these only.
    """

    def __init__(self):
        self.by_word: dict[str, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
        self.test_only: set[str] = set()

    def add(self, word: str, voice: str, key: tuple[str, str]) -> None:
        self.by_word[word][voice].append(key)

    def speakers(self) -> list[str]:
        return sorted({v for w in self.by_word.values() for v in w})


def collect_pools(plan, corpus: Path, langs: list[str]) -> dict[str, dict[str, Pool]]:
    """kind -> lang -> Pool of measurement-only clips of ``langs``."""
    from embedding_model.plan import heldout_clips

    pools: dict[str, dict[str, Pool]] = {k: {} for k in KINDS}
    for lang in langs:
        held = heldout_clips(plan, lang)
        for kind in ("unseen_words", "unseen_language"):
            for r in held[kind]:
                pools[kind].setdefault(lang, Pool()).add(r.word, r.speaker, (lang, r.link))
        # (c): unseen words, shots from training voices, test clips from held-out voices only.
        unseen_words = {r.word for r in held["unseen_words"]}
        test_refs = [r for r in held["unseen_voices"] if r.word in unseen_words]
        if test_refs:
            pool = pools["unseen_voices"].setdefault(lang, Pool())
            for r in held["unseen_words"]:
                pool.add(r.word, r.speaker, (lang, r.link))
            for r in test_refs:
                pool.add(r.word, r.speaker, (lang, r.link))
                pool.test_only.add(r.speaker)
    return pools


def make_episode(pool: Pool, rng: np.random.Generator, args) -> dict | None:
    """Pick targets, shots and test clips from other speakers; None if the pool is too small.

    Shots (targets and nontarget) come from speakers outside ``pool.test_only``; test
    clips come from speakers that gave no target shot in the episode (or, when the pool
    has ``test_only`` speakers, from those only).
    """
    speakers = pool.speakers()
    shot_ok = set(speakers) - pool.test_only

    def clips(word, allowed):
        return [k for v in sorted(pool.by_word[word]) if v in allowed for k in pool.by_word[word][v]]

    need_total = args.shots + (0 if pool.test_only else 1)
    eligible = [w for w in sorted(pool.by_word)
                if len(clips(w, shot_ok)) >= args.shots and len(pool_clips_total(pool, w)) >= need_total]
    if len(eligible) < args.targets + 2:
        return None
    for _ in range(20):
        targets = sorted(rng.choice(eligible, size=args.targets, replace=False).tolist())
        # Half the other words give nontarget shots; the rest appear only at test time.
        others = rng.permutation([w for w in sorted(pool.by_word) if w not in targets]).tolist()
        half = max(1, len(others) // 2)
        known, unknown = others[:half], others[half:]
        train, used = [], set()
        for label, word in enumerate(targets, start=1):
            options = [(v, k) for v in sorted(pool.by_word[word]) if v in shot_ok for k in pool.by_word[word][v]]
            for i in rng.choice(len(options), size=args.shots, replace=False):
                train.append((options[i][1], label))
                used.add(options[i][0])
        known_opts = [(v, k) for w in known for v in sorted(pool.by_word[w]) if v in shot_ok for k in pool.by_word[w][v]]
        if not known_opts:
            continue
        for i in rng.choice(len(known_opts), size=min(args.nontarget_shots, len(known_opts)), replace=False):
            train.append((known_opts[i][1], 0))
        # Test clips never come from a speaker who gave a target shot.
        test_speakers = set(pool.test_only) if pool.test_only else set(speakers) - used
        test = []
        for label, word in enumerate(targets, start=1):
            tc = clips(word, test_speakers)
            test += [(tc[i], label) for i in rng.permutation(len(tc))[: args.max_test_per_word]]
        if len({y for _, y in test}) < args.targets:
            continue  # some target has no clip from an unused speaker: draw again
        non_test = [k for w in known + unknown for k in clips(w, test_speakers)]
        if not non_test:
            continue
        for i in rng.permutation(len(non_test))[: len(test)]:
            test.append((non_test[i], 0))
        return {"targets": targets, "train": train, "test": test}
    return None


def pool_clips_total(pool: Pool, word: str) -> list:
    return [k for keys in pool.by_word[word].values() for k in keys]


class ClipStore:
    """Loads each needed clip once; returns [N, 16000] float32 for a list of keys."""

    def __init__(self, corpus: Path):
        self.corpus = corpus
        self.index: dict[tuple[str, str], int] = {}
        self.clips: list[np.ndarray] = []

    def load(self, keys, progress: bool) -> None:
        from corpus.audio import ClipError, load_clip
        from corpus.layout import clip_path
        from tqdm import tqdm

        for key in tqdm(sorted(set(keys) - set(self.index)), desc="loading clips", disable=not progress):
            try:
                clip = load_clip(clip_path(self.corpus, *key))
            except (ClipError, OSError):
                clip = None
            if clip is not None:
                self.index[key] = len(self.clips)
                self.clips.append(clip)

    def array(self) -> np.ndarray:
        return np.stack(self.clips) if self.clips else np.zeros((0, 16000), np.float32)


def representations(names: list[str], model_dir: Path):
    """name -> function(clips [N, 16000]) -> vectors [N, D]."""
    from embedding_model.frontend import log_mel_numpy

    out = {}
    for name in names:
        if name == "logmel":
            out[name] = lambda c: log_mel_numpy(c).reshape(len(c), -1)
        elif name == "mfcc":
            from scipy.fft import dct

            out[name] = lambda c: dct(log_mel_numpy(c), type=2, norm="ortho", axis=-1)[..., :13].reshape(len(c), -1)
        elif name in ("openwakeword", "mswc"):
            from embedding_model import get_backend

            backend = get_backend(name, model=model_dir) if name == "mswc" else get_backend(name)
            out[name] = backend.embed
        else:
            raise ValueError(f"unknown representation {name!r}; choose from logmel, mfcc, openwakeword, mswc")
    return out


def score_episode(vectors: np.ndarray, store: ClipStore, episode: dict, seed: int) -> tuple[float, float]:
    """(macro-F1 of the DataPerf classifier, nearest-centroid accuracy among targets)."""
    from sklearn.metrics import f1_score

    from eval.scoring import make_classifier

    tr = [(store.index[k], y) for k, y in episode["train"] if k in store.index]
    te = [(store.index[k], y) for k, y in episode["test"] if k in store.index]
    xtr, ytr = vectors[[i for i, _ in tr]], np.array([y for _, y in tr])
    xte, yte = vectors[[i for i, _ in te]], np.array([y for _, y in te])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = make_classifier(seed).fit(xtr, ytr)
        f1 = float(f1_score(yte, clf.predict(xte), average="macro"))
    labels = sorted(set(ytr) - {0})
    unit = lambda a: a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)  # noqa: E731
    centroids = unit(np.stack([xtr[ytr == y].mean(0) for y in labels]))
    mask = yte > 0
    pred = np.array(labels)[np.argmax(unit(xte[mask]) @ centroids.T, axis=1)]
    return f1, float(np.mean(pred == yte[mask]))


def active_dimensions(vectors: np.ndarray) -> int:
    """Units that vary across clips: std >= 1% of the median unit std and non-zero on >= 1% of clips."""
    std = vectors.std(axis=0)
    nonzero = (np.abs(vectors) > 1e-6).mean(axis=0)
    return int(np.sum((std >= 0.01 * max(np.median(std), 1e-12)) & (nonzero >= 0.01)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from embedding_model.plan import TrainingPlan, common_holdout

    holdout = args.model / "holdout.json"
    if not holdout.is_file():
        return fail(f"{holdout} not found: the benchmark needs the model's held-out plan (train-embedding writes it)")
    plan = TrainingPlan.load(holdout)
    corpus = args.corpus or Path(plan.corpus)
    if not corpus.is_dir():
        return fail(f"corpus {corpus} not found: pass --corpus ROOT (the corpus the model was trained on)")
    plan.corpus = str(corpus)
    names = [n for n in args.representations.split(",") if n]
    try:
        extra = extra_models(args.extra_model)
    except ValueError as exc:
        return fail(str(exc))
    names += list(extra)
    # Models trained on other plans are compared on what none of them trained on.
    others = [TrainingPlan.load(d / "holdout.json") for d in extra.values() if (d / "holdout.json").is_file()]
    common = common_holdout([plan, *others])
    if common != plan:
        plan = common
        print(f"bench_fewshot: the models' held-out plans differ: measuring on what every one holds out "
              f"({len(plan.holdout_langs)} languages, {sum(map(len, plan.holdout_words.values()))} words, "
              f"{len(plan.holdout_voices)} voices, engines {plan.holdout_engines})", file=sys.stderr)
    from corpus.layout import corpus_langs

    # A corpus still being synthesized (or copied) may lack some of the plan's languages:
    # measure on the others, and say which are missing (in the table and the JSON).
    present = set(corpus_langs(corpus))
    wanted = sorted(set(plan.langs) | set(plan.holdout_langs))
    missing = [lang for lang in wanted if lang not in present]
    if missing:
        print(f"bench_fewshot: warning: {corpus} has no index for {', '.join(missing)}; "
              "measuring on the other languages", file=sys.stderr)
    pools = collect_pools(plan, corpus, [lang for lang in wanted if lang in present])
    rng = np.random.default_rng(args.seed)
    episodes: dict[str, list[dict]] = {}
    for kind in KINDS:
        langs = sorted(pools[kind])
        eps = []
        attempts = 0
        while langs and len(eps) < args.episodes and attempts < args.episodes * 10:
            attempts += 1
            episode = make_episode(pools[kind][langs[int(rng.integers(len(langs)))]], rng, args)
            if episode is not None:
                eps.append(episode)
        episodes[kind] = eps
    keys = [k for eps in episodes.values() for e in eps for k, _ in e["train"] + e["test"]]
    if not keys:
        return fail(f"{corpus}: no held-out clips with enough voices for episodes")
    store = ClipStore(corpus)
    store.load(keys, progress=not args.no_progress)
    clips = store.array()
    reps = representations([n for n in names if n not in extra], args.model)
    for name, path in extra.items():
        from embedding_model import get_backend

        reps[name] = get_backend("mswc", model=path).embed
    results: dict = {"episodes": {k: len(v) for k, v in episodes.items()}, "scores": {}, "clips": len(clips),
                     "missing_languages": missing,
                     "holdout": {"langs": plan.holdout_langs, "engines": plan.holdout_engines,
                                 "voices": len(plan.holdout_voices),
                                 "words": sum(map(len, plan.holdout_words.values()))}}
    keys_digest = hashlib.sha256(json.dumps(sorted(store.index.items())).encode()).hexdigest()[:16]
    for name, fn in reps.items():
        cached = None
        if args.vector_cache is not None and not name.startswith("mswc"):
            cached = args.vector_cache / f"{name}-{keys_digest}.npy"
        if cached is not None and cached.is_file():
            vectors = np.load(cached)
        else:
            vectors = fn(clips)
            if cached is not None:
                from protos.atomic import atomic_write

                args.vector_cache.mkdir(parents=True, exist_ok=True)
                with atomic_write(cached, "wb") as f:
                    np.save(f, vectors)
        if name.startswith("mswc"):
            results.setdefault("active_dimensions", {})[name] = [active_dimensions(vectors), int(vectors.shape[1])]
        for kind, eps in episodes.items():
            if not eps:
                continue
            scores = np.array([score_episode(vectors, store, e, seed=args.seed + i) for i, e in enumerate(eps)])
            results["scores"].setdefault(kind, {})[name] = {
                "f1_mean": round(float(scores[:, 0].mean()), 4), "f1_std": round(float(scores[:, 0].std()), 4),
                "centroid_acc_mean": round(float(scores[:, 1].mean()), 4),
                "centroid_acc_std": round(float(scores[:, 1].std()), 4),
                # per episode, same order for every representation: for paired comparisons
                "f1_episodes": [round(float(v), 4) for v in scores[:, 0]],
                "centroid_acc_episodes": [round(float(v), 4) for v in scores[:, 1]],
            }
    print(format_table(results, names))
    if args.json:
        from protos.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=1) + "\n")
    return 0


def format_table(results: dict, names: list[str]) -> str:
    lines = ["| held-out kind | episodes | representation | macro-F1 (mean ± sd) | centroid acc (mean ± sd) |",
             "|---|---|---|---|---|"]
    for kind, by_rep in results["scores"].items():
        for name in names:
            if name in by_rep:
                s = by_rep[name]
                lines.append(f"| {kind} | {results['episodes'][kind]} | {name} | {s['f1_mean']:.3f} ± {s['f1_std']:.3f} "
                             f"| {s['centroid_acc_mean']:.3f} ± {s['centroid_acc_std']:.3f} |")
    for name, (active, dim) in results.get("active_dimensions", {}).items():
        lines.append(f"\n{name} active dimensions on {results['clips']} held-out clips: {active} of {dim}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
