"""`denoise eval`: score enhanced files (or the model's output on noisy files) against clean references, or by
DNSMOS alone where there are none."""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

from realtime.errors import EXIT_FAILED, EXIT_OK
from realtime.options import MAX_THREADS, bounded

# Modules with register(bench_subparsers), one `denoise bench NAME` each.
BENCH_MODULES: tuple[str, ...] = (
    "benchmarks.quality",
    "benchmarks.speed",
    "benchmarks.latency",
    "benchmarks.load",
    "benchmarks.reliability",
    "benchmarks.engine_depth",
    "benchmarks.training_speed",
    "benchmarks.shape_race",
    "benchmarks.architectures",
    "benchmarks.virtual_mic",
)


def register(sub: argparse._SubParsersAction) -> None:
    if BENCH_MODULES:
        bench = sub.add_parser(
            "bench",
            help="benchmarks: " + ", ".join(m.rsplit(".", 1)[1].replace("_", "-") for m in BENCH_MODULES),
            description="Measure quality, speed and latency; reports go to benchmarks/results/.",
        )
        bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
        for name in BENCH_MODULES:
            importlib.import_module(name).register(bench_sub)
    importlib.import_module("benchmarks.publish").register(sub)
    p = sub.add_parser(
        "eval",
        help="score enhanced (or noisy, through a model) files against clean ones, or by DNSMOS",
        description="Score PESQ-WB, STOI, ESTOI and SI-SDR per file, overall and per SNR band "
        "(when --csv has an snr_db column). Files pair by relative name. With --noisy, "
        "the model denoises those files first. Without --clean, every audio file is scored by DNSMOS "
        "alone (--dnsmos). Exit 0: scored (what a metric cannot score, such as "
        "silence, is listed on stderr); 1: some files could not be read; 2: usage error.",
    )
    p.add_argument("--clean", metavar="DIR", help="clean reference files (without them: --dnsmos only)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--enhanced", metavar="DIR", help="files to score as they are")
    group.add_argument("--noisy", metavar="DIR", help="noisy files to denoise with --model, then score")
    p.add_argument("--model", help="ONNX model file or shipped model name for --noisy (default: default)")
    p.add_argument("--csv", help="pairs CSV with name and snr_db columns, for per-SNR means")
    p.add_argument("--json", help="also write the results (per file, overall, per SNR) as JSON")
    p.add_argument("--narrowband", action="store_true", help="add narrow-band PESQ")
    p.add_argument(
        "--dnsmos",
        action="store_true",
        help="add DNSMOS P.835 SIG, BAK, OVRL (no reference needed; extra 'dnsmos')",
    )
    p.add_argument(
        "--max-delay-ms",
        type=bounded(float, 0, 1000),
        default=100.0,
        help="search this far for a delay of the scored signal and undo it (0: no alignment)",
    )
    p.add_argument("--jobs", type=bounded(int, 1, MAX_THREADS), help="scoring processes (default: all cores)")
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from benchmarks import dnsmos
    from benchmarks.evaluate import RATE, evaluate, read_snr_csv
    from realtime.audio_io import list_audio
    from realtime.errors import AudioError
    from realtime.model_file import check_report_path, write_json_atomic
    from training.metrics import METRICS
    from training.paired import match_pairs

    if args.clean is None and not args.dnsmos:
        raise AudioError("give --clean DIR for the reference metrics, or --dnsmos to score without a reference")
    if args.clean is None and args.narrowband:
        raise AudioError("--narrowband needs --clean DIR")
    if args.dnsmos:
        dnsmos.model_path()  # a missing extra fails here, before any denoising
    snr = read_snr_csv(args.csv) if args.csv else {}
    reference = (*METRICS, "pesq_nb") if args.narrowband else METRICS
    metrics = (reference if args.clean else ()) + (dnsmos.METRICS if args.dnsmos else ())
    with tempfile.TemporaryDirectory(prefix="rtdenoise-eval-") as scratch:
        scored_dir = Path(args.enhanced) if args.enhanced else Path(args.noisy)
        if args.clean:
            triples = [(p.name, p.clean, p.noisy) for p in match_pairs(scored_dir, Path(args.clean), strict=True)]
        else:
            triples = [(p.relative_to(scored_dir).as_posix(), None, p) for p in list_audio(scored_dir)]
        if args.json:  # checked before any work: the report must not replace an input, nor fail at the end
            inputs = {Path(f).resolve() for triple in triples for f in triple[1:] if f is not None}
            check_report_path(Path(args.json), frozenset(inputs | ({Path(args.csv).resolve()} if args.csv else set())))
        if args.noisy:
            from realtime.files import Job, Settings, denoise_files

            out = Path(scratch)
            jobs = [Job(noisy, out / name) for name, _, noisy in triples]
            if denoise_files(jobs, Settings(model_path=args.model, block_size=4096), None):
                raise AudioError(f"{args.noisy}: some noisy files could not be denoised")
            triples = [(name, clean, out / name) for name, clean, _ in triples]
        report = evaluate(triples, metrics, int(args.max_delay_ms * RATE / 1000), args.jobs)
    if snr:
        missing = [name for name, _, _ in triples if name not in snr]
        if missing:
            raise AudioError(
                f"{args.csv}: no snr_db for {missing[0]}"
                + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            )
        report.snr = {name: snr[name] for name, _, _ in triples}
    print(report.table())
    for failure in report.failures():
        print(f"not scored: {failure}", file=sys.stderr)
    for warning in report.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        write_json_atomic(Path(args.json), report.to_dict())
    return EXIT_FAILED if any("read" in f.errors for f in report.files) else EXIT_OK
