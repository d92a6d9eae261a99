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
        self._window = window
        self._hold = round(hold_ms * sample_rate / 1000)
        self._limit = window * 10 ** (threshold_db / 10) / UNIT  # a window's sum of squares at the threshold
        self._full = attack * release  # gain 1 in ramp steps: up `release` steps a sample, down `attack`
        self._up, self._down = release, attack
        self._head = np.zeros(window, np.int64)  # 0, then the last `window - 1` samples' squares
        self._last = -self._hold - 1  # the last sample above the threshold, counted from the next block's start
        self._steps = 0  # the gain now, in ramp steps
        self.is_open = False
        self.closed_samples = 0

    @property
    def closed_s(self) -> float:
        """Seconds processed with the gate closed."""
        return self.closed_samples / self.rate

    def process(self, block: np.ndarray) -> np.ndarray:
        """Gate the next samples (1-D float array) in place; returns `block`."""
        n = len(block)
        if not n:
            return block
        squares = np.square(block, dtype=np.float64)
        np.minimum(squares, 1.0, out=squares)  # (louder than full scale is loud enough)
        units = np.concatenate([self._head, (squares * (1 / UNIT)).astype(np.int64)])
        sums = units.cumsum()
        loud = sums[self._window :] - sums[:n] > self._limit
        self._head = units[n:]
        self._head[0] = 0
        count = np.arange(1, n + 1)
        last = np.maximum.accumulate(np.where(loud, count, self._last))
        opened = count - last <= self._hold
        self._last = max(int(last[-1]) - n, -self._hold - 1)
        block *= self._gain(opened, count)
        self.is_open = bool(opened[-1])
        self.closed_samples += n - int(np.count_nonzero(opened))
        return block

    def _gain(self, opened: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Each sample's gain: a ramp towards 1 through every run of open samples, towards 0 through closed ones
        (`count`: 1, 2, ... as long as `opened`)."""
        steps = np.empty(len(opened), np.int64)
        start = 0
        for end in [*(np.flatnonzero(opened[1:] != opened[:-1]) + 1).tolist(), len(opened)]:
            run, up = steps[start:end], bool(opened[start])
            np.multiply(count[: end - start], self._up if up else -self._down, out=run)
            run += self._steps
            if up:
                np.minimum(run, self._full, out=run)
            else:
                np.maximum(run, 0, out=run)
            self._steps = int(run[-1])
            start = end
        return (steps / self._full).astype(np.float32)
