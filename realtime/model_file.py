"""The shipped model files: an ONNX graph and its JSON sidecar (how it was built, trained and scored).

The ONNX graph takes `chunk` (batch, k*hop) and the state tensors named in the sidecar's "inputs" after
`chunk` (`enc`, `conv0` ... `conv{n-1}` one per TCN block, `dec`; layouts in its "state" entry) and returns
`enhanced` (batch, k*hop), delayed by `delay` samples, and the new state as `<name>_out` for each.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from realtime.audio_io import AudioError, atomic_output

FORMAT = "rtdenoise-onnx/1"
MAX_STATE_VALUES = 1 << 24  # per channel, all state tensors together (64 MiB of float32); the models hold ~0.1 M
ASSETS = "assets"
DEFAULT_NAME = "default"


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


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs from a sidecar, plus the whole document for reports."""

    path: Path
    sample_rate: int
    hop: int
    window: int
    delay: int
    state_shapes: dict[str, list[int | str]]  # in the graph's input order
    document: dict[str, Any]

    @property
    def algorithmic_latency(self) -> int:
        """Samples: the encoder window L (no look-ahead: the model is causal)."""
        return self.window


def load_model_info(model_path: str | os.PathLike | None = None) -> ModelInfo:
    """Read and check the sidecar of `model_path`, a file or a shipped model's name (default: the default)."""
    path = resolve_model(model_path)
    if not path.is_file():
        raise AudioError(f"{path}: model file not found")
    side = sidecar_path(path)
    try:
        doc = json.loads(side.read_text())
        cfg = doc["model_config"]
        info = ModelInfo(
            path=path,
            sample_rate=int(cfg["sample_rate"]),
            hop=int(doc["hop"]),
            window=int(cfg["L"]),
            delay=int(doc["delay"]),
            state_shapes={k: doc["state"][k]["shape"] for k in doc["inputs"][1:]},
            document=doc,
        )
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
    if info.document["inputs"][:1] != ["chunk"] or "dec" not in info.state_shapes:
        return "inputs must be chunk, then the state tensors with dec among them"
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
    wanted = {"inputs": info.document["inputs"], "outputs": ["enhanced", *(f"{n}_out" for n in info.state_shapes)]}
    for kind, graph in (("inputs", inputs), ("outputs", outputs)):
        pairs = list(itertools.zip_longest(wanted[kind], (name for name, _ in graph)))
        at = next((i for i, (mine, its) in enumerate(pairs) if mine != its), None)
        if at is not None:
            mine, its = pairs[at]
            raise AudioError(f"{side}: {kind} do not match the ONNX graph's: number {at} is {mine}, the graph's {its}")
    shapes = dict(inputs + outputs)
    for name, shape in info.state_shapes.items():
        for graph_name in (name, f"{name}_out"):
            got = shapes[graph_name]
            if len(got) != len(shape) or any(type(g) is int and g != n for g, n in zip(got[1:], shape[1:])):
                raise AudioError(f"{side}: state {name} has shape {shape}, the ONNX graph's {graph_name} is {got}")


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        write_json(tmp, document)
