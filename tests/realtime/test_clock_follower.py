"""The virtual mic's clock following (`pulse_stream.ClockFollower`), driven by a simulated stream: the source's
backlog at each check is its server's bursts, plus what a clock difference piled up, less what was slipped."""

from __future__ import annotations

import numpy as np

from realtime import pulse_stream
from realtime.pulse_stream import CHECK_BLOCKS, ClockFollower

BLOCK = 480  # 10 ms at 48 kHz, as live's virtual mic
CHECKS_PER_S = 48000 / (BLOCK * CHECK_BLOCKS)


def follow(seconds: float, ppm: float = 0.0, step_at_s: float | None = None, step_blocks: float = 0.0) -> list[int]:
    """Frames slipped per block at each check, for a source `ppm` faster than the sink whose server bursts
    up to 2.5 blocks (PipeWire's quantum at this block, as measured) and, from `step_at_s`, holds `step_blocks`
    more of its own latency that no read drains."""
    rng = np.random.default_rng(0)
    clocks = ClockFollower(round(pulse_stream.SLIP_WINDOW_S * CHECKS_PER_S))
    piled, decisions = 0.0, []
    for k in range(int(seconds * CHECKS_PER_S)):
        t = k / CHECKS_PER_S
        step = step_blocks if step_at_s is not None and t >= step_at_s else 0.0
        backlog = max(0.0, piled + rng.uniform(-0.5, 2.5)) + step
        decisions.append(clocks.check(backlog, playback=2.0))
        piled += ppm * 1e-6 * CHECK_BLOCKS - decisions[-1] * CHECK_BLOCKS / BLOCK  # blocks gained, then slipped
    return decisions


def test_on_one_clock_nothing_slips_whatever_the_bursts() -> None:
    assert not any(follow(600))


def test_a_faster_source_is_followed_and_the_backlog_stays_bounded() -> None:
    decisions = follow(1200, ppm=300)
    slipped = CHECK_BLOCKS * sum(decisions)
    gained = 300e-6 * 1200 * 48000  # frames the source ran ahead
    margin = (pulse_stream.SLIP_MARGIN_BLOCKS + 1) * BLOCK
    assert 0 < gained - slipped < margin and min(decisions) == 0


def test_the_servers_own_latency_rising_is_taken_as_the_new_floor_after_a_window() -> None:
    decisions = follow(120, step_at_s=30, step_blocks=3.0)
    slipped = CHECK_BLOCKS * sum(decisions)
    assert 0 < slipped <= CHECK_BLOCKS * (round(pulse_stream.SLIP_WINDOW_S * CHECKS_PER_S) + 1)
    assert not any(decisions[-int(60 * CHECKS_PER_S) :])  # and nothing more once the new floor is taken


def test_a_starving_sink_with_no_extra_input_takes_a_frame_fewer() -> None:
    clocks = ClockFollower(3)
    assert [clocks.check(1.0, playback=2.0) for _ in range(3)] == [0, 0, 0]
    assert clocks.check(1.0, playback=0.5) == -1
    assert clocks.check(2.0, playback=0.5) == 0  # late input, not a slow source: no slip


def test_a_stretched_block_keeps_its_ends_and_its_shape() -> None:
    ramp = np.arange(481, dtype=np.float32)[:, None]
    squeezed = pulse_stream.stretch(ramp, 480)
    assert squeezed.shape == (480, 1) and squeezed[0, 0] == 0 and squeezed[-1, 0] == 480
    assert np.all(np.diff(squeezed[:, 0]) > 1.0)  # a ramp stays a ramp, a little steeper
