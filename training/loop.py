"""The training loop: AdamW, warm-up + halving LR, gradient clipping, periodic validation with
PESQ-WB/STOI/SI-SDR, atomic checkpoints with resume, a CSV log, and DDP under torchrun."""

from __future__ import annotations

import csv
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from tqdm import tqdm

from model.config import FamilyConfig, TasNetConfig, config_from_dict
from model.families import build
from model.streaming import Streaming
from realtime.audio_io import atomic_output
from training.checkpoint import (
    BEST,
    LAST,
    PREV,
    CheckpointError,
    load_file,
    load_latest,
    remove_unfinished,
    save_atomic,
    save_checkpoint,
)
from training.config import TrainConfig
from training.data import TrainingData
from training.losses import enhancement_loss
from training.metrics import score
from training.provenance import initialised_from, training_data

LOG_FIELDS = [
    "step",
    "kind",
    "loss",
    "si_sdr",
    "lr",
    "steps_per_s",
    "x_realtime",
    "cpu_hours",
    "gpu_hours",
    "val_pesq_wb",
    "val_stoi",
    "val_si_sdr",
    "note",
]


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then halving every `lr_half_life` steps, then the cool-down (if any) to zero."""
    warm = min(1.0, (step + 1) / max(1, config.warmup))
    factor = warm * 0.5 ** (max(0, step - config.warmup) / config.lr_half_life)
    if config.cooldown_steps:
        factor *= min(1.0, max(0.0, 1 - (step - config.cooldown_from) / config.cooldown_steps))
    return factor


class CsvLog:
    """Append-only CSV log (one row per logging interval or validation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        rows: list[dict[str, str]] = []
        if path.exists():
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames == LOG_FIELDS:
                    return
                rows = list(reader)  # a log from an older version: rewrite it with the current columns
        with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, LOG_FIELDS, restval="")
            writer.writeheader()
            writer.writerows({k: v for k, v in row.items() if k in LOG_FIELDS} for row in rows)

    def write(self, **row: object) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in LOG_FIELDS])


class StepBatches(torch.utils.data.Dataset):
    """Batch number `step` of a run: drawn from a generator seeded by (seed, step, rank), so a resumed
    run sees the same batches as an uninterrupted one, whichever worker process draws them."""

    def __init__(self, data: TrainingData, config: TrainConfig, rank: int) -> None:
        self.data, self.config, self.rank = data, config, rank

    def __getitem__(self, step: int) -> tuple[Tensor, Tensor]:
        rng = np.random.default_rng([self.config.seed, step, self.rank])
        noisy, clean = self.data.batch(self.config.batch_size, rng)
        return torch.from_numpy(noisy), torch.from_numpy(clean)


@torch.no_grad()
def validate(model: Streaming, data: TrainingData) -> dict[str, float]:
    """Mean PESQ-WB, STOI and SI-SDR of the model on the fixed validation set."""
    model.eval()
    device = next(model.parameters()).device
    noisy = torch.from_numpy(np.stack(data.val_noisy))
    enhanced = torch.cat([model(chunk.to(device)).cpu() for chunk in noisy.split(8)]).numpy()
    model.train()
    sums: dict[str, list[float]] = {"pesq_wb": [], "stoi": [], "si_sdr": []}
    for clean, out in zip(data.val_clean, enhanced):
        values, _, _ = score(clean, out, model.config.sample_rate, tuple(sums))
        for k, v in values.items():
            sums[k].append(v)
    return {k: float(np.mean(v)) if v else float("nan") for k, v in sums.items()}


