"""Model hyper-parameters, named with the symbols of the Conv-TasNet paper (Luo & Mesgarani, 2019)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

NORMS = ("cLN", "cumLN")


@dataclass(frozen=True)
class TasNetConfig:
    """Shape of a causal Conv-TasNet.

    N: encoder filters; L: encoder window in samples (hop L/2); B: bottleneck channels;
    H: channels inside each conv block; P: depthwise kernel size; X: blocks per repeat
    (dilations 1..2**(X-1)); R: repeats; norm: "cLN" (per-frame channel layer norm, stateless)
    or "cumLN" (the paper's cumulative layer norm, offline only here); sample_rate in Hz.
    """

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
        if self.L < 2 or self.L % 2:
            raise ValueError(f"L must be an even number of samples >= 2, got {self.L}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        for name in ("N", "B", "H", "X", "R", "sample_rate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TasNetConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
