"""The model file contract: an ONNX graph and its JSON sidecar (how it was built, trained and scored).

The one home of that contract, torch-free: export writes the sidecar through `Sidecar`, the engine reads it
through `load_model_info`. The ONNX graph takes `chunk` (batch, k*hop) and the state tensors named in the
sidecar's "inputs" after `chunk` (`enc`, `conv0` ... `conv{n-1}` one per TCN block, `dec`; layouts in its
"state" entry) and returns `enhanced` (batch, k*hop), delayed by `delay` samples (the algorithmic latency,
L - hop), and the new state as `<name>_out` for each.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from realtime.audio_io import atomic_output
from realtime.errors import AudioError

FORMAT = "rtdenoise-onnx/1"
MAX_STATE_VALUES = 1 << 24  # per channel, all state tensors together (64 MiB of float32); the models hold ~0.1 M
ASSETS = "assets"
DEFAULT_NAME = "default"
CHUNK, ENHANCED = "chunk", "enhanced"  # the graph's audio input and output
ENCODER_STATE, DECODER_TAIL = "enc", "dec"


def state_names(blocks: int) -> list[str]:
    """The graph's state inputs for a network of `blocks` TCN blocks, in the model's StreamState.flat() order."""
    return [ENCODER_STATE, *(f"conv{i}" for i in range(blocks)), DECODER_TAIL]


def output_name(state: str) -> str:
    """The graph output that carries state tensor `state` into the next run."""
    return f"{state}_out"


def default_model_path() -> Path:
    """The ONNX file shipped with the package."""
    return shipped_model_path(DEFAULT_NAME)


def _assets() -> Path:
    return Path(str(resources.files("realtime") / ASSETS))


def shipped_model_path(name: str) -> Path:
    """The ONNX file of the model shipped under `name` (it may not exist)."""
    return _assets() / f"{name}.onnx"


def shipped_model_names() -> list[str]:
    return sorted(p.stem for p in _assets().glob("*.onnx"))


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
    "meaning": ...}; `training` and `scores` are free-form records (data, licences, test scores)."""

    model_config: dict[str, Any]
    parameters: int
    hop: int
    delay: int
    state: dict[str, dict[str, Any]]
    opset: int
    verified_max_abs_error: float
    training: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    exported: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    model: str = "causal Conv-TasNet"
    format: str = FORMAT

    @property
    def sample_rate(self) -> int:
        return int(self.model_config["sample_rate"])

    @property
    def window(self) -> int:
        return int(self.model_config["L"])

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
            "window_ms": self.window * ms,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "state": self.state,
            "opset": self.opset,
            "verified_max_abs_error": self.verified_max_abs_error,
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
            training=doc.get("training", {}),
            scores=doc.get("scores", {}),
            exported=doc.get("exported", ""),
            model=doc.get("model", cls.model),
            format=doc.get("format", FORMAT),
        )

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())


@dataclass(frozen=True)
class ModelInfo:
    """A model file as the runtime sees it: its path, its sidecar, and the whole document for reports."""

    path: Path
    sidecar: Sidecar
    document: dict[str, Any]

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
    return info


def _layout_problem(info: ModelInfo) -> str | None:
    """What makes the sidecar's numbers unusable (before any memory is allocated for the state), if anything."""
    if not 1000 <= info.sample_rate <= 768000:
        return f"sample rate {info.sample_rate}"
    if not 1 <= info.hop <= info.window:
        return f"hop {info.hop} with window {info.window}"
    if not 0 <= info.delay <= info.window:  # the decoder's overlap-add holds back less than one window
        return f"delay {info.delay}: expected 0 to {info.window} samples"
    if DECODER_TAIL not in info.state_shapes:
        return f"the state tensors must include {DECODER_TAIL}"
    for name, shape in info.state_shapes.items():
        sizes = shape[1:] if isinstance(shape, list) else []
        if not sizes or not all(type(n) is int and n >= 1 for n in sizes):
            return f"state {name} has shape {shape}: expected [batch, sizes >= 1...]"
    values = sum(math.prod(shape[1:]) for shape in info.state_shapes.values())
    if values > MAX_STATE_VALUES:
        return f"the state holds {values:,} values per channel (at most {MAX_STATE_VALUES:,})"
    return None


def check_graph(info: ModelInfo, inputs: list[tuple[str, list]], outputs: list[tuple[str, list]]) -> None:
    """Refuse a sidecar that does not describe its ONNX graph, given as (name, shape) per input and output:
    names in order (`enhanced`, then `<state>_out` per state), and each state's rank and fixed sizes."""
    side = sidecar_path(info.path)
    wanted = {"inputs": info.sidecar.inputs, "outputs": info.sidecar.outputs}
    for kind, graph in (("inputs", inputs), ("outputs", outputs)):
        pairs = list(itertools.zip_longest(wanted[kind], (name for name, _ in graph)))
        at = next((i for i, (mine, its) in enumerate(pairs) if mine != its), None)
        if at is not None:
            mine, its = pairs[at]
            raise AudioError(f"{side}: {kind} do not match the ONNX graph's: number {at} is {mine}, the graph's {its}")
    shapes = dict(inputs + outputs)
    for name, shape in info.state_shapes.items():
        for graph_name in (name, output_name(name)):
            got = shapes[graph_name]
            if len(got) != len(shape) or any(type(g) is int and g != n for g, n in zip(got[1:], shape[1:])):
                raise AudioError(f"{side}: state {name} has shape {shape}, the ONNX graph's {graph_name} is {got}")


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        write_json(tmp, document)
