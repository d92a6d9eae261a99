"""Score enhanced files against clean references, or without one by DNSMOS: per file, overall and per SNR band."""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import dnsmos
from realtime.audio_io import read_audio
from realtime.errors import AudioError
from training.metrics import METRICS, score

RATE = 16000
MIN_SECONDS = 0.5  # PESQ needs 0.25 s; STOI needs 30 frames of 384 samples at 10 kHz (about 0.4 s)
LENGTH_SLACK = RATE // 100  # samples: resampling rounds lengths; more than 10 ms apart is another recording
SILENT_PEAK = 1e-4  # below -80 dBFS everywhere: digital silence
NAMES = {
    "pesq_wb": "PESQ-WB",
    "pesq_nb": "PESQ-NB",
    "stoi": "STOI",
    "estoi": "ESTOI",
    "si_sdr": "SI-SDR (dB)",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_ovrl": "DNSMOS OVRL",
}


@dataclass
class FileScore:
    name: str
    values: dict[str, float]
    errors: dict[str, str]
    delay: int
    warning: str = ""


@dataclass
class Report:
    """Per-file scores and their means, overall and per SNR band."""

    metrics: tuple[str, ...]
    files: list[FileScore]
    snr: dict[str, float] = field(default_factory=dict)

    def mean(self, names: list[str] | None = None) -> dict[str, float]:
        chosen = [f for f in self.files if names is None or f.name in names]
        return {
            m: float(np.mean(v)) if (v := [f.values[m] for f in chosen if m in f.values]) else math.nan
            for m in self.metrics
        }

    def bands(self) -> dict[str, list[str]]:
        """File names per SNR band: each value when there are few distinct SNRs, else 5 dB bins."""
        if not self.snr:
            return {}
        values = sorted(set(self.snr.values()))
        label: Callable[[float], str]
        if len(values) <= 8:
            label = lambda v: f"{v:g} dB"  # noqa: E731
        else:
            label = lambda v: f"{5 * math.floor(v / 5):g}-{5 * math.floor(v / 5) + 5:g} dB"  # noqa: E731
        groups: dict[str, list[str]] = {}
        for name, v in sorted(self.snr.items(), key=lambda kv: kv[1]):
            groups.setdefault(label(v), []).append(name)
        return groups

    def failures(self) -> list[str]:
        return [f"{f.name}: {m}: {e}" for f in self.files for m, e in f.errors.items()]

    def warnings(self) -> list[str]:
        return [f"{f.name}: {f.warning}" for f in self.files if f.warning]

    def to_dict(self) -> dict:
        return {
            "metrics": list(self.metrics),
            "count": len(self.files),
            "overall": self.mean(),
            "per_snr": {band: {"count": len(names), **self.mean(names)} for band, names in self.bands().items()},
            "failures": self.failures(),
            "warnings": self.warnings(),
            "files": [{"name": f.name, **f.values, "delay": f.delay, "errors": f.errors} for f in self.files],
        }

    def table(self) -> str:
        """Markdown table: overall and per band."""
        head = "| set | files | " + " | ".join(NAMES[m] for m in self.metrics) + " |"
        rows = [head, "|" + "---|" * (len(self.metrics) + 2)]
        groups = {"all": [f.name for f in self.files], **self.bands()}
        for band, names in groups.items():
            means = self.mean(names)
            cells = " | ".join(format_metric(m, means[m]) for m in self.metrics)
            rows.append(f"| {band} | {len(names)} | {cells} |")
        return "\n".join(rows)


def format_metric(metric: str, value: float) -> str:
    """A metric value as reports show it: 2 decimals for PESQ, SI-SDR and DNSMOS, 3 for STOI/ESTOI."""
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if metric in ("pesq_wb", "pesq_nb", "si_sdr", *dnsmos.METRICS) else f"{value:.3f}"


