"""A streaming rational-ratio resampler with a short linear-phase FIR and an exactly known delay.

Live audio needs a resampler whose delay is small and constant: soxr's streaming resampler holds back
several milliseconds of output, which would dominate the live latency budget. This one is a textbook
polyphase FIR (Kaiser-windowed sinc): each output sample is produced as soon as the input sample it
lines up with has arrived, and the output lags the input by exactly `delay` seconds (the filter's
group delay), whatever the chunking.
"""

from __future__ import annotations

import math

import numpy as np

STOPBAND_DB = 60.0  # alias/image rejection beyond the transition band
TRANSITION_HZ = 4000.0  # transition width, centred on half the lower rate: short filter, ~1 ms round trip


def _windows(buf: np.ndarray, taps: int) -> np.ndarray:
    """Every run of `taps` consecutive samples of the contiguous float32 `buf`, as rows of a view (no copy;
    numpy's sliding_window_view costs more in its checks than the filtering does at a 64-frame callback)."""
    return np.ndarray((len(buf) - taps + 1, taps), np.float32, buf, 0, (buf.itemsize, buf.itemsize))


class Resampler:
    """Convert mono float32 audio from `rate_in` to `rate_out` chunk by chunk (`process`)."""

    def __init__(self, rate_in: int, rate_out: int, transition_hz: float = TRANSITION_HZ) -> None:
        if rate_in < 1 or rate_out < 1:
            raise ValueError(f"sample rates must be positive, got {rate_in} and {rate_out}")
        g = math.gcd(rate_in, rate_out)
        self.rate_in, self.rate_out = rate_in, rate_out
        self.up, self.down = rate_out // g, rate_in // g
        rate_up = rate_in * self.up
        cutoff = min(rate_in, rate_out) / 2
        beta = 0.1102 * (STOPBAND_DB - 8.7)
        length = math.ceil((STOPBAND_DB - 8) / (2.285 * 2 * math.pi * transition_hz / rate_up)) + 1
        self.taps = -(-length // self.up)  # taps per polyphase branch
        n = np.arange(length) - (length - 1) / 2
        proto = self.up * (2 * cutoff / rate_up) * np.sinc(2 * cutoff / rate_up * n) * np.kaiser(length, beta)
        proto = np.concatenate([proto, np.zeros(self.taps * self.up - length)])
        # branch p holds h[p + k*up] for k = 0..taps-1, reversed so that it meets the oldest input first
        self._branches = proto.reshape(self.taps, self.up).T[:, ::-1].astype(np.float32)
        self.delay = (length - 1) / 2 / rate_up  # seconds: linear-phase group delay
        self.reset()

    def reset(self) -> None:
        """Start a new stream (silence before it)."""
        self._history = np.zeros(self.taps - 1, np.float32)
        self._inputs = 0  # input samples consumed so far
        self._outputs = 0  # output samples produced so far

    def output_count(self, inputs: int) -> int:
        """How many output samples a stream has produced once it has consumed `inputs` samples."""
        return -(-inputs * self.up // self.down)

    def inputs_for(self, outputs: int) -> int:
        """How many more input samples the stream needs before it has produced `outputs` more (>= 0)."""
        target = self._outputs + outputs  # output_count(n) >= target  <=>  n * up > (target - 1) * down
        return max((target - 1) * self.down // self.up + 1 - self._inputs, 0) if outputs > 0 else 0

    def process(self, x: np.ndarray) -> np.ndarray:
        """The next output samples for the next input chunk (1-D float32)."""
        x = np.asarray(x, np.float32)
        buf = np.concatenate([self._history, x])
        start = self._inputs - len(self._history)  # the stream index of buf[0]
        self._inputs += len(x)
        end = self.output_count(self._inputs)
        if end == self._outputs:  # too little input for another output
            y = np.zeros(0, np.float32)
        elif self.up == 1:  # decimation: every `down`-th window, one branch (a matrix-vector product)
            y = self._decimate(buf, start, end)
        elif self.down == 1:  # interpolation: every window, all branches (one matrix product)
            y = (_windows(buf, self.taps) @ self._branches.T).reshape(-1)
        else:
            y = self._polyphase(buf, start, end)
        self._outputs = end
        self._history = buf[len(buf) - (self.taps - 1) :]
        return y.astype(np.float32, copy=False)

    def _decimate(self, buf: np.ndarray, start: int, end: int) -> np.ndarray:
        first = self._outputs * self.down - start - (self.taps - 1)  # window of the first output, in buf
        last = first + (end - self._outputs - 1) * self.down
        return _windows(buf, self.taps)[first : last + 1 : self.down] @ self._branches[0]

    def _polyphase(self, buf: np.ndarray, start: int, end: int) -> np.ndarray:
        """Any ratio: each output's window and branch picked by index."""
        pos = np.arange(self._outputs, end, dtype=np.int64) * self.down  # positions at the upsampled rate
        newest = pos // self.up - start  # index in buf of each output's newest input
        window = newest[:, None] + np.arange(1 - self.taps, 1)[None, :]
        return np.einsum("ij,ij->i", buf[window], self._branches[pos % self.up])
