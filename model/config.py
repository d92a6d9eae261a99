"""Model hyper-parameters of every family, each named with its paper's symbols; torch-free (the CLI reads them).

`ARCHITECTURES` maps each family's `arch` name (recorded in every checkpoint and sidecar) to its config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="FamilyConfig")


class FamilyConfig:
    """Mixin for a family's frozen config dataclass: `to_dict` names the family (`arch`), so a checkpoint or
    sidecar says which network its numbers build; `from_dict` ignores keys the dataclass does not have."""

    arch: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, **asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known})


def _positive(config: object, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be positive, got {getattr(config, name)}")


def _even_window(L: int) -> None:
    if L < 2 or L % 2:
        raise ValueError(f"L must be an even number of samples >= 2, got {L}")


NORMS = ("cLN", "cumLN")


@dataclass(frozen=True)
class TasNetConfig(FamilyConfig):
    """Shape of a causal Conv-TasNet.

    N: encoder filters; L: encoder window in samples (hop L/2); B: bottleneck channels;
    H: channels inside each conv block; P: depthwise kernel size; X: blocks per repeat
    (dilations 1..2**(X-1)); R: repeats; norm: "cLN" (per-frame channel layer norm, stateless)
    or "cumLN" (the paper's cumulative layer norm, offline only here); sample_rate in Hz.
    """

    arch = "conv-tasnet"
    N: int = 128
    L: int = 64
    B: int = 64
    H: int = 128
    P: int = 3
    X: int = 8
    R: int = 2
    norm: str = "cLN"
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        _even_window(self.L)
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        _positive(self, "N", "B", "H", "X", "R", "sample_rate")
        if self.P < 2:
            raise ValueError(f"P (kernel size) must be at least 2, got {self.P}")

    @property
    def hop(self) -> int:
        """Encoder stride in samples (half the window)."""
        return self.L // 2

    @property
    def dilations(self) -> list[int]:
        """Dilation of every depthwise conv, in network order."""
        return [2**x for x in range(self.X)] * self.R

    @property
    def receptive_field(self) -> int:
        """How many past encoder frames the mask depends on."""
        return 1 + sum((self.P - 1) * d for d in self.dilations)


@dataclass(frozen=True)
class UNetConfig(FamilyConfig):
    """Spectrogram mask estimation with a U-Net (Jansson et al., 2017), causal in time.

    L: STFT window in samples (sqrt-Hann, hop L/2; L/2 + 1 frequency bins); C: channels of the first encoder
    layer (doubling per layer); D: encoder layers, each halving the frequency axis (stride 2 in frequency,
    never in time); K_f, K_t: kernel size in frequency and in time (the encoder's time kernel looks only at the
    past, the decoder's is 1); sample_rate in Hz.
    """

    arch = "stft-unet"
    L: int = 256
    C: int = 16
    D: int = 4
    K_f: int = 5
    K_t: int = 3
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        _positive(self, "C", "D", "K_t", "sample_rate")
        if self.L < 4 or self.L % 4:
            raise ValueError(f"L must be a multiple of 4 samples, got {self.L}")
        if self.K_f < 3 or self.K_f % 2 == 0:
            raise ValueError(f"K_f must be odd and at least 3, got {self.K_f}")

    @property
    def hop(self) -> int:
        return self.L // 2

    @property
    def bins(self) -> int:
        return self.L // 2 + 1


@dataclass(frozen=True)
class WaveUNetConfig(FamilyConfig):
    """Wave-U-Net (Stoller et al., 2018), made causal: every conv looks only at the past, decimation keeps the
    earlier sample of each pair and upsampling repeats it, so nothing waits for a later sample.

    L: levels (each halving the time resolution; the engine's hop is 2**L samples); F_c: filters added per level;
    f_d, f_u: kernel sizes of the downsampling and upsampling convs; sample_rate in Hz.
    """

    arch = "wave-unet"
    L: int = 5
    F_c: int = 12
    f_d: int = 15
    f_u: int = 5
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        _positive(self, "L", "F_c", "f_d", "f_u", "sample_rate")

    @property
    def hop(self) -> int:
        return 2**self.L


@dataclass(frozen=True)
class LSTMTasNetConfig(FamilyConfig):
    """The LSTM TasNet (Luo & Mesgarani, 2018): a gated encoder on L2-normalised frames, a causal deep LSTM
    estimating the mask, a linear decoder.

    N: basis signals; L: frame length in samples (hop L/2, overlap-added as in Conv-TasNet); H: LSTM units;
    R: LSTM layers (uni-directional); sample_rate in Hz.
    """

    arch = "lstm-tasnet"
    N: int = 128
    L: int = 64
    H: int = 192
    R: int = 2
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        _positive(self, "N", "H", "R", "sample_rate")
        _even_window(self.L)

    @property
    def hop(self) -> int:
        return self.L // 2


ARCHITECTURES: dict[str, type[FamilyConfig]] = {
    config.arch: config for config in (TasNetConfig, UNetConfig, WaveUNetConfig, LSTMTasNetConfig)
}


def config_from_dict(data: dict[str, Any]) -> FamilyConfig:
    """The config a checkpoint's or sidecar's `model_config` describes (no `arch`: a Conv-TasNet, as before
    there were other families)."""
    arch = data.get("arch", TasNetConfig.arch)
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[arch].from_dict(data)
