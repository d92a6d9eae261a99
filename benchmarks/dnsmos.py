"""DNSMOS P.835: no-reference speech quality (SIG: the speech, BAK: the background, OVRL: overall), 1 to 5.

The model is the ONNX file the `speechmos` package ships (extra `dnsmos`); segmenting and the mapping to MOS
follow Microsoft's reference script, in numpy, so scores match published DNSMOS numbers. Torch-free, one
single-threaded onnxruntime session per process (evaluation scores files in parallel processes).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import numpy as np

RATE = 16000
WINDOW_SECONDS = 9.01  # the model's input length; windows start every second
METRICS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
# The non-personalised model's raw outputs mapped to MOS, highest power first: SIG, BAK, OVRL
FITS = (
    (-0.08397278, 1.22083953, 0.0052439),
    (-0.13166888, 1.60915514, -0.39604546),
    (-0.06766283, 1.11546468, 0.04602535),
)


def model_path() -> Path:
    """The P.835 model in the speechmos package; ModuleNotFoundError when the `dnsmos` extra is not installed."""
    return Path(str(files("speechmos") / "dnsmos_models" / "sig_bak_ovr.onnx"))


@functools.cache
def _session():  # -> onnxruntime.InferenceSession
    from benchmarks.peers.base import onnx_session

    return onnx_session(model_path())


def windows(audio: np.ndarray) -> Iterator[np.ndarray]:
    """The 9.01 s windows the model scores, one per second, as the reference script cuts them: audio shorter than
    a window is doubled until it fills one, and a window whose end, computed in floating point, falls a sample
    short is left out."""
    if not len(audio):
        raise ValueError("empty audio")
    length = int(WINDOW_SECONDS * RATE)
    while len(audio) < length:
        audio = np.concatenate([audio, audio])
    for start in range(int(len(audio) // RATE - WINDOW_SECONDS) + 1):
        window = audio[start * RATE : int((start + WINDOW_SECONDS) * RATE)]
        if len(window) == length:
            yield window


def score(audio: np.ndarray) -> dict[str, float]:
    """SIG, BAK and OVRL of 16 kHz mono audio: each window's model outputs mapped to MOS, averaged over windows."""
    x = np.asarray(audio, np.float32)
    raw = np.concatenate([_session().run(None, {"input_1": w[np.newaxis]})[0] for w in windows(x)])
    return {m: float(np.mean(np.polyval(fit, raw[:, i]))) for i, (m, fit) in enumerate(zip(METRICS, FITS))}
