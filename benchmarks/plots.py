"""The benchmark figures, as PNG files written atomically: quality per SNR band, quality vs real-time factor,
spectrogram triptychs of examples, and speed vs block size. Inputs are the reports' JSON entries."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from benchmarks.evaluate import NAMES
from realtime.audio_io import atomic_output
from training.metrics import METRICS

REFERENCES = ("noisy", "oracle_irm")  # drawn as lines, not points: they are no denoisers
DYNAMIC_RANGE_DB = 80  # spectrogram colour range below the loudest bin of the three


def _figure(rows: int, cols: int, size: tuple[float, float], **options):  # -> (Figure, axes array)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained", **options)


def _save(fig, path: Path) -> None:  # fig: matplotlib Figure
    import matplotlib.pyplot as plt

    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def per_snr(systems: Mapping[str, dict], path: Path) -> None:
    """One panel per metric: each system's mean per SNR band."""
    fig, axes = _figure(2, 2, (12, 8))
    for ax, metric in zip(axes.flat, METRICS):
        for key, entry in systems.items():
            bands = list(entry["per_snr"]) or ["all"]
            values = [entry["per_snr"][b][metric] for b in bands] if entry["per_snr"] else [entry["overall"][metric]]
            ax.plot(bands, values, "--" if key in REFERENCES else "-", marker="o", label=entry["label"])
        ax.set_title(f"{NAMES[metric]} per SNR band")
        ax.set_xlabel("input SNR")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Quality per SNR band per system (mean over files; higher is better)")
    _save(fig, path)


def quality_vs_rtf(systems: Mapping[str, dict], path: Path) -> None:
    """PESQ-WB and SI-SDR against CPU real-time factor; the noisy input and the oracle as horizontal lines."""
    fig, axes = _figure(1, 2, (13, 5.5))
    for ax, metric in zip(axes.flat, ("pesq_wb", "si_sdr")):
        for key, entry in systems.items():
            value = entry["overall"][metric]
            if key in REFERENCES:
                ax.axhline(value, linestyle="--", color="grey")
                ax.annotate(
                    entry["label"],
                    (0, value),
                    xycoords=("axes fraction", "data"),
                    fontsize=8,
                    va="bottom",
                    color="grey",
                )
            else:
                ax.scatter(entry["rtf_cpu"], value, marker="o" if entry["streaming"] else "s")
                ax.annotate(
                    entry["label"], (entry["rtf_cpu"], value), fontsize=8, xytext=(4, 4), textcoords="offset points"
                )
        ax.set_xscale("log")
        ax.set_xlabel("real-time factor (CPU time / audio time, one thread; log)")
        ax.set_ylabel(NAMES[metric])
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Quality vs real-time factor (circles stream, squares run offline; up and left is better)")
    _save(fig, path)


def triptych(signals: Mapping[str, tuple[str, np.ndarray]], title: str, path: Path, rate: int = 16000) -> None:
    """Spectrograms side by side on one dB scale, each titled with its role and audio path: {role: (path, audio)}."""
    from scipy.signal import spectrogram

    spectra = {role: spectrogram(audio, rate, nperseg=512, noverlap=384) for role, (_, audio) in signals.items()}
    db = {role: 10 * np.log10(s[2] + 1e-20) for role, s in spectra.items()}
    top = max(float(d.max()) for d in db.values())
    fig, axes = _figure(1, len(signals), (5 * len(signals) + 1, 4), sharey=True)
    for ax, (role, (source, _)) in zip(axes.flat, signals.items()):
        freqs, times, _ = spectra[role]
        image = ax.pcolormesh(times, freqs, db[role], vmin=top - DYNAMIC_RANGE_DB, vmax=top, cmap="magma")
        ax.set_title(f"{role}\n{source}", fontsize=8)
        ax.set_xlabel("time (s)")
    axes[0, 0].set_ylabel("frequency (Hz)")
    fig.colorbar(image, ax=list(axes.flat), label="dB")
    fig.suptitle(f"Spectrograms, {' / '.join(signals)}: {title}")
    _save(fig, path)


def speed_vs_block(systems: Mapping[str, dict], path: Path) -> None:
    """Streaming RTF per block size, one line per system; RTF 1 is the real-time limit."""
    fig, axes = _figure(1, 1, (8, 5.5))
    ax = axes[0, 0]
    for entry in systems.values():
        blocks = [row["block"] for row in entry["blocks"]]
        ax.plot(blocks, [row["rtf"] for row in entry["blocks"]], marker="o", label=entry["label"])
    ax.axhline(1.0, linestyle="--", color="grey")
    ax.set_xscale("log", base=2)
    blocks = sorted({row["block"] for entry in systems.values() for row in entry["blocks"]})
    ax.set_xticks(blocks, [str(b) for b in blocks])
    ax.set_yscale("log")
    ax.set_xlabel("block size (samples at 16 kHz; log)")
    ax.set_ylabel("real-time factor (wall time / audio time; log)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("Streaming real-time factor vs block size, one thread (lower is faster)")
    _save(fig, path)


def learning_curves(
    curves: Mapping[str, tuple[str, list]], dev: Mapping[str, float], references: Mapping[str, dict], path: Path
) -> None:
    """Validation PESQ-WB per CPU hour of each family's run (curve rows: cpu hours, PESQ-WB, ...), each best
    checkpoint's dev PESQ-WB as a marker at the end of its curve, the noisy input and oracle IRM on dev as lines."""
    fig, axes = _figure(1, 1, (9, 5.5))
    ax = axes[0, 0]
    for name, (label, rows) in curves.items():
        hours, pesq = [r[0] for r in rows], [r[1] for r in rows]
        (line,) = ax.plot(hours, pesq, marker="o", markersize=3, label=f"{label}: validation")
        ax.plot([hours[-1]], [dev[name]], marker="*", markersize=12, color=line.get_color(), linestyle="none")
    for key, style in zip(("noisy", "oracle_irm"), (":", "--")):
        ax.axhline(references[key]["pesq_wb"], linestyle=style, color="grey")
        ax.text(0.01, references[key]["pesq_wb"], f"{key} (dev)", transform=ax.get_yaxis_transform(), fontsize=8,
                color="grey", va="bottom")  # fmt: skip
    ax.set_xlabel("CPU hours of training (one thread)")
    ax.set_ylabel("PESQ-WB")
    ax.set_title("Validation PESQ-WB per CPU hour; stars: each run's best checkpoint on dev")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
