"""The causal Conv-TasNet network: `model.config.TasNetConfig` (no torch) and `model.conv_tasnet.ConvTasNet`."""
