"""Load: `denoise file` on hour-long files and on a folder of 1,000 short files, with peak memory measured by
/usr/bin/time -v (issue 4: a 1-hour 48 kHz stereo file under 300 MB peak RSS; issue 6: a 2-hour file and
1,000 files with constant memory). Writes benchmarks/results/load.md.

Each run is the real command in a fresh interpreter. Constant memory shows as the same peak RSS for a
1-minute file as for the 1- and 2-hour ones (and for 10 files as for 1,000), and as a flat RSS over each run
(sampled every second from /proc). The long runs also check that the end of the streamed output equals the
offline output (`realtime.denoise`) of the file's last 10 seconds: no drift after hours of streaming.

    denoise bench load [--work DIR] [--scale 1.0]   # --scale 0.01: a quick rehearsal
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.report import write_report, write_section
from realtime import denoise
from realtime.audio_io import read_audio
from realtime.model_file import default_model_path

ROOT = Path(__file__).resolve().parent.parent
TIME = "/usr/bin/time"  # GNU time: apt-get install time
EXAMPLE = default_model_path().parent / "example_noisy.flac"
TAIL_SECONDS, CONTEXT_SECONDS = 5, 10  # compare the last 5 s with an offline run on the last 10 s
MODEL_HOP, MODEL_RATE = 32, 16000
QUARTERS = (0.25, 0.5, 0.75, 1.0)


@dataclass
class Load:
    """One `denoise file` run: `count` files of `seconds` each at `rate` Hz with `channels` channels, denoised
    `jobs` at a time."""

    name: str
    seconds: float
    rate: int
    channels: int
    count: int = 1
    jobs: int = 1


@dataclass
class Result:
    load: Load
    command: str
    peak_rss_mb: float
    wall_s: float
    cpu_s: float
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the run, MB)
    checks: list[str] = field(default_factory=list)
    tail_error: float | None = None


def speech_like(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    """The example recording (speech in noise) looped at `rate`, with a new level every second per channel."""
    base, _ = read_audio(EXAMPLE, rate, mono=True)
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    start = int(rng.integers(len(base)))
    x = np.resize(np.roll(base, -start), n)
    gains = rng.uniform(0.3, 1.5, (n // rate + 1, channels)).repeat(rate, axis=0)[:n]
    return (x[:, None] * gains).astype(np.float32)


def write_long(path: Path, load: Load, chunk_seconds: int = 60) -> None:
    """A long file written a minute at a time (never all in memory)."""
    total = int(round(load.seconds * load.rate))
    with sf.SoundFile(str(path), "w", load.rate, load.channels, "PCM_16") as f:
        for i, done in enumerate(range(0, total, chunk_seconds * load.rate)):
            f.write(speech_like(min(chunk_seconds * load.rate, total - done) / load.rate, load.rate, load.channels, i))


def make_inputs(load: Load, folder: Path) -> Path:
    if load.count == 1:
        path = folder / "in.wav"
        write_long(path, load)
        return path
    target = folder / "in"
    target.mkdir()
    for i in range(load.count):
        sub = target / f"{i // 100:02d}"  # 100 files a folder, mirrored in the output
        sub.mkdir(exist_ok=True)
        sf.write(str(sub / f"{i:04d}.wav"), speech_like(load.seconds, load.rate, load.channels, i), load.rate)
    return target


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _rss_mb(pid: int) -> float | None:
    try:
        match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def measure(load: Load, source: Path, out: Path) -> Result:
    """Run `denoise file` under /usr/bin/time -v, sampling the denoiser's RSS every second."""
    argv = [sys.executable, "-m", "realtime.cli", "file", str(source), "-o", str(out), "--quiet"]
    argv += ["--jobs", str(load.jobs)]
    proc = subprocess.Popen([TIME, "-v", *argv], stderr=subprocess.PIPE, text=True, cwd=source.parent)
    start, samples = time.monotonic(), []
    while proc.poll() is None:
        for child in _children(proc.pid):
            if rss := _rss_mb(child):
                samples.append((time.monotonic() - start, rss))
        time.sleep(1.0)
    report = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{report[-3000:]}")

    def field_of(label: str) -> str:
        match = re.search(rf"{re.escape(label)}.*?: (.+)", report)
        if not match:
            raise RuntimeError(f"/usr/bin/time -v printed no '{label}':\n{report[-2000:]}")
        return match.group(1).strip()

    wall = sum(float(p) * 60**i for i, p in enumerate(reversed(field_of("Elapsed (wall clock) time").split(":"))))
    cpu = float(field_of("User time (seconds)")) + float(field_of("System time (seconds)"))
    command = f"/usr/bin/time -v denoise file {source.name} -o {out.name} --quiet --jobs {load.jobs}"
    rss = int(field_of("Maximum resident set size (kbytes)")) / 1024
    return Result(load, command, rss, wall, cpu, samples)


