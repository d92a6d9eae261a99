"""Publish a training run as the shipped default model: export its best checkpoint to ONNX, keep a slim
torch checkpoint for fine-tuning, score the ONNX model through the streaming engine on a paired test
set, and record the scores in the sidecar and in a markdown report.

Run: denoise publish [--run training/runs/default] [--test-root ../shared/data/audio]. It sits above training and
benchmarks (it exports and scores); torch is imported only when it runs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.report import write_report
from realtime.model_file import DEFAULT_NAME, shipped_model_path, sidecar_path, write_json_atomic
from training.checkpoint import BEST

if TYPE_CHECKING:
    from benchmarks.evaluate import Report


def score_model(model: Path, test_root: Path, split: str, block_size: int) -> Report:
    """Run `model` through the file engine on the split's noisy files and score against the clean ones."""
    from benchmarks.evaluate import RATE, evaluate, read_snr_csv
    from realtime.files import Job, Settings, denoise_files
    from training.paired import layout_pairs

    pairs = layout_pairs(test_root, split)
    with tempfile.TemporaryDirectory(prefix="rtdenoise-publish-") as scratch:
        out = Path(scratch)
        jobs = [Job(p.noisy, out / p.name) for p in pairs]
        if denoise_files(jobs, Settings(model_path=model, block_size=block_size), None):
            raise RuntimeError("some test files failed to denoise")
        report = evaluate([(p.name, p.clean, out / p.name) for p in pairs], max_delay=int(0.1 * RATE))
    csv = test_root / f"{split}.csv"
    if csv.exists():
        report.snr = read_snr_csv(csv)
    return report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish",
        help="ship a training run as a named model, scored on the test set (needs the [train] extra)",
        description=__doc__.splitlines()[0] + " " + " ".join(__doc__.splitlines()[1:3]),
    )
    p.add_argument(
        "--run",
        dest="run_dir",  # (`run` is the handler)
        type=Path,
        default=Path("training/runs/default"),
        help="training run folder (default training/runs/default)",
    )
    p.add_argument("--checkpoint", default=BEST, help="checkpoint file name in --run (default best.pt)")
    p.add_argument("--test-root", type=Path, default=Path("../shared/data/audio"))
    p.add_argument("--split", default="test")
    p.add_argument("--block-size", type=int, default=160, help="engine block used for scoring")
    p.add_argument("--name", default=DEFAULT_NAME, help="shipped model name (default: default)")
    p.add_argument("--report", type=Path, help="markdown report (default benchmarks/results/NAME-model.md)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from training.checkpoint import load_file, save_atomic
    from training.export import export

    checkpoint = args.run_dir / args.checkpoint
    target = shipped_model_path(args.name)
    report_path = args.report or Path(f"benchmarks/results/{args.name}-model.md")
    command = "denoise publish " + shlex.join(sys.argv[2:])
    # exported and scored in a staging folder beside the shipped models: they are replaced only once it all worked
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".publish-") as staging:
        staged = Path(staging) / target.name
        document = export(checkpoint, staged)
        payload = load_file(checkpoint)
        kept = ("model", "model_config", "train_config", "data", "step", "cpu_seconds", "gpu_seconds", "averaged_from")
        save_atomic({k: payload[k] for k in kept if k in payload}, staged.with_suffix(".pt"))
        report = score_model(staged, args.test_root, args.split, args.block_size)
        document["scores"] = {
            "test_set": str(args.test_root / "*" / args.split),
            "path": f"streaming ONNX engine, block {args.block_size} samples",
            "command": command,
            "overall": report.mean(),
            "per_snr": report.to_dict()["per_snr"],
        }
        write_json_atomic(sidecar_path(staged), document)
        for made in sorted(Path(staging).iterdir()):
            os.replace(made, target.parent / made.name)
    training = document["training"]
    lines = [
        f"# Shipped model `{args.name}`",
        "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; checkpoint `{checkpoint}` at step "
        f"{training['steps']} ({training['cpu_hours']} CPU hours, {training['gpu_hours']} GPU hours); scored through "
        f"the streaming ONNX engine (block {args.block_size}) on `{args.test_root}/*/{args.split}` "
        f"({len(report.files)} pairs).",
        "",
        report.table(),
        "",
        "Reference (shared/data/README.md): noisy 1.58 / 0.844 / 10.0; RNNoise 1.70 / 0.880 / 10.4; "
        "DTLN 2.08 / 0.888 / 15.1; GTCRN 2.10 / 0.885 / 14.2 (PESQ-WB / STOI / SI-SDR).",
    ]
    failures = report.failures()
    if failures:
        lines += ["", "Not scored:", *[f"- {f}" for f in failures]]
    write_report(report_path, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
