"""The network's form for short runs: up to `max_hops` encoder frames in, as many hops out, the depthwise
convs' past held outside.

`forward_stream` carries each depthwise conv's whole past ((P-1)*d frames per block) through every call, so
a streaming graph copies all of it twice per run (concatenate, then slice off the new cache). In short runs,
which is how live runs, that copying and the layout changes around the norms cost more than the arithmetic.
`RingStep` computes the same function from only what the run needs: for every block and each lag in
`lags(config)`, its depthwise input that many frames before each frame of the run (gathered by the caller
from a ring of past activations; zeros where that frame is in the run itself), and it returns the run's
depthwise inputs for the caller to store. Taps that fall inside the run (lags below `max_hops`) it takes
from the run's own frames, shifted; with `max_hops` 1 there are none.

One channel; everything is a row per frame, (frames, features): 1x1 convs are matrix products, the norms run
over the last axis, and no tensor changes layout. Parameters are rearranged, not retrained: biases of the residual
path are folded into the next blocks' input convs; each depthwise conv's weight on the current frame is
folded into the norm before it, so what a block stores (and later reads back as taps) is its depthwise
input times that weight, and its weights on the past are divided by it; the last block's residual conv,
whose output nothing reads, is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import TasNetConfig
from model.conv_tasnet import ChannelNorm, ConvTasNet
from model.int8 import int8_columns


def lags(config: TasNetConfig) -> list[list[int]]:
    """For each block, the frames back of its depthwise taps on the past, oldest first: (P-1-p)*d for p < P-1."""
    return [[(config.P - 1 - p) * d for p in range(config.P - 1)] for d in config.dilations]


def _activation(prelu: nn.PReLU) -> tuple[str, Tensor | float]:
    """A PReLU as (kind, slope): a one-slope PReLU becomes a LeakyReLU, which onnxruntime fuses into the
    matrix product before it."""
    slope = prelu.weight.detach().clone()
    return ("leaky", float(slope)) if slope.numel() == 1 else ("prelu", slope)


def _act(x: Tensor, activation: tuple[str, Tensor | float]) -> Tensor:
    kind, slope = activation
    return F.leaky_relu(x, slope) if kind == "leaky" else F.prelu(x, slope)


def _norm(x: Tensor, norm: ChannelNorm) -> Tensor:
    return F.layer_norm(x, (norm.channels,), norm.gamma, norm.beta, norm.eps)


def _nonzero(weight: Tensor, floor: float = 1e-6) -> Tensor:
    """`weight` with magnitudes below `floor` raised to it (sign kept), so that dividing by it is safe: the
    function changes by at most `floor` times the input there, far below the export's tolerance."""
    return torch.where(weight.abs() < floor, torch.copysign(torch.tensor(floor), weight), weight)


def _scaled(norm: ChannelNorm, weight: Tensor) -> ChannelNorm:
    """A copy of `norm` whose output is multiplied by `weight` per channel."""
    scaled = ChannelNorm(norm.channels, norm.eps)
    with torch.no_grad():
        scaled.gamma.copy_(norm.gamma * weight)
        scaled.beta.copy_(norm.beta * weight)
    return scaled


