"""The model file contract: an ONNX graph and its JSON sidecar (how it was built, trained and scored).

The one home of that contract, torch-free: export writes the sidecar through `Sidecar`, the engine reads it
through `load_model_info`. The ONNX graph takes `chunk` (batch, k*hop) and the state tensors named in the
sidecar's "inputs" after `chunk` (the model family's: a Conv-TasNet's are `enc`, `conv0` ... `conv{n-1}` one
per TCN block, `dec`; layouts in its "state" entry) and returns `enhanced` (batch, k*hop), delayed by `delay`
samples (the algorithmic latency: L - hop for a model that overlap-adds frames of L samples), and the new
state as `<name>_out` for each. A model with a delay holds its last `delay` output samples in `dec`
(batch, delay), which a stream's end flushes; a model without one needs no `dec`.

A model may also have short-run graphs (`ring` in the sidecar; more ONNX files beside the first): the same
function for one channel and runs of 1 to `max_hops` hops, taking each block's past depthwise inputs (`taps`,
gathered from a ring of past frames the caller keeps) instead of the whole conv state, and returning the
run's (`activations`). Their inputs are `chunk` (1, k*hop), `enc`, `taps` (P-1, k, blocks*H), `dec`; their
outputs `enhanced`, `enc_out`, `activations` (k, blocks*H), `dec_out`. `taps[p, t, i*H:(i+1)*H]` is block
i's part of the activations stored `lags[i][p]` frames before frame t of the run, zeros where that frame is
in the run itself.

The ring entry may also name a step file (`step`: `<stem>.step.npz`), the same short-run function's weights
for `realtime.compiled_step`, which runs it without a graph. Its arrays, `STEP_ARRAYS` (blocks: the TCN's;
N, B, H: its channels; norms as (2, C) gamma then beta):
`encoder` (2*hop, N); `norm0` (2, N), `bottleneck` (N, B), `bottleneck_b` (B,); per block `in_w` (B, H),
`in_b` (H,) and `slope1` (H,) (the conv in and its PReLU), `norm1` (2, H) (times the depthwise weight on the
current frame), `past_w` (P-1, H) and `past_b` (H,) (the depthwise weights on the frames `lags` back, divided
by that weight), `slope2`, `norm2`, `out_w` (H, 2B) (the skip conv, then the residual conv; the last
block's residual zeros); `skip_b` (B,), `mask_slope` (B,), `mask_w` (B, N), `mask_b` (N,); `decoder` (N, 2*hop) (the
frame's first hop, then the overlap added to the next); `eps` (1 + 2*blocks,), every norm's in order. `in_w`
and `out_w` may be int8 (`INT8_ARRAYS`), each column times its float32 scale in `in_scale` (blocks, H) and
`out_scale` (blocks, 2B): the weights of an export on the int8 grid (`model.int8`; the sidecar's `weights`
says so). A float32 file has no scales.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import time
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from realtime.audio_io import atomic_output
from realtime.errors import AudioError

FORMAT = "rtdenoise-onnx/1"
MAX_STATE_VALUES = 1 << 24  # per channel, all state tensors together (64 MiB of float32); the models hold ~0.1 M
ASSETS = "assets"
DEFAULT_NAME = "default"
CHUNK, ENHANCED = "chunk", "enhanced"  # the graph's audio input and output
ENCODER_STATE, DECODER_TAIL = "enc", "dec"
RING_TAPS, RING_ACTIVATIONS = "taps", "activations"  # the short-run graphs' past and present depthwise inputs
STEP_ARRAYS = (
    "encoder", "norm0", "bottleneck", "bottleneck_b", "in_w", "in_scale", "in_b", "slope1", "norm1", "past_w",
    "past_b", "lags", "slope2", "norm2", "out_w", "out_scale", "skip_b", "mask_slope", "mask_w", "mask_b", "decoder",
    "eps",
)  # fmt: skip
INT8_ARRAYS = {"in_w": "in_scale", "out_w": "out_scale"}  # int8 or float32, with a scale per column or none


def output_name(state: str) -> str:
    """The graph output that carries state tensor `state` into the next run."""
    return f"{state}_out"


def ring_graph_inputs() -> list[str]:
    return [CHUNK, ENCODER_STATE, RING_TAPS, DECODER_TAIL]


def ring_graph_outputs() -> list[str]:
    return [ENHANCED, output_name(ENCODER_STATE), RING_ACTIVATIONS, output_name(DECODER_TAIL)]


def ring_graph_file(model_path: Path, max_hops: int) -> str:
    """The file name of the short-run graph for runs of up to `max_hops` hops, beside the main graph."""
    return f"{model_path.stem}.ring{max_hops}.onnx"


def step_file(model_path: Path) -> str:
    """The file name of the compiled step's weights, beside the main graph."""
    return f"{model_path.stem}.step.npz"


