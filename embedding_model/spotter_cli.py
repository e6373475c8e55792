"""``spot-keywords``: find a coreset's keywords in recordings or in a live stream.

    spot-keywords --train-file train.npz meeting.opus call.wav --out detections.csv
    arecord -r 16000 -f S16_LE -c 1 | spot-keywords --train-file train.npz --stdin

See :mod:`embedding_model.spotter` for the pipeline and ``docs/SPOTTER.md`` for numbers.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

from protos.errors import EXIT_STATUS_HELP, InputError, run_cli

PROG = "spot-keywords"
FIELDS = ("file", "keyword", "start", "end", "score")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Detect the keywords of a train.npz (a DataPerf coreset) in recordings of "
        "any length, rate and format, or in raw 16-bit PCM on standard input. A 1-s window "
        "slides at --hop-ms, each window is embedded with the backend the pool was built "
        "with, a head fitted on the train.npz rows scores it, scores are smoothed and peaks "
        "picked with a refractory period. Detections: file, keyword, start, end (seconds), "
        "score.",
        epilog=EXIT_STATUS_HELP,
    )
    p.add_argument("recordings", nargs="*", type=Path, metavar="RECORDING",
                   help="audio files (WAV, FLAC, Ogg/Opus, Ogg/Vorbis, MP3; any rate, any "
                   "channels: mixed to mono, resampled to 16 kHz)")
    p.add_argument("--train-file", required=True, type=Path, metavar="PATH",
                   help="train.npz written by python -m selection.main")
    p.add_argument("--stdin", action="store_true",
                   help="read raw signed 16-bit little-endian mono PCM from standard input and "
                   "print each detection as it happens")
    p.add_argument("--rate", type=int, default=16000, metavar="HZ",
                   help="sample rate of the --stdin stream (default 16000)")
    be = p.add_argument_group("embedding backend (must be the one the pool was built with)")
    be.add_argument("--backend", metavar="NAME",
                    help="embedding backend (default: the one recorded in the train file)")
    be.add_argument("--model", metavar="PATH|ID",
                    help="mswc: model directory or .keras file (default: the shipped model); "
                    "wav2vec2: model directory or hub id")
    be.add_argument("--batch-size", type=int, default=128, metavar="N",
                    help="windows per embedding call on files (default 128)")
    hd = p.add_argument_group("detection")
    hd.add_argument("--head", choices=("dataperf", "linear"), default="dataperf",
                    help="dataperf: DataPerf's SVC + LogisticRegression vote, one per DataPerf "
                    "seed, averaged (default); linear: a small softmax head on the same rows")
    hd.add_argument("--seeds", type=parse_seeds, metavar="S,S,...",
                    help="dataperf head: classifier seeds whose posteriors are averaged "
                    "(default: DataPerf's ten scoring seeds)")
    hd.add_argument("--hop-ms", type=float, default=100.0, metavar="MS",
                    help="window hop in milliseconds (default 100)")
    hd.add_argument("--smooth", type=int, default=3, metavar="N",
                    help="windows in the causal moving average of the scores (default 3)")
    hd.add_argument("--threshold", type=float, default=0.5,
                    help="smoothed keyword score that triggers a detection (default 0.5)")
    hd.add_argument("--refractory", type=float, default=1.0, metavar="S",
                    help="seconds after a detection before the same keyword can fire again "
                    "(default 1.0)")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, metavar="PATH",
                     help="write detections here (written atomically; default: standard output)")
    out.add_argument("--format", choices=("csv", "json"),
                     help="csv or json (default: from --out's extension, else csv)")
    out.add_argument("--quiet", "-q", action="store_true",
                     help="no progress bar and no real-time factor on stderr")
    return p


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"5,69"`` -> (5, 69) for ``--seeds``."""
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def _backend_options(args: argparse.Namespace, backend: str) -> dict:
    options: dict = {}
    if args.model is not None:
        options["model"] = args.model
    if backend == "mswc":
        # The mswc backend pads each call to its batch: a live stream embeds a window at a time.
        options["batch_size"] = 1 if args.stdin else args.batch_size
    return options


