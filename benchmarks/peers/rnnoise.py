"""RNNoise through `pyrnnoise`: it resamples 16 kHz to its 48 kHz itself (both ways) and lags by 20 ms.

pyrnnoise's wheel ships a `denoise` console script of its own, and pip gives no guarantee which of two scripts
of one name it writes last. So pyrnnoise is not in any of our extras: it goes, without its dependencies (the
`bench` extra has them), into a folder of the environment that is off PATH (`PEER_SITE`), and only this
module imports it from there.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import numpy as np

from benchmarks.peers.base import RATE, Stream, System

REQUIREMENT = "pyrnnoise==0.4.5"
PEER_SITE = Path(sys.prefix) / "rtdenoise-peers"  # inside the environment, never on PATH
INSTALL = f"python -m pip install --no-deps --upgrade --target {shlex.quote(str(PEER_SITE))} {REQUIREMENT}"


def find_pyrnnoise() -> bool:
    """Whether pyrnnoise is importable, from the environment itself or from PEER_SITE (put on sys.path)."""
    if importlib.util.find_spec("pyrnnoise") is not None:
        return True
    if (PEER_SITE / "pyrnnoise").is_dir():
        sys.path.append(str(PEER_SITE))
        importlib.invalidate_caches()
        return importlib.util.find_spec("pyrnnoise") is not None
    return False


class _RnnoiseStream:
    def __init__(self) -> None:
        from pyrnnoise import RNNoise

        self.denoiser = RNNoise(RATE)

    def _run(self, block: np.ndarray, last: bool) -> np.ndarray:
        frames = [frame[0] for _, frame in self.denoiser.denoise_chunk(block, last)]
        return np.concatenate(frames).astype(np.float32) / 32768 if frames else np.zeros(0, np.float32)

    def feed(self, block: np.ndarray) -> np.ndarray:
        return self._run(np.asarray(block, np.float32), last=False)

    def flush(self) -> np.ndarray:
        return self._run(np.zeros(RATE // 50, np.float32), last=True)  # 20 ms of silence pushes out the lag


class RNNoise(System):
    key, label = "rnnoise", "RNNoise (pyrnnoise, 48 kHz)"
    streaming = True

    def missing(self) -> str | None:
        if not find_pyrnnoise():
            return f"pyrnnoise is not installed ({INSTALL}: off PATH, as it ships a `denoise` script of its own)"
        return super().missing()

    def stream(self, block: int) -> Stream:
        return _RnnoiseStream()
