"""build-dataset on Apache Beam: same files as the single-machine build, skips, retries, shards."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from dataset_builder import beam_io, beam_pipeline, cli, launcher  # noqa: E402
from embedding_model.backends import register_backend  # noqa: E402
from protos import read_samples  # noqa: E402
from tests.builder_helpers import BandEnergyBackend, make_tone_corpus  # noqa: E402

LANG = "es"
WORDS = ["año", "sí", "no", *[f"w{i}" for i in range(5)]]
CLIPS_PER_WORD = 12  # 8 TRAIN, 2 DEV, 2 TEST
PROTOCOL = ["--known-words", "2", "--unknown-words", "2", "--clips-per-word", "6",
            "--min-word-clips", "10", "--min-target-train", "6", "--min-target-eval", "2"]
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
TWO_PROCESSES = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def make_corpus(root: Path) -> Path:
    """8 words x 12 Opus tones, plus a corrupt, an empty and a missing clip of 'año' (TRAIN)."""
    return make_tone_corpus(root, LANG, WORDS, CLIPS_PER_WORD, n_train=8, n_dev=2, n_speakers=3, seed=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("beam_mswc"))


def build(argv: list[str]) -> int:
    """build-dataset, with or without --runner."""
    return cli.main(argv)


def argv_for(corpus: Path, out: Path, *extra: str, backend=("--backend", "test-bands")) -> list[str]:
    return ["--lang", LANG, "--mswc-root", str(corpus), "--out", str(out), *backend,
            "--keyword", "año", "--keyword", "sí", "--quiet", *PROTOCOL, *extra]


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def comparable(manifest: dict) -> dict:
    """The manifest without how and how fast it ran.

    Decoder messages about in-memory clips name a Python object's address
    (``<_io.BytesIO object at 0x...>``), which no two processes share.
    """
    text = json.dumps({k: v for k, v in manifest.items() if k not in ("run", "timings", "beam")},
                      ensure_ascii=False)
    return json.loads(re.sub(r" at 0x[0-9a-f]+", "", text))


@pytest.fixture(scope="module")
def local_build(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    assert build(argv_for(corpus, out, "--workers", "0")) == 0
    return out


def test_beam_build_matches_the_single_machine_build_and_counts_skips(corpus, local_build, tmp_path):
    out = tmp_path / "beam"
    assert build(argv_for(corpus, out, "--runner", "DirectRunner", "--batch-size", "5", *IN_MEMORY)) == 0
    for name in ("samples.pb", "eval.pb"):
        assert (out / name).read_bytes() == (local_build / name).read_bytes(), name
    beam_manifest = manifest_of(out)
    assert comparable(beam_manifest) == comparable(manifest_of(local_build))
    # Skips are counted by Beam's metrics counters, not only listed.
    counters = beam_manifest["beam"]["counters"]
    assert sum(v for k, v in counters.items() if k.startswith("skipped_")) == 3
    assert beam_manifest["skipped"]["total"] == 3
    assert {c["id"]: c["reason"] for c in beam_manifest["skipped"]["clips"]}["año/missing.opus"] == "missing"
    assert counters["clips_embedded"] == sum(f["clips"] for f in beam_manifest["files"].values())
    assert sorted(p.name for p in out.iterdir()) == ["eval.pb", "manifest.json", "samples.pb"]


def _replay_some_bundles(pcoll):
    """What an at-least-once runner may deliver: some clips twice (a retried bundle's output)."""
    import apache_beam as beam

    return pcoll | "Replay" >> beam.FlatMap(lambda r: [r, r] if r[0] % 3 == 0 else [r])


def test_duplicated_deliveries_neither_duplicate_nor_drop_samples(corpus, local_build, tmp_path):
    parsed, _ = cli.build_parser().parse_known_args(argv_for(corpus, tmp_path, "--runner", "DirectRunner"))
    source = beam_pipeline.BeamRunner().open_source(parsed)
    experiment, records = launcher.plan_experiment(source, launcher.params_from_args(parsed))
    backend = BandEnergyBackend()
    spec = beam_pipeline.BackendSpec.of(backend, "test-bands", {})
    manifest = beam_pipeline.build_with_beam(
        source, experiment, backend, spec, str(tmp_path / "retried"),
        beam_pipeline.BeamOptions(pipeline_args=tuple(IN_MEMORY), batch_size=4),
        records=records, transforms_hook=_replay_some_bundles)
    for name in ("samples.pb", "eval.pb"):
        assert (tmp_path / "retried" / name).read_bytes() == (local_build / name).read_bytes()
    assert manifest["beam"]["counters"]["duplicates_dropped"] > 0
    assert comparable(manifest) == comparable(manifest_of(local_build))


def _lose_one_clip(pcoll):
    """A runner bug or a lost worker output: one embedded clip never reaches the writer."""
    import apache_beam as beam

    return pcoll | "Lose" >> beam.Filter(lambda r: r[0] != 5)


def test_a_lost_clip_stops_the_build_before_anything_is_written(corpus, tmp_path):
    parsed, _ = cli.build_parser().parse_known_args(argv_for(corpus, tmp_path, "--runner", "DirectRunner"))
    source = beam_pipeline.BeamRunner().open_source(parsed)
    experiment, _ = launcher.plan_experiment(source, launcher.params_from_args(parsed))
    backend = BandEnergyBackend()
    with pytest.raises(cli.BuildError, match=r"accounted for 2 of the 3 clips planned for samples shard 1 "):
        beam_pipeline.build_with_beam(
            source, experiment, backend, beam_pipeline.BackendSpec.of(backend, "test-bands", {}),
            str(tmp_path / "lost"), beam_pipeline.BeamOptions(pipeline_args=tuple(IN_MEMORY), shards=8),
            transforms_hook=_lose_one_clip)
    assert not (tmp_path / "lost").exists() and sorted(p.name for p in tmp_path.glob(".lost.*")) == []


def test_sharded_outputs_read_back_as_the_single_file(corpus, local_build, tmp_path):
    out = tmp_path / "sharded"
    assert build(argv_for(corpus, out, "--runner", "DirectRunner", "--shards", "3", *IN_MEMORY)) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["eval-00000-of-00003.pb", "eval-00001-of-00003.pb", "eval-00002-of-00003.pb",
                     "manifest.json", "samples-00000-of-00003.pb", "samples-00001-of-00003.pb",
                     "samples-00002-of-00003.pb"]
    for name in ("samples.pb", "eval.pb"):
        whole, sharded = read_samples(local_build / name), read_samples(out / name)
        np.testing.assert_array_equal(sharded.ids, whole.ids)
        assert sharded.embeddings.tobytes() == whole.embeddings.tobytes()
        assert sharded.metadata == whole.metadata
    files = manifest_of(out)["files"]
    assert sum(f["clips"] for n, f in files.items() if n.startswith("eval")) == len(whole.ids)
    # Rebuilding unsharded replaces the shards rather than leaving two versions behind.
    assert build(argv_for(corpus, out, "--runner", "DirectRunner", *IN_MEMORY)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["eval.pb", "manifest.json", "samples.pb"]


def test_strict_fails_without_writing(corpus, tmp_path, capsys):
    out = tmp_path / "strict"
    assert build(argv_for(corpus, out, "--runner", "DirectRunner", "--strict", *IN_MEMORY)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("build-dataset: error: clip 'año/") and "--strict" in err and "\n" not in err
    assert not (out / "samples.pb").exists() and not list(tmp_path.glob(".strict.*"))


def test_credentials_passed_to_beam_stay_out_of_the_manifest():
    flags = ["--s3_access_key_id", "AKIA", "--s3_secret_access_key=abc", "--region", "eu",
             "--hdfs_user", "beam"]
    assert beam_pipeline.redact(flags) == ["--s3_access_key_id", "<redacted>",
                                           "--s3_secret_access_key=<redacted>", "--region", "eu",
                                           "--hdfs_user", "beam"]


def test_without_apache_beam_the_runner_flag_says_what_to_install(corpus, tmp_path, capsys, monkeypatch):
    # A None entry in sys.modules makes `import apache_beam` raise ImportError.
    monkeypatch.setitem(sys.modules, "apache_beam", None)
    code = build(argv_for(corpus, tmp_path / "o", "--runner", "DirectRunner"))
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1 and "pip install 'dataperf-speech[beam]'" in err
    assert not (tmp_path / "o").exists()


def test_a_missing_model_stops_on_the_launcher(corpus, tmp_path, capsys):
    code = build(argv_for(corpus, tmp_path / "o", "--runner", "DirectRunner", "--backend", "mswc",
                          "--model", str(tmp_path / "nowhere"), *IN_MEMORY, backend=()))
    assert code == 3
    assert capsys.readouterr().err.startswith("build-dataset: error: no MSWC embedding model")
    assert not (tmp_path / "o").exists()


class WrongShapeBackend(BandEnergyBackend):
    """Returns one value too few per clip: the embed stage must reject it on the worker."""

    name = "test-beam-wrong-shape"

    def embed(self, clips: np.ndarray) -> np.ndarray:
        return super().embed(clips)[:, :-1]


register_backend("test-beam-wrong-shape", WrongShapeBackend)


def test_a_failing_pipeline_is_one_line_and_leaves_earlier_outputs(corpus, local_build, tmp_path, capsys):
    out = tmp_path / "kept"
    assert build(argv_for(corpus, out, "--runner", "DirectRunner", *IN_MEMORY)) == 0
    before = (out / "samples.pb").read_bytes()
    capsys.readouterr()
    code = build(argv_for(corpus, out, "--runner", "DirectRunner", *IN_MEMORY,
                          backend=("--backend", "test-beam-wrong-shape")))
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("build-dataset: error: the Beam pipeline failed on DirectRunner: ")
    assert err.count("\n") == 1 and "returned embeddings of shape" in err
    assert (out / "samples.pb").read_bytes() == before
    assert not list(tmp_path.glob(".kept.*"))


# --------------------------------------------------------------- the shipped backend, 2 workers

TINY_PROTOCOL = ["--known-words", "3", "--unknown-words", "3", "--clips-per-word", "6",
                 "--min-word-clips", "5", "--min-target-train", "8", "--min-target-eval", "2"]


def test_the_mswc_backend_embeds_each_clip_independently_of_its_batch(tiny_model_dir):
    """Beam batches clips as its bundles fall: identical files need row-wise identical embeddings."""
    from embedding_model.backends import get_backend

    backend = get_backend("mswc", model=str(tiny_model_dir))
    clips = (0.1 * np.random.default_rng(0).standard_normal((21, 16000))).astype(np.float32)
    whole = backend.embed(clips)
    pieces = np.concatenate([backend.embed(clips[i:i + 5]) for i in range(0, 21, 5)])
    differ = np.flatnonzero((whole.view(np.uint32) != pieces.view(np.uint32)).any(axis=1))
    assert not len(differ), f"rows {differ.tolist()} change bits with the batch they are embedded in"


def test_two_beam_workers_write_the_single_machine_files_byte_for_byte(tiny_corpus, tiny_model_dir, tmp_path):
    from tests.fixtures_corpus import TINY_TARGETS

    common = ["--lang", "es", "--mswc-root", str(tiny_corpus), "--backend", "mswc",
              "--model", str(tiny_model_dir), "--quiet", *TINY_PROTOCOL]
    for keyword in TINY_TARGETS["es"]:
        common += ["--keyword", keyword]
    assert build([*common, "--out", str(tmp_path / "local"), "--workers", "0"]) == 0
    assert build([*common, "--out", str(tmp_path / "beam"), "--runner", "DirectRunner",
                  "--batch-size", "16", *TWO_PROCESSES]) == 0
    for name in ("samples.pb", "eval.pb"):
        assert (tmp_path / "beam" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    local, beam = manifest_of(tmp_path / "local"), manifest_of(tmp_path / "beam")
    assert comparable(beam) == comparable(local)
    assert beam["run"]["pipeline_options"][:2] == TWO_PROCESSES
    assert beam["beam"]["counters"]["clips_embedded"] == sum(f["clips"] for f in beam["files"].values()) > 50


def _tar_gz(files: list[tuple[str, bytes]]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_an_archive_is_streamed_once_and_gives_the_local_builds_files(corpus, tmp_path):
    clips = sorted((corpus / LANG / "clips").rglob("*.opus"))
    (tmp_path / "audio.tar.gz").write_bytes(
        _tar_gz([(f"{LANG}/clips/{p.parent.name}/{p.name}", p.read_bytes()) for p in clips]))
    (tmp_path / "splits.tar.gz").write_bytes(
        _tar_gz([(f"{LANG}_splits.csv", (corpus / f"{LANG}_splits.csv").read_bytes())]))
    source = ["--audio-archive", str(tmp_path / "audio.tar.gz"), "--splits-archive", str(tmp_path / "splits.tar.gz")]

    def argv(out: str, *extra: str) -> list[str]:
        return ["--lang", LANG, "--out", str(tmp_path / out), "--backend", "test-bands",
                "--keyword", "año", "--keyword", "sí", "--quiet", *PROTOCOL, *source, *extra]

    assert build(argv("local", "--workers", "0")) == 0
    assert build(argv("beam", "--runner", "DirectRunner", *IN_MEMORY)) == 0
    for name in ("samples.pb", "eval.pb"):
        assert (tmp_path / "beam" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert comparable(manifest_of(tmp_path / "beam")) == comparable(manifest_of(tmp_path / "local"))
    assert manifest_of(tmp_path / "beam")["skipped"]["total"] == 3


# ------------------------------------------------------------ a remote filesystem (scheme://)

from apache_beam.io.filesystem import FileMetadata, FileSystem  # noqa: E402
from apache_beam.io.localfilesystem import LocalFileSystem  # noqa: E402


class LocalUnderScheme(FileSystem):
    """``beamtest:///PATH`` is the local ``/PATH``: a filesystem that looks remote to the code.

    Registered with Beam by being a FileSystem subclass; the pipeline can only reach
    it through ``FileSystems``, as it would reach gs://, s3:// or hdfs://.
    """

    PREFIX = "beamtest://"

    def __init__(self, pipeline_options=None):
        super().__init__(pipeline_options)
        self._local = LocalFileSystem(pipeline_options)

    @classmethod
    def scheme(cls):
        return "beamtest"

    def _l(self, path: str) -> str:
        return "/" + path[len(self.PREFIX):].lstrip("/")

    def _r(self, path: str) -> str:
        return self.PREFIX + path

    def join(self, basepath, *paths):
        return self._r(self._local.join(self._l(basepath), *paths))

    def split(self, path):
        head, tail = self._local.split(self._l(path))
        return self._r(head), tail

    def mkdirs(self, path):
        return self._local.mkdirs(self._l(path))

    def has_dirs(self):
        return True

    def _list(self, dir_or_prefix):
        for m in self._local._list(self._l(dir_or_prefix)):
            yield FileMetadata(self._r(m.path), m.size_in_bytes, m.last_updated_in_seconds)

    def create(self, path, *args, **kwargs):
        return self._local.create(self._l(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return self._local.open(self._l(path), *args, **kwargs)

    def copy(self, sources, destinations):
        return self._local.copy([self._l(p) for p in sources], [self._l(p) for p in destinations])

    def rename(self, sources, destinations):
        return self._local.rename([self._l(p) for p in sources], [self._l(p) for p in destinations])

    def exists(self, path):
        return self._local.exists(self._l(path))

    def size(self, path):
        return self._local.size(self._l(path))

    def last_updated(self, path):
        return self._local.last_updated(self._l(path))

    def checksum(self, path):
        return self._local.checksum(self._l(path))

    def metadata(self, path):
        m = self._local.metadata(self._l(path))
        return FileMetadata(self._r(m.path), m.size_in_bytes, m.last_updated_in_seconds)

    def delete(self, paths):
        return self._local.delete([self._l(p) for p in paths])


def test_corpus_and_outputs_on_a_remote_filesystem(corpus, local_build, tmp_path):
    remote_out = LocalUnderScheme.PREFIX + str(tmp_path / "remote-out")
    argv = argv_for(corpus, tmp_path, "--runner", "DirectRunner", "--shards", "2", *IN_MEMORY)
    argv[argv.index("--mswc-root") + 1] = LocalUnderScheme.PREFIX + str(corpus)
    argv[argv.index("--out") + 1] = remote_out
    assert build(argv) == 0
    out = tmp_path / "remote-out"
    for name in ("samples.pb", "eval.pb"):
        remote, local = read_samples(out / name), read_samples(local_build / name)
        assert remote.ids.tolist() == local.ids.tolist()
        assert remote.embeddings.tobytes() == local.embeddings.tobytes()
    manifest = manifest_of(out)
    assert manifest["source"] == {"kind": "mswc-dir", "root": LocalUnderScheme.PREFIX + str(corpus)}
    assert {c["id"]: c["reason"] for c in manifest["skipped"]["clips"]} == {
        "año/corrupt.opus": "unreadable", "año/empty.opus": "empty", "año/missing.opus": "missing"}
    assert not list(out.glob(".staging-*"))


def test_a_remote_model_is_copied_locally_with_its_metadata(tmp_path):
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    (models / "mswc_embedding.keras").write_bytes(b"weights")
    (models / "mswc_embedding.json").write_text("{}")
    (models / "sub" / "extra.bin").write_bytes(b"x")
    copied = Path(beam_io.localize(LocalUnderScheme.PREFIX + str(models)))
    assert copied != models and (copied / "sub" / "extra.bin").read_bytes() == b"x"
    assert (copied / "mswc_embedding.keras").read_bytes() == b"weights"
    one = Path(beam_io.localize(LocalUnderScheme.PREFIX + str(models / "mswc_embedding.keras")))
    assert one.read_bytes() == b"weights" and (one.parent / "mswc_embedding.json").is_file()
    assert beam_io.localize(str(models)) == str(models)
    with pytest.raises(cli.BuildError, match="no such model"):
        beam_io.localize(LocalUnderScheme.PREFIX + str(tmp_path / "none"))
