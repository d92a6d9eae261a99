"""RNNoise through `pyrnnoise`: it resamples 16 kHz to its 48 kHz itself (both ways) and lags by 20 ms.

pyrnnoise installs a `denoise` console script of its own: install it with `pip install 'rtdenoise[bench]'`
(rtdenoise goes in after its extras and keeps `denoise`), or reinstall rtdenoise after installing it alone.
"""

from __future__ import annotations

import numpy as np

from benchmarks.peers.base import RATE, Stream, System


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
    package = "pyrnnoise"

    def stream(self, block: int) -> Stream:
        return _RnnoiseStream()