def initialise_from(model: Streaming, checkpoint: Path) -> tuple[int, dict[str, Any] | None]:
    """Copy every tensor of `checkpoint` whose name and shape match `model`'s (a shallower model takes the
    first blocks of a deeper one); returns how many were copied and the checkpoint's data record (None when it
    has none). None matching is an error."""
    payload = load_file(checkpoint)
    own = model.state_dict()
    matching = {k: v for k, v in payload["model"].items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise CheckpointError(f"{checkpoint}: no tensor matches this model's names and shapes")
    model.load_state_dict(matching, strict=False)
    return len(matching), payload.get("data")


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


@dataclass
class Run:
    """A training run between steps: its model, optimiser and data, and the counters its checkpoints save."""

    out_dir: Path
    model_config: FamilyConfig
    config: TrainConfig
    model: Streaming
    net: torch.nn.Module  # what the step calls: the model, wrapped for DDP and/or compiled
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    data: TrainingData
    device: str
    on_gpu: bool
    rank: int
    world: int
    step: int = 0
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    best: float = -math.inf
    data_record: dict = field(default_factory=dict)  # the sources and licences it trains on, as when it started

    @property
    def cooled_at(self) -> int | None:
        """The step where the cool-down ends the run (None: open-ended)."""
        c = self.config
        return c.cooldown_from + c.cooldown_steps if c.cooldown_steps else None

    def snapshot(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "cpu_seconds": self.cpu_seconds,
            "gpu_seconds": self.gpu_seconds,
            "wall_seconds": self.wall_seconds,
            "best_score": self.best,
            "model_config": self.model_config.to_dict(),
            "train_config": self.config.to_dict(),
            "data": self.data_record,
        }

    def hours(self) -> str:
        gpu = f", {self.gpu_seconds / 3600:.2f} GPU hours" if self.gpu_seconds else ""
        return f"{self.cpu_seconds / 3600:.2f} CPU hours{gpu}"


def setup(
    out_dir: Path,
    model_config: FamilyConfig | None,
    config: TrainConfig | None,
    resume: bool,
    threads: int | None,
    device: str,
    overrides: dict[str, object] | None,
    cooldown: int | None,
) -> Run:
    """A new run in `out_dir`, or the one there resumed where its last checkpoint left it (see `train`)."""
    rank, world = _distributed()
    torch.set_flush_denormal(True)  # denormals slowed CPU training several-fold
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // world))
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = load_latest(out_dir) if resume else None
    if resume and payload is None:
        raise CheckpointError(f"{out_dir}: no checkpoint to resume from")
    if payload is None and any((out_dir / name).exists() for name in (LAST, PREV)):
        raise CheckpointError(f"{out_dir}: holds a training run already; pass --resume or choose another --out")
    if payload is not None:
        model_config = config_from_dict(payload["model_config"])
        config = TrainConfig.from_dict(payload["train_config"])
    model_config = model_config or TasNetConfig()
    config = replace(config or TrainConfig(), **(overrides or {}))
    if cooldown is not None:
        if cooldown < 1:
            raise ValueError(f"--cooldown {cooldown}: needs at least one step")
        if config.cooldown_steps:
            raise ValueError(f"{out_dir}: cools down already (from step {config.cooldown_from}); resume it as it is")
        config = replace(config, cooldown_from=payload["step"] if payload else 0, cooldown_steps=cooldown)
    try:
        on_gpu = torch.device(device).type == "cuda"
    except RuntimeError as exc:
        raise ValueError(f"--device {device}: not a torch device (cpu or cuda)") from exc
    if on_gpu and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is available on this machine")
    if on_gpu:
        torch.backends.cudnn.benchmark = True

    data = TrainingData(config, model_config.sample_rate)
    torch.manual_seed(config.seed)  # the initial weights, like every batch, follow from the seed
    model = build(model_config)
    init_data = None  # the data record of the weights it started from
    if payload is not None:
        model.load_state_dict(payload["model"])
    elif config.init:
        copied, init_data = initialise_from(model, Path(config.init))
        print(f"initialised {copied} of {len(model.state_dict())} tensors from {config.init}", file=sys.stderr)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    net: torch.nn.Module = model
    if world > 1:
        # the last block's residual output feeds nothing (only its skip path does): its 1x1 conv gets no gradient
        net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    if config.compile:
        net = torch.compile(net)
    run = Run(out_dir, model_config, config, model, net, optimizer, scheduler, data, device, on_gpu, rank, world)
    # recorded when the run starts, so an export later says what it trained on, not what the folders hold then
    run.data_record = (payload or {}).get("data") or training_data(
        config.speech, config.noise, config.paired, config.rir, config.allow_non_commercial
    )
    if payload is None and config.init:
        run.data_record = initialised_from(run.data_record, config.init, init_data)
    if payload is not None:
        optimizer.load_state_dict(payload["optimizer"])  # moves the moments to the parameters' device
        scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["torch_rng"])
        run.step, run.cpu_seconds = payload["step"], payload["cpu_seconds"]
        run.gpu_seconds = payload.get("gpu_seconds", 0.0)
        run.wall_seconds, run.best = payload["wall_seconds"], payload["best_score"]
    return run


def train_step(run: Run, noisy: Tensor, clean: Tensor) -> tuple[Tensor, Tensor, str]:
    """One optimiser step on a batch; (loss, SI-SDR, note): the note says why a step was skipped, else ""."""
    loss, sdr = enhancement_loss(run.net(noisy), clean, run.config.stft_weight, run.config.spectral_loss)
    run.optimizer.zero_grad(set_to_none=True)
    note = ""
    if torch.isfinite(loss):
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
        if torch.isfinite(norm):
            run.optimizer.step()
        else:
            note = "skipped step: non-finite gradient"
    else:
        note = "skipped step: non-finite loss"
    run.scheduler.step()
    run.step += 1
    return loss, sdr, note


def validate_and_keep_best(run: Run, log: CsvLog) -> None:
    """Score the validation set, log it, and save best.pt when PESQ-WB improved."""
    metrics = validate(run.model, run.data)
    improved = metrics["pesq_wb"] > run.best
    if improved:
        run.best = metrics["pesq_wb"]
        save_atomic(run.snapshot(), run.out_dir / BEST)
    log.write(
        step=run.step,
        kind="val",
        cpu_hours=f"{run.cpu_seconds / 3600:.3f}",
        **{f"val_{k}": f"{v:.4f}" for k, v in metrics.items()},
        note="best" if improved else "",
    )
    tqdm.write(
        f"step {run.step}: validation PESQ-WB {metrics['pesq_wb']:.3f} STOI {metrics['stoi']:.3f} "
        f"SI-SDR {metrics['si_sdr']:.2f} dB{' (best)' if improved else ''}"
    )


