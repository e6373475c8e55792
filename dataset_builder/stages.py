"""The build's stages as pure functions over a batch of clips.

Each stage takes plain values and returns plain values, with no global state, so
the same functions serve the local runner (:mod:`dataset_builder.build`, which
runs :func:`decode_batch` in worker processes) and a distributed one (an Apache
Beam ``Map``/``ParDo`` per stage)::

    design_experiment(records, params)            # protocol: launcher, once
      -> decode_batch([(index, audio source)])    # read + decode + normalise
      -> embed_batch(backend, clips)              # batched embedding
      -> assemble(clips, embeddings, metadata)    # -> SampleSet -> write

This module is imported by the decoding workers, so it must stay free of
TensorFlow and of anything heavy: numpy and :mod:`corpus.audio` only.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple, Sequence

import numpy as np

#: Reason recorded for a clip its source does not have.
MISSING = "missing"
#: Reason recorded for a clip whose decoded samples are not all finite.
NON_FINITE = "non-finite"
#: Note recorded for a clip whose peak was above 1 and was scaled down to 1.
RESCALED = "rescaled"


class DecodedBatch(NamedTuple):
    """Result of :func:`decode_batch`.

    Attributes:
        indices: np.ndarray [shape=(n,)] int64, positions (in the experiment's clip
            list) of the clips that decoded.
        clips: np.ndarray [shape=(n, 16000)] float32, those clips normalised.
        failures: ``(index, reason, detail)`` for each clip that did not decode or
            broke the clip contract; reason is ``corpus.audio.ClipError.reason``,
            ``"missing"`` or ``"non-finite"``.
        seconds: time spent in this call.
        notes: ``(index, note, detail)`` for clips that were used after a repair
            (``"rescaled"``: peak above 1, scaled to 1).
    """

    indices: np.ndarray
    clips: np.ndarray
    failures: list[tuple[int, str, str]]
    seconds: float
    notes: list[tuple[int, str, str]] = []


def check_clip(clip: np.ndarray, where: str) -> tuple[np.ndarray, str | None]:
    """The clip contract at the decode boundary: finite samples within [-1, 1].

    Args:
        clip: np.ndarray [shape=(16000,)] float32, a decoded clip.
        where: the clip's origin, for messages.

    Returns:
        ``(clip, note)``: the clip unchanged and None, or, when its peak is above 1,
        the clip scaled to peak 1 and a note saying by how much.

    Raises:
        corpus.clip.ClipContractError: the clip breaks the clip contract (NaN or
            infinite samples, wrong shape); the message names ``where``.
    """
    from corpus.clip import check_clips

    clip = check_clips(clip[None, :], where)[0]  # the one validator: shape, dtype, finite
    peak = float(np.max(np.abs(clip))) if clip.size else 0.0
    if peak > 1.0:
        return (clip / np.float32(peak)).astype(np.float32), f"{where}: peak {peak:.6g} scaled to 1"
    return clip, None


def decode_batch(jobs: Sequence[tuple[int, "str | bytes | None"]]) -> DecodedBatch:
    """Read, decode and normalise a batch of clips (the per-clip stage).

    Args:
        jobs: ``(index, source)`` pairs; ``source`` is a path, the encoded bytes,
            or None (the clip is missing from its source).

    Returns:
        The decoded clips and the failures; never raises for a bad clip.
    """
    from corpus.audio import CLIP_SAMPLES, ClipError, load_clip

    start = time.perf_counter()
    indices: list[int] = []
    clips = np.empty((len(jobs), CLIP_SAMPLES), dtype=np.float32)
    failures: list[tuple[int, str, str]] = []
    notes: list[tuple[int, str, str]] = []
    for index, source in jobs:
        if source is None or (isinstance(source, str) and not os.path.exists(source)):
            failures.append((index, MISSING, "not found in the corpus source"))
            continue
        where = source if isinstance(source, str) else f"<{len(source)} bytes>"
        try:
            clip, note = check_clip(load_clip(source), where)
        except ClipError as e:
            failures.append((index, e.reason, str(e)))
            continue
        except ValueError as e:
            failures.append((index, NON_FINITE, str(e)))
            continue
        if note is not None:
            notes.append((index, RESCALED, note))
        clips[len(indices)] = clip
        indices.append(index)
    return DecodedBatch(
        indices=np.asarray(indices, dtype=np.int64),
        clips=clips[: len(indices)],
        failures=failures,
        seconds=time.perf_counter() - start,
        notes=notes,
    )


def embed_batch(backend, clips: np.ndarray) -> np.ndarray:
    """Embed a batch of clips (the batched stage).

    Args:
        backend: an ``embedding_model.backends.Backend``.
        clips: np.ndarray [shape=(n, 16000)] float32.

    Returns:
        np.ndarray [shape=(n, backend.dim)] float32.

    Raises:
        ValueError: the backend returned the wrong shape or non-finite values.
    """
    embeddings = np.asarray(backend.embed(clips), dtype=np.float32)
    if embeddings.shape != (len(clips), backend.dim):
        raise ValueError(
            f"backend {backend.name!r} returned embeddings of shape {embeddings.shape}, "
            f"expected {(len(clips), backend.dim)}"
        )
    if not np.isfinite(embeddings).all():
        raise ValueError(f"backend {backend.name!r} returned NaN/inf embeddings")
    return embeddings


def assemble(clips, embeddings: np.ndarray, metadata):
    """Build the SampleSet of one output file (the write stage's input).

    Args:
        clips: the ``ChosenClip`` of the file, in order.
        embeddings: np.ndarray [shape=(len(clips), D)] float32, row i for clips[i].
        metadata: ``protos.DatasetMetadata``.

    Returns:
        protos.SampleSet.
    """
    from protos import SampleSet

    return SampleSet(
        ids=np.asarray([c.link for c in clips], dtype=str),
        sample_types=np.asarray([c.sample_type for c in clips], dtype=np.int32),
        keywords=np.asarray([c.word for c in clips], dtype=str),
        embeddings=embeddings,
        metadata=metadata,
        speakers=np.asarray([c.speaker for c in clips], dtype=str),
    )
