"""samples.pb / eval.pb: the protocol-buffer format and its numpy API.

Pure numpy + protobuf (no TensorFlow), at the bottom of the import graph::

    from protos import read_samples, write_samples, SampleSet, DatasetMetadata
    pool = read_samples("samples.pb")   # pool.embeddings: [N, D] float32
    pool = read_samples("out/samples-*.pb")   # a sharded pool, as one dataset

Also here: DataPerf's scoring rules (``protos.dataperf``: ``make_classifier``,
``DATAPERF_SEEDS``, ``macro_f1``; scikit-learn) and the train.npz file
(``protos.train_file``: ``TrainSet``, ``write_train_file``, ``load_train_file``).

The names below are loaded on first use, so ``import protos.atomic`` (standard
library only) does not pull in protobuf or numpy, and reading samples.pb does not
load scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_SAMPLES_IO = (
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
)
_DATAPERF = ("DATAPERF_SEEDS", "fit_classifier", "macro_f1", "make_classifier")
_TRAIN_FILE = ("TRAIN_FILE_NAME", "TrainFileError", "TrainSet", "load_train_file",
               "write_train_file")
#: name -> the module that defines it
_HOME = {**{n: "protos.samples_io" for n in _SAMPLES_IO},
         **{n: "protos.dataperf" for n in _DATAPERF},
         **{n: "protos.train_file" for n in _TRAIN_FILE}}
__all__ = sorted(_HOME)

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
    from protos.dataperf import DATAPERF_SEEDS, fit_classifier, macro_f1, make_classifier  # noqa: F401
    from protos.train_file import (  # noqa: F401
        TRAIN_FILE_NAME,
        TrainFileError,
        TrainSet,
        load_train_file,
        write_train_file,
    )


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'protos' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
