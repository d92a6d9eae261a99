"""The installed command: `denoise` on PATH is ours, whatever the bench extra (pyrnnoise ships a `denoise` too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_denoise_script_beside_python_is_ours() -> None:
    """.ci/run reinstalls this package after the extras, so that its script wins over pyrnnoise's."""
    script = Path(sys.executable).parent / "denoise"
    assert script.exists(), f"{script}: no denoise script installed beside {sys.executable}"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Real-time speech denoising" in result.stdout, result.stdout + result.stderr
