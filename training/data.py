"""Training and validation data from the configured sources (mixing folders and/or paired layouts)."""

from __future__ import annotations

import zlib

import numpy as np

from realtime.audio_io import AudioError
from training.config import TrainConfig
from training.corpus import load_corpus, split_corpus
from training.mixing import MixConfig, Mixer
from training.paired import PairedCorpus, layout_pairs

VALIDATION_SEED = 20261124


class TrainingData:
    """Draws training batches from every configured source (equally often) and holds a fixed
    validation set made only of held-out recordings."""

    def __init__(self, config: TrainConfig, sample_rate: int) -> None:
        self.length = int(round(config.seconds * sample_rate))
        self.sources: list[Mixer | PairedCorpus] = []
        val_noisy: list[np.ndarray] = []
        val_clean: list[np.ndarray] = []
        val_len = int(round(config.val_seconds * sample_rate))
        val_rng = np.random.default_rng(VALIDATION_SEED)
        if config.speech or config.noise:
            if not (config.speech and config.noise):
                raise AudioError("on-the-fly mixing needs both --speech and --noise folders")
            speech = load_corpus(config.speech, sample_rate, "speech")
            noise = load_corpus(config.noise, sample_rate, "noise")
            speech_train, speech_val = split_corpus(speech, config.holdout)
            noise_train, noise_val = split_corpus(noise, config.holdout)
            mix = MixConfig(seconds=config.seconds, snr_db=config.snr_db, sample_rate=sample_rate)
            self.sources.append(Mixer(speech_train, noise_train, mix))
            if len(speech_val) and len(noise_val):
                val_mixer = Mixer(speech_val, noise_val, MixConfig(seconds=config.val_seconds, snr_db=config.snr_db))
                noisy, clean = val_mixer.batch(config.val_items, val_rng)
                val_noisy += list(noisy)
                val_clean += list(clean)
        for root in config.paired:
            pairs = layout_pairs(root, config.paired_split, strict=False)
            held = [zlib.crc32(p.name.encode()) % 1000 < config.holdout * 1000 for p in pairs]
            self.sources.append(PairedCorpus([p for p, h in zip(pairs, held) if not h], self.length, sample_rate))
            val_pairs = [p for p, h in zip(pairs, held) if h][: config.val_items]
            if val_pairs:
                val = PairedCorpus(val_pairs, val_len, sample_rate)
                noisy, clean = val.batch(len(val), val_rng)
                val_noisy += list(noisy)
                val_clean += list(clean)
        if not self.sources:
            raise AudioError("no training data: give --speech and --noise folders and/or --paired roots")
        self.val_noisy, self.val_clean = val_noisy, val_clean

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self.sources[int(rng.integers(len(self.sources)))].batch(size, rng)
