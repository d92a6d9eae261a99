"""The voice gate of `denoise live`, on real speech: it closes in pauses after its hold, opens at once at an
onset, moves only along its ramps, does the same whatever the blocks, and sits after the engine in the chain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_failure, run_cli

from realtime.audio_io import read_audio, resample
from realtime.engine import Denoiser
from realtime.gate import VoiceGate
from realtime.live import Bridge, Chain
from realtime.live_report import Meter, format_summary, summary
from realtime.resample import Resampler

RATE = 16000
THRESHOLD_DB = -50.0
WINDOW, ATTACK, RELEASE = 160, 32, 320  # the gate's level window and ramps in samples: 10, 2 and 20 ms
WORD = slice(4800, 15000)  # 0.30..0.94 s of the example: speech throughout, loud from its first sample on
PAUSE = (38294, 46322)  # the example's longest pause: its 10 ms level stays below -50 dBFS for these 0.5 s


def ms(milliseconds: float) -> int:
    return round(milliseconds * RATE / 1000)


@pytest.fixture(scope="module")
def clean(example_clean: Path) -> np.ndarray:
    return read_audio(example_clean, mono=True)[0]


def with_floor(x: np.ndarray) -> np.ndarray:
    """`x` plus noise at -80 dBFS: no sample is zero, so out / in is the gain."""
    return (x + 1e-4 * np.random.default_rng(0).standard_normal(len(x))).astype(np.float32)


@pytest.fixture(scope="module")
def words(clean: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The word twice, after 0.5 s and 1 s of near silence; (signal, [(onset, end) of each word])."""
    word, gap = clean[WORD], np.zeros(ms(500), np.float32)
    x = np.concatenate([gap, word, gap, gap, word, gap])
    spans = [(ms(500), ms(500) + len(word)), (ms(1500) + len(word), ms(1500) + 2 * len(word))]
    return with_floor(x), spans


def gated(x: np.ndarray, **settings: float) -> tuple[np.ndarray, VoiceGate]:
    """`x` through a fresh gate in one block (threshold -50 dBFS unless `settings` say otherwise)."""
    gate = VoiceGate(**{"threshold_db": THRESHOLD_DB, **settings})
    return gate.process(x.copy()), gate


