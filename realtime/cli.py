"""The `denoise` command: live, file, devices, bench, train, export, eval, make-dataset.

Subcommands that need torch import it lazily, so the runtime works without it. Every expected
failure ends with one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_THREADS = 4 * (os.cpu_count() or 1)  # threads or processes: more only slows a run down
Number = TypeVar("Number", int, float)

# Packages that only some commands need, and the extra that installs each.
OPTIONAL_MODULES = {
    "torch": "train",
    "onnx": "train",
    "pyroomacoustics": "train",
    "matplotlib": "bench",
    "pesq": "eval",
    "pystoi": "eval",
    "scipy": "eval",
    "speechmos": "dnsmos",
}


# Each module has register(subparsers): its commands' arguments, with handlers that import heavy parts lazily.
COMMAND_MODULES = ("realtime.file_cli", "realtime.live_cli", "training.cli", "benchmarks.cli")


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line, like every other failure (subcommands inherit it)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"denoise: {message} (see {self.prog} --help)\n")


def bounded(
    kind: Callable[[str], Number], low: float, high: float | None = None, *, open_low: bool = False
) -> Callable[[str], Number]:
    """An argparse `type`: a finite `kind` (int or float) from `low` (excluded if `open_low`) to `high`."""
    name = "an integer" if kind is int else "a finite number"
    wanted = f"{name} {'>' if open_low else '>='} {low:g}" if high is None else f"{name} from {low:g} to {high:g}"

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        too_low = value <= low if open_low else value < low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="denoise", description="Real-time speech denoising (causal Conv-TasNet).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
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

    # OSError: missing or unwritable paths, a full disk, I/O errors: the machine's state, not a bug
    known: tuple[type[Exception], ...] = (AudioError, OSError, ValueError)
    for module, name in (("training.checkpoint", "CheckpointError"), ("training.export", "ExportError")):
        loaded = sys.modules.get(module)  # only errors of modules that ran can have been raised
        if loaded is not None:
            known += (getattr(loaded, name),)
    if isinstance(exc, ModuleNotFoundError) and exc.name in OPTIONAL_MODULES:
        print(
            f"denoise: this command needs {exc.name}: pip install 'rtdenoise[{OPTIONAL_MODULES[exc.name]}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if isinstance(exc, known):
        print(f"denoise: {exc}", file=sys.stderr)
        return EXIT_USAGE
    raise exc


if __name__ == "__main__":
    sys.exit(main())
