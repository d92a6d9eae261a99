"""`denoise file` and the Python API: block sizes agree with each other and with the torch model,
folders are mirrored, rates and channels are kept, inputs are never overwritten."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import assert_clean_failure, run_cli, write_tone_noise

from realtime import denoise
from realtime.model_file import default_model_path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def short_noisy(tmp_path_factory, example_noisy) -> Path:
    audio, rate = sf.read(str(example_noisy), dtype="float32")
    path = tmp_path_factory.mktemp("in") / "noisy.wav"
    sf.write(str(path), audio[: rate * 2], rate, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def torch_reference(short_noisy) -> np.ndarray:
    """The shipped checkpoint's offline torch output, its weights on the int8 grid as the export put them (the
    sidecar says so): what every block size must reproduce."""
    torch = pytest.importorskip("torch", reason="the torch reference needs the [train] extra")
    from model.config import TasNetConfig
    from model.conv_tasnet import ConvTasNet
    from model.int8 import DESCRIPTION, as_exported

    payload = torch.load(default_model_path().with_suffix(".pt"), map_location="cpu", weights_only=False)
    model = ConvTasNet(TasNetConfig.from_dict(payload["model_config"])).eval()
    model.load_state_dict(payload["model"])
    assert json.loads(default_model_path().with_suffix(".json").read_text())["weights"] == DESCRIPTION
    model = as_exported(model)
    audio, _ = sf.read(str(short_noisy), dtype="float32")
    with torch.no_grad():
        return np.clip(model(torch.from_numpy(audio)).numpy(), -1, 1)


@pytest.fixture(scope="module")
def outputs_by_block(short_noisy, tmp_path_factory) -> dict[str, np.ndarray]:
    out_dir = tmp_path_factory.mktemp("out")
    results = {}
    for block in ("1", "37", "160", "4096", "32000"):
        target = out_dir / f"b{block}.wav"
        result = run_cli("file", short_noisy, "-o", target, "--block-size", block, "--quiet")
        assert result.code == 0, result.stderr
        results[block], rate = sf.read(str(target), dtype="float32")
        assert rate == 16000
    return results


def test_block_sizes_agree_with_each_other(outputs_by_block) -> None:
    whole = outputs_by_block["32000"]
    for block, out in outputs_by_block.items():
        assert out.shape == whole.shape, block
        assert np.max(np.abs(out - whole)) <= 1e-4, block


def test_output_matches_the_torch_model(outputs_by_block, torch_reference) -> None:
    assert np.max(np.abs(outputs_by_block["160"] - torch_reference)) <= 1e-4


def test_python_api_matches_the_file_command(short_noisy, outputs_by_block) -> None:
    audio, rate = sf.read(str(short_noisy), dtype="float32")
    assert np.max(np.abs(denoise(audio, rate) - outputs_by_block["160"])) <= 1e-4


def test_denoising_reduces_noise_on_the_example(example_noisy, example_clean) -> None:
    """The shipped model must move the example towards the clean speech (SI-SDR above the input's)."""
    from training.metrics import si_sdr

    noisy, rate = sf.read(str(example_noisy), dtype="float32")
    clean, _ = sf.read(str(example_clean), dtype="float32")
    assert si_sdr(denoise(noisy, rate), clean) > si_sdr(noisy, clean) + 1.0


def test_other_rates_and_channels_are_kept(tmp_path) -> None:
    src = tmp_path / "in.flac"
    write_tone_noise(src, seconds=1.3, rate=44100, channels=2, subtype="PCM_24")
    out = tmp_path / "out.flac"
    assert run_cli("file", src, "-o", out, "--quiet").code == 0
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 2, sf.info(str(src)).frames, "PCM_24")
    resampled = tmp_path / "out16.wav"
    assert run_cli("file", src, "-o", resampled, "--sample-rate", "16000", "--quiet").code == 0
    assert sf.info(str(resampled)).samplerate == 16000
    assert sf.info(str(resampled)).frames == round(sf.info(str(src)).frames * 16000 / 44100)


def test_folders_are_mirrored_recursively(tmp_path) -> None:
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    write_tone_noise(src / "one.wav")
    write_tone_noise(src / "a" / "b" / "two.flac", seed=1)
    (src / "notes.txt").write_text("not audio")
    result = run_cli("file", src, "-o", tmp_path / "out", "--quiet")
    assert result.code == 0, result.stderr
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()) == [
        "a/b/two.flac",
        "one.wav",
    ]
    assert "denoised 2 of 2 files" in result.stderr


