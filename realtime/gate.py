"""A voice gate for `denoise live`: between words the output goes silent instead of carrying the model's residue.

The gate measures the denoised signal itself: for every sample, the mean square of the last `window_ms` up to
and including it, in dB relative to full scale (the measure of the status line's levels). It needs no sample
ahead, so it adds no latency. It opens on the first sample whose level is above `threshold_db`, stays open
until `hold_ms` after the last such sample, then closes. The gain only ever moves along linear ramps (up over
`attack_ms`, down over `release_ms`), so opening and closing never click. The squares and the gain are counted
in integers (units of `UNIT`, whole ramp steps), so no rounding depends on where blocks start: the output is
the same, bit for bit, however the signal is cut into blocks.
"""

from __future__ import annotations

import math

import numpy as np

from realtime.jit import jit

UNIT = 2.0**-40  # squares in whole units of this (-120 dBFS): exact int64 sums, for blocks up to 8 M samples


class VoiceGate:
    """Mutes a mono signal while its level stays below `threshold_db`, block by block, for any block length.

    `is_open` (the gate's state after the last sample processed) and `closed_samples` (samples processed while
    it was closed, ramps down included) are plain attributes written only by the thread that calls `process`,
    so another thread may read them without a lock.
    """

    def __init__(
        self,
        threshold_db: float,
        hold_ms: float = 300.0,
        sample_rate: int = 16000,
        window_ms: float = 10.0,
        attack_ms: float = 2.0,
        release_ms: float = 20.0,
    ) -> None:
        if not math.isfinite(threshold_db) or not 0.0 <= hold_ms < math.inf:
            raise ValueError(f"the gate needs a finite threshold and a hold >= 0, got {threshold_db} dB, {hold_ms} ms")
        self.threshold_db, self.hold_ms, self.rate = threshold_db, hold_ms, sample_rate
        window, attack, release = (max(1, round(ms * sample_rate / 1000)) for ms in (window_ms, attack_ms, release_ms))
        self._hold = round(hold_ms * sample_rate / 1000)
        self._limit = window * 10 ** (threshold_db / 10) / UNIT  # a window's sum of squares at the threshold
        self._ramp = (attack * release, release, attack)  # gain 1 in ramp steps; steps up, down a sample
        self._squares = np.zeros(window, np.int64)  # the last `window` samples' squares in units of UNIT
        self._state = np.array([0, 0, self._hold + 1, 0], np.int64)  # see `apply_gate`
        self.state = (self._squares, self._state, self._limit, self._hold, *self._ramp)  # `apply_gate`'s arguments
        self.is_open = False
        self.closed_samples = 0

    @property
    def closed_s(self) -> float:
        """Seconds processed with the gate closed."""
        return self.closed_samples / self.rate

    def process(self, block: np.ndarray) -> np.ndarray:
        """Gate the next samples (1-D float32 array) in place; returns `block`."""
        if len(block):
            closed, self.is_open = apply_gate(block, *self.state)
            self.closed_samples += closed
        return block


@jit()
def apply_gate(block, squares, state, limit, hold, full, up, down):  # noqa: ANN001, ANN202, PLR0913 (numba)
    """`VoiceGate.process` on a non-empty block, one sample at a time (at live's blocks of a few dozen samples
    numpy's per-call dispatch cost more than the arithmetic). `squares`: the last `window` squares in units,
    a ring; `state`: the ring's position, their sum, samples since the last loud one (at most `hold` + 1),
    and the gain in ramp steps. Returns (samples closed, open after the last)."""
    position, total, since, steps = state[0], state[1], state[2], state[3]
    window = squares.shape[0]
    closed = 0
    opened = False
    for i in range(block.shape[0]):
        square = np.float64(block[i]) * np.float64(block[i])
        unit = np.int64((square if square < 1.0 else 1.0) * (1 / UNIT))  # (louder than full scale is loud enough)
        total += unit - squares[position]
        squares[position] = unit
        position = position + 1 if position + 1 < window else 0
        since = 0 if total > limit else min(since + 1, hold + 1)
        opened = since <= hold
        if opened:
            steps = min(steps + up, full)
        else:
            steps = max(steps - down, 0)
            closed += 1
        block[i] *= np.float32(steps / full)
    state[0], state[1], state[2], state[3] = position, total, since, steps
    return closed, opened
