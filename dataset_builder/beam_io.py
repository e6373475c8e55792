"""The Beam runner's file I/O: paths on any Beam filesystem (local, gs://, s3://, hdfs://).

Apache Beam is imported only when a function needs it, so importing this module
is free. Everything that reads or writes a remote location goes through Beam's
``FileSystems``: the remote corpus source (:class:`RemoteMswcDirectory`), the
remote output (:class:`RemoteOutput`) and the copy of a remote model
(:func:`localize`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from typing import Iterator, Mapping, Sequence

from dataset_builder.errors import BuildEnvironmentError, BuildError
from dataset_builder.outputs import MANIFEST_NAME, stale_outputs
from dataset_builder.protocol import ChosenClip

#: The one line a user without the extra sees.
BEAM_MISSING = "--runner needs Apache Beam, which is not installed: pip install 'dataperf-speech[beam]'"


class BeamUnavailable(BuildEnvironmentError):
    """apache-beam is not installed."""


class _ImportNoise(logging.Filter):
    # Beam warns at import when the optional BigQuery client is half installed;
    # build-dataset never touches BigQuery.
    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


def import_beam():
    """``apache_beam``, or :class:`BeamUnavailable` with the install hint."""
    root = logging.getLogger()
    noise = _ImportNoise()
    root.addFilter(noise)
    try:
        import apache_beam
    except ImportError:
        raise BeamUnavailable(BEAM_MISSING) from None
    finally:
        root.removeFilter(noise)
    return apache_beam


def set_filesystem_options(pipeline_args: Sequence[str]) -> None:
    """Give the launcher's FileSystems the user's credentials/project options (gs://, s3://)."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    FileSystems.set_options(PipelineOptions(list(pipeline_args)))


def is_remote(path: str) -> bool:
    """True for ``scheme://`` paths (gs, s3, hdfs, ...) that go through Beam's FileSystems."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def join(base: str, *parts: str) -> str:
    """``base/part/...`` on the base's filesystem."""
    if is_remote(base):
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.join(base, *parts)
    return os.path.join(base, *parts)


def write_bytes(path: str, data: bytes) -> None:
    """Write a file through FileSystems (local, gs://, s3://, hdfs://)."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


def read_bytes(path: str) -> bytes:
    """Read a whole file through FileSystems."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def remove_tree(path: str) -> None:
    """Delete a file or directory tree, quietly (cleanup must not hide the real outcome)."""
    from apache_beam.io.filesystems import FileSystems

    try:
        if FileSystems.exists(path):
            FileSystems.delete([path])
    except Exception:  # noqa: BLE001 - each filesystem raises its own types
        pass


def localize(path: str) -> str:
    """A local copy of a remote model file or directory; local paths are returned unchanged.

    A directory is copied with everything below it; a file (``.keras``) with the
    ``.json`` metadata beside it when there is one. Backends load from local
    paths only, so the launcher and every worker copy the model once.

    Raises:
        BuildError: nothing exists at ``path``.
    """
    if not is_remote(path):
        return path
    from apache_beam.io.filesystems import FileSystems

    base = path.rstrip("/")
    name = base.rsplit("/", 1)[-1]
    local_root = os.path.join(tempfile.mkdtemp(prefix="dataperf-model-"), name)
    # Object stores have no directories: a "directory" is whatever lies below the prefix.
    below = FileSystems.match([base + "/**"])[0].metadata_list
    if below:
        copies = [(m.path, os.path.join(local_root, *m.path[len(base) + 1:].split("/"))) for m in below]
    elif FileSystems.exists(base):
        copies = [(base, local_root)]
        sibling = base.rsplit(".", 1)[0] + ".json"
        if sibling != base and FileSystems.exists(sibling):
            copies.append((sibling, os.path.join(os.path.dirname(local_root), sibling.rsplit("/", 1)[-1])))
    else:
        raise BuildError(f"{path}: no such model file or directory")
    for remote, local in copies:
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, "wb") as f:
            f.write(read_bytes(remote))
    return local_root


