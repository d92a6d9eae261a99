"""Training-time augmentation of speech and noise, every draw from the caller's generator.

- Reverberation with a bank of room impulse responses (measured ones, and rooms simulated with
  pyroomacoustics). The target keeps the direct path and the early reflections (`EARLY_MS`): a causal
  model with a 2 s receptive field can remove late reverberation, but the early part is what a room
  colours every voice with, and asking a small model to undo it costs speech quality (the DNS challenge
  recipe makes the same choice).
- Spectral colouring: a smooth random EQ (speech and noise each their own), and band limits of cheap
  microphones, Bluetooth headsets and phones (applied to the mixture and the target alike: the model
  should remove noise, not restore bandwidth).
- Clipping as from an overdriven input (the mixture only; the target stays unclipped).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from functools import cache

import numpy as np
from scipy import signal

from realtime.audio_io import atomic_output, list_audio, read_audio
from training import corpus

EARLY_MS = 50.0
MAX_RIR_SECONDS = 1.5
PRE_DIRECT_MS = 1.0

# (high-pass Hz, low-pass Hz) of band-limited devices: narrow-band phone, wide-band phone / Bluetooth
# HFP, a cheap USB or laptop microphone, an old headset.
BANDS: tuple[tuple[float, float], ...] = ((300.0, 3400.0), (100.0, 7000.0), (150.0, 5000.0), (200.0, 4000.0))


def trim_rir(rir: np.ndarray, sample_rate: int) -> np.ndarray:
    """An RIR from just before its direct path, at most MAX_RIR_SECONDS, scaled to a unit-energy early part."""
    direct = int(np.argmax(np.abs(rir)))
    rir = rir[max(0, direct - int(PRE_DIRECT_MS * sample_rate / 1000)) :][: int(MAX_RIR_SECONDS * sample_rate)]
    early = rir[: early_length(rir, sample_rate)]
    return (rir / (np.sqrt(np.sum(early**2)) + 1e-12)).astype(np.float32)


def early_length(rir: np.ndarray, sample_rate: int) -> int:
    """Samples of a trimmed RIR that make the target: the direct path and EARLY_MS of reflections."""
    return int(np.argmax(np.abs(rir))) + int(EARLY_MS * sample_rate / 1000)


def load_rirs(folders: Sequence[str], sample_rate: int) -> list[np.ndarray]:
    """Every measured RIR under `folders` (first channel), trimmed."""
    return [trim_rir(read_audio(p, sample_rate, mono=True)[0], sample_rate) for f in folders for p in list_audio(f)]


def simulated_rirs(count: int, seed: int, sample_rate: int) -> list[np.ndarray]:
    """`count` shoebox rooms (pyroomacoustics image source method), reproducible from `seed`, cached on disk."""
    if count <= 0:
        return []
    key = hashlib.sha1(f"rooms|{count}|{seed}|{sample_rate}|{MAX_RIR_SECONDS}|v1".encode()).hexdigest()[:16]
    path = corpus.CACHE_DIR / f"rooms-{key}.npz"
    if path.exists():
        with np.load(path) as data:
            return [data[f"r{i}"] for i in range(count)]
    import pyroomacoustics as pra  # only here: the train extra has it, and simulating is optional

    rng = np.random.default_rng([seed, 77])
    rirs = []
    print(f"simulating {count} rooms (once; cached in {corpus.CACHE_DIR})", file=sys.stderr)
    for _ in range(count):
        dims = rng.uniform([3.0, 2.5, 2.4], [10.0, 8.0, 4.0])
        rt60 = rng.uniform(0.15, 0.9)
        absorption, order = pra.inverse_sabine(rt60, dims)
        room = pra.ShoeBox(
            dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(order, 40), air_absorption=True
        )
        mic = rng.uniform([0.5, 0.5, 0.8], dims - 0.5)
        for _ in range(100):  # a talker 0.3-3 m from the microphone, inside the room
            direction = rng.normal(size=3)
            src = mic + direction / np.linalg.norm(direction) * rng.uniform(0.3, 3.0)
            if np.all(src > 0.3) and np.all(src < dims - 0.3):
                break
        else:
            src = dims / 2
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        rirs.append(trim_rir(np.asarray(room.rir[0][0], np.float64), sample_rate))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, tmp.open("wb") as f:
        np.savez(f, **{f"r{i}": r for i, r in enumerate(rirs)})
    return rirs


def reverberate(speech: np.ndarray, rir: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(reverberant speech for the mixture, direct + early speech for the target), both len(speech)."""
    n = len(speech)
    wet = signal.fftconvolve(speech, rir)[:n]
    early = signal.fftconvolve(speech, rir[: early_length(rir, sample_rate)])[:n]
    return wet.astype(np.float32), early.astype(np.float32)


def random_eq(length: int, max_db: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Gains per rFFT bin of a smooth random EQ: ±`max_db` at 8 log-spaced points from 50 Hz to Nyquist."""
    points = np.geomspace(50.0, sample_rate / 2, 8)
    gains_db = rng.uniform(-max_db, max_db, len(points))
    freqs = np.fft.rfftfreq(length, 1 / sample_rate)
    curve = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(points), gains_db)
    return (10 ** (curve / 20)).astype(np.float32)


def colour(x: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """`x` through a zero-phase EQ given as rFFT gains (see `random_eq`)."""
    return np.fft.irfft(np.fft.rfft(x) * gains, len(x)).astype(np.float32)


@cache
def band_filter(low_hz: float, high_hz: float, sample_rate: int) -> np.ndarray:
    """Second-order sections of a device band: 4th-order high-pass and 8th-order low-pass Butterworth."""
    high = signal.butter(4, low_hz, "highpass", fs=sample_rate, output="sos")
    low = signal.butter(8, min(high_hz, 0.45 * sample_rate), "lowpass", fs=sample_rate, output="sos")
    return np.vstack([high, low])


def band_limit(signals: Sequence[np.ndarray], sample_rate: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random device band applied to every one of `signals` (mixture and target)."""
    low, high = BANDS[int(rng.integers(len(BANDS)))]
    sos = band_filter(low, high, sample_rate)
    return [signal.sosfilt(sos, s).astype(np.float32) for s in signals]


def clip(x: np.ndarray, overdrive_db: tuple[float, float], rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """`x` driven `overdrive_db` above full scale and clipped at ±1; returns (clipped, gain applied)."""
    gain = 10 ** (rng.uniform(*overdrive_db) / 20) / (float(np.max(np.abs(x))) + 1e-12)
    return np.clip(x * gain, -1.0, 1.0).astype(np.float32), gain
