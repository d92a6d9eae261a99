"""`denoise bench virtual-mic`: a soak of `denoise live --virtual-mic` through a private PulseAudio server (or,
with `--server pipewire`, PipeWire through pipewire-pulse).

A client plays the noisy example, looped, into the server's `mic` and records the virtual mic and `mic`'s
monitor in lockstep for `--seconds`; every minute a 10 s window of the virtual mic's recording is aligned with
what `denoise file` makes of the monitor's, half a second at a time. A piece's lag, less the difference of the
two record streams' own latencies (shallow streams, whose readings are steady), is live's path from the mic to
the virtual mic: it must stay put (drift) and equal the latency live reports. The match shows that the stream
stays the model's output; live's own summary gives its xruns.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.alignment import measure_delay, snr_db
from benchmarks.pulse_server import SERVERS, PulseLoop, start_virtual_mic, wait_streaming
from benchmarks.report import header, header_markdown, write_report
from realtime.audio_io import read_audio, resample
from realtime.errors import EXIT_OK
from realtime.files import Settings, SignalProcessor
from realtime.live_cli import ENGINE_IN
from realtime.live_report import LATENCY_EVERY_S
from realtime.model_file import default_model_path, write_json_atomic

RATE = 48000
NAME = "rtd-soak"
WINDOW_S = 10.0
SEARCH_S = 0.5  # the delay is looked for this far around the reported one
PIECE_S, PIECE_SEARCH_S = 0.5, 0.01  # half-second pieces, each aligned this far around its window's delay
START_TIMEOUT_S = 60.0  # for live to start streaming
RESULTS = Path("benchmarks/results")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("virtual-mic", help="soak denoise live --virtual-mic", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600.0, help="how long to stream (default 600)")
    p.add_argument("--headroom", type=int, default=1, help="live's --headroom (default 1, live's own default)")
    p.add_argument("--engine-in", choices=ENGINE_IN, default="auto", help="live's --engine-in (default auto)")
    p.add_argument("--server", choices=list(SERVERS), default="pulseaudio", help="the sound server to start")
    p.add_argument("--out", type=Path, help="report (default: benchmarks/results/virtual-mic[-pipewire].md)")
    p.set_defaults(run=run)


def looped_example(seconds: float) -> np.ndarray:
    audio, _ = read_audio(default_model_path().parent / "example_noisy.flac", mono=True)
    audio = resample(audio, 16000, RATE)
    return np.tile(audio, int(np.ceil(seconds * RATE / len(audio))))[: int(seconds * RATE)]


def soak(seconds: float, headroom: int, kind: str = "pulseaudio", engine_in: str = "auto") -> dict[str, Any]:
    signal = looped_example(seconds)
    with tempfile.TemporaryDirectory() as scratch, SERVERS[kind](RATE) as server:
        summary_path = Path(scratch) / "live.json"
        live = start_virtual_mic(
            server, NAME, "--headroom", headroom, "--engine-in", engine_in, "--duration", f"{seconds + 15:g}",
            "--json", summary_path,
        )  # fmt: skip
        try:
            wait_streaming(server, live, START_TIMEOUT_S)
        except RuntimeError as exc:
            live.kill()
            raise RuntimeError(f"{exc}: {live.communicate()[1][-2000:]}") from None
        loop = PulseLoop(server, NAME, RATE)
        try:
            heard = loop.run(signal, seconds + 1.0)
        finally:
            loop.close()
        live.send_signal(2)  # Ctrl-C
        _, err = live.communicate(timeout=60)
        if live.returncode != 0:
            raise RuntimeError(f"denoise live exited with {live.returncode}: {err[-2000:]}")
        summary = json.loads(summary_path.read_text())
    # what the mic carried, as `denoise file` makes it: the virtual mic must carry the same, `lag` frames later
    reference = SignalProcessor(RATE, 1, RATE, Settings()).push(loop.monitored[:, None], last=True)[:, 0]
    offsets = np.asarray(loop.offsets) * 1000  # ms, one per block: the virtual mic's record stream less the mic's
    expected = (summary["latency_ms"]["total"] + float(np.median(offsets))) / 1000 * RATE
    windows = []
    for start_s in np.arange(0.0, seconds - WINDOW_S + 1e-9, 60.0):
        a, n = int(start_s * RATE), int(WINDOW_S * RATE)
        low = max(0, a + int(expected) - int(SEARCH_S * RATE))
        lag = low + measure_delay(heard[low:], reference[a : a + n], 2 * int(SEARCH_S * RATE)) - a
        at = loop.started + start_s + WINDOW_S / 2  # the window's middle, on live's clock (time.monotonic())
        windows.append({"start_s": float(start_s), "reported_ms": reported_at(summary, at),
                        **window_path(heard, reference, offsets, loop.block, a, n, lag)})  # fmt: skip
    return {
        "server": server.title,
        "seconds": seconds,
        "headroom": headroom,
        "engine_in_requested": engine_in,
        "engine_in": summary["engine_in"],  # where live ran it (auto decides)
        "windows": windows,
        "drift_ms": windows[-1]["path_ms"] - windows[0]["path_ms"],
        "expected_lag_ms": expected / RATE * 1000,
        "live": {
            k: summary[k]
            for k in ("latency_ms", "xruns", "corrections_frames", "clock_slip_frames", "rtf", "blocks", "block_size")
        },
    }


def reported_at(summary: dict[str, Any], clock: float) -> float:
    """The total latency live reported nearest `clock` (time.monotonic() seconds), from its summary's history."""
    history = summary["latency_history"]
    nearest = int(np.argmin(np.abs(np.asarray(history["monotonic_s"]) - clock)))
    return float(history["total_ms"][nearest])


