"""`denoise live` and `denoise devices`: the real-time core on its own, then end to end through a real JACK server.

The JACK tests start `jackd -d dummy` (Debian's jackd2) under a unique name and run `denoise live` as a
subprocess, as a user would; a player and a recorder client (PyPI JACK-Client) stand in for the microphone
and the loudspeaker. The dummy backend runs in real time, so these tests take wall-clock time.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import assert_clean_failure, run_cli
from helpers import finish

from benchmarks.alignment import measure_delay, snr_db
from benchmarks.jack_loop import JackServer, Loop
from realtime.audio_io import read_audio, resample
from realtime.engine import Denoiser
from realtime.files import Settings, SignalProcessor
from realtime.live import Bridge, Chain, min_prefill
from realtime.live_report import LATENCY_EVERY_S
from realtime.live_session import fits_in_callback
from realtime.model_file import load_model_info
from realtime.resample import Resampler

pytestmark = pytest.mark.live

RATE, PERIOD = 48000, 256


# -- the resampler -------------------------------------------------------------------------------------------
def test_resampler_delay_is_exact_whatever_the_chunking() -> None:
    down, up = Resampler(RATE, 16000), Resampler(16000, RATE)
    x = np.zeros(4800, np.float32)
    x[1000] = 1.0
    rng = np.random.default_rng(0)
    cuts = np.cumsum(rng.integers(1, 200, 100))
    y = np.concatenate([up.process(down.process(c)) for c in np.split(x, cuts[cuts < len(x)])])
    assert len(y) == len(x)
    assert np.argmax(y) == 1000 + round((down.delay + up.delay) * RATE)
    once = Resampler(RATE, 16000).process(x)
    again = Resampler(RATE, 16000)
    assert np.array_equal(once, np.concatenate([again.process(x[:777]), again.process(x[777:])]))


@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 16000), (16000, 48000), (32000, 16000), (44100, 16000)])
def test_resampler_equals_the_textbook_polyphase_filter_whatever_the_chunking(rate_in: int, rate_out: int) -> None:
    """Output n is sum_j h[j] * x_up[n*down - j] (x_up: the input with up-1 zeros after each sample, h: the
    prototype low-pass, read back from the resampler's branches), over random chunkings with empty chunks, for
    decimation, interpolation and a ratio of neither kind."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(6000).astype(np.float32)
    cuts = np.cumsum(rng.integers(0, 300, 60))
    resampler = Resampler(rate_in, rate_out)
    y = np.concatenate([resampler.process(c) for c in np.split(x, cuts[cuts < len(x)])])
    h = resampler.branches[:, ::-1].T.reshape(-1).astype(np.float64)  # h[p + k*up] = branch p, tap k
    stuffed = np.zeros(len(x) * resampler.up)
    stuffed[:: resampler.up] = x
    expected = np.convolve(stuffed, h)[: len(stuffed) : resampler.down]
    assert len(y) == len(expected) == resampler.output_count(len(x))
    assert np.max(np.abs(y - expected)) <= 1e-4


@pytest.mark.parametrize("rate", [48000, 44100])
def test_resampler_passes_speech_band_and_rejects_aliases(rate: int) -> None:
    t = np.arange(rate) / rate

    def gain_db(freq: float) -> float:
        y = Resampler(rate, 16000).process(np.sin(2 * np.pi * freq * t).astype(np.float32))[200:]
        return 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / 0.5)

    assert abs(gain_db(1000)) < 0.1
    assert gain_db(12000) < -55  # would fold to 4 kHz


# -- the bridge between the callback and the worker, driven by hand -------------------------------------------
def bypass_bridge(block: int, headroom: int = 0, hops_per_run: int = 1) -> Bridge:
    """A bridge whose engine passes its (delayed) input through, so that an impulse shows the delay."""
    engine = Denoiser(block_size=32)
    engine.bypass = True
    return Bridge(Chain(engine, RATE, hops_per_run), block, 0, headroom)


