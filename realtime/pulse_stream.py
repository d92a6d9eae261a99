"""A duplex stream on a PulseAudio-compatible server (PulseAudio, or PipeWire's pipewire-pulse) through
libpulse-simple, for `denoise live --virtual-mic`.

It offers the part of sounddevice's Stream that live uses (start, stop, close, active, latency) and drives
the same callback: a thread reads a block from the source, hands it to the callback and writes the
callback's output to the sink. The two ends may run on different clocks (a sound card and a null sink differ
by tens to hundreds of ppm; on one PulseAudio server, live's input piled up 200-400 ppm faster than its null
sink took its output, in `denoise bench virtual-mic`): while input piles up, or the sink starves, the thread
reads one frame more, or fewer, per block and stretches it onto the block (`ClockFollower`), so the latency
stays where it settled instead of drifting until a drop. PortAudio reaches the server only through
ALSA's `pulse` device, whose duplex streams ran at about half speed on the machine this was written on.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.errors import AudioError
from realtime.live import set_realtime

PA_STREAM_PLAYBACK, PA_STREAM_RECORD = 1, 2
PA_SAMPLE_FLOAT32LE = 5
BYTES = 4  # float32 mono
PLAYBACK_BLOCKS = 2  # the sink's target buffer, in blocks: one being played, one queued
MAX_BACKLOG_BLOCKS = 4  # more input than this waiting in the source's stream at every check of ...
PERSIST_CHECKS = 10  # ... this many in a row is dropped: latency stays bounded, and a burst passes untouched
CHECK_BLOCKS = 10  # blocks between checks of the streams' latencies
SLIP_WINDOW_S = 5.0  # the input backlog's floor is its least over this long: clocks 100 ppm apart move it 0.5 ms
# a floor this far above the settled one takes a frame more per block until it falls: the path stays within a
# quarter block (2.5 ms at live's 10 ms) of where it settled (a quiet server's floors vary by a few hundredths)
SLIP_MARGIN_BLOCKS = 0.25
SLIP_FALL_BLOCKS = 0.25  # one that has not fallen this much after a window of slipping is the server's own
# latency moving (PipeWire's quantum follows its clients' requests), not input piling up
SLIP_PLAYBACK_BLOCKS = 1.0  # output queued below this with no extra input waiting takes a frame fewer per block
MAX_SLIPS_KEPT = 4096  # blocks where slipping began that live's summary lists
SETTLE_BLOCKS = 20  # start() waits for this many blocks in a row served on time ...
SETTLE_TIMEOUT_S = 5.0  # ... or this long


@dataclass
class _Status:
    """What the callback reads of PortAudio's status flags."""

    input_overflow: bool = False
    input_underflow: bool = False
    output_underflow: bool = False


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("maxlength", "tlength", "prebuf", "minreq", "fragsize")]


def buffer_attr(**frames: int) -> _BufferAttr:
    """Buffer metrics in frames of float32 mono (maxlength, tlength, prebuf, minreq, fragsize); the ones not
    given are the server's default."""
    none = 0xFFFFFFFF  # (uint32_t) -1
    return _BufferAttr(*(frames[name] * BYTES if name in frames else none for name, _ in _BufferAttr._fields_))


