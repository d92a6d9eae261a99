"""Average the weights of several checkpoints of one run (checkpoint averaging, as in Vaswani et al. 2017
and asteroid's `average_model`): the mean of nearby points on the loss surface often scores better than
any one of them. Each input and the average are scored on the run's validation set, so the choice
between them is made on validation data, never on a test set.

Run: denoise average RUN/best.pt OTHER.pt -o RUN/averaged.pt
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from model.config import config_from_dict
from model.families import build
from training.checkpoint import CheckpointError, load_file, save_atomic
from training.config import TrainConfig
from training.data import TrainingData
from training.loop import validate


def average(payloads: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """A checkpoint whose weights are the mean of the inputs' (same model config required).

    It keeps the configs, the latest step and the largest CPU/GPU time of its inputs (they are one run),
    and records which checkpoints it averages; it has no optimiser state, so it cannot be resumed."""
    configs = {repr(config_from_dict(p["model_config"])) for p in payloads}  # with or without its arch key
    if len(configs) > 1:
        raise CheckpointError(f"{', '.join(names)}: different model configurations cannot be averaged")
    keys = payloads[0]["model"].keys()
    weights = {k: torch.stack([p["model"][k].float() for p in payloads]).mean(0) for k in keys}
    latest = max(payloads, key=lambda p: p["step"])
    return {
        "model": weights,
        "model_config": latest["model_config"],
        "train_config": latest["train_config"],
        "step": latest["step"],
        "cpu_seconds": max(p.get("cpu_seconds", 0.0) for p in payloads),
        "gpu_seconds": max(p.get("gpu_seconds", 0.0) for p in payloads),
        "averaged_from": [{"checkpoint": n, "step": p["step"]} for n, p in zip(names, payloads)],
        **({"data": latest["data"]} if "data" in latest else {}),
    }


def run(args: argparse.Namespace) -> int:
    """`denoise average`: write the mean of `args.checkpoints` to `args.output`, scoring each on validation."""
    torch.set_num_threads(args.threads)
    payloads = [load_file(p) for p in args.checkpoints]
    averaged = average(payloads, [p.name for p in args.checkpoints])
    config = TrainConfig.from_dict(averaged["train_config"])
    model_config = config_from_dict(averaged["model_config"])
    data = TrainingData(config, model_config.sample_rate)

    def scored(name: str, payload: dict[str, Any]) -> dict[str, float]:
        model = build(model_config)
        model.load_state_dict(payload["model"])
        s = validate(model, data)
        print(f"  {name} (step {payload['step']}): {s['pesq_wb']:.3f} / {s['stoi']:.4f} / {s['si_sdr']:.2f}")
        return s

    print("validation (held-out speakers and noises): PESQ-WB / STOI / SI-SDR")
    for path, payload in zip(args.checkpoints, payloads):
        scored(str(path), payload)
    averaged["validation"] = scored("average", averaged)
    save_atomic(averaged, args.output)
    print(f"wrote {args.output}")
    return 0
