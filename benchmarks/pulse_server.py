"""A private sound server for the virtual-mic tests and soak, and a client that plays into it and records from
it in lockstep (so that what it hears back can be timed against what it played).

The server is Debian's `pulseaudio` in user mode on its own socket, or PipeWire with wireplumber and
pipewire-pulse on their own runtime folder, with one null sink, `mic`, whose monitor stands in for a
microphone. A null sink renders in blocks of the lowest latency its clients ask for (2 s with
none), so the player keeps a low-latency stream on it from before live starts reading until the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks import processes
from realtime import pulse_stream as pa
from realtime.live import realtime_thread

READY_TIMEOUT_S = 20.0
MIC = "mic"  # the null sink whose monitor is the test's microphone
MIC_SOURCE = f"{MIC}.monitor"
PLAY_BLOCKS = 30  # the test client's playback buffer, blocks
LIVE_OUTPUT = "denoise live output"  # the name of live's stream into the virtual mic
# SCHED_FIFO priority of the server's processes where permitted, above live's threads and the test client's, as
# a desktop's sound server runs (rtkit): a server the normal scheduler preempts for them glitches both ways
SERVER_PRIORITY = 10


class PulseServer:
    """`pulseaudio` with a null sink `mic` at `rate`; `env` reaches it; stop() or use as a context manager."""

    kind, title = "pulseaudio", "PulseAudio"

    def __init__(self, rate: int = 48000) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"rtd-{self.kind}-{uuid.uuid4().hex[:6]}-"))
        self.processes: list[subprocess.Popen] = []  # started in order, stopped in reverse
        self._realtime: list[subprocess.Popen] = []  # those that move audio
        try:
            self.process = self._start(rate)  # the one serving the PulseAudio protocol: stopping it loses the server
            self._wait_ready()
            self._raise_priority()
            self._add_mic(rate)
        except BaseException:
            self.stop()
            raise
        # silence (zeros are 0.0 in float32) at low latency into `mic` while the server runs: it never renders ahead
        with open("/dev/zero", "rb") as zeros:
            self._silence = subprocess.Popen(
                ["pacat", "--playback", f"--device={MIC}", "--latency-msec=10", "--raw", "--format=float32le",
                 "--channels=1", f"--rate={rate}", "--client-name=rtd-silence"],
                env=self.env, stdin=zeros, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

    def _needs(self, *programs: str) -> None:
        absent = [p for p in (*programs, "pactl", "pacat") if shutil.which(p) is None]
        if absent:
            raise RuntimeError(f"{', '.join(absent)} not found: install Debian's {self.kind} and pulseaudio-utils")

    def _spawn(self, name: str, cmd: list[str], realtime: bool = False) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "ab") as log:
            process = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.processes.append(process)
        if realtime:
            self._realtime.append(process)
        return process

    def _raise_priority(self) -> None:
        """SERVER_PRIORITY for every thread of the server's audio processes, once they run (pulseaudio resets
        its main thread's scheduling as it starts, and that thread moves the clients' data); threads they
        start later inherit it. Left as they are where that is not permitted."""
        if shutil.which("chrt") is None:
            return
        for process in self._realtime:
            subprocess.run(["chrt", "--all-tasks", "--fifo", "--pid", str(SERVER_PRIORITY), str(process.pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # fmt: skip

    def _start(self, rate: int) -> subprocess.Popen:
        self._needs("pulseaudio")
        socket = self.folder / "native"
        (self.folder / "default.pa").write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={socket}\n"
            f"load-module module-null-sink sink_name={MIC} rate={rate} channels=1 channel_map=mono\n"
        )
        self.env = {
            **os.environ,
            "PULSE_SERVER": f"unix:{socket}",
            "PULSE_RUNTIME_PATH": str(self.folder / "run"),
            "HOME": str(self.folder),  # its cookie and state, not the user's
        }
        cmd = ["pulseaudio", "-n", "-F", str(self.folder / "default.pa"), "--daemonize=no", "--exit-idle-time=-1"]
        return self._spawn("pulseaudio", [*cmd, "--use-pid-file=no", "--log-target=stderr"], realtime=True)

    def _add_mic(self, rate: int) -> None:
        """The null sink `mic` (pulseaudio loads it from its script)."""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            exited = next((p for p in self.processes if p.poll() is not None), None)
            if exited is not None:
                raise RuntimeError(f"{exited.args[0]} exited with {exited.returncode}: {self.log()[-500:]}")
            if self.pactl("info").returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not start within {READY_TIMEOUT_S} s: {self.log()[-500:]}")

    def pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)

    def names(self, kind: str) -> set[str]:
        """Names of the server's sources or sinks now."""
        return {entry["name"] for entry in json.loads(self.pactl("--format=json", "list", kind).stdout or "[]")}

    def log(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.folder.glob("*.log")))

    def stop(self) -> None:
        """Terminate the server (idempotent)."""
        if getattr(self, "_silence", None) is not None:
            processes.stop(self._silence)
        for process in reversed(self.processes):
            processes.stop(process)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PulseServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PipeWireServer(PulseServer):
    """PipeWire with its session manager and its PulseAudio server (pipewire-pulse), on a private runtime
    folder and session bus, and the same null sink `mic`: what most desktops run today."""

    kind, title = "pipewire", "PipeWire (pipewire-pulse)"

    def _start(self, rate: int) -> subprocess.Popen:
        self._needs("pipewire", "wireplumber", "pipewire-pulse", "dbus-daemon")
        run = self.folder / "run"
        run.mkdir(mode=0o700)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PIPEWIRE_", "PULSE_"))},
            "XDG_RUNTIME_DIR": str(run),
            "HOME": str(self.folder),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={run / 'bus'}",
            "PULSE_SERVER": f"unix:{run / 'pulse' / 'native'}",
        }
        bus = ["dbus-daemon", "--session", f"--address={self.env['DBUS_SESSION_BUS_ADDRESS']}", "--nofork"]
        self._spawn("dbus", [*bus, "--nopidfile"])
        self._spawn("pipewire", ["pipewire"], realtime=True)
        self._wait_for(run / "pipewire-0")
        self._spawn("wireplumber", ["wireplumber"])
        return self._spawn("pipewire-pulse", ["pipewire-pulse"], realtime=True)

    def _wait_for(self, path: Path) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind}: no {path.name} after {READY_TIMEOUT_S} s: {self.log()[-500:]}")
            time.sleep(0.05)

    def _add_mic(self, rate: int) -> None:
        args = f"sink_name={MIC} rate={rate} channels=1 channel_map=mono"
        done = self.pactl("load-module", "module-null-sink", *args.split())
        if done.returncode != 0:
            raise RuntimeError(f"{self.kind}: cannot add the null sink {MIC}: {done.stderr.strip()}")


