"""Training configuration, saved inside every checkpoint and beside every exported model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class Augmentation:
    """Probabilities per mixture (see `training.augment`): reverb (needs an RIR bank), eq (a random EQ of up to
    ±eq_db, drawn for speech and for noise apart), band_limit (a device's band), clipping (the mixture driven
    overdrive_db above full scale). The defaults are what a new run gets; NO_AUGMENTATION turns all off."""

    reverb: float = 0.0
    eq: float = 0.3
    eq_db: float = 6.0
    band_limit: float = 0.1
    clipping: float = 0.05
    overdrive_db: tuple[float, float] = (1.0, 12.0)

    @classmethod
    def from_dict(cls, data: dict) -> Augmentation:
        values = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        if "overdrive_db" in values:
            values["overdrive_db"] = tuple(values["overdrive_db"])
        return replace(NO_AUGMENTATION, **values)


NO_AUGMENTATION = Augmentation(eq=0.0, band_limit=0.0, clipping=0.0)


@dataclass
class TrainConfig:
    """What to train on and how.

    speech/noise: folders mixed on the fly; paired: roots in the brief's layout (voice_origin/denoising)
    with `paired_split`. holdout: fraction of speech/noise recordings (grouped by speaker or source
    recording) kept out of training for validation. lr follows a linear warm-up over `warmup` steps,
    then halves every `lr_half_life` steps (open-ended, so a run can always be resumed for longer).
    init: the checkpoint whose weights started the run (every tensor of the same name and shape, e.g. the
    first blocks of a deeper model), or "" for a random start.

    Data mix: each documented source (a folder with a SOURCE.txt) is drawn with a weight of its minutes
    to the power `speech_balance` / `noise_balance` (1: by duration; 0: every source equally), times
    `source_weights[name]` where given; within a source, by duration. Non-commercial files are left out
    unless `allow_non_commercial`. `augment`: probabilities and ranges (Augmentation); its
    reverb draws from the measured RIRs under `rir` and `simulated_rooms` simulated rooms. Speech levels
    are drawn from `level_dbfs`. spectral_loss: "mrstft" (multi-resolution STFT) or "compressed"
    (power-law compressed complex and magnitude spectra), added to -SI-SDR with weight `stft_weight`.
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
    speech_balance: float | None = 1.0
    noise_balance: float | None = 0.5
    source_weights: dict[str, float] = field(default_factory=dict)
    allow_non_commercial: bool = False
    level_dbfs: tuple[float, float] = (-42.0, -12.0)
    rir: list[str] = field(default_factory=list)
    simulated_rooms: int = 0
    augment: Augmentation = field(default_factory=Augmentation)
    spectral_loss: str = "mrstft"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {**LEGACY, **{k: v for k, v in data.items() if k in known}}
        for key in ("snr_db", "level_dbfs"):
            if key in values:
                values[key] = tuple(values[key])
        # nested since its first run, whose checkpoints keep it flat; before that: none
        values["augment"] = Augmentation.from_dict(data.get("augment", data))
        return cls(**values)


# What a run saved before these fields existed did: from_dict fills them in, so that it resumes unchanged
# (every clip equally often, non-commercial data included, no augmentation).
LEGACY: dict[str, Any] = {
    "speech_balance": None,
    "noise_balance": None,
    "allow_non_commercial": True,
    "level_dbfs": (-38.0, -15.0),
}
