"""`denoise bench quality`: every system on the same noisy files, aligned to its input, scored against the clean.

Each output is shifted by the delay found against its own noisy input (reported per system), then scored with
PESQ-WB, STOI, ESTOI and SI-SDR (with --dnsmos also DNSMOS SIG, BAK, OVRL) overall and per SNR band. Files run in
parallel processes, one thread each; each system's CPU time over the audio's duration is its real-time factor in
the quality-vs-speed plot.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.peers import KEYS, Options, System, select, triage
from benchmarks.peers.base import BLOCK, RATE
from realtime.errors import EXIT_OK
from realtime.model_file import resolve_model

if TYPE_CHECKING:
    from benchmarks.evaluate import FileScore
    from training.paired import Pair

DATA = Path("../shared/data/audio")
PEERS = Path("../shared/peers")
RESULTS = Path("benchmarks/results")
EXAMPLES = 3  # files shown as spectrogram triptychs
OURS = "ours_stream"  # the system shown in the triptychs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quality",
        help="quality of ours and the peers on paired files",
        description="Run each system on the noisy files, align each output to its input, score PESQ-WB, STOI, "
        "ESTOI and SI-SDR against the clean files, overall and per SNR band; write quality.md, quality.json "
        "and plots. Systems whose package or files are absent are listed as skipped.",
    )
    p.add_argument("--clean", type=Path, help=f"clean files (default: {DATA}/voice_origin/test)")
    p.add_argument("--noisy", type=Path, help=f"noisy files, same names (default: {DATA}/denoising/test)")
    p.add_argument("--csv", type=Path, help=f"pairs CSV with name, snr_db (default with the defaults: {DATA}/test.csv)")
    p.add_argument("--dnsmos", action="store_true", help="add DNSMOS SIG, BAK, OVRL (extra 'dnsmos')")
    add_system_options(p)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    p.add_argument("--max-delay-ms", type=float, default=100.0, help="delay search range (default 100 ms)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"report folder (default {RESULTS})")
    p.set_defaults(run=run)


def add_system_options(p: argparse.ArgumentParser, keys: tuple[str, ...] = KEYS) -> None:
    """Options shared with `bench speed`: which systems, and where their files are."""
    p.add_argument("--systems", nargs="+", choices=keys, metavar="NAME", help="only these: " + ", ".join(keys))
    p.add_argument("--peers", type=Path, help=f"peer model folder (default {PEERS} when present)")
    p.add_argument("--model", help="our ONNX model file, or a shipped model's name (default: default)")
    p.add_argument("--checkpoint", type=Path, help="our torch checkpoint (default: default.pt beside the ONNX)")


def options_from(args: argparse.Namespace) -> Options:
    model = resolve_model(args.model)
    peers = args.peers or (PEERS if PEERS.is_dir() else None)
    return Options(peers, model, args.checkpoint or model.with_suffix(".pt"))


def _default_data(args: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    from realtime.errors import AudioError

    if args.clean is None and args.noisy is None:
        clean, noisy = DATA / "voice_origin/test", DATA / "denoising/test"
        if not (clean.is_dir() and noisy.is_dir()):
            raise AudioError(f"{DATA}/*/test not found: give --clean DIR --noisy DIR")
        csv = args.csv or (DATA / "test.csv" if (DATA / "test.csv").is_file() else None)
        return clean, noisy, csv
    if args.clean is None or args.noisy is None:
        raise AudioError("give both --clean and --noisy (or neither, for the shared test set)")
    return args.clean, args.noisy, args.csv


# -- worker processes: every system on one file ----------------------------------------------------------------
_systems: list[System] = []


def _load(keys: list[str], options: Options) -> None:
    global _systems
    _systems = select(keys, options)
    for system in _systems:
        system.load()


@dataclass
class Outcome:
    """One system's result on one file."""

    score: FileScore
    cpu_seconds: float


