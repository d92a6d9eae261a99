"""DTLN (Westhausen & Meyer 2020) from the peers folder: two ONNX models per 128-sample shift on a 512 block.

Model 1 masks the magnitude of the block's rFFT (no window); model 2 maps the masked block's irFFT to a time
block, overlap-added with shift 128. Output lags the input by 512 - 128 samples.
"""

from __future__ import annotations

import numpy as np

from benchmarks.macs import onnx_macs
from benchmarks.peers.base import RATE, FrameStream, Stream, System, onnx_session

BLOCK, SHIFT = 512, 128
STATE_SHAPE = (1, 2, 128, 2)


class _DtlnStream(FrameStream):
    def __init__(self, stage1, stage2) -> None:  # onnxruntime sessions
        super().__init__(SHIFT, tail=BLOCK - SHIFT)
        self.stage1, self.stage2 = stage1, stage2
        self.state1 = np.zeros(STATE_SHAPE, np.float32)
        self.state2 = np.zeros(STATE_SHAPE, np.float32)
        self.inp = np.zeros(BLOCK, np.float32)
        self.out = np.zeros(BLOCK, np.float32)

    def step(self, hop: np.ndarray) -> np.ndarray:
        self.inp = np.concatenate([self.inp[SHIFT:], hop])
        spectrum = np.fft.rfft(self.inp)
        magnitude = np.abs(spectrum).astype(np.float32)[None, None]
        mask, self.state1 = self.stage1.run(None, {"input_2": magnitude, "input_3": self.state1})
        block = np.fft.irfft(spectrum * mask[0, 0]).astype(np.float32)[None, None]
        decoded, self.state2 = self.stage2.run(None, {"input_4": block, "input_5": self.state2})
        self.out = np.concatenate([self.out[SHIFT:], np.zeros(SHIFT, np.float32)]) + decoded[0, 0]
        return self.out[:SHIFT].copy()


class Dtln(System):
    key, label = "dtln", "DTLN (16 kHz)"
    streaming = True
    files = ("dtln/model_1.onnx", "dtln/model_2.onnx")

    def load(self) -> None:
        self.sessions = [onnx_session(self.options.peers / f) for f in self.files]

    def stream(self, block: int) -> Stream:
        return _DtlnStream(*self.sessions)

    def macs_per_second(self) -> float | None:
        return sum(onnx_macs(self.options.peers / f) for f in self.files) * RATE / SHIFT
