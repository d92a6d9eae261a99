"""DNSMOS P.835 on the shipped examples, and `denoise eval` / `bench quality` with --dnsmos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_clean_failure, run_cli

from benchmarks import dnsmos
from realtime.audio_io import read_audio


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory, example_noisy: Path, example_clean: Path) -> Path:
    """noisy/ex.flac and clean/ex.flac: the shipped example pair."""
    root = tmp_path_factory.mktemp("examples")
    for sub, src in (("noisy", example_noisy), ("clean", example_clean)):
        (root / sub).mkdir()
        (root / sub / "ex.flac").write_bytes(src.read_bytes())
    return root


def test_windows_repeat_short_audio_and_start_every_second() -> None:
    starts = [w[0] for w in dnsmos.windows(np.arange(6 * dnsmos.RATE, dtype=np.float32))]
    assert starts == [0, dnsmos.RATE, 2 * dnsmos.RATE]  # doubled to 12 s: windows at 0, 1 and 2 s
    with pytest.raises(ValueError, match="empty"):
        next(dnsmos.windows(np.zeros(0, np.float32)))


def test_scores_are_mos_and_the_clean_background_is_better(example_noisy: Path, example_clean: Path) -> None:
    noisy, clean = (dnsmos.score(read_audio(p, dnsmos.RATE, mono=True)[0]) for p in (example_noisy, example_clean))
    assert list(noisy) == list(dnsmos.METRICS)
    assert all(1 <= v <= 5 for v in (*noisy.values(), *clean.values()))
    assert clean["dnsmos_bak"] > noisy["dnsmos_bak"] + 0.5


def test_eval_without_clean_scores_dnsmos_alone(examples: Path, tmp_path: Path) -> None:
    scores = {}
    for option in ("--enhanced", "--noisy"):
        result = run_cli("eval", option, examples / "noisy", "--dnsmos", "--json", tmp_path / "s.json", "--jobs", "1")
        assert result.code == 0, result.stderr
        report = json.loads((tmp_path / "s.json").read_text())
        assert report["metrics"] == list(dnsmos.METRICS) and report["count"] == 1 and not report["failures"]
        scores[option] = report["overall"]
    assert "| all | 1 |" in result.stdout and "DNSMOS BAK" in result.stdout
    assert scores["--noisy"]["dnsmos_bak"] > scores["--enhanced"]["dnsmos_bak"]  # the model's output is cleaner


def test_eval_with_clean_adds_dnsmos_to_the_reference_metrics(examples: Path, tmp_path: Path) -> None:
    argv = ("eval", "--clean", examples / "clean", "--enhanced", examples / "noisy", "--dnsmos", "--jobs", "1")
    result = run_cli(*argv, "--json", tmp_path / "s.json")
    assert result.code == 0, result.stderr
    overall = json.loads((tmp_path / "s.json").read_text())["overall"]
    assert set(overall) == {"pesq_wb", "stoi", "estoi", "si_sdr", *dnsmos.METRICS}


@pytest.mark.parametrize("extra", [(), ("--dnsmos", "--narrowband")])
def test_eval_without_clean_needs_dnsmos_alone(examples: Path, extra: tuple[str, ...]) -> None:
    stderr = assert_clean_failure(run_cli("eval", "--enhanced", examples / "noisy", *extra))
    assert len(stderr.strip().splitlines()) == 1 and "--clean" in stderr


def test_a_missing_extra_is_named_in_one_line(examples: Path) -> None:
    code = f"""
import sys
sys.modules["speechmos"] = None  # any import of speechmos now raises ModuleNotFoundError
from realtime.cli import main
sys.exit(main(["eval", "--enhanced", {str(examples / "noisy")!r}, "--dnsmos"]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "denoise: this command needs speechmos: pip install 'rtdenoise[dnsmos]'"


def test_bench_quality_scores_every_system_by_dnsmos(examples: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = run_cli(
        "bench", "quality", "--clean", examples / "clean", "--noisy", examples / "noisy",
        "--systems", "noisy", "ours_stream", "--dnsmos", "--jobs", "1", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    systems = json.loads((out / "quality.json").read_text())["systems"]
    assert all(1 <= systems[k]["overall"][m] <= 5 for k in ("noisy", "ours_stream") for m in dnsmos.METRICS)
    assert systems["ours_stream"]["overall"]["dnsmos_bak"] > systems["noisy"]["overall"]["dnsmos_bak"]
    assert "DNSMOS OVRL" in (out / "quality.md").read_text()
