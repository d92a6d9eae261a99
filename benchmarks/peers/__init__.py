"""The systems the benchmarks compare, in report order: references, classical, peers, ours."""

from __future__ import annotations

from benchmarks.peers.base import Options, Stream, System
from benchmarks.peers.deepfilternet import DeepFilterNet3
from benchmarks.peers.dtln import Dtln
from benchmarks.peers.gtcrn import Gtcrn
from benchmarks.peers.ours import OursGraphs, OursStreaming, OursTorch
from benchmarks.peers.reference import NoisyInput, OracleIRM
from benchmarks.peers.rnnoise import RNNoise
from benchmarks.peers.spectral_gating import SpectralGating
from benchmarks.peers.webrtc import WebRtcNS

SYSTEMS: tuple[type[System], ...] = (
    NoisyInput,
    OracleIRM,
    SpectralGating,
    WebRtcNS,
    RNNoise,
    DeepFilterNet3,
    Dtln,
    Gtcrn,
    OursTorch,
    OursGraphs,
    OursStreaming,
)
KEYS = tuple(s.key for s in SYSTEMS)


def select(keys: list[str] | None, options: Options, streaming_only: bool = False) -> list[System]:
    """The named systems (default: all that run by default), in report order."""
    return [
        s(options)
        for s in SYSTEMS
        if (s.key in keys if keys is not None else s.by_default) and (s.streaming or not streaming_only)
    ]


def triage(systems: list[System]) -> tuple[list[System], dict[str, str]]:
    """(systems that load here, {label: why not} for the rest): absent packages or files, failed loads."""
    ready, skipped = [], {}
    for system in systems:
        reason = system.missing()
        if reason is None:
            try:
                system.load()
            except Exception as exc:  # a peer's own error types; the reason is reported, the run goes on
                first = str(exc).strip().splitlines()
                reason = f"failed to load: {first[0] if first else type(exc).__name__}"
        if reason is None:
            ready.append(system)
        else:
            skipped[system.label] = reason
    return ready, skipped


__all__ = ["KEYS", "SYSTEMS", "Options", "Stream", "System", "select", "triage"]
