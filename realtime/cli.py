"""The `denoise` command: live, file, devices, bench, train, export, eval, make-dataset.

Subcommands that need torch import it lazily, so the runtime works without it. Every expected
failure ends with one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or inputs: exit code 2 with the message."""


def _add_train(sub: argparse._SubParsersAction) -> None:
    from model.config import TasNetConfig  # dataclass only, no torch

    p = sub.add_parser("train", help="train a model (needs the [train] extra: torch)",
                       description="Train the causal Conv-TasNet; resumable, with checkpoints every few minutes.")
    p.add_argument("--speech", nargs="+", default=[], metavar="DIR", help="clean speech folders (mixed on the fly)")
    p.add_argument("--noise", nargs="+", default=[], metavar="DIR", help="noise folders (mixed on the fly)")
    p.add_argument("--paired", nargs="+", default=[], metavar="ROOT",
                   help="roots in the brief's layout (voice_origin/<split>, denoising/<split>)")
    p.add_argument("--split", default="train", help="split of --paired roots (default: train)")
    p.add_argument("--out", required=True, help="run folder: checkpoints last/prev/best.pt and train_log.csv")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (configs come from it)")
    p.add_argument("--steps", type=int, help="stop at this total step count")
    p.add_argument("--minutes", type=float, help="stop after this many minutes of wall time")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    defaults = TasNetConfig()
    for symbol in ("N", "L", "B", "H", "P", "X", "R"):
        p.add_argument(f"--{symbol}", type=int, default=getattr(defaults, symbol), help=f"model {symbol}")
    p.add_argument("--norm", choices=["cLN", "cumLN"], default=defaults.norm)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0, help="training crop length")
    p.add_argument("--snr", type=float, nargs=2, default=(0.0, 20.0), metavar=("LOW", "HIGH"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--stft-weight", type=float, default=1.0, help="weight of the multi-resolution STFT loss")
    p.add_argument("--val-every", type=int, default=500, help="validate every N steps")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (about 1.4x faster on CPU)")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from model.config import TasNetConfig
    from training.config import TrainConfig
    from training.loop import train

    model_config = TasNetConfig(N=args.N, L=args.L, B=args.B, H=args.H, P=args.P, X=args.X, R=args.R, norm=args.norm)
    config = TrainConfig(
        speech=args.speech, noise=args.noise, paired=args.paired, paired_split=args.split,
        batch_size=args.batch_size, seconds=args.seconds, snr_db=tuple(args.snr), lr=args.lr,
        stft_weight=args.stft_weight, val_every=args.val_every, checkpoint_minutes=args.checkpoint_minutes,
        seed=args.seed, compile=args.compile,
    )
    train(Path(args.out), model_config, config, resume=args.resume, max_steps=args.steps,
          max_minutes=args.minutes, threads=args.threads)
    return EXIT_OK


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="denoise", description="Real-time speech denoising (causal Conv-TasNet).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("denoise: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return _report(exc)


def _report(exc: Exception) -> int:
    """One line for errors users can cause; a traceback only for genuine bugs."""
    from realtime.audio_io import AudioError

    known: tuple[type[Exception], ...] = (AudioError, UsageError, FileNotFoundError, PermissionError,
                                           IsADirectoryError, NotADirectoryError, ValueError)
    try:
        from training.checkpoint import CheckpointError

        known += (CheckpointError,)
    except ImportError:
        pass
    if isinstance(exc, ModuleNotFoundError) and exc.name in ("torch", "onnx", "matplotlib"):
        print(f"denoise: this command needs {exc.name}: pip install 'rtdenoise[train]'", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, known):
        print(f"denoise: {exc}", file=sys.stderr)
        return EXIT_USAGE
    raise exc


if __name__ == "__main__":
    sys.exit(main())
