"""Matching a recorded signal against what it should be: its delay, and how closely it matches once aligned.

numpy only, so that every benchmark and test can use it without the audio servers' client packages.
"""

from __future__ import annotations

import numpy as np


def measure_delay(recorded: np.ndarray, reference: np.ndarray, max_lag: int) -> int:
    """The lag (0..max_lag frames) at which `recorded` best matches `reference` (normalised cross-correlation)."""
    n = len(reference)
    size = 1 << (n + max_lag + n - 1).bit_length()
    spectrum = np.fft.rfft(recorded[: n + max_lag], size) * np.conj(np.fft.rfft(reference, size))
    corr = np.fft.irfft(spectrum, size)[: max_lag + 1]
    energy = np.cumsum(np.concatenate([[0.0], recorded[: n + max_lag].astype(np.float64) ** 2]))
    norm = np.sqrt(np.maximum(energy[n : n + max_lag + 1] - energy[: max_lag + 1], 1e-20))
    return int(np.argmax(corr / norm))


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """How closely `estimate` matches `reference`, in dB (reference power over difference power)."""
    error = np.sum((reference.astype(np.float64) - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / max(error, 1e-20)))
