"""The causal Conv-TasNet network (torch)."""

from model.config import TasNetConfig
from model.conv_tasnet import ConvTasNet, StreamState

__all__ = ["ConvTasNet", "StreamState", "TasNetConfig"]
