"""The Beam transforms of the build (imported only when a runner is chosen).

Each DoFn wraps one of the single-machine build's stage functions
(:mod:`dataset_builder.stages`): nothing here decodes, embeds or serialises by
itself. Classes live at module level so runners pickle them by reference.
"""

from __future__ import annotations

import hashlib
import json
import uuid

from dataset_builder.beam_io import import_beam, join, write_bytes

beam = import_beam()
import numpy as np  # noqa: E402
from apache_beam.metrics import Metrics  # noqa: E402

from dataset_builder.beam_plan import (  # noqa: E402
    COUNTER_NAMESPACE,
    DECODE_CHUNK,
    BackendSpec,
    OutputLayout,
    clip_from_json,
    read_plan,
)
from dataset_builder.protocol import ChosenClip  # noqa: E402
from dataset_builder.stages import assemble, decode_batch, embed_batch  # noqa: E402


def _counter(name: str):
    return Metrics.counter(COUNTER_NAMESPACE, name)


class ResolveAudio(beam.DoFn):
    """A batch of ``(index, clip)`` -> ``(index, clip, path | bytes | None)``, via ``source.iter_audio``."""

    def __init__(self, source):
        self.source = source

    def process(self, batch):
        clips = [clip for _, clip in batch]
        for local, audio in self.source.iter_audio(clips):
            index, clip = batch[local]
            yield index, clip, audio


class StreamArchive(beam.DoFn):
    """Stream an archive source once: ``(index, clip, bytes | None)`` per planned clip."""

    def __init__(self, source):
        self.source = source

    def process(self, plan_path):
        planned = read_plan(plan_path)
        clips = [clip for _, clip in planned]
        for local, audio in self.source.iter_audio(clips):
            index, clip = planned[local]
            yield index, clip, audio


class Decode(beam.DoFn):
    """:func:`~dataset_builder.stages.decode_batch` on a batch of ``(index, clip, audio)``.

    Outputs ``(index, clip, np.ndarray [shape=(16000,)] float32)``; clips that cannot
    be used go to the ``skipped`` output as ``(index, clip, reason, detail)`` and
    are counted (``skipped_<reason>``); clips used after a repair go, in addition,
    to the ``notes`` output as ``(index, clip, note, detail)``.
    """

    def setup(self):
        self.decoded = _counter("clips_decoded")
        self.skipped = {}

    def process(self, batch):
        clip_of = {index: clip for index, clip, _ in batch}
        result = decode_batch([(index, audio) for index, _, audio in batch])
        self.decoded.inc(len(result.indices))
        for row, index in enumerate(result.indices.tolist()):
            yield index, clip_of[index], result.clips[row].copy()
        for index, reason, detail in result.failures:
            if reason not in self.skipped:
                self.skipped[reason] = _counter(f"skipped_{reason}")
            self.skipped[reason].inc()
            yield beam.pvalue.TaggedOutput("skipped", (index, clip_of[index], reason, detail))
        for index, note, detail in result.notes:
            yield beam.pvalue.TaggedOutput("notes", (index, clip_of[index], note, detail))


class Embed(beam.DoFn):
    """:func:`~dataset_builder.stages.embed_batch` on a batch; the backend loads once per worker.

    Outputs ``(index, clip, np.ndarray [shape=(D,)] float32)``.
    """

    def __init__(self, spec: BackendSpec):
        self.spec = spec
        self.backend = None

    def setup(self):
        self.backend = self.spec.load()
        self.embedded = _counter("clips_embedded")

    def process(self, batch):
        clips = np.stack([audio for _, _, audio in batch])
        embeddings = embed_batch(self.backend, clips)
        self.embedded.inc(len(batch))
        for (index, clip, _), embedding in zip(batch, embeddings):
            yield index, clip, embedding


def _dedupe(records) -> tuple[dict, dict, int, dict]:
    """Split a shard's records into embedded/skipped/notes by index, one per index.

    A runner may deliver a clip more than once (a retried bundle whose first output
    was kept, a speculative attempt): keep one copy, chosen independently of the
    arrival order. A clip embedded by one attempt and skipped by another (a
    transient read error) counts as embedded.

    Returns:
        ``({index: (clip, embedding)}, {index: (clip, reason, detail)}, duplicates dropped,
        {index: (clip, note, detail)})``; notes only of embedded clips.
    """
    embedded: dict[int, tuple[ChosenClip, np.ndarray]] = {}
    skipped: dict[int, tuple[ChosenClip, str, str]] = {}
    notes: dict[int, tuple[ChosenClip, str, str]] = {}
    duplicates = 0
    for record in records:
        if record[0] == "note":
            _, index, clip, note, detail = record
            if index not in notes or (note, detail) < notes[index][1:]:
                notes[index] = (clip, note, detail)
        elif record[0] == "ok":
            _, index, clip, embedding = record
            if index in embedded:
                duplicates += 1
                if embedding.tobytes() >= embedded[index][1].tobytes():
                    continue
            embedded[index] = (clip, embedding)
        else:
            _, index, clip, reason, detail = record
            if index in skipped:
                duplicates += 1
                if (reason, detail) >= skipped[index][1:]:
                    continue
            skipped[index] = (clip, reason, detail)
    for index in embedded.keys() & skipped.keys():
        del skipped[index]
        duplicates += 1
    notes = {i: n for i, n in notes.items() if i in embedded}
    return embedded, skipped, duplicates, notes


