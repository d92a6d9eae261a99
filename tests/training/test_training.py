"""Training on a tiny model: checkpoints, resume after kill -9, DDP with two processes, export."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_clean_failure, run_cli

from realtime.engine import Denoiser
from training.checkpoint import load_file, load_latest

TINY = [
    "--N",
    "16",
    "--B",
    "16",
    "--H",
    "16",
    "--X",
    "2",
    "--R",
    "1",
    "--L",
    "16",
    "--batch-size",
    "2",
    "--seconds",
    "0.5",
    "--threads",
    "1",
    "--allow-non-commercial",  # the test noise is UrbanSound8K (CC BY-NC)
]


def train_args(speech_dir: Path, noise_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--speech", str(speech_dir), "--noise", str(noise_dir), "--out", str(out), *TINY, *extra]


@pytest.fixture
def env(cache_dir) -> dict[str, str]:
    return {**os.environ, "RTDENOISE_CACHE": str(cache_dir)}


def run(args: list, env: dict[str, str], module: str = "realtime.cli") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], env=env, capture_output=True, text=True, timeout=600
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)["model"]


def test_training_validates_logs_and_keeps_the_best(tmp_path, speech_dir, noise_dir, env) -> None:
    out = tmp_path / "run"
    proc = run(train_args(speech_dir, noise_dir, out, "--steps", "20", "--val-every", "10"), env)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} >= {"last.pt", "best.pt", "train_log.csv"}
    rows = (out / "train_log.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in rows[1:]].count("val") == 2
    payload = load_file(out / "last.pt")
    assert payload["step"] == 20 and payload["cpu_seconds"] > 0
    assert payload["train_config"]["speech"] == [str(speech_dir)]


def test_kill_9_then_resume_continues_exactly(tmp_path, speech_dir, noise_dir, env) -> None:
    """A run killed mid-training and resumed ends with the same weights as one never interrupted."""
    steps = ["--steps", "40", "--val-every", "1000", "--checkpoint-minutes", "0"]
    straight = tmp_path / "straight"
    assert run(train_args(speech_dir, noise_dir, straight, *steps), env).returncode == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime.cli", *train_args(speech_dir, noise_dir, killed, *steps)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (killed / "last.pt").exists() and load_safely(killed / "last.pt") >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # what --resume reads: a kill between a save's two renames leaves prev.pt and no last.pt
    interrupted_at = load_latest(killed)["step"]
    assert 10 <= interrupted_at < 40

    resumed = run(train_args(speech_dir, noise_dir, killed, "--resume", *steps), env)
    assert resumed.returncode == 0, resumed.stderr
    assert load_file(killed / "last.pt")["step"] == 40
    a, b = weights(straight / "last.pt"), weights(killed / "last.pt")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def load_safely(path: Path) -> int:
    """Step of a checkpoint being rewritten concurrently (the rename is atomic, a read may still race)."""
    try:
        return load_file(path)["step"]
    except Exception:
        return -1


def test_resume_needs_an_existing_run_and_a_new_run_needs_an_empty_folder(tmp_path, speech_dir, noise_dir) -> None:
    out = tmp_path / "run"
    assert "no checkpoint to resume" in assert_clean_failure(
        run_cli(*train_args(speech_dir, noise_dir, out, "--resume", "--steps", "2"))
    )
    assert run_cli(*train_args(speech_dir, noise_dir, out, "--steps", "2", "--val-every", "1000")).code == 0
    assert "--resume" in assert_clean_failure(run_cli(*train_args(speech_dir, noise_dir, out, "--steps", "4")))


def test_batches_drawn_by_worker_processes_are_the_batches_of_the_training_process(
    tmp_path, speech_dir, noise_dir, env
) -> None:
    steps = ["--steps", "12", "--val-every", "1000"]
    inline, workers = tmp_path / "inline", tmp_path / "workers"
    assert run(train_args(speech_dir, noise_dir, inline, *steps), env).returncode == 0
    proc = run(train_args(speech_dir, noise_dir, workers, *steps, "--workers", "2"), env)
    assert proc.returncode == 0, proc.stderr
    a, b = weights(inline / "last.pt"), weights(workers / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_may_change_the_batch_size_and_nothing_else(tmp_path, speech_dir, noise_dir, env) -> None:
    """Moving a run to a GPU takes a larger batch; the data and model stay those of the run."""
    out = tmp_path / "run"
    assert run(train_args(speech_dir, noise_dir, out, "--steps", "3", "--val-every", "1000"), env).returncode == 0
    proc = run(["train", "--out", str(out), "--resume", "--steps", "5", "--batch-size", "3", "--N", "32"], env)
    assert proc.returncode == 0, proc.stderr
    payload = load_file(out / "last.pt")
    assert payload["step"] == 5
    assert payload["train_config"]["batch_size"] == 3 and payload["train_config"]["val_every"] == 1000
    assert payload["model_config"]["N"] == 16 and payload["train_config"]["speech"] == [str(speech_dir)]


def test_a_cooldown_takes_the_learning_rate_to_zero_and_ends_the_run(tmp_path, speech_dir, noise_dir, env) -> None:
    """A copy of an open-ended run cools down from where it stands; stopped, it resumes the same cool-down."""
    out = tmp_path / "run"
    assert run(train_args(speech_dir, noise_dir, out, "--steps", "50", "--val-every", "1000"), env).returncode == 0
    proc = run(["train", "--out", str(out), "--resume", "--cooldown", "100", "--steps", "100"], env)
    assert proc.returncode == 0, proc.stderr
    payload = load_file(out / "last.pt")
    assert payload["step"] == 100
    assert (payload["train_config"]["cooldown_from"], payload["train_config"]["cooldown_steps"]) == (50, 100)
    again = run_cli("train", "--out", out, "--resume", "--cooldown", "10")
    assert "cools down already (from step 50)" in assert_clean_failure(again)
    proc = run(["train", "--out", str(out), "--resume"], env)  # no --steps: the cool-down's end ends the run
    assert proc.returncode == 0, proc.stderr
    assert load_file(out / "last.pt")["step"] == 150
    rows = list(csv.DictReader((out / "train_log.csv").open()))
    lrs = [float(r["lr"]) for r in rows if r["kind"] == "train"]
    assert len(lrs) == 3 and lrs[1] > 0.0 and lrs[2] == 0.0  # logged at steps 50, 100 and 150
    assert [r["step"] for r in rows if r["kind"] == "val"] == ["150"]  # the cooled weights are scored


def test_the_cooldown_scales_the_schedule_linearly_to_zero() -> None:
    from training.config import TrainConfig
    from training.loop import lr_factor

    open_ended = TrainConfig(warmup=10, lr_half_life=1000)
    cooled = TrainConfig(warmup=10, lr_half_life=1000, cooldown_from=400, cooldown_steps=200)
    assert lr_factor(399, cooled) == lr_factor(399, open_ended)
    assert lr_factor(500, cooled) == pytest.approx(lr_factor(500, open_ended) / 2)
    assert lr_factor(600, cooled) == lr_factor(700, cooled) == 0.0


def test_an_unknown_device_is_a_clean_error(tmp_path, speech_dir, noise_dir) -> None:
    err = assert_clean_failure(run_cli(*train_args(speech_dir, noise_dir, tmp_path / "run", "--device", "tpu9")))
    assert "--device tpu9" in err


def test_a_log_from_an_older_version_gets_the_current_columns(tmp_path) -> None:
    from training.loop import LOG_FIELDS, CsvLog

    path = tmp_path / "train_log.csv"
    path.write_text("step,kind,loss,cpu_hours,note\n50,train,-1.5,0.010,\n")
    CsvLog(path).write(step=100, kind="train", loss="-2.0", gpu_hours="0.001")
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == LOG_FIELDS
    assert [(r["step"], r["loss"], r["cpu_hours"], r["gpu_hours"]) for r in rows] == [
        ("50", "-1.5", "0.010", ""),
        ("100", "-2.0", "", "0.001"),
    ]


def test_two_process_ddp_training(tmp_path, speech_dir, noise_dir, env) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "realtime.cli",
            *train_args(speech_dir, noise_dir, out, "--steps", "6", "--val-every", "1000"),
        ],
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_file(out / "last.pt")["step"] == 6


def test_export_writes_a_verified_model_with_its_provenance(tmp_path, speech_dir, noise_dir, env) -> None:
    out = tmp_path / "run"
    assert run(train_args(speech_dir, noise_dir, out, "--steps", "3", "--val-every", "1000"), env).returncode == 0
    onnx_path = tmp_path / "tiny.onnx"
    result = run_cli("export", out / "last.pt", "-o", onnx_path)
    assert result.code == 0, result.stderr
    doc = json.loads(onnx_path.with_suffix(".json").read_text())
    assert doc["verified_max_abs_error"] <= 1e-4
    assert doc["training"]["steps"] == 3 and doc["model_config"]["L"] == 16
    assert doc["inputs"] == ["chunk", "enc", "conv0", "conv1", "dec"]
    assert [doc["state"][f"conv{i}"]["shape"] for i in (0, 1)] == [["batch", 16, 1, 2 * d] for d in (1, 2)]
    assert doc["training"]["data"]["non_commercial"] is True  # the test noise is UrbanSound8K (CC BY-NC)
    assert doc["algorithmic_latency_ms"] == 1000 * doc["delay"] / 16000 == 1000 * (16 - 8) / 16000  # L - hop
    assert [g["file"] for g in doc["ring"]["graphs"]] == ["tiny.ring1.onnx", "tiny.ring8.onnx"]
    assert all((tmp_path / g["file"]).is_file() for g in doc["ring"]["graphs"])
    assert doc["ring"]["step"] == "tiny.step.npz" and (tmp_path / "tiny.step.npz").is_file()
    assert doc["weights"].startswith("int8")  # the blocks' convs, on the grid in every file; int8 in the step's
    assert {np.load(tmp_path / "tiny.step.npz")[name].dtype for name in ("in_w", "out_w")} == {np.dtype(np.int8)}
    assert doc["ring"]["lags"] == [[2, 1], [4, 2]]  # (P-1-p)*d frames back, P = 3
    engine = Denoiser(onnx_path)
    assert type(Denoiser(onnx_path, block_size=800).runner).__name__ == "GraphRunner"
    assert engine.latency == 8 + 7  # L - hop, plus hop - 1 for any block size
    assert np.isfinite(engine.feed(np.zeros(100, np.float32))).all()
    x = np.random.default_rng(0).standard_normal(800).astype(np.float32) * 0.1
    whole = Denoiser(onnx_path, block_size=800).feed(x)
    for compiled, runner in ((True, "StepRunner"), (False, "RingRunner")):
        by_hop = Denoiser(onnx_path, block_size=8, compiled=compiled)
        assert type(by_hop.runner).__name__ == runner
        assert np.max(np.abs(np.concatenate([by_hop.feed(x[i : i + 8]) for i in range(0, 800, 8)]) - whole)) <= 1e-4


@pytest.mark.parametrize(
    ("licence", "non_commercial"),
    [
        ("UrbanSound8K is CC BY-NC 3.0 (non-commercial; attribution to Freesound uploaders)", True),
        ("repo Apache-2.0; ESC-50 clips are CC BY-NC 3.0 (Piczak 2015)", True),
        ("derived from DAPS (CC BY-NC 4.0) -> treat as POSSIBLY NON-COMMERCIAL", True),
        ('README: "available for free download for both commercial and non-commercial purposes"', False),
        ("LibriSpeech (c) 2014 Vassil Panayotov, CC BY 4.0; LibriVox recordings are public domain", False),
        ("CC-BY-SA-3.0 (en/es/fr/it); see debian_copyright.txt (SYNC, INC and FUNC are no licences)", False),
    ],
)
def test_a_source_is_non_commercial_only_when_its_licence_says_so(tmp_path, licence, non_commercial) -> None:
    from training.provenance import sources_under

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "SOURCE.txt").write_text(f"Source: somewhere\nLicence: {licence}\n")
    (source,) = sources_under(tmp_path)
    assert source.licence == licence and source.flagged is non_commercial
    assert source.is_non_commercial(tmp_path / "src" / "a.wav") is non_commercial


def test_export_refuses_a_model_without_a_streaming_form(tmp_path, speech_dir, noise_dir, env) -> None:
    out = tmp_path / "run"
    assert (
        run(
            train_args(speech_dir, noise_dir, out, "--steps", "1", "--norm", "cumLN", "--val-every", "1000"), env
        ).returncode
        == 0
    )
    assert "cLN" in assert_clean_failure(run_cli("export", out / "last.pt", "-o", tmp_path / "x.onnx"))
    assert not (tmp_path / "x.onnx").exists()


def test_averaged_checkpoints_are_scored_on_validation_and_exported_with_their_sources(
    tmp_path, speech_dir, noise_dir, env
) -> None:
    out = tmp_path / "run"
    assert run(train_args(speech_dir, noise_dir, out, "--steps", "3", "--val-every", "1000"), env).returncode == 0
    shutil.copy(out / "last.pt", tmp_path / "early.pt")
    assert run(["train", "--out", str(out), "--resume", "--steps", "6"], env).returncode == 0
    averaged = tmp_path / "averaged.pt"
    proc = run(["average", tmp_path / "early.pt", out / "last.pt", "-o", averaged], env)
    assert proc.returncode == 0, proc.stderr
    assert "average (step 6)" in proc.stdout
    early, late, mean = weights(tmp_path / "early.pt"), weights(out / "last.pt"), weights(averaged)
    assert all(torch.allclose(mean[k], (early[k] + late[k]) / 2) for k in mean)
    payload = load_file(averaged)
    assert [s["step"] for s in payload["averaged_from"]] == [3, 6] and set(payload["validation"]) >= {"pesq_wb"}

    assert run(["export", str(averaged), "-o", str(tmp_path / "avg.onnx")], env).returncode == 0
    sidecar = json.loads((tmp_path / "avg.json").read_text())
    assert sidecar["training"]["averaged_from"] == payload["averaged_from"]


def test_checkpoints_of_different_models_are_not_averaged(tmp_path, speech_dir, noise_dir, env) -> None:
    small, smaller = tmp_path / "small", tmp_path / "smaller"
    assert run(train_args(speech_dir, noise_dir, small, "--steps", "1", "--val-every", "1000"), env).returncode == 0
    args = [*train_args(speech_dir, noise_dir, smaller, "--steps", "1", "--val-every", "1000"), "--N", "8"]
    assert run(args, env).returncode == 0
    proc = run(["average", small / "last.pt", smaller / "last.pt", "-o", tmp_path / "x.pt"], env)
    assert proc.returncode == 2 and "cannot be averaged" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.pt").exists()


def test_a_shallower_model_starts_from_the_first_blocks_of_a_deeper_one(tmp_path, speech_dir, noise_dir, env) -> None:
    deep, shallow = tmp_path / "deep", tmp_path / "shallow"
    args = [*train_args(speech_dir, noise_dir, deep, "--steps", "2", "--val-every", "1000"), "--R", "2"]
    assert run(args, env).returncode == 0
    init = ["--init", str(deep / "last.pt"), "--steps", "0", "--val-every", "1000"]
    proc = run(train_args(speech_dir, noise_dir, shallow, *init), env)
    assert proc.returncode == 0, proc.stderr
    teacher, student = weights(deep / "last.pt"), weights(shallow / "last.pt")
    assert len(student) < len(teacher)
    assert all(torch.equal(student[k], teacher[k]) for k in student)  # every tensor of the student came over
    assert load_file(shallow / "last.pt")["train_config"]["init"] == str(deep / "last.pt")
    lineage = load_file(shallow / "last.pt")["data"]["initialised_from"]  # the teacher's data binds the student
    assert lineage == {"checkpoint": str(deep / "last.pt"), "data": load_file(deep / "last.pt")["data"]}


def test_init_from_a_missing_checkpoint_is_a_clean_error(tmp_path, speech_dir, noise_dir) -> None:
    missing = tmp_path / "nowhere.pt"
    err = assert_clean_failure(run_cli(*train_args(speech_dir, noise_dir, tmp_path / "run", "--init", missing)))
    assert "nowhere.pt" in err


def test_the_shape_race_reports_the_best_validation_within_equal_cpu_budgets(
    tmp_path, speech_dir, noise_dir, env
) -> None:
    from benchmarks.shape_race import SECTION, Curve, report

    runs = tmp_path / "race"
    for name, steps in (("default", "20"), ("L32", "10")):
        proc = run(train_args(speech_dir, noise_dir, runs / name, "--steps", steps, "--val-every", "5"), env)
        assert proc.returncode == 0, proc.stderr
    out = tmp_path / "training-speed.md"
    out.write_text("# Training speed\n\n## Throughput\n\nthroughput table\n")
    winner = report(runs, out)
    report(runs, out)  # a second report replaces its section
    text = out.read_text()
    assert text.count(f"## {SECTION}") == 1 and "throughput table" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "CPU h" not in line]
    assert len(rows) == 2 and all("-" not in row.split("|")[4] for row in rows)
    assert winner in ("default", "L32")

    curve = Curve(steps=30, cpu_hours=0.3, val=[(0.1, 1.5, 0.8, 9.0), (0.2, 1.7, 0.82, 10.0), (0.3, 1.6, 0.83, 11.0)])
    assert curve.best_within(0.05) is None
    assert curve.best_within(0.25) == (0.2, 1.7, 0.82, 10.0) == curve.best_within(0.3)


def test_export_records_the_data_the_run_started_on_not_what_the_folders_hold_now(
    tmp_path, speech_dir, noise_dir, env
) -> None:
    speech, noise = tmp_path / "speech", tmp_path / "noise"
    shutil.copytree(speech_dir, speech)
    shutil.copytree(noise_dir, noise)
    out = tmp_path / "run"
    assert run(train_args(speech, noise, out, "--steps", "1", "--val-every", "1000"), env).returncode == 0
    recorded = load_file(out / "last.pt")["data"]
    shutil.rmtree(noise)  # the folders change after training: the sidecar still says what the run used
    result = run_cli("export", out / "last.pt", "-o", tmp_path / "m.onnx")
    assert result.code == 0, result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["training"]["data"] == recorded
    assert recorded["non_commercial"] is True
