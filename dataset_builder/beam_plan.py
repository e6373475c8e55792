"""The Beam build's job description: the plan file, the output layout, the workers' backend.

What the launcher decides once and every worker reads: ``plan.jsonl`` (one line
per chosen clip), which file and shard each clip goes to (:class:`OutputLayout`)
and how a worker recreates the launcher's backend (:class:`BackendSpec`).
Importing this module does not import Apache Beam.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from typing import Sequence

import numpy as np

from dataset_builder.beam_io import localize, read_bytes, write_bytes
from dataset_builder.protocol import ChosenClip

#: Namespace of the pipeline's Beam metrics counters.
COUNTER_NAMESPACE = "build-dataset"
#: Clips per decode task (as the local build's chunk size).
DECODE_CHUNK = 32


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """Where each clip of the experiment goes: file (role) and shard.

    Attributes:
        n_samples: clips planned for samples.pb (indices ``[0, n_samples)``).
        n_eval: clips planned for eval.pb (indices ``[n_samples, n_samples + n_eval)``).
        shards: shards per file; 1 writes plain samples.pb / eval.pb.
    """

    n_samples: int
    n_eval: int
    shards: int = 1

    def role_of(self, index: int) -> str:
        return "samples" if index < self.n_samples else "eval"

    def key(self, index: int) -> tuple[str, int]:
        """``(role, shard)``: contiguous index ranges, so shards concatenate in dataset order."""
        if index < self.n_samples:
            return "samples", index * self.shards // self.n_samples
        local = index - self.n_samples
        return "eval", local * self.shards // self.n_eval

    def planned(self) -> dict[tuple[str, int], int]:
        """Planned clips per ``(role, shard)``."""
        counts = {}
        for role, n in (("samples", self.n_samples), ("eval", self.n_eval)):
            # The same arithmetic as key(), so the two can never disagree.
            per_shard = np.bincount(np.arange(n, dtype=np.int64) * self.shards // max(n, 1),
                                    minlength=self.shards)
            counts.update({(role, s): int(c) for s, c in enumerate(per_shard) if c})
        return counts


def clip_to_json(index: int, clip: ChosenClip) -> str:
    """One plan line: the clip and its index in the experiment."""
    # ASCII escapes: no word can contain a character a line reader splits on.
    return json.dumps({"i": index, "link": clip.link, "word": clip.word, "split": clip.split,
                       "speaker": clip.speaker, "type": clip.sample_type}, ensure_ascii=True)


def clip_from_json(line: str) -> tuple[int, ChosenClip]:
    """``(index, clip)`` of one plan line."""
    d = json.loads(line)
    return int(d["i"]), ChosenClip(d["link"], d["word"], d["split"], d["speaker"], int(d["type"]))


def write_plan(path: str, clips: Sequence[ChosenClip]) -> None:
    """The experiment's clips, one JSON line each (so no runner ships them inside the job graph)."""
    write_bytes(path, "".join(clip_to_json(i, c) + "\n" for i, c in enumerate(clips)).encode("utf-8"))


def read_plan(path: str) -> list[tuple[int, ChosenClip]]:
    """Every ``(index, clip)`` of a plan file, in file order."""
    return [clip_from_json(line) for line in read_bytes(path).decode("ascii").split("\n") if line]


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """How a worker creates the launcher's backend, and what it must turn out to be.

    Attributes:
        name: registry name for ``embedding_model.backends.get_backend``.
        options: its keyword options (a remote ``model`` is copied locally first).
        module: module of the backend's class, imported first so backends registered
            at import time (plugins, tests) exist on the worker too.
        identity, dim: what the launcher's backend reported; a worker whose backend
            differs (another model file) stops instead of mixing embeddings.
    """

    name: str
    options: dict
    module: str
    identity: str
    dim: int

    @classmethod
    def of(cls, backend, name: str, options: dict) -> "BackendSpec":
        return cls(name, dict(options), type(backend).__module__, backend.identity, int(backend.dim))

    def load(self):
        from embedding_model.backends import get_backend

        importlib.import_module(self.module)
        options = dict(self.options)
        if isinstance(options.get("model"), str):
            options["model"] = localize(options["model"])
        backend = get_backend(self.name, **options)
        if backend.identity != self.identity or int(backend.dim) != self.dim:
            raise RuntimeError(
                f"worker's {self.name!r} backend is {backend.identity} ({backend.dim}-d), the launcher's "
                f"is {self.identity} ({self.dim}-d): ship the same model to the workers")
        return backend