RING_GRAPH_NAME = re.compile(r".+\.ring\d+\.onnx")


def default_model_path() -> Path:
    """The ONNX file shipped with the package."""
    return shipped_model_path(DEFAULT_NAME)


def _assets() -> Path:
    return Path(str(resources.files("realtime") / ASSETS))


def shipped_model_path(name: str) -> Path:
    """The ONNX file of the model shipped under `name` (it may not exist)."""
    return _assets() / f"{name}.onnx"


def shipped_model_names() -> list[str]:
    return sorted(p.stem for p in _assets().glob("*.onnx") if not RING_GRAPH_NAME.fullmatch(p.name))


def resolve_model(model: str | os.PathLike | None) -> Path:
    """A model file's path, or the name of a shipped model ("default", "fast"); None is the default."""
    if model is None:
        return default_model_path()
    path = Path(model)
    if not path.exists() and path.suffix == "" and str(model) in shipped_model_names():
        return shipped_model_path(str(model))
    return path


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


@dataclass
class Sidecar:
    """The sidecar document. `state` maps each state input, in graph order, to {"shape": ["batch", sizes...],
    "meaning": ...}; `ring`, if any: {"lags", "channels", "graphs": [{"file", "max_hops"}...], "step"?}
    of the short-run graphs and the compiled step's weights (see the module's docstring); `training` and
    `scores` are free-form records (data, licences, test scores)."""

    model_config: dict[str, Any]
    parameters: int
    hop: int
    delay: int
    state: dict[str, dict[str, Any]]
    opset: int
    verified_max_abs_error: float
    weights: str = "float32"  # or on the int8 grid (`model.int8`), which every path of the file computes with
    training: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    ring: dict[str, Any] | None = None
    frame: int = 0  # samples per encoder frame; 0: model_config's L (files from before other families)
    exported: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    model: str = "causal Conv-TasNet"
    format: str = FORMAT

    @property
    def sample_rate(self) -> int:
        return int(self.model_config["sample_rate"])

    @property
    def window(self) -> int:
        return self.frame or int(self.model_config["L"])

    @property
    def inputs(self) -> list[str]:
        return [CHUNK, *self.state]

    @property
    def outputs(self) -> list[str]:
        return [ENHANCED, *(output_name(n) for n in self.state)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, with the derived entries readers of the file expect (names, latencies in ms)."""
        ms = 1000 / self.sample_rate
        return {
            "format": self.format,
            "model": self.model,
            "model_config": self.model_config,
            "parameters": self.parameters,
            "hop": self.hop,
            "delay": self.delay,
            "algorithmic_latency_ms": self.delay * ms,  # L - hop, as the engine reports it
            **({"window": self.frame} if self.frame else {}),
            "window_ms": self.window * ms,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "state": self.state,
            **(
                {"ring": {**self.ring, "inputs": ring_graph_inputs(), "outputs": ring_graph_outputs()}}
                if self.ring
                else {}
            ),
            "opset": self.opset,
            "verified_max_abs_error": self.verified_max_abs_error,
            **({"weights": self.weights} if self.weights != "float32" else {}),  # files that do not say: float32
            "exported": self.exported,
            "training": self.training,
            "scores": self.scores,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Sidecar:
        """Raises KeyError/TypeError/ValueError on a document that lacks what the runtime needs."""
        if doc["inputs"][:1] != [CHUNK]:
            raise ValueError("inputs must be chunk, then the state tensors")
        state = {name: doc["state"][name] for name in doc["inputs"][1:]}  # in the graph's order
        return cls(
            model_config=dict(doc["model_config"]),
            parameters=int(doc.get("parameters", 0)),
            hop=int(doc["hop"]),
            delay=int(doc["delay"]),
            state={name: {**entry, "shape": entry["shape"]} for name, entry in state.items()},
            opset=int(doc.get("opset", 0)),
            verified_max_abs_error=float(doc.get("verified_max_abs_error", float("nan"))),
            weights=str(doc.get("weights", "float32")),
            training=doc.get("training", {}),
            scores=doc.get("scores", {}),
            ring=_ring_entry(doc["ring"]) if "ring" in doc else None,
            frame=int(doc.get("window", 0)),
            exported=doc.get("exported", ""),
            model=doc.get("model", cls.model),
            format=doc.get("format", FORMAT),
        )

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())


def _ring_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "lags": [[int(n) for n in row] for row in entry["lags"]],
        "channels": int(entry["channels"]),
        "graphs": [{"file": str(g["file"]), "max_hops": int(g["max_hops"])} for g in entry["graphs"]],
        **({"step": str(entry["step"])} if "step" in entry else {}),
    }


@dataclass(frozen=True)
class Ring:
    """A model's short-run graphs: each block's tap lags (frames back), channels H, and the graph for runs of
    up to each `max_hops` hops; `step`: the compiled step's weights, if the model has them."""

    lags: list[list[int]]
    channels: int
    graphs: dict[int, Path]
    step: Path | None = None

    @property
    def frames(self) -> int:
        """Past frames a caller must keep: the longest lag."""
        return max(max(row) for row in self.lags)

    @property
    def width(self) -> int:
        """Values per frame in the ring: blocks * H."""
        return len(self.lags) * self.channels


@dataclass(frozen=True)
class ModelInfo:
    """A model file as the runtime sees it: its path, its sidecar, the whole document for reports, and the
    compiled step's arrays if it has them (read and checked with the sidecar)."""

    path: Path
    sidecar: Sidecar
    document: dict[str, Any]
    step: dict[str, np.ndarray] | None = field(default=None, compare=False, repr=False)  # `read_step`'s arrays

    @property
    def sample_rate(self) -> int:
        return self.sidecar.sample_rate

    @property
    def hop(self) -> int:
        return self.sidecar.hop

    @property
    def window(self) -> int:
        return self.sidecar.window

    @property
    def delay(self) -> int:
        """The algorithmic latency in samples: L - hop, held back by the decoder's overlap-add."""
        return self.sidecar.delay

    @property
    def state_shapes(self) -> dict[str, list[int | str]]:
        """Each state tensor's shape, in the graph's input order."""
        return {name: entry["shape"] for name, entry in self.sidecar.state.items()}

    @property
    def ring(self) -> Ring | None:
        entry = self.sidecar.ring
        if entry is None:
            return None
        graphs = {g["max_hops"]: self.path.parent / g["file"] for g in entry["graphs"]}
        step = self.path.parent / entry["step"] if "step" in entry else None
        return Ring(entry["lags"], entry["channels"], graphs, step)


def load_model_info(model_path: str | os.PathLike | None = None) -> ModelInfo:
    """Read and check the sidecar of `model_path`, a file or a shipped model's name (default: the default)."""
    path = resolve_model(model_path)
    if not path.is_file():
        raise AudioError(f"{path}: model file not found")
    side = sidecar_path(path)
    try:
        doc = json.loads(side.read_text())
        info = ModelInfo(path, Sidecar.from_dict(doc), doc)
    except FileNotFoundError:
        raise AudioError(f"{side}: the model's sidecar JSON is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise AudioError(f"{side}: not a valid rtdenoise model sidecar ({type(exc).__name__}: {exc})") from None
    problem = _layout_problem(info)
    if problem:
        raise AudioError(f"{side}: not a valid rtdenoise model sidecar ({problem})")
    ring = info.ring
    if ring is not None and ring.step is not None:
        info = dataclasses.replace(info, step=read_step(ring.step, info.hop, ring.lags, ring.channels))
    return info


def _layout_problem(info: ModelInfo) -> str | None:
    """What makes the sidecar's numbers unusable (before any memory is allocated for the state), if anything."""
    if not 1000 <= info.sample_rate <= 768000:
        return f"sample rate {info.sample_rate}"
    if not 1 <= info.hop <= info.window:
        return f"hop {info.hop} with window {info.window}"
    if not 0 <= info.delay <= info.window:  # the decoder's overlap-add holds back less than one window
        return f"delay {info.delay}: expected 0 to {info.window} samples"
    for name, shape in info.state_shapes.items():
        sizes = shape[1:] if isinstance(shape, list) else []
        if not sizes or not all(type(n) is int and n >= 1 for n in sizes):
            return f"state {name} has shape {shape}: expected [batch, sizes >= 1...]"
    tail = info.state_shapes.get(DECODER_TAIL)
    if info.delay and tail is None:
        return f"the state tensors must include {DECODER_TAIL}, the tail of its {info.delay}-sample delay"
    if tail is not None and tail[1:] != [info.delay]:
        return f"state {DECODER_TAIL} has shape {tail}: expected [batch, {info.delay}] (the delay)"
    values = sum(math.prod(shape[1:]) for shape in info.state_shapes.values())
    if values > MAX_STATE_VALUES:
        return f"the state holds {values:,} values per channel (at most {MAX_STATE_VALUES:,})"
    return _ring_problem(info)


def _ring_problem(info: ModelInfo) -> str | None:
    ring, entry = info.ring, info.sidecar.ring
    if ring is None:
        return None
    files = [g["file"] for g in entry["graphs"]]
    if not files or any(Path(f).name != f for f in [*files, entry.get("step", "")]):
        return f"ring graphs {files}: expected file names beside the model"
    if len(ring.graphs) != len(files) or min(ring.graphs) < 1:
        return f"ring graphs {entry['graphs']}: expected one graph per max_hops >= 1"
    taps = {len(row) for row in ring.lags}
    if not ring.lags or len(taps) != 1 or taps == {0} or ring.channels < 1:
        return f"ring lags {ring.lags} with {ring.channels} channels: expected the same taps for every block"
    if not all(type(n) is int and n >= 1 for row in ring.lags for n in row):
        return f"ring lags {ring.lags}: expected frame counts >= 1"
    if ring.frames * ring.width > MAX_STATE_VALUES:
        return f"the ring holds {ring.frames * ring.width:,} values per channel (at most {MAX_STATE_VALUES:,})"
    missing = [path.name for path in [*ring.graphs.values(), *filter(None, [ring.step])] if not path.is_file()]
    if missing:
        return f"its short-run graph {missing[0]} is missing"
    return None


def read_step(path: Path, hop: int, lags: list[list[int]], channels: int) -> dict[str, np.ndarray]:
    """The compiled step's arrays from `path` (`STEP_ARRAYS`: float32 but `lags` and int8 weights; scales of one
    for float32 weights), checked against the model's hop and ring (AudioError naming the file if they do not
    fit)."""
    try:
        with np.load(path) as arrays:
            values = {name: np.ascontiguousarray(arrays[name]) for name in STEP_ARRAYS if name in arrays}
        missing = [name for name in STEP_ARRAYS if name not in values and name not in INT8_ARRAYS.values()]
        if missing:
            raise KeyError(f"{missing[0]} is missing")
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise AudioError(f"{path}: not a valid step file ({type(exc).__name__}: {exc})") from None
    for name, scale in INT8_ARRAYS.items():
        if (values[name].dtype == np.int8) != (scale in values):
            raise AudioError(f"{path}: not a valid step file ({name} is int8 exactly when {scale} is there)")
        if scale not in values:  # float32 weights
            values[scale] = np.ones(values[name].shape[:1] + values[name].shape[2:], np.float32)
    values = {
        name: v if name in INT8_ARRAYS and v.dtype == np.int8 else v.astype(np.int64 if name == "lags" else np.float32)
        for name, v in ((name, values[name]) for name in STEP_ARRAYS)
    }
    blocks, b, h = values["in_w"].shape if values["in_w"].ndim == 3 else (0, 0, 0)
    n = values["encoder"].shape[1] if values["encoder"].ndim == 2 else 0
    wanted = {
        "encoder": (2 * hop, n), "norm0": (2, n), "bottleneck": (n, b), "bottleneck_b": (b,),
        "in_w": (blocks, b, h), "in_scale": (blocks, h), "in_b": (blocks, h), "slope1": (blocks, h),
        "norm1": (blocks, 2, h), "past_w": (blocks, len(lags[0]), h), "past_b": (blocks, h),
        "lags": (blocks, len(lags[0])), "slope2": (blocks, h), "norm2": (blocks, 2, h), "out_w": (blocks, h, 2 * b),
        "out_scale": (blocks, 2 * b), "skip_b": (b,), "mask_slope": (b,), "mask_w": (b, n), "mask_b": (n,),
        "decoder": (n, 2 * hop), "eps": (1 + 2 * blocks,),
    }  # fmt: skip
    wrong = [f"{k} has shape {values[k].shape}, expected {s}" for k, s in wanted.items() if values[k].shape != s]
    if wrong:
        raise AudioError(f"{path}: not a valid step file ({wrong[0]})")
    if values["lags"].tolist() != lags or h != channels:
        raise AudioError(
            f"{path}: its lags {values['lags'].tolist()} and {h} channels differ from the sidecar's {lags}, {channels}"
        )
    return values


def check_graph(
    info: ModelInfo, inputs: list[tuple[str, list]], outputs: list[tuple[str, list]], ring: bool = False
) -> None:
    """Refuse a sidecar that does not describe its ONNX graph (`ring`: one of its short-run graphs), given as
    (name, shape) per input and output: names in order, and each state tensor's rank and fixed sizes."""
    side = sidecar_path(info.path)
    if ring:
        wanted = {"inputs": ring_graph_inputs(), "outputs": ring_graph_outputs()}
    else:
        wanted = {"inputs": info.sidecar.inputs, "outputs": info.sidecar.outputs}
    for kind, graph in (("inputs", inputs), ("outputs", outputs)):
        pairs = list(itertools.zip_longest(wanted[kind], (name for name, _ in graph)))
        at = next((i for i, (mine, its) in enumerate(pairs) if mine != its), None)
        if at is not None:
            mine, its = pairs[at]
            raise AudioError(f"{side}: {kind} do not match the ONNX graph's: number {at} is {mine}, the graph's {its}")
    shapes = dict(inputs + outputs)
    for graph_name, shape in _graph_state_shapes(info, ring).items():
        got = shapes[graph_name]
        if len(got) != len(shape) or any(type(g) is type(n) is int and g != n for g, n in zip(got, shape)):
            raise AudioError(f"{side}: state {graph_name} has shape {shape}, the ONNX graph's is {got}")


def _graph_state_shapes(info: ModelInfo, ring: bool) -> dict[str, list[int | str]]:
    """The shape of every state input and output of the main graph, or of a short-run graph (sizes that are
    not numbers vary: batch, frames)."""
    names = [ENCODER_STATE, DECODER_TAIL] if ring else list(info.state_shapes)
    shapes = {n: info.state_shapes[name] for name in names for n in (name, output_name(name))}
    if ring and info.ring is not None:
        taps = len(info.ring.lags[0])
        shapes |= {RING_TAPS: [taps, "frames", info.ring.width], RING_ACTIVATIONS: ["frames", info.ring.width]}
    return shapes


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        write_json(tmp, document)


def check_report_path(path: Path, inputs: frozenset[Path] = frozenset()) -> None:
    """Refuse, before the work whose report it is, a report path that is one of the `inputs` (resolved paths),
    a folder, or in a folder that does not exist."""
    if path.resolve() in inputs:
        raise AudioError(f"{path}: is one of the inputs; write the report elsewhere")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder; give a file name for the report")
    if not path.parent.is_dir():
        raise AudioError(f"{path}: no such folder {path.parent}")
