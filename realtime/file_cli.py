"""`denoise file`: denoise files or folders with the shipped (or a given) model."""

from __future__ import annotations

import argparse

from realtime.cli import EXIT_FAILED, EXIT_OK


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
    p.add_argument("--block-size", type=int, default=160, help="engine block in samples at 16 kHz (default 160)")
    p.add_argument("--sample-rate", type=int, help="output sample rate (default: the input's)")
    p.add_argument("--atten-lim-db", type=float, help="remove at most this many dB of noise")
    p.add_argument("--dry", type=float, default=0.0, help="share of the input mixed into the output (0..1)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from realtime.audio_io import AudioError
    from realtime.files import Settings, denoise_files, plan_jobs

    if args.block_size < 1:
        raise AudioError(f"--block-size must be at least 1, got {args.block_size}")
    if args.sample_rate is not None and not 1000 <= args.sample_rate <= 768000:
        raise AudioError(f"--sample-rate must be between 1000 and 768000 Hz, got {args.sample_rate}")
    settings = Settings(args.model, args.block_size, args.threads, args.dry, args.atten_lim_db)
    jobs = plan_jobs(args.inputs, args.output)
    failures = denoise_files(jobs, settings, args.sample_rate, show_progress=not args.quiet)
    return EXIT_FAILED if failures else EXIT_OK
