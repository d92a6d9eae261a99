"""How the engine runs its model: whole hops in, the same number of hops out (delayed by the model), the
stream's state kept from run to run without allocating. No torch.

- `GraphRunner`: the main graph, any number of hops per run, the whole state passed in and out.
- `HopRunner`: the one-hop graph (see `realtime.model_file`), one run per hop, each block's past depthwise
  inputs kept here in a ring and only the taps the hop needs passed in: what live runs, at a fraction of the
  main graph's cost per hop.

Both bind the session to preallocated arrays (IO binding), and alternate two sets of state arrays run by
run: a run reads one set and writes the other, so the state the next run reads is complete even when a
run's output is thrown away.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import onnxruntime as ort

from realtime.errors import AudioError
from realtime.model_file import (
    CHUNK,
    DECODER_TAIL,
    ENCODER_STATE,
    ENHANCED,
    HOP_ACTIVATIONS,
    HOP_TAPS,
    ModelInfo,
    check_graph,
    output_name,
)

MAX_HOPS_PER_RUN = 512  # bounds the session's working memory on long blocks (~1 s at hop 32)


def open_session(
    info: ModelInfo, threads: int = 1, profile_prefix: str | None = None, hop: bool = False
) -> ort.InferenceSession:
    """An onnxruntime CPU session for the model's main graph (`hop`: its one-hop graph), single-threaded by
    default (predictable latency); `profile_prefix`: record onnxruntime's profile (see `end_profiling`) in a
    file with that prefix."""
    path = info.hop_graph.path if hop else info.path
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
    check_graph(info, [(t.name, t.shape) for t in inputs], [(t.name, t.shape) for t in outputs], hop=hop)
    return session


def _bind(binding: ort.IOBinding, name: str, array: np.ndarray, output: bool = False) -> None:
    value = ort.OrtValue.ortvalue_from_numpy(array)
    (binding.bind_ortvalue_output if output else binding.bind_ortvalue_input)(name, value)


class Runner:
    """Runs the model over (k*hop, channels) audio, `max_hops` hops per session run, timing each run."""

    max_hops = MAX_HOPS_PER_RUN

    def __init__(self, info: ModelInfo, channels: int) -> None:
        self.hop = info.hop
        self.channels = channels
        self.compute_times: deque[float] = deque(maxlen=100_000)
        self._slot = 0  # the state set the next run reads

    def run(self, hops: np.ndarray) -> np.ndarray:
        """(k*hop, channels) -> (k*hop, channels) delayed output, advancing the state. A run whose output is not
        finite (the model's arithmetic overflowed) gives silence and starts the state afresh."""
        result = np.empty_like(hops)
        step = self.max_hops * self.hop
        for start in range(0, len(hops), step):
            piece = hops[start : start + step]
            t0 = time.perf_counter()
            out = self._run(piece)
            finite = np.isfinite(out).all()  # the output alone: a non-finite state reaches it by the next run
            if finite:
                self._commit()
            self.compute_times.append(time.perf_counter() - t0)
            if finite:
                result[start : start + len(piece)] = out.T
            else:
                self.reset()
                result[start : start + len(piece)] = 0.0
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
        raise NotImplementedError

    def decoder_tail(self) -> np.ndarray:
        """The overlap-add tail of the current state, (channels, delay)."""
        raise NotImplementedError


class GraphRunner(Runner):
    """The main graph: any number of hops per run. Slot i reads state set i and writes set 1 - i; a slot's
    chunk and output arrays are replaced (and rebound) only when the samples per run change."""

    def __init__(self, info: ModelInfo, channels: int, threads: int = 1, profile_prefix: str | None = None) -> None:
        super().__init__(info, channels)
        self.session = open_session(info, threads, profile_prefix)
        sets = [
            {name: np.zeros([channels, *shape[1:]], np.float32) for name, shape in info.state_shapes.items()}
            for _ in range(2)
        ]
        self._states = sets
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

    def state_arrays(self) -> list[np.ndarray]:
        return list(self._states[self._slot].values())

    def decoder_tail(self) -> np.ndarray:
        return self._states[self._slot][DECODER_TAIL]


class HopRunner(Runner):
    """The one-hop graph, one run per hop. Frame f's depthwise inputs of all blocks sit in the ring's row
    f mod R (R: the longest lag), so a hop gathers its taps with one `take` and stores its own with one copy."""

    max_hops = 1

    def __init__(self, info: ModelInfo, channels: int, threads: int = 1, profile_prefix: str | None = None) -> None:
        super().__init__(info, channels)
        graph = info.hop_graph
        assert graph is not None
        self.session = open_session(info, threads, profile_prefix, hop=True)
        lags = np.array(graph.lags)  # (blocks, taps)
        blocks, taps = lags.shape
        self._frames = graph.ring_frames
        self._ring = np.zeros((channels, self._frames * blocks, graph.channels), np.float32)  # row: frame, block
        self._frame_rows = self._ring.reshape(channels, self._frames, -1)  # the same memory, a row per frame
        rows = (np.arange(self._frames)[:, None, None] - lags.T[None]) % self._frames  # (R, taps, blocks)
        self._index = (rows * blocks + np.arange(blocks)).reshape(self._frames, -1)  # row of each tap in the ring
        self._position = 0  # the frame the next hop computes, mod R
        self._taps = np.zeros((channels, taps, blocks * graph.channels), np.float32)
        self._tap_rows = self._taps.reshape(channels, taps * blocks, graph.channels)
        self._activations = np.zeros((channels, blocks * graph.channels), np.float32)
        self._chunk = np.zeros((channels, self.hop), np.float32)
        self._out = np.zeros_like(self._chunk)
        self._states = [
            {
                name: np.zeros([channels, *info.state_shapes[name][1:]], np.float32)
                for name in (ENCODER_STATE, DECODER_TAIL)
            }
            for _ in range(2)
        ]
        self._bindings = []
        for i in range(2):
            binding = self.session.io_binding()
            _bind(binding, CHUNK, self._chunk)
            _bind(binding, HOP_TAPS, self._taps)
            _bind(binding, ENHANCED, self._out, output=True)
            _bind(binding, HOP_ACTIVATIONS, self._activations, output=True)
            for name in self._states[i]:
                _bind(binding, name, self._states[i][name])
                _bind(binding, output_name(name), self._states[1 - i][name], output=True)
            self._bindings.append(binding)

    def _run(self, piece: np.ndarray) -> np.ndarray:
        self._chunk[...] = piece.T
        self._ring.take(self._index[self._position], axis=1, out=self._tap_rows, mode="clip")
        self.session.run_with_iobinding(self._bindings[self._slot])
        return self._out

    def _commit(self) -> None:
        super()._commit()
        self._frame_rows[:, self._position] = self._activations
        self._position = (self._position + 1) % self._frames

    def state_arrays(self) -> list[np.ndarray]:
        return [*self._states[self._slot].values(), self._ring]

    def decoder_tail(self) -> np.ndarray:
        return self._states[self._slot][DECODER_TAIL]
