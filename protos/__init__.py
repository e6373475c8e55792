"""samples.pb / eval.pb: the protocol-buffer format and its numpy API.

Pure numpy + protobuf (no TensorFlow), at the bottom of the import graph::

    from protos import read_samples, write_samples, SampleSet, DatasetMetadata
    pool = read_samples("samples.pb")   # pool.embeddings: [N, D] float32
    pool = read_samples("out/samples-*.pb")   # a sharded pool, as one dataset

The names below are loaded on first use, so ``import protos.atomic`` (standard
library only) does not pull in protobuf or numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "NONTARGET",
    "NONTARGET_LABEL",
    "SEED_TARGET_LABEL",
    "TARGET",
    "DatasetMetadata",
    "SampleSet",
    "SamplesFormatError",
    "iter_samples",
    "max_samples_per_file",
    "read_samples",
    "serialize_samples",
    "write_samples",
    "write_sharded_samples",
]

if TYPE_CHECKING:
    from protos.samples_io import (  # noqa: F401
        DEFAULT_SAMPLE_RATE,
        NONTARGET,
        NONTARGET_LABEL,
        SEED_TARGET_LABEL,
        TARGET,
        DatasetMetadata,
        SampleSet,
        SamplesFormatError,
        iter_samples,
        max_samples_per_file,
        read_samples,
        serialize_samples,
        write_samples,
        write_sharded_samples,
    )


def __getattr__(name: str):
    if name in __all__:
        value = getattr(importlib.import_module("protos.samples_io"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'protos' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