def check_output(result: Result, source: Path, out: Path) -> None:
    """Every output keeps its input's rate, channels and length; a long file's end equals the offline output."""
    pairs = [(source, out)] if source.is_file() else [(p, out / p.relative_to(source)) for p in source.rglob("*.wav")]
    bad = [str(s) for s, o in pairs if not o.is_file() or _shape(sf.info(str(s))) != _shape(sf.info(str(o)))]
    result.checks.append(f"{len(pairs) - len(bad)} of {len(pairs)} outputs have their input's rate, channels, length")
    if source.is_file() and result.load.seconds > CONTEXT_SECONDS:
        result.tail_error = tail_error(source, out)


def _shape(info: sf._SoundFileInfo) -> tuple[int, int, int]:
    return info.samplerate, info.channels, info.frames


def tail_error(source: Path, out: Path) -> float:
    """Max |streamed - offline| over the last seconds, offline = a fresh run on the last 10 s of the input."""
    info = sf.info(str(source))
    step = info.samplerate // math.gcd(info.samplerate, MODEL_RATE) * MODEL_HOP  # whole model hops
    start = (info.frames - CONTEXT_SECONDS * info.samplerate) // step * step
    segment, _ = sf.read(str(source), start=start, dtype="float32", always_2d=True)
    offline = denoise(segment, info.samplerate)
    streamed, _ = sf.read(str(out), start=start, dtype="float32", always_2d=True)
    tail = TAIL_SECONDS * info.samplerate
    return float(np.max(np.abs(streamed[-tail:] - offline[-tail:])))


def fmt_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 60:.3g} min" if seconds >= 60 else f"{seconds:.3g} s"


TITLE = "Load: long files and many files"