def read_snr_csv(path: str | os.PathLike) -> dict[str, float]:
    """name -> snr_db from a pairs CSV (columns `name` and `snr_db`); empty if it has no snr_db column."""
    p = Path(path)
    try:
        with p.open(newline="") as f:
            reader = csv.DictReader(f, strict=True)  # strict: an unterminated quote is an error
            if not reader.fieldnames or "name" not in reader.fieldnames:
                raise AudioError(f"{p}: a pairs CSV needs a 'name' column")
            if "snr_db" not in reader.fieldnames:
                return {}
            snr = {}
            for row in reader:
                value = row["snr_db"]  # None: the row is short
                if row["name"] is None or value is None or not math.isfinite(float(value)):
                    raise ValueError(f"line {reader.line_num}: expected a name and a finite snr_db")
                snr[row["name"]] = float(value)
            return snr
    except FileNotFoundError:
        raise AudioError(f"{p}: no such file") from None
    except (UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise AudioError(f"{p}: not a valid pairs CSV ({exc})") from None


def unscorable(clean: np.ndarray, enhanced: np.ndarray, metrics: tuple[str, ...]) -> dict[str, str]:
    """The metrics that cannot score this pair, with the reason in words (the libraries' own errors
    for these cases are cryptic, and pystoi returns a meaningless 1e-5 instead of failing)."""
    seconds = len(clean) / RATE
    if seconds < MIN_SECONDS:
        return {
            m: f"too short to score ({seconds:.3f} s; PESQ and STOI need at least {MIN_SECONDS} s)" for m in metrics
        }
    if not np.any(np.abs(clean) > SILENT_PEAK):
        return {
            m: "the clean reference is silent: " + ("PESQ cannot score silence" if m.startswith("pesq") else "no score")
            for m in metrics
        }
    if not np.any(np.abs(enhanced) > SILENT_PEAK):
        return {m: "the enhanced file is silent: PESQ cannot score silence" for m in metrics if m.startswith("pesq")}
    return {}


def score_file(
    name: str, clean: np.ndarray | None, enhanced: np.ndarray, metrics: tuple[str, ...], max_delay: int
) -> FileScore:
    """The reference metrics of `enhanced` against `clean` (None: there are none), and DNSMOS of `enhanced`.

    A length mismatch with the reference (beyond LENGTH_SLACK) is scored, with a warning."""
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    delay = 0
    warning = ""
    if clean is not None:
        reference = tuple(m for m in metrics if m not in dnsmos.METRICS)
        reasons = unscorable(clean, enhanced, reference)
        values, errors, delay = score(clean, enhanced, RATE, tuple(m for m in reference if m not in reasons), max_delay)
        errors.update(reasons)
        if abs(len(enhanced) - len(clean)) > LENGTH_SLACK:
            warning = (
                f"lengths differ (enhanced {len(enhanced) / RATE:.2f} s, clean {len(clean) / RATE:.2f} s): "
                "scored over the clean file's length, the enhanced one cut or padded with silence"
            )
    if dnsmos.METRICS[0] in metrics:
        values.update(dnsmos.score(enhanced))
    return FileScore(name, values, errors, delay, warning)


def _score_paths(args: tuple[str, Path | None, Path, tuple[str, ...], int]) -> FileScore:
    name, clean_path, enhanced_path, metrics, max_delay = args
    try:
        clean = None if clean_path is None else read_audio(clean_path, RATE, mono=True)[0]
        enhanced, _ = read_audio(enhanced_path, RATE, mono=True)
    except AudioError as exc:
        return FileScore(name, {}, {"read": str(exc)}, 0)
    return score_file(name, clean, enhanced, metrics, max_delay)


def evaluate(
    pairs: list[tuple[str, Path | None, Path]],
    metrics: tuple[str, ...] = METRICS,
    max_delay: int = 0,
    jobs: int | None = None,
    progress: bool | None = None,
) -> Report:
    """Score (name, clean path or None, enhanced path) triples, in parallel processes; `progress`: a bar on
    stderr (default: when stderr is a terminal)."""
    from tqdm import tqdm

    tasks = [(name, c, e, metrics, max_delay) for name, c, e in pairs]
    workers = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    with ProcessPoolExecutor(workers) as pool:
        results = list(
            tqdm(
                pool.map(_score_paths, tasks, chunksize=4),
                total=len(tasks),
                desc="scoring",
                unit="file",
                disable=not (sys.stderr.isatty() if progress is None else progress),  # no bars in logs
            )
        )
    return Report(metrics, results)
