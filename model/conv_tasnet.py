"""Causal Conv-TasNet: learned encoder -> temporal conv net (mask) -> learned decoder.

One code path serves whole signals and streaming: every causal conv takes its past as an
explicit cache, which is zeros for a whole signal and the previous call's tail when streaming.

Layout: the temporal conv net runs on (batch, channels, 1, frames) tensors, i.e. every TCN conv is
a 2-D conv with (1, k) kernels (parameters stay Conv1d-shaped). Same arithmetic, but onnxruntime
runs 2-D convs through its blocked NCHWc kernels with the activation fused, and keeps tensors in that
layout between them: the streaming graph runs a 160-sample block in about half the time of the 1-D
graph, whose depthwise convs loop over their H groups (`benchmarks/results/speed.md`).

Timing: the encoder sees frames of L samples every hop = L/2 samples; frame k ends at input
sample (k+1)*hop. Overlap-add in the decoder completes an output hop only when the next frame
arrives, so `forward_stream` returns audio delayed by L - hop samples; `forward` returns the
aligned signal (that delay removed).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import TasNetConfig
from model.streaming import StateTensor, Streaming, frames_in, overlap_add
from realtime.model_file import DECODER_TAIL, ENCODER_STATE


class StreamState(NamedTuple):
    """Streaming caches, all zeros at the start of a stream.

    enc: (batch, L - hop) last input samples, the start of the next encoder frame.
    conv: one (batch, H, 1, (P-1)*d) tensor per block, in network order: the past inputs of its
          depthwise conv. Separate tensors, not one concatenation: splitting and re-joining the
          whole cache cost two copies of it per streaming call.
    dec: (batch, L - hop) overlap-add tail of the decoder, added to the next output.
    """

    enc: Tensor
    conv: tuple[Tensor, ...]
    dec: Tensor

    def flat(self) -> tuple[Tensor, ...]:
        """(enc, conv[0], ..., conv[-1], dec): the order of the exported graph's state inputs and outputs."""
        return (self.enc, *self.conv, self.dec)


class ChannelNorm(nn.Module):
    """Per-frame layer norm over channels (asteroid's "cLN"): causal and stateless."""

    def __init__(self, channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """x: (batch, channels, *time) -> same shape, each frame normalised over its channels."""
        last = x.dim() - 1  # not -1: the ONNX exporter writes it into the Transpose's perm as is
        return F.layer_norm(x.movedim(1, last), (self.channels,), self.gamma, self.beta, self.eps).movedim(last, 1)


class CumulativeNorm(nn.Module):
    """The paper's cumulative layer norm: statistics over channels and all frames so far.

    Offline only here (its streaming form would need running sums in the state); kept to
    measure it against ChannelNorm.
    """

    def __init__(self, channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """x: (batch, channels, 1, frames) or (batch, channels, frames)."""
        count = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype) * x.shape[1]
        mean = x.sum(1, keepdim=True).cumsum(-1) / count
        power = x.pow(2).sum(1, keepdim=True).cumsum(-1) / count
        var = (power - mean.pow(2)).clamp_min(0)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - mean) / (var + self.eps).sqrt() * self.gamma.reshape(shape) + self.beta.reshape(shape)


def make_norm(kind: str, channels: int) -> nn.Module:
    return ChannelNorm(channels) if kind == "cLN" else CumulativeNorm(channels)


def conv_2d(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """`conv` (its weights, dilation and groups) applied to (batch, C, 1, frames) as a 2-D conv with a (1, k) kernel."""
    return F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, dilation=(1, conv.dilation[0]), groups=conv.groups)


