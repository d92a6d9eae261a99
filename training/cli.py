"""`denoise train`, `denoise export`, `denoise make-dataset` (torch is imported only by train and export)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from model.config import ARCHITECTURES, FamilyConfig, TasNetConfig
from realtime.errors import EXIT_OK
from realtime.options import MAX_THREADS, OrderedPair, bounded
from training.config import Augmentation, TrainConfig


def add_range(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    option: str,
    kind: Callable[[str], float],
    default: tuple[float, float],
    help_text: str,
) -> None:
    """A LOW HIGH option (LOW above HIGH is a usage error)."""
    p.add_argument(
        option, type=kind, nargs=2, default=default, metavar=("LOW", "HIGH"), action=OrderedPair, help=help_text
    )


def split_name(text: str) -> str:
    """An argparse `type`: a split's folder name, one path component (files are written under it)."""
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        raise argparse.ArgumentTypeError(f"expected a folder name such as train or test, got {text!r}")
    return text


def register(sub: argparse._SubParsersAction) -> None:
    _register_train(sub)
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (needs the [train] extra)",
        description="Export a training checkpoint to ONNX with explicit streaming state, verify it "
        "against torch, and write the JSON sidecar next to it.",
    )
    p.add_argument("checkpoint", help="checkpoint file (e.g. RUN/best.pt)")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write (sidecar: same name, .json)")
    p.set_defaults(run=_run_export)

    p = sub.add_parser(
        "average",
        help="average the weights of checkpoints of one run, scoring each on validation (needs [train])",
        description="Write the mean of the checkpoints' weights (one run, same model) and print the validation "
        "PESQ-WB / STOI / SI-SDR of each input and of the mean, so the better one is chosen on validation.",
    )
    p.add_argument("checkpoints", nargs="+", type=Path, metavar="CHECKPOINT")
    p.add_argument("-o", "--output", type=Path, required=True, help="checkpoint file to write")
    p.add_argument("--threads", type=bounded(int, 1, MAX_THREADS), default=1, help="torch threads (default 1)")
    p.set_defaults(run=_run_average)

    p = sub.add_parser(
        "make-dataset",
        help="write the brief's paired layout from speech and noise folders",
        description="Mix clean speech with noise at random SNRs into ROOT/voice_origin/SPLIT and "
        "ROOT/denoising/SPLIT (same file names), plus ROOT/SPLIT.csv.",
    )
    p.add_argument("--speech", nargs="+", required=True, metavar="DIR")
    p.add_argument("--noise", nargs="+", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="ROOT")
    p.add_argument("--split", type=split_name, default="train")
    p.add_argument("--count", type=bounded(int, 1), default=100, help="number of pairs")
    p.add_argument("--seconds", type=bounded(float, 0, 3600, open_low=True), default=4.0, help="length of each pair")
    add_range(p, "--snr", bounded(float, -50, 100), (0.0, 20.0), "mixtures' SNR range, dB (default 0 20)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run_make_dataset)


def _register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (needs the [train] extra: torch)",
        description="Train a causal model (the Conv-TasNet, or another family with --arch); resumable, with "
        "checkpoints every few minutes.",
    )
    p.add_argument("--speech", nargs="+", default=[], metavar="DIR", help="clean speech folders (mixed on the fly)")
    p.add_argument("--noise", nargs="+", default=[], metavar="DIR", help="noise folders (mixed on the fly)")
    p.add_argument(
        "--paired",
        nargs="+",
        default=[],
        metavar="ROOT",
        help="roots in the brief's layout (voice_origin/<split>, denoising/<split>)",
    )
    p.add_argument("--split", type=split_name, default="train", help="split of --paired roots (default: train)")
    p.add_argument("--out", required=True, help="run folder: checkpoints last/prev/best.pt and train_log.csv")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (configs come from it; only --batch-size, --val-every and "
        "--checkpoint-minutes may be changed, and a --cooldown started)",
    )
    p.add_argument("--steps", type=bounded(int, 0), help="stop at this total step count (0: save the start only)")
    p.add_argument(
        "--cooldown",
        type=int,
        metavar="STEPS",
        help="from where the run stands, take the learning rate linearly to zero over STEPS steps and end the "
        "run there (do it on a copy of an open-ended run folder)",
    )
    p.add_argument("--minutes", type=float, help="stop after this many minutes of wall time")
    p.add_argument("--threads", type=bounded(int, 1, MAX_THREADS), help="torch threads (default: all cores)")
    p.add_argument("--device", default="cpu", help="torch device to train on: cpu (default) or cuda")
    p.add_argument(
        "--workers", type=bounded(int, 0, MAX_THREADS), default=0, help="processes drawing batches ahead (default: 0)"
    )
    p.add_argument(
        "--arch",
        choices=list(ARCHITECTURES),
        default=TasNetConfig.arch,
        help="model family (default conv-tasnet); its config's fields are set with --model-option",
    )
    defaults = TasNetConfig()
    for symbol in TASNET_OPTIONS:
        p.add_argument(f"--{symbol}", type=int, help=f"Conv-TasNet's {symbol} (default {getattr(defaults, symbol)})")
    p.add_argument("--norm", choices=["cLN", "cumLN"], help=f"Conv-TasNet's norm (default {defaults.norm})")
    p.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="SYMBOL=VALUE",
        help="a field of the family's config, named as in its paper (e.g. H=256 for lstm-tasnet; repeatable)",
    )
    p.add_argument("--batch-size", type=bounded(int, 1), help=f"mixtures per step (default: {TrainConfig.batch_size})")
    p.add_argument("--seconds", type=bounded(float, 0, open_low=True), default=2.0, help="training crop length")
    add_range(p, "--snr", bounded(float, -50, 100), (0.0, 20.0), "mixtures' SNR range, dB (default 0 20)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--stft-weight", type=float, default=1.0, help="weight of the spectral loss beside -SI-SDR")
    p.add_argument(
        "--spectral-loss",
        choices=["mrstft", "compressed"],
        default=TrainConfig.spectral_loss,
        help="multi-resolution STFT (default) or power-law compressed complex spectrum",
    )
    g = p.add_argument_group("data mix (see README: Train)")
    g.add_argument(
        "--speech-balance",
        type=float,
        default=TrainConfig.speech_balance,
        help="draw each speech source by its minutes to this power (1: by duration, 0: sources equally)",
    )
    g.add_argument("--noise-balance", type=float, default=TrainConfig.noise_balance, help="the same for noise")
    g.add_argument(
        "--source-weight",
        action="append",
        default=[],
        metavar="NAME=W",
        help="multiply source NAME's draw weight by W (repeatable)",
    )
    g.add_argument(
        "--allow-non-commercial",
        action="store_true",
        help="also train on sources whose licence forbids commercial use (recorded in the model's sidecar)",
    )
    add_range(g, "--level", bounded(float, -100, 0), TrainConfig.level_dbfs, "speech level range, dBFS RMS")
    g = p.add_argument_group("augmentation (probabilities per mixture)")
    g.add_argument("--rir", nargs="+", default=[], metavar="DIR", help="folders of measured room impulse responses")
    g.add_argument("--simulated-rooms", type=int, default=0, help="shoebox rooms to simulate (pyroomacoustics)")
    a = Augmentation()
    g.add_argument("--reverb", type=float, default=a.reverb, help="reverberate the speech")
    g.add_argument("--eq", type=float, default=a.eq, help="random EQ of speech and of noise")
    g.add_argument("--band-limit", type=float, default=a.band_limit, help="a phone or cheap mic's band")
    g.add_argument("--clipping", type=float, default=a.clipping, help="an overdriven, clipped input")
    p.add_argument("--val-every", type=int, help=f"validate every N steps (default: {TrainConfig.val_every})")
    p.add_argument("--checkpoint-minutes", type=float, help=f"default: {TrainConfig.checkpoint_minutes:g}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--init",
        default="",
        metavar="CHECKPOINT",
        help="start a new run from this checkpoint's weights (tensors of the same name and shape)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model (about 1.4x faster on CPU)")
    p.set_defaults(run=_run_train)


