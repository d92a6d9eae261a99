"""On-the-fly mixing of clean speech with noise at a random SNR, reproducible from a seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.audio_io import AudioError
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


def audible(corpus: Corpus) -> Corpus:
    """The clips that are not digital silence (nothing to learn from; they would stall noise drawing)."""
    return corpus.subset([rms(c) >= SILENCE_RMS for c in corpus.clips])


@dataclass
class Mixture:
    """One training example and where it came from."""

    noisy: np.ndarray
    clean: np.ndarray
    snr_db: float
    speech: Path
    noise: list[Path] = field(default_factory=list)


def noise_segment(noise: Corpus, length: int, rng: np.random.Generator, used: list[Path]) -> np.ndarray:
    """`length` samples of noise, concatenating random clips (from random offsets) when short.

    Appends the files used to `used`."""
    parts, have = [], 0
    while have < length:
        index = int(rng.integers(len(noise)))
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
    """Draws (noisy, clean) pairs from a speech and a noise corpus."""

    def __init__(self, speech: Corpus, noise: Corpus, config: MixConfig) -> None:
        speech, noise = audible(speech), audible(noise)
        if len(speech) == 0 or len(noise) == 0:
            raise AudioError(
                f"mixing needs audible speech and noise: every {'speech' if not len(speech) else 'noise'} "
                "clip is silent"
            )
        self.speech, self.noise, self.config = speech, noise, config
        self.length = int(round(config.seconds * config.sample_rate))

    def pair(self, rng: np.random.Generator) -> Mixture:
        """One example: speech at a random level plus noise at a random SNR, scaled to stay unclipped."""
        c = self.config
        clean = np.zeros(self.length, np.float32)
        index = 0
        for _ in range(10):  # avoid crops of pure silence
            index = int(rng.integers(len(self.speech)))
            clean = random_crop(self.speech.clips[index], self.length, rng)
            if rms(clean) > 1e-4:
                break
        clean = clean * (10 ** (rng.uniform(*c.level_dbfs) / 20) / rms(clean))
        snr = float(rng.uniform(*c.snr_db))
        used: list[Path] = []
        noise = self._scaled_noise(clean, snr, rng, used)
        if rng.random() < c.second_noise:
            noise = noise + self._scaled_noise(clean, float(rng.uniform(*c.snr_db)), rng, used)
        noisy = clean + noise
        peak = float(np.max(np.abs(noisy)))
        if peak > c.peak:
            clean, noisy = clean * (c.peak / peak), noisy * (c.peak / peak)
        return Mixture(noisy.astype(np.float32), clean.astype(np.float32), snr, self.speech.paths[index], used)

    def _scaled_noise(self, clean: np.ndarray, snr_db: float, rng: np.random.Generator, used: list[Path]) -> np.ndarray:
        noise = noise_segment(self.noise, self.length, rng, used)
        return noise * (rms(clean) / (rms(noise) * 10 ** (snr_db / 20)))

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, clean), each (size, samples) float32."""
        pairs = [self.pair(rng) for _ in range(size)]
        return np.stack([p.noisy for p in pairs]), np.stack([p.clean for p in pairs])
