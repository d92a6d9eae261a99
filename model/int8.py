"""Weights on an int8 grid: each output channel of a Conv-TasNet block's 1x1 convs (in, skip, residual: 85 % of
the weights) as 8-bit integers times one float scale.

Run one hop at a time, the model reads every weight once per hop: its 1.8 MB of float32 do not fit a core's
L2 cache, so live's compiled step spends most of its time fetching them, the more so on a busy machine whose
other work has evicted them. On the grid the step stores those convs as int8 (a quarter of the bytes), and
every other path (the ONNX graphs, torch) computes with the same values as float32, so all stay equal to
float rounding.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from model.conv_tasnet import ConvTasNet
from model.streaming import Streaming

LEVELS = 127  # symmetric: -127..127
DESCRIPTION = "int8 grid per output channel: each block's 1x1 convs (in, skip, residual)"


def as_exported(model: Streaming) -> Streaming:
    """The function an export of `model` computes: a Conv-TasNet on the int8 grid, other families as they are."""
    return snap_to_int8(model) if isinstance(model, ConvTasNet) else model


def snap_to_int8(model: ConvTasNet) -> ConvTasNet:
    """A copy of `model` whose blocks' 1x1 conv weights lie on a symmetric int8 grid, one scale per output
    channel (its largest weight over 127); the biases, norms, encoder, decoder and mask stay as they are."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for block in model.blocks:
            for conv in (block.in_conv, block.skip_conv, block.res_conv):
                conv.weight.copy_(_snapped(conv))
    return model


def _snapped(conv: nn.Conv1d) -> torch.Tensor:
    w = conv.weight.detach()  # (out, in, 1)
    scale = w.abs().amax(dim=(1, 2), keepdim=True) / LEVELS
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(w / safe) * scale


def int8_columns(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q, scale) with `q * scale` equal to `w` (float32, (..., in, out), its columns on the int8 grid as
    `snap_to_int8` leaves them) to float rounding: q int8 of w's shape, scale float32 (..., out)."""
    scale = (np.abs(w).max(axis=-2) / LEVELS).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1.0))
    q = np.round(w / safe[..., None, :])
    off_grid = np.abs(q * scale[..., None, :] - w).max(initial=0)
    if np.abs(q).max(initial=0) > LEVELS or off_grid > 1e-6 * max(float(np.abs(w).max(initial=0)), 1e-30):
        raise ValueError("the weights are not on the int8 grid (snap_to_int8 first)")
    return q.astype(np.int8), scale
