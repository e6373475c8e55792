"""Regenerate ``samples_pb2.py`` / ``samples_pb2.pyi`` from ``samples.proto``.

Usage::

    python -m protos.generate           # rewrite the checked-in files
    python -m protos.generate --check   # exit 1 if they differ from a fresh generation

Uses the ``protoc`` bundled in ``grpcio-tools`` (pinned in the ``test`` extra), not
whatever ``protoc`` the machine has, so the output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from protos.atomic import atomic_write_bytes

PROTO_DIR = Path(__file__).resolve().parent
PROTO_FILE = PROTO_DIR / "samples.proto"
GENERATED_NAMES = ("samples_pb2.py", "samples_pb2.pyi")


def generate(out_dir: str | Path) -> list[Path]:
    """Compile ``samples.proto`` into ``out_dir``.

    Args:
        out_dir: an existing directory; the generated files are written there.

    Returns:
        The paths of the generated files (``samples_pb2.py``, ``samples_pb2.pyi``).

    Raises:
        RuntimeError: grpcio-tools is not installed, or protoc failed.
    """
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise RuntimeError(
            "protos.generate needs grpcio-tools: pip install -c constraints.txt grpcio-tools"
        ) from exc
    out_dir = Path(out_dir)
    args = [
        "protoc",
        f"--proto_path={PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        PROTO_FILE.name,
    ]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc failed (exit {status}) on {PROTO_FILE}")
    return [out_dir / name for name in GENERATED_NAMES]


def generated_bytes() -> dict[str, bytes]:
    """Generate into a temporary directory; return ``{file name: content}``."""
    with tempfile.TemporaryDirectory() as tmp:
        return {path.name: path.read_bytes() for path in generate(tmp)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m protos.generate",
        description="Regenerate protos/samples_pb2.py and .pyi from protos/samples.proto "
        "with grpcio-tools' bundled protoc.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the checked-in files differ from a fresh generation",
    )
    args = parser.parse_args(argv)
    try:
        fresh = generated_bytes()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stale = [name for name, data in fresh.items() if not (PROTO_DIR / name).is_file()
             or (PROTO_DIR / name).read_bytes() != data]
    if args.check:
        if stale:
            print(f"error: out of date: {', '.join(stale)}; run python -m protos.generate",
                  file=sys.stderr)
            return 1
        print("generated code is up to date")
        return 0
    for name, data in fresh.items():
        atomic_write_bytes(PROTO_DIR / name, data)
    print(f"wrote {', '.join(fresh)} in {PROTO_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
