"""Every model family's network, by the `arch` name its config records: what training, export and the
benchmarks build a model through."""

from __future__ import annotations

from typing import Any

from model.config import FamilyConfig, LSTMTasNetConfig, TasNetConfig, UNetConfig, WaveUNetConfig, config_from_dict
from model.conv_tasnet import ConvTasNet
from model.lstm_tasnet import LSTMTasNet
from model.stft_unet import STFTUNet
from model.streaming import Streaming
from model.wave_unet import WaveUNet

NETWORKS: dict[str, type[Streaming]] = {
    TasNetConfig.arch: ConvTasNet,
    UNetConfig.arch: STFTUNet,
    WaveUNetConfig.arch: WaveUNet,
    LSTMTasNetConfig.arch: LSTMTasNet,
}


def build(config: FamilyConfig | dict[str, Any]) -> Streaming:
    """The untrained network of `config` (a config, or a checkpoint's or sidecar's `model_config`)."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    return NETWORKS[config.arch](config)
