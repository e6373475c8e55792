"""Streaming keyword-spotting benchmark: recall at 0.5 and 1 false accept per hour.

Everything is made here, seeded, in one language (default English):

- **a pool** of 1-s keyword clips (the keywords; default three words the shipped
  model held out of training) and nontarget word clips, synthesised with espeak-ng
  voices and passed through the corpus' channel augmentation
  (``embedding_model.augment.ChannelAugmenter``: rooms, band limits, noise, Opus);
- **long recordings**: sentences of frequent words, spoken by *other* espeak-ng voices,
  each through its own random channel, separated by pauses over a noise floor. Some
  sentences carry a keyword at a known time (prefix, keyword and suffix are
  synthesised separately and joined, so the keyword's span is exact); the others have
  no keyword and are the false-accept material.

For each embedding backend the pool and every 1-s window of the recordings (hop
100 ms) are embedded once. Selection algorithms pick 25 clips from the pool (``tuned``,
``random`` with three seeds, ``crossval``); each pick fits both spotter heads
(``dataperf``, ``linear``); scores are smoothed and peaks picked at a sweep of
thresholds. A detection is a hit when its keyword is the event's and its 1-s window
holds the keyword's centre (0.25 s of slack); every other detection is a false
accept, per hour of all audio. Reported: recall at <= 0.5 and <= 1 false accepts per
hour (the best threshold meeting the rate), a DET curve (PNG), and the spotter's
real-time factor (embedding + head, wall and CPU) on this machine::

    python bench/bench_spotter.py --workdir /work/data/spotbench --json spot.json \\
        --png docs/spotter_det.png

A TTS benchmark flatters an embedding trained on TTS (the shipped ``mswc`` model) over
one trained on real speech (openWakeWord): read its numbers with that in mind.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from corpus.audio import normalize_clip  # noqa: E402
from embedding_model.spotter import (WINDOW, DataPerfHead, LinearHead, peaks_at,  # noqa: E402
                                     smooth_scores, window_count)

HOP = 1600
SMOOTH = 3
REFRACTORY_WINDOWS = 10
THRESHOLDS = np.round(np.concatenate([np.arange(0.05, 0.95, 0.025), np.arange(0.95, 0.9991, 0.0025)]), 4)
TRAIN_SIZE = 25


# ------------------------------------------------------------------------ material


def _voices(lang: str, seed: int):
    from dataset_builder.synth import engines

    voices = engines.voices_for(lang, ("espeak-ng",))
    order = np.random.default_rng(seed).permutation(len(voices))
    return [voices[i] for i in order]


def _say(voice, text: str, rng: np.random.Generator) -> np.ndarray:
    """text -> 16 kHz float32, silence trimmed."""
    from dataset_builder.synth.augment import trim_silence
    from dataset_builder.synth.engines import synth_espeak

    import soxr

    y, sr = synth_espeak(voice, text, rate=int(rng.integers(130, 211)), pitch=int(rng.integers(25, 75)))
    y = trim_silence(y, sr)
    return soxr.resample(y, sr, 16000, quality="HQ").astype(np.float32)


def make_material(args, out: Path) -> dict:
    """Synthesise the pool clips and the recordings (cached in ``out/material.npz``)."""
    cache = out / "material.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    from dataset_builder.synth.vocab import frequent_words
    from embedding_model.augment import ChannelAugmenter, make_rir_bank

    keywords = sorted(args.keywords)
    words = [w for w in frequent_words(args.lang, 400) if w not in keywords and len(w) > 1]
    voices = _voices(args.lang, args.seed)
    pool_voices, test_voices = voices[: len(voices) // 2], voices[len(voices) // 2 :]
    rirs = make_rir_bank(24, seed=args.seed)
    augment = ChannelAugmenter(rirs=rirs, max_shift=0, snr_db=(5.0, 30.0))
    rng = np.random.default_rng(args.seed)

    # Pool: keyword clips and nontarget word clips, one voice each, augmented.
    jobs = [(kw, "target") for kw in keywords for _ in range(args.clips_per_keyword)]
    nontarget_words = words[: args.nontarget_words]
    jobs += [(w, "nontarget") for w in nontarget_words for _ in range(args.clips_per_nontarget)]
    seeds = rng.integers(0, 2**31, size=len(jobs))

    def pool_clip(i):
        r = np.random.default_rng(seeds[i])
        voice = pool_voices[int(r.integers(len(pool_voices)))]
        return augment(normalize_clip(_say(voice, jobs[i][0], r), 16000), r)

    # Recordings: sentences with and without a keyword.
    plans = []
    for kw in keywords:
        plans += [("kw", kw)] * args.events_per_keyword
    n_negative = int(args.negative_minutes * 60 / 3.2)
    plans += [("neg", "")] * n_negative
    order = rng.permutation(len(plans))
    plans = [plans[i] for i in order]
    sentence_seeds = rng.integers(0, 2**31, size=len(plans))

    def sentence(i):
        r = np.random.default_rng(sentence_seeds[i])
        voice = test_voices[int(r.integers(len(test_voices)))]
        kind, kw = plans[i]
        pick = lambda n: " ".join(words[int(j)] for j in r.integers(0, len(words), size=n))  # noqa: E731
        gap = lambda: np.zeros(int(r.uniform(0.04, 0.15) * 16000), np.float32)  # noqa: E731
        if kind == "neg":
            parts, span = [_say(voice, pick(int(r.integers(5, 10))), r)], None
        else:
            before, word, after = (_say(voice, pick(int(r.integers(1, 4))), r), _say(voice, kw, r),
                                   _say(voice, pick(int(r.integers(1, 4))), r))
            pause = gap()
            parts = [before, pause, word, gap(), after]
            span = (len(before) + len(pause), len(before) + len(pause) + len(word))
        y = np.concatenate(parts)
        pad = np.zeros(1600, np.float32)
        y = augment(np.concatenate([pad, y, pad]), r)
        if span is not None:
            span = (span[0] + 1600, span[1] + 1600)
        return y, span

    with ThreadPoolExecutor(args.jobs) as ex:
        pool = np.stack(list(ex.map(pool_clip, range(len(jobs)))))
        sentences = list(ex.map(sentence, range(len(plans))))

    # Lay the sentences end to end over a noise floor, in recordings of ~4 minutes.
    recordings, events, bounds = [], [], []
    current, t = [], 0
    for (y, span), (kind, kw) in zip(sentences, plans):
        pause = np.zeros(int(rng.uniform(0.4, 1.6) * 16000), np.float32)
        if span is not None:
            events.append((len(recordings), t + len(pause) + span[0], t + len(pause) + span[1],
                           keywords.index(kw)))
        current += [pause, y]
        t += len(pause) + len(y)
        if t > 240 * 16000:
            recordings.append(np.concatenate(current))
            current, t = [], 0
    if current:
        recordings.append(np.concatenate(current))
    floor_rng = np.random.default_rng(args.seed + 1)
    for i, rec in enumerate(recordings):
        noise = floor_rng.standard_normal(len(rec)).astype(np.float32) * 10 ** (-55 / 20)
        recordings[i] = np.clip(rec + noise, -1, 1).astype(np.float32)
        bounds.append(len(rec))
    material = {
        "pool": pool.astype(np.float32),
        "pool_words": np.asarray([w for w, _ in jobs]),
        "pool_is_target": np.asarray([kind == "target" for _, kind in jobs]),
        "keywords": np.asarray(keywords),
        "audio": np.concatenate(recordings),
        "bounds": np.asarray(bounds, np.int64),
        "events": np.asarray(events, np.int64).reshape(-1, 4),
    }
    out.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **material)
    return material


def split_recordings(material: dict) -> list[np.ndarray]:
    edges = np.concatenate([[0], np.cumsum(material["bounds"])])
    return [material["audio"][a:b] for a, b in zip(edges[:-1], edges[1:])]


# ------------------------------------------------------------------- embedding


def make_backend(name: str):
    from embedding_model.backends import get_backend

    if name == "mswc":
        return get_backend("mswc", batch_size=128)
    if name == "openwakeword":
        # A streaming window is not a clip centred in silence: embed it bare, as
        # openWakeWord itself streams (3 windows of 76 mel frames, 8 frames apart).
        return get_backend("openwakeword", context="bare", window_step=8)
    return get_backend(name)


def embed_windows(backend, recordings: list[np.ndarray], batch: int = 128) -> tuple[list[np.ndarray], float, float]:
    """Every window of every recording -> (vectors per recording, wall s, CPU s)."""
    wall, cpu = time.perf_counter(), _cpu()
    out = []
    for audio in recordings:
        n = window_count(len(audio), HOP)
        padded = np.concatenate([audio, np.zeros(WINDOW + n * HOP, np.float32)])
        frames = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[::HOP][:n]
        vecs = [backend.embed(np.ascontiguousarray(frames[i : i + batch])) for i in range(0, n, batch)]
        out.append(np.concatenate(vecs))
    return out, time.perf_counter() - wall, _cpu() - cpu


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cached_windows(path: Path, backend, recordings):
    """embed_windows, cached in ``path`` with its timings (reruns skip the embedding)."""
    if path.is_file():
        with np.load(path) as npz:
            bounds = np.concatenate([[0], np.cumsum(npz["counts"])])
            vectors = npz["vectors"]
            return ([vectors[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
                    float(npz["wall"]), float(npz["cpu"]))
    windows, wall, cpu = embed_windows(backend, recordings)
    np.savez(path, vectors=np.concatenate(windows), counts=[len(w) for w in windows],
             wall=wall, cpu=cpu)
    return windows, wall, cpu


def real_recordings(root: Path, minutes: float = 4.0) -> list[np.ndarray]:
    """Every WAV under ``root`` (sorted), 16 kHz, 0.5-s pauses, in recordings of ~4 min."""
    from corpus.debian_speech import check_not_reserved
    from embedding_model.spotter import load_recording

    for part in root.resolve().parts:  # the package directory is somewhere on the path
        check_not_reserved(part)
    rng = np.random.default_rng(7)
    out, current, n = [], [], 0
    for path in sorted(root.rglob("*.wav")):
        for part in (np.zeros(8000, np.float32), load_recording(path)):
            current.append(part)
            n += len(part)
        if n > minutes * 60 * 16000:
            out.append(np.concatenate(current))
            current, n = [], 0
    if current:
        out.append(np.concatenate(current))
    floor = 10 ** (-55 / 20)
    return [np.clip(r + floor * rng.standard_normal(len(r)).astype(np.float32), -1, 1)
            for r in out]


def real_fa_curve(scores: list[np.ndarray], hours: float) -> list[float]:
    """False accepts per hour on keyword-free real speech at each of :data:`THRESHOLDS`."""
    smoothed = [smooth_scores(s, SMOOTH) for s in scores]
    return [sum(len(peaks_at(track, float(t), REFRACTORY_WINDOWS)) for track in smoothed) / hours
            for t in THRESHOLDS]


# ------------------------------------------------------------------- selection


def selections(material: dict, pool_x: np.ndarray, backend, seed: int):
    """({pick name: pool rows}, pool labels, label names) for tuned, random (3 seeds) and crossval at 25 clips."""
    from protos import NONTARGET, TARGET, DatasetMetadata, SampleSet
    from selection import implementations
    from selection.pool import Pool, validate_selection

    keywords = [str(k) for k in material["keywords"]]
    sample_set = SampleSet(
        ids=[f"{w}/{i:04d}" for i, w in enumerate(material["pool_words"])],
        sample_types=np.where(material["pool_is_target"], TARGET, NONTARGET),
        keywords=[str(w) for w in material["pool_words"]],
        embeddings=pool_x,
        metadata=DatasetMetadata(language="en", target_keywords=keywords, backend=backend.name,
                                 embedding_dim=pool_x.shape[1], model_id=backend.identity,
                                 role="samples"))
    picks = {}
    for name, algorithm, s in [("tuned", "tuned", seed), ("crossval", "crossval", seed),
                               ("random-0", "random", seed), ("random-1", "random", seed + 1),
                               ("random-2", "random", seed + 2)]:
        pool = Pool.from_sample_set(sample_set, TRAIN_SIZE, s)
        began = time.perf_counter()
        rows = validate_selection(implementations.get(algorithm)(pool), pool)
        picks[name] = rows
        print(f"  {backend.name}: {name} picked {len(rows)} clips in {time.perf_counter() - began:.1f} s",
              file=sys.stderr)
    return picks, sample_set.labels, sample_set.label_names


# ---------------------------------------------------------------------- metrics


def det_curve(scores: list[np.ndarray], material: dict) -> dict:
    """Recall and false accepts per hour at every threshold of :data:`THRESHOLDS`."""
    events = material["events"]
    hours = float(material["bounds"].sum()) / 16000 / 3600
    smoothed = [smooth_scores(s, SMOOTH) for s in scores]
    recall, fa_per_hour = [], []
    for threshold in THRESHOLDS:
        hit_events, false = set(), 0
        for r, track in enumerate(smoothed):
            mine = events[events[:, 0] == r]
            for peak, k, _ in peaks_at(track, float(threshold), REFRACTORY_WINDOWS):
                centre_index = peak - (min(SMOOTH, peak + 1) - 1) / 2
                window_mid = centre_index * HOP + WINDOW / 2
                match = [i for i, (_, a, b, kw) in enumerate(mine)
                         if kw == k and abs(window_mid - (a + b) / 2) <= 0.5 * WINDOW + 0.25 * 16000]
                if match:
                    hit_events.update((r, i) for i in match[:1])
                else:
                    false += 1
        recall.append(len(hit_events) / max(1, len(events)))
        fa_per_hour.append(false / hours)
    return {"thresholds": THRESHOLDS.tolist(), "recall": recall, "fa_per_hour": fa_per_hour}


def recall_at(curve: dict, fa_limit: float) -> tuple[float, float | None]:
    """Best recall with false accepts per hour <= fa_limit, and its threshold."""
    best, at = 0.0, None
    for t, r, fa in zip(curve["thresholds"], curve["recall"], curve["fa_per_hour"]):
        if fa <= fa_limit and r > best:
            best, at = r, t
    return best, at


# ------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, required=True, help="material cache and outputs")
    p.add_argument("--lang", default="en")
    p.add_argument("--keywords", type=lambda s: s.split(","), default=["national", "season", "story"])
    p.add_argument("--clips-per-keyword", type=int, default=30)
    p.add_argument("--nontarget-words", type=int, default=50)
    p.add_argument("--clips-per-nontarget", type=int, default=3)
    p.add_argument("--events-per-keyword", type=int, default=16)
    p.add_argument("--negative-minutes", type=float, default=15.0)
    p.add_argument("--backends", default="mswc,openwakeword")
    p.add_argument("--jobs", type=int, default=4, help="espeak-ng processes at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    p.add_argument("--png", type=Path)
    p.add_argument("--real-negatives", type=Path, metavar="DIR",
                   help="real speech without the keywords (every WAV under DIR, e.g. Debian's "
                   "asterisk-core-sounds-en-wav prompts; never a reserved voice): its false "
                   "accepts per hour are reported beside the synthetic ones")
    p.add_argument("--from-json", type=Path, metavar="PATH",
                   help="only print the table and draw the PNG of an earlier run's --json")
    args = p.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        _summary(results)
        if args.png:
            _plot(results, args.png)
        return 0

    began = time.perf_counter()
    material = make_material(args, args.workdir)
    recordings = split_recordings(material)
    audio_s = float(material["bounds"].sum()) / 16000
    print(f"material: {len(material['pool'])} pool clips, {len(recordings)} recordings, "
          f"{audio_s / 60:.1f} min, {len(material['events'])} keyword events "
          f"({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    real, real_hours = [], 0.0
    if args.real_negatives:
        real = real_recordings(args.real_negatives)
        real_hours = sum(len(r) for r in real) / 16000 / 3600
        print(f"real negatives: {len(real)} recordings, {real_hours * 60:.1f} min from "
              f"{args.real_negatives}", file=sys.stderr)
    results = {"real_negative_minutes": real_hours * 60, "audio_minutes": audio_s / 60, "events": int(len(material["events"])),
               "keywords": [str(k) for k in material["keywords"]], "configs": [],
               "load_average_start": os.getloadavg()}
    for name in args.backends.split(","):
        backend = make_backend(name)
        pool_x = backend.embed(material["pool"])
        windows, wall, cpu = _cached_windows(args.workdir / f"windows-{name}-{backend.identity}.npz",
                                             backend, recordings)
        real_windows = None
        if real:
            real_windows, _, _ = _cached_windows(
                args.workdir / f"real-windows-{name}-{backend.identity}.npz", backend, real)
        n_windows = sum(len(w) for w in windows)
        print(f"{name}: {n_windows} windows embedded in {wall:.1f} s wall, {cpu:.1f} s CPU "
              f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        picks, labels, label_names = selections(material, pool_x, backend, args.seed)
        _save_example(args.workdir, backend, pool_x, labels, label_names, picks["tuned"],
                      recordings[0], material)
        for pick, rows in picks.items():
            train = SimpleNamespace(x=pool_x[rows], y=labels[rows], label_names=label_names)
            for kind in ("dataperf", "linear"):
                head = (DataPerfHead() if kind == "dataperf" else LinearHead()).fit(
                    train.x, train.y, len(label_names))
                t0, c0 = time.perf_counter(), _cpu()
                scores = [head.predict_proba(w)[:, 1:] for w in windows]
                head_wall, head_cpu = time.perf_counter() - t0, _cpu() - c0
                curve = det_curve(scores, material)
                if real_windows is not None:
                    real_fa = real_fa_curve([head.predict_proba(w)[:, 1:] for w in real_windows],
                                            real_hours)
                    curve["real_fa_per_hour"] = real_fa
                r05, t05 = recall_at(curve, 0.5)
                r1, t1 = recall_at(curve, 1.0)
                config = {"backend": name, "selection": pick, "head": kind,
                          "recall_at_0.5_fa_per_hour": r05, "threshold_0.5": t05,
                          "recall_at_1_fa_per_hour": r1, "threshold_1": t1,
                          "rtf_wall": (wall + head_wall) / audio_s, "rtf_cpu": (cpu + head_cpu) / audio_s,
                          "curve": curve}
                if real_windows is not None:
                    for limit in (0.5, 1.0):
                        r, t = recall_at({**curve, "fa_per_hour": curve["real_fa_per_hour"]}, limit)
                        config[f"recall_at_{limit:g}_real_fa_per_hour"] = r
                        config[f"real_threshold_{limit:g}"] = t
                    at = curve["thresholds"].index(t1) if t1 is not None else None
                    config["real_fa_per_hour_at_threshold_1"] = (
                        curve["real_fa_per_hour"][at] if at is not None else None)
                results["configs"].append(config)
                print(f"  {name:12s} {pick:9s} {kind:8s} recall@0.5FA/h {r05:.3f} (t={t05})  "
                      f"recall@1FA/h {r1:.3f} (t={t1})  RTF wall {config['rtf_wall']:.4f} "
                      f"CPU {config['rtf_cpu']:.4f}", file=sys.stderr)
        del backend
    results["load_average_end"] = os.getloadavg()
    results["seconds"] = time.perf_counter() - began
    _summary(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.png:
        _plot(results, args.png)
    return 0


def _save_example(workdir: Path, backend, pool_x, labels, label_names, rows, recording,
                  material) -> None:
    """The tuned pick as selection.main writes it, and the first recording as a WAV, so
    ``spot-keywords`` can be run on the benchmark's own material."""
    import soundfile as sf

    from protos.atomic import atomic_write

    with atomic_write(workdir / f"train_{backend.name}_tuned.npz", "wb") as f:
        np.savez(f, train_x=pool_x[rows], train_y=labels[rows],
                 train_ids=np.asarray([f"{material['pool_words'][i]}/{i:04d}" for i in rows]),
                 label_names=np.asarray(label_names), backend=np.asarray(backend.name),
                 model_id=np.asarray(backend.identity),
                 embedding_dim=np.asarray(pool_x.shape[1], np.int64))
    wav = workdir / "recording0.wav"
    if not wav.is_file():
        sf.write(wav, recording, 16000, subtype="PCM_16")
        events = material["events"][material["events"][:, 0] == 0]
        lines = ["keyword,start,end"] + [f"{material['keywords'][k]},{a / 16000:.3f},{b / 16000:.3f}"
                                         for _, a, b, k in events]
        (workdir / "recording0_events.csv").write_text("\n".join(lines) + "\n")


