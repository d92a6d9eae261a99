"""The real-time core of `denoise live`: an allocation-free audio callback and an engine worker thread.

The callback only moves samples: device input (one channel or a downmix) into `in_ring`, `out_ring`
into every output channel, both optionally into recording rings, then wakes the worker through a pipe
once `in_ring` holds enough for the next model run (or after an xrun). The worker resamples to the model
rate, runs the engine on whole hops and resamples back. Until a run's input is complete the worker would
produce no output, so waking it only then changes nothing but the number of wake-ups (at 64-frame periods
at 48 kHz, two in three).

Or the callback does the worker's part itself (`in_callback`), between storing its input and taking its output:
no thread, no wake-ups, no second thread's caches to refill, and one block less latency (a callback's own
input can come out in the same callback); but a run that outlasts the period is at once an xrun, where the
worker has `headroom` more periods of slack.

Constant latency. `out_ring` starts with `prefill` frames of silence: the fewest with which a worker
that has processed everything up to the previous callback never leaves the callback short (see
`min_prefill`), plus `headroom` blocks, each giving the worker one more period against scheduling
jitter. The output therefore lags the input by exactly `prefill` frames plus the resamplers' and the
engine's delays. An underrun (the callback found too few frames and played silence) makes the output
late by that many frames and an overrun (input dropped because `in_ring` was full) early. The worker
cancels both exactly: it drops late input or inserts silence in whole `grid` units (so the boundaries
of the model's runs keep their place relative to the callbacks, which `min_prefill` relies on) and has
the callback skip the remainder of late output. After any stall the latency is back to its designed value.
"""

from __future__ import annotations

import math
import os
import select
import threading
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numba
import numpy as np

from realtime.compiled_step import runs
from realtime.engine import Denoiser, finish
from realtime.gate import VoiceGate, apply_gate
from realtime.jit import jit
from realtime.resample import Resampler, resample
from realtime.ring import RingBuffer, ring_read_into, ring_write
from realtime.runners import StepRunner

RING_SECONDS = 2.0  # ring capacity: a stall this long is absorbed before input is dropped
XRUN_TIMES = 4096  # the callback's own xruns whose times it keeps (for matching them with the server's)
CPU_EVERY = 64  # the callback reads its thread's CPU time every this many callbacks (a system call each)
WAKE_TIMEOUT_S = 0.1  # the worker also checks for work and for `stop` this often
_NOTHING = np.zeros(0, np.float32)  # `Chain.process`'s output while no run is complete


