"""Training configuration, saved inside every checkpoint and beside every exported model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TrainConfig:
    """What to train on and how.

    speech/noise: folders mixed on the fly; paired: roots in the brief's layout (voice_origin/denoising)
    with `paired_split`. holdout: fraction of speech/noise recordings (grouped by speaker or source
    recording) kept out of training for validation. lr follows a linear warm-up over `warmup` steps,
    then halves every `lr_half_life` steps (open-ended, so a run can always be resumed for longer).
    init: the checkpoint whose weights started the run (every tensor of the same name and shape, e.g. the
    first blocks of a deeper model), or "" for a random start.
    """

    speech: list[str] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)
    paired: list[str] = field(default_factory=list)
    paired_split: str = "train"
    batch_size: int = 8
    seconds: float = 2.0
    snr_db: tuple[float, float] = (0.0, 20.0)
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup: int = 500
    lr_half_life: int = 40000
    cooldown_from: int = 0
    cooldown_steps: int = 0
    grad_clip: float = 5.0
    stft_weight: float = 1.0
    seed: int = 0
    holdout: float = 0.03
    val_items: int = 32
    val_seconds: float = 4.0
    val_every: int = 500
    checkpoint_minutes: float = 5.0
    compile: bool = False
    init: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "snr_db" in values:
            values["snr_db"] = tuple(values["snr_db"])
        return cls(**values)
