"""Corpus sources: where the splits and the clips' audio come from.

Every source offers the same two things, so the rest of the build does not know
which one it reads:

- ``records()``: the corpus splits, ``list[corpus.layout.ClipRecord]`` (sample id =
  ``LINK``, word, split, speaker);
- ``iter_audio(clips)``: ``(index, audio)`` for the experiment's clips, where
  ``audio`` is a file path, the encoded bytes, or None when the source lacks the
  clip. Indices refer to positions in ``clips``; the order is the source's own
  (archive order for an archive), so consumers place results by index.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Protocol, Sequence

from dataset_builder.archive import iter_archive_clips, read_splits_archive
from dataset_builder.fetch import download, is_url
from dataset_builder.protocol import ChosenClip


class ClipSource(Protocol):
    """What the builder needs from a corpus."""

    kind: str  # recorded in the files' metadata, e.g. "mswc-dir"
    lang: str

    def describe(self) -> dict[str, str]:
        """Where the corpus is, for the manifest."""

    def records(self) -> list:
        """The splits: ``list[corpus.layout.ClipRecord]``."""

    def iter_audio(self, clips: Sequence[ChosenClip]) -> Iterator[tuple[int, str | bytes | None]]:
        """``(index into clips, path | bytes | None)`` for every clip, each once."""


class MswcDirectory:
    """An MSWC-layout directory (``ROOT/{lang}/clips/...`` plus the splits CSV).

    Args:
        root: corpus root.
        lang: language code.
    """

    kind = "mswc-dir"

    def __init__(self, root: str | os.PathLike, lang: str):
        self.root = Path(root)
        self.lang = lang

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "root": str(self.root.resolve())}

    def records(self) -> list:
        from corpus import layout

        return layout.read_splits(self.root, self.lang)

    def iter_audio(self, clips: Sequence[ChosenClip]) -> Iterator[tuple[int, str]]:
        from corpus import layout

        for index, clip in enumerate(clips):
            # A path, not bytes: the decoding workers read the files in parallel.
            yield index, str(layout.clip_path(self.root, self.lang, clip.link))


class MswcArchive:
    """MSWC's published archives for one language, local or over http(s).

    Args:
        audio: path or URL of ``audio/{lang}.tar.gz``.
        splits: path or URL of ``splits/{lang}.tar.gz``.
        lang: language code.
        audio_sha256, splits_sha256: expected checksums (hex), verified when given.
        download_dir: if set, URLs are first downloaded there (resumable across
            runs, kept for the next build); otherwise they are streamed.
        progress: show download progress bars.
        remote_options: passed to :class:`dataset_builder.fetch.RemoteFile`.
    """

    kind = "mswc-archive"

    def __init__(
        self,
        audio: str,
        splits: str,
        lang: str,
        *,
        audio_sha256: str | None = None,
        splits_sha256: str | None = None,
        download_dir: str | os.PathLike | None = None,
        progress: bool = False,
        **remote_options,
    ):
        self.audio = str(audio)
        self.splits = str(splits)
        self.lang = lang
        self.audio_sha256 = audio_sha256
        self.splits_sha256 = splits_sha256
        self.download_dir = Path(download_dir) if download_dir else None
        self.progress = progress
        self.remote_options = remote_options

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "audio": self.audio, "splits": self.splits}

    def _local(self, location: str, sha256: str | None, what: str) -> tuple[str, str | None]:
        """Download ``location`` first when a download directory is set.

        Returns the location to stream from and the checksum still to verify
        (None once :func:`download` has verified it).
        """
        if self.download_dir is None or not is_url(location):
            return location, sha256
        name = location.rstrip("/").rsplit("/", 1)[-1] or f"{self.lang}.tar.gz"
        dest = self.download_dir / what / name
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(desc=f"download {what}/{name}", unit="B", unit_scale=True, leave=False)
        try:
            download(location, dest, sha256=sha256,
                     on_progress=bar.update if bar else None, **self.remote_options)
        finally:
            if bar:
                bar.close()
        return str(dest), None

    def records(self) -> list:
        location, sha256 = self._local(self.splits, self.splits_sha256, "splits")
        return read_splits_archive(location, self.lang, sha256=sha256, **self.remote_options)

    def iter_audio(self, clips: Sequence[ChosenClip]) -> Iterator[tuple[int, bytes | None]]:
        location, sha256 = self._local(self.audio, self.audio_sha256, "audio")
        wanted = {clip.link: index for index, clip in enumerate(clips)}
        if not self.progress:
            return iter_archive_clips(location, wanted, sha256=sha256, **self.remote_options)
        return self._with_progress(location, wanted, sha256)

    def _with_progress(self, location: str, wanted: dict, sha256: str | None):
        # A byte bar over the whole archive: it is read to its end, long after the
        # last chosen clip when that comes early.
        from tqdm import tqdm

        total = os.path.getsize(location) if not is_url(location) else None
        with tqdm(total=total, desc="archive", unit="B", unit_scale=True, leave=False, position=1) as bar:
            yield from iter_archive_clips(location, wanted, sha256=sha256, on_bytes=bar.update,
                                          **self.remote_options)