def window_path(
    heard: np.ndarray, reference: np.ndarray, offsets: np.ndarray, block: int, start: int, length: int, lag: int
) -> dict[str, float]:
    """Live's path in the window `start`, `length` of `reference`, which `heard` carries about `lag` frames later:
    each half-second piece aligned on its own (a slip of live's clock follower shifts the pieces after it by a
    frame, so one lag for a whole window that slips is smeared over them), its lag less the record streams'
    offset where it was heard. The medians over the pieces: lag, offset and path in ms, and how closely the
    aligned pieces match (dB SNR: whether what was heard is the denoised signal)."""
    piece, search = int(PIECE_S * RATE), int(PIECE_SEARCH_S * RATE)
    lags, offs, scores = [], [], []
    for a in range(start, start + length - piece + 1, piece):
        low = max(0, a + lag - search)
        at = low + measure_delay(heard[low:], reference[a : a + piece], 2 * search)
        lags.append((at - a) / RATE * 1000)
        offs.append(float(np.median(offsets[at // block : (at + piece) // block])))
        scores.append(snr_db(reference[a : a + piece], heard[at : at + piece]))
    paths = np.subtract(lags, offs)
    return {"lag_ms": float(np.median(lags)), "offset_ms": float(np.median(offs)), "path_ms": float(np.median(paths)),
            "path_spread_ms": float(np.ptp(paths)), "piece_snr_db": float(np.median(scores))}  # fmt: skip


def markdown(head: dict[str, Any], result: dict[str, Any]) -> str:
    live, lat = result["live"], result["live"]["latency_ms"]
    paths = [w["path_ms"] for w in result["windows"]]
    lines = header_markdown("Virtual mic soak", head)
    requested = result.get("engine_in_requested", result["engine_in"])  # (reports from before auto)
    lines += [
        f"`denoise live --virtual-mic --headroom {result['headroom']} --engine-in {requested}` for "
        f"{result['seconds']:.0f} s from a private "
        f"{result['server']} server's null sink (the microphone) to a client recording the virtual mic and the "
        "microphone's monitor in lockstep (`benchmarks/virtual_mic.py`). Every minute, a 10 s window of the virtual "
        "mic's recording is aligned with `denoise file`'s output for the monitor's, half a second at a time: each "
        "piece's lag, less the difference of the two record streams' own latencies where it was heard (the "
        "server's readings: both streams are shallow), is live's path from the microphone to the virtual mic; a "
        "window gives the medians of its pieces, and the spread of their paths. Where the two sinks' clocks "
        "differ, the lag and the difference move together; where live slips a frame to follow them, the pieces "
        "after it move by that frame.",
        "",
        f"**Live's path drifted {result['drift_ms']:+.3f} ms over the run** (range {min(paths):.3f} .. "
        f"{max(paths):.3f} ms); live's xruns {live['xruns']['total']} (device "
        f"{live['xruns']['device']}, underruns {live['xruns']['underruns']}, overruns {live['xruns']['overruns']}, "
        f"lost output {live['xruns']['lost_output']}); frames slipped to follow the clocks "
        f"{live['clock_slip_frames']:+d} ({1e6 * live['clock_slip_frames'] / (result['seconds'] * RATE):+.0f} ppm); "
        f"RTF {live['rtf']:.3f}.",
        "",
        f"Latency live reports at the end: {lat['total']:.2f} ms = algorithmic {lat['algorithmic']:.2f} + buffering "
        f"{lat['buffering']:.2f} + device {lat['device']:.2f} (input {lat['device_parts']['input']:.2f}, output "
        f"{lat['device_parts']['output']:.2f}, the medians of the server's readings over the last 5 s).",
        "",
        "Reported then: live's total at the window's middle, from the history of its summary (every "
        f"{LATENCY_EVERY_S:g} s); the server's readings in it move.",
        "",
        "| window start, s | lag, ms | record streams' offset, ms | live's path, ms | reported then, ms "
        "| path minus reported then, ms | path's spread over the pieces, ms "
        "| match with `denoise file` (median piece), dB SNR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in result["windows"]:
        lines.append(
            f"| {w['start_s']:.0f} | {w['lag_ms']:.3f} | {w['offset_ms']:.3f} | {w['path_ms']:.3f} "
            f"| {w['reported_ms']:.3f} | {w['path_ms'] - w['reported_ms']:+.3f} | {w['path_spread_ms']:.3f} "
            f"| {w['piece_snr_db']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    head = header("live: onnxruntime intra-op 1")
    out = args.out or RESULTS / ("virtual-mic.md" if args.server == "pulseaudio" else f"virtual-mic-{args.server}.md")
    result = soak(args.seconds, args.headroom, args.server, args.engine_in)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out.with_suffix(".json"), {"header": head, **result})
    write_report(out, markdown(head, result))
    print(f"drift {result['drift_ms']:+.3f} ms, xruns {result['live']['xruns']['total']}: {out}", file=sys.stderr)
    return EXIT_OK
