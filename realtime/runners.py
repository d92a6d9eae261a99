"""How the engine runs its model: whole hops in, the same number of hops out (delayed by the model), the
stream's state kept from run to run without allocating. No torch.

- `GraphRunner`: the main graph, any number of hops per run, the whole state passed in and out.
- `RingRunner`: the short-run graphs (see `realtime.model_file`), one channel, runs of up to their
  `max_hops` hops, each block's past depthwise inputs kept here in a ring and only the taps the run needs
  passed in: a fraction of the main graph's cost per run.
- `StepRunner`: the same short-run function compiled (`realtime.compiled_step`), one call per run, no graph:
  what live runs when the model has its weights, at a fraction of the short-run graphs' cost.

The graph runners bind their sessions to preallocated arrays (IO binding); all three alternate two sets of
state arrays run by run: a run reads one set and writes the other, so the state the next run reads is
complete even when a run's output is thrown away.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from realtime import compiled_step
from realtime.errors import AudioError
from realtime.model_file import (
    CHUNK,
    DECODER_TAIL,
    ENCODER_STATE,
    ENHANCED,
    RING_ACTIVATIONS,
    RING_TAPS,
    ModelInfo,
    check_graph,
    output_name,
)

MAX_HOPS_PER_RUN = 512  # bounds the session's working memory on long blocks (~1 s at hop 32)


def open_session(
    info: ModelInfo, threads: int = 1, profile_prefix: str | None = None, ring_hops: int | None = None
) -> ort.InferenceSession:
    """An onnxruntime CPU session for the model's main graph (`ring_hops`: its short-run graph for runs of up
    to that many hops), single-threaded by default (predictable latency); `profile_prefix`: record
    onnxruntime's profile (see `end_profiling`) in a file with that prefix."""
    path = info.ring.graphs[ring_hops] if info.ring is not None and ring_hops is not None else info.path
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AudioError(f"{path}: cannot load the model ({first})") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    check_graph(
        info, [(t.name, t.shape) for t in inputs], [(t.name, t.shape) for t in outputs], ring=ring_hops is not None
    )
    return session


def _bind(binding: ort.IOBinding, name: str, array: np.ndarray, output: bool = False) -> None:
    value = ort.OrtValue.ortvalue_from_numpy(array)
    (binding.bind_ortvalue_output if output else binding.bind_ortvalue_input)(name, value)


class Runner:
    """Runs the model over (k*hop, channels) audio, `max_hops` hops per session run, timing each run."""

    max_hops = MAX_HOPS_PER_RUN

    def __init__(self, hop: int, channels: int) -> None:
        self.hop = hop
        self.channels = channels
        self.compute_times: deque[float] = deque(maxlen=100_000)
        self._states: list[dict[str, np.ndarray]] = []  # the two state sets, made by the subclass
        self._slot = 0  # the state set the next run reads

    def run(self, hops: np.ndarray) -> np.ndarray:
        """(k*hop, channels) -> (k*hop, channels) delayed output, advancing the state. A run whose output is not
        finite (the model's arithmetic overflowed) gives silence and starts the state afresh."""
        step = self.max_hops * self.hop
        if len(hops) <= step:  # (live's case: one run, no list to join)
            return self._run_piece(hops)
        return np.concatenate([self._run_piece(hops[start : start + step]) for start in range(0, len(hops), step)])

    def _run_piece(self, piece: np.ndarray) -> np.ndarray:
        """One run of at most `max_hops` hops, timed; silence and a fresh state if its output is not finite."""
        t0 = time.perf_counter()
        out = self._run(piece)
        if np.isfinite(out).all():  # the output alone: a non-finite state reaches it by the next run
            self._commit()
            result = out.T.copy()
        else:
            self.reset()
            result = np.zeros_like(piece)
        self.compute_times.append(time.perf_counter() - t0)
        return result

    def _run(self, piece: np.ndarray) -> np.ndarray:
        """One session run on `piece`, leaving the current state as it is; returns the (channels, n) output."""
        raise NotImplementedError

    def _commit(self) -> None:
        """Make the last run's new state the current one."""
        self._slot ^= 1

    def reset(self) -> None:
        """Zero all state: the next run starts a new stream."""
        for array in self.state_arrays():
            array.fill(0.0)

    def state_arrays(self) -> list[np.ndarray]:
        """The arrays holding the state the next run reads."""
        return list(self._states[self._slot].values())

    def decoder_tail(self) -> np.ndarray:
        """The overlap-add tail of the current state, (channels, delay); (channels, 0) for a model without delay."""
        state = self._states[self._slot]
        return state[DECODER_TAIL] if DECODER_TAIL in state else np.zeros((self.channels, 0), np.float32)

    def end_profiling(self) -> list[str]:
        """End the sessions' profiling (see `open_session`); the profile files written."""
        return [session.end_profiling() for session in self._sessions()]

    def _sessions(self) -> list[ort.InferenceSession]:
        raise NotImplementedError


