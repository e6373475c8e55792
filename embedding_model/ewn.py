"""EfficientWord-Net's word embedding (ResNet-50 + ArcFace, trained on real MSWC words).

A training-time extra (``pip install 'dataperf-speech[teacher-ewn]'``): the
``efficientword-net==1.0.5`` wheel (Apache-2.0) ships the ONNX model this module runs
with onnxruntime. It is a benchmark anchor and a distillation teacher; it is never
part of the shipped model or the base install. The package itself is never
imported (its ``__init__`` wants pyaudio and a microphone); only its ONNX file is read.

The network takes 1.5 s of 16 kHz audio as 64-band log mel-filterbank energies:
25 ms rectangular frames every 10 ms (149 frames), 512-point FFT power spectrum
divided by 512, 64 triangular filters evenly spaced on the HTK mel scale from 0 to
8000 Hz, natural log, no pre-emphasis; samples as float in [-1, 1]. Its output is a
unit-norm 2048-d vector. A 1-s clip is centred in 1.5 s of zeros. The ONNX graph has
a fixed batch of 1, so clips run one at a time (about 40 ms each on 2 cores).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

import numpy as np

from corpus.clip import SAMPLE_RATE
from protos.errors import EnvironmentProblem

DIM = 2048
WINDOW_SAMPLES = 24000  # 1.5 s
FRAME = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 64
N_FRAMES = 1 + math.ceil((WINDOW_SAMPLES - FRAME) / HOP)  # 149
MODEL_FILES = {
    "float": "slim_93%_accuracy_72.7390%.onnx",
    "int8": "slim_93%_accuracy_72.7390%_qint8.onnx",
}


class EfficientWordNetMissing(EnvironmentProblem):
    """The efficientword-net wheel or onnxruntime is not installed."""


def model_path(variant: str = "float") -> Path:
    """The ONNX file inside the installed ``efficientword-net`` wheel.

    Args:
        variant: ``"float"`` (about 86 MB) or ``"int8"`` (dynamic int8 weights).
    """
    if variant not in MODEL_FILES:
        raise ValueError(f"variant must be one of {sorted(MODEL_FILES)}, got {variant!r}")
    spec = importlib.util.find_spec("eff_word_net")
    if spec is None or not spec.submodule_search_locations:
        raise EfficientWordNetMissing(
            "EfficientWord-Net is not installed: pip install --no-deps 'efficientword-net==1.0.5' "
            "(or the 'teacher-ewn' extra); it needs onnxruntime")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "resnet_50_arc" / MODEL_FILES[variant]
    if not path.is_file():
        raise EfficientWordNetMissing(f"{path} is missing: reinstall efficientword-net==1.0.5")
    return path


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular filters on FFT bins, evenly spaced in HTK mel from 0 to sr/2.

    Returns:
        np.ndarray [shape=(n_mels, n_fft // 2 + 1)] float64.
    """
    to_mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731
    to_hz = lambda mel: 700.0 * (10.0 ** (mel / 2595.0) - 1.0)  # noqa: E731
    edges = np.floor((n_fft + 1) * to_hz(np.linspace(to_mel(0.0), to_mel(sr / 2), n_mels + 2)) / sr).astype(int)
    bank = np.zeros((n_mels, n_fft // 2 + 1))
    for j in range(n_mels):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        for i in range(lo, mid):
            bank[j, i] = (i - lo) / (mid - lo)
        for i in range(mid, hi):
            bank[j, i] = (hi - i) / (hi - mid)
    return bank


_BANK = None


def log_fbank(window: np.ndarray) -> np.ndarray:
    """EfficientWord-Net's input features of one 1.5-s window.

    Args:
        window: np.ndarray [shape=(24000,)] float in [-1, 1], 16 kHz.

    Returns:
        np.ndarray [shape=(149, 64)] float32.
    """
    global _BANK
    if _BANK is None:
        _BANK = mel_filterbank()
    y = np.asarray(window, dtype=np.float64)
    if y.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected a window of shape ({WINDOW_SAMPLES},), got {y.shape}")
    padded = np.zeros((N_FRAMES - 1) * HOP + FRAME)
    padded[:WINDOW_SAMPLES] = y
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::HOP][:N_FRAMES]
    power = np.square(np.abs(np.fft.rfft(frames, N_FFT))) / N_FFT
    energies = power @ _BANK.T
    energies = np.where(energies == 0.0, np.finfo(float).eps, energies)
    return np.log(energies).astype(np.float32)


class EfficientWordNetEmbedder:
    """Clips [N, 16000] float32 -> EfficientWord-Net embeddings [N, 2048] float32 (unit norm).

    Args:
        variant: ``"float"`` or ``"int8"``.
        threads: onnxruntime intra-op threads.
    """

    name = "efficientword-net"
    dim = DIM

    def __init__(self, variant: str = "float", threads: int = 2):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EfficientWordNetMissing("onnxruntime is not installed: pip install onnxruntime") from exc
        path = model_path(variant)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        digest = hashlib.sha256(path.read_bytes())
        digest.update(f"centered1.5s:{variant}".encode())
        self.identity = digest.hexdigest()[:16]
        self.variant = variant

    def embed_window(self, window: np.ndarray) -> np.ndarray:
        """One 1.5-s window [24000] -> [2048] float32; zeros for digital silence.

        The network normalises its output, which is 0/0 (NaN) for an all-zero input.
        """
        features = log_fbank(window)[None, None]
        out = self._session.run(None, {self._input: features})[0][0].astype(np.float32)
        return out if np.all(np.isfinite(out)) else np.zeros_like(out)

    def embed(self, clips: np.ndarray) -> np.ndarray:
        """Embed 1-s clips, each centred in 1.5 s of zeros.

        Args:
            clips: np.ndarray [shape=(N, 16000)] float32 in [-1, 1], 16 kHz.

        Returns:
            np.ndarray [shape=(N, 2048)] float32.
        """
        clips = np.asarray(clips, dtype=np.float32)
        if clips.ndim != 2 or clips.shape[1] > WINDOW_SAMPLES:
            raise ValueError(f"expected clips of shape [N, <= {WINDOW_SAMPLES}], got {clips.shape}")
        left = (WINDOW_SAMPLES - clips.shape[1]) // 2
        out = np.empty((clips.shape[0], DIM), dtype=np.float32)
        window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        for i, clip in enumerate(clips):
            window[left : left + clips.shape[1]] = clip
            out[i] = self.embed_window(window)
        return out


class EfficientWordNetBackend(EfficientWordNetEmbedder):
    """The ``efficientword-net`` embedding backend (2048-d; a training/benchmark extra)."""

    def __repr__(self) -> str:
        return f"EfficientWordNetBackend(variant={self.variant!r}, identity={self.identity!r})"


# --- teacher targets, cached per clip -----------------------------------------------------


def compute_targets(keys: list[str], load, out_dir: Path, embedder=None, chunk: int = 256,
                    progress: bool = True, name: str = "ewn") -> np.ndarray:
    """A teacher's vector for every clip, computed once and cached; resumable.

    Work is saved in chunks (``out_dir/{name}.chunks/{i}.npy``); rerunning after an
    interruption computes only the missing chunks. The finished array goes to
    ``out_dir/{name}.npy`` (float16) with ``out_dir/{name}.json`` (the teacher's
    identity and a digest of ``keys``); a later call with the same keys and teacher
    just loads it, with other keys or another teacher it recomputes.

    Args:
        keys: a stable id per clip, in the order of the result's rows.
        load: key -> clip np.ndarray [shape=(16000,)] float32, or None when the clip
            cannot be read (its row is zeros).
        out_dir: where the targets are cached.
        embedder: anything with ``embed``, ``dim`` and ``identity`` (default:
            :class:`EfficientWordNetEmbedder`).
        chunk: clips per saved chunk.
        name: file name stem (``"ewn"``, ``"oww"``).

    Returns:
        np.ndarray [shape=(len(keys), dim)] float16.
    """
    import json
    import shutil

    from protos.atomic import atomic_write, atomic_write_text

    embedder = embedder if embedder is not None else EfficientWordNetEmbedder()
    out_dir = Path(out_dir)
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    meta = {"teacher": type(embedder).__name__, "identity": embedder.identity, "keys": digest,
            "n": len(keys), "dim": int(embedder.dim)}
    final, meta_path = out_dir / f"{name}.npy", out_dir / f"{name}.json"
    if final.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()) == meta:
        return np.load(final)
    chunks = out_dir / f"{name}.chunks"
    stamp = chunks / "meta.json"
    if chunks.is_dir() and (not stamp.is_file() or json.loads(stamp.read_text()) != meta):
        shutil.rmtree(chunks)  # left by another key list or teacher
    chunks.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, json.dumps(meta))
    starts = range(0, len(keys), chunk)
    try:
        from tqdm import tqdm

        bar = tqdm(total=len(keys), desc=f"{name} targets", disable=not progress)
    except ImportError:  # pragma: no cover
        bar = None
    for i, start in enumerate(starts):
        path = chunks / f"{i:06d}.npy"
        part = keys[start : start + chunk]
        if not path.is_file():
            clips = [load(k) for k in part]
            ok = [j for j, c in enumerate(clips) if c is not None]
            vectors = np.zeros((len(part), embedder.dim), np.float16)
            if ok:
                vectors[ok] = embedder.embed(np.stack([clips[j] for j in ok])).astype(np.float16)
            with atomic_write(path, "wb") as f:
                np.save(f, vectors)
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    result = (np.concatenate([np.load(chunks / f"{i:06d}.npy") for i in range(len(starts))])
              if keys else np.zeros((0, embedder.dim), np.float16))
    with atomic_write(final, "wb") as f:
        np.save(f, result)
    atomic_write_text(meta_path, json.dumps(meta))
    shutil.rmtree(chunks)
    return result


