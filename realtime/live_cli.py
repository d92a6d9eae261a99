"""`denoise devices` and `denoise live`: list audio devices; denoise a microphone in real time."""

from __future__ import annotations

import argparse
import re

from realtime.errors import EXIT_OK
from realtime.options import bounded

ENGINE_IN = ("auto", "worker", "callback")  # where `--engine-in` runs the model (the benchmarks pass it through)


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "devices",
        help="list audio input and output devices",
        description="List the audio devices PortAudio sees (index, name, host API, channels, default rate), and "
        "the virtual mics of running `denoise live --virtual-mic`. A JACK server must be running before this "
        "starts for its ports to appear.",
    )
    d.set_defaults(run=run_devices)

    p = sub.add_parser(
        "live",
        help="denoise a microphone in real time",
        description="Denoise the input device into the output device through a duplex stream at the device's "
        "rate, or (--virtual-mic) into a microphone that other programs can pick. Keys (in a terminal): b toggles "
        "bypass, q quits; Ctrl-C stops cleanly. "
        "Exit 0: stopped normally; 2: device, model or usage problem.",
    )
    p.add_argument("--input", metavar="DEV", help="input device: index or name substring (default: the default)")
    p.add_argument(
        "--output",
        metavar="DEV",
        help="output device: index or name substring (default: the default); with --virtual-mic, a sound-server "
        "sink (or 'default') to also play the virtual mic on, for monitoring (default: none)",
    )
    p.add_argument(
        "--virtual-mic",
        nargs="?",
        const="rtdenoise",
        type=mic_name,
        metavar="NAME",
        help="feed a virtual microphone named NAME (default rtdenoise) on the PulseAudio or PipeWire server, "
        "which call and streaming programs can pick; removed on exit",
    )
    p.add_argument(
        "--channel", type=bounded(int, 1), metavar="N", help="use input channel N (1-based; default: a downmix)"
    )
    p.add_argument(
        "--sample-rate",
        type=bounded(int, 8000, 384000),
        metavar="HZ",
        help="device rate (default: the input device's own)",
    )
    p.add_argument(
        "--block-size",
        type=bounded(int, 1),
        metavar="FRAMES",
        help="frames per audio callback at the device rate (default: the period under JACK, 128 otherwise)",
    )
    p.add_argument(
        "--headroom",
        type=bounded(int, 0),
        default=1,
        metavar="BLOCKS",
        help="extra blocks of output buffering; each gives the engine one more block period to finish (default 1)",
    )
    p.add_argument(
        "--hops-per-run",
        type=bounded(int, 1),
        default=1,
        metavar="N",
        help="run the model on at least N hops at once (default 1): on a busy CPU about 1/N the load, "
        "for N-1 hops (2 ms each) more latency",
    )
    p.add_argument(
        "--engine-in",
        choices=ENGINE_IN,
        default="auto",
        help="where the model runs: the audio callback itself (one block less latency, no thread to wake, but "
        "no slack: a run that outlasts a block is an xrun), a worker thread (--headroom more blocks of slack), or "
        "auto (default): the callback where the model's warm run time is at most a quarter of a block",
    )
    p.add_argument(
        "--priority",
        type=bounded(int, 0, 99),
        default=1,
        metavar="N",
        help="SCHED_FIFO priority of live's engine, control and recorder threads where permitted "
        "(below the audio callback's); 0: normal scheduling (default 1)",
    )
    p.add_argument("--model", help="ONNX model file, or a shipped model's name: default (the default) or fast")
    p.add_argument("--atten-lim-db", type=bounded(float, 0), help="remove at most this many dB of noise")
    p.add_argument(
        "--dry", type=bounded(float, 0, 1), default=0.0, help="share of the input mixed into the output (0..1)"
    )
    p.add_argument(
        "--gate-db",
        type=bounded(float, -120, 0),
        metavar="DB",
        help="voice gate: silence the output while the denoised level (dBFS, as the status line's) stays below DB, "
        "e.g. -50 (default: no gate)",
    )
    p.add_argument(
        "--gate-hold-ms",
        type=bounded(float, 0, 10000),
        default=300.0,
        metavar="MS",
        help="keep the gate open this long after the level last exceeded --gate-db (default 300)",
    )
    p.add_argument("--record", metavar="DIR", help="save the captured input and the played output as WAV files here")
    p.add_argument("--duration", type=bounded(float, 0, open_low=True), metavar="SECONDS", help="stop after this long")
    p.add_argument("--status", action="store_true", help="show the status line even when stderr is not a terminal")
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    p.set_defaults(run=run_live)


def mic_name(text: str) -> str:
    """A virtual mic's name: it becomes a sound-server source name."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", text):
        raise argparse.ArgumentTypeError(f"'{text}': letters, digits, '.', '_' and '-' only, at most 63")
    return text


def run_devices(args: argparse.Namespace) -> int:
    from realtime.devices import format_devices, list_devices
    from realtime.virtual_mic import virtual_mics

    print(format_devices(list_devices()))
    for name, pid in virtual_mics():
        print(f"virtual mic (sound-server source): {name}, fed by denoise live (pid {pid})")
    return EXIT_OK


def run_live(args: argparse.Namespace) -> int:
    import sys

    from realtime.live_session import LiveOptions, run_live

    options = LiveOptions(
        input=args.input,
        output=args.output,
        channel=None if args.channel is None else args.channel - 1,
        sample_rate=args.sample_rate,
        block_size=args.block_size,
        headroom=args.headroom,
        hops_per_run=args.hops_per_run,
        engine_in=args.engine_in,
        priority=args.priority,
        model=args.model,
        dry=args.dry,
        atten_lim_db=args.atten_lim_db,
        gate_db=args.gate_db,
        gate_hold_ms=args.gate_hold_ms,
        record=args.record,
        duration=args.duration,
        status=args.status or sys.stderr.isatty(),
        json=args.json,
        virtual_mic=args.virtual_mic,
    )
    run_live(options)
    return EXIT_OK
