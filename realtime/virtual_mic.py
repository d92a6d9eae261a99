"""A virtual microphone on the user's sound server, for `denoise live --virtual-mic`.

On PulseAudio, and on PipeWire through its PulseAudio server (pipewire-pulse), two modules make one: a null
sink that live plays the denoised stream into, and a source remapped from that sink's monitor. Call and
streaming programs list the source as a microphone (they hide monitors). `pactl` loads and unloads them, so
nothing but pulseaudio-utils is needed, and PortAudio reaches the sink through ALSA's `pulse` device.

The source carries the owner's process id (`rtdenoise.pid`): a second live with the same name is refused
while the owner runs, and the modules of an owner that was killed (SIGKILL leaves no chance to clean up)
are reclaimed by the next one. The server removes them itself when it quits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from realtime.errors import AudioError
from realtime.signals import DeferredInterrupts

PACTL_TIMEOUT_S = 10.0
OWNER = "rtdenoise.pid"  # source property: the process that owns the virtual mic
MONITOR_LATENCY_MS = 20  # the loopback that plays the virtual mic on a sink, for --output


def pactl(*args: str) -> str:
    """Run pactl; its failure (no pactl, no server, a refused command) is a one-line AudioError."""
    if shutil.which("pactl") is None:
        raise AudioError("--virtual-mic needs pactl (Debian: pulseaudio-utils) and a PulseAudio or PipeWire server")
    try:
        done = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=PACTL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AudioError(f"pactl {args[0]}: no answer from the sound server in {PACTL_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        reason = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()[-1]
        if "pa_context_connect" in reason:  # what pactl says when no server listens
            raise AudioError(
                "--virtual-mic needs a running PulseAudio or PipeWire server and none answered (start one: "
                f"`systemctl --user start pipewire-pulse` or `pulseaudio --start`); pactl {args[0]}: {reason}"
            )
        raise AudioError(f"pactl {args[0]}: {reason}")
    return done.stdout


def listing(kind: str) -> list[dict[str, Any]]:
    """`pactl list KIND` (sinks, sources, modules) as dicts."""
    try:
        return json.loads(pactl("--format=json", "list", kind))
    except json.JSONDecodeError:
        raise AudioError(f"pactl list {kind}: unreadable answer (pulseaudio-utils 16 or later is needed)") from None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def owner(source: dict[str, Any]) -> int | None:
    value = source.get("properties", {}).get(OWNER)
    return int(value) if value and value.isdigit() else None


def virtual_mics() -> list[tuple[str, int | None]]:
    """The sound server's virtual mics made by `denoise live`: (source name, owner pid); [] without a server."""
    try:
        return [(s["name"], owner(s)) for s in listing("sources") if OWNER in s.get("properties", {})]
    except AudioError:
        return []


def property_list(**props: str) -> str:
    """A module's sink_/source_properties argument: quoted, so that values may hold spaces."""
    return "'" + " ".join(f'{key}="{value}"' for key, value in props.items()) + "'"


@dataclass
class VirtualMic:
    """The modules of one virtual mic; `create()` and `remove()`, or use as a context manager."""

    name: str
    rate: int
    monitor: str | None = None  # a sink to also play the virtual mic on ("default": the server's)
    source: str | None = None  # live's input: checked here, since PipeWire would quietly record another one
    modules: list[int] = field(default_factory=list)

    @property
    def sink(self) -> str:
        """The null sink live plays into (internal: users pick the source)."""
        return f"{self.name}.feed"

    def create(self) -> None:
        """Load the modules, after reclaiming those of a killed owner; refused while another owner runs."""
        self._prepare()
        held = DeferredInterrupts()  # a Ctrl-C between loading a module and noting it would leak it
        held.start()
        try:
            self._load(
                "module-null-sink",
                f"sink_name={self.sink}",
                f"rate={self.rate}",
                "format=float32le",  # live's own samples, not a 16-bit copy
                "channels=1",
                "channel_map=mono",
                "sink_properties=" + property_list(**{"device.description": f"{self.name} (rtdenoise feed)"}),
            )
            self._load(
                "module-remap-source",
                f"master={self.sink}.monitor",
                f"source_name={self.name}",
                "channels=1",
                "channel_map=mono",
                "master_channel_map=mono",
                "source_properties="
                + property_list(**{"device.description": self.name, "device.class": "sound", OWNER: str(os.getpid())}),
            )
            if self.monitor:
                sink = "@DEFAULT_SINK@" if self.monitor == "default" else self.monitor
                self._load(
                    "module-loopback", f"source={self.name}", f"sink={sink}", f"latency_msec={MONITOR_LATENCY_MS}"
                )
        except AudioError:
            self.remove()
            raise
        finally:
            held.stop()

    def _load(self, module: str, *args: str) -> None:
        try:
            self.modules.append(int(pactl("load-module", module, *args).strip()))
        except AudioError as exc:
            raise AudioError(f"cannot create the virtual mic '{self.name}': {module}: {exc}") from None

    def _prepare(self) -> None:
        """Check live's source and the monitor sink; refuse a name in use; reclaim the modules of a killed owner."""
        sources = {s["name"]: s for s in listing("sources")}
        sinks = {s["name"]: s for s in listing("sinks")}
        if self.source is not None and self.source not in sources:
            raise AudioError(f"--input: the sound server has no source '{self.source}' (see pactl list short sources)")
        if self.monitor not in (None, "default") and self.monitor not in sinks:
            raise AudioError(f"--output: the sound server has no sink '{self.monitor}' (see pactl list short sinks)")
        if self.name not in sources and self.sink not in sinks:
            return
        pid = owner(sources[self.name]) if self.name in sources else None
        if self.name in sources and pid is None:
            raise AudioError(f"the sound server already has a source named '{self.name}': choose another name")
        if pid is not None and pid != os.getpid() and alive(pid):
            raise AudioError(f"the virtual mic '{self.name}' is in use by another denoise live (pid {pid})")
        stale = [entry["owner_module"] for entry in (sources.get(self.name), sinks.get(self.sink)) if entry]
        for module in stale:
            unload(int(module))

    def remove(self) -> None:
        """Unload what create() loaded, newest first; modules already gone (a server that quit) are skipped,
        and a server that does not answer is not waited for again."""
        while self.modules:
            if not unload(self.modules.pop()):
                self.modules.clear()

    def __enter__(self) -> VirtualMic:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def unload(module: int) -> bool:
    """Unload a module; False when the server did not answer (a module already gone counts as unloaded)."""
    try:
        pactl("unload-module", str(module))
    except AudioError as exc:
        return "no answer" not in str(exc)
    return True


def default_source() -> str:
    """The server's default source now: live's input, pinned before the virtual mic exists."""
    return pactl("get-default-source").strip()
