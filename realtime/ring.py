"""A fixed-capacity single-producer/single-consumer ring buffer of float32 frames.

Safe for one writer thread and one reader thread without locks: each side only advances its own
index, and writes/reads copy into preallocated memory (no allocation after construction). The frames and
the two indices are numpy arrays (`data`, `at`) so that compiled code (live's callback) moves frames with
the same functions (`ring_write`, `ring_read_into`) as the methods here; each stores its index after the
frames it copied, so the other side never sees an index ahead of its data.
"""

from __future__ import annotations

import numpy as np

from realtime.jit import jit

READ, WRITE = 0, 1  # `at`: the reader's and the writer's index


class RingBuffer:
    """Frames of `channels` float32 samples; `write` and `read` move as many as fit or are available."""

    def __init__(self, capacity: int, channels: int = 1) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.data = np.zeros((capacity + 1, channels), np.float32)  # one slot kept empty: full != empty
        self.at = np.zeros(2, np.int64)

    @property
    def capacity(self) -> int:
        return self.data.shape[0] - 1

    def available(self) -> int:
        """Frames ready to read."""
        return int(self.at[WRITE] - self.at[READ]) % self.data.shape[0]

    def free(self) -> int:
        """Frames that can be written."""
        return self.capacity - self.available()

    def write(self, frames: np.ndarray) -> int:
        """Copy up to len(frames) frames in; returns how many fitted."""
        return ring_write(self.data, self.at, frames)

    def read_into(self, out: np.ndarray) -> int:
        """Fill `out` with up to len(out) frames; returns how many were read (the rest is untouched)."""
        return ring_read_into(self.data, self.at, out)

    def read(self, n: int) -> np.ndarray:
        """A new array of up to `n` frames."""
        out = np.empty((min(n, self.available()), self.data.shape[1]), np.float32)
        self.read_into(out)
        return out


@jit()
def ring_write(data, at, frames):  # noqa: ANN001, ANN201 (numba)
    """`RingBuffer.write` on its arrays."""
    size, w = data.shape[0], at[WRITE]
    n = min(frames.shape[0], size - 1 - (w - at[READ]) % size)
    first = min(n, size - w)
    data[w : w + first] = frames[:first]
    data[: n - first] = frames[first:n]
    at[WRITE] = (w + n) % size
    return n


@jit()
def ring_read_into(data, at, out):  # noqa: ANN001, ANN201 (numba)
    """`RingBuffer.read_into` on its arrays."""
    size, r = data.shape[0], at[READ]
    n = min(out.shape[0], (at[WRITE] - r) % size)
    first = min(n, size - r)
    out[:first] = data[r : r + first]
    out[first:n] = data[: n - first]
    at[READ] = (r + n) % size
    return n