class Chain:
    """Worker-side signal path: device rate -> model rate -> engine in whole runs of hops -> optional voice
    gate (at the model rate, on the engine's output, bypassed or not) -> device rate.

    With the compiled step (`realtime.runners.StepRunner`) the whole path is one native call per `process`
    (`_process`, over the parts' own compiled functions): in live's callbacks, with the caches cold from the
    audio server and the other clients, each Python-level step costs several times what it costs in a loop.
    Otherwise the parts' methods run one after another (`_parts`); the two give the same samples.

    A model run costs mostly its start-up (on a busy CPU the weights have left the caches between runs),
    so `hops_per_run` > 1 divides the CPU load by about that much, for `hops_per_run - 1` hops more latency.
    """

    def __init__(
        self, engine: Denoiser, device_rate: int, hops_per_run: int = 1, gate: VoiceGate | None = None
    ) -> None:
        if engine.channels != 1 or engine.block_size != engine.hop:
            raise ValueError("the live chain needs a mono engine with block_size == hop")
        if hops_per_run < 1:
            raise ValueError(f"hops per run must be at least 1, got {hops_per_run}")
        if gate is not None and gate.rate != engine.sample_rate:
            raise ValueError(f"the gate runs at the model's rate, {engine.sample_rate} Hz, not {gate.rate} Hz")
        self.engine = engine
        self.gate = gate
        self.rate = device_rate
        self.run = engine.hop * hops_per_run  # fewest model-rate samples per model run
        same = device_rate == engine.sample_rate
        self.down = None if same else Resampler(device_rate, engine.sample_rate)
        self.up = None if same else Resampler(engine.sample_rate, device_rate)
        self.pending = np.zeros(self.run, np.float32)  # model-rate samples short of a run, the first `held[0]`
        self.held = np.zeros(1, np.int64)
        runner = engine.runner
        self._compiled = None
        if isinstance(runner, StepRunner):  # `_process`'s arguments after the input and the mix target
            self._compiled = (
                *(self.down.state if self.down else None, self.pending, self.held),
                *(runner.cursor, runner.states, runner.ring, runner.work, engine.dry_line, engine.mix),
                *(gate.state if gate else None, self.up.state if self.up else None),
            )
            self.process(np.zeros(0, np.float32))  # loads (or compiles) it here, not in a live callback

    @property
    def resampling_delay(self) -> float:
        """Seconds of delay added by the two resamplers."""
        return self.down.delay + self.up.delay if self.down and self.up else 0.0

    def output_count(self, inputs: int) -> int:
        """Device frames out once `inputs` device frames went in (only whole runs reach the engine)."""
        at_model_rate = self.down.output_count(inputs) if self.down else inputs
        done = at_model_rate // self.run * self.run
        return self.up.output_count(done) if self.up else done

    def input_needed(self) -> int:
        """Device frames more before the next model run (until then `process` returns nothing)."""
        short = self.run - int(self.held[0])  # model-rate samples the next run lacks
        return self.down.inputs_for(short) if self.down else short

    def process(self, x: np.ndarray) -> np.ndarray:
        """Denoise the next device-rate samples (1-D); returns the device-rate samples now ready."""
        if self._compiled is None:
            return self._parts(x)
        y, nonfinite, closed, opened = _process(
            np.ascontiguousarray(x, np.float32), self.engine.mix_target, *self._compiled
        )
        self.engine.nonfinite_blocks += nonfinite
        if self.gate is not None:
            self.gate.closed_samples += closed
            self.gate.is_open = opened
        return y

    def _parts(self, x: np.ndarray) -> np.ndarray:
        x16 = self.down.process(x) if self.down else np.asarray(x, np.float32)
        held = int(self.held[0])
        data = np.concatenate([self.pending[:held], x16]) if held else x16
        whole = len(data) // self.run * self.run
        rest = len(data) - whole
        self.pending[:rest] = data[whole:]
        self.held[0] = rest
        if not whole:  # (no run yet: the engine, gate and resampler would take and give nothing)
            return _NOTHING
        y = self.engine.feed(data[:whole])  # everything ready in one model run
        if self.gate is not None:
            self.gate.process(y)  # in place: the engine's output is a fresh array
        return self.up.process(y) if self.up else y


@jit()
def _process(x, target, down, pending, held, cursor, states, ring, work, line, mix, gate, up):  # noqa: ANN001, ANN202, PLR0913
    """`Chain._parts` in one call: the parts' state as their compiled functions take it (None: no such part).
    Returns (the device-rate output, whether the input had non-finite samples, the gate's closed samples and
    whether it is open)."""
    x16 = x if down is None else resample(x, *down)
    data = np.concatenate((pending[: held[0]], x16))  # (a copy: the input is the caller's)
    run = pending.shape[0]
    whole = data.shape[0] // run * run
    rest = data.shape[0] - whole
    pending[:rest] = data[whole:]
    held[0] = rest
    nonfinite = False
    closed, opened = 0, False
    if not whole:  # (the gate as it is: open while its hold lasts)
        if gate is not None:
            opened = gate[1][2] <= gate[3]
        return data[:0], nonfinite, closed, opened
    chunk = data[:whole]
    for i in range(whole):
        if not np.isfinite(chunk[i]):
            chunk[i] = 0.0
            nonfinite = True
    y = np.empty(whole, np.float32)
    runs(chunk, y, cursor, states, ring, work)
    finish(y.reshape((whole, 1)), chunk.reshape((whole, 1)), line, mix, target)
    if gate is not None:
        closed, opened = apply_gate(y, *gate)
    return (y if up is None else resample(y, *up)), nonfinite, closed, opened


def phase_grid(chain: Chain) -> int:
    """Fewest device frames that carry a whole number of runs: dropping or inserting multiples of this
    keeps the run boundaries (and the resamplers' phases) where they were relative to the callbacks."""
    run_frames = chain.run * chain.rate
    return run_frames // math.gcd(run_frames, chain.engine.sample_rate)


def min_prefill(chain: Chain, block: int, in_callback: bool = False) -> int:
    """Fewest silent frames to start `out_ring` with, for callbacks of `block` frames and a worker that
    has processed all input up to the previous callback: max over k of (k+1)*block - output(k*block); for the
    engine run inside the callback (`in_callback`), all input up to this one: output((k+1)*block)."""
    behind = 0 if in_callback else 1
    return max((k + 1) * block - chain.output_count((k + 1 - behind) * block) for k in range(4096))


