"""Stopping the sound servers the benchmarks and tests start."""

from __future__ import annotations

import subprocess

GRACE_S = 5.0


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after GRACE_S; waits for the exit (idempotent)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
