"""`denoise bench speed`: single-thread streaming speed of our engine and the streaming peers, per block size.

Each system runs in a fresh process (so its peak memory is its own), one thread, fed the same audio block by
block as a live stream would be; each `feed` is timed. The systems take turns for `--rounds` rounds and each
block size reports its median round, so a slow spell of a shared machine falls on one round of one system
rather than on the whole of it. Also: our model's parameters and MACs per second of
audio, a profile of our engine at one hop per run (time in the model's runs against the rest of `feed`, for
the compiled step and the ONNX graphs; onnxruntime's kernel time by op type), and training throughput when
torch is installed. The headline is issue 4's check: our engine against RNNoise (pyrnnoise, its resampling
included) at 160-sample blocks, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.peers import SYSTEMS, Options, System, select, triage
from benchmarks.peers.base import RATE
from benchmarks.quality import RESULTS, add_system_options, options_from
from realtime.errors import EXIT_OK
from realtime.model_file import default_model_path, load_model_info

BLOCKS = (16, 32, 64, 128, 160, 256, 512, 1024)
WARMUP_SECONDS = 1.0
PROFILE_RUNS = 1000  # profiled model runs at one hop each (the profiler slows each run ~10x)
LIVE_RATE, LIVE_BLOCK = 48000, 64  # the live chain's profile: `denoise live` at JACK period 64
EVICT_BYTES = 8 << 20  # written between the profile's cold callbacks: more than this machine's L2
HEADLINE_BLOCK, OURS, BASELINE = 160, "ours_stream", "rnnoise"
STREAMING_KEYS = tuple(s.key for s in SYSTEMS if s.streaming)
INPUT = default_model_path().parent / "example_noisy.flac"

if TYPE_CHECKING:
    from realtime.engine import Denoiser


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "speed",
        help="streaming speed (RTF, compute per block) of ours and the streaming peers",
        description="Single-thread real-time factor and compute time per block (p50/p99/max) for each block "
        "size, peak memory per system, our model's parameters and MACs/s, a profile of our engine by op type, "
        "training throughput (with torch); writes speed.md, speed.json and a plot.",
    )
    p.add_argument("--input", type=Path, default=INPUT, help="audio to stream (default: the shipped example)")
    p.add_argument("--seconds", type=float, default=10.0, help="loop the input to this length (default 10)")
    p.add_argument("--blocks", type=int, nargs="+", default=list(BLOCKS), help="block sizes in samples at 16 kHz")
    p.add_argument("--train-steps", type=int, default=5, help="timed training steps (0: skip; needs torch)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of turns over the systems (default 3)")
    add_system_options(p, STREAMING_KEYS)
    p.add_argument("--out", type=Path, default=RESULTS, help=f"report folder (default {RESULTS})")
    p.set_defaults(run=run)


def time_stream(system: System, audio: np.ndarray, block: int) -> dict[str, float]:
    """Feed `audio` block by block to a fresh stream (after a warm-up); wall time per feed and RTFs."""
    warm = system.stream(block)
    for i in range(0, int(WARMUP_SECONDS * RATE) - block + 1, block):
        warm.feed(audio[i : i + block])
    stream = system.stream(block)
    times = []
    cpu = time.process_time()
    for i in range(0, len(audio) - block + 1, block):
        start = time.perf_counter()
        stream.feed(audio[i : i + block])
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    ms = np.array(times) * 1000
    audio_seconds = len(times) * block / RATE
    return {
        "block": block,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "rtf": float(ms.sum() / 1000 / audio_seconds),
        "rtf_cpu": cpu / audio_seconds,
    }


def profile_ours(model: Path | None, audio: np.ndarray) -> dict:
    """Where a one-hop feed's time goes (one hop per feed, as live runs): the default engine (the compiled
    step where the model has it) unprofiled, time in its runs against the rest of `feed`; then the ONNX engine
    (the one-hop graph where the model has short-run graphs) under onnxruntime's profiler for PROFILE_RUNS
    feeds (kernel time by op type; the profiler slows the kernels, so the shares say more than the sums), and
    unprofiled the same way."""
    from realtime.engine import Denoiser

    hop = load_model_info(model).hop
    hops = audio[: len(audio) // hop * hop].reshape(-1, hop)
    with tempfile.TemporaryDirectory(prefix="rtdenoise-profile-") as scratch:
        profiled = Denoiser(model, block_size=hop, profile_prefix=str(Path(scratch) / "ours"), compiled=False)
        for chunk in np.resize(hops, (PROFILE_RUNS, hop)):
            profiled.feed(chunk)
        events = [e for path in profiled.runner.end_profiling() for e in json.loads(Path(path).read_text())]
    runs = sum(1 for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    time_by_op, nodes_by_op = Counter(), Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            time_by_op[event["args"]["op_name"]] += event["dur"]
            nodes_by_op[event["args"]["op_name"]] += 1
    engines = {"default": Denoiser(model, block_size=hop), "onnx": Denoiser(model, block_size=hop, compiled=False)}
    timed = {name: _feed_times(engine, hops) for name, engine in engines.items()}
    return {
        "hop": hop,
        "runner": type(engines["default"].runner).__name__,
        "graph": "short-run" if type(engines["onnx"].runner).__name__ == "RingRunner" else "main",
        "runs": runs,
        "ops": [
            {"op": op, "nodes": nodes_by_op[op] // runs, "us_per_run": total / runs}
            for op, total in time_by_op.most_common()
        ],
        **{f"{name}_{key}": value for name, times in timed.items() for key, value in times.items()},
        "live_chain": profile_live_chain(model, audio),
    }


def profile_live_chain(model: Path | None, audio: np.ndarray) -> dict[str, float]:
    """us per callback of `denoise live`'s own work at LIVE_RATE in LIVE_BLOCK-frame callbacks, driven by hand
    (no audio server), with the engine in the callback: the callback whole and the chain inside it (compiled end
    to end), with warm caches, then with EVICT_BYTES written between callbacks, as the audio server and the
    other clients do to the caches on a live machine; and over the same audio, a chain run part by part
    (`Chain._parts`, what models without the compiled step run): its resamplers and its engine, each timed."""
    from realtime.engine import Denoiser
    from realtime.live import Bridge, Chain
    from realtime.resample import Resampler

    hop = load_model_info(model).hop
    x = Resampler(RATE, LIVE_RATE).process(np.asarray(audio, np.float32))
    blocks = len(x) // LIVE_BLOCK
    out = np.zeros((LIVE_BLOCK, 1), np.float32)
    junk = np.zeros(EVICT_BYTES // 8)
    times = {}
    for cold in (False, True):
        totals = {"callback": 0.0, "chain": 0.0}
        bridge = Bridge(Chain(Denoiser(model, block_size=hop), LIVE_RATE), LIVE_BLOCK, 0, in_callback=True)
        bridge.chain.process = _timed(bridge.chain.process, totals, "chain")
        for k in range(blocks):
            if cold:
                junk += 1.0
            start = time.perf_counter()
            bridge.callback(x[k * LIVE_BLOCK : (k + 1) * LIVE_BLOCK, None], out, LIVE_BLOCK, None, None)
            totals["callback"] += time.perf_counter() - start
        times |= {f"{key}_cold" if cold else key: value for key, value in totals.items()}
    chain = Chain(Denoiser(model, block_size=hop), LIVE_RATE)
    parts = {"parts": 0.0, "down": 0.0, "engine": 0.0, "up": 0.0}
    for key, owner, name in (
        ("parts", chain, "_parts"),
        ("down", chain.down, "process"),
        ("engine", chain.engine, "feed"),
        ("up", chain.up, "process"),
    ):
        setattr(owner, name, _timed(getattr(owner, name), parts, key))
    for k in range(blocks):
        chain._parts(x[k * LIVE_BLOCK : (k + 1) * LIVE_BLOCK])
    return {"callbacks_per_second": LIVE_RATE / LIVE_BLOCK} | {k: v / blocks * 1e6 for k, v in (times | parts).items()}


def _timed(function: Callable, totals: dict[str, float], key: str) -> Callable:
    """`function`, adding the seconds each call takes to `totals[key]`."""

    def timed(*args: object) -> object:
        start = time.perf_counter()
        result = function(*args)
        totals[key] += time.perf_counter() - start
        return result

    return timed


def _feed_times(engine: Denoiser, hops: np.ndarray) -> dict[str, float]:
    """us per one-hop feed of `engine` (after a warm-up), in its model's runs and outside them."""
    engine.feed(hops[: int(WARMUP_SECONDS * RATE) // len(hops[0])].reshape(-1))
    engine.compute_times.clear()
    start = time.perf_counter()
    for chunk in hops:
        engine.feed(chunk)
    feed_us = (time.perf_counter() - start) / len(hops) * 1e6
    run_us = sum(engine.compute_times) / len(hops) * 1e6
    return {"feed_us": feed_us, "run_us": run_us, "outside_run_us": feed_us - run_us}


def _peak_mib() -> float:
    """This process's peak resident memory (Linux; NaN elsewhere). VmHWM, not ru_maxrss: that keeps the parent's."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.is_file() else []
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")), math.nan)


def measure(key: str, options: Options, audio: np.ndarray, blocks: list[int], profile: bool) -> dict:
    """In a fresh process: load one system, time it at each block size, report its peak memory (and, for ours
    with `profile`, the profile)."""
    base = _peak_mib()
    (system,) = select([key], options)
    system.load()
    rows = [time_stream(system, audio, block) for block in blocks]
    entry = {"label": system.label, "blocks": rows, "peak_rss_mib": _peak_mib(), "own_rss_mib": _peak_mib() - base}
    if key == OURS and profile:
        entry["profile"] = profile_ours(options.model, audio)
    return entry


def median_round(rounds: list[dict]) -> dict:
    """One system's rounds as one entry: per block size the round with the median RTF (its percentiles too),
    with every round's RTF beside it; the first round's memory and profile."""
    rows = []
    for i, _ in enumerate(rounds[0]["blocks"]):
        runs = sorted((r["blocks"][i] for r in rounds), key=lambda row: row["rtf"])
        rows.append({**runs[(len(runs) - 1) // 2], "rtf_rounds": [r["blocks"][i]["rtf"] for r in rounds]})
    return {**rounds[0], "blocks": rows}


def training_throughput(config: dict, steps: int) -> dict | None:
    """Training speed (x real time) of a model of this config (a sidecar's `model_config`), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from benchmarks.training_speed import steps_per_second
    from model.config import config_from_dict

    batch, seconds = 8, 2.0
    rate = steps_per_second(config_from_dict(config), batch, seconds, steps)
    return {
        "x_realtime": rate * batch * seconds,
        "steps_per_hour": rate * 3600,
        "batch": batch,
        "seconds": seconds,
        "steps": steps,
        "threads": torch.get_num_threads(),
    }


def _macs(system: System) -> float | None:
    try:
        return system.macs_per_second()
    except ImportError:  # counting needs the onnx package
        return None


def run(args: argparse.Namespace) -> int:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from benchmarks.report import header, shown
    from realtime.audio_io import read_audio
    from realtime.errors import AudioError

    if args.seconds <= WARMUP_SECONDS or min(args.blocks) < 1 or args.train_steps < 0 or args.rounds < 1:
        raise AudioError(
            f"--seconds must exceed {WARMUP_SECONDS:g}, --blocks be >= 1, --train-steps >= 0, --rounds >= 1"
        )
    options = options_from(args)
    systems, skipped = triage(select(args.systems or list(STREAMING_KEYS), options, streaming_only=True))
    if not systems:
        raise AudioError("no system can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    head = header(
        "1 per system (onnxruntime intra-op 1, one process at a time); training: torch default", options.model
    )
    source, _ = read_audio(args.input, RATE, mono=True)
    audio = np.resize(source, int(args.seconds * RATE))
    info = load_model_info(options.model)
    training = training_throughput(info.document["model_config"], args.train_steps) if args.train_steps else None
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the measuring processes
    rounds: dict[str, list[dict]] = {system.key: [] for system in systems}
    for turn in range(args.rounds):
        for system in systems:
            print(f"round {turn + 1} of {args.rounds}: timing {system.label} ...", flush=True)
            with ProcessPoolExecutor(1, get_context("spawn")) as pool:
                job = pool.submit(measure, system.key, options, audio, args.blocks, turn == 0)
                rounds[system.key].append(job.result())
    results = {}
    for system in systems:
        results[system.key] = median_round(rounds[system.key])
        results[system.key]["macs_per_second"] = _macs(system)
    document = {
        "header": head,
        "input": {
            "path": shown(args.input),
            "seconds": args.seconds,
            "warmup_seconds": WARMUP_SECONDS,
            "rounds": args.rounds,
        },
        "model": {
            "parameters": info.document.get("parameters"),
            "macs_per_second": results.get(OURS, {}).get("macs_per_second"),
            "latency_ms": 1000 * info.delay / info.sample_rate,
            "training": training,
        },
        "systems": results,
        "skipped": skipped,
    }
    write_reports(document, args.out)
    return EXIT_OK


def headline(systems: dict) -> str:
    """Issue 4's comparison, from this run's table: ours vs RNNoise at 160-sample blocks."""
    rtf = {
        k: next(((r["rtf"], r["rtf_cpu"]) for r in systems[k]["blocks"] if r["block"] == HEADLINE_BLOCK), None)
        for k in (OURS, BASELINE)
        if k in systems
    }
    if len(rtf) < 2 or None in rtf.values():
        return f"Ours vs RNNoise at {HEADLINE_BLOCK}-sample blocks: not measured in this run (both must run at it)."
    (ours, ours_cpu), (base, base_cpu) = rtf[OURS], rtf[BASELINE]
    verdict = f"{base / ours:.2f}x faster" if ours < base else f"{ours / base:.2f}x slower"
    return (
        f"**{HEADLINE_BLOCK}-sample blocks (10 ms), one thread, same run: our engine RTF {ours:.4f} (CPU time "
        f"{ours_cpu:.4f}), RNNoise (pyrnnoise, its 16<->48 kHz resampling included) RTF {base:.4f} (CPU time "
        f"{base_cpu:.4f}): ours is {verdict}.**"
    )


def _rtf(systems: dict, key: str, block: int) -> float | None:
    return next((r["rtf"] for r in systems[key]["blocks"] if r["block"] == block), None) if key in systems else None


def cost_ratios(systems: dict) -> str:
    """Issue 18's check, from this run's table: ours against RNNoise at 32-sample blocks (done when <= 1) and
    against DTLN at 160 (done when <= 0.5)."""
    cells = []
    for peer, label, block, mark in (("rnnoise", "RNNoise", 32, 1.0), ("dtln", "DTLN", 160, 0.5)):
        ours, theirs = _rtf(systems, OURS, block), _rtf(systems, peer, block)
        if ours is None or theirs is None:
            cells.append(f"ours / {label} at {block}-sample blocks: not measured in this run")
        else:
            met = "met" if ours / theirs <= mark else "not met"
            cells.append(f"ours / {label} at {block}-sample blocks {ours / theirs:.2f} (mark <= {mark:g}: {met})")
    return "RTF ratios, medians of the same run: " + "; ".join(cells) + "."


def profile_markdown(profile: dict) -> list[str]:
    """The profile section of speed.md (see `profile_ours`)."""
    total = sum(row["us_per_run"] for row in profile["ops"])
    names = {"StepRunner": "the compiled step", "RingRunner": "the short-run graphs"}
    runner = names.get(profile["runner"], "the main graph")
    lines = [
        "",
        f"## Profile summary: our engine at one hop ({profile['hop']} samples) per run, as live runs it",
        "",
        f"Unprofiled, one hop per `feed`, the default engine ({runner}): {profile['default_feed_us']:.0f} us per "
        f"feed, {profile['default_run_us']:.0f} us of it in the model's runs, {profile['default_outside_run_us']:.0f} "
        f"us in the rest of `feed` (Python and numpy). The ONNX engine (the model's {profile['graph']} graph): "
        f"{profile['onnx_feed_us']:.0f} us per feed, {profile['onnx_run_us']:.0f} us in its runs.",
        "",
        f"onnxruntime's profiler on the ONNX engine, {profile['runs']} runs (it slows the kernels: read the shares, "
        f"the sum is {total:.0f} us per run):",
        "",
        "| op type | nodes | kernel us per run (profiled) | share |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {row['op']} | {row['nodes']} | {row['us_per_run']:.1f} | {100 * row['us_per_run'] / total:.1f}% |"
        for row in profile["ops"]
    ]
    if "live_chain" in profile:
        chain = profile["live_chain"]
        rate = chain["callbacks_per_second"]
        parts = {
            "the callback, whole (compiled copies, the chain, Python between them)": "callback",
            "inside it: the chain, compiled end to end (what live runs)": "chain",
            "the callback, whole, caches cold": "callback_cold",
            "inside it: the chain, caches cold": "chain_cold",
            "a chain run part by part (models without the compiled step), warm": "parts",
            "inside it: resampling 48 -> 16 kHz": "down",
            "inside it: the engine": "engine",
            "inside it: resampling 16 -> 48 kHz": "up",
        }
        lines += [
            "",
            f"### `denoise live`'s own work per part, {LIVE_RATE} Hz in {LIVE_BLOCK}-frame callbacks ({rate:g} a "
            "second, as at JACK period 64), the engine in the callback, driven by hand (no audio server); cold: "
            f"{EVICT_BYTES >> 20} MiB written between callbacks, as the server and the other clients do",
            "",
            "| part | us per callback | share of one core |",
            "|---|---|---|",
            *(f"| {label} | {chain[key]:.1f} | {chain[key] * rate / 1e4:.1f}% |" for label, key in parts.items()),
        ]
    return lines


def write_reports(document: dict, out: Path) -> None:
    """speed.json, speed.md and the RTF-vs-block plot under `out`, each written atomically."""
    from benchmarks.plots import speed_vs_block
    from benchmarks.report import header_markdown, write_report
    from realtime.model_file import write_json_atomic

    systems, model = document["systems"], document["model"]
    (out / "plots").mkdir(parents=True, exist_ok=True)
    speed_vs_block(systems, out / "plots" / "speed_rtf_vs_block.png")
    write_json_atomic(out / "speed.json", document)
    blocks = [row["block"] for row in next(iter(systems.values()))["blocks"]]
    train = model["training"]
    macs = f"{model['macs_per_second'] / 1e6:.0f} M" if model["macs_per_second"] else "n/a (needs onnx)"
    lines = header_markdown("Speed: streaming compute per block, one thread", document["header"])
    lines += [
        f"Input: `{document['input']['path']}` looped to {document['input']['seconds']:g} s, fed block by block to "
        f"a fresh stream after a {document['input']['warmup_seconds']:g} s warm-up; each `feed` timed (wall "
        "clock, so it includes any resampling and Python around the model). RTF = time / audio time. The "
        f"systems took turns for {document['input']['rounds']} rounds, each in a fresh process; each block size "
        "shows its median round (all rounds' RTFs are in speed.json).",
        "",
        headline(systems),
        "",
        cost_ratios(systems),
        "",
        "## Our model",
        "",
        "| parameters | MACs per second of audio | algorithmic latency | training throughput |",
        "|---|---|---|---|",
        f"| {model['parameters']:,} | {macs} | {model['latency_ms']:g} ms | "
        + (
            f"{train['x_realtime']:.1f}x real time ({train['steps_per_hour']:,.0f} steps/h of {train['batch']} x "
            f"{train['seconds']:g} s, {train['threads']} threads) |"
            if train
            else "n/a (needs torch) |"
        ),
        "",
        "## Real-time factor per block size (wall time / audio time)",
        "",
        "| system | " + " | ".join(str(b) for b in blocks) + " | peak memory, MiB (own) | M MACs/s |",
        "|---|" + "---|" * (len(blocks) + 2),
    ]
    for entry in systems.values():
        cells = " | ".join(f"{r['rtf']:.4f}" for r in entry["blocks"])
        own = f"{entry['peak_rss_mib']:.0f} ({entry['own_rss_mib']:.0f})"
        mac = f"{entry['macs_per_second'] / 1e6:.0f}" if entry["macs_per_second"] else "n/a"
        lines.append(f"| {entry['label']} | {cells} | {own} | {mac} |")
    lines += [
        "",
        "## Compute time per block, ms: p50 / p99 / max",
        "",
        "| system | " + " | ".join(str(b) for b in blocks) + " |",
        "|---|" + "---|" * len(blocks),
    ]
    for entry in systems.values():
        cells = " | ".join(f"{r['p50_ms']:.3f} / {r['p99_ms']:.3f} / {r['max_ms']:.2f}" for r in entry["blocks"])
        lines.append(f"| {entry['label']} | {cells} |")
    lines += profile_markdown(systems[OURS]["profile"]) if OURS in systems else []
    lines += [
        "",
        "Peak memory: the measuring process's peak RSS; own: above the same process before loading the "
        "system. MACs: matrix ops of the ONNX graph (n/a: not an ONNX graph here).",
        "",
        "## Skipped",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in document["skipped"].items()] or ["- none"]
    lines += ["", "![RTF vs block size](plots/speed_rtf_vs_block.png)"]
    write_report(out / "speed.md", "\n".join(lines) + "\n")
