"""The causal Conv-TasNet: streaming equals offline, causality, config round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.config import TasNetConfig
from model.conv_tasnet import ChannelNorm, ConvTasNet
from model.int8 import int8_columns, snap_to_int8
from model.ring_step import RingStep, lags, stream_error

SMALL = TasNetConfig(N=32, L=16, B=16, H=32, P=3, X=4, R=2)


def stream(model: ConvTasNet, wave: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Run `forward_stream` over chunks of the given hop counts; return output aligned like `forward`."""
    state = model.initial_state(wave.shape[0])
    outs, pos = [], 0
    for k in sizes:
        chunk = wave[:, pos : pos + k * model.config.hop]
        pos += chunk.shape[1]
        out, state = model.forward_stream(chunk, state)
        outs.append(out)
    full = torch.cat([*outs, state.dec], dim=1)
    return full[:, model.delay : model.delay + wave.shape[1]]


@pytest.mark.parametrize("seed", range(4))
def test_streaming_equals_offline_for_random_chunkings(seed: int) -> None:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ConvTasNet(SMALL).eval()
    hops = int(rng.integers(50, 400))
    wave = torch.randn(2, hops * SMALL.hop) * 0.3
    sizes = []
    while sum(sizes) < hops:
        sizes.append(int(min(rng.integers(1, 60), hops - sum(sizes))))
    with torch.no_grad():
        offline = model(wave)
        streamed = stream(model, wave, sizes)
    assert torch.max(torch.abs(offline - streamed)).item() <= 1e-5


def test_offline_accepts_any_length_and_keeps_it() -> None:
    model = ConvTasNet(SMALL).eval()
    with torch.no_grad():
        out = model(torch.randn(1001))
    assert out.shape == (1001,)


def test_output_never_depends_on_future_input() -> None:
    """Aligned output at sample t may use input up to its encoder window's end (t + L - 1), no further."""
    torch.manual_seed(0)
    model = ConvTasNet(SMALL).eval()
    wave = torch.randn(1, 4000)
    changed = wave.clone()
    changed[:, 2500:] = torch.randn(1, 1500)
    with torch.no_grad():
        a, b = model(wave), model(changed)
    assert torch.equal(a[:, : 2500 - SMALL.L], b[:, : 2500 - SMALL.L])
    assert not torch.equal(a[:, 2500:], b[:, 2500:])


def test_cumulative_norm_is_causal_offline_and_refuses_streaming() -> None:
    model = ConvTasNet(TasNetConfig(N=32, L=16, B=16, H=32, X=2, R=1, norm="cumLN")).eval()
    wave = torch.randn(1, 3200)
    changed = wave.clone()
    changed[:, 2000:] = 0
    with torch.no_grad():
        assert torch.allclose(model(wave)[:, :1984], model(changed)[:, :1984], atol=1e-6)
    with pytest.raises(ValueError, match="cLN"):
        model.forward_stream(wave[:, :64], model.initial_state())


def test_config_round_trip_rebuilds_the_same_network() -> None:
    model = ConvTasNet(SMALL)
    rebuilt = ConvTasNet(TasNetConfig.from_dict(model.get_config()))
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.config == SMALL
    assert rebuilt.num_parameters() == model.num_parameters()


@pytest.mark.parametrize("bad", [{"L": 15}, {"norm": "gLN"}, {"X": 0}])
def test_invalid_configs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        TasNetConfig(**bad)


def test_state_layout_matches_receptive_field() -> None:
    model = ConvTasNet(SMALL)
    state = model.initial_state(3)
    assert state.enc.shape == (3, SMALL.L - SMALL.hop)
    assert [c.shape for c in state.conv] == [(3, SMALL.H, 1, (SMALL.P - 1) * d) for d in SMALL.dilations]
    assert sum(c.shape[3] for c in state.conv) == SMALL.receptive_field - 1
    assert state.dec.shape == (3, SMALL.L - SMALL.hop)


@pytest.mark.parametrize(
    ("config", "max_hops"), [(SMALL, 1), (SMALL, 8), (TasNetConfig(N=16, L=8, B=8, H=12, P=4, X=3, R=2), 5)]
)
def test_the_short_run_form_equals_streaming(config: TasNetConfig, max_hops: int) -> None:
    """RingStep, in random runs of 1 to max_hops hops, fed its own past activations at `lags` from a ring (as
    the engine does: zeros for frames inside the run), equals forward_stream over a stream long enough to
    wrap the ring several times; with trained-looking norms."""
    torch.manual_seed(0)
    model = ConvTasNet(config).eval()
    with torch.no_grad():
        for norm in (m for m in model.modules() if isinstance(m, ChannelNorm)):
            norm.gamma.uniform_(0.5, 1.5)
            norm.beta.uniform_(-0.5, 0.5)
    ring_step = RingStep(model, max_hops).eval()

    def step(*arrays: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in ring_step(*map(torch.from_numpy, arrays))]

    frames = int(np.max(lags(config)))
    total = max(5 * frames, 30 * max_hops)  # wraps the ring, and every run length comes up
    worst, runs = stream_error(model, step, max_hops, total, scale=0.3)
    assert runs == set(range(1, max_hops + 1)) and worst <= 1e-5


def test_snapping_to_int8_puts_only_the_blocks_convs_on_the_grid_and_keeps_the_output() -> None:
    """Each block's in, skip and residual conv has every output channel on a 255-level grid of its own (what the
    compiled step stores as int8 and a scale); every other weight stays, and the output moves little."""
    torch.manual_seed(0)
    model = ConvTasNet(TasNetConfig(N=32, L=16, B=16, H=32, P=3, X=3, R=2)).eval()
    snapped = snap_to_int8(model)
    convs = {f"blocks.{i}.{c}.weight" for i in range(len(model.blocks)) for c in ("in_conv", "skip_conv", "res_conv")}
    before, after = model.state_dict(), snapped.state_dict()
    for name, weight in after.items():
        if name not in convs:
            assert torch.equal(weight, before[name]), name
            continue
        assert not torch.equal(weight, before[name]), name
        q, scale = int8_columns(weight[:, :, 0].T.numpy())
        assert q.dtype == np.int8 and np.abs(q).max() == 127
        np.testing.assert_allclose(q * scale, weight[:, :, 0].T.numpy(), rtol=0, atol=1e-6 * scale.max())
    with pytest.raises(ValueError, match="int8 grid"):
        int8_columns(before["blocks.0.in_conv.weight"][:, :, 0].T.numpy())
    wave = torch.randn(1, 4000) * 0.1
    with torch.no_grad():
        exact, approx = model(wave), snapped(wave)
    assert 10 * torch.log10(exact.pow(2).sum() / (exact - approx).pow(2).sum()) > 30  # dB
