"""Write the brief's paired layout (voice_origin/<split>, denoising/<split>) from speech and noise folders."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from realtime.audio_io import atomic_output, write_audio
from realtime.errors import AudioError
from training.corpus import load_corpus
from training.mixing import MixConfig, Mixer
from training.paired import CLEAN_DIR, NOISY_DIR

CSV_FIELDS = ["name", "speech", "noise", "snr_db", "seconds"]


def make_dataset(
    speech: list[str],
    noise: list[str],
    out: Path,
    split: str,
    count: int,
    seconds: float,
    snr_db: tuple[float, float] = (0.0, 20.0),
    seed: int = 0,
    sample_rate: int = 16000,
) -> Path:
    """Mix `count` pairs of `seconds` each into `out`; returns the CSV path (`out/<split>.csv`)."""
    if count < 1:
        raise AudioError(f"--count must be at least 1, got {count}")
    if seconds <= 0:
        raise AudioError(f"--seconds must be positive, got {seconds}")
    clean_dir, noisy_dir = out / CLEAN_DIR / split, out / NOISY_DIR / split
    for folder in (*speech, *noise):  # the inputs must stay as they are: no file written over or among them
        source = Path(folder).resolve()
        for target in (clean_dir.resolve(), noisy_dir.resolve()):
            if source.is_relative_to(target) or target.is_relative_to(source):
                raise AudioError(f"{out}: would write {target} among the input files of {folder}; choose another --out")
    mixer = Mixer(
        load_corpus(speech, sample_rate, "speech"),
        load_corpus(noise, sample_rate, "noise"),
        MixConfig(seconds=seconds, snr_db=snr_db, sample_rate=sample_rate),
    )
    try:
        clean_dir.mkdir(parents=True, exist_ok=True)
        noisy_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AudioError(f"{out}: cannot create the dataset folders ({exc.strerror})") from None
    rng = np.random.default_rng(seed)
    rows = []
    for i in tqdm(range(count), desc=f"mixing {split}", unit="pair"):
        mix = mixer.pair(rng)
        name = f"{split}_{i:04d}.flac"
        write_audio(clean_dir / name, mix.clean, sample_rate, "PCM_24")
        write_audio(noisy_dir / name, mix.noisy, sample_rate, "PCM_24")
        rows.append(
            {
                "name": name,
                "speech": _rel(mix.speech, speech),
                "noise": ";".join(_rel(p, noise) for p in mix.noise),
                "snr_db": f"{mix.snr_db:.2f}",
                "seconds": f"{seconds:g}",
            }
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    target = out / f"{split}.csv"
    with atomic_output(target) as tmp:
        tmp.write_text(buffer.getvalue())
    return target


def _rel(path: Path, roots: list[str]) -> str:
    """`path` relative to whichever root folder holds it (as the brief's CSVs name sources)."""
    for root in roots:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            continue
    return os.fspath(path)
