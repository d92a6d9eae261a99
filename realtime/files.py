"""Denoise whole signals: a numpy array, a file, or folders of files, with bounded memory.

The chain per signal: streaming resample to the model rate -> engine (any block size) -> drop the
engine's latency -> streaming resample to the output rate. Output has the input's length (in time),
every channel is denoised, and files are written atomically, never over an input.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from realtime.audio_io import (
    AudioError,
    atomic_output,
    audio_info,
    is_truncated,
    list_audio,
    output_format,
    remove_stale_temps,
    write_frames,
)
from realtime.engine import Denoiser

READ_SECONDS = 1.0  # file chunk size: memory stays constant whatever the file's length


@dataclass(frozen=True)
class Settings:
    """Options shared by every signal of one run."""

    model_path: str | os.PathLike | None = None
    block_size: int = 160
    threads: int = 1
    dry: float = 0.0
    atten_lim_db: float | None = None


def make_engine(settings: Settings, channels: int = 1) -> Denoiser:
    return Denoiser(
        settings.model_path,
        channels=channels,
        threads=settings.threads,
        dry=settings.dry,
        atten_lim_db=settings.atten_lim_db,
    )


class SignalProcessor:
    """Denoise one signal delivered in chunks of any length; `push` then `finish` return aligned output."""

    def __init__(
        self, rate_in: int, channels: int, rate_out: int, settings: Settings, engine: Denoiser | None = None
    ) -> None:
        if settings.block_size < 1:
            raise ValueError(f"block size must be at least 1 sample, got {settings.block_size}")
        self.engine = engine or make_engine(settings, channels)
        self.engine.reset()
        rate = self.engine.sample_rate
        self.block = settings.block_size
        self.rate_in, self.rate_out, self.channels = rate_in, rate_out, channels
        self._down = (
            soxr.ResampleStream(rate_in, rate, channels, dtype="float32", quality="HQ") if rate_in != rate else None
        )
        self._up = (
            soxr.ResampleStream(rate, rate_out, channels, dtype="float32", quality="HQ") if rate_out != rate else None
        )
        self._skip = self.engine.latency
        self.frames_in = 0
        self._frames_out = 0
        self.nonfinite = 0

    def push(self, chunk: np.ndarray, last: bool = False) -> np.ndarray:
        """(frames, channels) input -> (frames', channels) output; call with last=True once at the end."""
        chunk = np.asarray(chunk, np.float32).reshape(len(chunk), self.channels)
        bad = ~np.isfinite(chunk)
        if bad.any():
            self.nonfinite += int(bad.sum())
            chunk = np.where(bad, np.float32(0.0), chunk)
        self.frames_in += len(chunk)
        x = self._down.resample_chunk(chunk, last=last) if self._down else chunk
        pieces = [self.engine.feed(x[i : i + self.block]) for i in range(0, len(x), self.block)]
        if last:
            pieces.append(self.engine.flush())
        y = np.concatenate(pieces).reshape(-1, self.channels) if pieces else np.zeros((0, self.channels), np.float32)
        if self._skip:
            drop = min(self._skip, len(y))
            y, self._skip = y[drop:], self._skip - drop
        if self._up:  # the resampler's filter rings: a full-scale signal would overshoot it
            y = np.clip(self._up.resample_chunk(y, last=last), -1.0, 1.0)
        if last:  # exactly the input's duration at the output rate
            want = round(self.frames_in * self.rate_out / self.rate_in) - self._frames_out
            y = (
                y[:want]
                if len(y) >= want
                else np.concatenate([y, np.zeros((want - len(y), self.channels), np.float32)])
            )
        self._frames_out += len(y)
        return y


def denoise(
    audio: np.ndarray, sample_rate: int, model_path: str | os.PathLike | None = None, threads: int = 1
) -> np.ndarray:
    """Denoise a whole signal, (frames,) or (frames, channels) at any rate; same shape and rate back."""
    x = np.asarray(audio, np.float32)
    if x.ndim not in (1, 2) or len(x) == 0:
        raise ValueError(f"expected non-empty (frames,) or (frames, channels) audio, got shape {x.shape}")
    channels = 1 if x.ndim == 1 else x.shape[1]
    proc = SignalProcessor(sample_rate, channels, sample_rate, Settings(model_path, block_size=4096, threads=threads))
    y = proc.push(x.reshape(len(x), channels), last=True)
    return y[:, 0] if x.ndim == 1 else y


@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class Plan:
    """What `denoise file` will write, and the inputs it cannot process (as error messages)."""

    jobs: list[Job]
    failed: list[str]


def plan_jobs(inputs: list[str], output: str) -> Plan:
    """Map inputs (files and/or folders) to output paths; folders are mirrored under `output`, which is a
    folder for several inputs, a folder input or a trailing slash. With several inputs, one that is missing
    (or a folder without audio) is a failed input; a plan that writes over an input, or writes one output
    for two inputs, is refused as a whole."""
    if not output:  # (Path("") is the current folder)
        raise AudioError("the output path is empty")
    if "" in inputs:
        raise AudioError("an input path is empty")
    out = Path(output)
    paths = [Path(p) for p in inputs]
    many = len(paths) > 1 or output.endswith(("/", os.sep)) or any(p.is_dir() for p in paths)
    if many and out.exists() and not out.is_dir():
        raise AudioError(f"{out}: must be a folder when the input is several files or a folder")
    jobs, failed = [], []
    for p in paths:
        if p.is_dir() and out.resolve() == p.resolve():
            raise AudioError(f"{out}: the output folder is the input folder; choose another")
        try:
            if not p.exists():
                raise AudioError(f"{p}: no such file or folder")
            if p.is_dir():
                files = list_audio(p)
                if out.resolve().is_relative_to(p.resolve()):  # an earlier run's outputs are not inputs
                    files = [f for f in files if not f.resolve().is_relative_to(out.resolve())]
                if not files:
                    raise AudioError(f"{p}: no audio files found outside the output folder {out}")
                jobs += [Job(f, out / f.relative_to(p)) for f in files]
            else:
                jobs.append(Job(p, out / p.name if many or out.is_dir() else out))
        except AudioError as exc:
            if len(paths) == 1:
                raise
            failed.append(str(exc))
    check_plan(jobs)
    return Plan(jobs, failed)


def check_plan(jobs: list[Job]) -> None:
    """Refuse a plan whose output replaces an input (any job's: hard links and symlinks included), or
    that writes two inputs to one output."""
    inputs = {}
    for job in jobs:
        with contextlib.suppress(OSError):
            st = job.source.stat()
            inputs[st.st_dev, st.st_ino] = job.source
    writers: dict[str, Job] = {}
    for job in jobs:
        key = os.path.realpath(job.target)  # a symlinked output is written through
        if key in writers:
            raise AudioError(
                f"{job.target}: both {writers[key].source} and {job.source} would be written here; "
                "rename one or denoise them into separate folders"
            )
        writers[key] = job
        with contextlib.suppress(OSError):
            st = job.target.stat()
            if (st.st_dev, st.st_ino) in inputs:
                source = inputs[st.st_dev, st.st_ino]
                whose = "" if source == job.source else f" ({source}) with the output for {job.source}"
                raise AudioError(f"{job.target}: refusing to overwrite an input file{whose}")


def denoise_file(
    job: Job,
    settings: Settings,
    sample_rate: int | None,
    engine: Denoiser | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[float, int]:
    """Denoise one file chunk by chunk; returns (seconds of audio, non-finite samples replaced)."""
    info = audio_info(job.source)
    rate_out = sample_rate or info.samplerate
    fmt, subtype = output_format(job.target, info.subtype)
    if job.target.suffix.lower() in (".wav", ".flac", ".aiff") and subtype is None:
        subtype = "FLOAT" if job.target.suffix.lower() == ".wav" else "PCM_24"
    job.target.parent.mkdir(parents=True, exist_ok=True)
    proc = SignalProcessor(info.samplerate, info.channels, rate_out, settings, engine)
    with atomic_output(job.target, protect=(job.source,)) as tmp:
        try:
            with (
                sf.SoundFile(str(job.source)) as src,
                sf.SoundFile(str(tmp), "w", rate_out, info.channels, subtype, format=fmt) as dst,
            ):
                size = max(1, int(READ_SECONDS * info.samplerate))
                while True:
                    chunk = src.read(size, dtype="float32", always_2d=True)
                    last = len(chunk) < size or src.tell() >= info.frames
                    write_frames(dst, proc.push(chunk, last=last), job.target)
                    if progress:
                        progress(len(chunk) / info.samplerate)
                    if last:
                        break
        except AudioError:
            raise
        except Exception as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise AudioError(f"{job.source}: {reason}") from None
    return proc.frames_in / info.samplerate, proc.nonfinite


class Advance:
    """Moves the progress bar through one file, never past the duration its header gave (a decoder may deliver
    a little more), and takes what a failed file did not do off the bar's total, so the ETA stays true."""

    def __init__(self, bar: Any, expected: float) -> None:
        self.bar, self.expected, self.done = bar, expected, 0.0

    def __call__(self, seconds: float) -> None:
        step = max(0.0, min(seconds, self.expected - self.done))
        self.done += step
        self.bar.update(step)

    def give_up(self) -> None:
        if self.bar.total is not None:
            self.bar.total = max(self.bar.n, self.bar.total - (self.expected - self.done))
            self.bar.refresh()


@dataclass
class Outcome:
    """What became of one job: seconds of audio denoised (None: it failed) and its messages for stderr."""

    seconds: float | None
    messages: list[str]


def run_job(
    job: Job,
    settings: Settings,
    sample_rate: int | None,
    engines: dict[int, Denoiser],
    progress: Callable[[float], None] | None = None,
) -> Outcome:
    """One job with an engine per channel count from `engines` (made on first need); never raises for bad input."""
    try:
        info = audio_info(job.source)
        if info.channels not in engines:
            engines[info.channels] = make_engine(settings, info.channels)
        dur, bad = denoise_file(job, settings, sample_rate, engines[info.channels], progress)
    except (AudioError, ValueError, OSError) as exc:
        return Outcome(None, [f"error: {exc}"])
    messages = [f"warning: {job.source}: {bad} NaN/infinite samples replaced by silence"] if bad else []
    if is_truncated(info):
        messages.append(
            f"warning: {job.source}: shorter than its header says (truncated?); denoised the {dur:.2f} s it holds"
        )
    return Outcome(dur, messages)


_worker: dict[str, Any] = {}  # a --jobs worker process's settings, engines, and whether a job is running


def _start_worker(settings: Settings, sample_rate: int | None) -> None:
    import signal

    for s in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or the pool stopping
        signal.signal(s, _stop_worker)
    _worker.update(settings=settings, sample_rate=sample_rate, engines={}, busy=False)


def _stop_worker(signum: int, frame: Any) -> None:
    if _worker["busy"]:
        raise KeyboardInterrupt  # unwinds the job: its output's temporary file is removed
    os._exit(130)


def _run_in_worker(job: Job) -> Outcome:
    _worker["busy"] = True
    try:
        outcome = run_job(job, _worker["settings"], _worker["sample_rate"], _worker["engines"])
        _worker["busy"] = False
    except KeyboardInterrupt:
        os._exit(130)  # cleaned up; quietly, where the pool would print a traceback
    return outcome


def denoise_files(
    jobs: Iterable[Job],
    settings: Settings,
    sample_rate: int | None,
    show_progress: bool | None = None,
    failed: Sequence[str] = (),
    processes: int = 1,
) -> int:
    """Run every job, naming each failure on stderr (and each of `failed`: inputs that could not be planned);
    returns the number of failures. The summary line comes even when the run is interrupted.

    show_progress None: a progress bar only when stderr is a terminal (a log gets the messages alone).
    processes > 1: that many worker processes, each with its own engines; messages still come in job order."""
    from tqdm import tqdm

    jobs = list(jobs)
    for message in failed:
        print(f"error: {message}", file=sys.stderr)
    for stale in remove_stale_temps([job.target for job in jobs]):
        print(f"removed {stale}: left by an interrupted run", file=sys.stderr)
    expected = []
    for job in jobs:
        try:
            info = audio_info(job.source)
            expected.append(info.frames / info.samplerate)
        except AudioError:
            expected.append(0.0)
    processes = max(1, min(processes, len(jobs)))
    engines = {1: make_engine(settings)} if jobs else {}
    if jobs:
        begin = time.perf_counter()
        if engines[1].warm_up(settings.block_size):  # the first run after installing: kept out of the speed
            print(
                f"compiled the engine in {time.perf_counter() - begin:.1f} s (once: later runs load it)",
                file=sys.stderr,
            )
    failures, seconds, done, start = len(failed), 0.0, 0, time.perf_counter()
    try:
        with tqdm(
            total=sum(expected),
            unit="s",
            unit_scale=False,
            desc="denoising",
            disable=not (sys.stderr.isatty() if show_progress is None else show_progress),
            bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]",
        ) as bar:
            for outcome, advance in _outcomes(jobs, expected, settings, sample_rate, processes, engines, bar):
                if outcome.seconds is None:
                    failures += 1
                    advance.give_up()
                else:
                    seconds += outcome.seconds
                    done += 1
                for message in outcome.messages:
                    tqdm.write(message, file=sys.stderr)
    finally:
        elapsed = time.perf_counter() - start
        speed = f", {seconds / elapsed:.1f}x real time" if elapsed > 0 and seconds else ""
        print(
            f"denoised {done} of {len(jobs) + len(failed)} files, {seconds:.1f} s of audio in {elapsed:.1f} s{speed}",
            file=sys.stderr,
        )
    return failures


def _outcomes(
    jobs: list[Job],
    expected: list[float],
    settings: Settings,
    sample_rate: int | None,
    processes: int,
    engines: dict[int, Denoiser],
    bar: Any,
) -> Iterator[tuple[Outcome, Advance]]:
    """Each job's outcome in job order, with the bar's advance for it: here chunk by chunk with `engines`, or
    from worker processes file by file."""
    if processes == 1:
        for job, seconds in zip(jobs, expected):
            advance = Advance(bar, seconds)
            yield run_job(job, settings, sample_rate, engines, advance), advance
        return
    import multiprocessing

    # spawned, not forked: this process may hold threads (tqdm's monitor) that a fork would copy mid-state
    pool = multiprocessing.get_context("spawn").Pool(processes, _start_worker, (settings, sample_rate))
    try:
        for outcome, seconds in zip(pool.imap(_run_in_worker, jobs), expected):
            advance = Advance(bar, seconds)
            if outcome.seconds is not None:
                advance(seconds)
            yield outcome, advance
        pool.close()
    except BaseException:
        pool.terminate()  # SIGTERM: each worker removes the temporary file of the output it was writing
        raise
    finally:
        pool.join()
