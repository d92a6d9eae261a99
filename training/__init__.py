"""Training the causal Conv-TasNet: data, losses, the loop, checkpoints and ONNX export (needs torch)."""