class Window:
    """Means of the loss and SI-SDR over the steps since the last log row, and their rate."""

    def __init__(self) -> None:
        self.start, self.steps, self.good, self.loss, self.score = time.monotonic(), 0, 0, 0.0, 0.0

    def add(self, loss: Tensor, sdr: Tensor, skipped: bool) -> None:
        self.steps += 1
        if not skipped:  # means over the steps taken: a skipped step's loss is not finite
            self.good += 1
            self.loss += loss.item()
            self.score += sdr.item()

    def row(self, run: Run) -> dict[str, str | int]:
        rate = self.steps / max(1e-9, time.monotonic() - self.start)
        audio_per_step = run.config.batch_size * run.config.seconds * run.world
        return dict(
            step=run.step,
            kind="train",
            loss=f"{self.loss / self.good:.4f}" if self.good else "nan",
            si_sdr=f"{self.score / self.good:.3f}" if self.good else "nan",
            lr=f"{run.scheduler.get_last_lr()[0]:.3e}",
            steps_per_s=f"{rate:.3f}",
            x_realtime=f"{rate * audio_per_step:.2f}",
            cpu_hours=f"{run.cpu_seconds / 3600:.3f}",
            gpu_hours=f"{run.gpu_seconds / 3600:.3f}",
            note=f"{self.steps - self.good} steps skipped" if self.good < self.steps else "",
        )


def train(
    out_dir: Path,
    model_config: FamilyConfig | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    threads: int | None = None,
    device: str = "cpu",
    workers: int = 0,
    overrides: dict[str, object] | None = None,
    cooldown: int | None = None,
) -> int:
    """Train into `out_dir` (checkpoints last/prev/best.pt and train_log.csv); returns the final step.

    With `resume`, model and training configs come from the checkpoint and the given ones are ignored,
    except for the fields in `overrides` (e.g. a larger batch_size when the run moves to a GPU).
    `workers` processes draw batches ahead of the training step (0: drawn in the training process).
    `cooldown` starts the run's cool-down now: the LR falls linearly to zero over that many steps, and the run
    ends there (a run resumed mid cool-down keeps its own).
    Time on a GPU is counted as GPU hours, time on the CPU as CPU hours.
    """
    run = setup(out_dir, model_config, config, resume, threads, device, overrides, cooldown)
    log = CsvLog(out_dir / "train_log.csv") if run.rank == 0 else None
    stop = {"now": False}

    def request_stop(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    end_step = max_steps if max_steps is not None else sys.maxsize
    if run.cooled_at is not None:
        end_step = min(end_step, run.cooled_at)
    deadline = time.monotonic() + max_minutes * 60 if max_minutes else math.inf
    bar = tqdm(
        total=None if max_steps is None else max_steps,
        initial=run.step,
        unit="step",
        disable=run.rank != 0,
        mininterval=1 if sys.stderr.isatty() else 30,
        dynamic_ncols=True,
    )
    last_save = time.monotonic()
    if log:
        for stale in remove_unfinished(out_dir):
            print(f"removed {stale}: a checkpoint write that was interrupted", file=sys.stderr)
    window = Window()
    batches = iter(
        torch.utils.data.DataLoader(
            StepBatches(run.data, run.config, run.rank),
            batch_size=None,
            sampler=range(run.step, end_step),
            num_workers=workers,
            pin_memory=run.on_gpu,
            prefetch_factor=4 if workers else None,
        )
    )
    run.model.train()
    while run.step < end_step and not stop["now"] and time.monotonic() < deadline:
        t0, c0 = time.monotonic(), time.process_time()
        noisy, clean = (t.to(device, non_blocking=True) for t in next(batches))
        loss, sdr, note = train_step(run, noisy, clean)
        if note and log:
            log.write(step=run.step - 1, kind="skip", note=note)
            tqdm.write(f"step {run.step - 1}: {note}")
        if run.on_gpu:
            run.gpu_seconds += (time.monotonic() - t0) * run.world
        else:
            run.cpu_seconds += (time.process_time() - c0) * run.world
        run.wall_seconds += time.monotonic() - t0
        window.add(loss, sdr, bool(note))
        bar.update(1)
        if run.step % 50 == 0 or run.step == end_step:
            row = window.row(run)
            bar.set_postfix(loss=row["loss"], sisdr=row["si_sdr"], xRT=row["x_realtime"])
            if log:
                log.write(**row)
            window = Window()
        if log and run.data.val_clean and (run.step % run.config.val_every == 0 or run.step == run.cooled_at):
            validate_and_keep_best(run, log)
        if log and time.monotonic() - last_save > run.config.checkpoint_minutes * 60:
            save_checkpoint(run.snapshot(), out_dir)
            last_save = time.monotonic()
    bar.close()
    del batches  # ends the worker processes
    if run.rank == 0:
        save_checkpoint(run.snapshot(), out_dir)
        print(f"saved {out_dir / 'last.pt'} at step {run.step} ({run.hours()})", file=sys.stderr)
    if run.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return run.step
