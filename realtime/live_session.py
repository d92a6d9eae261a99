"""One `denoise live` run: open the duplex stream, run it until told to stop, report what happened.

The main thread only watches: it refreshes the status line, reads the keyboard, enforces `--duration`
and notices a stream that died (device unplugged, audio server gone). Ctrl-C and SIGTERM stop cleanly:
the recordings are closed and the summary is written either way.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from realtime.devices import Device, abandon_portaudio, portaudio, resolve_device
from realtime.engine import Denoiser
from realtime.errors import AudioError
from realtime.gate import VoiceGate
from realtime.keys import Keys
from realtime.live import Bridge, Chain, realtime_thread
from realtime.live_record import Recorder
from realtime.live_report import Meter, format_summary, summary
from realtime.model_file import check_report_path, load_model_info, write_json_atomic
from realtime.pulse_stream import PulseStream
from realtime.signals import interrupt_once, signals_ignored
from realtime.virtual_mic import VirtualMic, default_source

REFRESH_S = 0.1  # status line period
GIL_SWITCH_S = 2e-4  # the audio callback waits at most about this long for the worker to yield the GIL
WARMUP_HOPS = 16  # onnxruntime's first runs are slow: run them before the stream starts
CALLBACK_SHARE = 0.25  # --engine-in auto: the callback's runs, timed warm, may take this share of its period
DEFAULT_BLOCK = 128  # frames per callback outside JACK: 2.7 ms at 48 kHz
VIRTUAL_MIC_RATE = 48000  # the virtual mic's rate unless --sample-rate: what call programs run at
VIRTUAL_MIC_BLOCK_S = 0.01  # ALSA's pulse device serves periods of about 10 ms: smaller blocks only add xruns
STALL_S = 2.0  # an active stream without a callback for this long is dead (a server that dropped us)
STOP_TIMEOUT_S = 3.0  # PortAudio's JACK backend can wait forever to stop a stream its server dropped


@dataclass(frozen=True)
class LiveOptions:
    input: str | None = None
    output: str | None = None
    channel: int | None = None  # 0-based input channel; None: downmix all
    sample_rate: int | None = None  # None: the input device's default rate
    block_size: int | None = None  # None: the JACK period under JACK, else DEFAULT_BLOCK
    headroom: int = 1  # extra blocks of output buffering: each gives the worker one more period
    hops_per_run: int = 1
    engine_in: str = "auto"  # where the model runs: "worker" thread, audio "callback", or "auto" (`fits_in_callback`)
    priority: int = 1
    model: str | None = None
    dry: float = 0.0
    atten_lim_db: float | None = None
    gate_db: float | None = None  # voice gate threshold on the denoised level, dBFS; None: no gate
    gate_hold_ms: float = 300.0
    record: str | None = None
    duration: float | None = None
    status: bool = False
    json: str | None = None
    virtual_mic: str | None = None  # feed a virtual mic of this name on the sound server (output: its monitor)


def make_engine(opts: LiveOptions) -> tuple[Denoiser, float]:
    """A mono engine taking whole hops, warmed up, and the seconds a warm hop took (the median of the warm-up's
    second half)."""
    hop = load_model_info(opts.model).hop
    engine = Denoiser(opts.model, block_size=hop, dry=opts.dry, atten_lim_db=opts.atten_lim_db)
    times = []
    for _ in range(WARMUP_HOPS):
        begin = time.perf_counter()
        engine.feed(np.zeros(hop, np.float32))
        times.append(time.perf_counter() - begin)
    engine.reset()
    return engine, float(np.median(times[WARMUP_HOPS // 2 :]))


def fits_in_callback(chain: Chain, block: int, hop_s: float, share: float = CALLBACK_SHARE) -> bool:
    """Whether the engine provably fits into the audio callback: the most model runs a callback of `block`
    frames can complete (each input sample completes at most one run's worth), at `hop_s` per hop, within
    `share` of the callback's period. The timing is warm, from before the stream: `share` leaves room for
    cold caches and scheduling jitter."""
    model_samples = block * chain.engine.sample_rate / chain.rate
    runs = math.ceil(model_samples / chain.run)
    return runs * (chain.run // chain.engine.hop) * hop_s <= share * block / chain.rate


def block_sizes(opts: LiveOptions, source: Device, rate: int) -> tuple[int, int]:
    """(frames per callback, PortAudio's blocksize). Under JACK PortAudio is left to pass the server's
    periods through (blocksize 0): a fixed blocksize makes it buffer one more block of its own."""
    if source.jack:
        return opts.block_size or source.jack_period(rate), 0
    block = opts.block_size or (round(rate * VIRTUAL_MIC_BLOCK_S) if opts.virtual_mic else DEFAULT_BLOCK)
    return block, block


@contextlib.contextmanager
def c_stderr_silenced() -> Iterator[None]:
    """Discard what C libraries write on the process's stderr meanwhile: PortAudio's ALSA host API prints every
    failed check of a stream it cannot open, which would bury live's one-line error."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_stream(bridge: Bridge, source: Device, sink: Device, in_channels: int, blocksize: int) -> Any:
    sd = portaudio()
    try:
        with c_stderr_silenced():
            return sd.Stream(
                samplerate=bridge.chain.rate,
                blocksize=blocksize,
                device=(source.index, sink.index),
                channels=(in_channels, sink.outputs),
                dtype="float32",
                latency="low",
                callback=bridge.callback,
            )
    except (sd.PortAudioError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(
            f"cannot open {source.label} -> {sink.label} at {bridge.chain.rate} Hz, "
            f"{bridge.block}-frame blocks: {reason}"
        ) from None


def start_stream(stream: Any) -> None:
    try:
        stream.start()
    except portaudio().PortAudioError as exc:
        raise AudioError(f"cannot start the audio stream: {exc}") from None


class StatusLine:
    """Rewrites one terminal line; on a pipe (forced with --status) writes one line per refresh."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self.tty = stream.isatty()

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r{text}\x1b[K" if self.tty else text + "\n")
            self.stream.flush()

    def end(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")


@dataclass
class Session:
    """Everything one run needs, opened but not started."""

    source: Device
    sink: Device
    engine: Denoiser
    bridge: Bridge
    stream: Any
    recorder: Recorder | None
    description: str
    hop_s: float  # a warm hop's run time before the stream (what --engine-in auto decided on)


def server_device(name: str, rate: int, kind: str) -> Device:
    """A source or sink of the sound server, for --virtual-mic (PortAudio does not see them)."""
    return Device(-1, name, "PulseAudio", int(kind == "source"), int(kind == "sink"), rate)


def open_session(opts: LiveOptions) -> Session:
    """The devices, engine, bridge, stream and recorder of one run: PortAudio's input and output devices, or
    (--virtual-mic, which `run_live` has set up) the sound server's source `opts.input` and the virtual mic's
    sink `opts.output`."""
    if opts.virtual_mic:
        if opts.channel is not None:
            raise AudioError("--channel does not apply to --virtual-mic: the sound server downmixes its source")
        assert opts.input and opts.output and opts.sample_rate
        rate = opts.sample_rate
        source, sink = server_device(opts.input, rate, "source"), server_device(opts.output, rate, "sink")
    else:
        source, sink = resolve_device(opts.input, "input"), resolve_device(opts.output, "output")
        if opts.channel is not None and not 0 <= opts.channel < source.inputs:
            raise AudioError(f"--channel must be between 1 and {source.inputs} for {source.label}")
        rate = opts.sample_rate or source.default_rate
    engine, hop_s = make_engine(opts)
    block, blocksize = block_sizes(opts, source, rate)
    gate = None if opts.gate_db is None else VoiceGate(opts.gate_db, opts.gate_hold_ms, engine.sample_rate)
    chain = Chain(engine, rate, opts.hops_per_run, gate)
    channel = 0 if opts.virtual_mic else opts.channel  # the server's source is mono
    in_callback = opts.engine_in == "callback" or (opts.engine_in == "auto" and fits_in_callback(chain, block, hop_s))
    bridge = Bridge(chain, block, channel, opts.headroom, opts.record is not None, in_callback)
    if opts.virtual_mic:
        stream = PulseStream(rate, block, source.name, sink.name, bridge.callback, opts.priority + 1)
        description = f"{source.name} into the virtual mic {opts.virtual_mic} at {rate} Hz, {block}-frame blocks"
    else:
        in_channels = source.inputs if opts.channel is None else opts.channel + 1
        stream = open_stream(bridge, source, sink, in_channels, blocksize)
        channel_text = "a downmix of all channels" if opts.channel is None else f"channel {opts.channel + 1}"
        description = f"{channel_text} of {source.label} into {sink.label} at {rate} Hz, {block}-frame blocks"
    place = "in the audio callback" if in_callback else "in a worker thread"
    description += f"; the engine {place} (a warm hop took {hop_s * 1e3:.3f} ms)"
    rings = (bridge.record_in, bridge.record_out)
    recorder = Recorder(opts.record, rate, rings, opts.priority) if opts.record else None
    return Session(source, sink, engine, bridge, stream, recorder, description, hop_s)


def stream_until_stopped(session: Session, opts: LiveOptions, status: StatusLine, meter: Meter) -> tuple[float, bool]:
    """Run the stream until the duration, `q`, Ctrl-C or SIGTERM; (seconds streamed, stream died)."""
    stream, bridge = session.stream, session.bridge
    lost = False
    switch = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_S)
    gc.collect()
    gc.freeze()  # a full collection of everything loaded so far takes ~20 ms: never on the audio threads
    bridge.start(opts.priority)
    started = time.perf_counter()
    try:
        with realtime_thread(opts.priority), Keys() as keys:  # (a signal: KeyboardInterrupt, from `run_live`)
            if keys.enabled:
                print("keys: b = bypass on/off, q = quit", file=status.stream)
            start_stream(stream)
            started = time.perf_counter()
            lost = watch(session, keys, status, meter, lambda: time.perf_counter() - started, opts.duration)
    except KeyboardInterrupt:
        pass
    finally:
        elapsed = time.perf_counter() - started
        with signals_ignored():  # a second Ctrl-C must not cut the recordings short
            status.end()
            if lost or not stop_stream(stream):
                lost = True
                abandon_portaudio()
            bridge.stop()
            gc.unfreeze()
            sys.setswitchinterval(switch)
            if session.recorder:
                session.recorder.close()
    return elapsed, lost


def run_live(opts: LiveOptions, log: TextIO = sys.stderr) -> dict[str, Any]:
    """Denoise from the input device to the output device (or into a virtual mic) until told to stop;
    returns the summary."""
    with interrupt_once():
        if opts.virtual_mic is None:
            return serve(opts, log)
        source = opts.input or default_source()  # pinned before the virtual mic exists
        rate = opts.sample_rate or VIRTUAL_MIC_RATE
        with VirtualMic(opts.virtual_mic, rate, opts.output, source) as mic:
            listen = f"; monitored on {opts.output}" if opts.output else ""
            print(f"virtual mic '{mic.name}' created: pick it as the microphone in other programs{listen}", file=log)
            return serve(replace(opts, input=source, output=mic.sink, sample_rate=rate), log)


def serve(opts: LiveOptions, log: TextIO) -> dict[str, Any]:
    if opts.json:
        check_report_path(Path(opts.json))
    session = open_session(opts)
    print(f"denoising {session.description}", file=log)
    meter = Meter(session.bridge, lambda: session.stream.latency)
    elapsed, lost = stream_until_stopped(session, opts, StatusLine(log, opts.status), meter)
    recorded = [str(p) for p in session.recorder.paths] if session.recorder else []
    about = {
        "input_device": session.source.label,
        "output_device": session.sink.label,
        "virtual_mic": opts.virtual_mic,
        "recorded": recorded,
        "engine_in_requested": opts.engine_in,
        "warm_hop_ms": session.hop_s * 1e3,
        "clock_slip_frames": session.stream.slipped if isinstance(session.stream, PulseStream) else 0,
        "clock_slip_checks": session.stream.slip_checks if isinstance(session.stream, PulseStream) else 0,
        "clock_slip_blocks": session.stream.slip_blocks if isinstance(session.stream, PulseStream) else [],
    }
    report = summary(session.bridge, meter, elapsed, about)
    if opts.json:
        write_json_atomic(Path(opts.json), report)
    print(format_summary(report), file=log)
    if lost:
        raise AudioError(
            f"the audio stream stopped after {elapsed:.1f} s: the device was disconnected, "
            "or its audio server quit or stopped serving it" + ("; the recordings were saved" if recorded else "")
        )
    return report


def stop_stream(stream: Any) -> bool:
    """Stop and close the stream; False when PortAudio has not returned within STOP_TIMEOUT_S (it then stays
    stuck on a helper thread, and the stream is abandoned)."""
    done = threading.Event()

    def stop() -> None:
        with contextlib.suppress(portaudio().PortAudioError):
            stream.stop()
            stream.close()
        done.set()

    threading.Thread(target=stop, name="stream-stop", daemon=True).start()
    return done.wait(STOP_TIMEOUT_S)


def watch(
    session: Session,
    keys: Keys,
    status: StatusLine,
    meter: Meter,
    elapsed: Callable[[], float],
    duration: float | None,
) -> bool:
    """The main thread's loop while the stream runs; True when the stream died under us: it stopped, or no
    callback came for STALL_S (a JACK server that dropped the client leaves the stream "active")."""
    engine, bridge = session.engine, session.bridge
    callbacks, last_callback = bridge.callbacks, elapsed()
    while duration is None or elapsed() < duration:
        key = keys.poll(REFRESH_S if duration is None else max(0.0, min(REFRESH_S, duration - elapsed())))
        if key in ("b", "B", " "):
            engine.bypass = not engine.bypass
        elif key in ("q", "Q"):
            break
        if bridge.callbacks != callbacks:
            callbacks, last_callback = bridge.callbacks, elapsed()
        if not session.stream.active or elapsed() - last_callback > STALL_S:
            return True
        status.show(meter.line(engine.bypass))
    return False
