"""The streaming engine: the buffers that turn any block size into whole hops for the model, which a runner
(`realtime.runners`: an onnxruntime session and the stream's state) turns into output. No torch.

Latency, in samples at the model rate (see README, "Latency"):
- algorithmic: L - hop, held back by the decoder's overlap-add (the rest of the window L is the
  current hop, which arrives with the block itself);
- buffering: the zeros primed into the output so that every `feed` returns as many samples as it
  took, `hop - gcd(block_size, hop)` for a fixed block size, `hop - 1` for any block size;
- `latency` = algorithmic + buffering: the exact offset of `feed`'s output from its input.
"""

from __future__ import annotations

import math
import os
from collections import deque

import numpy as np

from realtime.jit import jit
from realtime.model_file import load_model_info
from realtime.runners import MAX_HOPS_PER_RUN, GraphRunner, RingRunner, Runner, StepRunner, open_session

__all__ = ["MAX_HOPS_PER_RUN", "Denoiser", "open_session"]


class Denoiser:
    """Streaming denoiser: `feed(block) -> block` for any block size, `flush()` for the tail.

    `block` is (n,) or (n, channels) float audio at `sample_rate`; every channel is denoised on its own.
    The output has the same shape and lags the input by `latency` samples. Non-finite input samples are
    replaced by silence before they reach the model, so they never reach the output or the state.
    `dry` (0..1) mixes the delayed input back in; `atten_lim_db` limits the noise removed to that many dB
    (DeepFilterNet's convention); the larger of the two input shares applies. `bypass` passes the
    delayed input through (crossfaded over one block). `profile_prefix`: record onnxruntime's profile of the
    runs (`runner.end_profiling()` writes it).

    A mono engine with a `block_size` that its model's short-run form covers (at most its longest run of
    hops) runs through the compiled step if the model has its weights (`StepRunner`; `compiled=False`: not),
    else through the short-run graphs (`RingRunner`); otherwise the main graph runs as many hops as each
    `feed` completes.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        channels: int = 1,
        block_size: int | None = None,
        threads: int = 1,
        dry: float = 0.0,
        atten_lim_db: float | None = None,
        profile_prefix: str | None = None,
        compiled: bool = True,
    ) -> None:
        self.info = load_model_info(model_path)
        if channels < 1:
            raise ValueError("channels must be at least 1")
        if block_size is not None and block_size < 1:
            raise ValueError("block_size must be at least 1")
        if not 0.0 <= dry <= 1.0:
            raise ValueError(f"dry must be between 0 and 1, got {dry}")
        if atten_lim_db is not None and not atten_lim_db >= 0:  # NaN too
            raise ValueError(f"atten_lim_db must be >= 0, got {atten_lim_db}")
        self.channels = channels
        self.block_size = block_size
        self.sample_rate = self.info.sample_rate
        self.hop = self.info.hop
        self.dry_share = max(dry, 10 ** (-atten_lim_db / 20) if atten_lim_db is not None else 0.0)
        self.bypass = False
        self.mix = np.array([self.dry_share])  # the input's share in the output now (`finish`)
        self._last_flat = channels == 1
        self.nonfinite_blocks = 0
        ring = self.info.ring
        short = ring is not None and channels == 1 and block_size is not None
        if short and compiled and self.info.step is not None and block_size <= StepRunner.max_hops * self.hop:
            self.runner: Runner = StepRunner.for_model(self.info, channels)
        elif short and block_size <= max(ring.graphs) * self.hop:
            self.runner = RingRunner(self.info, channels, threads, profile_prefix)
        else:
            self.runner = GraphRunner(self.info, channels, threads, profile_prefix)
        self.dry_line = np.zeros((self.latency, self.channels), np.float32)  # the input, delayed as the output
        self.reset()

    @property
    def compute_times(self) -> deque[float]:
        """Seconds per model run (with the short-run graphs: with the ring's gather and store), the last 100,000."""
        return self.runner.compute_times

    # -- latency ---------------------------------------------------------------------------------------
    @property
    def algorithmic_latency(self) -> int:
        return self.info.delay

    @property
    def buffering_latency(self) -> int:
        step = math.gcd(self.block_size, self.hop) if self.block_size else 1
        return self.hop - step

    @property
    def latency(self) -> int:
        return self.algorithmic_latency + self.buffering_latency

    def latency_ms(self) -> dict[str, float]:
        ms = 1000 / self.sample_rate
        return {
            "algorithmic": self.algorithmic_latency * ms,
            "buffering": self.buffering_latency * ms,
            "total": self.latency * ms,
        }

    # -- streaming -------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all history: the next `feed` starts a new stream."""
        self.runner.reset()
        self._pending = np.zeros((0, self.channels), np.float32)
        self._out = np.zeros((self.buffering_latency, self.channels), np.float32)
        self.dry_line.fill(0.0)
        self._samples_in = 0

    def warm_up(self, block_size: int) -> bool:
        """Run one block of silence and forget it, so that the compiled parts are compiled (the first run
        after installing: seconds) or loaded from numba's cache before any timing starts; True if it compiled."""
        misses = sum(finish.stats.cache_misses.values())
        self.feed(np.zeros((block_size, self.channels), np.float32))
        self.reset()
        return sum(finish.stats.cache_misses.values()) > misses

    def _as_frames(self, block: np.ndarray) -> tuple[np.ndarray, bool]:
        x = np.asarray(block, dtype=np.float32)
        flat = x.ndim == 1
        if flat:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"expected (n,) or (n, {self.channels}) audio, got shape {np.shape(block)}")
        if not np.isfinite(x).all():
            self.nonfinite_blocks += 1
            x = np.where(np.isfinite(x), x, np.float32(0.0))
        return x, flat

    def feed(self, block: np.ndarray) -> np.ndarray:
        """Denoise the next `n` samples; returns `n` samples, `latency` samples behind."""
        x, flat = self._as_frames(block)
        n = len(x)
        if self.block_size is not None and n % self.block_size:  # several blocks at once: one model run
            raise ValueError(f"this engine was set up for blocks of {self.block_size} samples, got {n}")
        self._samples_in += n
        if not len(self._pending) and not len(self._out) and n % self.hop == 0:  # whole hops, nothing held back
            return self._finish(self.runner.run(x), x, flat)
        data = np.concatenate([self._pending, x]) if len(self._pending) else x
        whole = len(data) // self.hop * self.hop
        self._pending = data[whole:].copy()
        if whole:
            self._out = np.concatenate([self._out, self.runner.run(data[:whole])])
        out, self._out = self._out[:n], self._out[n:]
        return self._finish(out, x, flat)

    def flush(self) -> np.ndarray:
        """The last `latency` samples of the stream (input padded with silence), then `reset()`."""
        tail = self._out
        r = len(self._pending)
        if r:
            padded = np.concatenate([self._pending, np.zeros((self.hop - r, self.channels), np.float32)])
            tail = np.concatenate([tail, self.runner.run(padded)])
        tail = np.concatenate([tail, self.runner.decoder_tail().T])[: self.latency]
        out = self._finish(tail, np.zeros((len(tail), self.channels), np.float32), flat=self._last_flat)
        self.reset()
        return out

    @property
    def mix_target(self) -> float:
        """The input's share in the output that `finish` moves to: all of it in bypass."""
        return 1.0 if self.bypass else self.dry_share

    def _finish(self, wet: np.ndarray, dry_in: np.ndarray, flat: bool) -> np.ndarray:
        """`finish` (`wet` is ours), shaped like the input."""
        self._last_flat = flat
        finish(wet, dry_in, self.dry_line, self.mix, self.mix_target)
        return wet[:, 0] if flat else wet


