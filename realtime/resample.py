"""A streaming rational-ratio resampler with a short linear-phase FIR and an exactly known delay.

Live audio needs a resampler whose delay is small and constant: soxr's streaming resampler holds back
several milliseconds of output, which would dominate the live latency budget. This one is a textbook
polyphase FIR (Kaiser-windowed sinc): each output sample is produced as soon as the input sample it
lines up with has arrived, and the output lags the input by exactly `delay` seconds (the filter's
group delay), whatever the chunking. The filter is one compiled loop (numba) for every ratio: at live's
callbacks of a few dozen samples numpy's per-call dispatch cost more than the arithmetic.
"""

from __future__ import annotations

import math

import numba
import numpy as np

STOPBAND_DB = 60.0  # alias/image rejection beyond the transition band
TRANSITION_HZ = 4000.0  # transition width, centred on half the lower rate: short filter, ~1 ms round trip


@numba.njit(cache=True, nogil=True)
def _filter(history, x, branches, up, down, start, first, end, y):  # noqa: ANN001, ANN202 (numba)
    """Outputs `first`..`end`-1 of the stream into `y`: output m is branch (m*down mod up) applied to the `taps`
    inputs ending at input m*down // up, where `history` (the last taps-1 inputs) then `x` hold inputs from
    `start` on. One loop for every ratio, so each output's sum is the same whatever the chunking."""
    taps = branches.shape[1]
    past = history.shape[0]
    for m in range(first, end):
        pos = m * down
        newest = pos // up - start  # in history + x
        branch = pos % up
        acc = 0.0
        for k in range(taps):
            i = newest - taps + 1 + k
            acc += branches[branch, k] * (history[i] if i < past else x[i - past])
        y[m - first] = acc
    keep = min(past, x.shape[0])  # the new history: the last taps-1 inputs of history + x
    history[: past - keep] = history[keep:].copy()
    history[past - keep :] = x[x.shape[0] - keep :]


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
        self.process(np.zeros(0, np.float32))  # loads (or compiles) the filter here, not in a live callback

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
        x = np.ascontiguousarray(x, np.float32)
        start = self._inputs - len(self._history)  # the stream index of the history's first sample
        self._inputs += len(x)
        end = self.output_count(self._inputs)
        y = np.empty(end - self._outputs, np.float32)
        _filter(self._history, x, self._branches, self.up, self.down, start, self._outputs, end, y)
        self._outputs = end
        return y
