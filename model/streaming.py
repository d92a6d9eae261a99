"""What every model family's network shares: causal convs whose past is an explicit cache, and one code path
for whole signals and streaming.

A family's network takes `chunk` (batch, k*hop) and a tuple of state tensors, all zeros at the start of a
stream, and returns `chunk`'s samples delayed by `delay` and the next state. A whole signal is one such call
from the zero state, its output then aligned with the input (`Streaming.forward`). The exported graph is
that call with the state flattened into named tensors (`state_spec`), which is all the engine knows of a model.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class StateTensor(NamedTuple):
    """One state tensor as the exported graph names it: its name, shape without the batch axis, and meaning."""

    name: str
    shape: tuple[int, ...]
    meaning: str


def causal(conv: nn.Module, x: Tensor, cache: Tensor) -> tuple[Tensor, Tensor]:
    """`conv` (its kernel on the last axis, no padding there) over `x` continued from `cache`, the last
    (kernel - 1) * dilation steps of its input before `x`; returns its output and the next cache."""
    y = torch.cat([cache, x], dim=-1)
    return conv(y), y[..., y.shape[-1] - cache.shape[-1] :]


def frames_in(enc: Tensor, chunk: Tensor) -> tuple[Tensor, Tensor]:
    """An encoder's input for `chunk`: the last samples before it (`enc`) then `chunk`; and the next `enc`."""
    x = torch.cat([enc, chunk], dim=1)
    return x, x[:, x.shape[1] - enc.shape[1] :]


def overlap_add(frames: Tensor, dec: Tensor) -> tuple[Tensor, Tensor]:
    """A decoder's overlap-added output (batch, k*hop + delay) with the previous call's tail `dec` (batch, delay)
    added in; returns the k*hop completed samples and the next tail."""
    d = dec.shape[1]
    out = torch.cat([frames[:, :d] + dec, frames[:, d:]], dim=1)
    return out[:, : out.shape[1] - d], out[:, out.shape[1] - d :]


class Streaming(nn.Module):
    """Base of every family: subclasses set `config` (with its `hop`), implement `delay`, `state_spec` and
    `forward_stream`, and may say where in their state the decoder's overlap-add tail is (`tail`)."""

    title = "causal network"  # what the sidecar calls the model

    config: Any

    @property
    def delay(self) -> int:
        """Samples by which `forward_stream` output lags its input."""
        raise NotImplementedError

    @property
    def window(self) -> int:
        """Samples of input in each encoder frame (the config's L, for the families that frame their input)."""
        return self.config.L

    def initial_state(self, batch: int = 1) -> tuple[Tensor, ...]:
        """The state at the start of a stream: zeros shaped as `state_spec` says."""
        w = next(self.parameters())
        return tuple(w.new_zeros(batch, *s.shape) for s in self.state_spec())

    def state_spec(self) -> list[StateTensor]:
        """The state tensors in `initial_state` order, as the exported graph names them."""
        raise NotImplementedError

    def forward_stream(self, chunk: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Enhance `chunk` (batch, k*hop) continuing from `state`: (batch, k*hop) samples delayed by `delay`."""
        raise NotImplementedError

    def tail(self, state: tuple[Tensor, ...]) -> Tensor:
        """The `delay` samples still held after a stream's last chunk (batch, delay)."""
        return state[-1]

    def stream_flat(self, chunk: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """`forward_stream` with the state as separate tensors in and out: the exported graph's signature."""
        out, new_state = self.forward_stream(chunk, tuple(state))
        return (out, *new_state)

    def forward(self, wave: Tensor) -> Tensor:
        """Enhance whole signals (batch, time) -> (batch, time), aligned with the input."""
        if wave.dim() == 1:
            return self.forward(wave.unsqueeze(0)).squeeze(0)
        length = wave.shape[1]
        x = F.pad(wave, (0, -length % self.config.hop))
        out, state = self.whole(x, self.initial_state(wave.shape[0]))
        if self.delay:
            out = torch.cat([out, self.tail(state)], dim=1)
        return out[:, self.delay : self.delay + length]

    def whole(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One pass over a whole signal (a multiple of hop samples) from the zero state."""
        return self.forward_stream(x, state)

    def get_config(self) -> dict[str, Any]:
        """Everything needed to rebuild this network (`model.families.build`)."""
        return self.config.to_dict()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
