"""train-embedding end to end on the tiny corpus: plan, held-out data, resume, exports."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_model import train_tiny

# Also run under the second supported Python in CI (.ci/run: -m second_python).
pytestmark = pytest.mark.second_python


def _corpus_clips(corpus: Path, n: int = 6) -> np.ndarray:
    from corpus.audio import load_clip

    paths = sorted(corpus.glob("*/clips/*/*.opus"))[:n]
    return np.stack([load_clip(p) for p in paths])


def test_tiny_model_loads_in_one_line_and_embeds(tiny_model_dir, tiny_corpus):
    import embedding_model

    backend = embedding_model.load_model(tiny_model_dir)
    clips = _corpus_clips(tiny_corpus)
    out = backend.embed(clips)
    assert backend.name == "mswc" and backend.dim == 1024
    assert out.shape == (len(clips), 1024) and out.dtype == np.float32 and np.all(np.isfinite(out))
    # Raw-vector scale for DataPerf's classifier: far from unit norm, every unit varying.
    assert np.all(np.linalg.norm(out, axis=1) > 5.0)
    assert np.all(out.std(axis=0) > 0)
    again = embedding_model.get_backend("mswc", model=tiny_model_dir)
    assert again.identity == backend.identity
    np.testing.assert_allclose(again.embed(clips[:2]), out[:2], rtol=1e-5, atol=1e-5)


def test_number_words_are_never_classes(tiny_model_run):
    plan = json.loads((tiny_model_run / "plan.json").read_text(encoding="utf-8"))
    classes = set(plan["classes"])
    for lang, numbers in (("es", {"uno", "dos", "tres"}), ("en", {"one", "two", "three"})):
        assert numbers <= set(plan["number_words"][lang])
        assert not {f"{lang}/{w}" for w in numbers} & classes
    assert "es/año" in classes


def test_plan_holds_out_words_languages_and_voices(tiny_corpus):
    from corpus.speakers import read_voices
    from embedding_model.plan import heldout_clips, make_plan, plan_clips

    voices = sorted(set(read_voices(tiny_corpus, "es").values()))
    engine = voices[0].split(":")[0]
    plan = make_plan(tiny_corpus, holdout_langs=["en"], holdout_word_frac=0.34, holdout_engines=[],
                     holdout_voice_frac=0.3, min_clips=2, seed=3)
    assert plan.langs == ["es"] and plan.holdout_langs == ["en"]
    assert all(c.startswith("es/") for c in plan.classes)
    held = set(plan.holdout_words["es"])
    assert len(held) == 2 and not {f"es/{w}" for w in held} & set(plan.classes)
    assert plan.holdout_voices
    train, val = plan_clips(plan, "es")
    assert train and val
    assert not [r for r in train + val if r.voice in plan.holdout_voices or r.word in held]
    assert {r.split for r in train} == {"TRAIN"} and {r.split for r in val} == {"DEV"}
    assert not {r.speaker for r in train} & {r.speaker for r in val}
    measured = heldout_clips(plan, "es")
    assert {r.word for r in measured["unseen_words"]} <= held | set(plan.number_words["es"])
    assert all(r.voice in plan.holdout_voices for r in measured["unseen_voices"])
    assert heldout_clips(plan, "en")["unseen_language"]
    by_engine = make_plan(tiny_corpus, holdout_langs=[], holdout_engines=[engine], holdout_voice_frac=0, min_clips=2)
    train, val = plan_clips(by_engine, "es")
    assert not [r for r in train + val if r.voice.startswith(engine + ":")]


def test_plan_reads_a_corpus_wherever_build_dataset_finds_its_splits(tmp_path):
    from corpus.layout import ClipRecord, write_splits
    from corpus.speakers import write_speakers
    from embedding_model.plan import make_plan, plan_clips

    # The splits as an unpacked splits/es.tar.gz leaves them, the voices sidecar beside them.
    (tmp_path / "splits" / "es").mkdir(parents=True)
    records = [ClipRecord(f"{w}/{w}{i}.opus", w, split, True, f"s{i}", "MALE")
               for w in ("casa", "perro", "uno") for i, split in enumerate(("TRAIN", "TRAIN", "DEV"))]
    write_splits(tmp_path / "splits" / "es" / "es_splits.csv", records)
    write_speakers(tmp_path / "splits" / "es" / "es_speakers.csv", ("speaker", "engine", "voice"),
                   [(f"s{i}", "espeak-ng", "es") for i in range(3)])
    plan = make_plan(tmp_path, holdout_langs=[], holdout_word_frac=0, holdout_engines=[], min_clips=2)
    assert plan.langs == ["es"] and plan.classes == ["es/casa", "es/perro"]
    assert plan.number_words["es"] == ["uno"]
    train, val = plan_clips(plan, "es")
    assert len(train) == 4 and len(val) == 2 and {r.voice for r in train} == {"espeak-ng:es:"}


def test_interrupted_training_resumes_where_it_stopped(tiny_model_run, tmp_path, capsys):
    cache = tiny_model_run / "cache"
    corpus = Path(json.loads((tiny_model_run / "plan.json").read_text())["corpus"])
    run = tmp_path / "run"
    # A zero-minute budget stops right after the first step, with a checkpoint.
    assert train_tiny(corpus, run, "--cache-dir", str(cache), "--max-minutes", "0") == 0
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 1, 1)
    assert not (run / "curves.csv").exists()
    capsys.readouterr()
    assert train_tiny(corpus, run, "--cache-dir", str(cache)) == 0
    assert "resumed from" in capsys.readouterr().err
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    ref = json.loads((tiny_model_run / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and state["global_step"] == ref["global_step"]
    with open(run / "curves.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert (run / "curves.png").stat().st_size > 0


def test_ship_exports_agree_and_checkpoint_resumes(tiny_model_run, tmp_path, capsys):
    import tensorflow as tf

    from embedding_model import load_model
    from embedding_model.export import TFLiteEmbedder, cosine_rows

    corpus = Path(json.loads((tiny_model_run / "plan.json").read_text())["corpus"])
    cache = str(tiny_model_run / "cache")
    ship = tmp_path / "models"
    assert train_tiny(corpus, tmp_path / "run", "--cache-dir", cache, "--epochs", "1", "--ship-to", str(ship)) == 0
    for name in ("mswc_embedding.keras", "mswc_embedding.json", "mswc_embedding.tflite", "holdout.json",
                 "saved_model/saved_model.pb", "checkpoint/state.json", "curves.csv"):
        assert (ship / name).exists(), name
    clips = _corpus_clips(corpus, 8)
    reference = load_model(ship).embed(clips)
    served = tf.saved_model.load(str(ship / "saved_model")).signatures["serving_default"]
    got = served(waveforms=tf.constant(clips))["embeddings"].numpy()
    assert got.shape == (8, 1024) and cosine_rows(reference, got).min() > 0.9999
    assert cosine_rows(reference, TFLiteEmbedder(ship / "mswc_embedding.tflite").embed(clips)).min() > 0.999
    meta = json.loads((ship / "mswc_embedding.json").read_text())
    int8 = meta["exports"]["tflite_int8"]
    assert (ship / "mswc_embedding_int8.tflite").exists() == int8["kept"]
    if int8["kept"]:
        assert cosine_rows(reference, TFLiteEmbedder(ship / "mswc_embedding_int8.tflite").embed(clips)).mean() > 0.98
    # The compact checkpoint in the shipped directory restarts training where it stopped.
    capsys.readouterr()
    assert train_tiny(corpus, tmp_path / "run2", "--cache-dir", cache, "--resume-from", str(ship / "checkpoint")) == 0
    assert "started from" in capsys.readouterr().err
    state = json.loads((tmp_path / "run2" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2


def test_bad_corpus_is_one_clear_error(tmp_path, capsys):
    from embedding_model.train import main

    assert main(["--corpus", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--corpus" in err[0] and "not a directory" in err[0]
    (tmp_path / "empty").mkdir()
    assert main(["--corpus", str(tmp_path / "empty"), "--run-dir", str(tmp_path / "run")]) == 1
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, complaint",
    [
        (["--teacher", "loud:x"], "--teacher 'loud:x': expected"),
        (["--batch-size", "1"], "--batch-size >= 2"),
        (["--holdout-word-frac", "2"], "--holdout-word-frac must be between 0 and 1, got 2.0"),
    ],
)
def test_bad_values_are_one_line_and_exit_1(tiny_corpus, tmp_path, capsys, flags, complaint):
    from embedding_model.train import main

    code = main(["--corpus", str(tiny_corpus), "--run-dir", str(tmp_path / "run"), "--langs", "es", *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and complaint in err[0] and err[0].startswith("train-embedding: error:")


def test_usage_error_is_argparses_exit_2(tmp_path, capsys):
    from embedding_model.train import main

    with pytest.raises(SystemExit) as done:
        main(["--corpus", str(tmp_path), "--run-dir", str(tmp_path), "--no-such-flag"])
    assert done.value.code == 2


def test_help_gives_each_default_once_and_the_exit_statuses(capsys):
    from embedding_model.train import main
    from protos.errors import EXIT_STATUS_HELP

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    # Was "(default: all in the corpus) (default: None)": each default once, none printed as None.
    assert "(default: None)" not in flat and not re.search(r"\(default:[^)]*\) \(default", flat)
    for flag, words in (("--batch-size", "clips per training step"), ("--label-smoothing", "label smoothing"),
                        ("--seed", "seed of the plan")):
        assert words in flat.rsplit(f"{flag} ", 1)[1][:120], flag  # its help, not the usage line
    assert flat.endswith(" ".join(EXIT_STATUS_HELP.split()))


def test_config_is_frozen_and_parsed_once(tmp_path):
    import dataclasses

    from embedding_model.train_config import TrainConfig, parse_config

    config = parse_config(["--corpus", str(tmp_path), "--run-dir", str(tmp_path / "run"), "--langs", "es,en",
                           "--holdout-engines", "", "--teacher", "none", "--specaugment", "0"])
    assert isinstance(config, TrainConfig)
    assert config.langs == ("es", "en") and config.holdout_engines == () and config.holdout_langs is None
    assert config.teacher is None and config.distill_weight == 0.0 and config.specaugment is False
    assert config.cache_root == tmp_path / "run" / "cache"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch_size = 2
    # The flags' defaults are the dataclass's: parsing no option gives the default config.
    bare = parse_config(["--corpus", str(tmp_path), "--run-dir", str(tmp_path / "run")])
    assert bare == TrainConfig(corpus=tmp_path, run_dir=tmp_path / "run")


def test_bf16_roundtrip_keeps_three_significant_digits():
    from embedding_model.trainer import _from_bf16_bits, _to_bf16_bits

    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 1e-6
    np.testing.assert_allclose(_from_bf16_bits(_to_bf16_bits(x)), x, rtol=4e-3)


def test_export_command_exit_statuses(tmp_path, capsys):
    from embedding_model.export import main
    from protos.errors import EXIT_STATUS_HELP

    assert main(["--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 3  # no model
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train with train-embedding first" in err[0]
    model = tmp_path / "model"
    model.mkdir()
    (model / "mswc_embedding.keras").write_bytes(b"")
    (tmp_path / "corpus").mkdir()
    code = main(["--model", str(model), "--out", str(tmp_path / "out"), "--calibration-corpus", str(tmp_path / "corpus")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "no clips to calibrate on" in err[0]  # bad input
    with pytest.raises(SystemExit):
        main(["--help"])
    assert " ".join(capsys.readouterr().out.split()).endswith(" ".join(EXIT_STATUS_HELP.split()))


def _weights(checkpoint: Path) -> list[np.ndarray]:
    state = json.loads((checkpoint / "state.json").read_text())
    with np.load(checkpoint / state["files"]["weights"]) as w:
        return [w[k].astype(np.float32) for k in sorted(w.files)]


def test_init_from_fine_tunes_with_a_new_schedule(tiny_model_run, tmp_path, capsys):
    corpus = Path(json.loads((tiny_model_run / "plan.json").read_text())["corpus"])
    cache = str(tiny_model_run / "cache")
    source = tiny_model_run / "checkpoint"
    # One step each (zero-minute budget): from the source's weights, and from scratch.
    assert train_tiny(corpus, tmp_path / "tuned", "--cache-dir", cache, "--init-from", str(source),
                      "--max-minutes", "0") == 0
    assert "fine-tuning from" in capsys.readouterr().err
    assert train_tiny(corpus, tmp_path / "fresh", "--cache-dir", cache, "--max-minutes", "0") == 0
    state = json.loads((tmp_path / "tuned" / "checkpoint" / "state.json").read_text())
    ref = json.loads((source / "state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 1, 1)
    assert state["init_from"]["global_step"] == ref["global_step"] > 1
    start = _weights(source)

    def distance(run: str) -> float:
        return sum(float(np.sum((a - b) ** 2)) for a, b in zip(_weights(tmp_path / run / "checkpoint"), start))

    assert distance("tuned") < 0.01 * distance("fresh")


def test_init_from_refuses_another_plan(tiny_model_run, tmp_path, capsys):
    import shutil

    corpus = Path(json.loads((tiny_model_run / "plan.json").read_text())["corpus"])
    plan = json.loads((tiny_model_run / "plan.json").read_text())
    reversed_classes = tmp_path / "reversed-classes"
    shutil.copytree(tiny_model_run / "checkpoint", reversed_classes)
    (reversed_classes / "plan.json").write_text(json.dumps({**plan, "classes": plan["classes"][::-1]}))
    # The source's own plan, but this run holds out voices the source trained on.
    cases = [(reversed_classes, [], "classes differ"),
             (tiny_model_run / "checkpoint", ["--holdout-voice-frac", "0.5"], "held-out voices")]
    for i, (source, flags, complaint) in enumerate(cases):
        run = tmp_path / f"run{i}"
        code = train_tiny(corpus, run, "--cache-dir", str(tiny_model_run / "cache"), "--init-from", str(source),
                          *flags)
        err = capsys.readouterr().err
        assert code == 1 and complaint in err and "Traceback" not in err, err
        assert not (run / "checkpoint").exists()
    code = train_tiny(corpus, tmp_path / "both", "--init-from", str(source), "--resume-from", str(source))
    assert code == 1 and "give one of them" in capsys.readouterr().err


def test_common_holdout_keeps_only_what_every_plan_held_out():
    from embedding_model.plan import TrainingPlan, common_holdout

    def plan(langs, engines, voices, words):
        return TrainingPlan(corpus="c", seed=0, langs=["en", "de"], holdout_langs=langs, classes=["en/a"],
                            holdout_words=words, number_words={"en": ["one"]}, holdout_engines=engines,
                            holdout_voices=voices, options={})

    a = plan(["el", "lt"], ["flite"], ["espeak:en:m1", "piper:en:x"],
             {"en": ["cat", "dog", "sun"], "de": ["haus"]})
    b = plan(["el"], ["flite", "festival"], ["piper:en:x", "piper:en:y"], {"en": ["dog", "sun", "moon"]})
    common = common_holdout([a, b])
    assert common.holdout_langs == ["el"] and common.holdout_engines == ["flite"]
    assert common.holdout_words == {"en": ["dog", "sun"], "de": []}
    assert common.number_words == {"en": ["one"]}
    # piper:en:x is held out by both; espeak:en:m1 only by a; piper:en:y only by b.
    assert common.holdout_voices == ["piper:en:x"]
    # A voice of an engine one plan holds out whole and the other lists counts as held out by both.
    c = plan(["el"], ["flite"], ["festival:en:kal"], {"en": ["dog"]})
    assert common_holdout([b, c]).holdout_voices == ["festival:en:kal"]
    assert common_holdout([a]).holdout_voices == a.holdout_voices


def test_speaker_warp_moves_formants_by_the_factor_and_stretches_time():
    import tensorflow as tf

    from embedding_model.frontend import FMAX, FMIN, N_FRAMES, N_MELS, _hz_to_mel, _mel_to_hz
    from embedding_model.trainer import _warp_fn, warp_tables

    freq, time = warp_tables(0.2, steps=5)  # factors 0.8, 0.9, 1.0, 1.1, 1.2
    np.testing.assert_allclose(freq[2], np.arange(N_MELS), atol=1e-4)
    np.testing.assert_allclose(time[2], np.arange(N_FRAMES), atol=1e-4)
    centres = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2)[1:-1])
    # A peak at band 15: after warping by 1.2 it sits where the band centre is 1.2 times as high.
    x = np.zeros((1, N_FRAMES, N_MELS), np.float32)
    x[0, :, 15] = 1.0
    moved = centres[(freq[4] >= 14.5) & (freq[4] <= 15.5)]
    assert moved.size and np.all(np.abs(moved / centres[15] - 1.2) < 0.08)
    # Time: factor 1.2 reads frames farther from the middle, so the word gets shorter.
    assert time[4][0] == 0 and time[4][-1] == N_FRAMES - 1 and time[4][10] < 10
    # The TF op: a batch of one long word, each clip warped by its own factor.
    word = np.zeros((64, N_FRAMES, N_MELS), np.float32)
    word[:, 14:35, 15] = 1.0
    tf.random.set_seed(0)
    out = _warp_fn(0.2)(tf.constant(word)).numpy()
    peaks = out.sum(axis=1).argmax(axis=1)
    lengths = (out.max(axis=2) > 0.5).sum(axis=1)
    assert len(set(peaks.tolist())) >= 3 and peaks.min() >= 12 and peaks.max() <= 18
    assert len(set(lengths.tolist())) >= 3 and lengths.min() >= 15 and lengths.max() <= 28
    assert np.all(np.isfinite(out)) and out.max() <= 1.0 + 1e-6
