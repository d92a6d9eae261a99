"""Validation score per CPU hour of model shapes (or of model families: `--set families`): each trained from
scratch the same way, then the best validation PESQ-WB it had reached within equal CPU budgets.

Throughput alone (`benchmarks.training_speed`) does not pick a shape: a faster shape may learn less per step.
So every shape runs `denoise train` with the default run's data, seed, batch (8 x 2 s), schedule and
torch.compile, on one thread, `--jobs` shapes at a time (one per core, so each has a core to itself). CPU hours
are the training steps' process time, as in every run's train_log.csv (validation not counted).

Run:     denoise bench shape-race run --minutes 42 [--jobs 2] [--set families]   (rerun to extend: the runs resume)
Report:  denoise bench shape-race report   (writes its section of benchmarks/results/training-speed.md; the
         families' race is reported with their streaming costs by `denoise bench architectures`)
"""

from __future__ import annotations

import argparse
import csv
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.report import cpu_model, write_section
from model.config import FamilyConfig, LSTMTasNetConfig, TasNetConfig, UNetConfig, WaveUNetConfig

REPORT = Path("benchmarks/results/training-speed.md")
SECTION = "Validation score per CPU hour"

# folder name -> (label, config); each set trains in its own folder of runs
SETS: dict[str, dict[str, tuple[str, FamilyConfig]]] = {
    "shapes": {
        "default": ("default: L=64, cLN, N=128 H=128, X=8 R=2", TasNetConfig()),
        "L32": ("L=32 (window 2 ms)", TasNetConfig(L=32)),
        "cumLN": ("cumLN (the paper's cumulative norm)", TasNetConfig(norm="cumLN")),
        "narrow": ("narrow: N=64 H=96", TasNetConfig(N=64, H=96)),
    },
    "families": {
        "conv-tasnet": ("Conv-TasNet (the default's shape)", TasNetConfig()),
        "stft-unet": ("STFT U-Net mask (Jansson 2017)", UNetConfig()),
        "wave-unet": ("Wave-U-Net (Stoller 2018)", WaveUNetConfig()),
        "lstm-tasnet": ("LSTM TasNet (Luo 2018)", LSTMTasNetConfig()),
    },
}
RUNS = {"shapes": Path("training/runs/shape-race"), "families": Path("training/runs/families")}


def model_options(config: FamilyConfig) -> list[str]:
    """`denoise train` options that build `config`: its family, and each field that differs from the default."""
    default = asdict(type(config)())  # type: ignore[call-overload]
    changed = {k: v for k, v in asdict(config).items() if default[k] != v}  # type: ignore[call-overload]
    if isinstance(config, TasNetConfig):
        return [arg for key, value in changed.items() for arg in (f"--{key}", str(value))]
    return ["--arch", config.arch, *(arg for k, v in changed.items() for arg in ("--model-option", f"{k}={v}"))]


def train_command(run: Path, config: FamilyConfig, speech: list[str], noise: list[str], minutes: float) -> list[str]:
    """`denoise train` for one entry: a new run, or the resumption of the one already in `run`."""
    command = [sys.executable, "-m", "realtime.cli", "train", "--out", str(run), "--minutes", f"{minutes:g}"]
    command += ["--threads", "1", "--val-every", "250"]
    if (run / "last.pt").exists():
        return [*command, "--resume"]
    command += ["--speech", *speech, "--noise", *noise, "--compile", "--seed", "0"]
    return command + model_options(config)


def race(
    runs: Path,
    entries: dict[str, tuple[str, FamilyConfig]],
    speech: list[str],
    noise: list[str],
    minutes: float,
    jobs: int,
) -> None:
    """Train every entry for `minutes` of wall time, `jobs` at a time; each run's output goes to its train.out."""

    def one(name: str) -> int:
        run = runs / name
        run.mkdir(parents=True, exist_ok=True)
        command = train_command(run, entries[name][1], speech, noise, minutes)
        with open(run / "train.out", "a") as out:
            out.write(f"$ {shlex.join(command)}\n")
            out.flush()
            code = subprocess.run(command, stdout=out, stderr=out).returncode
        print(f"{name}: exit {code} ({run / 'train.out'})", flush=True)
        return code

    with ThreadPoolExecutor(jobs) as pool:
        codes = list(pool.map(one, entries))
    if any(codes):
        raise SystemExit(f"{sum(1 for c in codes if c)} of {len(codes)} runs failed: see their train.out")


@dataclass
class Curve:
    """One run's validation scores against its CPU hours."""

    steps: int
    cpu_hours: float
    val: list[tuple[float, float, float, float]]  # (cpu hours, PESQ-WB, STOI, SI-SDR)

    def best_within(self, budget: float) -> tuple[float, float, float, float] | None:
        """The validation row the run's best.pt held after `budget` CPU hours (highest PESQ-WB so far)."""
        reached = [row for row in self.val if row[0] <= budget]
        return max(reached, key=lambda row: row[1]) if reached else None


def read_curve(log: Path) -> Curve:
    steps, cpu_hours, val = 0, 0.0, []
    with open(log, newline="") as f:
        for row in csv.DictReader(f):
            if row["kind"] == "train":
                steps, cpu_hours = int(row["step"]), float(row["cpu_hours"])
            elif row["kind"] == "val":
                val.append(
                    (
                        float(row["cpu_hours"]),
                        float(row["val_pesq_wb"]),
                        float(row["val_stoi"]),
                        float(row["val_si_sdr"]),
                    )
                )
    return Curve(steps, cpu_hours, val)