def run_file(
    name: str, noisy: np.ndarray, clean: np.ndarray, system: System, max_delay: int, dnsmos: bool = False
) -> Outcome:
    """Run one system on one file, align its output to the noisy input, score it against the clean (and by DNSMOS)."""
    from benchmarks.dnsmos import METRICS as DNSMOS
    from benchmarks.evaluate import FileScore, score_file
    from training.metrics import METRICS, align

    start = time.process_time()
    try:
        out = np.nan_to_num(np.asarray(system.process(noisy, clean), np.float32))
    except Exception as exc:  # a peer's own error on one file is reported for that file; the run goes on
        return Outcome(FileScore(name, {}, {"run": f"{type(exc).__name__}: {exc}"}, 0), 0.0)
    cpu = time.process_time() - start
    aligned, delay = align(noisy, out, max_delay)
    scored = score_file(name, clean, aligned, (*METRICS, *DNSMOS) if dnsmos else METRICS, 0)
    return Outcome(replace(scored, delay=delay), cpu)


def _task(job: tuple[str, Path, Path, int, bool]) -> tuple[float, dict[str, Outcome]]:
    from realtime.audio_io import read_audio

    name, noisy_path, clean_path, max_delay, dnsmos = job
    noisy, _ = read_audio(noisy_path, RATE, mono=True)
    clean, _ = read_audio(clean_path, RATE, mono=True)
    n = min(len(noisy), len(clean))
    noisy, clean = noisy[:n], clean[:n]
    return n / RATE, {s.key: run_file(name, noisy, clean, s, max_delay, dnsmos) for s in _systems}


