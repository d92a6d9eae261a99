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

import numpy as np

from realtime.jit import jit

STOPBAND_DB = 60.0  # alias/image rejection beyond the transition band
TRANSITION_HZ = 4000.0  # transition width, centred on half the lower rate: short filter, ~1 ms round trip


@jit()
def resample(x, history, counts, branches, up, down):  # noqa: ANN001, ANN201 (numba)
    """`Resampler.process` (compiled, for callers that are compiled too): the output for the next input chunk `x`,
    where `history` holds the last taps-1 inputs and `counts` the inputs consumed and outputs produced so far.
    Output m is branch (m*down mod up) applied to the `taps` inputs ending at input m*down // up: one loop for
    every ratio, so each output's sum is the same whatever the chunking."""
    taps = branches.shape[1]
    past = history.shape[0]
    start = counts[0] - past  # the stream index of the history's first sample
    first = counts[1]
    counts[0] += x.shape[0]
    end = -(-counts[0] * up // down)  # output_count
    counts[1] = end
    y = np.empty(end - first, np.float32)
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
    return y


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
        self.branches = proto.reshape(self.taps, self.up).T[:, ::-1].astype(np.float32)
        self.delay = (length - 1) / 2 / rate_up  # seconds: linear-phase group delay
        self.history = np.zeros(self.taps - 1, np.float32)  # the last taps-1 inputs
        self.counts = np.zeros(2, np.int64)  # input samples consumed, output samples produced so far
        self.state = (self.history, self.counts, self.branches, self.up, self.down)  # `resample`'s arguments
        self.process(np.zeros(0, np.float32))  # loads (or compiles) the filter here, not in a live callback

    def reset(self) -> None:
        """Start a new stream (silence before it)."""
        self.history.fill(0.0)
        self.counts.fill(0)

    def output_count(self, inputs: int) -> int:
        """How many output samples a stream has produced once it has consumed `inputs` samples."""
        return -(-inputs * self.up // self.down)

    def inputs_for(self, outputs: int) -> int:
        """How many more input samples the stream needs before it has produced `outputs` more (>= 0)."""
        consumed, produced = (int(c) for c in self.counts)
        target = produced + outputs  # output_count(n) >= target  <=>  n * up > (target - 1) * down
        return max((target - 1) * self.down // self.up + 1 - consumed, 0) if outputs > 0 else 0

    def process(self, x: np.ndarray) -> np.ndarray:
        """The next output samples for the next input chunk (1-D float32)."""
        return resample(np.ascontiguousarray(x, np.float32), *self.state)
