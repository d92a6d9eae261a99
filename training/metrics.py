"""Speech quality metrics: wide-band PESQ (narrow-band on request), STOI, ESTOI, SI-SDR.

Signals are aligned for a model's delay before scoring. A metric that cannot be computed for a file
(PESQ on silence, say) is reported as an error string for that file, never raised to the caller.
"""

from __future__ import annotations

import math

import numpy as np
from pesq import pesq as _pesq
from pystoi import stoi as _stoi

METRICS = ("pesq_wb", "stoi", "estoi", "si_sdr")


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB with the means removed."""
    est = np.asarray(estimate, np.float64) - np.mean(estimate)
    ref = np.asarray(reference, np.float64) - np.mean(reference)
    energy = np.dot(ref, ref)
    if energy <= 0:
        raise ValueError("reference is silent")
    if not np.any(est):
        raise ValueError("estimate is silent")
    projection = (np.dot(est, ref) / energy) * ref
    noise = est - projection
    return float(10 * np.log10((np.dot(projection, projection) + 1e-20) / (np.dot(noise, noise) + 1e-20)))


def estimate_delay(reference: np.ndarray, signal: np.ndarray, max_delay: int) -> int:
    """Lag (samples, >= -max_delay and <= max_delay) by which `signal` trails `reference`."""
    n = len(reference) + len(signal)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size)), size)
    lags = np.concatenate([np.arange(0, max_delay + 1), np.arange(-max_delay, 0)])
    values = corr[lags % size]
    return int(lags[int(np.argmax(values))])


def shift(signal: np.ndarray, delay: int, length: int) -> np.ndarray:
    """Undo a delay of `delay` samples and return exactly `length` samples (zero padded)."""
    out = np.zeros(length, np.float32)
    src = signal[delay:] if delay >= 0 else np.concatenate([np.zeros(-delay, signal.dtype), signal])
    n = min(length, len(src))
    out[:n] = src[:n]
    return out


def align(reference: np.ndarray, signal: np.ndarray, max_delay: int) -> tuple[np.ndarray, int]:
    """`signal` shifted to best match `reference` (same length), and the delay found."""
    if max_delay <= 0:
        return shift(signal, 0, len(reference)), 0
    delay = estimate_delay(reference, signal, max_delay)
    return shift(signal, delay, len(reference)), delay


def _one(name: str, clean: np.ndarray, enhanced: np.ndarray, sample_rate: int) -> float:
    if name == "si_sdr":
        return si_sdr(enhanced, clean)
    if name in ("pesq_wb", "pesq_nb"):
        if sample_rate not in (8000, 16000) or (name == "pesq_wb" and sample_rate != 16000):
            raise ValueError(f"{name} needs 16 kHz audio (8 kHz for narrow-band), got {sample_rate} Hz")
        return float(_pesq(sample_rate, clean, enhanced, "wb" if name == "pesq_wb" else "nb"))
    if name in ("stoi", "estoi"):
        value = float(_stoi(clean, enhanced, sample_rate, extended=name == "estoi"))
        if not math.isfinite(value):
            raise ValueError("STOI undefined (silent signal)")
        return value
    raise ValueError(f"unknown metric {name}")


def score(
    clean: np.ndarray,
    enhanced: np.ndarray,
    sample_rate: int = 16000,
    metrics: tuple[str, ...] = METRICS,
    max_delay: int = 0,
) -> tuple[dict[str, float], dict[str, str], int]:
    """(values, errors, delay) for one file: each metric either in values or, with its reason, in errors."""
    clean = np.asarray(clean, np.float32)
    enhanced = np.nan_to_num(np.asarray(enhanced, np.float32))
    enhanced, delay = align(clean, enhanced, max_delay)
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name in metrics:
        try:
            values[name] = _one(name, clean, enhanced, sample_rate)
        except Exception as exc:  # pesq raises its own error types, e.g. NoUtterancesError on silence
            errors[name] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return values, errors, delay