def report(results: list[Result], scale: float, load_before: str, only: str | None = None) -> str:
    command = (
        "denoise bench load" + (f" --scale {scale:g}" if scale != 1 else "") + (f" --only '{only}'" if only else "")
    )
    cores = os.cpu_count()
    load_avg = _load_average()
    lines = [
        f"# {TITLE}",
        "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d')}; {platform.machine()}, {cores} cores; load average (1, 5, 15 min) "
        f"{load_before} at the start, {load_avg} at the end (above 0: other work shared the CPU). Each run: "
        "`/usr/bin/time -v python -m realtime.cli file INPUT -o OUTPUT --quiet` (that is, `denoise file`), "
        "defaults (block 160, 1 onnxruntime thread), inputs 16-bit WAV of the example recording looped with "
        "a new level every second.",
        "",
        "| input | audio | peak RSS (MB) | RSS at 25 / 50 / 75 / 100 % of the run (MB) | wall | CPU | x real time "
        "(wall) | x real time (CPU) | outputs | end vs offline (max abs) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        audio = r.load.seconds * r.load.count
        quarter = " / ".join("–" if math.isnan(v) else f"{v:.0f}" for v in (_rss_at(r.rss_mb, q) for q in QUARTERS))
        tail = "–" if r.tail_error is None else f"{r.tail_error:.1e}"
        lines.append(
            f"| {r.load.name} | {fmt_duration(audio)} | **{r.peak_rss_mb:.0f}** | "
            f"{quarter} | {r.wall_s:.0f} s | {r.cpu_s:.0f} s | "
            f"{audio / r.wall_s:.1f} | {audio / r.cpu_s:.1f} | {'; '.join(r.checks)} | {tail} |"
        )
    lines += [
        "",
        "RSS is the denoiser process's (`VmRSS`, sampled every second); peak RSS is /usr/bin/time's maximum "
        "resident set size. x real time (CPU) is audio seconds per CPU second, which other load on the machine "
        "does not change. End vs offline: the last 5 s of the streamed output against a fresh run on the last "
        "10 s of the input; 16-bit output rounds to steps of 3.1e-5, so one step is a perfect match.",
        "",
        "Commands as run (paths relative to each run's folder):",
        "",
    ]
    lines += [f"- {r.load.name}: `{r.command}`" for r in results]
    return "\n".join(lines) + "\n"


def _load_average() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def _rss_at(samples: list[tuple[float, float]], fraction: float) -> float:
    if not samples:
        return math.nan
    end = samples[-1][0]
    return min(samples, key=lambda s: abs(s[0] - fraction * end))[1]


LOADS = [
    Load("48 kHz stereo, 1 minute (baseline)", 60, 48000, 2),
    Load("48 kHz stereo, 1 hour (issue 4)", 3600, 48000, 2),
    Load("16 kHz mono, 2 hours", 7200, 16000, 1),
    Load("10 files of 2 s, 16 kHz mono (baseline)", 2, 16000, 1, 10),
    Load("1,000 files of 2 s, 16 kHz mono", 2, 16000, 1, 1000),
    Load("1,000 files of 2 s, 16 kHz mono, --jobs 2", 2, 16000, 1, 1000, jobs=2),
]


def scaled(load: Load, scale: float) -> Load:
    """A shorter rehearsal: files cut to `scale` of their length (at least 15 s), folders to `scale` of their count."""
    if scale == 1:
        return load
    if load.count > 1:
        return replace(load, count=max(2, round(load.count * scale)))
    return replace(load, seconds=max(15.0, load.seconds * scale))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "load", help="memory and speed of denoise file on long and many files", description=__doc__.splitlines()[0]
    )
    p.add_argument("--work", type=Path, help="folder for the inputs and outputs (default: a temporary one)")
    p.add_argument("--scale", type=float, default=1.0, help="scale every duration and count (rehearsal)")
    p.add_argument("--only", help="run only the loads whose name contains this")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/load.md")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    work = args.work or Path(tempfile.mkdtemp(prefix="rtdenoise-load-"))
    if not Path(TIME).exists():
        raise ValueError(f"{TIME} is missing: apt-get install time")
    results, load_before = [], _load_average()
    try:
        for load in (scaled(load, args.scale) for load in LOADS if args.only is None or args.only in load.name):
            folder = work / re.sub(r"\W+", "-", load.name).strip("-")
            folder.mkdir(parents=True)
            source = make_inputs(load, folder)
            out = folder / ("out.wav" if source.is_file() else "out")
            print(f"{load.name}: running", file=sys.stderr)
            result = measure(load, source, out)
            check_output(result, source, out)
            print(f"{load.name}: peak {result.peak_rss_mb:.0f} MB, {result.wall_s:.0f} s", file=sys.stderr)
            results.append(result)
            shutil.rmtree(folder)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    text = report(results, args.scale, load_before, args.only)
    if args.only:  # a partial run: its own section, the full run's table stays
        write_section(args.out, f"Partial run: the loads named '{args.only}'", text.splitlines()[2:], TITLE)
    else:
        write_report(args.out, text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
