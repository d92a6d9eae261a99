"""The shipped model files: an ONNX graph and its JSON sidecar (how it was built, trained and scored).

The ONNX graph takes `chunk` (batch, k*hop) and the state tensors named in the sidecar's "inputs" after
`chunk` (`enc`, `conv0` ... `conv{n-1}` one per TCN block, `dec`; layouts in its "state" entry) and returns
`enhanced` (batch, k*hop), delayed by `delay` samples, and the new state as `<name>_out` for each.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from realtime.audio_io import AudioError, atomic_output

FORMAT = "rtdenoise-onnx/1"
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
        return ModelInfo(
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


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
