"""Feature cache: K seeded channel-augmented log-mel views per clip, plus teacher targets.

On 2 cores, decoding Opus and simulating channels costs far more than a training
step, so every training clip is decoded once, passed through ``views`` seeded
channel chains (view 0 is the clean channel: shift and gain only) and stored as
log-mel float16 [49, 40] (3.9 kB per view). openWakeWord's embedding of the clean
clip (the distillation target) is computed in the same pass. Epochs then only read
memory and apply SpecAugment.

One shard per language under ``CACHE/{key}/{lang}/``::

    features.npy  [n, views, 49, 40] float16
    teacher.npy   [n, 96] float32 (zeros where ``ok`` is false or no teacher)
    index.json    {"links": [...], "ok": [...], "key": ..., ...}

``key`` hashes the clip list and every option that changes the numbers, so a shard
is reused exactly when it would be rebuilt identically. Shards are pure functions of
(corpus, clip list, options): they could equally be produced by a Beam pipeline.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np

from protos.atomic import atomic_write, atomic_write_text

AUGMENT_VERSION = 1
_WORKER: dict = {}


def shard_key(lang: str, links: list[str], views: int, seed: int, teacher: str | None, corpus: str) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([AUGMENT_VERSION, corpus, lang, views, seed, teacher]).encode())
    for link in links:
        digest.update(link.encode() + b"\n")
    return digest.hexdigest()[:16]


def _init_worker(root: str, lang: str, views: int, seed: int, rirs, babble, teacher: str | None) -> None:
    from embedding_model.augment import ChannelAugmenter

    _WORKER.update(root=Path(root), lang=lang, views=views, seed=seed)
    _WORKER["augmenter"] = ChannelAugmenter(rirs=rirs, babble=babble)
    _WORKER["teacher"] = None
    if teacher:
        from embedding_model.oww import OpenWakeWordEmbedder

        context, step = teacher.split(":")
        _WORKER["teacher"] = OpenWakeWordEmbedder(context=context, window_step=int(step), threads=1)


def _process(task: tuple[int, list[tuple[int, str]]]):
    from corpus.audio import ClipError, load_clip
    from corpus.layout import clip_path

    from embedding_model.frontend import log_mel_numpy

    _, items = task
    w = _WORKER
    idx, clean, views, failed = [], [], [], []
    for i, link in items:
        try:
            clip = load_clip(clip_path(w["root"], w["lang"], link))
        except (ClipError, OSError) as exc:
            failed.append((link, str(exc)))
            continue
        rng = np.random.default_rng([w["seed"], _stable_int(w["lang"]), i])
        per_clip = []
        for v in range(w["views"]):
            if v == 0:
                # The clean channel still gets a level change, like any recording.
                per_clip.append(np.clip(clip * 10 ** (rng.uniform(-20.0, 3.0) / 20), -1, 1).astype(np.float32))
            else:
                per_clip.append(w["augmenter"](clip, rng))
        idx.append(i)
        clean.append(clip)
        views.append(np.stack(per_clip))
    if not idx:
        return idx, None, None, failed
    views = np.stack(views)  # [b, V, 16000]
    feats = log_mel_numpy(views.reshape(-1, views.shape[-1])).reshape(*views.shape[:2], 49, 40)
    teacher = w["teacher"].embed(np.stack(clean)) if w["teacher"] is not None else None
    return idx, feats.astype(np.float16), teacher, failed


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def build_shard(
    root: str | Path,
    lang: str,
    links: list[str],
    out_root: str | Path,
    views: int = 4,
    seed: int = 0,
    teacher: str | None = "centered2s:16",
    workers: int = 2,
    rirs: list | None = None,
    progress: bool = True,
) -> Path:
    """Build (or reuse) the cache shard of one language.

    Args:
        root: corpus root.
        lang: language code.
        links: clip links (``word/clip.opus``) in the order the shard stores them.
        out_root: cache directory; the shard goes to ``out_root/{key}/{lang}``.
        views: log-mel views per clip (view 0 clean, the rest augmented).
        seed: augmentation seed.
        teacher: ``"context:window_step"`` for openWakeWord targets, or None.
        workers: processes.
        rirs: room impulse responses (default: a bank of 64 seeded rooms).

    Returns:
        The shard directory.
    """
    from embedding_model.augment import make_rir_bank

    root = Path(root)
    key = shard_key(lang, links, views, seed, teacher, str(root.resolve()))
    shard = Path(out_root) / key / lang
    if (shard / "index.json").is_file():
        return shard
    shard.mkdir(parents=True, exist_ok=True)
    if rirs is None:
        rirs = make_rir_bank(64, seed=seed)
    babble = _babble_bank(root, lang, links, seed)
    n = len(links)
    feats_path = shard / "features.npy.partial"
    feats = np.lib.format.open_memmap(feats_path, mode="w+", dtype=np.float16, shape=(n, views, 49, 40))
    teacher_arr = np.zeros((n, 96), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    chunk = 32
    tasks = [(s, list(enumerate(links))[s : s + chunk]) for s in range(0, n, chunk)]
    failures: list[tuple[str, str]] = []
    ctx = mp.get_context("fork")
    bar = _bar(n, f"cache {lang}", progress)
    with ctx.Pool(workers, initializer=_init_worker,
                  initargs=(str(root), lang, views, seed, rirs, babble, teacher)) as pool:
        for idx, f, t, failed in pool.imap_unordered(_process, tasks):
            failures.extend(failed)
            if idx:
                feats[idx] = f
                ok[idx] = True
                if t is not None:
                    teacher_arr[idx] = t
            bar.update(len(idx) + len(failed))
    bar.close()
    feats.flush()
    del feats
    os.replace(feats_path, shard / "features.npy")
    with atomic_write(shard / "teacher.npy", "wb") as f:
        np.save(f, teacher_arr)
    index = {
        "key": key, "lang": lang, "links": links, "ok": ok.tolist(), "views": views, "seed": seed,
        "teacher": teacher, "failures": failures[:50], "n_failed": len(failures),
    }
    atomic_write_text(shard / "index.json", json.dumps(index, ensure_ascii=False))
    return shard


def _babble_bank(root: Path, lang: str, links: list[str], seed: int, n: int = 96) -> np.ndarray | None:
    """Clean clips of other words of the same language, mixed in as babble noise."""
    from corpus.audio import ClipError, load_clip
    from corpus.layout import clip_path

    if len(links) < 8:
        return None
    rng = np.random.default_rng([seed, 99])
    picks = rng.choice(len(links), size=min(n, len(links)), replace=False)
    clips = []
    for i in picks:
        try:
            clips.append(load_clip(clip_path(root, lang, links[i])))
        except (ClipError, OSError):
            continue
    return np.stack(clips) if clips else None


def load_shard(shard: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(features [n, V, 49, 40] float16 memmap, teacher [n, 96] float32, index dict)."""
    shard = Path(shard)
    index = json.loads((shard / "index.json").read_text(encoding="utf-8"))
    feats = np.load(shard / "features.npy", mmap_mode="r")
    teacher = np.load(shard / "teacher.npy")
    return feats, teacher, index


class _NullBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="clip", dynamic_ncols=True)
