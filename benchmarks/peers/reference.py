"""Reference points: the noisy input itself (the floor) and the oracle ideal ratio mask (a ceiling for masking)."""

from __future__ import annotations

import numpy as np

from benchmarks.peers.base import RATE, System

IRM_FFT, IRM_HOP = 512, 128  # 32 ms Hann window, 75 % overlap


class NoisyInput(System):
    key, label = "noisy", "noisy input"

    def process(self, noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        return noisy


class OracleIRM(System):
    """sqrt(|S|^2 / (|S|^2 + |N|^2)) applied to the noisy STFT: needs the clean signal, so it is no denoiser."""

    key, label = "oracle_irm", "oracle IRM (upper bound)"

    def process(self, noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        from scipy.signal import istft, stft

        spectra = [stft(x, RATE, nperseg=IRM_FFT, noverlap=IRM_FFT - IRM_HOP)[2] for x in (noisy, clean, noisy - clean)]
        speech, noise = np.abs(spectra[1]) ** 2, np.abs(spectra[2]) ** 2
        mask = np.sqrt(speech / np.maximum(speech + noise, 1e-12))
        out = istft(spectra[0] * mask, RATE, nperseg=IRM_FFT, noverlap=IRM_FFT - IRM_HOP)[1]
        return out[: len(noisy)].astype(np.float32)
