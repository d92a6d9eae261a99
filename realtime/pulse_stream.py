"""A duplex stream on a PulseAudio-compatible server (PulseAudio, or PipeWire's pipewire-pulse) through
libpulse-simple, for `denoise live --virtual-mic`.

It offers the part of sounddevice's Stream that live uses (start, stop, close, active, latency) and drives
the same callback: a thread reads a block from the source, hands it to the callback and writes the
callback's output to the sink. Both ends are on the server's clock, so the bridge's rings and xrun
corrections work as with any device. PortAudio reaches the server only through ALSA's `pulse` device, whose
duplex streams ran at about half speed on the machine this was written on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.errors import AudioError
from realtime.live import set_realtime

PA_STREAM_PLAYBACK, PA_STREAM_RECORD = 1, 2
PA_SAMPLE_FLOAT32LE = 5
BYTES = 4  # float32 mono
PLAYBACK_BLOCKS = 2  # the sink's target buffer, in blocks: one being played, one queued
MAX_BACKLOG_BLOCKS = 4  # more input than this waiting in the source's stream is dropped (latency stays bounded)
CHECK_BLOCKS = 10  # blocks between checks of the streams' latencies
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


def _library() -> ctypes.CDLL:
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


def settle(lib: ctypes.CDLL, record: int, playback: int, block: int, rate: int) -> None:
    """Pass silence from a fresh record stream to a fresh playback stream until the server serves both
    steadily. Fresh streams stall for a second or two (a null sink renders ahead while it has no client, and
    a monitor's first data comes late), which would otherwise shift the first seconds against the rest."""
    silence, error = np.zeros(block, np.float32), ctypes.c_int(0)
    steady, deadline = 0, time.monotonic() + SETTLE_TIMEOUT_S
    while steady < SETTLE_BLOCKS and time.monotonic() < deadline:
        began = time.monotonic()
        if lib.pa_simple_read(record, silence.ctypes.data, silence.nbytes, ctypes.byref(error)) < 0:
            return  # the caller's first read reports it
        silence[:] = 0.0
        if lib.pa_simple_write(playback, silence.ctypes.data, silence.nbytes, ctypes.byref(error)) < 0:
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
        self._lib = _library()
        self.rate, self.block, self.callback, self.priority = rate, block, callback, priority
        self.source, self.sink = source, sink
        self.latency = (block / rate, PLAYBACK_BLOCKS * block / rate)  # seconds in, out: asked for, then measured
        self.failure: str | None = None
        self._record = self._playback = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self._connect()  # now, so that a missing source or sink is reported before anything starts
        self.close()

    def _connect(self) -> None:
        """Open both streams (the server starts recording at once: start() opens them again for that)."""
        size, none = self.block * BYTES, 0xFFFFFFFF  # (uint32_t) -1: the server's default
        record = _BufferAttr(maxlength=none, tlength=none, prebuf=none, minreq=none, fragsize=size)
        target = PLAYBACK_BLOCKS * size
        playback = _BufferAttr(maxlength=none, tlength=target, prebuf=target, minreq=size, fragsize=none)
        self._record = self._open(PA_STREAM_RECORD, self.source, "denoise live input", record)
        try:
            self._playback = self._open(PA_STREAM_PLAYBACK, self.sink, "denoise live output", playback)
        except AudioError:
            self.close()
            raise

    def _open(self, direction: int, device: str, stream: str, attr: _BufferAttr) -> int:
        spec = _SampleSpec(PA_SAMPLE_FLOAT32LE, self.rate, 1)
        error = ctypes.c_int(0)
        handle = self._lib.pa_simple_new(
            None, b"rtdenoise", direction, device.encode(), stream.encode(), spec, None, attr, ctypes.byref(error)
        )
        if not handle:
            kind = "source" if direction == PA_STREAM_RECORD else "sink"
            raise AudioError(f"cannot open the sound server's {kind} '{device}': {self._reason(error)}")
        return handle

    def _reason(self, error: ctypes.c_int) -> str:
        return self._lib.pa_strerror(error.value).decode(errors="replace")

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
        indata = np.zeros((self.block, 1), np.float32)
        outdata = np.zeros((self.block, 1), np.float32)
        size, error = self.block * BYTES, ctypes.c_int(0)
        blocks, status = 0, _Status()
        while not self._stop:
            if blocks % CHECK_BLOCKS == 0:
                status.input_overflow = self._bound_backlog()
                self.latency = (self._latency(self._record), self._latency(self._playback))
            blocks += 1
            if self._lib.pa_simple_read(self._record, indata.ctypes.data, size, ctypes.byref(error)) < 0:
                self.failure = f"reading the source: {self._reason(error)}"
                return
            self.callback(indata, outdata, self.block, None, status)
            status.input_overflow = False
            if self._lib.pa_simple_write(self._playback, outdata.ctypes.data, size, ctypes.byref(error)) < 0:
                self.failure = f"writing the sink: {self._reason(error)}"
                return

    def _settle(self) -> None:
        settle(self._lib, self._record, self._playback, self.block, self.rate)
        self._bound_backlog(1)

    def _bound_backlog(self, most: int = MAX_BACKLOG_BLOCKS) -> bool:
        """With more than `most` blocks queued in the source's stream (a source that delivered a burst, or whose
        clock runs faster than the sink's), read it down to one block; True when it did, which the callback
        counts as a device xrun. (pa_simple_flush flushes playback streams only.)"""
        queued = self._latency(self._record) * self.rate / self.block  # blocks
        if queued <= most:
            return False
        scratch, error = np.zeros(self.block, np.float32), ctypes.c_int(0)
        for _ in range(int(queued) - 1):  # each read returns at once: the blocks are there
            if self._lib.pa_simple_read(self._record, scratch.ctypes.data, scratch.nbytes, ctypes.byref(error)) < 0:
                break  # the loop's next read reports it
        return True

    def _latency(self, handle: int) -> float:
        """The server's latency of one of the streams now, seconds: how long a sample waits in it."""
        return self._lib.pa_simple_get_latency(handle, ctypes.byref(ctypes.c_int(0))) / 1e6

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        for handle in (self._record, self._playback):
            if handle:
                self._lib.pa_simple_free(handle)
        self._record = self._playback = 0
