"""What this machine lacks, said as one ``apt-get install`` line.

The Python packages come from ``make``; a few things come from the system: speech
engines for synthesis (``espeak-ng``, ``festival`` and an English festvox voice,
``flite``), ``sox`` for some tests, and libopus for the fast native Ogg/Opus path
(without it, clips decode through libsndfile, which the ``soundfile`` wheel bundles).
The demo needs none of the engines, only a way to decode its Ogg/Opus clips
(:func:`corpus_requirements`, which the demo checks before it starts)::

    python -m dataset_builder.system_check                  # what the tests need
    python -m dataset_builder.system_check --corpus ROOT    # can this corpus be decoded?

Each exits 3 and prints the ``apt-get install`` line when something is missing.

Standard library only at import time, so it runs before anything heavy is loaded.
"""

from __future__ import annotations

import argparse
import ctypes.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from protos.errors import EXIT_ENVIRONMENT, EXIT_STATUS_HELP, EnvironmentProblem, run_cli


@dataclass(frozen=True)
class Requirement:
    """One system package and how to tell whether the machine has what it gives."""

    package: str
    what: str
    present: Callable[[], bool]


def _has_libopus() -> bool:
    # The lookup of corpus._opus.libopus, repeated here because that module needs numpy
    # and this one runs on the system Python before anything is installed.
    for name in ("libopus.so.0", ctypes.util.find_library("opus")):
        if name:
            try:
                ctypes.CDLL(name)
                return True
            except OSError:
                continue
    return False


def _has_festival_voice(pattern: str) -> Callable[[], bool]:
    """A check for a festvox voice directory (``language/voice``) in festival's voices tree."""
    roots = (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices"))
    return lambda: any(any(r.glob(pattern)) for r in roots if r.is_dir())


def _decodes_a_clip_of(corpus: Path) -> Callable[[], bool]:
    """A check that one Ogg/Opus clip of ``corpus`` decodes (native libopus or libsndfile)."""

    def check() -> bool:
        from corpus.audio import load_clip

        clip = next(iter(sorted(Path(corpus).glob("*/clips/*/*.opus"))), None)
        if clip is None:
            return True
        try:
            load_clip(clip)
        except Exception:  # noqa: BLE001 - any failure means "cannot decode here"
            return False
        return True

    return check


TEST_REQUIREMENTS = (
    Requirement("espeak-ng", "speech synthesis (synthetic corpora in the tests)", lambda: shutil.which("espeak-ng") is not None),
    Requirement("festival", "festival speech synthesis", lambda: shutil.which("festival") is not None),
    Requirement("festvox-kallpc16k", "festival's English voice", _has_festival_voice("english/kal_diphone*")),
    Requirement("festvox-itapc16k", "festival's Italian voice (text-encoding tests)", _has_festival_voice("italian/pc_diphone*")),
    Requirement("flite", "flite speech synthesis", lambda: shutil.which("flite") is not None),
    Requirement("sox", "audio conversion in tests", lambda: shutil.which("sox") is not None),
    Requirement("libopus0", "native Ogg/Opus encode/decode", _has_libopus),
)


def corpus_requirements(corpus: str | Path) -> tuple[Requirement, ...]:
    """What reading the MSWC-layout ``corpus`` needs: a working Ogg/Opus decoder."""
    return (Requirement("libopus0", f"decoding the Ogg/Opus clips of {corpus}", _decodes_a_clip_of(Path(corpus))),)


def missing(requirements) -> list[Requirement]:
    """The requirements this machine does not meet, in order."""
    return [r for r in requirements if not r.present()]


def install_line(requirements) -> str:
    """``apt-get install -y PKG ...`` for ``requirements`` (deduplicated, in order)."""
    packages = list(dict.fromkeys(r.package for r in requirements))
    return "apt-get install -y " + " ".join(packages)


def require(requirements, who: str) -> None:
    """Raise :class:`EnvironmentProblem` naming the install line if anything is missing."""
    lacking = missing(requirements)
    if lacking:
        needs = ", ".join(f"{r.package} ({r.what})" for r in lacking)
        raise EnvironmentProblem(f"{who} needs {needs}: run `{install_line(lacking)}` (as root) and retry")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_builder.system_check",
        description="Say which system packages the tests (or reading a corpus) need and this "
                    "machine lacks; the last line is the apt-get command that installs them.",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument("--corpus", type=Path, default=None,
                        help="check instead that this MSWC-layout corpus's clips decode here")
    args = parser.parse_args(argv)
    requirements = corpus_requirements(args.corpus) if args.corpus else TEST_REQUIREMENTS
    lacking = missing(requirements)
    if not lacking:
        print("system check: nothing missing")
        return 0
    for r in lacking:
        print(f"missing: {r.package} ({r.what})")
    print(install_line(lacking))
    return EXIT_ENVIRONMENT


if __name__ == "__main__":
    sys.exit(run_cli("system_check", main))
