"""synthesize-corpus: the MSWC layout, speaker-disjoint splits, determinism, resuming, errors."""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus.audio import CLIP_SAMPLES, load_clip
from corpus.layout import clip_path, read_splits, read_word_counts
from dataset_builder.synth import engines
from dataset_builder.synth.build import SynthConfig, synthesize_corpus
from dataset_builder.synth.cli import main
from tests.fixtures_corpus import TINY_CLIPS_PER_WORD, TINY_WORDS


# Every test here synthesizes with espeak-ng (or checks its error messages, which name it).
pytestmark = pytest.mark.needs_system("espeak-ng")

def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def small_config(out: Path, **overrides) -> SynthConfig:
    settings = dict(
        out=out,
        langs=("es",),
        words={"es": ["año", "casa", "perro"]},
        clips_per_word=4,
        speakers_per_lang=8,
        include_number_words=False,
        seed=3,
        jobs=1,
        progress=False,
    )
    settings.update(overrides)
    return SynthConfig(**settings)


def test_tiny_corpus_has_the_mswc_layout(tiny_corpus):
    root = Path(tiny_corpus)
    metadata = json.loads(gzip.decompress((root / "metadata.json.gz").read_bytes()).decode("utf-8"))
    assert sorted(metadata) == ["en", "es"]
    for lang, words in TINY_WORDS.items():
        header = (root / f"{lang}_splits.csv").read_text(encoding="utf-8").splitlines()[0]
        assert header == "SET,LINK,WORD,VALID,SPEAKER,GENDER"
        records = read_splits(root, lang)
        assert len(records) == len(words) * TINY_CLIPS_PER_WORD
        on_disk = {str(p.relative_to(root / lang / "clips")) for p in (root / lang / "clips").rglob("*.opus")}
        assert on_disk == {r.link for r in records}
        for r in records:
            word, clip = r.link.split("/")
            assert word == r.word and clip.startswith(f"common_voice_{lang}_") and clip.endswith(".opus")
            assert r.valid and r.gender in ("MALE", "FEMALE") and len(r.speaker) == 40
        assert set(metadata[lang]) == {"wordcounts", "filenames"}
        assert metadata[lang]["wordcounts"] == {w: TINY_CLIPS_PER_WORD for w in words}
        assert read_word_counts(root, lang) == metadata[lang]["wordcounts"]
        for word, names in metadata[lang]["filenames"].items():
            assert sorted(names) == sorted(r.link.split("/")[1] for r in records if r.word == word)
    assert (root / "es" / "clips" / "año").is_dir()


def test_tiny_corpus_clips_are_one_second_48k_mono_opus(tiny_corpus):
    root = Path(tiny_corpus)
    ratios = []
    for lang in TINY_WORDS:
        for r in read_splits(root, lang)[::5]:
            path = clip_path(root, lang, r.link)
            info = sf.info(str(path))
            assert (info.format, info.subtype, info.samplerate, info.channels) == ("OGG", "OPUS", 48000, 1)
            assert info.frames == 48000
            clip = load_clip(path)
            assert clip.shape == (CLIP_SAMPLES,)
            centre = np.mean(clip[4000:12000] ** 2)
            edges = np.mean(np.concatenate([clip[:1600], clip[-1600:]]) ** 2)
            ratios.append(centre / max(edges, 1e-12))
    # The word is centred: the middle half is far louder than the edges, except in a
    # few clips with low SNR or an echoing espeak variant.
    assert np.median(ratios) > 10
    assert np.mean(np.asarray(ratios) > 2) > 0.9


def test_splits_are_speaker_disjoint_and_every_clip_of_a_word_has_its_own_speaker(tiny_corpus):
    root = Path(tiny_corpus)
    for lang, words in TINY_WORDS.items():
        records = read_splits(root, lang)
        split_of: dict[str, set[str]] = defaultdict(set)
        for r in records:
            split_of[r.speaker].add(r.split)
        assert all(len(s) == 1 for s in split_of.values())
        for word in words:
            mine = [r for r in records if r.word == word]
            assert len({r.speaker for r in mine}) == len(mine)
            assert sorted({r.split for r in mine}) == ["DEV", "TEST", "TRAIN"]
        speakers = {row["speaker"]: row for row in read_csv(root / f"{lang}_speakers.csv")}
        assert set(speakers) == {r.speaker for r in records}
        for r in records:
            row = speakers[r.speaker]
            assert (row["split"], row["gender"]) == (r.split, r.gender)
            assert row["engine"] in engines.ENGINES and row["family"] == f"{row['engine']}:{row['voice']}"
        vocab = read_csv(root / f"{lang}_vocab.csv")
        assert [v["word"] for v in vocab] == words


def test_english_uses_every_installed_engine(tiny_corpus):
    installed = {v.engine for v in engines.voices_for("en")}
    used = {row["engine"] for row in read_csv(Path(tiny_corpus) / "en_speakers.csv")}
    assert used == installed


def test_same_seed_gives_byte_identical_corpus_whatever_the_jobs(tmp_path):
    first = synthesize_corpus(small_config(tmp_path / "a", jobs=1))
    synthesize_corpus(small_config(tmp_path / "b", jobs=2))
    assert first.clips == 12 and first.rendered == 12
    a, b = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert a.keys() == b.keys() and a == b
    synthesize_corpus(small_config(tmp_path / "c", seed=4))
    c = all_files(tmp_path / "c")
    opus_a = {k: v for k, v in a.items() if k.endswith(".opus")}
    assert not set(opus_a.values()) & {v for k, v in c.items() if k.endswith(".opus")}


