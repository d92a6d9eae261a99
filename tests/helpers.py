"""Helpers for tests: run the CLI as a user would, check failures, make small test signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(
    *args: str | os.PathLike, cwd: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None
) -> CliResult:
    """Run `denoise ARGS...` in a fresh interpreter, as a user would; `env` adds to (or replaces in) ours."""
    proc = subprocess.run(
        [sys.executable, "-m", "realtime.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=None if env is None else {**os.environ, **env},
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_clean_failure(result: CliResult, code: int = 2) -> str:
    """A failed command: the expected exit code and a message without a traceback. Returns stderr."""
    assert result.code == code, (result.code, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip(), "a failure must say why"
    return result.stderr


def write_tone_noise(
    path: Path, seconds: float = 1.0, rate: int = 16000, channels: int = 1, seed: int = 0, subtype: str | None = None
) -> np.ndarray:
    """A speech-like test signal (harmonic tone with an envelope) plus noise, written to `path`."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.2 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    data = np.stack([tone + 0.02 * rng.standard_normal(len(t)) for _ in range(channels)], axis=1).astype(np.float32)
    sf.write(str(path), data, rate, subtype=subtype)
    return data


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    """Exit code and stderr of `denoise live`; one that does not exit in time is aborted (never left connected
    to the server, where it would fail the next tests) and the test fails with its threads' stacks."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        pytest.fail(f"denoise live did not exit within {timeout} s:\n{err[-6000:]}")
    assert "Traceback" not in err, err
    return proc.returncode, err