class WriteShard(beam.DoFn):
    """One ``((role, shard), records)`` group -> a staged shard file plus its summary (JSON).

    Files are named uniquely per attempt; the launcher keeps one attempt per shard.
    """

    def __init__(self, staging: str, metadata: dict):
        self.staging = staging
        self.metadata = metadata

    def setup(self):
        self.duplicates = _counter("duplicates_dropped")

    def process(self, keyed):
        from protos import serialize_samples

        (role, shard), records = keyed
        embedded, skipped, duplicates, notes = _dedupe(records)
        if duplicates:
            self.duplicates.inc(duplicates)
        base = f"{role}-{shard:05d}.{uuid.uuid4().hex}"
        indices = sorted(embedded)
        summary = {
            "role": role, "shard": shard, "file": None, "clips": len(indices),
            "skipped": [[i, skipped[i][0].link, skipped[i][1], skipped[i][2]] for i in sorted(skipped)],
            "duplicates_dropped": duplicates,
            "notes": [[i, notes[i][0].link, notes[i][1], notes[i][2]] for i in sorted(notes)],
        }
        if indices:
            clips = [embedded[i][0] for i in indices]
            vectors = np.stack([embedded[i][1] for i in indices]).astype(np.float32, copy=False)
            # Same assemble + serialisation as the single-machine write_samples: same bytes.
            data = serialize_samples(assemble(clips, vectors, self.metadata[role]),
                                     where=f"cannot write {role} shard {shard}")
            write_bytes(join(self.staging, base + ".pb"), data)
            summary.update({
                "file": base + ".pb", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            })
        # Written last: a summary's presence means its shard file is complete.
        write_bytes(join(self.staging, base + ".json"), json.dumps(summary, ensure_ascii=False).encode("utf-8"))
        yield summary["file"] or base


def _key_embedded(record, layout: OutputLayout):
    index, clip, embedding = record
    return layout.key(index), ("ok", index, clip, embedding)


def _key_skipped(record, layout: OutputLayout):
    index, clip, reason, detail = record
    return layout.key(index), ("skip", index, clip, reason, detail)


def _key_note(record, layout: OutputLayout):
    index, clip, note, detail = record
    return layout.key(index), ("note", index, clip, note, detail)


class ReadPlan(beam.PTransform):
    """plan.jsonl -> ``(index, clip, audio)``, spread over the workers."""

    def __init__(self, plan_path: str, source):
        super().__init__()
        self.plan_path = plan_path
        self.source = source

    def expand(self, pbegin):
        from dataset_builder.sources import MswcArchive

        if isinstance(self.source, MswcArchive):
            # One gzip stream: read it once, fan the decoding out afterwards.
            return (pbegin
                    | "Archive" >> beam.Create([self.plan_path])
                    | "Stream archive" >> beam.ParDo(StreamArchive(self.source))
                    | "Spread" >> beam.Reshuffle())
        return (pbegin
                | "Read plan" >> beam.io.ReadFromText(self.plan_path)
                | "Parse" >> beam.Map(clip_from_json)
                | "Spread" >> beam.Reshuffle()
                | "Batch paths" >> beam.BatchElements(min_batch_size=1, max_batch_size=DECODE_CHUNK)
                | "Resolve audio" >> beam.ParDo(ResolveAudio(self.source)))


class DecodeClips(beam.PTransform):
    """``(index, clip, audio)`` -> ``decoded`` ``(index, clip, [16000] float32)``, ``skipped``, ``notes``."""

    def expand(self, pcoll):
        return (pcoll
                | "Batch audio" >> beam.BatchElements(min_batch_size=1, max_batch_size=DECODE_CHUNK)
                | "Decode" >> beam.ParDo(Decode()).with_outputs("skipped", "notes", main="decoded"))


class EmbedClips(beam.PTransform):
    """Decoded clips -> ``(index, clip, [D] float32)``, in batches of at most ``batch_size``."""

    def __init__(self, spec: BackendSpec, batch_size: int):
        super().__init__()
        self.spec = spec
        self.batch_size = batch_size

    def expand(self, pcoll):
        return (pcoll
                # Full batches (only a bundle's last one is short): the backend may pad
                # every call to a fixed shape, so small batches would waste a pass each.
                | "Batch clips" >> beam.BatchElements(min_batch_size=self.batch_size,
                                                      max_batch_size=self.batch_size)
                | "Embed" >> beam.ParDo(Embed(self.spec)))


class WriteDataset(beam.PTransform):
    """``(embedded, skipped, notes)`` -> staged shards and summaries under ``staging``."""

    def __init__(self, staging: str, layout: OutputLayout, metadata: dict):
        super().__init__()
        self.staging = staging
        self.layout = layout
        self.metadata = metadata

    def expand(self, pcolls):
        embedded, skipped, notes = pcolls
        keyed_ok = embedded | "Key embedded" >> beam.Map(_key_embedded, self.layout)
        keyed_skip = skipped | "Key skipped" >> beam.Map(_key_skipped, self.layout)
        keyed_notes = notes | "Key notes" >> beam.Map(_key_note, self.layout)
        return ((keyed_ok, keyed_skip, keyed_notes)
                | "Merge" >> beam.Flatten()
                | "By shard" >> beam.GroupByKey()
                | "Write shards" >> beam.ParDo(WriteShard(self.staging, self.metadata)))
