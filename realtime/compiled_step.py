"""The short-run step compiled to machine code (numba): runs of 1 to `MAX_HOPS` hops of a Conv-TasNet, one
channel, in one call. No torch.

onnxruntime spends about a microsecond per graph node and run; the short-run graph has ~120 nodes for ~0.4 M
multiply-adds per hop, so at live's one hop per run the fixed cost is most of the time. Here the whole step,
all blocks and norms, is one native call over the weights of `<stem>.step.npz` (the arrays and their
meaning: `realtime.model_file`). It computes what the short-run graphs compute, to float32
rounding; `realtime.runners.StepRunner` runs it, and the tests hold it to the ONNX graphs.

The past of each block's depthwise conv sits in a ring of `lags.max() + MAX_HOPS` frames (row f mod R holds
frame f), so a run can store its own frames before reading its taps without overwriting any frame a tap
still reads; a run writes only its own rows and new `enc`/`dec` arrays, so the state it read stays whole
until the caller commits.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba.extending import overload

from realtime.jit import jit

MAX_HOPS = 64  # hops per call: longer runs are split by the caller (bounds the ring and the scratch)
_FLAGS = {"contract", "reassoc", "arcp", "nsz"}  # vectorised sums; no assumptions about NaN or inf
_jit = jit(fastmath=_FLAGS, boundscheck=False)


class StepWeights(NamedTuple):
    """The step's arrays, in the order `run` takes them (`realtime.model_file.STEP_ARRAYS`, as `read_step`
    checks and returns them)."""

    encoder: np.ndarray
    norm0: np.ndarray
    bottleneck: np.ndarray
    bottleneck_b: np.ndarray
    in_w: np.ndarray
    in_scale: np.ndarray
    in_b: np.ndarray
    slope1: np.ndarray
    norm1: np.ndarray
    past_w: np.ndarray
    past_b: np.ndarray
    lags: np.ndarray
    slope2: np.ndarray
    norm2: np.ndarray
    out_w: np.ndarray
    out_scale: np.ndarray
    skip_b: np.ndarray
    mask_slope: np.ndarray
    mask_w: np.ndarray
    mask_b: np.ndarray
    decoder: np.ndarray
    eps: np.ndarray

    @property
    def hop(self) -> int:
        return self.encoder.shape[0] // 2  # the encoder's frames are two hops

    @property
    def ring_frames(self) -> int:
        return int(self.lags.max()) + MAX_HOPS

    @property
    def width(self) -> int:
        return self.in_w.shape[0] * self.in_w.shape[2]

    def scratch(self) -> tuple[np.ndarray, ...]:
        """The work arrays `run` takes after the state, a row per frame (no allocation per call): the frames
        (then the decoded frames), their encodings and those normalised, the skip sum, the residual path, three
        of a block's activations, the mask, and a block's skip and residual outputs side by side."""
        frames, n = self.encoder.shape
        b, h = self.bottleneck.shape[1], self.in_w.shape[2]
        return tuple(np.zeros((MAX_HOPS, size), np.float32) for size in (frames, n, n, b, b, h, h, h, n, 2 * b))


@_jit
def _norm(k, x, gamma_beta, eps, out):  # noqa: ANN001, ANN202 (numba)
    """Each of the first `k` rows of `x` normalised over its channels (a layer norm), scaled and shifted."""
    n = x.shape[1]
    for t in range(k):
        mean = 0.0
        for j in range(n):
            mean += x[t, j]
        mean /= n
        var = 0.0
        for j in range(n):
            d = x[t, j] - mean
            var += d * d
        scale = 1.0 / np.sqrt(var / n + eps)
        for j in range(n):
            out[t, j] = (x[t, j] - mean) * scale * gamma_beta[0, j] + gamma_beta[1, j]


def _dot_columns(k, x, w, scale, out):  # noqa: ANN001, ANN202
    """The first `k` rows of `out` = those of `x` times `w`, each column times its `scale`: BLAS for float32
    `w`, `_dot_int8` for int8 (compiled code only; see the overload below)."""
    raise NotImplementedError


@overload(_dot_columns, jit_options={"fastmath": _FLAGS, "boundscheck": False})
def _dot_columns_typed(k, x, w, scale, out):  # noqa: ANN001, ANN202
    if w.dtype == numba.types.int8:

        def int8(k, x, w, scale, out):  # noqa: ANN001, ANN202
            _dot_int8(k, x, w, scale, out)

        return int8

    def blas(k, x, w, scale, out):  # noqa: ANN001, ANN202
        np.dot(x[:k], w, out[:k])
        for t in range(k):
            for j in range(w.shape[1]):
                out[t, j] *= scale[j]

    return blas


@_jit
def _dot_int8(k, x, w, scale, out):  # noqa: ANN001, ANN202
    """`_dot_columns` for int8 `w` (a quarter of float32's bytes to fetch), four rows of `w` a pass."""
    m, n = w.shape
    for t in range(k):
        for j in range(n):
            out[t, j] = 0.0
        for i in range(0, m - m % 4, 4):
            a0, a1, a2, a3 = x[t, i], x[t, i + 1], x[t, i + 2], x[t, i + 3]
            for j in range(n):
                out[t, j] += (
                    a0 * np.float32(w[i, j])
                    + a1 * np.float32(w[i + 1, j])
                    + a2 * np.float32(w[i + 2, j])
                    + a3 * np.float32(w[i + 3, j])
                )
        for i in range(m - m % 4, m):
            for j in range(n):
                out[t, j] += x[t, i] * np.float32(w[i, j])
        for j in range(n):
            out[t, j] *= scale[j]


@_jit
def _bias_leaky(k, x, bias, slope):  # noqa: ANN001, ANN202
    """The first `k` rows of `x` plus `bias`, then a per-channel leaky ReLU (PReLU), in place."""
    for t in range(k):
        for j in range(x.shape[1]):
            v = x[t, j] + bias[j]
            x[t, j] = v if v >= 0.0 else v * slope[j]


@_jit
def run(  # noqa: ANN001, ANN201, PLR0913, PLR0915
    chunk, out, enc, enc_out, dec, dec_out, ring, position,
    frame, w, wn, skip, x, hh, y, z, mask, wide,
    encoder, norm0, bottleneck, bottleneck_b, in_w, in_scale, in_b, slope1, norm1, past_w, past_b, lags, slope2,
    norm2, out_w, out_scale, skip_b, mask_slope, mask_w, mask_b, decoder, eps,
):  # fmt: skip
    """Denoise `chunk` (k*hop,) into `out` (k*hop,), k <= MAX_HOPS, from the state `enc`, `dec` (hop,) and the
    ring as of frame `position`; writes the new `enc_out`, `dec_out` and the run's ring rows. `frame` ...
    `wide`: `StepWeights.scratch()`. The blocks' convs run in `_dot_columns` (their weights may be int8); the
    other matrix products go to BLAS (`np.dot`)."""
    hop = enc.shape[0]
    k = chunk.shape[0] // hop
    n = encoder.shape[1]
    b, h = in_w.shape[1], in_w.shape[2]
    blocks, taps = lags.shape
    rows = ring.shape[0]
    for t in range(k):  # frame t: the hop before and hop t
        for j in range(hop):
            frame[t, j] = enc[j] if t == 0 else chunk[(t - 1) * hop + j]
            frame[t, hop + j] = chunk[t * hop + j]
    np.dot(frame[:k], encoder, w[:k])
    for t in range(k):
        for j in range(n):
            w[t, j] = max(w[t, j], 0.0)
    _norm(k, w, norm0, eps[0], wn)
    np.dot(wn[:k], bottleneck, x[:k])
    for t in range(k):
        for j in range(b):
            skip[t, j] = skip_b[j]
            x[t, j] += bottleneck_b[j]
    for i in range(blocks):
        _dot_columns(k, x, in_w[i], in_scale[i], hh)
        _bias_leaky(k, hh, in_b[i], slope1[i])
        _norm(k, hh, norm1[i], eps[1 + 2 * i], y)  # the depthwise input, times the conv's weight on this frame
        base = i * h
        for t in range(k):
            r = (position + t) % rows
            for j in range(h):
                ring[r, base + j] = y[t, j]
        for t in range(k):
            for j in range(h):
                z[t, j] = y[t, j]
            for p in range(taps):
                r = (position + t - lags[i, p]) % rows
                for j in range(h):
                    z[t, j] += past_w[i, p, j] * ring[r, base + j]
        _bias_leaky(k, z, past_b[i], slope2[i])
        _norm(k, z, norm2[i], eps[2 + 2 * i], hh)
        _dot_columns(k, hh, out_w[i], out_scale[i], wide)  # the skip and residual convs at once
        for t in range(k):
            for j in range(b):
                skip[t, j] += wide[t, j]
                x[t, j] += wide[t, b + j]
    for t in range(k):
        for j in range(b):
            if skip[t, j] < 0.0:
                skip[t, j] *= mask_slope[j]
    np.dot(skip[:k], mask_w, mask[:k])
    for t in range(k):
        for j in range(n):
            mask[t, j] = w[t, j] / (1.0 + np.exp(-(mask[t, j] + mask_b[j])))
    np.dot(mask[:k], decoder, frame[:k])  # the decoded frames, over the input frames
    for t in range(k):  # overlap-add: each frame's first hop plus the previous frame's second
        for j in range(hop):
            out[t * hop + j] = (dec[j] if t == 0 else frame[t - 1, hop + j]) + frame[t, j]
    for j in range(hop):
        enc_out[j] = chunk[(k - 1) * hop + j]
        dec_out[j] = frame[k - 1, hop + j]


@_jit
def runs(chunk, out, cursor, states, ring, work):  # noqa: ANN001, ANN201
    """`run` over `chunk` (k*hop,) in pieces of at most MAX_HOPS hops, into `out`, keeping the state: `cursor`
    holds the state set the next piece reads (0 or 1) and the ring's position; `states` (the encoder state of
    set 0, of set 1, the decoder tail of set 0, of set 1) and `work` (the scratch, then the weights) are `run`'s
    other arguments. A piece reads one set and writes the other, which it then makes current (commits); a
    piece whose output is not finite gives silence instead and zeroes the current set and the ring (a fresh
    stream). Returns the number of pieces."""
    hop = states[0].shape[0]
    step = MAX_HOPS * hop
    pieces = 0
    for start in range(0, chunk.shape[0], step):
        end = min(start + step, chunk.shape[0])
        piece, result = chunk[start:end], out[start:end]
        slot, position = cursor[0], cursor[1]
        if slot == 0:
            run(piece, result, states[0], states[1], states[2], states[3], ring, position, *work)
        else:
            run(piece, result, states[1], states[0], states[3], states[2], ring, position, *work)
        finite = True
        for j in range(result.shape[0]):
            if not np.isfinite(result[j]):  # the output alone: a non-finite state reaches it by the next run
                finite = False
                break
        if finite:
            cursor[0] = 1 - slot
            cursor[1] = (position + (end - start) // hop) % ring.shape[0]
        else:
            result[:] = 0.0
            states[slot][:] = 0.0
            states[2 + slot][:] = 0.0
            ring[:] = 0.0
        pieces += 1
    return pieces
