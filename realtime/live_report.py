"""What `denoise live` tells the user: the status line (~10 times a second) and the summary at the end.

Everything is read from the bridge's running totals by the main thread, so measuring never touches the
audio callback or the worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from realtime.gate import VoiceGate
from realtime.live import Bridge

HISTOGRAM_EDGES_MS = np.geomspace(0.01, 100.0, 41)  # compute time per batch, 10 us .. 100 ms
LATENCY_EVERY_S = 5.0  # how often the status line's latency is kept for the summary (a sound server's moves)


def db(power: float) -> float:
    return 10 * math.log10(power) if power > 0 else -math.inf


def latency_ms(bridge: Bridge, device_latency_s: tuple[float, float]) -> dict[str, Any]:
    """The latency split: algorithmic (model), buffering (rings, resamplers, engine), device (PortAudio)."""
    engine = bridge.chain.engine
    parts = {
        "ring": bridge.prefill / bridge.chain.rate * 1000,
        "resampling": bridge.chain.resampling_delay * 1000,
        "engine": engine.buffering_latency / engine.sample_rate * 1000,
    }
    algorithmic = engine.algorithmic_latency / engine.sample_rate * 1000
    buffering = sum(parts.values())
    device = (device_latency_s[0] + device_latency_s[1]) * 1000
    return {
        "algorithmic": algorithmic,
        "buffering": buffering,
        "device": device,
        "through": algorithmic + buffering,
        "total": algorithmic + buffering + device,
        "buffering_parts": parts,
        "device_parts": {"input": device_latency_s[0] * 1000, "output": device_latency_s[1] * 1000},
    }


def compute_stats(seconds: np.ndarray, audio_s: float) -> dict[str, float]:
    ms = seconds * 1000 if len(seconds) else np.zeros(1)
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "rtf": float(seconds.sum() / audio_s) if audio_s else 0.0,
    }


class Meter:
    """Status lines from the changes in the bridge's totals since the previous line."""

    def __init__(self, bridge: Bridge, device_latency_s: Callable[[], tuple[float, float]]) -> None:
        self.bridge = bridge
        self.device_latency_s = device_latency_s
        self._last = self._first = self._totals()
        self.latency_history: list[tuple[float, float]] = []  # (time.monotonic(), total ms) every LATENCY_EVERY_S

    @property
    def cpu_percent(self) -> float:
        """The process's CPU time since the start as a share of one core, as the status line shows it per update."""
        now = self._totals()
        wall = now[0] - self._first[0]
        return 100 * (now[1] - self._first[1]) / wall if wall else 0.0

    def cpu_split(self) -> dict[str, float]:
        """`cpu_percent` by thread: the audio callback's (with the audio server's and PortAudio's work on
        it), the engine worker's (once it stopped) and the rest (the status line, recorder, start-up)."""
        total, wall = self.cpu_percent, time.perf_counter() - self._first[0]
        b = self.bridge
        callback, engine = (100 * s / wall if wall else 0.0 for s in (b.callback_cpu_s, b.worker_cpu_s))
        return {"callback": callback, "engine": engine, "rest": total - callback - engine}

    @property
    def latency(self) -> dict[str, Any]:
        """The latency split now: a device's latency may be measured as it runs (`device_latency_s()`)."""
        return latency_ms(self.bridge, self.device_latency_s())

    def _totals(self) -> tuple[float, float, float, float, int, int]:
        b = self.bridge
        return (
            time.perf_counter(),
            time.process_time(),
            b.energy_in,
            b.energy_out,
            b.frames_processed,
            len(b.compute_s),
        )

    def line(self, bypass: bool) -> str:
        now = self._totals()
        wall, cpu, e_in, e_out, frames, _ = (a - b for a, b in zip(now, self._last))
        recent = np.array(self.bridge.compute_s[self._last[5] : now[5]]) * 1000
        self._last = now
        p50, p99 = np.percentile(recent, (50, 99)) if len(recent) else (0.0, 0.0)
        lat, gate = self.latency, self.bridge.chain.gate
        clock = time.monotonic()
        if not self.latency_history or clock - self.latency_history[-1][0] >= LATENCY_EVERY_S:
            self.latency_history.append((clock, lat["total"]))
        level_in, level_out = (db(e_in / frames), db(e_out / frames)) if frames else (-math.inf, -math.inf)
        return (
            f"in {level_in:6.1f} dB  out {level_out:6.1f} dB  removed {db(e_in / e_out) if e_out else 0.0:5.1f} dB"
            f"  latency {lat['through']:.1f} ms (+{lat['device']:.1f} device)"
            f"  compute {p50:.2f}/{p99:.2f} ms  cpu {100 * cpu / wall if wall else 0.0:3.0f}%"
            f"  xruns {self.bridge.xruns}"
            + ("" if gate is None else f"  gate {'open' if gate.is_open else 'closed'}")
            + ("  BYPASS" if bypass else "")
        )


