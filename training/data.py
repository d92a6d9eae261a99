"""Training and validation data from the configured sources (mixing folders and/or paired layouts)."""

from __future__ import annotations

import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from realtime.errors import AudioError
from training import augment
from training.config import TrainConfig
from training.corpus import Corpus, load_corpus, split_corpus
from training.mixing import MixConfig, Mixer
from training.paired import PairedCorpus, layout_pairs
from training.provenance import Source, source_of, sources_under

VALIDATION_SEED = 20261124


def clip_sources(corpus: Corpus, folders: Sequence[str]) -> list[Source]:
    """The documented source of every clip of `corpus` (loaded from `folders`)."""
    documented = [(Path(f), sources_under(f)) for f in folders]
    found = []
    for path in corpus.paths:
        folder, sources = next((f, s) for f, s in documented if path.is_relative_to(f))
        found.append(source_of(path, folder, sources))
    return found


def commercial_only(corpus: Corpus, sources: list[Source], kind: str) -> tuple[Corpus, list[Source]]:
    """`corpus` without its non-commercial files (named on stderr); an error if nothing is left."""
    keep = [not s.is_non_commercial(p) for p, s in zip(corpus.paths, sources)]
    if not all(keep):
        left = sorted({s.name for s, k in zip(sources, keep) if not k})
        print(
            f"left out {keep.count(False)} non-commercial {kind} files ({', '.join(left)}); "
            "--allow-non-commercial trains on them",
            file=sys.stderr,
        )
    if not any(keep):
        raise AudioError(f"every {kind} file is non-commercial: pass --allow-non-commercial to train on them")
    return corpus.subset(keep), [s for s, k in zip(sources, keep) if k]


def source_weights(
    corpus: Corpus, sources: list[Source], balance: float | None, overrides: dict[str, float]
) -> np.ndarray | None:
    """Per-clip sampling weights: each source by (its minutes ** balance) x override, within it by duration.

    None (balance None, and no overrides): every clip equally often, as runs before source weights did."""
    if balance is None and not overrides:
        return None
    lengths = np.array([len(c) for c in corpus.clips], np.float64)
    names = [s.name for s in sources]
    totals: dict[str, float] = {}
    for name, n in zip(names, lengths):
        totals[name] = totals.get(name, 0.0) + n
    share = {
        name: (total / 16000 / 60) ** (1.0 if balance is None else balance) * overrides.get(name, 1.0)
        for name, total in totals.items()
    }
    return np.array([share[name] * n / totals[name] for name, n in zip(names, lengths)])


def describe_shares(kind: str, sources: list[Source], weights: np.ndarray | None) -> str:
    """One line: how often each source is drawn, in percent."""
    w = weights if weights is not None else np.ones(len(sources))
    shares: dict[str, float] = {}
    for s, x in zip(sources, w):
        shares[s.name] = shares.get(s.name, 0.0) + float(x)
    total = sum(shares.values())
    return f"{kind} sources drawn: " + ", ".join(f"{n} {100 * v / total:.0f}%" for n, v in sorted(shares.items()))


class TrainingData:
    """Draws training batches from every configured source (equally often) and holds a fixed
    validation set made only of held-out recordings (never augmented, so it scores like the test set)."""

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
            splits = {}
            for kind, folders, balance in (
                ("speech", config.speech, config.speech_balance),
                ("noise", config.noise, config.noise_balance),
            ):
                corpus = load_corpus(folders, sample_rate, kind)
                sources = clip_sources(corpus, folders)
                if not config.allow_non_commercial:
                    corpus, sources = commercial_only(corpus, sources, kind)
                by_path = dict(zip(corpus.paths, sources))
                parts = []
                for part in split_corpus(corpus, config.holdout):  # (train, validation)
                    part_sources = [by_path[p] for p in part.paths]
                    parts.append((part, source_weights(part, part_sources, balance, config.source_weights)))
                train_part, train_weights = parts[0]
                print(describe_shares(kind, [by_path[p] for p in train_part.paths], train_weights), file=sys.stderr)
                splits[kind] = parts
            (speech_train, speech_w), (speech_val, speech_val_w) = splits["speech"]
            (noise_train, noise_w), (noise_val, noise_val_w) = splits["noise"]
            rirs = augment.load_rirs(config.rir, sample_rate) + augment.simulated_rirs(
                config.simulated_rooms, config.seed, sample_rate
            )
            mix = MixConfig(
                seconds=config.seconds,
                snr_db=config.snr_db,
                level_dbfs=config.level_dbfs,
                sample_rate=sample_rate,
                augment=config.augment,
            )
            self.sources.append(Mixer(speech_train, noise_train, mix, speech_w, noise_w, rirs))
            if len(speech_val) and len(noise_val):
                val_mix = MixConfig(seconds=config.val_seconds, snr_db=config.snr_db, sample_rate=sample_rate)
                val_mixer = Mixer(speech_val, noise_val, val_mix, speech_val_w, noise_val_w)
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