def set_realtime(priority: int) -> bool:
    """Give the calling thread SCHED_FIFO `priority` (0: leave it); False where that is not permitted.

    Every thread of a live run that takes the GIL needs it, not only the engine: a thread that the
    normal scheduler preempts while holding the GIL stalls the audio callback until it runs again."""
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError:
        return False
    return True


@contextmanager
def realtime_thread(priority: int) -> Iterator[bool]:
    """`set_realtime` for the calling thread while inside, then its old scheduling back."""
    if not set_realtime(priority):
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


# The bridge's counters, elements of one int64 array (`Bridge.counts`) so that compiled code updates them: those
# of the audio callback, then those of the worker (or of the callback, with the engine in it).
COUNTERS = (
    "callbacks", "frames", "odd_blocks", "device_xruns", "underruns", "underrun_frames", "overruns", "overrun_frames",
    "skipped", "record_dropped", "skip_target", "dropped", "inserted", "lost_output", "frames_processed",
)  # fmt: skip
(CALLBACKS, FRAMES, ODD_BLOCKS, DEVICE_XRUNS, UNDERRUNS, UNDERRUN_FRAMES, OVERRUNS, OVERRUN_FRAMES, SKIPPED,
 RECORD_DROPPED, SKIP_TARGET, DROPPED, INSERTED, LOST_OUTPUT, FRAMES_PROCESSED) = range(len(COUNTERS))  # fmt: skip