SERVERS: dict[str, type[PulseServer]] = {server.kind: server for server in (PulseServer, PipeWireServer)}


class PulseLoop:
    """Plays into the server's `mic` and records from `source` and from `mic`'s monitor in lockstep, a block
    each per step, on the server's clock. The offset between what it played and what it heard is the path's
    latency plus the loop's own buffers; between the two recordings, the path's latency plus the difference of
    the two record streams' own latencies (both shallow, so their readings are steady). Each record stream
    delivers its source gaplessly, so a change of the second offset is a change of the path itself."""

    def __init__(self, server: PulseServer, source: str, rate: int = 48000, block: int = 480) -> None:
        self.rate, self.block = rate, block
        address = server.env["PULSE_SERVER"]
        # a deep playback buffer: this test client runs without real-time priority, and an underrun of its own
        # would shift what live hears
        play = pa.buffer_attr(tlength=PLAY_BLOCKS * block, prebuf=block, minreq=block)
        self.play = pa.Connection(False, MIC, "loop", rate, play, client="rtd-test", server=address)
        fragment = pa.buffer_attr(fragsize=block)
        self.record = pa.Connection(True, source, "loop", rate, fragment, "rtd-test", address)
        self.monitor = pa.Connection(True, MIC_SOURCE, "loop monitor", rate, fragment, "rtd-test", address)
        pa.settle([self.record, self.monitor], self.play, block, rate)
        self.latencies: list[float] = []  # seconds: the loop's own buffering at each step, play + record
        self.offsets: list[float] = []  # seconds: the record stream's latency less the monitor's, at each step
        self.monitored = np.zeros(0, np.float32)  # what `mic` carried, recorded in lockstep with `source`
        self.started = 0.0  # time.monotonic() as `run` began

    def run(self, signal: np.ndarray, record_seconds: float) -> np.ndarray:
        """Play `signal` (then silence) and record for `record_seconds`; returns the recording of `source`
        (and keeps `mic`'s in `monitored`)."""
        steps = int(record_seconds * self.rate) // self.block
        padded = np.zeros(steps * self.block, np.float32)
        padded[: min(len(signal), len(padded))] = signal[: len(padded)]
        recording, self.monitored = np.zeros_like(padded), np.zeros_like(padded)
        self.started = time.monotonic()  # about when the first block was played (the steps keep the server's pace)
        with realtime_thread(1):  # a stall of this client's own would shift what live hears
            self._lockstep(padded, recording)
        return recording

    def _lockstep(self, padded: np.ndarray, recording: np.ndarray) -> None:
        for k in range(len(padded) // self.block):
            step = slice(k * self.block, (k + 1) * self.block)
            if not self.play.write(padded[step]):
                raise RuntimeError(f"playing: {self.play.reason()}")
            if not (self.record.read(recording[step]) and self.monitor.read(self.monitored[step])):
                raise RuntimeError(f"recording: {self.record.reason()} / {self.monitor.reason()}")
            heard = self.record.latency()
            self.latencies.append(self.play.latency() + heard)
            self.offsets.append(heard - self.monitor.latency())

    def close(self) -> None:
        for connection in (self.play, self.record, self.monitor):
            connection.close()


def start_virtual_mic(server: PulseServer, name: str, *args: object) -> subprocess.Popen:
    """`denoise live --virtual-mic NAME --input mic.monitor ARGS...` on `server` (stderr piped, as text)."""
    cmd = [sys.executable, "-m", "realtime.cli", "live", "--virtual-mic", name, "--input", MIC_SOURCE, *map(str, args)]
    return subprocess.Popen(cmd, env={**server.env, "PYTHONFAULTHANDLER": "1"}, stdin=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_streaming(server: PulseServer, live: subprocess.Popen, timeout_s: float) -> None:
    """Until live's stream into the virtual mic runs and has settled (it reads and drops its input for up to
    `pulse_stream.SETTLE_TIMEOUT_S` first). RuntimeError if live exits or `timeout_s` passes before it runs."""
    deadline = time.monotonic() + timeout_s
    while LIVE_OUTPUT not in server.pactl("list", "sink-inputs").stdout:
        if live.poll() is not None:
            raise RuntimeError(f"denoise live exited with {live.returncode} before streaming")
        if time.monotonic() > deadline:
            raise RuntimeError(f"live's stream did not start in {timeout_s:g} s")
        time.sleep(0.1)
    time.sleep(pa.SETTLE_TIMEOUT_S + 1)
