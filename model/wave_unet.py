"""Wave-U-Net (Stoller et al., 2018), made causal, on the waveform itself.

L levels down: a causal conv (kernel f_d) then decimation by 2; a causal conv at the bottom; L levels up:
repetition by 2, concatenation with the level's features from the way down, a causal conv (kernel f_u);
a 1x1 conv on the last features and the input gives the speech. Decimation keeps the earlier sample of each
pair and upsampling repeats it, so an output sample depends on no later input: no algorithmic delay, and no
decoder tail. Streaming needs every chunk to be a multiple of 2**L samples (the hop), so each level's
decimation stays in phase.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import WaveUNetConfig
from model.streaming import StateTensor, Streaming, causal


class WaveUNet(Streaming):
    """Causal Wave-U-Net predicting the clean waveform."""

    title = "causal Wave-U-Net"

    def __init__(self, config: WaveUNetConfig) -> None:
        super().__init__()
        c = self.config = config
        width = [c.F_c * (i + 1) for i in range(c.L + 1)]  # features at each level; width[L] at the bottom
        self.down = nn.ModuleList(nn.Conv1d(width[i - 1] if i else 1, width[i], c.f_d) for i in range(c.L))
        self.bottom = nn.Conv1d(width[c.L - 1], width[c.L], c.f_d)
        self.up = nn.ModuleList(nn.Conv1d(width[i + 1] + width[i], width[i], c.f_u) for i in range(c.L))
        self.out = nn.Conv1d(width[0] + 1, 1, 1)

    @property
    def delay(self) -> int:
        return 0

    @property
    def window(self) -> int:
        return self.config.hop  # the samples each run must be a multiple of

    def state_spec(self) -> list[StateTensor]:
        convs = [(f"down{i}", conv) for i, conv in enumerate(self.down)] + [("bottom", self.bottom)]
        convs += [(f"up{i}", conv) for i, conv in enumerate(self.up)]
        return [
            StateTensor(name, (conv.in_channels, conv.kernel_size[0] - 1), f"past inputs of conv {name}")
            for name, conv in convs
        ]

    def forward_stream(self, chunk: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        L = self.config.L
        x = chunk.unsqueeze(1)
        h, skips, new_state = x, [], []
        for conv, cache in zip(self.down, state[:L]):
            h, new_cache = causal(conv, h, cache)
            h = F.leaky_relu(h, 0.2)
            skips.append(h)
            new_state.append(new_cache)
            h = h[:, :, ::2]
        h, new_cache = causal(self.bottom, h, state[L])
        h = F.leaky_relu(h, 0.2)
        new_state.append(new_cache)
        ups = []
        for i in reversed(range(L)):
            h = torch.stack([h, h], dim=-1).flatten(2)  # each sample twice: nothing from a later one
            h, new_cache = causal(self.up[i], torch.cat([h, skips[i]], dim=1), state[L + 1 + i])
            h = F.leaky_relu(h, 0.2)
            ups.insert(0, new_cache)
        out = self.out(torch.cat([h, x], dim=1)).squeeze(1)
        return out, (*new_state, *ups)
