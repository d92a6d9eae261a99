"""Measurement: evaluation, quality and speed benchmarks against peers, and publishing a model with its scores
(above training: it imports training, never the other way round)."""
