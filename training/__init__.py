"""Training the causal Conv-TasNet: data, losses, the loop, checkpoints, ONNX export (these need torch), and
the quality metrics that validation, evaluation and the benchmarks share (torch-free)."""