class ConvBlock(nn.Module):
    """1x1 conv B->H, PReLU, norm, causal depthwise conv (kernel P, dilation d), PReLU, norm,
    then 1x1 convs back to B for the residual and the skip path."""

    def __init__(self, B: int, H: int, P: int, dilation: int, norm: str) -> None:
        super().__init__()
        self.context = (P - 1) * dilation
        self.in_conv = nn.Conv1d(B, H, 1)
        self.act1 = nn.PReLU()
        self.norm1 = make_norm(norm, H)
        self.depthwise = nn.Conv1d(H, H, P, dilation=dilation, groups=H)
        self.act2 = nn.PReLU()
        self.norm2 = make_norm(norm, H)
        self.res_conv = nn.Conv1d(H, B, 1)
        self.skip_conv = nn.Conv1d(H, B, 1)

    def forward(self, x: Tensor, cache: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (batch, B, 1, frames); cache: (batch, H, 1, context).

        Returns the residual output, the block's activations for the skip path (the skip convs of all
        blocks run as one conv in `ConvTasNet`: a sum of linear maps is one map on the concatenation,
        one op instead of 2 per block in the streaming graph), and the new cache."""
        y = self.norm1(self.act1(conv_2d(self.in_conv, x)))
        y = torch.cat([cache, y], dim=3)
        new_cache = y[:, :, :, -self.context :]  # constant slice: no shape arithmetic in the exported graph
        y = self.norm2(self.act2(conv_2d(self.depthwise, y)))
        return x + conv_2d(self.res_conv, y), y, new_cache


class ConvTasNet(Streaming):
    """Causal single-channel Conv-TasNet for speech enhancement (sigmoid mask on the encoder output)."""

    title = "causal Conv-TasNet"

    def __init__(self, config: TasNetConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.encoder = nn.Conv1d(1, c.N, c.L, stride=c.hop, bias=False)
        self.bottleneck = nn.Sequential(make_norm(c.norm, c.N), nn.Conv1d(c.N, c.B, 1))
        self.blocks = nn.ModuleList(ConvBlock(c.B, c.H, c.P, d, c.norm) for d in c.dilations)
        self.mask = nn.Sequential(nn.PReLU(), nn.Conv1d(c.B, c.N, 1), nn.Sigmoid())
        self.decoder = nn.ConvTranspose1d(c.N, 1, c.L, stride=c.hop, bias=False)

    @property
    def delay(self) -> int:
        """Samples by which `forward_stream` output lags its input."""
        return self.config.L - self.config.hop

    def initial_state(self, batch: int = 1) -> StreamState:
        c = self.config
        w = self.encoder.weight
        return StreamState(
            enc=w.new_zeros(batch, self.delay),
            conv=tuple(w.new_zeros(batch, c.H, 1, b.context) for b in self.blocks),
            dec=w.new_zeros(batch, self.delay),
        )

    def state_spec(self) -> list[StateTensor]:
        c, d = self.config, self.delay
        return [
            StateTensor(ENCODER_STATE, (d,), "last L - hop input samples"),
            *(
                StateTensor(
                    f"conv{i}", (c.H, 1, b.context), f"past inputs of block {i}'s depthwise conv (dilation {dil})"
                )
                for i, (b, dil) in enumerate(zip(self.blocks, c.dilations))
            ),
            StateTensor(DECODER_TAIL, (d,), "decoder overlap-add tail"),
        ]

    def stream_flat(self, chunk: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        out, new_state = self.forward_stream(chunk, StreamState(state[0], state[1:-1], state[-1]))
        return (out, *new_state.flat())

    def forward_stream(self, chunk: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        """Enhance `chunk` (batch, k*hop) for any k >= 1, continuing from `state`.

        Returns (batch, k*hop) samples delayed by `self.delay`, and the next state.
        """
        if self.config.norm != "cLN":
            raise ValueError("streaming needs the stateless per-frame norm (norm='cLN')")
        return self._process(chunk, state)

    def _process(self, chunk: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        """One pass over `chunk` from `state` (for cumLN only valid as a single whole-signal pass)."""
        x, enc = frames_in(state.enc, chunk)
        w = torch.relu(self.encoder(x.unsqueeze(1)))  # (batch, N, k)
        y = self.bottleneck(w).unsqueeze(2)  # (batch, B, 1, k): the TCN's layout
        activations, caches = [], []
        for block, cache in zip(self.blocks, state.conv):
            y, activation, new_cache = block(y, cache)
            activations.append(activation)
            caches.append(new_cache)
        skip = F.conv2d(
            torch.cat(activations, dim=1),
            torch.cat([b.skip_conv.weight for b in self.blocks], dim=1).unsqueeze(2),
            sum(b.skip_conv.bias for b in self.blocks),
        ).squeeze(2)
        out, dec = overlap_add(self.decoder(w * self.mask(skip)).squeeze(1), state.dec)
        return out, StreamState(enc, tuple(caches), dec)

    def whole(self, x: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        return self._process(x, state)  # cumLN too: a whole signal is one pass
