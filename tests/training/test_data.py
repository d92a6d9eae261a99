"""Training data: the brief's paired layout, on-the-fly mixing, make-dataset, and eval on its output."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from helpers import assert_clean_failure, run_cli, write_tone_noise

from realtime.errors import AudioError
from training.corpus import load_corpus, split_corpus
from training.mixing import MixConfig, Mixer, rms
from training.paired import PairedCorpus, layout_pairs, match_pairs


def test_mixtures_have_the_requested_snr_level_and_no_clipping(speech_dir, noise_dir, cache_dir) -> None:
    config = MixConfig(seconds=1.0, snr_db=(0.0, 20.0), second_noise=0.0)
    mixer = Mixer(load_corpus([speech_dir]), load_corpus([noise_dir]), config)
    rng = np.random.default_rng(0)
    for _ in range(20):
        mix = mixer.pair(rng)
        assert mix.noisy.shape == mix.clean.shape == (16000,)
        measured = 20 * np.log10(rms(mix.clean) / rms(mix.noisy - mix.clean))
        assert abs(measured - mix.snr_db) < 0.01
        assert 0.0 <= mix.snr_db <= 20.0
        assert np.max(np.abs(mix.noisy)) <= config.peak + 1e-6
        assert mix.speech.parent == speech_dir and all(p.parent == noise_dir for p in mix.noise)


def test_mixing_is_reproducible_from_the_seed(speech_dir, noise_dir, cache_dir) -> None:
    mixer = Mixer(load_corpus([speech_dir]), load_corpus([noise_dir]), MixConfig(seconds=3.0))  # noise clips are 2 s
    a = mixer.batch(4, np.random.default_rng(7))
    b = mixer.batch(4, np.random.default_rng(7))
    c = mixer.batch(4, np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_corpus_cache_returns_the_same_audio(speech_dir, cache_dir) -> None:
    first = load_corpus([speech_dir])
    assert list(cache_dir.glob("corpus-*.npz"))
    second = load_corpus([speech_dir])
    assert [p.name for p in first.paths] == [p.name for p in second.paths]
    assert all(np.array_equal(x, y) for x, y in zip(first.clips, second.clips))


def test_holdout_split_is_disjoint_and_deterministic(speech_dir, cache_dir) -> None:
    corpus = load_corpus([speech_dir])
    train, val = split_corpus(corpus, 0.5)
    assert len(train) + len(val) == len(corpus)
    assert not {p.name for p in train.paths} & {p.name for p in val.paths}
    assert [p.name for p in split_corpus(corpus, 0.5)[1].paths] == [p.name for p in val.paths]


def make_layout(root, names_noisy, names_clean, split="test"):
    for sub, names in (("denoising", names_noisy), ("voice_origin", names_clean)):
        (root / sub / split).mkdir(parents=True)
        for i, name in enumerate(names):
            write_tone_noise(root / sub / split / name, seconds=0.5, seed=i)


def test_paired_layout_matches_by_name(tmp_path) -> None:
    make_layout(tmp_path, ["a.wav", "b.wav"], ["a.wav", "b.wav"])
    pairs = layout_pairs(tmp_path, "test")
    assert [p.name for p in pairs] == ["a.wav", "b.wav"]
    noisy, clean = PairedCorpus(pairs, 4000).batch(3, np.random.default_rng(0))
    assert noisy.shape == clean.shape == (3, 4000)


def test_unmatched_names_are_reported_by_name(tmp_path) -> None:
    make_layout(tmp_path, ["a.wav", "extra.wav"], ["a.wav", "lonely.wav"])
    with pytest.raises(AudioError, match="extra.wav.*lonely.wav"):
        layout_pairs(tmp_path, "test")
    pairs = match_pairs(tmp_path / "denoising" / "test", tmp_path / "voice_origin" / "test", strict=False)
    assert [p.name for p in pairs] == ["a.wav"]


def test_make_dataset_writes_a_layout_that_loads_and_scores(tmp_path, speech_dir, noise_dir) -> None:
    root = tmp_path / "audio"
    result = run_cli(
        "make-dataset",
        "--speech",
        speech_dir,
        "--noise",
        noise_dir,
        "--out",
        root,
        "--split",
        "dev",
        "--count",
        "4",
        "--seconds",
        "1.5",
        "--seed",
        "3",
    )
    assert result.code == 0, result.stderr
    pairs = layout_pairs(root, "dev")
    assert len(pairs) == 4
    assert all(sf.info(str(p.noisy)).frames == 24000 for p in pairs)
    rows = list(csv.DictReader((root / "dev.csv").open()))
    assert [r["name"] for r in rows] == [p.name for p in pairs]
    assert all(0 <= float(r["snr_db"]) <= 20 and r["speech"] and r["noise"] for r in rows)
    report = tmp_path / "scores.json"
    result = run_cli(
        "eval",
        "--clean",
        root / "voice_origin" / "dev",
        "--enhanced",
        root / "denoising" / "dev",
        "--csv",
        root / "dev.csv",
        "--json",
        report,
        "--jobs",
        "1",
    )
    assert result.code == 0, result.stderr
    scores = json.loads(report.read_text())
    assert scores["count"] == 4 and not scores["failures"]
    assert 1.0 <= scores["overall"]["pesq_wb"] <= 4.7 and 0 < scores["overall"]["stoi"] <= 1
    assert "| all | 4 |" in result.stdout


def test_eval_runs_the_model_on_noisy_files(tmp_path, example_noisy, example_clean) -> None:
    for sub, src in (("noisy", example_noisy), ("clean", example_clean)):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "ex.flac").write_bytes(src.read_bytes())
    result = run_cli(
        "eval",
        "--noisy",
        tmp_path / "noisy",
        "--clean",
        tmp_path / "clean",
        "--json",
        tmp_path / "s.json",
        "--jobs",
        "1",
    )
    assert result.code == 0, result.stderr
    denoised = json.loads((tmp_path / "s.json").read_text())["overall"]["si_sdr"]
    result = run_cli(
        "eval",
        "--enhanced",
        tmp_path / "noisy",
        "--clean",
        tmp_path / "clean",
        "--json",
        tmp_path / "n.json",
        "--jobs",
        "1",
    )
    assert denoised > json.loads((tmp_path / "n.json").read_text())["overall"]["si_sdr"]


def test_silence_is_reported_not_crashed(tmp_path) -> None:
    for sub in ("clean", "enhanced"):
        (tmp_path / sub).mkdir()
    write_tone_noise(tmp_path / "clean" / "x.wav")
    sf.write(str(tmp_path / "enhanced" / "x.wav"), np.zeros(16000, np.float32), 16000)
    result = run_cli("eval", "--clean", tmp_path / "clean", "--enhanced", tmp_path / "enhanced", "--jobs", "1")
    assert result.code == 0
    assert "not scored: x.wav: pesq_wb" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("case", ["missing", "empty", "mismatched"])
def test_eval_bad_folders_are_one_line_errors(tmp_path, case: str) -> None:
    clean, enhanced = tmp_path / "clean", tmp_path / "enhanced"
    if case != "missing":
        clean.mkdir()
        enhanced.mkdir()
    if case == "mismatched":
        write_tone_noise(clean / "a.wav")
        write_tone_noise(enhanced / "b.wav")
    assert_clean_failure(run_cli("eval", "--clean", clean, "--enhanced", enhanced))