# -- main process --------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm import tqdm

    from benchmarks import dnsmos
    from benchmarks.evaluate import Report, read_snr_csv
    from benchmarks.report import header, shown
    from realtime.errors import AudioError
    from training.metrics import METRICS
    from training.paired import match_pairs

    clean_dir, noisy_dir, csv = _default_data(args)
    if args.max_delay_ms < 0 or args.jobs < 1:
        raise AudioError("--max-delay-ms must be >= 0 and --jobs >= 1")
    if args.dnsmos:
        dnsmos.model_path()  # a missing extra fails here, before any system runs
    metrics = (*METRICS, *dnsmos.METRICS) if args.dnsmos else METRICS
    pairs = match_pairs(noisy_dir, clean_dir, strict=True)
    snr = read_snr_csv(csv) if csv else {}
    options = options_from(args)
    systems, skipped = triage(select(args.systems, options))
    if not systems:
        raise AudioError("no system can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    head = header(f"1 per system (onnxruntime intra-op 1, torch 1); {args.jobs} files in parallel", options.model)
    max_delay = int(args.max_delay_ms * RATE / 1000)
    jobs = [(p.name, p.noisy, p.clean, max_delay, args.dnsmos) for p in pairs]
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the workers: no library spreads over cores
    keys = [s.key for s in systems]
    with ProcessPoolExecutor(min(args.jobs, len(jobs)), get_context("spawn"), _load, (keys, options)) as pool:
        done = list(tqdm(pool.map(_task, jobs), total=len(jobs), desc="quality", unit="file"))
    seconds = sum(d for d, _ in done)
    results = {}
    for system in systems:
        report = Report(
            metrics, [o[system.key].score for _, o in done], {p.name: snr[p.name] for p in pairs if p.name in snr}
        )
        delays = np.array([f.delay for f in report.files]) * 1000 / RATE
        results[system.key] = {
            "label": system.label,
            "streaming": system.streaming,
            "rtf_cpu": sum(o[system.key].cpu_seconds for _, o in done) / seconds,
            "delay_ms": {"median": float(np.median(delays)), "min": float(delays.min()), "max": float(delays.max())},
            **report.to_dict(),
        }
    document = {
        "header": head,
        "data": {
            "clean": shown(clean_dir),
            "noisy": shown(noisy_dir),
            "csv": shown(csv) if csv else None,
            "files": len(pairs),
            "seconds": seconds,
            "max_delay_ms": args.max_delay_ms,
        },
        "systems": results,
        "skipped": skipped,
    }
    plots = args.out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    document["examples"] = _examples(pairs, snr, systems, plots, max_delay)
    write_reports(document, args.out)
    return EXIT_OK


def _examples(
    pairs: list[Pair], snr: dict[str, float], systems: list[System], plots: Path, max_delay: int
) -> list[dict]:
    """Spectrogram triptychs (noisy / ours / clean) of the first, middle and last file by SNR, with our audio."""
    from benchmarks.plots import triptych
    from benchmarks.report import shown
    from realtime.audio_io import read_audio, write_audio
    from training.metrics import align

    ours = next((s for s in systems if s.key == OURS), None)
    if ours is None:
        return []
    order = sorted(pairs, key=lambda p: (snr.get(p.name, 0.0), p.name))
    picks = list(dict.fromkeys(order[i * (len(order) - 1) // (EXAMPLES - 1)] for i in range(EXAMPLES)))
    examples = []
    for pair in picks:
        noisy, _ = read_audio(pair.noisy, RATE, mono=True)
        clean, _ = read_audio(pair.clean, RATE, mono=True)
        denoised, _ = align(noisy, ours.process(noisy, clean), max_delay)
        stem = Path(pair.name).with_suffix("").as_posix().replace("/", "_")
        audio, image = plots / f"example_{stem}_ours.flac", plots / f"example_{stem}.png"
        write_audio(audio, denoised, RATE, "PCM_16")
        paths = {"noisy": shown(pair.noisy), "ours": shown(audio), "clean": shown(pair.clean)}
        level = f", SNR {snr[pair.name]:g} dB" if pair.name in snr else ""
        triptych({k: (paths[k], x) for k, x in zip(paths, (noisy, denoised, clean))}, f"{pair.name}{level}", image)
        examples.append({"name": pair.name, **paths, "png": shown(image)})
    return examples


def write_reports(document: dict, out: Path) -> None:
    """quality.json, quality.md and the summary plots under `out`, each written atomically."""
    from benchmarks.evaluate import NAMES, format_metric
    from benchmarks.plots import per_snr, quality_vs_rtf
    from benchmarks.report import header_markdown, write_report
    from realtime.model_file import write_json_atomic

    systems = document["systems"]
    metrics = next(iter(systems.values()))["metrics"]
    per_snr(systems, out / "plots" / "quality_per_snr.png")
    quality_vs_rtf(systems, out / "plots" / "quality_vs_rtf.png")
    write_json_atomic(out / "quality.json", document)
    data = document["data"]
    alone = " (DNSMOS: the aligned output alone, no reference)" if "dnsmos_sig" in metrics else ""
    lines = header_markdown("Quality: ours and the peers on the same files", document["header"])
    lines += [
        f"Data: {data['files']} pairs ({data['seconds'] / 60:.1f} min), noisy `{data['noisy']}`, clean "
        f"`{data['clean']}`, SNR bands from `{data['csv']}`.  ",
        f"Each output is shifted by the delay found against its noisy input (searched within "
        f"±{data['max_delay_ms']:g} ms), then scored against the clean file{alone}. Streaming systems are fed "
        f"{BLOCK}-sample blocks. RTF: CPU time / audio time, one thread per system, files in parallel "
        "(streaming timings per block size: `speed.md`).",
        "",
        "| system | " + " | ".join(NAMES[m] for m in metrics) + " | delay found, ms: median [min, max] | RTF |",
        "|---|" + "---|" * (len(metrics) + 2),
    ]
    for entry in systems.values():
        cells = " | ".join(format_metric(m, entry["overall"][m]) for m in metrics)
        delay = "{median:.3g} [{min:.3g}, {max:.3g}]".format(**entry["delay_ms"])
        lines.append(f"| {entry['label']} | {cells} | {delay} | {entry['rtf_cpu']:.3f} |")
    bands = list(next(iter(systems.values()))["per_snr"])
    for metric in metrics if bands else ():
        lines += [
            "",
            f"### {NAMES[metric]} per SNR band",
            "",
            "| system | " + " | ".join(bands) + " |",
            "|---|" + "---|" * len(bands),
        ]
        for entry in systems.values():
            cells = " | ".join(format_metric(metric, entry["per_snr"][b][metric]) for b in bands)
            lines.append(f"| {entry['label']} | {cells} |")
    lines += ["", "## Skipped", ""] + ([f"- {k}: {v}" for k, v in document["skipped"].items()] or ["- none"])
    failures = [f"- {e['label']}: {f}" for e in systems.values() for f in e["failures"]]
    lines += ["", "## Not scored", ""] + (failures or ["- none"])
    lines += [
        "",
        "## Plots",
        "",
        "![quality per SNR band](plots/quality_per_snr.png)",
        "![quality vs RTF](plots/quality_vs_rtf.png)",
    ]
    for example in document["examples"]:
        rel = f"plots/{Path(example['png']).name}"
        lines.append(
            f"![{example['name']}]({rel}) noisy `{example['noisy']}`, ours `{example['ours']}`, "
            f"clean `{example['clean']}`"
        )
    write_report(out / "quality.md", "\n".join(lines) + "\n")
