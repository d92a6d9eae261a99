"""`denoise file`: denoise files or folders with the shipped (or a given) model."""

from __future__ import annotations

import argparse
import os

from realtime.errors import EXIT_FAILED, EXIT_OK
from realtime.options import MAX_THREADS, bounded


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "file",
        help="denoise audio files or folders",
        description="Denoise files (any format soundfile reads, any rate, any channel count) or "
        "folders (recursive, structure mirrored). Outputs are written atomically and "
        "never over an input. Exit 0: all done; 1: some inputs failed; 2: usage error.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files and/or folders")
    p.add_argument("-o", "--output", required=True, help="output file, or folder for several inputs / a folder")
    p.add_argument("--model", help="ONNX model file, or a shipped model's name: default (the default) or fast")
    p.add_argument(
        "--block-size", type=bounded(int, 1), default=160, help="engine block in samples at 16 kHz (default 160)"
    )
    p.add_argument("--sample-rate", type=bounded(int, 1000, 768000), help="output sample rate (default: the input's)")
    p.add_argument("--atten-lim-db", type=bounded(float, 0), help="remove at most this many dB of noise")
    p.add_argument(
        "--dry", type=bounded(float, 0, 1), default=0.0, help="share of the input mixed into the output (0..1)"
    )
    p.add_argument("--threads", type=bounded(int, 1, MAX_THREADS), default=1, help="onnxruntime threads (default 1)")
    p.add_argument(
        "--jobs",
        type=bounded(int, 1, MAX_THREADS),
        default=os.cpu_count() or 1,
        help="files denoised at once, each in its own process (default: the cores)",
    )
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--quiet", action="store_true", help="no progress bar")
    shown.add_argument("--progress", action="store_true", help="a progress bar even when stderr is not a terminal")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from realtime.files import Settings, denoise_files, plan_jobs
    from realtime.model_file import load_model_info
    from realtime.signals import interrupt_once

    load_model_info(args.model)  # a missing or broken model is one error before any file, not one per file
    settings = Settings(args.model, args.block_size, args.threads, args.dry, args.atten_lim_db)
    plan = plan_jobs(args.inputs, args.output)
    with interrupt_once():  # SIGTERM as Ctrl-C: temporary files removed, the summary printed, once
        show = False if args.quiet else True if args.progress else None  # None: only on a terminal
        failures = denoise_files(plan.jobs, settings, args.sample_rate, show, plan.failed, args.jobs)
    return EXIT_FAILED if failures else EXIT_OK
