"""Every model family: streaming equals offline for random chunkings, causality, config round trip, and the
STFT pair the U-Net masks between is the identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.config import LSTMTasNetConfig, TasNetConfig, UNetConfig, WaveUNetConfig, config_from_dict
from model.families import NETWORKS, build
from model.stft_unet import stft_bases
from model.streaming import Streaming

SMALL = {
    "conv-tasnet": TasNetConfig(N=32, L=16, B=16, H=32, P=3, X=4, R=2),
    "stft-unet": UNetConfig(L=32, C=4, D=3, K_f=5, K_t=3),
    "wave-unet": WaveUNetConfig(L=3, F_c=4, f_d=5, f_u=3),
    "lstm-tasnet": LSTMTasNetConfig(N=16, L=16, H=24, R=2),
}


def trained_looking(model: Streaming, seed: int) -> Streaming:
    """`model` in eval mode with its batch norms' statistics moved off their initial identity."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def stream(model: Streaming, wave: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """`forward_stream` over chunks of the given hop counts, aligned like `forward`."""
    state, outs, pos = model.initial_state(wave.shape[0]), [], 0
    for k in sizes:
        out, state = model.forward_stream(wave[:, pos : pos + k * model.config.hop], state)
        pos += k * model.config.hop
        outs.append(out)
    if model.delay:
        outs.append(model.tail(state))
    return torch.cat(outs, dim=1)[:, model.delay : model.delay + wave.shape[1]]


@pytest.mark.parametrize("arch", SMALL)
@pytest.mark.parametrize("seed", range(3))
def test_streaming_equals_offline_for_random_chunkings(arch: str, seed: int) -> None:
    model = trained_looking(build(SMALL[arch]), seed)
    rng = np.random.default_rng(seed)
    hops = int(rng.integers(40, 200))
    wave = torch.randn(2, hops * model.config.hop) * 0.3
    sizes: list[int] = []
    while sum(sizes) < hops:
        sizes.append(int(min(rng.integers(1, 30), hops - sum(sizes))))
    with torch.no_grad():
        offline, streamed = model(wave), stream(model, wave, sizes)
    assert offline.shape == wave.shape
    assert torch.max(torch.abs(offline - streamed)).item() <= 1e-5


@pytest.mark.parametrize("arch", SMALL)
def test_output_never_depends_on_future_input(arch: str) -> None:
    """Aligned output at sample t may use input up to its frame's end (t + L - 1 for framed families), no further."""
    model = trained_looking(build(SMALL[arch]), 0)
    lookahead = model.window - 1 if model.delay else 0
    wave = torch.randn(1, 4096)
    changed = wave.clone()
    changed[:, 2500:] = torch.randn(1, 4096 - 2500)
    with torch.no_grad():
        a, b = model(wave), model(changed)
    assert torch.equal(a[:, : 2500 - lookahead], b[:, : 2500 - lookahead])
    assert not torch.equal(a[:, 2500:], b[:, 2500:])


@pytest.mark.parametrize("arch", SMALL)
def test_the_config_rebuilds_the_same_network(arch: str) -> None:
    model = build(SMALL[arch])
    assert model.get_config()["arch"] == arch and isinstance(model, NETWORKS[arch])
    rebuilt = build(model.get_config())
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.config == SMALL[arch]
    wave = torch.randn(1, 640)
    with torch.no_grad():
        assert torch.equal(model.eval()(wave), rebuilt.eval()(wave))


def test_a_config_without_an_arch_is_a_conv_tasnet_and_an_unknown_arch_is_refused() -> None:
    assert config_from_dict({"N": 32, "L": 16}) == TasNetConfig(N=32, L=16)
    with pytest.raises(ValueError, match="unknown architecture"):
        config_from_dict({"arch": "transformer"})


@pytest.mark.parametrize(
    ("family", "bad"),
    [(UNetConfig, {"L": 30}), (UNetConfig, {"K_f": 4}), (WaveUNetConfig, {"F_c": 0}), (LSTMTasNetConfig, {"L": 15})],
)
def test_invalid_configs_are_refused(family: type, bad: dict) -> None:
    with pytest.raises(ValueError):
        family(**bad)


@pytest.mark.parametrize("L", [32, 256])
def test_the_stft_and_its_inverse_overlap_add_to_the_delayed_input(L: int) -> None:
    analysis, synthesis = stft_bases(L)
    x = torch.randn(1, 1, 40 * L)
    frames = F.conv_transpose1d(F.conv1d(x, analysis, stride=L // 2), synthesis, stride=L // 2)
    # every sample but the first and last half windows is covered by two frames: it comes back as it went in
    assert torch.allclose(frames[..., L // 2 : -L // 2], x[..., L // 2 : -L // 2], atol=1e-5)


def test_the_wave_unet_has_no_delay_and_no_decoder_tail() -> None:
    model = build(SMALL["wave-unet"])
    assert model.delay == 0 and model.window == model.config.hop == 2**3
    assert "dec" not in [s.name for s in model.state_spec()]