class GraphRunner(Runner):
    """The main graph: any number of hops per run. Slot i reads state set i and writes set 1 - i; a slot's
    chunk and output arrays are replaced (and rebound) only when the samples per run change."""

    def __init__(self, info: ModelInfo, channels: int, threads: int = 1, profile_prefix: str | None = None) -> None:
        super().__init__(info.hop, channels)
        self.session = open_session(info, threads, profile_prefix)
        self._states = sets = [
            {name: np.zeros([channels, *shape[1:]], np.float32) for name, shape in info.state_shapes.items()}
            for _ in range(2)
        ]
        self._bindings = []
        for i in range(2):
            binding = self.session.io_binding()
            for name in sets[i]:
                _bind(binding, name, sets[i][name])
                _bind(binding, output_name(name), sets[1 - i][name], output=True)
            self._bindings.append(binding)
        self._chunks = [np.empty((0, 0), np.float32)] * 2
        self._outs = [np.empty((0, 0), np.float32)] * 2

    def _run(self, piece: np.ndarray) -> np.ndarray:
        i, binding = self._slot, self._bindings[self._slot]
        if self._chunks[i].shape[1] != len(piece):
            self._chunks[i] = np.empty((self.channels, len(piece)), np.float32)
            self._outs[i] = np.empty_like(self._chunks[i])
            _bind(binding, CHUNK, self._chunks[i])
            _bind(binding, ENHANCED, self._outs[i], output=True)
        self._chunks[i][...] = piece.T
        self.session.run_with_iobinding(binding)
        return self._outs[i]

    def _sessions(self) -> list[ort.InferenceSession]:
        return [self.session]


@dataclass
class _RingRun:
    """What runs of one length need: their graph's session, its two bindings (one per state set), the bound
    arrays, and for each ring position the ring rows of every tap (`tap_rows` is the taps' memory)."""

    session: ort.InferenceSession
    bindings: list[ort.IOBinding]
    chunk: np.ndarray
    out: np.ndarray
    tap_rows: np.ndarray
    activations: np.ndarray
    index: np.ndarray


