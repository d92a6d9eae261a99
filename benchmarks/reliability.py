"""Run the bad-input and fault corpus (tests/bad_inputs.py) through the real `denoise` command and write
benchmarks/results/reliability.md: per case the command, exit code, message, whether the inputs kept their
checksums and whether a partial file was left. The same corpus runs in CI as tests/test_reliability.py.

    denoise bench reliability [--only SUBSTRING] [--out benchmarks/results/reliability.md]
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.report import write_report

if TYPE_CHECKING:
    from bad_inputs import Outcome

ROOT = Path(__file__).resolve().parent.parent


def cell(text: str, limit: int = 300) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("\n", " ") or "–"


def table(outcomes: dict[str, Outcome]) -> str:
    from bad_inputs import command_line  # on the path once `run` put it there

    rows = [
        "| case | command | exit | message | inputs unchanged | partial output left | holds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, o in outcomes.items():
        unchanged = ("yes" if o.inputs_unchanged else "**NO**") if o.case.inputs else "–"
        partial = ", ".join(o.partial_left) or "none"
        holds = "yes" if not o.problems else "**NO**: " + "; ".join(o.problems)
        case_name = name + (f" ({o.case.note})" if o.case.note else "")
        rows.append(
            f"| {cell(case_name)} | `{cell(command_line(o.case))}` | {o.code} | {cell(o.message)} | {unchanged} "
            f"| {partial} | {cell(holds)} |"
        )
    return "\n".join(rows)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reliability", help="the bad-input and fault corpus, case by case", description=__doc__.splitlines()[0]
    )
    p.add_argument("--only", help="run only the cases whose name contains this")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reliability.md")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not (ROOT / "tests" / "bad_inputs.py").exists():
        raise ValueError(f"{ROOT / 'tests'}: the corpus lives with the tests: run this from a source checkout")
    sys.path.insert(0, str(ROOT / "tests"))
    from bad_inputs import CASES, run_case

    names = [n for n in CASES if args.only is None or args.only in n]
    outcomes: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="rtdenoise-reliability-") as scratch:
        for name in names:
            root = Path(scratch) / re.sub(r"\W+", "-", name).strip("-")
            root.mkdir()
            start = time.perf_counter()
            outcome = run_case(CASES[name](root))
            outcomes[name] = outcome
            status = "ok" if not outcome.problems else "FAILED: " + "; ".join(outcome.problems)
            print(f"{name}: exit {outcome.code}, {time.perf_counter() - start:.1f} s, {status}", file=sys.stderr)
    failed = [o for o in outcomes.values() if o.problems]
    command = "denoise bench reliability" + (f" --only '{args.only}'" if args.only else "")
    report = [
        "# Reliability: bad input and faults",
        "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d')}; {platform.system()} {platform.machine()}, Python "
        f"{platform.python_version()}. Each case runs the real `denoise` command (`python -m realtime.cli`) in "
        "a fresh folder; paths are relative to it. The same corpus runs in CI: `pytest tests/test_reliability.py`.",
        "",
        "Every case must either work (exit 0; a denoised file keeps the input's rate, channels, sample format and "
        "length, and is finite and within full scale) or fail with the expected exit code and a message naming "
        "the file and the reason, never a traceback; on failure no output file appears. In every case the inputs "
        "keep their sha256 and no temporary file (`.*.part`, `.*.tmp`) is left.",
        "",
        f"**{len(outcomes) - len(failed)} of {len(outcomes)} cases hold.**",
        "",
        table(outcomes),
        "",
    ]
    write_report(args.out, "\n".join(report))
    print(f"wrote {args.out}: {len(outcomes) - len(failed)} of {len(outcomes)} cases hold", file=sys.stderr)
    return 1 if failed else 0