class RingStep(nn.Module):
    """Runs of 1 to `max_hops` hops of `model` (a cLN ConvTasNet, in eval mode), one channel.

    forward(chunk (1, k*hop), enc (1, L-hop), taps (P-1, k, blocks*H), dec (1, L-hop)) ->
        (enhanced (1, k*hop), enc_out, activations (k, blocks*H), dec_out)

    `activations[t]` is what frame t of the run stores; `taps[p, t, i*H:(i+1)*H]` is block i's part of what
    the frame `lags(config)[i][p]` frames before frame t stored, zeros where that frame is in this run (or
    before the stream began). `enc`, `dec` and `enhanced` are `forward_stream`'s: the last input samples, the
    overlap-add tail, and output delayed by L - hop.
    """

    def __init__(self, model: ConvTasNet, max_hops: int = 1) -> None:
        super().__init__()
        c = model.config
        if c.norm != "cLN":
            raise ValueError("the short-run form needs the stateless per-frame norm (norm='cLN')")
        if max_hops < 1:
            raise ValueError(f"max_hops must be at least 1, got {max_hops}")
        self.config = c
        self.max_hops = max_hops
        blocks = list(model.blocks)
        self.bottleneck_norm, bottleneck = model.bottleneck
        self.register_buffer("encoder", model.encoder.weight.detach()[:, 0, :].T.clone())  # (L, N)
        self.register_buffer("bottleneck_w", bottleneck.weight.detach()[:, :, 0].T.clone())
        self.register_buffer("bottleneck_b", bottleneck.bias.detach().clone())
        carried = torch.zeros(c.B)  # the residual path's biases so far, folded into the next input conv
        self.in_w, self.in_b, self.res_w = [], [], []
        now = [_nonzero(block.depthwise.weight.detach()[:, 0, -1]) for block in blocks]  # weight on this frame
        for i, block in enumerate(blocks):
            w_in = block.in_conv.weight.detach()[:, :, 0]
            self._buffer(self.in_w, f"in_w{i}", w_in.T)
            self._buffer(self.in_b, f"in_b{i}", block.in_conv.bias.detach() + w_in @ carried)
            carried = carried + block.res_conv.bias.detach()
            if i < len(blocks) - 1:
                self._buffer(self.res_w, f"res_w{i}", block.res_conv.weight.detach()[:, :, 0].T)
        past = [b.depthwise.weight.detach()[:, 0, :-1].T / w for b, w in zip(blocks, now)]  # each (P-1, H)
        self.inside: list[list[tuple[int, str]]] = []  # per block: (lag, its weights' buffer) of the taps that
        for i, (weights, block_lags) in enumerate(zip(past, lags(c))):  # can fall inside a run
            self.inside.append([])
            for p, lag in enumerate(block_lags):
                if lag < max_hops:
                    self.register_buffer(f"inside_w{i}_{p}", weights[p].clone())
                    self.inside[i].append((lag, f"inside_w{i}_{p}"))
        for lag in {lag for row in self.inside for lag, _ in row}:
            self.register_buffer(f"zeros{lag}", torch.zeros(lag, c.H), persistent=False)
        self.register_buffer("past_w", torch.cat(past, dim=1).clone())  # (P-1, blocks*H)
        self.register_buffer("past_b", torch.cat([b.depthwise.bias.detach() for b in blocks]).clone())
        self.norms = nn.ModuleList(n for b, w in zip(blocks, now) for n in (_scaled(b.norm1, w), b.norm2))
        self.activations = [(_activation(b.act1), _activation(b.act2)) for b in blocks]
        skip_w = torch.cat([b.skip_conv.weight.detach()[:, :, 0] for b in blocks], dim=1)
        self.register_buffer("skip_w", skip_w.T.clone())  # (blocks*H, B)
        self.register_buffer("skip_b", sum(b.skip_conv.bias.detach() for b in blocks).clone())
        mask_act, mask_conv, _ = model.mask
        self.mask_activation = _activation(mask_act)
        self.register_buffer("mask_w", mask_conv.weight.detach()[:, :, 0].T.clone())
        self.register_buffer("mask_b", mask_conv.bias.detach().clone())
        decoder = model.decoder.weight.detach()[:, 0, :]  # (N, L)
        self.register_buffer("decoder_now", decoder[:, : c.hop].clone())
        self.register_buffer("decoder_next", decoder[:, c.hop :].clone())

    def _buffer(self, group: list, name: str, value: Tensor) -> None:
        self.register_buffer(name, value.clone())
        group.append(name)

    def forward(self, chunk: Tensor, enc: Tensor, taps: Tensor, dec: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c = self.config
        rows = torch.cat([enc, chunk], dim=1).reshape(-1, c.hop)  # k + 1 hops: frame t is rows t and t + 1
        w = torch.relu(torch.cat([rows[:-1], rows[1:]], dim=1) @ self.encoder)  # (k, N): the frames' encodings
        x = torch.addmm(self.bottleneck_b, _norm(w, self.bottleneck_norm), self.bottleneck_w)
        past = ((taps * self.past_w[:, None]).sum(0) + self.past_b).split(c.H, dim=1)  # each block's past taps
        inputs, outputs = [], []
        for i, (act1, act2) in enumerate(self.activations):
            h = _act(torch.addmm(getattr(self, self.in_b[i]), x, getattr(self, self.in_w[i])), act1)
            y = _norm(h, self.norms[2 * i])  # the depthwise input, times the conv's weight on this frame
            inputs.append(y)
            z = y + past[i]
            for lag, weights in self.inside[i]:  # frame t - lag of this run, zeros before the run
                z = z + torch.cat([getattr(self, f"zeros{lag}"), y * getattr(self, weights)])[:-lag]
            y = _norm(_act(z, act2), self.norms[2 * i + 1])
            outputs.append(y)
            if i < len(self.res_w):
                x = torch.addmm(x, y, getattr(self, self.res_w[i]))
        skip = _act(torch.addmm(self.skip_b, torch.cat(outputs, dim=1), self.skip_w), self.mask_activation)
        masked = w * torch.sigmoid(torch.addmm(self.mask_b, skip, self.mask_w))
        tails = masked @ self.decoder_next  # each frame's second half, added to the next frame's first
        out = torch.addmm(torch.cat([dec, tails[:-1]]), masked, self.decoder_now).reshape(1, -1)
        return out, rows[-1:], torch.cat(inputs, dim=1), tails[-1:]


def stream_error(
    model: ConvTasNet,
    step: Callable[..., Sequence[np.ndarray]],
    max_hops: int,
    frames: int,
    scale: float = 0.1,
    seed: int = 0,
) -> tuple[float, set[int]]:
    """Run `step` (a short-run form of `model`: numpy chunk, enc, taps, dec in; enhanced, enc_out,
    activations, dec_out out) over `frames` hops of random audio (standard deviation `scale`) in random runs of
    1 to `max_hops` hops, feeding it its own past activations from a ring as the engine does (zeros for
    frames inside the run). Returns the largest difference from `model.forward_stream` on the same runs, and
    the run lengths drawn."""
    c = model.config
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((1, frames * c.hop)) * scale).astype(np.float32)
    back = np.array(lags(c)).T[:, None, :]  # (taps, 1, blocks)
    blocks, ring_frames = back.shape[2], int(back.max())
    ring = np.zeros((ring_frames, blocks, c.H), np.float32)
    enc = dec = np.zeros((1, model.delay), np.float32)
    state = model.initial_state(1)
    worst, pos, runs = 0.0, 0, set()
    while pos < frames:
        k = min(int(rng.integers(1, max_hops + 1)), frames - pos)
        runs.add(k)
        chunk = audio[:, pos * c.hop : (pos + k) * c.hop]
        t = np.arange(k)[None, :, None]
        taps = ring[(pos + t - back) % ring_frames, np.arange(blocks)]  # (taps, k, blocks, H)
        taps[np.broadcast_to(t >= back, taps.shape[:3])] = 0.0  # frames inside the run
        out, enc, activations, dec = step(chunk, enc, taps.reshape(len(back), k, -1), dec)
        ring[(pos + np.arange(k)) % ring_frames] = activations.reshape(k, blocks, c.H)
        with torch.no_grad():
            ref, state = model.forward_stream(torch.from_numpy(chunk), state)
        worst = max(worst, float(np.max(np.abs(out - ref.numpy()))))
        pos += k
    return worst, runs


