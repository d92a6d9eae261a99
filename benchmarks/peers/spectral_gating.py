"""Classical spectral gating (`noisereduce`, non-stationary mode with its defaults): offline, whole signal."""

from __future__ import annotations

import numpy as np

from benchmarks.peers.base import RATE, System


class SpectralGating(System):
    key, label = "spectral_gating", "spectral gating (noisereduce)"
    package = "noisereduce"

    def process(self, noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        import noisereduce

        return noisereduce.reduce_noise(y=noisy, sr=RATE, stationary=False, n_jobs=1).astype(np.float32)
