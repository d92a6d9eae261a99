"""A real audio server for live tests and benchmarks: JACK's dummy backend, and a loop through a client.

`JackServer` runs `jackd -n NAME -d dummy` under a unique name (clients find it via JACK_DEFAULT_SERVER,
so parallel runs never meet). `Loop` plays a signal into a client's input port and records its output
port with two JACK clients, one for each direction, so that within a JACK cycle the graph runs
player -> client under test -> recorder and nothing else delays the signal. Both sides index audio by
JACK frame time from the start of playback, so the recording's delay is exactly the client's own.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import jack
import numpy as np

from benchmarks import processes
from realtime.devices import JACK_CLIENT

READY_TIMEOUT_S = 10.0
LATE_CLIENT = re.compile(r"JackEngine::XRun: client = (.+) was not finished")
LOG_POLL_S = 0.02  # how often the server's log is read for the times of its xruns
GIL_SWITCH_S = 2e-4  # while a Loop runs, its JACK callbacks must not wait long for this process's GIL


def _xrun_events(lines: Iterable[tuple[float, str]]) -> list[tuple[float, list[str]]]:
    """The xruns in jackd's log lines (each with a time): (time of its first line, late clients or ["driver"])."""
    events: list[tuple[float, list[str]]] = []
    in_event = False
    for t, line in lines:
        late = LATE_CLIENT.search(line)
        if late:
            if not in_event:
                events.append((t, []))
            events[-1][1].append(late.group(1))
        elif "JackTimedDriver::Process XRun" in line:
            events.append((t, ["driver"]))
        in_event = bool(late)
    return events


