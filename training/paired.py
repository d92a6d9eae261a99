"""The brief's paired layout: ROOT/voice_origin/<split> (clean) and ROOT/denoising/<split> (noisy),
a pair matched by file name (relative path)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.audio_io import list_audio, read_audio
from realtime.errors import AudioError

CLEAN_DIR, NOISY_DIR = "voice_origin", "denoising"


@dataclass(frozen=True)
class Pair:
    name: str
    noisy: Path
    clean: Path


def _by_name(folder: Path) -> dict[str, Path]:
    """Audio files under `folder` keyed by relative path without extension (x.wav matches x.flac)."""
    files: dict[str, Path] = {}
    for p in list_audio(folder):
        key = p.relative_to(folder).with_suffix("").as_posix()
        if key in files:
            raise AudioError(f"{folder}: both {files[key].name} and {p.name} exist; names must be unique")
        files[key] = p
    return files


def match_pairs(noisy_dir: Path, clean_dir: Path, strict: bool = True) -> list[Pair]:
    """Pairs of files with the same relative path (extension aside) in both folders.

    Unmatched names are an AudioError when `strict`, else listed on stderr and left out.
    """
    noisy, clean = _by_name(noisy_dir), _by_name(clean_dir)
    only_noisy, only_clean = sorted(noisy.keys() - clean), sorted(clean.keys() - noisy)
    problems = [f"{noisy[n]} has no clean match in {clean_dir}" for n in only_noisy]
    problems += [f"{clean[n]} has no noisy match in {noisy_dir}" for n in only_clean]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        if strict or len(problems) == len(noisy) + len(clean):
            raise AudioError(f"unmatched files: {shown}")
        print(f"warning: left out unmatched files: {shown}", file=sys.stderr)
    common = sorted(noisy.keys() & clean.keys())
    return [Pair(clean[n].relative_to(clean_dir).as_posix(), noisy[n], clean[n]) for n in common]


def layout_pairs(root: str | Path, split: str, strict: bool = True) -> list[Pair]:
    """Pairs of the brief's layout under `root` for one split (train, test, train_small...)."""
    r = Path(root)
    return match_pairs(r / NOISY_DIR / split, r / CLEAN_DIR / split, strict)


class PairedCorpus:
    """Paired files decoded into memory, cropped at random for training batches."""

    def __init__(self, pairs: list[Pair], length: int, sample_rate: int = 16000) -> None:
        self.length = length
        self.noisy, self.clean = [], []
        for pair in pairs:
            noisy, _ = read_audio(pair.noisy, sample_rate, mono=True)
            clean, _ = read_audio(pair.clean, sample_rate, mono=True)
            if len(noisy) != len(clean):
                raise AudioError(f"{pair.noisy}: length {len(noisy)} differs from its clean file ({len(clean)})")
            self.noisy.append(noisy)
            self.clean.append(clean)

    def __len__(self) -> int:
        return len(self.noisy)

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, clean) random crops of `length` samples (zero padded when a file is shorter)."""
        length = self.length
        noisy = np.zeros((size, length), np.float32)
        clean = np.zeros((size, length), np.float32)
        for b in range(size):
            i = int(rng.integers(len(self)))
            n = min(length, len(self.noisy[i]))
            start = int(rng.integers(0, len(self.noisy[i]) - n + 1))
            noisy[b, :n] = self.noisy[i][start : start + n]
            clean[b, :n] = self.clean[i][start : start + n]
        return noisy, clean