def run_blocks(bridge: Bridge, x: np.ndarray, serve: np.ndarray | None = None) -> np.ndarray:
    """Callbacks of `bridge.block` frames over `x`, each followed by a worker pass where `serve` says so."""
    b = bridge.block
    out = np.zeros((len(x) // b * b, 2), np.float32)
    for k in range(len(x) // b):
        bridge.callback(x[k * b : (k + 1) * b, None], out[k * b : (k + 1) * b], b, None, None)
        if serve is None or serve[k]:
            bridge.service()
    return out[:, 0]


def impulse(n: int, at: int) -> np.ndarray:
    x = np.zeros(n, np.float32)
    x[at] = 0.5
    return x


@pytest.mark.parametrize(("block", "hops_per_run"), [(32, 1), (64, 1), (100, 1), (256, 1), (64, 3)])
def test_worker_one_block_behind_never_underruns_and_delay_is_as_reported(block: int, hops_per_run: int) -> None:
    bridge = bypass_bridge(block, hops_per_run=hops_per_run)
    y = run_blocks(bridge, impulse(RATE, 30000))
    assert bridge.xruns == 0
    assert np.argmax(np.abs(y)) - 30000 == bridge.latency_frames()


@pytest.mark.parametrize("block", [64, 100, 256])
def test_the_callback_wakes_the_worker_only_for_a_whole_run_and_the_output_is_the_same(block: int) -> None:
    """Served only when the callback woke it, the worker makes the same output as one served after every
    callback, with no xrun; at 64-frame blocks (48 kHz into 32-sample hops) two callbacks in three wake it."""
    x = (np.random.default_rng(1).standard_normal(RATE // 2) * 0.1).astype(np.float32)
    every = Bridge(Chain(Denoiser(block_size=32), RATE), block, 0)
    gated = Bridge(Chain(Denoiser(block_size=32), RATE), block, 0)
    out = np.zeros((len(x) // block * block, 1), np.float32)
    wakes = 0
    for k in range(len(x) // block):
        gated.callback(x[k * block : (k + 1) * block, None], out[k * block : (k + 1) * block], block, None, None)
        if not gated.woken():
            continue
        wakes += 1
        gated.service()
    assert gated.xruns == 0
    np.testing.assert_array_equal(out[:, 0], run_blocks(every, x))
    callbacks = len(x) // block
    run_frames = 32 * RATE // 16000
    assert wakes == pytest.approx(callbacks * min(block / run_frames, 1), abs=2)


@pytest.mark.parametrize(("block", "hops_per_run"), [(32, 1), (64, 1), (100, 1), (256, 1), (64, 3)])
def test_the_engine_in_the_callback_plays_the_workers_output_a_smaller_prefill_sooner(
    block: int, hops_per_run: int
) -> None:
    """Run inside the callback, with no worker pass, the engine never underruns and plays the worker's output
    sample for sample, only earlier, by the prefill it saves (the delay as reported), which is its smallest."""
    x = (np.random.default_rng(2).standard_normal(RATE // 2) * 0.1).astype(np.float32)
    x[RATE // 4] = 0.9
    inline = Bridge(Chain(Denoiser(block_size=32), RATE, hops_per_run), block, 0, in_callback=True)
    worker = Bridge(Chain(Denoiser(block_size=32), RATE, hops_per_run), block, 0)
    y = run_blocks(inline, x, serve=np.zeros(len(x) // block, bool))
    assert inline.xruns == 0 and not inline.woken()  # nothing for a worker: no wake-ups
    saved = worker.prefill - inline.prefill
    assert inline.prefill == min_prefill(inline.chain, block, in_callback=True) and saved > 0
    np.testing.assert_array_equal(y[: len(y) - saved], run_blocks(worker, x)[saved:])
    assert worker.latency_frames() - inline.latency_frames() == saved
    silent = Bridge(Chain(Denoiser(block_size=32), RATE, hops_per_run), block, 0, in_callback=True)
    silent.out_ring.read_into(np.zeros((1, 1), np.float32))  # one frame less than its prefill
    run_blocks(silent, np.zeros(RATE // 10, np.float32), serve=np.zeros(RATE // 10 // block, bool))
    assert silent.underruns > 0


def test_auto_runs_the_engine_in_the_callback_only_where_its_worst_callback_fits_a_quarter_period() -> None:
    """At 48 kHz a 64-frame callback (1.33 ms) brings 21.3 samples at 16 kHz, so it completes at most one
    32-sample run: the engine fits while a warm hop takes at most a quarter period. 256 frames (85.3 samples)
    complete up to 3 runs; with runs of 3 hops, 64 frames complete one run of 3."""
    single = Chain(Denoiser(block_size=32), RATE)
    assert fits_in_callback(single, 64, 0.333e-3) and not fits_in_callback(single, 64, 0.334e-3)
    assert fits_in_callback(single, 256, 0.444e-3) and not fits_in_callback(single, 256, 0.445e-3)
    triple = Chain(Denoiser(block_size=32), RATE, hops_per_run=3)
    assert fits_in_callback(triple, 64, 0.111e-3) and not fits_in_callback(triple, 64, 0.112e-3)
    assert not fits_in_callback(single, 64, 0.2e-3, share=0.1)


def test_prefill_is_the_smallest_that_holds() -> None:
    bridge = bypass_bridge(64)
    assert bridge.prefill == min_prefill(bridge.chain, 64)
    bridge.out_ring.read_into(np.zeros((1, 1), np.float32))  # one frame less than the prefill
    run_blocks(bridge, np.zeros(RATE // 10, np.float32))
    assert bridge.underruns > 0


@pytest.mark.parametrize(  # 500 blocks of 256 overflow the 2 s input ring
    ("stall_blocks", "hops_per_run"), [(3, 1), (40, 1), (500, 1), (40, 2)]
)
def test_latency_returns_exactly_after_a_stalled_worker(stall_blocks: int, hops_per_run: int) -> None:
    block = 256
    bridge = bypass_bridge(block, headroom=1, hops_per_run=hops_per_run)
    n = (60 + stall_blocks + 200) * block
    serve = np.ones(n // block, bool)
    serve[50 : 50 + stall_blocks] = False
    at = n - 100 * block
    y = run_blocks(bridge, impulse(n, at), serve)
    assert bridge.underruns > 0
    times = bridge.xrun_times[: bridge.timed_xruns]  # one per callback with an under- or overrun, in order
    assert max(bridge.underruns, bridge.overruns) <= len(times) <= bridge.underruns + bridge.overruns
    assert np.all(np.diff(times) >= 0) and times[0] > 0
    assert (bridge.overruns > 0) == (stall_blocks * block > bridge.in_ring.capacity)
    assert np.argmax(np.abs(y)) - at == bridge.latency_frames()


def test_audio_callback_allocates_no_audio_buffers() -> None:
    block = 1024
    bridge = Bridge(Chain(Denoiser(block_size=32), RATE), block, None, 1, record=True)
    indata = np.random.default_rng(0).standard_normal((block, 2)).astype(np.float32)
    outdata = np.zeros((block, 2), np.float32)
    tracemalloc.start()
    try:
        for _ in range(20):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            bridge.callback(indata, outdata, block, None, None)
            assert tracemalloc.get_traced_memory()[1] - before < block * 4  # less than one mono block
            bridge.service()
    finally:
        tracemalloc.stop()
    assert bridge.xruns == 0


def test_live_rejects_a_bad_block_size_cleanly() -> None:
    assert "--block-size" in assert_clean_failure(run_cli("live", "--block-size", "0"))


# -- through a real JACK server ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jack_server() -> JackServer:
    with JackServer(RATE, PERIOD) as server:
        yield server


@pytest.fixture(scope="module")
def noisy48(example_noisy: Path) -> np.ndarray:
    audio, _ = read_audio(example_noisy, mono=True)
    return resample(audio, 16000, RATE)


def shifted_output(noisy: np.ndarray, shift: int) -> np.ndarray:
    """The file engine's output for `noisy` delayed by `shift` samples, the delay removed again."""
    padded = np.concatenate([np.zeros(shift, np.float32), noisy])
    return SignalProcessor(RATE, 1, RATE, Settings()).push(padded[:, None], last=True)[shift:, 0]


@pytest.fixture(scope="module")
def file_engine_output(noisy48: np.ndarray) -> np.ndarray:
    """What `denoise file` makes of the same signal (delay removed)."""
    return SignalProcessor(RATE, 1, RATE, Settings()).push(noisy48[:, None], last=True)[:, 0]


def start_live(
    server: JackServer, *args: str | Path, stdin: int = subprocess.DEVNULL, sigint: signal.Handlers = signal.SIG_DFL
) -> subprocess.Popen:
    """`denoise live` on the server's device, input channel 1, with generous headroom: shared CI machines
    stall even real-time threads for milliseconds now and then (5 ms and more on the 2-core VM where this
    was written, where JACK's own C example client misses 2.7 ms deadlines under load)."""
    cmd = [sys.executable, "-m", "realtime.cli", "live", "--input", "system", "--output", "system", "--channel", "1"]
    cmd += ["--headroom", "4"]
    env = {**server.env, "PYTHONFAULTHANDLER": "1"}  # so that finish() can show where a stuck process hangs
    return subprocess.Popen(
        [*cmd, *map(str, args)],
        env=env,
        stdin=stdin,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),  # what the process starts with, whatever ours is
    )


def test_devices_lists_the_jack_device(jack_server: JackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    result = run_cli("devices")
    assert result.code == 0, result.stderr
    assert "system" in result.stdout and "JACK" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--input", "no-such-device"), "no-such-device"),
        (("--output", "42"), "42"),
        (("--sample-rate", "44100"), "cannot open"),  # the JACK server runs at 48 kHz
        (("--channel", "3"), "--channel"),  # the JACK device has 2 inputs
    ],
)
def test_live_device_problems_fail_cleanly(
    jack_server: JackServer, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], expected: str
) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    stderr = assert_clean_failure(run_cli("live", "--duration", "1", *args))
    assert expected in stderr and len(stderr.strip().splitlines()) == 1


def played_and_recorded(server: JackServer, audio: np.ndarray, frames: int) -> Loop:
    """The test's client, after it has played `audio` to live and recorded `frames` of live's output."""
    loop = Loop(server, audio, frames)
    try:
        loop.connect()
        loop.play()
        loop.wait_recorded(frames)
    finally:
        loop.close()
    return loop


@pytest.mark.parametrize("engine_in", ["worker", "callback", "auto"])
def test_live_output_matches_the_file_engine_at_the_reported_latency(
    jack_server: JackServer, noisy48: np.ndarray, file_engine_output: np.ndarray, tmp_path: Path, engine_in: str
) -> None:
    summary_path = tmp_path / "live.json"
    earlier_xruns = len(jack_server.xrun_events())
    # Live runs until the test has played and recorded everything, however long connecting takes on a busy
    # machine (a fixed --duration once ended it before the last second of the signal had reached it).
    started = time.monotonic()
    proc = start_live(jack_server, "--json", summary_path, "--record", tmp_path, "--engine-in", engine_in)
    loop = played_and_recorded(jack_server, noisy48, len(noisy48) + RATE // 5)
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 0, err
    summary = json.loads(summary_path.read_text())
    assert summary["block_size"] == PERIOD and summary["engine_in_requested"] == engine_in
    if engine_in == "auto":  # the default: the callback where the warm hop time before the stream fits
        fits = fits_in_callback(Chain(Denoiser(block_size=32), RATE), PERIOD, summary["warm_hop_ms"] / 1e3)
        engine_in = "callback" if fits else "worker"
    assert summary["engine_in"] == engine_in
    assert 0 < summary["cpu_percent"] < 100 * (os.cpu_count() or 1)  # the whole run's, as the status line shows it
    # Its split by thread: the audio threads did work (the worker's none when the callback runs the engine),
    # and they are part of the process's (the callback's reading is at most CPU_EVERY callbacks old, so it can
    # only fall short)
    split = summary["cpu_percent_threads"]
    assert split["callback"] > 0 and (split["engine"] > 0) == (engine_in == "worker") and split["rest"] >= 0, split
    # No xruns of live's own buffering, and every device xrun it saw is one the server logged. A cycle that a
    # client finished late (live's "rtdenoise" included) is the machine's scheduling, not behaviour: on a busy
    # VM the server's own timer thread and JACK's C example client are late too. `denoise bench latency
    # --soak` counts them; here each such cycle may shift what the test records.
    xruns, culprits = summary["xruns"], [e[0] for e in jack_server.xrun_events()[earlier_xruns:]]
    assert xruns["underruns"] == xruns["overruns"] == xruns["lost_output"] == 0, xruns
    assert xruns["device"] <= len(culprits), (xruns, culprits)

    ref = file_engine_output
    delay = measure_delay(loop.recording, ref, RATE // 5)
    assert abs(delay - summary["latency_frames"]) <= PERIOD, (delay, summary["latency_frames"])
    # the latency it reported as it ran: JACK's port latencies stay put, so every reading is the final one
    history = summary["latency_history"]
    assert history["total_ms"] and all(ms == summary["latency_ms"]["total"] for ms in history["total_ms"]), history
    assert started < history["monotonic_s"][0] and np.all(np.diff(history["monotonic_s"]) >= LATENCY_EVERY_S), history
    recorded_in, recorded_out = (sf.read(p, dtype="float32")[0] for p in summary["recorded"])
    assert len(recorded_in) == len(recorded_out) == summary["blocks"] * PERIOD
    # What live played is what the file engine makes of what live was given, both as live recorded them (a
    # cycle the test's player or recorder missed changes what live got or what the test heard, not this). The
    # model frames its input in hops, so its output changes a little with where the hops fall: the match must
    # be as close as the file engine's to itself at the worst of a quarter, half and three quarters of a hop.
    hop = load_model_info(None).hop * RATE // 16000
    floor = min(snr_db(ref, shifted_output(noisy48, shift)) for shift in (hop // 4, hop // 2, 3 * hop // 4))
    given = SignalProcessor(RATE, 1, RATE, Settings()).push(recorded_in[:, None], last=True)[:, 0]
    assert measure_delay(recorded_out, given[: len(given) - RATE // 5], RATE // 5) == delay
    match = snr_db(given[: len(given) - delay], recorded_out[delay:])
    assert match > floor - 3, (match, floor)

    start = measure_delay(recorded_in, noisy48, len(recorded_in) - len(noisy48))
    # Sample for sample what the device captured and played, but for periods a late test client missed: a cycle
    # the server logged late can spoil the period it was in and one on either side (seen once in CI: 3 for 1).
    # The player's first period is left out: the asynchronous server does not wait for a client, and in a run
    # here (one of two failures in nine) live was given zeros in its place, the rest in step, no cycle late.
    glitches = 3 * len(culprits)
    assert differing_periods(recorded_in[start + PERIOD : start + len(noisy48)], noisy48[PERIOD:]) <= glitches
    played = recorded_out[start + delay : start + delay + len(ref)]
    assert differing_periods(played, loop.recording[delay : delay + len(ref)]) <= glitches


def differing_periods(a: np.ndarray, b: np.ndarray, resync: int = RATE // 10) -> int:
    """Periods of `a` that are not, sample for sample, the same stretch of `b` at the running alignment. After
    one that differs the alignment moves to where that period is found within `resync` frames, if anywhere: a
    late cycle can make the server's frame time jump, and the clients that play and record by it skip what
    live's callbacks, which count cycles, never saw."""
    offset, differing = 0, 0
    for start in range(0, len(a) // PERIOD * PERIOD, PERIOD):
        period = a[start : start + PERIOD]
        at = start + offset
        if 0 <= at and at + PERIOD <= len(b) and np.array_equal(period, b[at : at + PERIOD]):
            continue
        differing += 1
        low, high = max(0, at - resync), min(len(b), at + resync + PERIOD)
        if high - low < PERIOD:
            continue
        found = np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(b[low:high], PERIOD) == period, axis=1))
        if len(found):
            offset = low + int(found[np.argmin(np.abs(low + found - at))]) - start
    return differing


def test_keys_switch_to_bypass_and_quit(jack_server: JackServer, noisy48: np.ndarray, tmp_path: Path) -> None:
    """In a terminal, `b` swaps the denoised output for the input (resampled, delayed) and `q` stops."""
    summary_path = tmp_path / "live.json"
    controller, terminal = pty.openpty()
    proc = start_live(jack_server, "--json", summary_path, "--record", tmp_path, stdin=terminal)
    os.close(terminal)
    loop = Loop(jack_server, noisy48, 5 * RATE)
    try:
        loop.connect()
        loop.play()
        loop.wait_recorded(2 * RATE)
        os.write(controller, b"b")
        loop.wait_recorded(4 * RATE)
        os.write(controller, b"q")
        code, err = finish(proc)
    finally:
        loop.close()
        os.close(controller)
    assert code == 0, err
    summary = json.loads(summary_path.read_text())
    recorded_in, recorded_out = (sf.read(p, dtype="float32")[0] for p in summary["recorded"])
    # The bypassed output: the input through the live chain's resamplers and delays, with no model.
    engine_delay = np.zeros(round(summary["latency_ms"]["algorithmic"] * 16), np.float32)
    at_16k = np.concatenate([engine_delay, Resampler(RATE, 16000).process(recorded_in)])
    prefill = round(summary["latency_ms"]["buffering_parts"]["ring"] * RATE / 1000)
    bypassed = np.concatenate([np.zeros(prefill, np.float32), Resampler(16000, RATE).process(at_16k)])
    start = measure_delay(recorded_in, noisy48[:RATE], len(recorded_in) - RATE)
    error = np.abs(recorded_out - bypassed[: len(recorded_out)])
    assert np.median(error[start + RATE // 2 : start + 3 * RATE // 2]) > 1e-3  # denoising
    assert np.median(error[start + 13 * RATE // 5 : start + 19 * RATE // 5]) < 1e-5  # bypassed


# SIG_IGN: started as a background command of a shell without job control (a script's `denoise live &`),
# where SIGINT arrives ignored; a SIGINT sent to it must still stop it. Two SIGTERMs at once: what `timeout`
# sends (to the process, then to its group); the second must not cut the stop short.
@pytest.mark.parametrize(
    ("sigint", "stops"),
    [(signal.SIG_DFL, [signal.SIGINT]), (signal.SIG_IGN, [signal.SIGINT]), (signal.SIG_DFL, [signal.SIGTERM] * 2)],
    ids=["default", "inherited-ignored", "sigterm-twice"],
)
def test_ctrl_c_stops_cleanly_with_complete_recordings(
    jack_server: JackServer, noisy48: np.ndarray, tmp_path: Path, sigint: signal.Handlers, stops: list[int]
) -> None:
    summary_path = tmp_path / "live.json"
    proc = start_live(jack_server, "--json", summary_path, "--record", tmp_path / "rec", sigint=sigint)
    played_and_recorded(jack_server, noisy48, RATE)
    for stop in stops:
        proc.send_signal(stop)
    code, err = finish(proc)
    assert code == 0, err
    summary = json.loads(summary_path.read_text())
    assert summary["duration_s"] > 1
    for path in summary["recorded"]:
        info = sf.info(path)
        assert info.samplerate == RATE and info.frames == summary["blocks"] * PERIOD
    assert not list((tmp_path / "rec").glob("*.part"))


def test_latency_is_back_to_normal_after_a_cpu_hog(
    jack_server: JackServer, noisy48: np.ndarray, tmp_path: Path
) -> None:
    summary_path = tmp_path / "live.json"
    signal_ = noisy48[: len(noisy48) // 2]  # 2.5 s, played over and over
    n, repeats = len(signal_), 7
    proc = start_live(jack_server, "--duration", repeats * n / RATE + 1, "--json", summary_path)
    loop = Loop(jack_server, signal_, 3 * n, repeat=True)
    hog = "import time\nend = time.time() + 10\nwhile time.time() < end: pass"
    hogs: list[subprocess.Popen] = []
    delays = []
    try:
        loop.connect()
        loop.play()
        for k in range(repeats):  # a busy loop on each core for 10 s spans repeats 1..4
            loop.wait_recorded((k + 1) * n + RATE // 10)
            if k == 0:
                hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2)]
            delays.append(measure_delay(loop.segment(k * n, n + RATE // 10), signal_, RATE // 10))
    finally:
        loop.close()
        for h in hogs:
            h.wait()
    code, err = finish(proc)
    assert code == 0, err
    summary = json.loads(summary_path.read_text())
    print("xruns:", summary["xruns"], "delays:", delays)
    reported = summary["latency_frames"]
    assert abs(delays[0] - reported) <= PERIOD
    assert all(abs(d - reported) <= PERIOD for d in delays[5:]), (delays, reported)


def test_a_synchronous_server_plays_a_period_sooner_and_live_reports_it(noisy48: np.ndarray, tmp_path: Path) -> None:
    """Under `jackd -S` the playback port's latency is one period less, and what the test hears back is as
    late as live says, that period less."""
    from benchmarks.latency import jack_port_latency

    summary_path = tmp_path / "live.json"
    signal_ = noisy48[: RATE * 2]
    with JackServer(RATE, PERIOD, sync=True) as server:
        proc = start_live(server, "--json", summary_path)
        loop = played_and_recorded(server, signal_, len(signal_) + RATE // 5)
        ports = jack_port_latency(server)
        proc.send_signal(signal.SIGINT)
        code, err = finish(proc)
    assert code == 0, err
    assert ports == {"capture": PERIOD, "playback": PERIOD}  # asynchronous: playback 2 periods
    summary = json.loads(summary_path.read_text())
    delay = measure_delay(loop.recording, file_engine(signal_), RATE // 5)
    # within half a period: a report that missed the server's mode would be a whole period off
    assert abs(delay - summary["latency_frames"]) < PERIOD // 2, (delay, summary["latency_frames"])


def file_engine(audio: np.ndarray) -> np.ndarray:
    return SignalProcessor(RATE, 1, RATE, Settings()).push(audio[:, None], last=True)[:, 0]


def test_a_vanishing_audio_server_ends_live_with_a_clear_message(tmp_path: Path) -> None:
    summary_path = tmp_path / "live.json"
    with JackServer(RATE, PERIOD) as server:
        proc = start_live(server, "--duration", 60, "--json", summary_path)
        loop = Loop(server, np.zeros(RATE, np.float32), RATE)
        loop.connect()
        loop.close()
        time.sleep(0.5)
    code, err = finish(proc, timeout=20)
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith("denoise: the audio stream stopped")
    assert json.loads(summary_path.read_text())["duration_s"] < 30


def test_a_stalled_audio_server_ends_live_with_its_recordings(tmp_path: Path) -> None:
    """A server that stops calling back (here: frozen with SIGSTOP) leaves the stream "active" and PortAudio's
    stop waiting forever: live must notice the silence, give up on the stream and still save everything."""
    summary_path = tmp_path / "live.json"
    with JackServer(RATE, PERIOD) as server:
        proc = start_live(server, "--duration", 60, "--json", summary_path, "--record", tmp_path / "rec")
        loop = Loop(server, np.zeros(RATE, np.float32), RATE)
        loop.connect()
        loop.play()
        loop.wait_recorded(RATE // 2)
        server.process.send_signal(signal.SIGSTOP)
        try:
            code, err = finish(proc, timeout=30)
        finally:
            server.process.send_signal(signal.SIGCONT)
            loop.close()
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith("denoise: the audio stream stopped")
    summary = json.loads(summary_path.read_text())
    assert summary["duration_s"] < 30
    for path in summary["recorded"]:
        assert sf.info(path).frames == summary["blocks"] * PERIOD
    assert not list((tmp_path / "rec").glob("*.part"))