class RemoteMswcDirectory:
    """An MSWC-layout directory on any Beam filesystem (``gs://``, ``s3://``, ``hdfs://``).

    The same :class:`dataset_builder.sources.ClipSource` as
    :class:`~dataset_builder.sources.MswcDirectory`, reading through Beam's
    FileSystems: the splits CSV is copied locally and parsed by
    :func:`corpus.layout.read_splits`; clips come as encoded bytes.

    Args:
        root: corpus root URL.
        lang: language code.
    """

    kind = "mswc-dir"

    def __init__(self, root: str, lang: str):
        self.root = root.rstrip("/")
        self.lang = lang

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "root": self.root}

    def records(self) -> list:
        from apache_beam.io.filesystems import FileSystems

        from corpus import layout

        # The same candidate places the local reader tries, relative to the root.
        for relative in layout.splits_csv_candidates("", self.lang):
            remote = FileSystems.join(self.root, *relative.parts)
            if FileSystems.exists(remote):
                with tempfile.TemporaryDirectory(prefix="dataperf-splits-") as tmp:
                    local = os.path.join(tmp, *relative.parts)
                    os.makedirs(os.path.dirname(local), exist_ok=True)
                    with open(local, "wb") as f:
                        f.write(read_bytes(remote))
                    return layout.read_splits(tmp, self.lang)
        tried = ", ".join(FileSystems.join(self.root, *r.parts)
                          for r in layout.splits_csv_candidates("", self.lang))
        raise layout.CorpusError(f"no splits file for language {self.lang!r} under {self.root}: tried {tried}")

    def iter_audio(self, clips: Sequence[ChosenClip]) -> Iterator[tuple[int, bytes | None]]:
        from apache_beam.io.filesystems import FileSystems

        from corpus import layout

        for index, clip in enumerate(clips):
            relative = layout.clip_path("", self.lang, clip.link)  # validates the link
            try:
                data = read_bytes(FileSystems.join(self.root, *relative.parts))
            except Exception as e:  # noqa: BLE001 - each filesystem raises its own types
                if isinstance(e, FileNotFoundError) or is_not_found(e):
                    data = None
                else:
                    raise
            yield index, data


def is_not_found(error: Exception) -> bool:
    """True when a filesystem error means "no such object" (a missing clip, not a failure)."""
    # Beam's filesystems wrap "no such object" in BeamIOError / IOError with the
    # backend's own message; a transient error must raise so the bundle is retried.
    text = str(error).lower()
    return any(s in text for s in ("not found", "no such file", "does not exist", "404"))


class RemoteOutput:
    """An ``--out`` on a remote Beam filesystem; the run is staged in a hidden prefix inside it.

    Object stores cannot rename a set of files at once: the staged files are
    renamed into place, stale ones deleted, and the manifest (which lists every
    file with its checksum) written last. A reader checks that the files belong
    together with ``outputs.verify_dataset`` (after copying them locally).
    """

    def __init__(self, out: str):
        self.location = out
        self.staging = join(out, f".staging-{uuid.uuid4().hex[:12]}")

    def check(self, needed_bytes: int = 0) -> None:
        """Nothing to check before the work: object stores have no free space or permissions to ask."""

    def lock(self) -> None:
        """No lock on a remote filesystem: two builds into one remote --out are not detected."""

    def unlock(self) -> None:
        pass

    def prepare(self) -> None:
        from apache_beam.io.filesystems import FileSystems

        if not FileSystems.exists(self.location):
            FileSystems.mkdirs(self.location)
        FileSystems.mkdirs(self.staging)

    def publish(self, staged: Mapping[str, str], manifest_text: str) -> None:
        from apache_beam.io.filesystems import FileSystems

        finals = list(staged)
        FileSystems.rename([join(self.staging, staged[f]) for f in finals],
                           [join(self.location, f) for f in finals])
        existing = {m.path.rstrip("/").rsplit("/", 1)[-1]: m.path
                    for match in FileSystems.match([join(self.location, "*.pb")])
                    for m in match.metadata_list}
        stale = [existing[name] for name in stale_outputs(existing, finals)]
        if stale:
            FileSystems.delete(stale)
        write_bytes(join(self.location, MANIFEST_NAME), manifest_text.encode("utf-8"))

    def discard(self) -> None:
        remove_tree(self.staging)