class RingRunner(Runner):
    """The short-run graphs, one channel: each run takes the graph with the fewest `max_hops` that fits it.
    Frame f's depthwise inputs of all blocks sit in row f mod R of the ring (R: the longest lag), so a run
    gathers its taps with one `take` (taps that fall inside the run read the ring's extra row of zeros) and
    stores its own with one copy."""

    def __init__(self, info: ModelInfo, channels: int, threads: int = 1, profile_prefix: str | None = None) -> None:
        super().__init__(info.hop, channels)
        ring = info.ring
        if ring is None or channels != 1:
            raise ValueError("the short-run graphs need a model that has them, and one channel")
        self.sessions = {k: open_session(info, threads, profile_prefix, ring_hops=k) for k in sorted(ring.graphs)}
        self.max_hops = max(self.sessions)
        self._lags = np.array(ring.lags)  # (blocks, taps)
        self._frames = ring.frames
        self._ring = np.zeros((self._frames * len(ring.lags) + 1, ring.channels), np.float32)  # + a row of zeros
        self._frame_rows = self._ring[:-1].reshape(self._frames, ring.width)
        self._position = 0  # the frame the next run starts at, mod R
        self._states = [
            {name: np.zeros([1, *info.state_shapes[name][1:]], np.float32) for name in (ENCODER_STATE, DECODER_TAIL)}
            for _ in range(2)
        ]
        self._runs: dict[int, _RingRun] = {}  # by samples per run
        self._last: _RingRun | None = None

    def _run(self, piece: np.ndarray) -> np.ndarray:
        run = self._runs.get(len(piece)) or self._prepare(len(piece) // self.hop)
        self._last = run
        run.chunk[...] = piece.T
        self._ring.take(run.index[self._position], axis=0, out=run.tap_rows, mode="clip")
        run.session.run_with_iobinding(run.bindings[self._slot])
        return run.out

    def _prepare(self, hops: int) -> _RingRun:
        """Arrays, bindings and tap index of runs of `hops` hops (made once per run length)."""
        session = self.sessions[min(k for k in self.sessions if k >= hops)]
        blocks, taps = self._lags.shape
        width = self._frame_rows.shape[1]
        chunk = np.zeros((1, hops * self.hop), np.float32)
        out = np.zeros_like(chunk)
        tap_values = np.zeros((taps, hops, width), np.float32)
        activations = np.zeros((hops, width), np.float32)
        t = np.arange(hops)[None, :, None]  # (1, hops, 1) against the lags as (taps, 1, blocks)
        back = self._lags.T[:, None, :]
        frames = (np.arange(self._frames)[:, None, None, None] + t - back) % self._frames  # (R, taps, hops, blocks)
        index = np.where(t >= back, len(self._ring) - 1, frames * blocks + np.arange(blocks))  # in the run: zeros
        bindings = []
        for i in range(2):
            binding = session.io_binding()
            for name, array in ((CHUNK, chunk), (RING_TAPS, tap_values), *self._states[i].items()):
                _bind(binding, name, array)
            _bind(binding, ENHANCED, out, output=True)
            _bind(binding, RING_ACTIVATIONS, activations, output=True)
            for name in self._states[i]:
                _bind(binding, output_name(name), self._states[1 - i][name], output=True)
            bindings.append(binding)
        tap_rows = tap_values.reshape(-1, self._ring.shape[1])  # the take's view: a ring row per tap
        run = _RingRun(session, bindings, chunk, out, tap_rows, activations, index.reshape(self._frames, -1))
        self._runs[len(chunk[0])] = run
        return run

    def _commit(self) -> None:
        super()._commit()
        assert self._last is not None  # a run came first
        stored = self._last.activations
        start, end = self._position, self._position + len(stored)
        first = min(end, self._frames) - start  # frames before the ring wraps
        self._frame_rows[start : start + first] = stored[:first]
        self._frame_rows[: len(stored) - first] = stored[first:]
        self._position = end % self._frames

    def state_arrays(self) -> list[np.ndarray]:
        return [*super().state_arrays(), self._ring]

    def _sessions(self) -> list[ort.InferenceSession]:
        return list(self.sessions.values())


class StepRunner(Runner):
    """The compiled step (`realtime.compiled_step`), one channel: a whole `run` is one native call
    (`compiled_step.runs`), which alternates the two state sets and keeps the ring of past depthwise inputs
    and its position (`cursor`)."""

    max_hops = compiled_step.MAX_HOPS

    def __init__(self, weights: compiled_step.StepWeights) -> None:
        self.cursor = np.zeros(2, np.int64)  # the state set the next run reads, the ring's position
        hop = weights.hop
        super().__init__(hop, 1)
        self.weights = weights
        self.ring = np.zeros((weights.ring_frames, weights.width), np.float32)
        self._states = [
            {name: np.zeros((1, hop), np.float32) for name in (ENCODER_STATE, DECODER_TAIL)} for _ in range(2)
        ]
        self.states = tuple(state[name][0] for name in (ENCODER_STATE, DECODER_TAIL) for state in self._states)
        self.work = (*weights.scratch(), *weights)  # `compiled_step.runs`'s last argument

    @classmethod
    def for_model(cls, info: ModelInfo, channels: int) -> StepRunner:
        """The step runner of a model that has the step's weights, for one channel."""
        if info.step is None or channels != 1:
            raise ValueError("the compiled step needs a model with its weights, and one channel")
        return cls(compiled_step.StepWeights(**info.step))

    @property
    def _slot(self) -> int:
        return int(self.cursor[0])

    @_slot.setter
    def _slot(self, slot: int) -> None:
        self.cursor[0] = slot

    def run(self, hops: np.ndarray) -> np.ndarray:
        chunk = np.ascontiguousarray(hops[:, 0])
        out = np.empty_like(chunk)
        t0 = time.perf_counter()
        pieces = compiled_step.runs(chunk, out, self.cursor, self.states, self.ring, self.work)
        if pieces:
            self.compute_times.extend([(time.perf_counter() - t0) / pieces] * pieces)
        return out[:, None]

    def state_arrays(self) -> list[np.ndarray]:
        return [*super().state_arrays(), self.ring]

    def _sessions(self) -> list[ort.InferenceSession]:
        return []