def _summary(results: dict) -> None:
    print(f"\n{results['audio_minutes']:.1f} min of audio, {results['events']} keyword events, "
          f"keywords {results['keywords']}")
    real = results.get("real_negative_minutes", 0) > 0
    extra = " recall @ 0.5 / 1 FA/h on real speech | real FA/h at the synthetic 1 FA/h threshold |" if real else ""
    print("| backend | selection | head | recall @ 0.5 FA/h | recall @ 1 FA/h | RTF wall | RTF CPU |" + extra)
    print("|---|---|---|---|---|---|---|" + ("---|---|" if real else ""))
    rows = {}
    for c in results["configs"]:
        rows.setdefault((c["backend"], c["selection"].split("-")[0], c["head"]), []).append(c)
    for (backend, selection, head), cs in rows.items():
        r05 = np.mean([c["recall_at_0.5_fa_per_hour"] for c in cs])
        r1 = np.mean([c["recall_at_1_fa_per_hour"] for c in cs])
        note = f" (mean of {len(cs)})" if len(cs) > 1 else ""
        print(f"| {backend} | {selection}{note} | {head} | {r05:.3f} | {r1:.3f} | "
              f"{np.mean([c['rtf_wall'] for c in cs]):.4f} | {np.mean([c['rtf_cpu'] for c in cs]):.4f} |"
              + (f" {np.mean([c['recall_at_0.5_real_fa_per_hour'] for c in cs]):.3f} / "
                 f"{np.mean([c['recall_at_1_real_fa_per_hour'] for c in cs]):.3f} | "
                 f"{np.mean([c['real_fa_per_hour_at_threshold_1'] or 0 for c in cs]):.1f} |"
                 if real else ""))


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    shown = [c for c in results["configs"]
             if (c["selection"], c["head"]) in {("tuned", "dataperf"), ("tuned", "linear"),
                                                ("crossval", "dataperf"), ("random-0", "dataperf")}]
    colours = plt.get_cmap("tab10")
    for i, c in enumerate(shown):
        # The operating envelope: the best recall at each false-accept rate or below
        # (what recall_at reports). Very low thresholds merge neighbouring events into
        # one detection, so raw (threshold, recall) points are not monotone.
        fa = np.asarray(c["curve"]["fa_per_hour"])
        recall = np.asarray(c["curve"]["recall"])
        order = np.lexsort((-recall, fa))
        fa, recall = fa[order], np.maximum.accumulate(recall[order])
        ax.step(np.maximum(fa, 0.1), recall, "-" if c["backend"] == "mswc" else "--",
                where="post", color=colours(i % 10),
                label=f"{c['backend']} / {c['selection']} / {c['head']}")
    ax.set_xscale("log")
    ax.set_xlabel("false accepts per hour (0 drawn at 0.1)")
    ax.set_ylabel("recall (best at this rate or below)")
    ax.axvline(0.5, color="grey", lw=0.5)
    ax.axvline(1.0, color="grey", lw=0.5)
    ax.set_title(f"spotter DET, {results['audio_minutes']:.0f} min synthetic speech, "
                 f"{results['events']} keyword events")
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