class Counter:
    """A `Bridge` attribute that is an element of its `counts` array."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.index = COUNTERS.index(name)

    def __get__(self, bridge: Bridge, owner: type | None = None) -> int:
        return int(bridge.counts[self.index])

    def __set__(self, bridge: Bridge, value: int) -> None:
        bridge.counts[self.index] = value


class Bridge:
    """The rings between the audio callback and the engine worker, with the xrun bookkeeping.

    Each counter is written by one thread only: the callback (`callbacks`, `frames`, `odd_blocks`,
    `device_xruns`, `underruns`/`underrun_frames`, `overruns`/`overrun_frames`, `skipped`,
    `record_dropped`, `xrun_times`/`timed_xruns`, the callback's CPU time) or the worker (the rest), so they need
    no locks.

    The callback's moving of samples is compiled (`_take_input`, `_give_output`, over the rings' arrays), and
    so is the corrections' arithmetic (`_corrections`); the engine's run between them is the chain's own
    compiled call. (One native call for the whole callback would compile the model step again into it: 10-15 s
    more at the first start of each configuration, which live cannot spend with a stream waiting.)
    """

    (callbacks, frames, odd_blocks, device_xruns, underruns, underrun_frames, overruns, overrun_frames, skipped,
     record_dropped, skip_target, dropped, inserted, lost_output, frames_processed) = (
        Counter() for _ in COUNTERS
    )  # fmt: skip

    def __init__(
        self,
        chain: Chain,
        block: int,
        channel: int | None = None,
        headroom: int = 0,
        record: bool = False,
        in_callback: bool = False,
    ) -> None:
        self.chain = chain
        self.block = block
        self.channel = channel
        self.in_callback = in_callback
        self.prefill = min_prefill(chain, block, in_callback) + headroom * block
        self.grid = phase_grid(chain)
        capacity = round(RING_SECONDS * chain.rate) + self.prefill
        self.in_ring = RingBuffer(capacity)
        self.out_ring = RingBuffer(capacity)
        self.out_ring.write(np.zeros((self.prefill, 1), np.float32))
        self.record_in = RingBuffer(capacity) if record else None
        self.record_out = RingBuffer(capacity) if record else None
        self.counts = np.zeros(len(COUNTERS), np.int64)
        self._mix = np.zeros((capacity, 1), np.float32)  # callback scratch: the (downmixed) input block
        self._play = np.zeros((capacity, 1), np.float32)  # callback scratch: the output block
        self._work = np.zeros((capacity, 1), np.float32)  # worker scratch
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.wake_frames = 1  # input frames in `in_ring` at which the callback wakes the worker (worker's)
        self.xrun_times = np.zeros(XRUN_TIMES)  # time.monotonic() of the first of the callback's own xruns
        self.timed_xruns = 0
        self.compute_s = array("d")  # worker time per serviced batch
        self.callback_cpu_s = 0.0  # CPU time of the callback's thread since the first callback
        self._callback_cpu_start = 0.0
        self.worker_cpu_s = 0.0  # CPU time of the worker's thread, once it stopped
        self.energy_in = self.energy_out = 0.0  # sums of squares of processed input and output
        self.realtime = False
        self._stop = False
        self._thread: threading.Thread | None = None
        rec = [
            a for ring in (self.record_in, self.record_out) for a in ((ring.data, ring.at) if ring else (None, None))
        ]
        channel_arg = -1 if channel is None else channel
        self._take = (channel_arg, self._mix, self.in_ring.data, self.in_ring.at, self.counts)  # `_take_input`'s
        out = (self.out_ring.data, self.out_ring.at)
        self._give = (block, self._play, self._mix, *out, *rec, self.counts)  # `_give_output`'s, after outdata
        block_data = np.zeros((block, 1), np.float32)  # (as the audio APIs give them: C-contiguous float32)
        _prepare(_take_input, block_data, *self._take)
        _prepare(_give_output, block_data, *self._give)

    # -- audio thread ----------------------------------------------------------------------------------
    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        """sounddevice callback: copies only, into preallocated memory (and the engine's run, in the callback)."""
        if status and (status.input_overflow or status.input_underflow or status.output_underflow):
            self.counts[DEVICE_XRUNS] += 1
        xrun = _take_input(indata, *self._take)
        if self.in_callback:
            self.service()
        xrun |= _give_output(outdata, *self._give)
        calls = int(self.counts[CALLBACKS])
        if calls == 1:  # the thread may be the audio server's, busy for others before the stream
            self._callback_cpu_start = time.thread_time()
            if self.in_callback:  # the engine runs at the audio thread's priority, whatever the server gave it
                self.realtime = os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR)
        elif calls % CPU_EVERY == 0:
            self.callback_cpu_s = time.thread_time() - self._callback_cpu_start
        if xrun and self.timed_xruns < XRUN_TIMES:
            self.xrun_times[self.timed_xruns] = time.monotonic()
            self.timed_xruns += 1
        if not self.in_callback and (xrun or self.in_ring.available() >= self.wake_frames):
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:  # the worker has a wake-up pending already
                pass

    # -- worker thread ---------------------------------------------------------------------------------
    def start(self, priority: int = 0) -> None:
        """Start the engine worker (none when the engine runs in the callback)."""
        if self.in_callback:
            return
        self._thread = threading.Thread(target=self._run, args=(priority,), name="denoise-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"\0")
        if self._thread is not None:
            self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def woken(self, timeout: float = 0.0) -> bool:
        """Whether the callback woke the worker, waiting up to `timeout` seconds; consumes the wake-ups."""
        if not select.select([self._wake_r], [], [], timeout)[0]:
            return False
        os.read(self._wake_r, 4096)
        return True

    def _run(self, priority: int) -> None:
        self.realtime = set_realtime(priority)
        while not self._stop:
            self.woken(WAKE_TIMEOUT_S)
            self.service()
        self.worker_cpu_s = time.thread_time()

    def service(self) -> None:
        """Undo xruns, then denoise everything the callback has delivered, until what remains is short of a
        run. Setting `wake_frames` before looking at the ring again closes the race with a callback that
        delivers in between: either this sees its input, or it sees the new `wake_frames`."""
        while True:
            self._serve()
            self.wake_frames = max(self.chain.input_needed(), 1)
            if self.in_ring.available() < self.wake_frames:
                return

    def _serve(self) -> None:
        self._correct()
        n = self.in_ring.read_into(self._work)
        if n:
            t0 = time.perf_counter()
            x = self._work[:n, 0]
            y = self.chain.process(x)
            self._emit(y)
            self.compute_s.append(time.perf_counter() - t0)
            self.frames_processed += n
            self.energy_in += finite_energy(x)
            self.energy_out += finite_energy(y)

    def _emit(self, y: np.ndarray) -> None:
        """Queue output for the callback (the ring holds seconds; its level stays near `prefill`)."""
        fitted = self.out_ring.write(y[:, None])
        if fitted < len(y):
            self.lost_output += 1

    def _correct(self) -> None:
        """Undo xruns (`_corrections`): insert the silence, drop the input, have the callback skip the rest."""
        silence, drop, skip = _corrections(self.counts, self.grid, self.in_ring.available())
        if silence:
            self._emit(self.chain.process(np.zeros(silence, np.float32)))
            self.inserted += silence
        if drop:
            self.dropped += self.in_ring.read_into(self._work[:drop])
        self.skip_target += skip

    # -- measurements ----------------------------------------------------------------------------------
    @property
    def xruns(self) -> int:
        return self.device_xruns + self.underruns + self.overruns + self.lost_output

    def latency_frames(self) -> float:
        """Device frames from a sample entering the callback to it leaving it (what a loopback measures)."""
        engine = self.chain.engine
        return self.prefill + (self.chain.resampling_delay + engine.latency / engine.sample_rate) * self.chain.rate


def _prepare(function: Any, *args: object) -> None:
    """Compile (or load from the cache) `function` for these arguments' types without running it: here, not
    in the first callback, where it would be an xrun of seconds."""
    function.compile(tuple(numba.typeof(a) for a in args))


# -- the callback's compiled parts (arrays only: the rings' `data` and `at`, the bridge's `counts`) --------------
@jit()
def _take_input(indata, channel, mix, in_data, in_at, counts):  # noqa: ANN001, ANN202, PLR0913 (numba)
    """Store the callback's input (channel `channel`, or all downmixed: -1) in `mix` and the input ring;
    whether it overran."""
    frames, channels = indata.shape
    source = mix[:frames]
    if channel >= 0 or channels == 1:
        source[:, 0] = indata[:, max(channel, 0)]
    else:
        scale = np.float32(1.0 / channels)
        for i in range(frames):
            total = np.float32(0.0)
            for c in range(channels):
                total += indata[i, c]
            source[i, 0] = total * scale
    stored = ring_write(in_data, in_at, source)
    if stored == frames:
        return False
    counts[OVERRUNS] += 1
    counts[OVERRUN_FRAMES] += frames - stored
    return True


@jit()
def _give_output(outdata, block, play, mix, out_data, out_at, rin_data, rin_at, rout_data, rout_at, counts):  # noqa: ANN001, ANN202, PLR0913
    """Play the output ring into every output channel (skipping late frames the worker owes), record the
    input in `mix` and the output, count the callback; whether it underran."""
    frames = outdata.shape[0]
    owed = counts[SKIP_TARGET] - counts[SKIPPED]
    if owed > 0:
        counts[SKIPPED] += ring_read_into(out_data, out_at, play[:owed])
    block_out = play[:frames]
    got = ring_read_into(out_data, out_at, block_out)
    underran = got < frames
    if underran:
        block_out[got:] = 0.0
        counts[UNDERRUNS] += 1
        counts[UNDERRUN_FRAMES] += frames - got
    for c in range(outdata.shape[1]):
        outdata[:, c] = block_out[:, 0]
    if rin_data is not None and rout_data is not None:
        kept = ring_write(rin_data, rin_at, mix[:frames]) + ring_write(rout_data, rout_at, block_out)
        counts[RECORD_DROPPED] += 2 * frames - kept
    counts[CALLBACKS] += 1
    counts[FRAMES] += frames
    if frames != block:
        counts[ODD_BLOCKS] += 1
    return underran


@jit()
def _corrections(counts, grid, available):  # noqa: ANN001, ANN202 (numba)
    """How to undo the xruns counted so far: (silent frames to insert, input frames to drop, output frames
    more for the callback to skip). Back onto the run grid first, then lateness cancelled by dropping whole grid
    units of input (a stall's backlog) and skipping the rest of the late output; early output is delayed by
    whole grid units."""
    silence = (counts[OVERRUN_FRAMES] + counts[DROPPED] - counts[INSERTED]) % grid
    late = counts[UNDERRUN_FRAMES] - counts[OVERRUN_FRAMES] - counts[DROPPED] + counts[INSERTED] + silence
    late -= counts[SKIP_TARGET]
    if late < 0:
        silence -= late // grid * grid
        late %= grid
    drop = min(late, available) // grid * grid
    return silence, drop, late - drop


@jit()
def finite_energy(x):  # noqa: ANN001, ANN202 (numba)
    """Sum of squares of the finite samples (the engine hears the others as silence)."""
    total = 0.0
    for v in x:
        if np.isfinite(v):
            total += np.float64(v) * np.float64(v)
    return total
