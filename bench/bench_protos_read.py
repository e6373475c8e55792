"""Benchmark: read (and write) a samples.pb of N x D float32 embeddings.

Usage::

    python bench/bench_protos_read.py                  # 50,000 x 1024, as in issue 2
    python bench/bench_protos_read.py -n 5000 -d 256 --repeat 5
    python bench/bench_protos_read.py --compare-naive  # also time the per-sample protobuf path

Writes a random file into a temporary directory, then times ``protos.write_samples``
and ``protos.read_samples`` (best of ``--repeat``). ``--compare-naive`` also times the
straightforward alternative (parse with the generated class, convert each sample's
``repeated float`` to numpy), which is what the wire-view reader avoids.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from protos import SampleSet, read_samples, samples_pb2, write_samples
from protos.synthetic import random_sample_set


def make_sample_set(n: int, dim: int, seed: int = 0) -> SampleSet:
    """A pool of ``n`` random samples over 5 target keywords and 20 nontarget words."""
    return random_sample_set(
        n, dim, target_keywords=[f"target{i}" for i in range(5)],
        nontarget_keywords=[f"other{i}" for i in range(20)], seed=seed)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def naive_read(path: Path) -> np.ndarray:
    message = samples_pb2.Samples.FromString(path.read_bytes())
    return np.array([np.asarray(s.mswc_embedding_vector, dtype=np.float32)
                     for s in message.samples])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--num_samples", type=int, default=50_000)
    parser.add_argument("-d", "--dim", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    parser.add_argument("--compare-naive", action="store_true",
                        help="also time parsing with the generated class + per-sample conversion")
    args = parser.parse_args(argv)

    sample_set = make_sample_set(args.num_samples, args.dim)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.pb"
        write_s = best_of(args.repeat, lambda: write_samples(path, sample_set))
        size_mb = path.stat().st_size / 1e6
        read_s = best_of(args.repeat, lambda: read_samples(path))
        loaded = read_samples(path)
        assert np.array_equal(loaded.embeddings, sample_set.embeddings)
        print(f"{args.num_samples} x {args.dim} float32, {size_mb:.0f} MB file")
        print(f"write_samples: {write_s:.2f} s (best of {args.repeat})")
        print(f"read_samples:  {read_s:.2f} s (best of {args.repeat})")
        if args.compare_naive:
            naive_s = best_of(1, lambda: naive_read(path))
            print(f"naive per-sample protobuf read: {naive_s:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