def test_rerun_resumes_and_skips_finished_clips(tmp_path):
    root = tmp_path / "c"
    synthesize_corpus(small_config(root))
    before = all_files(root)
    clips = sorted(root.rglob("*.opus"))
    clips[0].unlink()
    clips[5].unlink()
    (root / "es_splits.csv").unlink()
    stale = clips[1].parent / f".{clips[1].name}.abc.tmp"
    stale.write_bytes(b"half a clip")
    summary = synthesize_corpus(small_config(root))
    assert (summary.rendered, summary.skipped, summary.clips) == (2, 10, 12)
    assert not stale.exists()
    assert all_files(root) == before


def test_demo_style_targets_get_more_clips_and_number_words_are_recorded(tmp_path):
    config = small_config(
        tmp_path / "t",
        words={"es": ["casa"]},
        target_words={"es": ["perro"]},
        target_clips=6,
        clips_per_word=3,
        include_number_words=True,
        speakers_per_lang=10,
    )
    from dataset_builder.synth import build
    from corpus.words import number_words

    plan = build.plan_language("es", engines.voices_for("es"), config)
    counts = {w: sum(j.word == w for j in plan.jobs) for w in plan.words}
    assert counts["perro"] == 6 and counts["casa"] == 3
    assert plan.numbers == number_words("es") and "cinco" in plan.words
    assert plan.words[:2] == ["casa", "perro"]


@pytest.mark.parametrize(
    "argv, complaint",
    [
        (["--langs", "xx"], "unknown language code 'xx'"),
        (["--langs", "fil"], "no installed TTS engine"),
        (["--langs", "es", "--clips-per-word", "2"], "--clips-per-word must be at least 3"),
        (["--langs", "es", "--words", "es:año,x1"], "'x1' is not a keyword"),
        (["--langs", "es", "--words", "en:dog"], "not in --langs"),
        (["--langs", "eu"], "wordfreq has no word list for 'eu'"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_1(tmp_path, capsys, argv, complaint):
    code = main([*argv, "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1 and complaint in err and err.startswith("synthesize-corpus: error:")
    assert not (tmp_path / "out").exists()


def test_missing_espeak_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    engines.have.cache_clear()
    try:
        code = main(["--langs", "es", "--out", str(tmp_path / "out"), "--quiet"])
    finally:
        monkeypatch.undo()
        engines.have.cache_clear()
    err = capsys.readouterr().err
    assert code == 3 and "apt-get install espeak-ng" in err  # the machine lacks it: exit status 3
    assert len(err.strip().splitlines()) == 1


def test_cli_summary(tmp_path, capsys):
    code = main(
        ["--langs", "es", "--words", "es:año,casa,perro", "--no-number-words", "--clips-per-word", "3",
         "--speakers-per-lang", "6", "--jobs", "1", "--quiet", "--out", str(tmp_path / "c"), "--augment", "none"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "1 languages, 3 words" in out and "9 clips (9 rendered, 0 already present, 0 failed)" in out
    speakers = read_csv(tmp_path / "c" / "es_speakers.csv")
    assert {row["noise"] for row in speakers} == {"none"} and {row["band"] for row in speakers} == {"full"}


def test_more_clips_per_word_keeps_the_clips_already_made(tmp_path):
    from dataset_builder.synth.build import plan_language

    voices = engines.voices_for("es")
    few = plan_language("es", voices, small_config(tmp_path, clips_per_word=4, speakers_per_lang=20))
    more = plan_language("es", voices, small_config(tmp_path, clips_per_word=8, speakers_per_lang=20))
    assert {j.link for j in few.jobs} < {j.link for j in more.jobs}


def test_sigterm_stops_cleanly_and_the_rerun_resumes(tmp_path):
    import subprocess
    import sys
    import time

    out = tmp_path / "c"
    argv = [sys.executable, "-m", "dataset_builder.synth.cli", "--langs", "es", "--words", "es:año,casa,perro,gato",
            "--no-number-words", "--clips-per-word", "8", "--jobs", "2", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not any(out.rglob("*.opus")):
        time.sleep(0.05)
    if proc.poll() is not None:
        # Too fast to interrupt is fine; a crash is not.
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"synthesize-corpus exited with {proc.returncode} before SIGTERM:\n{err}"
        pytest.skip("the run finished before it could be interrupted")
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "rerun the same command to resume" in err
    assert not (out / "es_splits.csv").exists()  # index files only at the end
    made = len(list(out.rglob("*.opus")))
    code = main(argv[3:])
    assert code == 0
    assert len(read_splits(out, "es")) == 32 and made < 32


def test_too_few_speakers_for_the_clips_is_refused(tmp_path, capsys):
    # 15 speakers split 11/2/2; 14 clips per word want 12/1/1: one TRAIN speaker short.
    code = main(["--langs", "es", "--words", "es:año,casa,perro", "--clips-per-word", "14",
                 "--speakers-per-lang", "15", "--out", str(tmp_path / "c"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "raise --speakers-per-lang" in err and "12 TRAIN" in err
    assert not (tmp_path / "c").exists()


def test_help_ends_with_the_exit_statuses(capsys):
    from protos.errors import EXIT_STATUS_HELP

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.rstrip().endswith(EXIT_STATUS_HELP)
