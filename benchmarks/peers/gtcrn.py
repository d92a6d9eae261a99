"""GTCRN (Rong et al. 2024, DNS3 weights) from the peers folder: one ONNX call per STFT frame, with caches.

512-point frames every 256 samples under a square-root periodic Hann window, overlap-added with the same
window and normalised by the summed squared window. Run causally (history starts as silence), the output
lags the input by 512 - 256 samples.
"""

from __future__ import annotations

import numpy as np

from benchmarks.macs import onnx_macs
from benchmarks.peers.base import RATE, FrameStream, Stream, System, onnx_session

FFT, HOP = 512, 256
WINDOW = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FFT) / FFT)).astype(np.float32)
CACHES = {"conv_cache": (2, 1, 16, 16, 33), "tra_cache": (2, 3, 1, 1, 16), "inter_cache": (2, 1, 33, 16)}


class _GtcrnStream(FrameStream):
    def __init__(self, session) -> None:  # onnxruntime session
        super().__init__(HOP, tail=FFT - HOP)
        self.session = session
        self.caches = {name: np.zeros(shape, np.float32) for name, shape in CACHES.items()}
        self.inp = np.zeros(FFT, np.float32)
        self.out = np.zeros(FFT, np.float32)
        squared = WINDOW**2
        self.norm = squared[:HOP] + squared[HOP:]  # summed squared window over the two overlapping frames

    def step(self, hop: np.ndarray) -> np.ndarray:
        self.inp = np.concatenate([self.inp[HOP:], hop])
        spectrum = np.fft.rfft(self.inp * WINDOW)
        frame = np.stack([spectrum.real, spectrum.imag], axis=-1).astype(np.float32)[None, :, None, :]
        enhanced, *caches = self.session.run(None, {"mix": frame, **self.caches})
        self.caches = dict(zip(CACHES, caches))
        time = np.fft.irfft(enhanced[0, :, 0, 0] + 1j * enhanced[0, :, 0, 1], FFT).astype(np.float32) * WINDOW
        self.out = np.concatenate([self.out[HOP:], np.zeros(HOP, np.float32)]) + time
        return self.out[:HOP] / self.norm


class Gtcrn(System):
    key, label = "gtcrn", "GTCRN (16 kHz)"
    streaming = True
    files = ("gtcrn/gtcrn_simple.onnx",)

    def load(self) -> None:
        self.session = onnx_session(self.options.peers / self.files[0])

    def stream(self, block: int) -> Stream:
        return _GtcrnStream(self.session)

    def macs_per_second(self) -> float | None:
        return onnx_macs(self.options.peers / self.files[0]) * RATE / HOP
