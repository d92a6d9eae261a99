"""On-the-fly mixing of clean speech with noise at a random SNR, with augmentation, reproducible from a seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.errors import AudioError
from training import augment
from training.config import NO_AUGMENTATION, Augmentation
from training.corpus import Corpus

SILENCE_RMS = 1e-5


@dataclass(frozen=True)
class MixConfig:
    """How training mixtures are drawn.

    snr_db: uniform SNR range; level_dbfs: uniform speech RMS level range; second_noise: probability
    of adding a second noise source (at its own SNR); peak: mixtures are scaled down to this peak.
    """

    seconds: float = 2.0
    snr_db: tuple[float, float] = (0.0, 20.0)
    level_dbfs: tuple[float, float] = (-38.0, -15.0)
    second_noise: float = 0.3
    peak: float = 0.99
    sample_rate: int = 16000
    augment: Augmentation = NO_AUGMENTATION


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def random_crop(clip: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A `length` crop; a short clip is placed at a random offset in zeros."""
    if len(clip) >= length:
        start = int(rng.integers(0, len(clip) - length + 1))
        return clip[start : start + length]
    out = np.zeros(length, np.float32)
    start = int(rng.integers(0, length - len(clip) + 1))
    out[start : start + len(clip)] = clip
    return out


def audible_mask(corpus: Corpus) -> np.ndarray:
    """Which clips are not digital silence (nothing to learn from; they would stall noise drawing)."""
    return np.array([rms(c) >= SILENCE_RMS for c in corpus.clips], bool)


@dataclass
class Mixture:
    """One training example and where it came from."""

    noisy: np.ndarray
    clean: np.ndarray
    snr_db: float
    speech: Path
    noise: list[Path] = field(default_factory=list)


class ClipSampler:
    """Draws clip indices: uniformly (weights None), or with probability proportional to `weights`."""

    def __init__(self, count: int, weights: np.ndarray | None = None) -> None:
        self.count = count
        self.cdf = None if weights is None else np.cumsum(weights / np.sum(weights))

    def __call__(self, rng: np.random.Generator) -> int:
        if self.cdf is None:
            return int(rng.integers(self.count))
        return min(self.count - 1, int(np.searchsorted(self.cdf, rng.random(), side="right")))


def noise_segment(
    noise: Corpus, length: int, rng: np.random.Generator, used: list[Path], draw: ClipSampler | None = None
) -> np.ndarray:
    """`length` samples of noise, concatenating random clips (from random offsets) when short.

    Appends the files used to `used`."""
    draw = draw or ClipSampler(len(noise))
    parts, have = [], 0
    while have < length:
        index = draw(rng)
        clip = noise.clips[index]
        start = int(rng.integers(0, max(1, len(clip) - (length - have))))
        part = clip[start : start + length - have]
        if rms(part) < SILENCE_RMS:  # a silent stretch of an audible clip: draw again
            continue
        parts.append(part)
        used.append(noise.paths[index])
        have += len(part)
    return np.concatenate(parts)


class Mixer:
    """Draws (noisy, clean) pairs from a speech and a noise corpus.

    speech_weights/noise_weights: a sampling weight per clip (None: every clip equally often); rirs: the
    reverberation bank (trimmed, see `augment.trim_rir`), needed when `config.augment.reverb` > 0."""

    def __init__(
        self,
        speech: Corpus,
        noise: Corpus,
        config: MixConfig,
        speech_weights: np.ndarray | None = None,
        noise_weights: np.ndarray | None = None,
        rirs: list[np.ndarray] | None = None,
    ) -> None:
        speech_ok, noise_ok = audible_mask(speech), audible_mask(noise)
        speech, noise = speech.subset(speech_ok), noise.subset(noise_ok)
        if len(speech) == 0 or len(noise) == 0:
            raise AudioError(
                f"mixing needs audible speech and noise: every {'speech' if not len(speech) else 'noise'} "
                "clip is silent"
            )
        self.rirs = rirs or []
        if config.augment.reverb > 0 and not self.rirs:
            raise AudioError("reverberation needs room impulse responses: give --rir folders or --simulated-rooms")
        self.speech, self.noise, self.config = speech, noise, config
        self.draw_speech = ClipSampler(len(speech), None if speech_weights is None else speech_weights[speech_ok])
        self.draw_noise = ClipSampler(len(noise), None if noise_weights is None else noise_weights[noise_ok])
        self.length = int(round(config.seconds * config.sample_rate))

    def pair(self, rng: np.random.Generator) -> Mixture:
        """One example: speech at a random level plus noise at a random SNR, augmented, scaled to stay unclipped.

        Each augmentation draws from `rng` only when it is enabled, so a config without any draws the
        same mixtures as before augmentation existed."""
        c, a = self.config, self.config.augment
        clean = np.zeros(self.length, np.float32)
        index = 0
        for _ in range(10):  # avoid crops of pure silence
            index = self.draw_speech(rng)
            clean = random_crop(self.speech.clips[index], self.length, rng)
            if rms(clean) > 1e-4:
                break
        wet = clean
        if a.reverb and rng.random() < a.reverb:
            wet, clean = augment.reverberate(clean, self.rirs[int(rng.integers(len(self.rirs)))], c.sample_rate)
        if a.eq and rng.random() < a.eq:
            gains = augment.random_eq(self.length, a.eq_db, c.sample_rate, rng)
            wet, clean = augment.colour(wet, gains), augment.colour(clean, gains)
        gain = 10 ** (rng.uniform(*c.level_dbfs) / 20) / rms(clean)
        wet, clean = wet * gain, clean * gain
        snr = float(rng.uniform(*c.snr_db))
        used: list[Path] = []
        noise = self._scaled_noise(wet, snr, rng, used)
        if rng.random() < c.second_noise:
            noise = noise + self._scaled_noise(wet, float(rng.uniform(*c.snr_db)), rng, used)
        noisy = wet + noise
        if a.band_limit and rng.random() < a.band_limit:
            noisy, clean = augment.band_limit([noisy, clean], c.sample_rate, rng)
        if a.clipping and rng.random() < a.clipping:
            noisy, drive = augment.clip(noisy, a.overdrive_db, rng)
            clean = clean * drive
        peak = float(np.max(np.abs(noisy)))
        if peak > c.peak:
            clean, noisy = clean * (c.peak / peak), noisy * (c.peak / peak)
        return Mixture(noisy.astype(np.float32), clean.astype(np.float32), snr, self.speech.paths[index], used)

    def _scaled_noise(
        self, speech: np.ndarray, snr_db: float, rng: np.random.Generator, used: list[Path]
    ) -> np.ndarray:
        """Noise at `snr_db` below `speech` (what the microphone hears of the talker), coloured if enabled."""
        a = self.config.augment
        noise = noise_segment(self.noise, self.length, rng, used, self.draw_noise)
        if a.eq and rng.random() < a.eq:
            noise = augment.colour(noise, augment.random_eq(self.length, a.eq_db, self.config.sample_rate, rng))
        return noise * (rms(speech) / (rms(noise) * 10 ** (snr_db / 20)))

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, clean), each (size, samples) float32."""
        pairs = [self.pair(rng) for _ in range(size)]
        return np.stack([p.noisy for p in pairs]), np.stack([p.clean for p in pairs])
