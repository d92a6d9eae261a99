"""Measurement: quality metrics, evaluation, quality and speed benchmarks against peers."""