RESUMABLE_OVERRIDES = ("batch_size", "val_every", "checkpoint_minutes")
TASNET_OPTIONS = ("N", "L", "B", "H", "P", "X", "R")


def family_config(args: argparse.Namespace) -> FamilyConfig:
    """The config of `--arch` with the options given: Conv-TasNet's own flags, or --model-option SYMBOL=VALUE."""
    family = ARCHITECTURES[args.arch]
    values: dict[str, object] = {
        name: getattr(args, name) for name in (*TASNET_OPTIONS, "norm") if getattr(args, name) is not None
    }
    if values and family is not TasNetConfig:
        raise ValueError(f"--{next(iter(values))} is a Conv-TasNet option; for {args.arch} use --model-option")
    types = {f.name: f.type for f in fields(family)}  # type: ignore[arg-type]
    for item in args.model_option:
        name, _, value = item.partition("=")
        if name not in types:
            raise ValueError(f"--model-option {item}: {args.arch} has no {name!r} (it has {', '.join(types)})")
        try:
            values[name] = int(value) if types[name] in (int, "int") else value
        except ValueError:
            raise ValueError(f"--model-option {item}: {name} takes a whole number") from None
    return family(**values)


def _run_train(args: argparse.Namespace) -> int:
    for name in ("reverb", "eq", "band_limit", "clipping"):
        if not 0 <= getattr(args, name) <= 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: a probability, from 0 to 1")
    if args.simulated_rooms < 0:
        raise ValueError(f"--simulated-rooms {args.simulated_rooms}: a count, 0 or more")

    model_config = family_config(args)
    config = TrainConfig(
        speech=args.speech,
        noise=args.noise,
        paired=args.paired,
        paired_split=args.split,
        seconds=args.seconds,
        snr_db=tuple(args.snr),
        lr=args.lr,
        stft_weight=args.stft_weight,
        spectral_loss=args.spectral_loss,
        seed=args.seed,
        compile=args.compile,
        init=args.init,
        speech_balance=args.speech_balance,
        noise_balance=args.noise_balance,
        source_weights=_source_weights(args.source_weight),
        allow_non_commercial=args.allow_non_commercial,
        level_dbfs=tuple(args.level),
        rir=args.rir,
        simulated_rooms=args.simulated_rooms,
        augment=Augmentation(reverb=args.reverb, eq=args.eq, band_limit=args.band_limit, clipping=args.clipping),
    )
    from training.loop import train  # torch and scipy: seconds to import, after the options are known good

    train(
        Path(args.out),
        model_config,
        config,
        resume=args.resume,
        max_steps=args.steps,
        max_minutes=args.minutes,
        threads=args.threads,
        device=args.device,
        workers=args.workers,
        overrides={k: getattr(args, k) for k in RESUMABLE_OVERRIDES if getattr(args, k) is not None},
        cooldown=args.cooldown,
    )
    return EXIT_OK


def _source_weights(items: list[str]) -> dict[str, float]:
    """{name: weight} from NAME=W strings; a malformed one is a usage error."""
    weights = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"--source-weight {item}: expected NAME=WEIGHT, e.g. moodist=2") from None
        if not name or not 0 <= weights[name] < float("inf"):
            raise ValueError(f"--source-weight {item}: expected NAME=WEIGHT with a finite weight >= 0")
    return weights


def _run_export(args: argparse.Namespace) -> int:
    from training.export import export

    doc = export(Path(args.checkpoint), Path(args.output))
    print(
        f"wrote {args.output} (max abs error vs torch {doc['verified_max_abs_error']:.1e}, "
        f"{doc['training']['steps']} steps)"
    )
    return EXIT_OK


def _run_average(args: argparse.Namespace) -> int:
    from training.average import run

    return run(args)


def _run_make_dataset(args: argparse.Namespace) -> int:
    from training.make_dataset import make_dataset

    csv_path = make_dataset(
        args.speech, args.noise, Path(args.out), args.split, args.count, args.seconds, tuple(args.snr), args.seed
    )
    print(f"wrote {args.count} pairs under {args.out} and {csv_path}")
    return EXIT_OK
