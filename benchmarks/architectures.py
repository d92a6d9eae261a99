"""The model families side by side: validation score per CPU hour from the families' race, each run's best
checkpoint on the dev set, its size, MACs per second, latency and streaming cost; the noisy input and the
oracle IRM as the floor and the ceiling.

Train:   denoise bench shape-race run --set families --minutes M --jobs 2   (rerun to extend: the runs resume)
Report:  denoise bench architectures   (exports each run's best.pt beside it, scores it on dev through the
         streaming engine, times every family in turns; writes benchmarks/results/architectures.md, .json, .png)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.peers import Options, OursStreaming
from benchmarks.peers.reference import NoisyInput, OracleIRM
from benchmarks.report import cpu_model, header, shown, write_report
from benchmarks.shape_race import RACE_SETUP, RUNS, SETS, Curve, budgets_of, curves_in, validation_table
from realtime.errors import AudioError

FAMILIES = SETS["families"]
OUT = Path("benchmarks/results/architectures.md")
DEV = Path("../shared/data/audio")
RATE = 16000
BLOCKS = (32, 160)
SECONDS = 10.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "architectures",
        help="the model families side by side (after `bench shape-race run --set families`)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--runs", type=Path, default=RUNS["families"], help="the families' runs")
    p.add_argument("--noisy", type=Path, default=DEV / "denoising/dev", help="scored set, noisy (default: dev)")
    p.add_argument("--clean", type=Path, default=DEV / "voice_origin/dev", help="scored set, clean")
    p.add_argument("--rounds", type=int, default=3, help="timing rounds, the families taking turns (default 3)")
    p.add_argument("--out", type=Path, default=OUT)
    p.set_defaults(run=run)


def export_best(run: Path) -> Path:
    """The run's best.pt exported beside it (again only when the checkpoint is newer than the export; a clone
    has the export, committed, and not the checkpoint)."""
    checkpoint, model = run / "best.pt", run / "best.onnx"
    if checkpoint.is_file() and (not model.is_file() or model.stat().st_mtime < checkpoint.stat().st_mtime):
        from training.export import export

        export(checkpoint, model)
    if not model.is_file():
        raise AudioError(f"{run}: neither best.pt nor best.onnx: train it first (bench shape-race run)")
    return model


def dev_scores(systems: dict[str, object], noisy: Path, clean: Path) -> dict[str, dict[str, float]]:
    """Each system's mean PESQ-WB / STOI / ESTOI / SI-SDR over the pairs (output aligned to the noisy input)."""
    from tqdm import tqdm

    from benchmarks.evaluate import Report
    from benchmarks.quality import run_file
    from realtime.audio_io import read_audio
    from training.metrics import METRICS
    from training.paired import match_pairs

    files: dict[str, list] = {key: [] for key in systems}
    for pair in tqdm(match_pairs(noisy, clean, strict=True), desc="dev", unit="file"):
        x, _ = read_audio(pair.noisy, RATE, mono=True)
        s, _ = read_audio(pair.clean, RATE, mono=True)
        n = min(len(x), len(s))
        for key, system in systems.items():
            files[key].append(run_file(pair.name, x[:n], s[:n], system, RATE // 10).score)
    return {key: Report(METRICS, scored).mean() for key, scored in files.items()}


def streaming_costs(systems: dict[str, OursStreaming], rounds: int) -> dict[str, dict[int, float]]:
    """Single-thread RTF of each family's engine per block size: the median of `rounds` rounds in which the
    families take turns (this machine's speed wanders; turns keep the comparison within each round)."""
    from benchmarks.speed import time_stream
    from realtime.audio_io import read_audio

    audio, _ = read_audio(Path(__file__).parents[1] / "realtime/assets/example_noisy.flac", RATE, mono=True)
    audio = np.resize(audio, int(SECONDS * RATE))
    rtfs: dict[str, dict[int, list[float]]] = {key: {b: [] for b in BLOCKS} for key in systems}
    for _ in range(rounds):
        for key, system in systems.items():
            for block in BLOCKS:
                rtfs[key][block].append(time_stream(system, audio, block)["rtf"])
    return {key: {b: float(np.median(v)) for b, v in per.items()} for key, per in rtfs.items()}


def run(args: argparse.Namespace) -> int:
    from realtime.engine import Denoiser
    from realtime.model_file import load_model_info

    curves = curves_in(args.runs, FAMILIES)
    budgets = budgets_of(curves)
    models = {name: export_best(args.runs / name) for name in curves}
    infos = {name: load_model_info(path) for name, path in models.items()}
    labels = {name: FAMILIES[name][0] for name in curves}
    params = {name: info.sidecar.parameters for name, info in infos.items()}
    table, winner = validation_table(curves, labels, params, budgets, "family")
    engines = {name: OursStreaming(Options(model=path)) for name, path in models.items()}
    for system in engines.values():
        system.load()
    references = {"noisy": NoisyInput(Options()), "oracle_irm": OracleIRM(Options())}
    dev = dev_scores({**references, **engines}, args.noisy, args.clean)
    costs = streaming_costs(engines, args.rounds)
    families = {}
    for name, path in models.items():
        info = infos[name]
        best = max(curves[name].val, key=lambda row: row[1])
        families[name] = {
            "label": FAMILIES[name][0],
            "model": shown(path),
            "config": info.sidecar.model_config,
            "parameters": info.sidecar.parameters,
            "macs_per_second": engines[name].macs_per_second(),
            "algorithmic_latency_ms": info.delay * 1000 / info.sample_rate,
            "latency_at_32_ms": Denoiser(path, block_size=32).latency * 1000 / info.sample_rate,
            "rtf": {str(b): v for b, v in costs[name].items()},
            "steps": curves[name].steps,
            "cpu_hours": curves[name].cpu_hours,
            "best_validation": {"cpu_hours": best[0], "pesq_wb": best[1], "stoi": best[2], "si_sdr": best[3]},
            "dev": dev[name],
        }
    document = {
        "header": header("1 (training: one thread per run; timing: onnxruntime intra-op 1)"),
        "budgets": budgets,
        "winner_at_common_budget": winner,
        "dev_set": {"noisy": shown(args.noisy), "clean": shown(args.clean)},
        "references": {key: dev[key] for key in references},
        "families": families,
        "curves": {name: curves[name].val for name in curves},
    }
    write_reports(document, table, curves, args.out)
    print(f"wrote {args.out}: highest validation PESQ-WB at {budgets[-1]:g} CPU hours: {FAMILIES[winner][0]}")
    return 0


def _row(values: dict[str, float]) -> str:
    return f"{values['pesq_wb']:.3f} | {values['stoi']:.4f} | {values['si_sdr']:.2f}"


def write_reports(document: dict, table: list[str], curves: dict[str, Curve], out: Path) -> None:
    from benchmarks.plots import learning_curves

    families, refs = document["families"], document["references"]
    lines = [
        "# Model families",
        "",
        "Commands: `denoise bench shape-race run --set families --minutes M --jobs 2` (training, resumable), then "
        "`denoise bench architectures` (this report)  ",
        f"Date: {time.strftime('%Y-%m-%d')}; CPU: {cpu_model()}; {RACE_SETUP}",
        "",
        "## Validation score per CPU hour",
        "",
        "Best validation PESQ-WB reached within each CPU budget (what the run's best.pt held then).",
        "",
        *table,
        "",
        f"![validation PESQ-WB per CPU hour]({out.with_suffix('.png').name})",
        "",
        f"## On the dev set ({document['dev_set']['noisy']}: unseen speakers and noise types)",
        "",
        "Each run's best.pt (chosen on validation) exported, run by the streaming engine on each whole file; "
        "its CPU hours are the run's when that checkpoint was saved. MACs per second count the graph's matrix "
        "ops; the latency at 32-sample blocks is the engine's, algorithmic plus buffering. RTF: one thread, "
        "the median of rounds in which the families take turns.",
        "",
        "| system | CPU h | params (M) | MMAC/s | algorithmic latency (ms) | latency at 32 samples (ms) "
        "| RTF @ 32 | RTF @ 160 | dev PESQ-WB | dev STOI | dev SI-SDR (dB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| noisy input | | | | | | | | {_row(refs['noisy'])} |",
    ]
    for entry in families.values():
        macs = entry["macs_per_second"]
        lines.append(
            f"| {entry['label']} | {entry['best_validation']['cpu_hours']:.2f} | {entry['parameters'] / 1e6:.2f} | "
            f"{macs / 1e6:,.0f} | {entry['algorithmic_latency_ms']:.1f} | {entry['latency_at_32_ms']:.1f} | "
            f"{entry['rtf']['32']:.3f} | {entry['rtf']['160']:.3f} | {_row(entry['dev'])} |"
        )
    lines += [f"| oracle IRM (upper bound) | | | | | | | | {_row(refs['oracle_irm'])} |", ""]
    on_dev = max(families, key=lambda name: families[name]["dev"]["pesq_wb"])
    winner = document["winner_at_common_budget"]
    lines += [
        f"Highest validation PESQ-WB at {document['budgets'][-1]:g} CPU hours: **{families[winner]['label']}** "
        f"(algorithmic latency {families[winner]['algorithmic_latency_ms']:.1f} ms); highest dev PESQ-WB: "
        f"**{families[on_dev]['label']}** ({families[on_dev]['dev']['pesq_wb']:.3f}, noisy input "
        f"{refs['noisy']['pesq_wb']:.3f}).",
        "",
    ]
    path = out.with_suffix(".json")
    write_report(path, json.dumps(document, indent=2) + "\n")
    learning_curves(
        {name: (families[name]["label"], curves[name].val) for name in families},
        {name: families[name]["dev"]["pesq_wb"] for name in families},
        refs,
        out.with_suffix(".png"),
    )
    write_report(out, "\n".join(lines) + "\n")