@functools.cache
def library() -> ctypes.CDLL:
    """libpulse-simple, with the signatures of what is used of it."""
    path = ctypes.util.find_library("pulse-simple")
    if path is None:
        raise AudioError("--virtual-mic needs libpulse-simple (Debian: libpulse0)")
    lib = ctypes.CDLL(path)
    lib.pa_simple_new.restype = ctypes.c_void_p
    lib.pa_simple_new.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.POINTER(_SampleSpec),
        ctypes.c_void_p,
        ctypes.POINTER(_BufferAttr),
        ctypes.POINTER(ctypes.c_int),
    ]
    for name in ("pa_simple_read", "pa_simple_write"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
    lib.pa_simple_get_latency.restype = ctypes.c_uint64
    lib.pa_simple_get_latency.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    lib.pa_simple_free.argtypes = [ctypes.c_void_p]
    lib.pa_strerror.restype = ctypes.c_char_p
    return lib


class Connection:
    """One mono float32 stream of libpulse-simple: recording from a source or playing into a sink."""

    def __init__(
        self, record: bool, device: str, name: str, rate: int, attr: _BufferAttr, client: str = "rtdenoise",
        server: str | None = None,
    ) -> None:  # fmt: skip
        self._lib = library()
        self._error = ctypes.c_int(0)
        direction = PA_STREAM_RECORD if record else PA_STREAM_PLAYBACK
        spec = _SampleSpec(PA_SAMPLE_FLOAT32LE, rate, 1)
        self._handle = self._lib.pa_simple_new(
            server.encode() if server else None, client.encode(), direction, device.encode(), name.encode(), spec,
            None, attr, ctypes.byref(self._error),
        )  # fmt: skip
        if not self._handle:
            raise AudioError(
                f"cannot open the sound server's {'source' if record else 'sink'} '{device}': {self.reason()}"
            )

    def reason(self) -> str:
        """The server's words for the last failure."""
        return self._lib.pa_strerror(self._error.value).decode(errors="replace")

    def read(self, frames: np.ndarray) -> bool:
        """Fill `frames` (contiguous float32), waiting as long as it takes; False when the stream failed."""
        return self._transfer(self._lib.pa_simple_read, frames)

    def write(self, frames: np.ndarray) -> bool:
        """Queue `frames` (contiguous float32), waiting while the buffer is full; False when the stream failed."""
        return self._transfer(self._lib.pa_simple_write, frames)

    def _transfer(self, function: Any, frames: np.ndarray) -> bool:
        return function(self._handle, frames.ctypes.data, frames.nbytes, ctypes.byref(self._error)) >= 0

    def latency(self) -> float:
        """The server's latency of the stream now, seconds: how long a sample waits in it."""
        return self._lib.pa_simple_get_latency(self._handle, ctypes.byref(ctypes.c_int(0))) / 1e6

    def close(self) -> None:
        if self._handle:
            self._lib.pa_simple_free(self._handle)
        self._handle = None


class ClockFollower:
    """How many frames to take from the source per block beyond one block, decided at each check from the
    input backlog and the output queued (in blocks): the two ends may run on different clocks, whose difference
    (tens to hundreds of ppm) moves the backlog's floor by a block in tens of seconds.

    The floor is the least backlog over the last SLIP_WINDOW_S, so the server's bursts and this process's stalls
    do not count; the settled floor is the lowest seen. A floor SLIP_MARGIN_BLOCKS above it (the source runs
    fast) takes a frame more per block until it falls, unless it has not fallen by SLIP_FALL_BLOCKS after a
    whole window of slipping: then the server's own latency rose, and that becomes the settled floor. A sink starving
    with no extra input waiting (the sink runs fast) takes a frame fewer. One frame a block (0.1 to 0.2 % of
    speed, inaudible) outruns any clock difference; on one clock nothing slips."""

    def __init__(self, checks: int) -> None:
        self.backlogs: collections.deque[float] = collections.deque(maxlen=checks)
        self.settled: float | None = None
        self._slipping: tuple[float, int] | None = None  # (the floor when slipping began, checks since)

    def check(self, backlog: float, playback: float) -> int:
        """The frames per block to slip until the next check (+1, -1 or 0)."""
        self.backlogs.append(backlog)
        if len(self.backlogs) < self.backlogs.maxlen:
            return 0
        floor = min(self.backlogs)
        if self.settled is None or floor < self.settled:
            self.settled = floor
        if floor <= self.settled + SLIP_MARGIN_BLOCKS:
            self._slipping = None
        elif self._slipping is None:
            self._slipping = (floor, 1)
            return 1
        else:
            began, checks = self._slipping
            if checks < self.backlogs.maxlen:
                self._slipping = (began, checks + 1)
            elif floor > began - SLIP_FALL_BLOCKS:
                self.settled, self._slipping = floor, None
                return 0
            else:
                self._slipping = (floor, 1)  # draining: watch the next window
            return 1
        return -1 if playback < SLIP_PLAYBACK_BLOCKS and backlog <= self.settled else 0

    def restart(self) -> None:
        """Forget the backlog's history (after input was dropped), keeping the settled floor."""
        self.backlogs.clear()
        self._slipping = None


def stretch(frames: np.ndarray, length: int) -> np.ndarray:
    """`frames` (n, 1) linearly interpolated onto `length` frames, ends kept: how a block absorbs a slipped
    frame without a jump."""
    position = np.linspace(0.0, len(frames) - 1, length)
    return np.interp(position, np.arange(len(frames)), frames[:, 0]).astype(np.float32)[:, None]


def settle(records: Sequence[Connection], playback: Connection, block: int, rate: int) -> None:
    """Pass silence from fresh record streams to a fresh playback stream until the server serves them all
    steadily. Fresh streams stall for a second or two (a null sink renders ahead while it has no client, and
    a monitor's first data comes late), which would otherwise shift the first seconds against the rest."""
    silence = np.zeros(block, np.float32)
    steady, deadline = 0, time.monotonic() + SETTLE_TIMEOUT_S
    while steady < SETTLE_BLOCKS and time.monotonic() < deadline:
        began = time.monotonic()
        if not all(record.read(silence) for record in records):
            return  # the caller's first read reports it
        silence[:] = 0.0
        if not playback.write(silence):
            return
        steady = steady + 1 if time.monotonic() - began < 1.5 * block / rate else 0


class PulseStream:
    """Blocks of `block` mono float32 frames from `source` through `callback` into `sink`."""

    def __init__(
        self,
        rate: int,
        block: int,
        source: str,
        sink: str,
        callback: Callable[[np.ndarray, np.ndarray, int, Any, Any], None],
        priority: int = 0,
    ) -> None:
        library()  # a missing library fails here
        self.rate, self.block, self.callback, self.priority = rate, block, callback, priority
        self.source, self.sink = source, sink
        self._asked = (block / rate, PLAYBACK_BLOCKS * block / rate)  # seconds in, out
        self.failure: str | None = None
        self._record: Connection | None = None
        self._playback: Connection | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._backlogs: collections.deque[float] = collections.deque(maxlen=PERSIST_CHECKS)
        checks = max(PERSIST_CHECKS, round(SLIP_WINDOW_S * rate / (block * CHECK_BLOCKS)))
        self._clocks = ClockFollower(checks)
        self._latencies: collections.deque[tuple[float, float]] = collections.deque(maxlen=checks)
        self.slipped = 0  # net frames taken from the source beyond one block per block (clock correction)
        self.slip_checks = 0  # checks after which a frame more or fewer was taken per block ...
        self.slip_blocks: list[int] = []  # ... and the first block of each of them (the first MAX_SLIPS_KEPT)
        self._connect()  # now, so that a missing source or sink is reported before anything starts
        self.close()

    def _connect(self) -> None:
        """Open both streams (the server starts recording at once: start() opens them again for that)."""
        record = buffer_attr(fragsize=self.block)
        target = PLAYBACK_BLOCKS * self.block
        playback = buffer_attr(tlength=target, prebuf=target, minreq=self.block)
        self._record = Connection(True, self.source, "denoise live input", self.rate, record)
        try:
            self._playback = Connection(False, self.sink, "denoise live output", self.rate, playback)
        except AudioError:
            self.close()
            raise

    @property
    def latency(self) -> tuple[float, float]:
        """Seconds a sample waits in the source's stream and in the sink's: the medians over the last
        SLIP_WINDOW_S as the server measured them (a single reading swings by a block or more with the server's
        bursts), what was asked for before the first."""
        measured = list(self._latencies)  # one step under the GIL: the stream's thread appends to it
        if not measured:
            return self._asked
        return float(np.median([m[0] for m in measured])), float(np.median([m[1] for m in measured]))

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._connect()
        self._settle()
        self._thread = threading.Thread(target=self._run, name="pulse-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        set_realtime(self.priority)  # as PortAudio's callback thread under JACK
        record, playback = self._record, self._playback
        assert record is not None and playback is not None
        read = np.zeros((self.block + 1, 1), np.float32)
        outdata = np.zeros((self.block, 1), np.float32)
        blocks, status, frames = 0, _Status(), self.block
        while not self._stop:
            if blocks % CHECK_BLOCKS == 0:
                now = (record.latency(), playback.latency())
                self._latencies.append(now)
                backlog, queued = (seconds * self.rate / self.block for seconds in now)
                status.input_overflow = self._bound_backlog(backlog)
                frames = self.block + (0 if status.input_overflow else self._clocks.check(backlog, queued))
                if frames != self.block:
                    self.slip_checks += 1
                    if len(self.slip_blocks) < MAX_SLIPS_KEPT:
                        self.slip_blocks.append(blocks)
            blocks += 1
            self.slipped += frames - self.block
            if not record.read(read[:frames]):
                self.failure = f"reading the source: {record.reason()}"
                return
            indata = read[:frames] if frames == self.block else stretch(read[:frames], self.block)
            self.callback(indata, outdata, self.block, None, status)
            status.input_overflow = False
            if not playback.write(outdata):
                self.failure = f"writing the sink: {playback.reason()}"
                return

    def _settle(self) -> None:
        assert self._record is not None and self._playback is not None
        settle([self._record], self._playback, self.block, self.rate)
        self._drop_input(self._record.latency() * self.rate / self.block)

    def _bound_backlog(self, queued: float) -> bool:
        """`queued`: blocks waiting in the source's stream now. With more than MAX_BACKLOG_BLOCKS at each of the
        last PERSIST_CHECKS checks (after a stall of this process, with a playback stream that waits to refill, or
        a source whose clock runs faster than the sink's), read it down to one block; True when it did, which the
        callback counts as a device xrun. A backlog that drains by itself (a burst of the source, the catching up
        after a stall) is left alone: dropping it would only shift the stream earlier."""
        self._backlogs.append(queued)
        least = min(self._backlogs)
        if len(self._backlogs) < PERSIST_CHECKS or least <= MAX_BACKLOG_BLOCKS:
            return False
        self._drop_input(least)
        return True

    def _drop_input(self, queued: float) -> None:
        """Read and discard all but one of `queued` blocks, and start the backlog's history again. (pa_simple_flush
        flushes playback streams only.)"""
        assert self._record is not None
        scratch = np.zeros(self.block, np.float32)
        for _ in range(int(queued) - 1):  # each read returns at once: the blocks are there
            if not self._record.read(scratch):
                break  # the loop's next read reports it
        self._backlogs.clear()
        self._clocks.restart()

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        for connection in (self._record, self._playback):
            if connection is not None:
                connection.close()
        self._record = self._playback = None
