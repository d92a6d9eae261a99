"""Training throughput of model shapes on this CPU: steps/hour and x real time.

Run: denoise bench training-speed [--steps 20] [--out benchmarks/results/training-speed.md]
Uses random audio (the data pipeline's cost is measured separately as `data ms/step`).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from benchmarks.report import write_section
from model.config import FamilyConfig, TasNetConfig

SHAPES = {
    "default L=64": TasNetConfig(),
    "L=32 (2 ms)": TasNetConfig(L=32),
    "L=128 (8 ms)": TasNetConfig(L=128),
    "narrow N=64 H=96": TasNetConfig(N=64, H=96),
    "wide N=256 B=128 H=256": TasNetConfig(N=256, B=128, H=256),
    "deep X=8 R=3": TasNetConfig(R=3),
    "cumLN (offline)": TasNetConfig(norm="cumLN"),
}


def steps_per_second(
    config: FamilyConfig,
    batch: int,
    seconds: float,
    steps: int,
    compiled: bool = False,
    bf16: bool = False,
    stft_weight: float = 1.0,
) -> float:
    """Optimiser steps per second, timed over `steps` steps after 3 warm-up steps."""
    import torch

    from model.families import build
    from training.losses import enhancement_loss

    torch.manual_seed(0)
    model = build(config)
    net = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    n = int(seconds * config.sample_rate)
    noisy, clean = torch.randn(batch, n) * 0.1, torch.randn(batch, n) * 0.1

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(noisy)
        loss, _ = enhancement_loss(out.float(), clean, stft_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "training-speed", help="training throughput of model shapes (needs torch)", description=__doc__.splitlines()[0]
    )
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/training-speed.md"))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from model.conv_tasnet import ConvTasNet

    torch.set_flush_denormal(True)
    rows = []
    variants = [(name, cfg, {}) for name, cfg in SHAPES.items()]
    variants += [
        ("default, SI-SDR loss only", TasNetConfig(), {"stft_weight": 0.0}),
        ("default, bf16 autocast", TasNetConfig(), {"bf16": True}),
        ("default, torch.compile", TasNetConfig(), {"compiled": True}),
    ]
    for name, cfg, opts in variants:
        rate = steps_per_second(cfg, args.batch, args.seconds, args.steps, **opts)
        params = ConvTasNet(cfg).num_parameters()
        rows.append((name, cfg, params, rate))
        x_rt = rate * args.batch * args.seconds
        print(f"{name:28s} {params / 1e6:5.2f} M  {rate * 3600:7.0f} steps/h  {x_rt:5.1f} xRT", flush=True)
    lines = [
        f"Command: `denoise bench training-speed --steps {args.steps} --batch {args.batch} --seconds {args.seconds}`  ",
        f"Date: {time.strftime('%Y-%m-%d')}; CPU: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads; torch {torch.__version__}; denormals flushed; "
        f"batches of {args.batch} x {args.seconds} s, AdamW, loss -SI-SDR + MR-STFT unless stated.",
        "",
        "| shape | params (M) | latency L (ms) | steps/hour | x real time |",
        "|---|---|---|---|---|",
    ]
    for name, cfg, params, rate in rows:
        lines.append(
            f"| {name} | {params / 1e6:.2f} | {1000 * cfg.L / cfg.sample_rate:g} | {rate * 3600:,.0f} | "
            f"{rate * args.batch * args.seconds:.1f} |"
        )
    write_section(args.out, "Throughput", lines)
    print(f"wrote {args.out}")
    return 0
