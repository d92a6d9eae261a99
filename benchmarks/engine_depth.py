"""Engine time per 160-sample block against the depth of the network (X·R blocks), RNNoise timed in the
same run: the measurement behind the model-shape choice for the speed target of issue 4.

At 10 ms blocks the model's arithmetic is small; what dominates is onnxruntime's cost per graph node,
and the node count grows with the number of TCN blocks. Weights are random: speed does not depend on them.

Run: denoise bench engine-depth [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.peers import Options, select
from benchmarks.peers.base import RATE
from benchmarks.peers.ours import OursStreaming
from benchmarks.quality import RESULTS
from benchmarks.report import header, header_markdown, write_report
from benchmarks.speed import HEADLINE_BLOCK, INPUT, time_stream
from realtime.audio_io import read_audio
from realtime.model_file import load_model_info

SHAPES = ((8, 2), (8, 1), (4, 2), (6, 1), (4, 1))  # (X, R); (8, 2) is the shipped shape
ROUNDS = 3  # alternate ours and RNNoise so that a change in machine load hits both


def optimized_nodes(path: Path) -> int:
    """Nodes left after onnxruntime's graph optimisations (what each run actually executes)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as scratch:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(scratch) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return len(onnx.load(options.optimized_model_filepath).graph.node)


def receptive_field(config: dict) -> int:
    """Input samples that reach one output frame: the window plus (P-1)·d frames per TCN block."""
    frames = 1 + config["R"] * (config["P"] - 1) * (2 ** config["X"] - 1)
    return (frames - 1) * config["L"] // 2 + config["L"]


def export_random(x: int, r: int, folder: Path) -> tuple[Path, dict]:
    """The shipped model's shape with X and R changed, random weights, exported like a trained model;
    returns the ONNX file and its sidecar document."""
    import torch

    from model.config import TasNetConfig
    from model.conv_tasnet import ConvTasNet
    from training.checkpoint import save_atomic
    from training.export import export

    config = replace(TasNetConfig.from_dict(load_model_info(None).document["model_config"]), X=x, R=r)
    torch.manual_seed(0)
    model = ConvTasNet(config)
    checkpoint = folder / f"x{x}r{r}.pt"
    save_atomic({"model": model.state_dict(), "model_config": config.to_dict(), "step": 0}, checkpoint)
    return checkpoint.with_suffix(".onnx"), export(checkpoint, checkpoint.with_suffix(".onnx"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine-depth", help="engine speed against network depth", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--seconds", type=float, default=10.0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    os.environ["OMP_NUM_THREADS"] = "1"
    head = header("1 (onnxruntime intra-op 1)", None)
    head["command"] = shlex.join(["denoise", "bench", "engine-depth", *sys.argv[3:]])
    source, _ = read_audio(INPUT, RATE, mono=True)
    audio = np.resize(source, int(args.seconds * RATE))
    (rnnoise,) = select(["rnnoise"], Options())
    rnnoise.load()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rtdenoise-depth-") as scratch:
        for x, r in SHAPES:
            path, document = export_random(x, r, Path(scratch))
            ours = OursStreaming(Options(model=path))
            ours.load()
            ours_rtf, base_rtf, ours_ms = [], [], []
            for _ in range(ROUNDS):
                timed = time_stream(ours, audio, HEADLINE_BLOCK)
                ours_rtf.append(timed["rtf"])
                ours_ms.append(timed["p50_ms"])
                base_rtf.append(time_stream(rnnoise, audio, HEADLINE_BLOCK)["rtf"])
            row = {
                "X": x,
                "R": r,
                "nodes": optimized_nodes(path),
                "parameters": document["parameters"],
                "receptive_field_ms": 1000 * receptive_field(document["model_config"]) / RATE,
                "p50_ms": float(np.median(ours_ms)),
                "rtf": float(np.median(ours_rtf)),
                "rnnoise_rtf": float(np.median(base_rtf)),
            }
            rows.append(row)
            print(f"X={x} R={r}: {row['nodes']} nodes, RTF {row['rtf']:.4f} vs RNNoise {row['rnnoise_rtf']:.4f}")
    lines = header_markdown("Engine speed against network depth", head)[:-2] + [
        "",
        f"Input: `{INPUT.name}` looped to {args.seconds:g} s, {HEADLINE_BLOCK}-sample blocks, one thread; each "
        f"shape and RNNoise (pyrnnoise, resampling included) timed alternately, {ROUNDS} rounds, medians. "
        "Random weights, the shipped model's N, L, B, H, P.",
        "",
        "| X | R | TCN blocks | graph nodes (after ORT optimisation) | parameters | receptive field (ms) "
        "| p50 per block (ms) | RTF | RNNoise RTF (same rounds) | ours / RNNoise |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['X']} | {row['R']} | {row['X'] * row['R']} | {row['nodes']} | {row['parameters']:,} "
            f"| {row['receptive_field_ms']:.0f} | {row['p50_ms']:.3f} | {row['rtf']:.4f} | {row['rnnoise_rtf']:.4f} "
            f"| {row['rtf'] / row['rnnoise_rtf']:.2f} |"
        )
    write_report(args.out / "engine-depth.md", "\n".join(lines) + "\n")
    print(f"wrote {args.out / 'engine-depth.md'}")
    return 0