class JackServer:
    """`jackd` with the dummy backend at `rate` Hz and `period` frames; stop() or use as a context manager.

    `sync`: the server runs synchronously (`jackd -S`): it waits for its clients within each cycle, so playback
    is one period later than capture instead of two, at the price of an xrun whenever a client is late."""

    def __init__(self, rate: int = 48000, period: int = 256, name: str | None = None, sync: bool = False) -> None:
        if shutil.which("jackd") is None:
            raise RuntimeError("jackd not found: install Debian's jackd2")
        self.name = name or f"rtd-{uuid.uuid4().hex[:8]}"
        self.rate, self.period = rate, period
        self.env = {**os.environ, "JACK_DEFAULT_SERVER": self.name}
        self._log = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log", delete=False)
        cmd = ["jackd", "-n", self.name, *(["-S"] if sync else []), "-d", "dummy", "-r", str(rate), "-p", str(period)]
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._lines: list[tuple[float, str]] = []  # the log's lines, each with the time.monotonic() it was read
        self._reading = threading.Event()
        self._reader = threading.Thread(target=self._read_log, name="jackd-log", daemon=True)
        self._reader.start()
        self._wait_ready()

    def _read_log(self) -> None:
        """Time-stamp the log's lines as they appear (within LOG_POLL_S plus jackd's own buffering)."""
        with open(self._log.name, errors="replace") as log:
            partial = ""
            while True:
                stopping = self._reading.is_set()
                partial += log.read()
                *lines, partial = partial.split("\n")
                now = time.monotonic()
                self._lines += [(now, line) for line in lines]
                if stopping:
                    return
                time.sleep(LOG_POLL_S)

    def _wait_ready(self) -> None:
        jack.set_error_function(lambda message: None)  # libjack reports every failed probe on stderr
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.process.returncode}: {self.log()[-500:]}")
            try:
                jack.Client("rtd-probe", no_start_server=True, servername=self.name).close()
                return
            except jack.JackOpenError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jackd did not start within {READY_TIMEOUT_S} s: {self.log()[-500:]}")

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def xrun_events(self) -> list[list[str]]:
        """The server's xruns so far, each as the clients that had not finished their cycle in time, in graph
        order (the first is the one that held the others up), or ["driver"] when its own timer woke up late."""
        return [clients for _, clients in _xrun_events((0.0, line) for line in self.log().splitlines())]

    def timed_xrun_events(self) -> list[tuple[float, list[str]]]:
        """`xrun_events` with the time.monotonic() each was read from the log (a little after it happened;
        the last LOG_POLL_S may be missing)."""
        return _xrun_events(list(self._lines))

    def client(self, name: str) -> jack.Client:
        return jack.Client(name, no_start_server=True, servername=self.name)

    def stop(self) -> None:
        """Terminate the server (idempotent)."""
        processes.stop(self.process)
        self._reading.set()
        self._reader.join()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> JackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Loop:
    """Play `signal` (mono float32) into `target`'s first input port, record its first output port.

    `play()` starts playback at the next cycle; `recording` holds `record_frames` frames from then on
    (a ring when `repeat`, which plays the signal over and over).
    """

    def __init__(self, server: JackServer, signal: np.ndarray, record_frames: int, repeat: bool = False) -> None:
        self._player = server.client("rtd-play")
        self._recorder = server.client("rtd-rec")
        period = self._player.blocksize
        self.signal = np.asarray(signal, np.float32)
        self.repeat = repeat
        # The callbacks copy one slice each (little work on JACK's real-time threads): the signal is padded
        # so that no period wraps around, and the recording holds whole periods.
        tail = self.signal[:period] if repeat else np.zeros(period, np.float32)
        self._padded = np.concatenate([self.signal, np.resize(tail, period)])
        self.recording = np.zeros(-(-record_frames // period) * period, np.float32)
        self.recorded = 0  # frames recorded since playback started
        self._start: int | None = None
        self._armed = False
        self._out = self._player.outports.register("out")
        self._in = self._recorder.inports.register("in")
        self._player.set_process_callback(self._play)
        self._recorder.set_process_callback(self._record)
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        gc.collect()
        gc.freeze()  # a full collection would stall the real-time callbacks for many milliseconds
        self._player.activate()
        self._recorder.activate()

    def _play(self, frames: int) -> None:
        out = self._out.get_array()
        if self._armed and self._start is None:
            self._start = self._player.last_frame_time
        pos = -1 if self._start is None else self._player.last_frame_time - self._start
        if self.repeat:
            pos %= len(self.signal)
        if 0 <= pos < len(self.signal):
            out[:] = self._padded[pos : pos + frames]
        else:
            out.fill(0.0)

    def _record(self, frames: int) -> None:
        if self._start is None:
            return
        pos = self._recorder.last_frame_time - self._start
        if pos < 0 or (not self.repeat and pos >= len(self.recording)):
            return
        at = pos % len(self.recording)
        self.recording[at : at + frames] = self._in.get_array()
        self.recorded = pos + frames

    def connect(self, target: str = JACK_CLIENT, timeout: float = 30.0) -> None:
        """Wait until `target` has started (its ports are connected), then rewire it to this loop."""
        client = self._player
        deadline = time.monotonic() + timeout
        while True:
            ins = client.get_ports(f"{target}:", is_audio=True, is_input=True)
            outs = client.get_ports(f"{target}:", is_audio=True, is_output=True)
            if ins and outs and client.get_all_connections(outs[0]):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no running JACK client {target!r} after {timeout} s")
            time.sleep(0.02)
        for port in (*ins, *outs):
            for other in client.get_all_connections(port):
                client.disconnect(port, other) if port.is_output else client.disconnect(other, port)
        client.connect(self._out, ins[0])
        client.connect(outs[0], self._in)

    def play(self) -> None:
        self._armed = True

    def wait_recorded(self, frames: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.recorded < frames:
            if time.monotonic() > deadline:
                raise RuntimeError(f"recorded {self.recorded} of {frames} frames in {timeout} s")
            time.sleep(0.05)

    def segment(self, start: int, length: int) -> np.ndarray:
        """Frames [start, start + length) since playback started (they must still be in the ring)."""
        if not self.recorded - len(self.recording) <= start <= start + length <= self.recorded:
            raise ValueError(f"frames {start}..{start + length} are not in the recording")
        return self.recording[np.arange(start, start + length) % len(self.recording)]

    def close(self) -> None:
        for client in (self._player, self._recorder):
            client.deactivate()
            client.close()
        sys.setswitchinterval(self._switch)
        gc.unfreeze()
