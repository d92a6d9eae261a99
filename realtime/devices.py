"""Audio devices through PortAudio (sounddevice): list them and resolve `--input`/`--output` choices.

sounddevice is imported lazily: PortAudio scans the devices (and connects to a running JACK server)
when it initialises, so importing it at command time sees the system as it is now.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from realtime.errors import AudioError

Kind = Literal["input", "output"]


JACK_CLIENT = "rtdenoise"  # live's JACK client: its ports are rtdenoise:in_1.. and rtdenoise:out_1..
_jack_name = ctypes.create_string_buffer(JACK_CLIENT.encode())  # PortAudio keeps the pointer


def name_jack_client() -> None:
    """Name PortAudio's JACK client (it is "PortAudio" otherwise), so that other JACK clients and session
    managers find live's ports under a stable name. Only before PortAudio initialises, that is, before
    sounddevice is first imported."""
    if "sounddevice" in sys.modules:
        return
    path = ctypes.util.find_library("portaudio")
    try:
        library = ctypes.CDLL(path or "libportaudio.so.2")  # the library sounddevice will open
        library.PaJack_SetClientName(_jack_name)
    except (OSError, AttributeError):  # no PortAudio (portaudio() reports it), or one built without JACK
        pass


def portaudio() -> ModuleType:
    """The sounddevice module; a missing PortAudio library is a user-facing error."""
    name_jack_client()
    try:
        import sounddevice
    except OSError as exc:
        raise AudioError(f"cannot load PortAudio ({exc}); install libportaudio2") from None
    return sounddevice


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    hostapi: str
    inputs: int
    outputs: int
    default_rate: int
    input_latency: float = 0.0  # PortAudio's default low input latency, seconds
    default_input: bool = False
    default_output: bool = False

    @property
    def label(self) -> str:
        index = f"[{self.index}] " if self.index >= 0 else ""  # a sound server's source or sink has none
        return f"{index}{self.name} ({self.hostapi})"

    @property
    def jack(self) -> bool:
        return "JACK" in self.hostapi

    def jack_period(self, rate: int) -> int:
        """JACK's buffer size, which PortAudio reports as the capture ports' latency (one period)."""
        return max(1, round(self.input_latency * rate))


def _device(sd: ModuleType, info: dict) -> Device:
    defaults = sd.default.device
    return Device(
        index=info["index"],
        name=info["name"],
        hostapi=sd.query_hostapis(info["hostapi"])["name"],
        inputs=info["max_input_channels"],
        outputs=info["max_output_channels"],
        default_rate=round(info["default_samplerate"]),
        input_latency=info["default_low_input_latency"],
        default_input=info["index"] == defaults[0],
        default_output=info["index"] == defaults[1],
    )


def list_devices() -> list[Device]:
    sd = portaudio()
    return [_device(sd, info) for info in sd.query_devices()]


def format_devices(devices: list[Device]) -> str:
    """A table of the devices; `>`/`<` mark the default input/output."""
    if not devices:
        return "no audio devices found"
    rows = [("", "index", "name", "host API", "in", "out", "default rate")]
    for d in devices:
        mark = (">" if d.default_input else " ") + ("<" if d.default_output else " ")
        rows.append((mark, str(d.index), d.name, d.hostapi, str(d.inputs), str(d.outputs), f"{d.default_rate} Hz"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + "\n(> default input, < default output)"


def resolve_device(spec: str | None, kind: Kind) -> Device:
    """The device named by an index or a name substring (sounddevice's matching), or the default one."""
    sd = portaudio()
    query: int | str | None = int(spec) if spec is not None and spec.strip().isdigit() else spec
    if query is None and sd.default.device[0 if kind == "input" else 1] < 0:
        raise AudioError(f"no default {kind} device; choose one with --{kind} (see `denoise devices`)")
    try:
        info = sd.query_devices(query, kind)
    except ValueError as exc:
        first = str(exc).splitlines()[0].rstrip(":")
        raise AudioError(f"{first} (see `denoise devices`)") from None
    except sd.PortAudioError:
        raise AudioError(f"no audio device with index {query} (see `denoise devices`)") from None
    return _device(sd, info)


def abandon_portaudio() -> None:
    """Skip sounddevice's exit-time Pa_Terminate after a stream died under us.

    PortAudio's JACK backend hangs in Pa_CloseStream and Pa_Terminate once the server has gone away, so the
    dead stream is left open and the OS reclaims it when the process exits.
    """
    import atexit

    sd = portaudio()
    handler = getattr(sd, "_exit_handler", None)
    if handler is not None:
        atexit.unregister(handler)
