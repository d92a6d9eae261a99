"""A fixed-capacity single-producer/single-consumer ring buffer of float32 frames.

Safe for one writer thread and one reader thread without locks: each side only advances its own
index, and writes/reads copy into preallocated memory (no allocation after construction).
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Frames of `channels` float32 samples; `write` and `read` move as many as fit or are available."""

    def __init__(self, capacity: int, channels: int = 1) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._data = np.zeros((capacity + 1, channels), np.float32)  # one slot kept empty: full != empty
        self._size = capacity + 1
        self._read = 0
        self._write = 0

    @property
    def capacity(self) -> int:
        return self._size - 1

    def available(self) -> int:
        """Frames ready to read."""
        return (self._write - self._read) % self._size

    def free(self) -> int:
        """Frames that can be written."""
        return self.capacity - self.available()

    def write(self, frames: np.ndarray) -> int:
        """Copy up to len(frames) frames in; returns how many fitted."""
        w, size = self._write, self._size
        n = min(len(frames), size - 1 - (w - self._read) % size)
        first = min(n, size - w)
        self._data[w : w + first] = frames[:first]
        if first < n:  # (an empty slice assignment costs as much as a full one at live's block sizes)
            self._data[: n - first] = frames[first:n]
        self._write = (w + n) % size
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Fill `out` with up to len(out) frames; returns how many were read (the rest is untouched)."""
        r, size = self._read, self._size
        n = min(len(out), (self._write - r) % size)
        first = min(n, size - r)
        out[:first] = self._data[r : r + first]
        if first < n:
            out[first:n] = self._data[: n - first]
        self._read = (r + n) % size
        return n

    def read(self, n: int) -> np.ndarray:
        """A new array of up to `n` frames."""
        out = np.empty((min(n, self.available()), self._data.shape[1]), np.float32)
        self.read_into(out)
        return out