def _check_args(args: argparse.Namespace) -> None:
    if args.stdin and args.recordings:
        raise InputError("give recordings or --stdin, not both")
    if not args.stdin and not args.recordings:
        raise InputError("no recordings given: name audio files, or read a stream with --stdin")
    if args.hop_ms <= 0 or args.hop_ms > 1000:
        raise InputError(f"--hop-ms must be in (0, 1000], got {args.hop_ms}")
    if args.smooth < 1:
        raise InputError(f"--smooth must be at least 1, got {args.smooth}")
    if not 0 < args.threshold <= 1:
        raise InputError(f"--threshold must be in (0, 1], got {args.threshold}")
    if args.refractory < 0:
        raise InputError(f"--refractory must be >= 0, got {args.refractory}")
    if args.rate < 1000 or args.rate > 384000:
        raise InputError(f"--rate must be a sample rate in Hz (1000..384000), got {args.rate}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    for path in args.recordings:
        if not path.is_file():
            raise InputError(f"{path}: no such recording")


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    if args.out is not None and args.out.suffix.lower() == ".json":
        return "json"
    return "csv"


def _csv_row(detection) -> list:
    return [detection.source, detection.keyword, f"{detection.start:.3f}", f"{detection.end:.3f}",
            f"{detection.score:.4f}"]


def build_spotter(args: argparse.Namespace):
    """train file -> (spotter, train set); refuses a backend mismatch."""
    from embedding_model.spotter import (Spotter, check_backend, fit_head, load_train_set,
                                         make_backend, train_label_names)

    train = load_train_set(args.train_file)
    name = args.backend or train.backend
    if not name:
        raise InputError(f"{args.train_file}: records no embedding backend; name it with --backend")
    if train.backend and name != train.backend:
        raise InputError(f"embedding backends differ: {args.train_file} was embedded with "
                         f"{train.backend!r}, --backend asks for {name!r}")
    backend = make_backend(name, _backend_options(args, name))
    check_backend(train, backend, str(args.train_file))
    head = fit_head(train, args.head, args.seeds)
    spotter = Spotter(backend, head, train_label_names(train),
                      hop=max(1, round(args.hop_ms * 16)), smooth=args.smooth,
                      threshold=args.threshold, refractory=args.refractory,
                      batch_size=args.batch_size)
    return spotter, train


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, _main, argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    fmt = _format(args)
    spotter, train = build_spotter(args)
    if args.stdin:
        return _run_stream(args, spotter, fmt)
    return _run_files(args, spotter, train, fmt)


def _run_stream(args: argparse.Namespace, spotter, fmt: str) -> int:
    from embedding_model.spotter import pcm16_chunks

    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(FIELDS)
        out.flush()
    samples = 0
    began = time.perf_counter()

    def counted(chunks):
        nonlocal samples
        for chunk in chunks:
            samples += len(chunk)
            yield chunk

    for detection in spotter.stream(counted(pcm16_chunks(sys.stdin.buffer, rate=args.rate)), "-"):
        if fmt == "csv":
            writer.writerow(_csv_row(detection))
        else:
            out.write(json.dumps({"file": "-", **_fields(detection)}) + "\n")
        out.flush()
    _print_rtf(args, samples / 16000, time.perf_counter() - began)
    return 0


def _fields(detection) -> dict:
    return {"keyword": detection.keyword, "start": detection.start, "end": detection.end,
            "score": detection.score}


def _run_files(args: argparse.Namespace, spotter, train, fmt: str) -> int:
    from tqdm import tqdm

    from embedding_model.spotter import load_recording, window_count

    detections = []
    audio_seconds = 0.0
    began = time.perf_counter()
    for path in args.recordings:
        audio = load_recording(path)
        audio_seconds += len(audio) / 16000
        total = window_count(len(audio), spotter.hop)
        with tqdm(total=total, desc=path.name, unit="win", file=sys.stderr,
                  disable=True if args.quiet else None, leave=False) as bar:
            detections.extend(spotter.detect(audio, str(path), progress=bar.update))
    elapsed = time.perf_counter() - began

    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(FIELDS)
        writer.writerows(_csv_row(d) for d in detections)
        text = buf.getvalue()
    else:
        text = json.dumps({
            "detections": [{"file": d.source, **_fields(d)} for d in detections],
            "train_file": str(args.train_file),
            "backend": spotter.backend.name,
            "model_id": spotter.backend.identity,
            "head": spotter.head.kind,
            "keywords": spotter.keywords,
            "hop_ms": args.hop_ms, "smooth": args.smooth, "threshold": args.threshold,
            "refractory": args.refractory,
            "audio_seconds": round(audio_seconds, 3),
        }, indent=1, ensure_ascii=False) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        from protos.atomic import atomic_write_text

        atomic_write_text(args.out, text)
        if not args.quiet:
            print(f"wrote {args.out}: {len(detections)} detection(s)", file=sys.stderr)
    _print_rtf(args, audio_seconds, elapsed)
    return 0


def _print_rtf(args: argparse.Namespace, audio_seconds: float, elapsed: float) -> None:
    if args.quiet:
        return
    rtf = elapsed / audio_seconds if audio_seconds > 0 else float("nan")
    print(f"real-time factor {rtf:.4f} ({audio_seconds:.1f} s of audio in {elapsed:.1f} s)",
          file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
