"""Spectrogram mask estimation with a U-Net (Jansson et al., 2017), causal in time.

An STFT (sqrt-Hann window of L samples, hop L/2) as a conv with a fixed basis; a U-Net on the compressed
magnitude whose encoder convs stride over frequency only and look at the current and K_t - 1 past frames,
whose decoder (transposed convs, skips from the encoder) sees only the current frame; a sigmoid mask on the
complex spectrum; the inverse STFT as a transposed conv, overlap-added. Same framing as Conv-TasNet: the
output lags by L - hop samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import UNetConfig
from model.streaming import StateTensor, Streaming, causal, frames_in, overlap_add
from realtime.model_file import DECODER_TAIL, ENCODER_STATE

COMPRESSION = 0.3  # the network sees |X| ** 0.3: speech's dynamic range, compressed as loudness is


def stft_bases(L: int) -> tuple[Tensor, Tensor]:
    """(analysis, synthesis) weights (2 * bins, 1, L): real then imaginary parts. sqrt-Hann on both sides
    overlap-adds to the identity at hop L/2."""
    n = torch.arange(L, dtype=torch.float64)
    k = torch.arange(L // 2 + 1, dtype=torch.float64)[:, None]
    window = torch.sqrt(0.5 - 0.5 * torch.cos(2 * math.pi * n / L))
    phase = 2 * math.pi * k * n / L
    analysis = torch.cat([torch.cos(phase), -torch.sin(phase)]) * window
    weight = torch.full((L // 2 + 1, 1), 2.0, dtype=torch.float64)
    weight[0] = weight[-1] = 1.0  # DC and Nyquist appear once in the inverse real DFT
    synthesis = torch.cat([torch.cos(phase) * weight, -torch.sin(phase) * weight]) * window / L
    return analysis.float().unsqueeze(1), synthesis.float().unsqueeze(1)


def _sizes(config: UNetConfig) -> list[int]:
    """Frequency bins at the input of each encoder layer, and at the bottom."""
    sizes = [config.bins]
    for _ in range(config.D):
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes


class STFTUNet(Streaming):
    """Causal U-Net mask estimator on the STFT."""

    title = "causal STFT U-Net mask estimator"

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        c = self.config = config
        analysis, synthesis = stft_bases(c.L)
        self.register_buffer("analysis", analysis, persistent=False)
        self.register_buffer("synthesis", synthesis, persistent=False)
        channels = [1, *(c.C * 2**i for i in range(c.D))]
        self.sizes = _sizes(c)
        pad = c.K_f // 2
        self.down = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], (c.K_f, c.K_t), stride=(2, 1), padding=(pad, 0)) for i in range(c.D)
        )
        self.down_norm = nn.ModuleList(nn.BatchNorm2d(channels[i + 1]) for i in range(c.D))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(
                channels[i + 1] * (1 if i == c.D - 1 else 2),
                channels[i],
                (c.K_f, 1),
                stride=(2, 1),
                padding=(pad, 0),
                output_padding=(self.sizes[i] - 2 * self.sizes[i + 1] + 1, 0),
            )
            for i in range(c.D)
        )
        self.up_norm = nn.ModuleList(nn.BatchNorm2d(channels[i]) for i in range(1, c.D))

    @property
    def delay(self) -> int:
        return self.config.L - self.config.hop

    def state_spec(self) -> list[StateTensor]:
        c, channels = self.config, [1, *(self.config.C * 2**i for i in range(self.config.D))]
        return [
            StateTensor(ENCODER_STATE, (self.delay,), "last L - hop input samples"),
            *(
                StateTensor(f"down{i}", (channels[i], self.sizes[i], c.K_t - 1), f"past inputs of encoder layer {i}")
                for i in range(c.D)
            ),
            StateTensor(DECODER_TAIL, (self.delay,), "inverse STFT overlap-add tail"),
        ]

    def mask(self, magnitude: Tensor, caches: tuple[Tensor, ...]) -> tuple[Tensor, list[Tensor]]:
        """(batch, 1, bins, frames) compressed magnitude -> the same-shaped mask, and the encoder's next caches."""
        h, skips, new_caches = magnitude, [], []
        for conv, norm, cache in zip(self.down, self.down_norm, caches):
            h, new_cache = causal(conv, h, cache)
            h = F.leaky_relu(norm(h), 0.2)
            skips.append(h)
            new_caches.append(new_cache)
        for i in reversed(range(self.config.D)):
            h = self.up[i](h if i == self.config.D - 1 else torch.cat([h, skips[i]], dim=1))
            h = torch.relu(self.up_norm[i - 1](h)) if i else torch.sigmoid(h)
        return h, new_caches

    def forward_stream(self, chunk: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        x, enc = frames_in(state[0], chunk)
        spec = F.conv1d(x.unsqueeze(1), self.analysis, stride=self.config.hop)  # (batch, 2 * bins, k)
        bins = self.config.bins
        magnitude = (spec[:, :bins] ** 2 + spec[:, bins:] ** 2 + 1e-10) ** (COMPRESSION / 2)
        mask, caches = self.mask(magnitude.unsqueeze(1), state[1:-1])
        mask = mask.squeeze(1)
        mask = torch.cat([mask, mask], dim=1)  # the same gain on the real and imaginary parts
        frames = F.conv_transpose1d(spec * mask, self.synthesis, stride=self.config.hop).squeeze(1)
        out, dec = overlap_add(frames, state[-1])
        return out, (enc, *caches, dec)
