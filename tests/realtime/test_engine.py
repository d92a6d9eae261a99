"""The streaming engine with the shipped ONNX model: any block size equals the whole-signal output,
the reported latency is the real one, channels are independent, bad samples never reach the output."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from realtime.compiled_step import MAX_HOPS
from realtime.engine import MAX_HOPS_PER_RUN, Denoiser, open_session
from realtime.errors import AudioError
from realtime.model_file import INT8_ARRAYS, load_model_info


@pytest.fixture(scope="module")
def noisy(example_noisy) -> np.ndarray:
    audio, rate = sf.read(str(example_noisy), dtype="float32")
    assert rate == 16000
    return audio[: 3 * rate]


@pytest.fixture(scope="module")
def whole(noisy: np.ndarray, model_path) -> np.ndarray:
    """The stream fed in one block: output aligned with the input."""
    engine = Denoiser(model_path)
    out = np.concatenate([engine.feed(noisy), engine.flush()])
    return out[engine.latency :]


def feed_all(engine: Denoiser, audio: np.ndarray, sizes: list[int]) -> np.ndarray:
    outs, pos = [], 0
    for n in sizes:
        outs.append(engine.feed(audio[pos : pos + n]))
        pos += n
    return np.concatenate([*outs, engine.flush()])


@pytest.mark.parametrize("seed", range(5))
def test_random_block_sizes_equal_whole_signal(noisy, whole, model_path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < len(noisy):
        sizes.append(int(min(rng.integers(1, 4097), len(noisy) - sum(sizes))))
    engine = Denoiser(model_path)
    out = feed_all(engine, noisy, sizes)
    assert len(out) == len(noisy) + engine.latency
    assert np.max(np.abs(out[engine.latency :] - whole)) <= 1e-4


@pytest.mark.parametrize("block", [1, 32, 37, 160, 512])
def test_fixed_block_size_returns_equal_blocks_with_its_latency(noisy, whole, model_path, block: int) -> None:
    engine = Denoiser(model_path, block_size=block)
    n = len(noisy) // block * block
    outs = [engine.feed(noisy[i : i + block]) for i in range(0, n, block)]
    assert all(len(o) == block for o in outs)
    out = np.concatenate(outs)
    lat = engine.latency
    assert engine.algorithmic_latency + engine.buffering_latency == lat
    assert np.max(np.abs(out[lat:] - whole[: n - lat])) <= 1e-4


def test_bound_runs_equal_plain_session_runs(noisy, model_path, tmp_path) -> None:
    """The main graph's IO-bound runs (state swapped between two sets of arrays, chunk and output rebound when
    the hops per run change, long blocks split at MAX_HOPS_PER_RUN) equal `session.run` on the same chunks
    (whole hops, no buffering; the model's short-run graphs left out, so that every run is the main graph's)."""
    engine = Denoiser(_without_ring(model_path, tmp_path, keep_files=False), channels=2, block_size=32)
    hop = engine.hop
    stereo = np.stack([noisy, noisy[::-1]], axis=1)
    hops = [1, 2, 1, 1, 3, MAX_HOPS_PER_RUN + 5, 2, 1]
    session = open_session(engine.info)
    state = {name: np.zeros([2, *shape[1:]], np.float32) for name, shape in engine.info.state_shapes.items()}
    pos = 0
    for k in hops:
        block = stereo[pos : pos + k * hop]
        pos += k * hop
        expected = []
        for start in range(0, len(block), MAX_HOPS_PER_RUN * hop):
            out, *new = session.run(None, {"chunk": block[start : start + MAX_HOPS_PER_RUN * hop].T.copy(), **state})
            state = dict(zip(state, new))
            expected.append(out.T)
        assert np.max(np.abs(engine.feed(block) - np.clip(np.concatenate(expected), -1, 1))) <= 1e-6


RUNS = [1, 2, 1, 1, 3, 8, 5, 2, 1, 20, 7, 300, 4, 64, 65, 63] * 3  # hops per feed


def _largest_difference(one: Denoiser, other: Denoiser, noisy: np.ndarray) -> float:
    """The largest difference between two engines fed the same `RUNS` of `noisy` (looped; the ring wrapped
    several times)."""
    noisy = np.resize(noisy, sum(RUNS) * one.hop)
    pos, worst = 0, 0.0
    for k in RUNS:
        block = noisy[pos : pos + k * one.hop]
        pos += k * one.hop
        worst = max(worst, float(np.max(np.abs(one.feed(block) - other.feed(block)))))
    assert pos > 3 * (one.info.ring.frames + MAX_HOPS) * one.hop
    return worst


def test_the_short_run_graphs_equal_the_main_graph(noisy, model_path, tmp_path) -> None:
    """A mono engine with blocks its short-run graphs cover runs through them (`compiled=False`), its past kept
    in the engine's ring (wrapped several times here, 256 frames at the default model): single hops through the
    one-hop graph, runs of 2 to 8 through the 8-hop one, longer feeds split into runs of 8."""
    hop = Denoiser(model_path).hop
    short = Denoiser(model_path, block_size=hop, compiled=False)
    main = Denoiser(_without_ring(model_path, tmp_path, keep_files=False), block_size=hop)
    assert type(short.runner).__name__ == "RingRunner" and type(main.runner).__name__ == "GraphRunner"
    assert type(Denoiser(model_path, channels=2, block_size=hop).runner).__name__ == "GraphRunner"  # mono only
    assert _largest_difference(short, main, noisy) <= 1e-5
    assert set(short.runner._runs) >= {k * hop for k in (1, 2, 3, 5, 7, 8)}  # every run length was used


def test_the_compiled_step_equals_the_graphs(noisy, model_path, tmp_path) -> None:
    """A mono engine with a model that has the compiled step's weights runs through it by default: runs of 1
    to 64 hops in one call, longer feeds split; it equals the main graph and the short-run graphs on the same
    feeds, across several wraps of its ring."""
    hop = Denoiser(model_path).hop
    compiled = Denoiser(model_path, block_size=hop)
    assert type(compiled.runner).__name__ == "StepRunner"
    main = Denoiser(_without_ring(model_path, tmp_path, keep_files=False), block_size=hop)
    assert _largest_difference(compiled, main, noisy) <= 1e-5
    compiled.reset()
    assert _largest_difference(compiled, Denoiser(model_path, block_size=hop, compiled=False), noisy) <= 1e-5


def test_a_float32_step_file_runs_as_its_int8_weights_do(noisy, model_path, tmp_path) -> None:
    """The shipped model's step holds its blocks' convs as int8 with a scale per column; a step file of the same
    weights as float32 without scales (as exports wrote before the int8 grid) runs through BLAS instead, to the
    same output."""
    import json
    import shutil

    info = load_model_info(model_path)
    assert info.step["in_w"].dtype == info.step["out_w"].dtype == np.int8
    assert json.loads(model_path.with_suffix(".json").read_text())["weights"].startswith("int8")
    for path in model_path.parent.glob(f"{model_path.stem}.*"):
        shutil.copy(path, tmp_path / path.name)
    arrays = dict(np.load(model_path.with_name(f"{model_path.stem}.step.npz")))
    for name, scale in INT8_ARRAYS.items():
        arrays[name] = arrays[name] * arrays.pop(scale)[:, None, :]
    np.savez(tmp_path / f"{model_path.stem}.step.npz", **arrays)
    as_float = Denoiser(tmp_path / model_path.name, block_size=info.hop)
    assert as_float.info.step["in_w"].dtype == np.float32 and type(as_float.runner).__name__ == "StepRunner"
    assert _largest_difference(as_float, Denoiser(model_path, block_size=info.hop), noisy) <= 1e-5


def test_the_compiled_step_gives_silence_and_starts_afresh_after_an_overflow(noisy, model_path) -> None:
    """Input that overflows the model's arithmetic (finite, but far out of range) gives silence rather than
    inf or NaN, and the stream afterwards equals a fresh one."""
    engine = Denoiser(model_path, block_size=32)
    fresh = Denoiser(model_path, block_size=32)
    engine.feed(noisy[:3200])
    assert not np.any(engine.feed(np.full(32, 3e38, np.float32)))
    assert type(engine.runner).__name__ == "StepRunner"
    np.testing.assert_allclose(engine.feed(noisy[:3200]), fresh.feed(noisy[:3200]), atol=0)


def _without_ring(model_path, folder, keep_files: bool):
    """A copy of the model in `folder` whose sidecar names no short-run graphs (`keep_files`: it does, but the
    files are not there)."""
    import json
    import shutil

    shutil.copy(model_path, folder / "m.onnx")
    doc = json.loads(model_path.with_suffix(".json").read_text())
    if keep_files:
        for graph in doc["ring"]["graphs"]:
            graph["file"] = f"m.ring{graph['max_hops']}.onnx"
        doc["ring"]["step"] = "m.step.npz"
    else:
        del doc["ring"]
    (folder / "m.json").write_text(json.dumps(doc))
    return folder / "m.onnx"


def test_a_model_without_short_run_graphs_runs_every_block_through_its_main_graph(noisy, whole, tmp_path, model_path):
    engine = Denoiser(_without_ring(model_path, tmp_path, keep_files=False), block_size=32)
    assert type(engine.runner).__name__ == "GraphRunner"
    out = np.concatenate([engine.feed(noisy[i : i + 32]) for i in range(0, len(noisy) // 32 * 32, 32)])
    assert np.max(np.abs(out[engine.latency :] - whole[: len(out) - engine.latency])) <= 1e-4


def test_a_missing_short_run_graph_is_a_clear_error(tmp_path, model_path) -> None:
    with pytest.raises(AudioError, match="short-run graph m.ring1.onnx is missing"):
        Denoiser(_without_ring(model_path, tmp_path, keep_files=True))


def test_reported_latency_is_the_measured_delay(model_path) -> None:
    """With the wet path bypassed the output is the input, delayed by exactly `latency`."""
    engine = Denoiser(model_path, block_size=48)
    engine.bypass = True
    engine.feed(np.zeros(48, np.float32))  # let the crossfade settle
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(4800) * 0.1).astype(np.float32)
    y = np.concatenate([engine.feed(x[i : i + 48]) for i in range(0, len(x), 48)])
    assert np.allclose(y[engine.latency :], x[: len(x) - engine.latency], atol=1e-6)
    assert engine.latency == engine.info.delay + 16  # 48-sample blocks at hop 32: 16 samples of buffering


def test_channels_are_denoised_independently(noisy, whole, model_path) -> None:
    stereo = np.stack([noisy, noisy[::-1]], axis=1)
    engine = Denoiser(model_path, channels=2)
    out = feed_all(engine, stereo, [1000] * (len(noisy) // 1000) + [len(noisy) % 1000])
    assert out.shape == (len(noisy) + engine.latency, 2)
    assert np.max(np.abs(out[engine.latency :, 0] - whole)) <= 1e-4
    mono_rev = Denoiser(model_path)
    rev = np.concatenate([mono_rev.feed(noisy[::-1].copy()), mono_rev.flush()])
    assert np.max(np.abs(out[:, 1] - rev)) <= 1e-4


def test_non_finite_input_never_reaches_output_or_state(noisy, model_path) -> None:
    engine = Denoiser(model_path, block_size=160)
    clean_run = Denoiser(model_path, block_size=160)
    bad = noisy[:160].copy()
    bad[::7] = np.nan
    bad[3] = np.inf
    out_bad = engine.feed(bad)
    assert np.isfinite(out_bad).all()
    assert engine.nonfinite_blocks == 1
    zeroed = np.where(np.isfinite(bad), bad, 0).astype(np.float32)
    clean_run.feed(zeroed)
    for i in range(160, 16000, 160):  # afterwards it is exactly the stream with silence in place of the bad samples
        assert np.array_equal(engine.feed(noisy[i : i + 160]), clean_run.feed(noisy[i : i + 160]))


def test_output_is_clipped_and_finite_for_full_scale_input(model_path) -> None:
    engine = Denoiser(model_path)
    square = np.sign(np.sin(np.linspace(0, 400 * np.pi, 16000))).astype(np.float32)
    out = np.concatenate([engine.feed(square), engine.flush()])
    assert np.isfinite(out).all() and np.max(np.abs(out)) <= 1.0


def test_dry_mix_and_attenuation_limit_blend_the_delayed_input(noisy, whole, model_path) -> None:
    for kwargs, share in (({"dry": 0.25}, 0.25), ({"atten_lim_db": 6.0}, 10 ** (-6 / 20))):
        engine = Denoiser(model_path, **kwargs)
        out = np.concatenate([engine.feed(noisy), engine.flush()])[engine.latency :]
        expected = np.clip(whole + share * (noisy - whole), -1, 1)
        assert np.max(np.abs(out - expected)) <= 1e-4


def test_reset_starts_a_new_stream(noisy, whole, model_path) -> None:
    engine = Denoiser(model_path)
    engine.feed(noisy[:5000])
    engine.reset()
    out = np.concatenate([engine.feed(noisy), engine.flush()])[engine.latency :]
    assert np.max(np.abs(out - whole)) <= 1e-4


@pytest.mark.parametrize("kwargs", [{"dry": 1.5}, {"atten_lim_db": -3}, {"channels": 0}, {"block_size": 0}])
def test_invalid_settings_are_refused(model_path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Denoiser(model_path, **kwargs)


def test_wrong_block_size_for_a_fixed_engine_is_refused(model_path) -> None:
    engine = Denoiser(model_path, block_size=160)
    with pytest.raises(ValueError, match="160"):
        engine.feed(np.zeros(100, np.float32))


def test_the_sidecar_contract_reads_and_writes_the_shipped_model_unchanged(model_path) -> None:
    """realtime.model_file is the one home of the sidecar: what export writes through it reads back the same."""
    import json

    from realtime.model_file import Sidecar, load_model_info, sidecar_path

    document = json.loads(sidecar_path(model_path).read_text())
    sidecar = Sidecar.from_dict(document)
    assert sidecar.to_dict() == document
    info = load_model_info(model_path)
    assert info.delay == sidecar.window - sidecar.hop == Denoiser(model_path).algorithmic_latency  # L - hop
