"""One interface for every system the benchmarks run: ours, the peers and the reference points.

A system takes 16 kHz mono float32 audio. Streaming systems also hand out `Stream`s (fresh state each) that
take blocks of any size and return whatever output is ready, so the speed benchmark can drive them all the
same way; their whole-signal `process` is that stream fed in real-time blocks. Each system says why it cannot
run (`missing`: a package or file absent) so a benchmark lists it as skipped instead of failing.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

RATE = 16000
BLOCK = 160  # 10 ms: the block size at which whole signals go through streaming systems


@dataclass(frozen=True)
class Options:
    """Where the systems' files are: peer ONNX folder, our ONNX model, our torch checkpoint."""

    peers: Path | None = None
    model: Path | None = None
    checkpoint: Path | None = None


class Stream(Protocol):
    def feed(self, block: np.ndarray) -> np.ndarray:
        """Take the next block (any length); return the output that is ready (any length)."""

    def flush(self) -> np.ndarray:
        """The rest of the output, the input padded with silence."""


class System:
    """A denoiser (or reference) under test. Subclasses set the class attributes and `process` or `stream`."""

    key: str  # command-line name
    label: str  # name in tables and plots
    streaming = False
    by_default = True  # in a benchmark run that names no systems (the speed benchmark runs every streaming one)
    package: str | None = None  # import name of the pip package it needs
    files: tuple[str, ...] = ()  # files it needs under the peers folder

    def __init__(self, options: Options) -> None:
        self.options = options

    def missing(self) -> str | None:
        """Why this system cannot run here, or None."""
        if self.package and importlib.util.find_spec(self.package) is None:
            return f"Python package '{self.package}' is not installed (pip install 'rtdenoise[bench]')"
        if self.files:
            if self.options.peers is None:
                return "no peers folder (--peers DIR)"
            absent = [f for f in self.files if not (self.options.peers / f).is_file()]
            if absent:
                return f"{self.options.peers / absent[0]} not found"
        return None

    def load(self) -> None:
        """Open models once per process (the default has nothing to open)."""

    def stream(self, block: int) -> Stream:
        """A fresh stream that will be fed blocks of `block` samples."""
        raise NotImplementedError(f"{self.label} does not stream")

    def process(self, noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        """Denoised `noisy` (may lag it; the benchmark finds the delay). `clean` is for oracles only."""
        stream = self.stream(BLOCK)
        padded = np.concatenate([noisy, np.zeros(-len(noisy) % BLOCK, np.float32)])
        pieces = [stream.feed(padded[i : i + BLOCK]) for i in range(0, len(padded), BLOCK)]
        return np.concatenate([*pieces, stream.flush()]).astype(np.float32, copy=False)

    def macs_per_second(self) -> float | None:
        """Multiply-accumulates per second of audio (matrix ops), when it can be counted."""
        return None


class FrameStream(ABC):
    """Turns any block size into the whole hops a frame-based model needs; `flush` pushes out `tail` samples."""

    def __init__(self, hop: int, tail: int) -> None:
        self.hop = hop
        self.tail = tail
        self._pending = np.zeros(0, np.float32)

    @abstractmethod
    def step(self, hop: np.ndarray) -> np.ndarray:
        """Process exactly `self.hop` new samples."""

    def feed(self, block: np.ndarray) -> np.ndarray:
        data = np.concatenate([self._pending, np.asarray(block, np.float32)])
        whole = len(data) // self.hop * self.hop
        self._pending = data[whole:]
        out = [self.step(data[i : i + self.hop]) for i in range(0, whole, self.hop)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        pad = -len(self._pending) % self.hop + -(-self.tail // self.hop) * self.hop
        return self.feed(np.zeros(pad, np.float32))


def onnx_session(path: Path):  # -> onnxruntime.InferenceSession
    """A single-threaded onnxruntime CPU session, as our engine uses: compute per block without thread hand-offs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
