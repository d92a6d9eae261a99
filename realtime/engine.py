"""The streaming engine: an onnxruntime session, its state, and the buffers that turn any block size
into whole hops for the model. No torch.

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
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from realtime.errors import AudioError
from realtime.model_file import CHUNK, DECODER_TAIL, ENHANCED, ModelInfo, check_graph, load_model_info, output_name

MAX_HOPS_PER_RUN = 512  # bounds the session's working memory on long blocks (~1 s at hop 32)


def open_session(info: ModelInfo, threads: int = 1, profile_prefix: str | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session for the model, single-threaded by default (predictable latency);
    `profile_prefix`: record onnxruntime's profile (see `end_profiling`) in a file with that prefix."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        session = ort.InferenceSession(str(info.path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AudioError(f"{info.path}: cannot load the model ({first})") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    check_graph(info, [(t.name, t.shape) for t in inputs], [(t.name, t.shape) for t in outputs])
    return session


@dataclass
class _Slot:
    """One IO binding of the session: it reads `state` and `chunk`, and writes `out` and the next state."""

    binding: ort.IOBinding
    state: dict[str, np.ndarray]
    chunk: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))
    out: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))


class Denoiser:
    """Streaming denoiser: `feed(block) -> block` for any block size, `flush()` for the tail.

    `block` is (n,) or (n, channels) float audio at `sample_rate`; every channel is denoised on its own.
    The output has the same shape and lags the input by `latency` samples. Non-finite input samples are
    replaced by silence before they reach the model, so they never reach the output or the state.
    `dry` (0..1) mixes the delayed input back in; `atten_lim_db` limits the noise removed to that many dB
    (DeepFilterNet's convention); the larger of the two input shares applies. `bypass` passes the
    delayed input through (crossfaded over one block).
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        channels: int = 1,
        block_size: int | None = None,
        threads: int = 1,
        dry: float = 0.0,
        atten_lim_db: float | None = None,
    ) -> None:
        self.info = load_model_info(model_path)
        self.session = open_session(self.info, threads)
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
        self._mix = self.dry_share
        self._last_flat = channels == 1
        self.compute_times: deque[float] = deque(maxlen=100_000)
        self.nonfinite_blocks = 0
        self._bind()
        self.reset()

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
        for slot in self._slots:
            for value in slot.state.values():
                value.fill(0.0)
        self._slot = 0
        self._pending = np.zeros((0, self.channels), np.float32)
        self._out = np.zeros((self.buffering_latency, self.channels), np.float32)
        self._dry_line = np.zeros((self.latency, self.channels), np.float32)
        self._samples_in = 0

    def _bind(self) -> None:
        """Bind the session to preallocated arrays, so that a run allocates nothing: slot i reads the state from
        set i and writes the next state into set 1 - i, and the slots alternate run by run; a slot's chunk and
        output arrays are replaced (and rebound) only when the samples per run change."""
        sets = [
            {name: np.zeros([self.channels, *shape[1:]], np.float32) for name, shape in self.info.state_shapes.items()}
            for _ in range(2)
        ]
        self._slots = []
        for i in range(2):
            binding = self.session.io_binding()
            for name in sets[i]:
                binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(sets[i][name]))
                binding.bind_ortvalue_output(output_name(name), ort.OrtValue.ortvalue_from_numpy(sets[1 - i][name]))
            self._slots.append(_Slot(binding, sets[i]))

    @property
    def _state(self) -> dict[str, np.ndarray]:
        """The state the next run reads."""
        return self._slots[self._slot].state

    def _next_slot(self, samples: int) -> _Slot:
        """The slot for the next run, its chunk and output `samples` long."""
        slot = self._slots[self._slot]
        if slot.chunk.shape[1] != samples:
            slot.chunk = np.empty((self.channels, samples), np.float32)
            slot.out = np.empty_like(slot.chunk)
            slot.binding.bind_ortvalue_input(CHUNK, ort.OrtValue.ortvalue_from_numpy(slot.chunk))
            slot.binding.bind_ortvalue_output(ENHANCED, ort.OrtValue.ortvalue_from_numpy(slot.out))
        return slot

    def _run(self, hops: np.ndarray) -> np.ndarray:
        """Model on (k*hop, channels) -> (k*hop, channels) delayed output, advancing the state."""
        result = np.empty_like(hops)
        step = MAX_HOPS_PER_RUN * self.hop
        for start in range(0, len(hops), step):
            piece = hops[start : start + step]
            slot = self._next_slot(len(piece))
            slot.chunk[...] = piece.T
            t0 = time.perf_counter()
            self.session.run_with_iobinding(slot.binding)
            self.compute_times.append(time.perf_counter() - t0)
            # the output alone is checked (the state is 60x larger, and checking it cost ~0.1 ms a run):
            # a non-finite state reaches the output of the next run at the latest, and is reset there
            if np.isfinite(slot.out).all():
                result[start : start + len(piece)] = slot.out.T
                self._slot ^= 1
            else:
                self.reset_state()
                result[start : start + len(piece)] = 0.0
        return result

    def reset_state(self) -> None:
        """Zero the model state only (recovery path; buffers and latency are kept)."""
        for value in self._state.values():
            value.fill(0.0)

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
        data = np.concatenate([self._pending, x]) if len(self._pending) else x
        whole = len(data) // self.hop * self.hop
        self._pending = data[whole:].copy()
        if whole:
            self._out = np.concatenate([self._out, self._run(data[:whole])])
        out, self._out = self._out[:n], self._out[n:]
        return self._finish(out, x, flat)

    def flush(self) -> np.ndarray:
        """The last `latency` samples of the stream (input padded with silence), then `reset()`."""
        tail = self._out
        r = len(self._pending)
        if r:
            padded = np.concatenate([self._pending, np.zeros((self.hop - r, self.channels), np.float32)])
            tail = np.concatenate([tail, self._run(padded)])
        tail = np.concatenate([tail, self._state[DECODER_TAIL].T])[: self.latency]
        out = self._finish(tail, np.zeros((len(tail), self.channels), np.float32), flat=self._last_flat)
        self.reset()
        return out

    def _finish(self, wet: np.ndarray, dry_in: np.ndarray, flat: bool) -> np.ndarray:
        """Mix in the delayed input (dry share, bypass crossfade), clip, and shape like the input."""
        self._last_flat = flat
        line = np.concatenate([self._dry_line, dry_in])
        dry, self._dry_line = line[: len(wet)], line[len(wet) :]
        target = 1.0 if self.bypass else self.dry_share
        if target != self._mix and len(wet):
            wet = wet + np.linspace(self._mix, target, len(wet), dtype=np.float32)[:, None] * (dry - wet)
            self._mix = target
        elif self._mix:
            wet = wet + self._mix * (dry - wet)
        out = wet.clip(-1.0, 1.0)  # the method: np.clip's dispatch costs more than the clipping at 32 samples
        return out[:, 0] if flat else out

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
