"""The training mix: licences, per-source weights and augmentation, on real audio files."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_clean_failure, run_cli

from training import augment
from training.config import NO_AUGMENTATION, Augmentation, TrainConfig
from training.corpus import load_corpus
from training.data import TrainingData, clip_sources, commercial_only, source_weights
from training.losses import compressed_spectrum
from training.mixing import MixConfig, Mixer, rms
from training.provenance import initialised_from, training_data

SR = 16000


def documented(folder: Path, licence: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SOURCE.txt").write_text(f"Source: a test\nLicence: {licence}\n")
    return folder


@pytest.fixture
def noise_sources(tmp_path: Path, noise_dir: Path) -> Path:
    """Three documented noise sources of 2 s clips: a commercial one with two clips, a non-commercial one with
    two, and a source of mixed licences whose ESC50 part is non-commercial (reviewed in MIXED_LICENCES)."""
    root = tmp_path / "noise"
    clips = sorted(noise_dir.glob("*.flac"))
    moodist = documented(root / "moodist", "Pixabay Content License or CC0")
    shutil.copy(clips[0], moodist / "a.flac")
    shutil.copy(clips[1], moodist / "b.flac")
    for clip in clips[1:]:
        shutil.copy(clip, documented(root / "urbansound8k", "UrbanSound8K is CC BY-NC 3.0") / clip.name)
    mixed = documented(root / "speechbrain", "repo Apache-2.0; ESC-50 clips are CC BY-NC 3.0 (Piczak 2015)")
    (mixed / "noise").mkdir()
    (mixed / "ESC50").mkdir()
    shutil.copy(clips[1], mixed / "noise" / "n.flac")
    shutil.copy(clips[2], mixed / "ESC50" / "e.flac")
    return root


def test_non_commercial_files_are_left_out_unless_allowed(noise_sources, cache_dir, capsys) -> None:
    corpus = load_corpus([noise_sources])
    sources = clip_sources(corpus, [str(noise_sources)])
    kept, kept_sources = commercial_only(corpus, sources, "noise")
    names = sorted(str(p.relative_to(noise_sources)) for p in kept.paths)
    assert names == ["moodist/a.flac", "moodist/b.flac", "speechbrain/noise/n.flac"]
    assert {s.name for s in kept_sources} == {"moodist", "speechbrain"}
    assert "left out 3 non-commercial noise files (speechbrain, urbansound8k)" in capsys.readouterr().err

    doc = training_data([], [str(noise_sources)], [], [], allow_non_commercial=False)
    assert doc["non_commercial"] is False
    entries = {e["source"]: e for e in doc["sources"]["noise"]}
    assert entries["speechbrain"]["left_out"] == ["ESC50"] and entries["urbansound8k"]["non_commercial"] is False
    assert training_data([], [str(noise_sources)], [], [], allow_non_commercial=True)["non_commercial"] is True


def test_weights_started_from_a_non_commercial_model_stay_non_commercial(noise_sources) -> None:
    own = training_data([], [str(noise_sources)], [], [], allow_non_commercial=False)
    teacher = training_data([], [str(noise_sources)], [], [], allow_non_commercial=True)
    record = initialised_from(own, "teacher.pt", teacher)
    assert record["non_commercial"] is True and "started from" in str(record["note"])
    assert record["initialised_from"] == {"checkpoint": "teacher.pt", "data": teacher}
    assert record["sources"] == own["sources"]  # its own sources as they were
    assert initialised_from(own, "teacher.pt", own)["non_commercial"] is False
    assert initialised_from(own, "unrecorded.pt", None)["non_commercial"] is True


def test_training_on_only_non_commercial_noise_needs_the_opt_in(tmp_path, speech_dir, noise_dir, cache_dir) -> None:
    argv = ["train", "--speech", speech_dir, "--noise", noise_dir, "--out", tmp_path / "run", "--steps", "1"]
    message = assert_clean_failure(run_cli(*argv))
    assert "every noise file is non-commercial: pass --allow-non-commercial" in message
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize(
    ("balance", "weight", "moodist_share"), [(1.0, 1.0, 2 / 3), (0.0, 1.0, 1 / 2), (0.0, 3.0, 3 / 4)]
)
def test_sources_are_drawn_by_their_weight(noise_sources, cache_dir, balance, weight, moodist_share) -> None:
    """moodist has 4 s, speechbrain 2 s: by duration (balance 1) 2/3, sources equally (0) 1/2, x3 then 3/4."""
    corpus = load_corpus([noise_sources])
    corpus, sources = commercial_only(corpus, clip_sources(corpus, [str(noise_sources)]), "noise")
    weights = source_weights(corpus, sources, balance, {"moodist": weight})
    speech = load_corpus([noise_sources / "moodist"])  # any audible clip serves as speech here
    mixer = Mixer(speech, corpus, MixConfig(seconds=0.25, second_noise=0.0), noise_weights=weights)
    rng = np.random.default_rng(0)
    drawn = Counter(mixer.pair(rng).noise[0].parent.name for _ in range(3000))
    assert abs(drawn["moodist"] / 3000 - moodist_share) < 0.03


def test_a_run_saved_before_the_data_mix_existed_resumes_with_what_it_did() -> None:
    legacy = TrainConfig.from_dict({"speech": ["s"], "noise": ["n"], "snr_db": [0, 20]})
    assert legacy.speech_balance is None and legacy.noise_balance is None and legacy.allow_non_commercial
    assert legacy.augment == NO_AUGMENTATION == Augmentation(reverb=0.0, eq=0.0, band_limit=0.0, clipping=0.0)
    flat = {k: v for k, v in legacy.to_dict().items() if k != "augment"}  # as the first augmented run saved it
    first = TrainConfig.from_dict({**flat, "reverb": 0.3, "eq": 0.3, "clipping": 0.05})
    assert first.augment == Augmentation(reverb=0.3, eq=0.3, band_limit=0.0, clipping=0.05)
    assert legacy.level_dbfs == MixConfig().level_dbfs
    new = TrainConfig()
    assert TrainConfig.from_dict(new.to_dict()) == new


def test_reverberation_keeps_the_direct_path_and_early_reflections_as_the_target() -> None:
    rir = np.zeros(SR, np.float32)
    rir[100] = 1.0  # the direct path, then a reflection at 20 ms and a late one at 300 ms
    rir[100 + SR // 50] = 0.5
    rir[100 + int(0.3 * SR)] = 0.4
    trimmed = augment.trim_rir(rir, SR)
    assert np.argmax(trimmed) == SR // 1000  # 1 ms before the direct path is kept
    speech = np.zeros(SR, np.float32)
    speech[1000] = 1.0
    wet, early = augment.reverberate(speech, trimmed, SR)
    peaks = np.flatnonzero(np.abs(wet) > 1e-3)
    assert len(peaks) == 3 and len(np.flatnonzero(np.abs(early) > 1e-3)) == 2  # the late one is not in the target
    assert np.sum(early**2) == pytest.approx(1.0, rel=1e-5)  # the early part has unit energy


def test_simulated_rooms_are_reproducible_and_decay(cache_dir) -> None:
    first = augment.simulated_rirs(2, seed=3, sample_rate=SR)
    assert list(cache_dir.glob("rooms-*.npz"))
    again = augment.simulated_rirs(2, seed=3, sample_rate=SR)  # from the cache
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    for rir in first:
        assert np.argmax(np.abs(rir)) < SR // 100  # the direct path comes first
        assert rms(rir[-len(rir) // 4 :]) < rms(rir[: len(rir) // 4]) / 10  # and the tail has decayed


def test_band_limits_and_clipping_act_on_the_mixture_as_a_device_would(speech_dir, noise_dir, cache_dir) -> None:
    devices = Augmentation(eq=0.0, band_limit=1.0, clipping=1.0, overdrive_db=(6.0, 6.0))
    config = MixConfig(seconds=1.0, second_noise=0.0, augment=devices)
    mixer = Mixer(load_corpus([speech_dir]), load_corpus([noise_dir]), config)
    rng = np.random.default_rng(1)
    for _ in range(10):
        mix = mixer.pair(rng)
        spectrum = np.abs(np.fft.rfft(mix.noisy)) ** 2
        target = np.abs(np.fft.rfft(mix.clean)) ** 2
        top = np.fft.rfftfreq(len(mix.noisy), 1 / SR) > 7600  # above every device band's low-pass
        assert spectrum[top].sum() < 1e-3 * spectrum.sum() and target[top].sum() < 1e-3 * target.sum()
        clipped = np.mean(np.abs(mix.noisy) >= 0.99 * np.max(np.abs(mix.noisy)))
        assert clipped > 0.001  # flat tops where the input was overdriven
        assert np.max(np.abs(mix.clean)) > np.max(np.abs(mix.noisy))  # the target is not clipped


def test_augmented_mixing_is_reproducible_from_the_seed(speech_dir, noise_dir, cache_dir) -> None:
    rirs = augment.simulated_rirs(2, seed=0, sample_rate=SR)
    config = MixConfig(seconds=1.0, augment=Augmentation(reverb=0.5, eq=0.5, band_limit=0.5, clipping=0.5))
    mixer = Mixer(load_corpus([speech_dir]), load_corpus([noise_dir]), config, rirs=rirs)
    a, b = mixer.batch(6, np.random.default_rng(5)), mixer.batch(6, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.isfinite(a[0]).all() and np.max(np.abs(a[0])) <= config.peak + 1e-6


def test_reverb_without_impulse_responses_is_a_clear_error(tmp_path, speech_dir, noise_dir, cache_dir) -> None:
    config = TrainConfig(
        speech=[str(speech_dir)], noise=[str(noise_dir)], allow_non_commercial=True, augment=Augmentation(reverb=0.5)
    )
    with pytest.raises(Exception, match="reverberation needs room impulse responses"):
        TrainingData(config, SR)
    result = run_cli("train", "--speech", speech_dir, "--noise", noise_dir, "--out", tmp_path / "r", "--eq", "1.5")
    assert "--eq 1.5: a probability, from 0 to 1" in assert_clean_failure(result)
    for weight in ("moodist", "moodist=heavy", "=2", "moodist=inf"):
        result = run_cli(
            "train", "--speech", speech_dir, "--noise", noise_dir, "--out", tmp_path / "r", "--source-weight", weight
        )
        assert f"--source-weight {weight}: expected NAME=WEIGHT" in assert_clean_failure(result)
    assert not (tmp_path / "r").exists()


def test_the_compressed_spectral_loss_is_zero_only_for_the_target() -> None:
    torch.manual_seed(0)
    target = torch.randn(2, SR)
    assert compressed_spectrum(target, target).item() == pytest.approx(0.0, abs=1e-6)
    noisy = target + 0.3 * torch.randn(2, SR)
    assert compressed_spectrum(noisy, target).item() > compressed_spectrum(target + 0.1 * torch.randn(2, SR), target)
    assert compressed_spectrum(0.5 * target, target).item() > 0.01  # it pins the level, as MR-STFT does
