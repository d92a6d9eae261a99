"""The installed command: `denoise` on PATH is ours whatever was installed in which order, and the RNNoise
peer (whose wheel ships a `denoise` of its own) is installed off PATH, where only its benchmark finds it; the
package's folder holds only what pip installed."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
from helpers import run_cli

import realtime
from benchmarks.peers import Options
from benchmarks.peers.rnnoise import PEER_SITE, RNNoise


def test_the_denoise_script_beside_python_is_ours() -> None:
    script = Path(sys.executable).parent / "denoise"
    assert script.exists(), f"{script}: no denoise script installed beside {sys.executable}"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Real-time speech denoising" in result.stdout, result.stdout + result.stderr


def test_no_other_installed_distribution_has_a_denoise_script() -> None:
    """With no rival script in the environment, no install order can replace ours."""
    environment = [entry for entry in sys.path if Path(entry) != PEER_SITE]
    owners = {
        dist.name
        for dist in metadata.distributions(path=environment)
        if any(point.group == "console_scripts" and point.name == "denoise" for point in dist.entry_points)
    }
    assert owners == {"rtdenoise"}, owners


def test_the_rnnoise_peer_runs_from_its_folder_off_path() -> None:
    peer = RNNoise(Options())
    assert peer.missing() is None, peer.missing()
    import pyrnnoise

    assert Path(pyrnnoise.__file__).is_relative_to(PEER_SITE), f"pyrnnoise is installed in {pyrnnoise.__file__}"
    stream = peer.stream(160)
    out = np.concatenate([stream.feed(np.zeros(160, np.float32)) for _ in range(10)] + [stream.flush()])
    assert out.size > 0 and np.all(np.isfinite(out))


def test_compiled_code_is_cached_for_the_user_and_the_package_stays_as_installed(tmp_path, example_noisy) -> None:
    """numba's machine code goes to the user's cache folder. Beside the modules (numba's default) it was files
    pip does not know of: `pip uninstall` left the folder behind, and Python imported it as an empty namespace
    package `realtime` that shadowed an editable install made later (command 2 after command 1 failed so)."""
    package = Path(realtime.__file__).parent
    before = {path: path.stat().st_mtime_ns for path in package.rglob("*.nb[ic]")}
    env = {"XDG_CACHE_HOME": str(tmp_path), "NUMBA_CACHE_DIR": ""}  # (numba reads "" as unset)
    result = run_cli("file", example_noisy, "-o", tmp_path / "out.wav", env=env)
    assert result.code == 0, result.stderr
    assert {path: path.stat().st_mtime_ns for path in package.rglob("*.nb[ic]")} == before
    cached = {path.name.split("-")[0] for path in (tmp_path / "rtdenoise" / "numba").rglob("*.nbi")}
    assert "engine.finish" in cached, cached
