"""Each model family end to end on a tiny model: `denoise train --arch`, export, and the engine, whose streaming
equals whole-file processing at every block size; and the CLI's family options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import assert_clean_failure, run_cli

from realtime.engine import Denoiser

TINY = {
    "stft-unet": ["L=32", "C=4", "D=2"],
    "wave-unet": ["L=3", "F_c=4", "f_d=5", "f_u=3"],
    "lstm-tasnet": ["N=16", "L=16", "H=16", "R=1"],
}


def train_args(arch: str, speech_dir: Path, noise_dir: Path, out: Path) -> list[str]:
    options = [arg for item in TINY[arch] for arg in ("--model-option", item)]
    return [
        "train",
        "--arch",
        arch,
        *options,
        *("--speech", str(speech_dir), "--noise", str(noise_dir), "--out", str(out)),
        *("--batch-size", "2", "--seconds", "0.5", "--threads", "1", "--steps", "2", "--val-every", "1000"),
        "--allow-non-commercial",  # the test noise is UrbanSound8K (CC BY-NC)
    ]


@pytest.fixture(scope="module", params=list(TINY))
def exported(request, tmp_path_factory, speech_dir, noise_dir) -> tuple[str, Path]:
    arch, folder = request.param, tmp_path_factory.mktemp(request.param)
    env = {**os.environ, "RTDENOISE_CACHE": str(folder / "cache")}
    command = [sys.executable, "-m", "realtime.cli", *train_args(arch, speech_dir, noise_dir, folder / "run")]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = run_cli("export", folder / "run" / "last.pt", "-o", folder / "model.onnx")
    assert result.code == 0, result.stderr
    return arch, folder / "model.onnx"


def test_export_records_the_family_and_its_state(exported) -> None:
    arch, path = exported
    doc = json.loads(path.with_suffix(".json").read_text())
    assert doc["model_config"]["arch"] == arch and doc["verified_max_abs_error"] <= 1e-4
    assert doc["inputs"] == ["chunk", *doc["state"]] and "ring" not in doc  # short-run graphs are Conv-TasNet's
    assert doc["window"] == Denoiser(path).hop * (1 if arch == "wave-unet" else 2)
    assert Denoiser(path).algorithmic_latency == doc["delay"] == (0 if arch == "wave-unet" else doc["window"] // 2)


@pytest.mark.parametrize("block", [1, 32, 37, 160, 512, None])
def test_streaming_equals_whole_file_processing(exported, block: int | None) -> None:
    _, path = exported
    sizes = [block] * (8000 // block) if block else [int(n) for n in np.random.default_rng(1).integers(1, 700, 30)]
    x = (np.random.default_rng(0).standard_normal(sum(sizes)) * 0.1).astype(np.float32)
    whole = Denoiser(path)
    reference = np.concatenate([whole.feed(x), whole.flush()])[whole.latency :]
    engine = Denoiser(path, block_size=block)
    outs, pos = [], 0
    for n in sizes:
        outs.append(engine.feed(x[pos : pos + n]))
        pos += n
    out = np.concatenate([*outs, engine.flush()])[engine.latency :]
    assert len(out) == len(x) and np.max(np.abs(out - reference)) <= 1e-4


def test_denoise_file_runs_the_family(exported, tmp_path, example_noisy) -> None:
    _, path = exported
    result = run_cli("file", example_noisy, "-o", tmp_path / "out.wav", "--model", path)
    assert result.code == 0, result.stderr
    out, rate = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert rate == 16000 and len(out) == sf.info(str(example_noisy)).frames and np.isfinite(out).all()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--arch", "wave-unet", "--N", "8"], "Conv-TasNet option"),
        (["--arch", "lstm-tasnet", "--model-option", "Q=3"], "no 'Q'"),
        (["--arch", "stft-unet", "--model-option", "C=four"], "whole number"),
        (["--arch", "stft-unet", "--model-option", "L=30"], "multiple of 4"),
    ],
)
def test_family_options_are_checked_before_training(tmp_path, speech_dir, noise_dir, args, expected) -> None:
    command = ["train", "--speech", speech_dir, "--noise", noise_dir, "--out", tmp_path / "run", *args]
    assert expected in assert_clean_failure(run_cli(*command))
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_with_only_weights_and_model_config_exports(tmp_path) -> None:
    """What `bench engine-depth` saves, or a checkpoint from elsewhere: no training record, still a model."""
    from model.config import WaveUNetConfig
    from model.families import build
    from training.checkpoint import save_atomic

    model = build(WaveUNetConfig(L=2, F_c=2, f_d=3, f_u=3))
    save_atomic({"model": model.state_dict(), "model_config": model.get_config(), "step": 0}, tmp_path / "bare.pt")
    result = run_cli("export", tmp_path / "bare.pt", "-o", tmp_path / "bare.onnx")
    assert result.code == 0, result.stderr
    assert json.loads((tmp_path / "bare.json").read_text())["model"] == "causal Wave-U-Net"
