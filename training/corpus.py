"""Load speech or noise folders into memory once, and hold out a fixed validation part.

Decoding thousands of compressed files per batch would dominate CPU training, so every file is
decoded once (16 kHz mono float32) and cached as one .npy per corpus under the cache folder.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from realtime.audio_io import atomic_output, list_audio, read_audio
from realtime.errors import AudioError

CACHE_DIR = Path(os.environ.get("RTDENOISE_CACHE", Path.home() / ".cache" / "rtdenoise"))


@dataclass
class Corpus:
    """Clips of one kind (speech or noise) with the file each came from."""

    clips: list[np.ndarray]
    paths: list[Path]

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def seconds(self) -> float:
        return sum(len(c) for c in self.clips) / 16000

    def subset(self, keep: Sequence[bool]) -> Corpus:
        return Corpus([c for c, k in zip(self.clips, keep) if k], [p for p, k in zip(self.paths, keep) if k])


def group_key(path: Path) -> str:
    """Recordings that must stay on one side of the train/validation split: same speaker folder,
    and for UrbanSound8K-style names (`<fold>_<id>-...`) the same source recording."""
    return f"{path.parent}/{path.stem.split('-')[0]}"


def is_held_out(path: Path, fraction: float) -> bool:
    """Deterministic hash split, stable across machines and runs."""
    return zlib.crc32(group_key(path).encode()) % 1000 < fraction * 1000


def _cache_file(paths: list[Path], sample_rate: int) -> Path:
    h = hashlib.sha1(str(sample_rate).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode())
    return CACHE_DIR / f"corpus-{h.hexdigest()[:16]}.npz"


def load_corpus(folders: Sequence[str | os.PathLike], sample_rate: int = 16000, desc: str = "audio") -> Corpus:
    """Decode every audio file under `folders`; unreadable files are named on stderr and skipped."""
    paths = [p for folder in folders for p in list_audio(folder)]
    cache = _cache_file(paths, sample_rate)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as data:
            flat, offsets, kept = data["flat"], data["offsets"], data["kept"]
        clips = [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        return Corpus(clips, [paths[i] for i in kept])

    def decode(path: Path) -> np.ndarray | AudioError:
        try:
            return read_audio(path, sample_rate, mono=True)[0]
        except AudioError as exc:
            return exc

    clips, kept = [], []
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # libsndfile and soxr release the GIL
        decoded = pool.map(decode, paths)
        bar = tqdm(
            decoded,
            total=len(paths),
            desc=f"decoding {desc}",
            unit="file",
            mininterval=1 if sys.stderr.isatty() else 30,
        )
        for i, audio in enumerate(bar):
            if isinstance(audio, AudioError):
                tqdm.write(f"skipped {audio}")
                continue
            clips.append(audio)
            kept.append(i)
    if not clips:
        raise AudioError(f"{', '.join(map(str, folders))}: no readable audio")
    cache.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(c) for c in clips])
    with atomic_output(cache) as tmp, tmp.open("wb") as f:  # unique temp name: DDP ranks may race here
        np.savez(f, flat=np.concatenate(clips), offsets=offsets, kept=np.array(kept))
    return Corpus(clips, [paths[i] for i in kept])


def split_corpus(corpus: Corpus, fraction: float) -> tuple[Corpus, Corpus]:
    """(train, validation) by `is_held_out` on each file's group.

    A small corpus whose hash split holds out nothing still gives up one group (the lowest hash) when
    it has two or more, so that validation always exists when it can."""
    held = [is_held_out(p, fraction) for p in corpus.paths]
    groups = {group_key(p) for p in corpus.paths}
    if fraction > 0 and not any(held) and len(groups) > 1:
        chosen = min(groups, key=lambda g: zlib.crc32(g.encode()))
        held = [group_key(p) == chosen for p in corpus.paths]
    return corpus.subset([not h for h in held]), corpus.subset(held)