def test_refuses_to_overwrite_the_input(tmp_path) -> None:
    src = tmp_path / "in.wav"
    write_tone_noise(src)
    before = digest(src)
    result = run_cli("file", src, "-o", src, "--quiet")
    assert "refusing to overwrite an input" in assert_clean_failure(result, code=2)
    assert digest(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_one_bad_file_among_good_ones_exits_1_and_names_it(tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_tone_noise(src / "good.wav")
    (src / "bad.wav").write_bytes(b"this is not a wav file at all")
    result = run_cli("file", src, "-o", tmp_path / "out", "--quiet")
    assert "bad.wav" in assert_clean_failure(result, code=1)
    assert (tmp_path / "out" / "good.wav").exists()
    assert not (tmp_path / "out" / "bad.wav").exists()


def test_a_log_gets_one_line_per_failed_input_and_no_progress_bar(tmp_path) -> None:
    """stderr that is not a terminal (a log, CI) gets the messages alone; --progress asks for the bar anyway,
    which never runs past its total (no clamping warning, no negative ETA)."""
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "c.ogg"):
        write_tone_noise(src / name, seconds=2.5)
    (src / "b.wav").write_bytes(b"this is not a wav file at all")
    result = run_cli("file", src, "-o", tmp_path / "out")
    assert result.code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "b.wav" in lines[0] and lines[1].startswith("denoised 2 of 3 files"), lines
    shown = run_cli("file", src, "-o", tmp_path / "again", "--progress")
    assert "denoising" in shown.stderr and "100%" in shown.stderr
    assert "TqdmWarning" not in shown.stderr and "<-" not in shown.stderr


def test_jobs_in_parallel_write_what_one_process_writes_with_messages_in_order(tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        write_tone_noise(src / f"f{i}.wav", seconds=1.5, seed=i)
    (src / "f2.wav").write_bytes(b"not audio")  # a failure in the middle
    one, two = (run_cli("file", src, "-o", tmp_path / f"out{n}", "--jobs", n) for n in ("1", "2"))
    assert one.code == two.code == 1
    assert one.stderr.splitlines()[0] == two.stderr.splitlines()[0] and "f2.wav" in two.stderr.splitlines()[0]
    for i in (0, 1, 3, 4):
        a, b = (sf.read(tmp_path / f"out{n}" / f"f{i}.wav")[0] for n in ("1", "2"))
        assert np.array_equal(a, b)


def test_sigterm_stops_parallel_jobs_without_leaving_partial_files(tmp_path) -> None:
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        write_tone_noise(src / f"long{i}.wav", seconds=120, seed=i)
    cmd = [sys.executable, "-m", "realtime.cli", "file", str(src), "-o", str(tmp_path / "out"), "--jobs", "2"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-2].startswith("denoised "), err  # the summary, then "interrupted"
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]
    for done in (tmp_path / "out").glob("*.wav"):
        assert sf.info(str(done)).frames == 120 * 16000  # whatever is there is complete


@pytest.mark.parametrize("args", [["--block-size", "0"], ["--dry", "2"], ["--sample-rate", "5"]])
def test_bad_options_are_usage_errors(tmp_path, args: list[str]) -> None:
    src = tmp_path / "in.wav"
    write_tone_noise(src)
    assert_clean_failure(run_cli("file", src, "-o", tmp_path / "out.wav", *args))
    assert not (tmp_path / "out.wav").exists()


def test_a_shipped_model_is_chosen_by_name(tmp_path, example_noisy) -> None:
    by_name, by_path = tmp_path / "by_name.wav", tmp_path / "by_path.wav"
    assert run_cli("file", example_noisy, "-o", by_name, "--model", "default").code == 0
    assert run_cli("file", example_noisy, "-o", by_path, "--model", default_model_path()).code == 0
    assert np.array_equal(sf.read(by_name)[0], sf.read(by_path)[0])
    err = assert_clean_failure(run_cli("file", example_noisy, "-o", tmp_path / "x.wav", "--model", "nosuchmodel"))
    assert "nosuchmodel" in err and not (tmp_path / "x.wav").exists()
    assert len(err.strip().splitlines()) == 1, err  # before any file: no summary of files not denoised


def test_the_first_run_says_it_compiled_and_keeps_that_out_of_its_speed(tmp_path, example_noisy) -> None:
    """With an empty numba cache the engine compiles before the clock starts, says so on its own line, and
    writes what a run that loaded the compiled code writes; the next run loads it and says nothing of it."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    first, second = (run_cli("file", example_noisy, "-o", tmp_path / f"{n}.wav", env=env) for n in ("a", "b"))
    assert first.code == second.code == 0, (first.stderr, second.stderr)
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("compiled the engine in "), first.stderr
    assert lines[1].startswith("denoised 1 of 1 files"), first.stderr
    assert second.stderr.strip().splitlines()[0].startswith("denoised 1 of 1 files"), second.stderr
    assert np.array_equal(sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "b.wav")[0])