def gain(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    return out.astype(np.float64) / x


@pytest.mark.parametrize("hold_ms", [100, 300])
def test_the_gate_closes_after_the_hold_once_speech_stops(words: tuple, hold_ms: float) -> None:
    x, spans = words
    g = gain(x, gated(x, hold_ms=hold_ms)[0])
    assert np.all(g[: spans[0][0]] == 0)  # it starts closed
    for (onset, end), (next_onset, _) in zip(spans, [*spans[1:], (len(x), 0)]):
        # the level falls below the threshold within a window of the word's end
        assert np.all(g[onset + ATTACK : end + ms(hold_ms)] == 1)
        assert np.all(g[end + WINDOW + ms(hold_ms) + RELEASE : next_onset] == 0)


def test_the_gate_closes_in_a_pause_between_words_only_when_the_pause_outlasts_the_hold(clean: np.ndarray) -> None:
    start, end = PAUSE
    short, _ = gated(clean, hold_ms=100)
    assert not np.any(short[start + ms(100) + RELEASE : end])
    assert np.any(short[end:])  # and open again after it
    long, _ = gated(clean, hold_ms=600)  # longer than the pause
    assert np.array_equal(long[start:end], clean[start:end])


@pytest.mark.parametrize("block", [32, 100, 441])
def test_the_gate_opens_within_the_block_of_a_speech_onset(words: tuple, block: int) -> None:
    x, spans = words
    gate, out = VoiceGate(THRESHOLD_DB, hold_ms=300), x.copy()
    states = []
    for start in range(0, len(x), block):
        gate.process(out[start : start + block])
        states.append(gate.is_open)
    g = gain(x, out)
    for onset, _ in spans:
        assert not states[onset // block - 1]  # closed before: the pause outlasted the hold
        assert states[onset // block]  # open by the end of the block the word starts in
        assert np.all(g[onset : onset + ATTACK] > 0) and np.all(g[onset + ATTACK : onset + 2 * ATTACK] == 1)


def test_the_gain_only_moves_along_the_ramps(words: tuple, clean: np.ndarray) -> None:
    x, _ = words
    for signal, hold_ms in ((x, 300), (x, 0), (with_floor(clean), 100)):
        g = gain(signal, gated(signal, hold_ms=hold_ms)[0])
        assert g.min() == 0 and g.max() == 1  # it opened and closed
        steps = np.diff(g)
        assert steps.max() <= 1 / ATTACK + 1e-6  # up over the attack at the fastest
        assert steps.min() >= -1 / RELEASE - 1e-6  # down over the release at the fastest
        assert np.count_nonzero((steps > 1e-6) | (steps < -1e-6)) > RELEASE  # it did ramp, not only sit at 0 or 1


def test_the_output_does_not_depend_on_the_blocks(words: tuple, clean: np.ndarray) -> None:
    x = np.concatenate([words[0], clean])
    whole, reference = gated(x, hold_ms=100)
    rng = np.random.default_rng(1)
    sizes = rng.choice([0, 1, 2, 31, 32, 33, 160, 441, 1000], 2 * len(x) // 200)
    cuts = np.cumsum(sizes)
    gate, out = VoiceGate(THRESHOLD_DB, hold_ms=100), x.copy()
    for piece in np.split(out, cuts[cuts < len(x)]):
        gate.process(piece)
    assert np.array_equal(out, whole)
    assert gate.closed_samples == reference.closed_samples > 0 and gate.is_open == reference.is_open


def test_an_open_gate_passes_the_signal_bit_for_bit(words: tuple) -> None:
    x, _ = words
    out, gate = gated(x, threshold_db=-100)  # the -80 dBFS noise floor keeps it open
    assert gate.is_open and gate.closed_samples < WINDOW  # it starts closed, with a silent history
    assert np.array_equal(out[WINDOW + ATTACK :], x[WINDOW + ATTACK :])


def test_the_chain_gates_the_engine_output_before_resampling(clean: np.ndarray) -> None:
    device_rate = 48000
    x = resample(clean, RATE, device_rate)
    ungated = Chain(Denoiser(block_size=32), device_rate).process(x)
    chain = Chain(Denoiser(block_size=32), device_rate, gate=VoiceGate(THRESHOLD_DB, hold_ms=100))
    out = chain.process(x)

    down = Resampler(device_rate, RATE).process(x)
    denoised = Denoiser(block_size=32).feed(down[: len(down) // 32 * 32])
    up = Resampler(RATE, device_rate)
    assert np.array_equal(ungated, up.process(denoised))  # no gate: the engine's output untouched
    expected = Resampler(RATE, device_rate).process(VoiceGate(THRESHOLD_DB, hold_ms=100).process(denoised.copy()))
    assert np.array_equal(out, expected)
    assert chain.gate.closed_s > 0.2 and not np.array_equal(out, ungated)
    with pytest.raises(ValueError, match="model's rate"):
        Chain(Denoiser(block_size=32), device_rate, gate=VoiceGate(THRESHOLD_DB, sample_rate=device_rate))


def test_the_status_line_and_the_summary_show_the_gate(clean: np.ndarray) -> None:
    def report(gate: VoiceGate | None) -> tuple[str, dict]:
        bridge = Bridge(Chain(Denoiser(block_size=32), RATE, gate=gate), 256, 0)
        meter = Meter(bridge, lambda: (0.0, 0.0))
        for start in range(0, len(clean) // 256 * 256, 256):
            block = clean[start : start + 256, None]
            bridge.callback(block, np.zeros((256, 1), np.float32), 256, None, None)
            bridge.service()
        return meter.line(bypass=False), summary(bridge, meter, len(clean) / RATE, {})

    line, s = report(VoiceGate(THRESHOLD_DB, hold_ms=100))
    assert "gate open" in line  # the example ends in speech
    assert s["gate"]["threshold_db"] == THRESHOLD_DB and s["gate"]["hold_ms"] == 100
    assert 0.2 < s["gate"]["closed_s"] < len(clean) / RATE
    assert "gate closed" in format_summary(s)
    line, s = report(None)
    assert "gate" not in line and s["gate"] is None and "gate" not in format_summary(s)


@pytest.mark.parametrize(("option", "value"), [("--gate-db", "abc"), ("--gate-db", "5"), ("--gate-hold-ms", "-5")])
def test_live_rejects_bad_gate_values_cleanly(option: str, value: str) -> None:
    stderr = assert_clean_failure(run_cli("live", option, value))
    assert option in stderr and repr(value) in stderr and len(stderr.strip().splitlines()) == 1
