"""The `denoise` command: live, file, devices, bench, train, export, eval, make-dataset.

Subcommands that need torch import it lazily, so the runtime works without it. Every expected
failure ends with one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from realtime.errors import EXIT_USAGE, AudioError

# Packages that only some commands need, and the extra that installs each.
OPTIONAL_MODULES = {
    "torch": "train",
    "onnx": "train",
    "pyroomacoustics": "train",
    "matplotlib": "bench",
    "pesq": "eval",
    "pystoi": "eval",
    "speechmos": "dnsmos",
}


# Each module has register(subparsers): its commands' arguments, with handlers that import heavy parts lazily.
COMMAND_MODULES = ("realtime.file_cli", "realtime.live_cli", "training.cli", "benchmarks.cli")


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line, like every other failure (subcommands inherit it)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"denoise: {message} (see {self.prog} --help)\n")


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
        print(f"denoise: {os_error_text(exc) if isinstance(exc, OSError) else exc}", file=sys.stderr)
        return EXIT_USAGE
    raise exc


def os_error_text(exc: OSError) -> str:
    """'PATH: reason' for a system error, not Python's '[Errno N] reason: 'PATH''."""
    if not exc.strerror:
        return str(exc)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return ": ".join([" -> ".join(paths), exc.strerror] if paths else [exc.strerror])


if __name__ == "__main__":
    sys.exit(main())