def curves_in(runs: Path, entries: dict[str, tuple[str, FamilyConfig]]) -> dict[str, Curve]:
    """The validated runs of `entries` found in `runs`."""
    logs = {name: runs / name / "train_log.csv" for name in entries}
    curves = {name: curve for name, log in logs.items() if log.exists() and (curve := read_curve(log)).val}
    if not curves:
        raise ValueError(f"no validated runs in {runs}: run `denoise bench shape-race run` first")
    return curves


def budgets_of(curves: dict[str, Curve], step_hours: float = 0.25) -> list[float]:
    """CPU budgets every run has been validated within: steps of `step_hours`, then the whole common budget."""
    common = min(c.val[-1][0] for c in curves.values())  # every run validated up to here
    budgets = [step_hours * k for k in range(1, int(common / step_hours) + 1)]
    if not budgets or common - budgets[-1] >= 0.01:
        budgets.append(round(common, 3))
    return budgets


def validation_table(
    curves: dict[str, Curve], labels: dict[str, str], params: dict[str, int], budgets: list[float], heading: str
) -> tuple[list[str], str]:
    """The markdown table of best validation scores within each budget, and the winner at the last budget."""
    final = budgets[-1]
    best = {name: [curve.best_within(b) for b in budgets] for name, curve in curves.items()}
    winner = max(curves, key=lambda name: best[name][-1][1] if best[name][-1] else 0)
    lines = [
        f"| {heading} | params (M) | steps per CPU hour | "
        + " | ".join(f"PESQ-WB @ {b:g} CPU h" for b in budgets)
        + f" | STOI @ {final:g} h | SI-SDR @ {final:g} h |",
        "|---|---|---|" + "---|" * (len(budgets) + 2),
    ]
    for name, curve in curves.items():
        label = labels[name]
        cells = [f"{row[1]:.3f}" if row else "-" for row in best[name]]
        last = best[name][-1]
        tail = [f"{last[2]:.4f}", f"{last[3]:.2f}"] if last else ["-", "-"]
        mark = f"**{label}**" if name == winner else label
        lines.append(
            f"| {mark} | {params[name] / 1e6:.2f} | {curve.steps / curve.cpu_hours if curve.cpu_hours else 0:,.0f} | "
            + " | ".join(cells + tail)
            + " |"
        )
    return lines, winner


RACE_SETUP = (
    "one thread per run, one run per core; from scratch, batches of 8 x 2 s, seed 0, torch.compile, on-the-fly "
    "mixing of ../shared/data speech/train + noise/train (SNR 0-20 dB); validation on the run's 32 held-out "
    "mixtures (never the test set)."
)


def report(runs: Path, out: Path, step_hours: float = 0.25) -> str:
    """Write the table of the shapes found in `runs` to their section of `out`; returns the winner's folder name."""
    entries = SETS["shapes"]
    curves = curves_in(runs, entries)
    budgets = budgets_of(curves, step_hours)
    from model.families import build

    labels = {name: entries[name][0] for name in curves}
    params = {name: build(entries[name][1]).num_parameters() for name in curves}
    table, winner = validation_table(curves, labels, params, budgets, "shape")
    lines = [
        f"Command: `denoise bench shape-race run --minutes M --jobs 2` then "
        f"`denoise bench shape-race report` (runs in `{runs}`, their train_log.csv committed)  ",
        f"Date: {time.strftime('%Y-%m-%d')}; CPU: {cpu_model()}; {RACE_SETUP}",
        "",
        "Best validation PESQ-WB reached within each CPU budget (what the run's best.pt held then); the last "
        "columns are that checkpoint's STOI and SI-SDR at the largest common budget.",
        "",
        *table,
        "",
        f"Highest at {budgets[-1]:g} CPU hours: **{entries[winner][0]}**.",
    ]
    write_section(out, SECTION, lines)
    return winner


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shape-race", help="validation score per CPU hour of model shapes", description=__doc__.splitlines()[0]
    )
    race_sub = p.add_subparsers(dest="race", required=True, metavar="ACTION")
    r = race_sub.add_parser("run", help="train every shape (resuming runs already there)")
    r.add_argument("--minutes", type=float, required=True, help="wall minutes for each shape in this call")
    r.add_argument("--jobs", type=int, default=2, help="shapes trained at once (default 2: one per core)")
    r.add_argument("--speech", nargs="+", default=["../shared/data/speech/train"])
    r.add_argument("--noise", nargs="+", default=["../shared/data/noise/train"])
    r.add_argument("--set", choices=list(SETS), default="shapes", help="Conv-TasNet shapes (default) or families")
    r.add_argument("--runs", type=Path, help="folder of the runs (default: training/runs/shape-race or /families)")
    r = race_sub.add_parser("report", help=f"write the shapes' table to the '{SECTION}' section of the report")
    r.add_argument("--runs", type=Path, default=RUNS["shapes"])
    r.add_argument("--out", type=Path, default=REPORT)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.race == "run":
        race(args.runs or RUNS[args.set], SETS[args.set], args.speech, args.noise, args.minutes, args.jobs)
    else:
        winner = report(args.runs, args.out)
        print(f"wrote {args.out}: highest validation PESQ-WB at the common budget: {winner}")
    return 0