def corpus_targets(corpus: Path, lang: str, out_dir: Path, embedder=None, progress: bool = True) -> np.ndarray:
    """EfficientWord-Net targets of every clip of ``lang`` in an MSWC-layout corpus.

    Rows follow ``corpus.layout.read_splits(corpus, lang)``; ``out_dir/{lang}/links.txt``
    lists the links in that order.

    Returns:
        np.ndarray [shape=(clips, 2048)] float16.
    """
    from corpus.audio import ClipError, load_clip
    from corpus.layout import clip_path, read_splits
    from protos.atomic import atomic_write_text

    links = [r.link for r in read_splits(corpus, lang)]
    target_dir = Path(out_dir) / lang
    target_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target_dir / "links.txt", "\n".join(links) + "\n")

    def load(link):
        try:
            return load_clip(clip_path(corpus, lang, link))
        except (ClipError, OSError):
            return None

    return compute_targets(links, load, target_dir, embedder, progress=progress)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from protos.errors import EXIT_STATUS_HELP, EnvironmentProblem, InputError

    p = argparse.ArgumentParser(
        prog="python -m embedding_model.ewn",
        description="Cache EfficientWord-Net teacher targets (2048-d, float16) per clip of an MSWC-layout "
        "corpus or of unlabelled windows; resumable (rerun the same command).",
        epilog=EXIT_STATUS_HELP,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", type=Path, help="corpus root (MSWC layout)")
    src.add_argument("--windows", type=Path, help="directory written by python -m embedding_model.unlabelled")
    p.add_argument("--langs", default=None, help="comma-separated languages (with --corpus)")
    p.add_argument("--out", type=Path, default=None, help="target directory (default: --windows itself)")
    p.add_argument("--variant", choices=sorted(MODEL_FILES), default="float")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        embedder = EfficientWordNetEmbedder(args.variant, threads=args.threads)
    except EfficientWordNetMissing as exc:
        raise EnvironmentProblem(str(exc)) from exc
    if args.windows is not None:
        from embedding_model.unlabelled import load_windows

        windows = load_windows(args.windows)
        keys = [str(i) for i in range(len(windows))]
        out = compute_targets(keys, lambda k: windows[int(k)], args.out or args.windows, embedder,
                              progress=not args.no_progress)
        print(f"{len(out)} EfficientWord-Net targets -> {(args.out or args.windows) / 'ewn.npy'}")
        return 0
    if not args.langs or args.out is None:
        raise InputError("--corpus needs --langs and --out")
    for lang in args.langs.split(","):
        out = corpus_targets(args.corpus, lang, args.out, embedder, progress=not args.no_progress)
        print(f"{lang}: {len(out)} EfficientWord-Net targets -> {args.out / lang / 'ewn.npy'}")
    return 0


if __name__ == "__main__":
    import sys

    from protos.errors import run_cli

    sys.exit(run_cli("embedding_model.ewn", main))
