"""Numerical safety of the streaming engine (issue 6): a block that overflows the model resets its state and
the next block recovers, and the state cannot drift on long streams. NaN/Inf input and clipping are covered
in test_engine.py; the hour-long file through `denoise file` is in benchmarks/load.py."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from model.config import TasNetConfig
from realtime.engine import Denoiser


@pytest.mark.parametrize("block", [32, 160, 512])  # the one-hop and the 8-hop graph, the main graph
def test_a_block_that_overflows_the_model_resets_the_state_and_the_next_block_recovers(model_path, block) -> None:
    engine, fresh = Denoiser(model_path, block_size=block), Denoiser(model_path, block_size=block)
    rng = np.random.default_rng(0)
    for _ in range(20):  # some history first, so that a state left behind would show
        block_in = (0.1 * rng.standard_normal(block)).astype(np.float32)
        engine.feed(block_in)
    out = engine.feed(np.full(block, 3e38, np.float32))  # finite input, but the model's arithmetic overflows
    assert np.isfinite(out).all() and not out.any()
    assert all(np.isfinite(s).all() and not s.any() for s in engine.runner.state_arrays())
    for _ in range(50):  # from the next block on: exactly a new stream
        block_in = (0.1 * rng.standard_normal(block)).astype(np.float32)
        assert np.array_equal(engine.feed(block_in), fresh.feed(block_in))


def test_long_stream_ends_exactly_like_a_fresh_run_on_its_last_seconds(model_path, example_noisy) -> None:
    """The output depends only on the model's receptive field (about 2 s), so after any length of stream the
    state holds no drift: 2 minutes in random blocks end as a fresh engine run on the last 4 seconds does."""
    noisy, rate = sf.read(str(example_noisy), dtype="float32")
    rng = np.random.default_rng(0)
    n = 120 * rate
    gains = np.repeat(rng.uniform(0.2, 2.0, n // rate), rate).astype(np.float32)  # level changes every second
    x = np.resize(noisy, n) * gains
    engine = Denoiser(model_path)
    outs, pos = [], 0
    while pos < n:
        size = int(rng.integers(1, 4097))
        outs.append(engine.feed(x[pos : pos + size]))
        pos += size
    streamed = np.concatenate([*outs, engine.flush()])[engine.latency :]

    config = TasNetConfig.from_dict(engine.info.document["model_config"])
    warm_up = (config.receptive_field + 1) * config.hop  # frames of context, plus the encoder window
    start = n - 4 * rate  # a whole number of hops from the stream's start, as the model frames it
    assert start % config.hop == 0 and 4 * rate - warm_up >= rate
    fresh = Denoiser(model_path)
    offline = np.concatenate([fresh.feed(x[start:]), fresh.flush()])[fresh.latency :]
    assert np.max(np.abs(streamed[start + warm_up :] - offline[warm_up:])) <= 1e-5
