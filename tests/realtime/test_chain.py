"""Live's chain compiled end to end (`Chain.process` with the compiled step) gives, to the bit, what its parts give
one after another (`Chain._parts`, what a model without the compiled step runs), on real speech cut anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.audio_io import read_audio, resample
from realtime.engine import Denoiser
from realtime.gate import VoiceGate
from realtime.live import Chain


def pair(rate: int, hops_per_run: int, gate_db: float | None, dry: float) -> tuple[Chain, Chain]:
    chains = tuple(
        Chain(Denoiser(block_size=32, dry=dry), rate, hops_per_run, VoiceGate(gate_db) if gate_db else None)
        for _ in range(2)
    )
    assert chains[0]._compiled is not None
    chains[1]._compiled = None  # the parts, one after another
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
