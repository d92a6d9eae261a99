"""Live's chain compiled end to end (`Chain.process` with the compiled step) gives, to the bit, what its parts give
one after another (`Chain._parts`, what a model without the compiled step runs), on real speech cut anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.audio_io import read_audio, resample
from realtime.engine import Denoiser
from realtime.gate import VoiceGate
from realtime.live import Bridge, Chain


def pair(rate: int, hops_per_run: int, gate_db: float | None, dry: float) -> tuple[Chain, Chain]:
    chains = tuple(
        Chain(Denoiser(block_size=32, dry=dry), rate, hops_per_run, VoiceGate(gate_db) if gate_db else None)
        for _ in range(2)
    )
    assert chains[0].compiled is not None
    chains[1].compiled = None  # the parts, one after another
    return chains


@pytest.mark.parametrize(
    ("rate", "hops_per_run", "gate_db", "dry"),
    [(48000, 1, None, 0.0), (48000, 1, -50.0, 0.2), (44100, 2, -40.0, 0.0), (16000, 1, -50.0, 0.0)],
)
def test_the_compiled_chain_gives_what_its_parts_give(
    example_noisy: Path, rate: int, hops_per_run: int, gate_db: float | None, dry: float
) -> None:
    x, sr = read_audio(example_noisy, mono=True)
    x = resample(x, sr, rate).astype(np.float32)
    x[1000], x[5000:5003] = np.nan, np.inf  # replaced by silence, and counted
    compiled, parts = pair(rate, hops_per_run, gate_db, dry)
    cuts = np.sort(np.random.default_rng(rate).integers(0, len(x), 300))
    outs: tuple[list, list] = ([], [])
    for k, piece in enumerate(np.split(x, cuts)):
        for chain, out in zip((compiled, parts), outs):
            if k % 100 == 50:
                chain.engine.bypass = not chain.engine.bypass  # its crossfade, mid-stream
            out.append(chain.process(piece.copy()))
    a, b = (np.concatenate(out) for out in outs)
    assert len(a) == compiled.output_count(len(x)) and np.array_equal(a, b)
    assert np.abs(a).max() > 0.05  # speech came through
    assert compiled.engine.nonfinite_blocks == parts.engine.nonfinite_blocks > 0
    if gate_db is not None:
        assert compiled.gate.closed_samples == parts.gate.closed_samples > 0
        assert compiled.gate.is_open == parts.gate.is_open


def test_the_callback_with_the_engine_compiled_in_it_gives_what_its_python_path_gives(example_noisy: Path) -> None:
    """With the engine in the callback and the chain compiled, a callback is one native call
    (`_inline_callback`); the bridge's Python path (its `service` between the compiled input and output steps)
    must give the same output, recordings, counters and gate, to the bit, through odd-sized callbacks, a
    downmix, underruns (frames taken from the output ring) and the corrections that follow them."""
    x, sr = read_audio(example_noisy, mono=True)
    x = resample(x, sr, 48000).astype(np.float32)
    stereo = np.stack([x, 0.5 * x], axis=1)
    stereo[3000, 1] = np.nan  # counted, replaced by silence
    bridges = [
        Bridge(Chain(Denoiser(block_size=32, dry=0.1), 48000, 1, VoiceGate(-45.0)), 64, None, 1, True, True)
        for _ in range(2)
    ]
    assert bridges[0]._inline is not None
    bridges[1]._inline = None  # the Python path
    rng = np.random.default_rng(5)
    sizes = np.where(rng.random(2000) < 0.9, 64, rng.integers(1, 200, 2000))
    outs: tuple[list, list] = ([], [])
    start = 0
    for k, size in enumerate(sizes):
        block = stereo[start : start + size]
        start += size
        if len(block) == 0:
            break
        for bridge, out in zip(bridges, outs):
            if k % 97 == 40:
                bridge.out_ring.read_into(np.zeros((7, 1), np.float32))  # an underrun soon, then its correction
            played = np.zeros((len(block), 2), np.float32)
            bridge.callback(np.ascontiguousarray(block), played, len(block), None, None)
            out.append(played)
    native, python = (np.concatenate(out) for out in outs)
    assert np.array_equal(native, python) and np.abs(native).max() > 0.05
    assert np.array_equal(bridges[0].counts, bridges[1].counts), (bridges[0].counts, bridges[1].counts)
    assert bridges[0].underruns > 0 and bridges[0].skipped > 0 and bridges[0].odd_blocks > 0
    for ring in ("record_in", "record_out"):
        a, b = (getattr(bridge, ring) for bridge in bridges)
        assert np.array_equal(a.read(a.available()), b.read(b.available()), equal_nan=True)  # (the NaN kept)
    assert np.array_equal(bridges[0].sums, bridges[1].sums) and np.all(bridges[0].sums > 0)
    assert len(bridges[0].compute_s) == len(bridges[1].compute_s) > 0
    chains = [bridge.chain for bridge in bridges]
    assert chains[0].engine.nonfinite_blocks == chains[1].engine.nonfinite_blocks > 0
    assert chains[0].gate.closed_samples == chains[1].gate.closed_samples > 0
    assert chains[0].gate.is_open == chains[1].gate.is_open
