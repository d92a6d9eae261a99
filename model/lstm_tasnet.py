"""The LSTM TasNet (Luo & Mesgarani, 2018): time-domain masking with a recurrent separator.

Each frame of L samples is scaled to unit L2 norm, encoded by a gated basis (ReLU(U x) * sigmoid(V x)),
layer-normalised and fed to a uni-directional R-layer LSTM whose output gives a sigmoid mask on the
encoding; the masked encoding is decoded by a linear basis, scaled back by the frame's norm and overlap-added.
The paper's frames do not overlap; here they overlap by half, with Conv-TasNet's framing, so the two differ
only in the separator. The LSTM's hidden and cell states are the streaming state, kept as (batch, R, H).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.config import LSTMTasNetConfig
from model.conv_tasnet import ChannelNorm
from model.streaming import StateTensor, Streaming, frames_in, overlap_add
from realtime.model_file import DECODER_TAIL, ENCODER_STATE


class LSTMTasNet(Streaming):
    """Causal LSTM TasNet for speech enhancement."""

    title = "causal LSTM TasNet"

    def __init__(self, config: LSTMTasNetConfig) -> None:
        super().__init__()
        c = self.config = config
        self.U = nn.Conv1d(1, c.N, c.L, stride=c.hop, bias=False)
        self.V = nn.Conv1d(1, c.N, c.L, stride=c.hop, bias=False)
        self.register_buffer("ones", torch.ones(1, 1, c.L), persistent=False)
        self.norm = ChannelNorm(c.N)
        self.lstm = nn.LSTM(c.N, c.H, c.R, batch_first=True)
        self.mask = nn.Linear(c.H, c.N)
        self.decoder = nn.ConvTranspose1d(c.N, 1, c.L, stride=c.hop, bias=False)

    @property
    def delay(self) -> int:
        return self.config.L - self.config.hop

    def state_spec(self) -> list[StateTensor]:
        c = self.config
        return [
            StateTensor(ENCODER_STATE, (self.delay,), "last L - hop input samples"),
            StateTensor("h", (c.R, c.H), "the LSTM layers' hidden states"),
            StateTensor("c", (c.R, c.H), "the LSTM layers' cell states"),
            StateTensor(DECODER_TAIL, (self.delay,), "decoder overlap-add tail"),
        ]

    def forward_stream(self, chunk: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        enc, h, c, dec = state
        x, enc = frames_in(enc, chunk)
        x = x.unsqueeze(1)
        scale = torch.sqrt(nn.functional.conv1d(x * x, self.ones, stride=self.config.hop) + 1e-8)  # (batch, 1, k)
        w = torch.relu(self.U(x) / scale) * torch.sigmoid(self.V(x) / scale)  # (batch, N, k)
        y, (h, c) = self.lstm(self.norm(w).transpose(1, 2), (h.transpose(0, 1), c.transpose(0, 1)))
        mask = torch.sigmoid(self.mask(y)).transpose(1, 2)
        out, dec = overlap_add(self.decoder(w * mask * scale).squeeze(1), dec)
        return out, (enc, h.transpose(0, 1), c.transpose(0, 1), dec)