@jit()
def finish(wet, dry_in, line, mix, target):  # noqa: ANN001, ANN201 (numba)
    """Mix the input, delayed by the delay line `line` (latency, channels), into the model's output `wet`
    (n, channels) in place, at the input's share `mix[0]`, or along a linear ramp to `target` over these n
    samples where that differs (numpy's `linspace`, to the bit); then clip to [-1, 1]. Compiled: at live's
    blocks of a few dozen samples numpy's per-call dispatch cost more than the arithmetic."""
    n, delay = wet.shape[0], line.shape[0]
    dry = np.empty_like(wet)
    for i in range(n):
        dry[i] = line[i] if i < delay else dry_in[i - delay]
    if n >= delay:
        line[:] = dry_in[n - delay :]
    else:
        line[: delay - n] = line[n:].copy()
        line[delay - n :] = dry_in
    start = mix[0]
    if target != start and n:
        span = target - start
        step = span / (n - 1) if n > 1 else np.nan
        for i in range(n):
            if i == n - 1 and n > 1:
                share = np.float32(target)
            elif n == 1:
                share = np.float32(start)
            elif step == 0.0:
                share = np.float32(i / (n - 1) * span + start)
            else:
                share = np.float32(i * step + start)
            for c in range(wet.shape[1]):
                wet[i, c] = wet[i, c] + share * (dry[i, c] - wet[i, c])
        mix[0] = target
    elif start:
        share = np.float32(start)
        for i in range(n):
            for c in range(wet.shape[1]):
                wet[i, c] = wet[i, c] + share * (dry[i, c] - wet[i, c])
    for i in range(n):
        for c in range(wet.shape[1]):
            wet[i, c] = min(max(wet[i, c], np.float32(-1.0)), np.float32(1.0))

    # -- measurements ----------------------------------------------------------------------------------
    def compute_stats(self) -> dict[str, float]:
        """Model compute time per run in ms (p50/p99/max) and the real-time factor so far."""
        times = np.array(self.compute_times) * 1000 if self.compute_times else np.zeros(1)
        audio_s = self._samples_in / self.sample_rate
        return {
            "p50_ms": float(np.percentile(times, 50)),
            "p99_ms": float(np.percentile(times, 99)),
            "max_ms": float(times.max()),
            "rtf": float(times.sum() / 1000 / audio_s) if audio_s else 0.0,
        }