def summary(bridge: Bridge, meter: Meter, seconds: float, extra: dict[str, Any]) -> dict[str, Any]:
    """The run's numbers for the exit summary and `--json` (call after the worker stopped)."""
    times = np.frombuffer(bridge.compute_s, dtype=np.float64)
    stats = compute_stats(times, bridge.frames_processed / bridge.chain.rate)
    counts, _ = np.histogram(times * 1000, HISTOGRAM_EDGES_MS)
    return {
        **extra,
        "duration_s": seconds,
        "blocks": bridge.callbacks,
        "odd_blocks": bridge.odd_blocks,
        "block_size": bridge.block,
        "sample_rate": bridge.chain.rate,
        "xruns": {
            "total": bridge.xruns,
            "device": bridge.device_xruns,
            "underruns": bridge.underruns,
            "overruns": bridge.overruns,
            "lost_output": bridge.lost_output,
            # the callback's under- and overruns (a callback with both counts once), time.monotonic() seconds:
            # the system's monotonic clock, which a benchmark's own readings on this machine share
            "own_times_s": bridge.xrun_times[: bridge.timed_xruns].tolist(),
        },
        "corrections_frames": {
            "underrun": bridge.underrun_frames,
            "overrun": bridge.overrun_frames,
            "dropped_input": bridge.dropped,
            "inserted_silence": bridge.inserted,
            "skipped_output": bridge.skipped,
        },
        "latency_ms": meter.latency,
        # the reported total as the run went, at time.monotonic() seconds (as `own_times_s`): under a sound
        # server its device part is the server's readings, which move
        "latency_history": {
            "monotonic_s": [t for t, _ in meter.latency_history],
            "total_ms": [ms for _, ms in meter.latency_history],
        },
        "latency_frames": bridge.latency_frames(),
        "compute_ms": {k: stats[k] for k in ("p50", "p99", "max")},
        "rtf": stats["rtf"],
        "cpu_percent": meter.cpu_percent,
        "cpu_percent_threads": meter.cpu_split(),
        "noise_removed_db": db(bridge.energy_in / bridge.energy_out) if bridge.energy_in and bridge.energy_out else 0.0,
        "realtime_priority": bridge.realtime,
        "engine_in": "callback" if bridge.in_callback else "worker",
        "record_dropped_frames": bridge.record_dropped,
        "gate": gate_summary(bridge.chain.gate),
        "compute_histogram": {"edges_ms": HISTOGRAM_EDGES_MS.tolist(), "counts": counts.tolist()},
    }


def gate_summary(gate: VoiceGate | None) -> dict[str, float] | None:
    """The summary's `gate`: its settings and the seconds it was closed; None without a gate."""
    if gate is None:
        return None
    return {"threshold_db": gate.threshold_db, "hold_ms": gate.hold_ms, "closed_s": gate.closed_s}


def format_summary(s: dict[str, Any]) -> str:
    lat, comp, x = s["latency_ms"], s["compute_ms"], s["xruns"]
    return "\n".join(
        [
            f"ran {s['duration_s']:.1f} s: {s['blocks']} blocks of {s['block_size']} frames at {s['sample_rate']} Hz",
            f"xruns {x['total']} (device {x['device']}, underruns {x['underruns']}, overruns {x['overruns']})",
            f"latency {lat['total']:.2f} ms = algorithmic {lat['algorithmic']:.2f} + buffering {lat['buffering']:.2f}"
            f" + device {lat['device']:.2f}",
            f"compute per block p50 {comp['p50']:.3f} ms, p99 {comp['p99']:.3f} ms, max {comp['max']:.3f} ms;"
            f" RTF {s['rtf']:.3f}; realtime priority {'yes' if s['realtime_priority'] else 'no'}",
            f"noise removed {s['noise_removed_db']:.1f} dB; cpu {s['cpu_percent']:.1f} % of a core (audio callback"
            f"{' with the engine' if s['engine_in'] == 'callback' else ''}"
            f" {(c := s['cpu_percent_threads'])['callback']:.1f}, engine thread {c['engine']:.1f},"
            f" the rest {c['rest']:.1f})",
        ]
        + (
            [f"gate closed {g['closed_s']:.1f} s (threshold {g['threshold_db']:g} dB, hold {g['hold_ms']:g} ms)"]
            if (g := s["gate"])
            else []
        )
        + (
            [f"warning: {s['odd_blocks']} callbacks were not {s['block_size']} frames; pass the device's --block-size"]
            if s["odd_blocks"]
            else []
        )
    )