def step_arrays(model: ConvTasNet, int8: bool = False) -> dict[str, np.ndarray]:
    """The short-run form's parameters as the compiled step takes them (`realtime.model_file.STEP_ARRAYS`):
    RingStep's folded weights, each block's skip and residual convs side by side (the last block's residual
    zeros), the decoder's two halves side by side, activations as per-channel slopes. `int8`: the blocks' convs
    `in_w` and `out_w` as int8 with their `in_scale` and `out_scale` (a model that `snap_to_int8` made)."""
    s = RingStep(model, max_hops=1)
    c = s.config
    blocks = len(s.activations)

    def slopes(activation: tuple[str, Tensor | float], channels: int) -> Tensor:
        _, slope = activation
        return torch.as_tensor(slope, dtype=torch.float32).reshape(-1).expand(channels)

    def affine(norms: Sequence[ChannelNorm]) -> Tensor:
        return torch.stack([torch.stack([n.gamma, n.beta]) for n in norms])

    res = [getattr(s, name) for name in s.res_w] + [torch.zeros(c.H, c.B)]
    skip = s.skip_w.reshape(blocks, c.H, c.B)
    tensors = {
        "encoder": s.encoder,
        "norm0": torch.stack([s.bottleneck_norm.gamma, s.bottleneck_norm.beta]),
        "bottleneck": s.bottleneck_w,
        "bottleneck_b": s.bottleneck_b,
        "in_w": torch.stack([getattr(s, name) for name in s.in_w]),
        "in_b": torch.stack([getattr(s, name) for name in s.in_b]),
        "slope1": torch.stack([slopes(a, c.H) for a, _ in s.activations]),
        "norm1": affine(s.norms[0::2]),
        "past_w": s.past_w.reshape(c.P - 1, blocks, c.H).transpose(0, 1),
        "past_b": s.past_b.reshape(blocks, c.H),
        "lags": torch.tensor(lags(c)),
        "slope2": torch.stack([slopes(a, c.H) for _, a in s.activations]),
        "norm2": affine(s.norms[1::2]),
        "out_w": torch.cat([skip, torch.stack(res)], dim=2),
        "skip_b": s.skip_b,
        "mask_slope": slopes(s.mask_activation, c.B),
        "mask_w": s.mask_w,
        "mask_b": s.mask_b,
        "decoder": torch.cat([s.decoder_now, s.decoder_next], dim=1),
        "eps": torch.tensor([s.bottleneck_norm.eps, *(n.eps for n in s.norms)]),
    }
    arrays = {
        name: np.ascontiguousarray(t.detach().numpy().astype(np.int64 if name == "lags" else np.float32))
        for name, t in tensors.items()
    }
    if int8:
        for name in ("in_w", "out_w"):
            arrays[name], arrays[name.replace("_w", "_scale")] = int8_columns(arrays[name])
    return arrays
