"""Export a checkpoint of any model family to ONNX with its streaming state as explicit inputs/outputs, verify
it against torch with onnxruntime, and write the JSON sidecar (and, for a Conv-TasNet, its short-run graphs and
the compiled step's weights)."""

from __future__ import annotations

import contextlib
import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from model.config import TasNetConfig, config_from_dict
from model.conv_tasnet import ConvTasNet
from model.families import build
from model.int8 import DESCRIPTION as INT8_DESCRIPTION
from model.int8 import as_exported
from model.ring_step import RingStep, lags, step_arrays, stream_error
from model.streaming import Streaming
from realtime import compiled_step
from realtime.audio_io import atomic_output
from realtime.model_file import (
    CHUNK,
    ENHANCED,
    RING_ACTIVATIONS,
    RING_TAPS,
    Sidecar,
    output_name,
    read_step,
    ring_graph_file,
    ring_graph_inputs,
    ring_graph_outputs,
    sidecar_path,
    step_file,
)
from realtime.runners import StepRunner
from training.checkpoint import load_file
from training.config import TrainConfig
from training.provenance import training_data

OPSET = 17
TOLERANCE = 1e-4
RING_GRAPHS = (1, 8)  # the short-run graphs written: one hop (live's), and up to 8 (10 ms blocks, longer periods)


class ExportError(Exception):
    """The exported graph does not reproduce the torch model."""


def fusable(model: Streaming) -> Streaming:
    """A copy computing the same function with every one-slope PReLU as a LeakyReLU of that slope:
    onnxruntime fuses LeakyRelu into the conv before it (one node instead of two), never PRelu."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.PReLU) and child.weight.numel() == 1:
                setattr(module, name, nn.LeakyReLU(float(child.weight)))
    return model


class _StreamGraph(nn.Module):
    """forward_stream with the state flattened into named tensors, as ONNX wants it."""

    def __init__(self, model: Streaming) -> None:
        super().__init__()
        self.model = fusable(model)

    def forward(self, chunk: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        return self.model.stream_flat(chunk, *state)


def state_layout(model: Streaming) -> dict[str, Any]:
    """Shapes ("batch" is dynamic) and meaning of each state tensor, in the graph's order."""
    return {s.name: {"shape": ["batch", *s.shape], "meaning": s.meaning} for s in model.state_spec()}


def verify(model: Streaming, onnx_path: Path, seconds: float = 1.0, seed: int = 0) -> float:
    """Max abs difference between onnxruntime and torch streaming over uneven chunks of random audio."""
    rng = np.random.default_rng(seed)
    hop = model.config.hop
    audio = (rng.standard_normal((2, int(seconds * model.config.sample_rate) // hop * hop)) * 0.1).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    spec = model.state_spec()
    state_t = [torch.zeros(2, *s.shape) for s in spec]
    state_np = [t.numpy() for t in state_t]
    worst, pos = 0.0, 0
    while pos < audio.shape[1]:
        k = int(rng.integers(1, 40)) * hop
        chunk = audio[:, pos : pos + k]
        pos += chunk.shape[1]
        outs = session.run(None, {CHUNK: chunk, **{s.name: a for s, a in zip(spec, state_np)}})
        with torch.no_grad():
            ref, *state_t = model.stream_flat(torch.from_numpy(chunk), *state_t)
        worst = max(worst, float(np.max(np.abs(outs[0] - ref.numpy()))))
        state_np = outs[1:]
    return worst


def verify_ring(model: ConvTasNet, onnx_path: Path, max_hops: int, frames: int = 600) -> float:
    """Max abs difference between a short-run graph, run in random runs of 1 to `max_hops` hops from a ring of
    past activations, and torch streaming (long enough to wrap the ring of the default model)."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def step(*arrays: np.ndarray) -> list[np.ndarray]:
        return session.run(None, dict(zip(ring_graph_inputs(), arrays)))

    return stream_error(model, step, max_hops, frames)[0]


def verify_step(model: ConvTasNet, path: Path, frames: int = 600, seed: int = 0) -> float:
    """Max abs difference between the engine's step runner on the weights in `path`, run in random runs of 1 to
    its `MAX_HOPS` hops, and torch streaming (long enough to wrap its ring for the default model)."""
    c = model.config
    runner = StepRunner(compiled_step.StepWeights(**read_step(path, c.hop, lags(c), c.H)))
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal(frames * c.hop) * 0.1).astype(np.float32)
    state = model.initial_state(1)
    worst, pos = 0.0, 0
    while pos < frames:
        k = min(int(rng.integers(1, runner.max_hops + 1)), frames - pos)
        chunk = audio[pos * c.hop : (pos + k) * c.hop]
        out = runner.run(chunk[:, None])[:, 0]
        with torch.no_grad():
            ref, state = model.forward_stream(torch.from_numpy(chunk)[None], state)
        worst = max(worst, float(np.max(np.abs(out - ref.numpy()[0]))))
        pos += k
    return worst


def _export_ring_graph(model: ConvTasNet, path: Path, max_hops: int) -> None:
    c = model.config
    hops = min(2, max_hops)
    example = (
        torch.zeros(1, hops * c.hop),
        torch.zeros(1, model.delay),
        torch.zeros(c.P - 1, hops, len(model.blocks) * c.H),
        torch.zeros(1, model.delay),
    )
    dynamic = {
        CHUNK: {1: "samples"},
        ENHANCED: {1: "samples"},
        RING_TAPS: {1: "frames"},
        RING_ACTIVATIONS: {0: "frames"},
    }
    with torch.no_grad():
        torch.onnx.export(
            RingStep(model, max_hops).eval(),
            example,
            str(path),
            input_names=ring_graph_inputs(),
            output_names=ring_graph_outputs(),
            dynamic_axes=dynamic if max_hops > 1 else None,
            opset_version=OPSET,
            dynamo=False,
        )


def export(checkpoint: Path, output: Path, scores: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write `output` (.onnx), its short-run graphs (`<stem>.ring<max_hops>.onnx`) and its sidecar from a
    training checkpoint, all or none (each to a temporary file first; the sidecar goes into place last);
    returns the sidecar document."""
    if output.suffix.lower() != ".onnx":
        raise ExportError(f"{output}: the model's name must end in .onnx (its sidecar is written beside it as .json)")
    payload = load_file(checkpoint)
    try:
        config = config_from_dict(payload["model_config"])
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{checkpoint}: its model_config does not build a network ({exc})") from None
    if isinstance(config, TasNetConfig) and config.norm != "cLN":
        raise ExportError(f"{checkpoint}: norm {config.norm!r} has no streaming form; only cLN models export")
    model = build(config)
    model.load_state_dict(payload["model"])
    model.eval()
    rings = RING_GRAPHS if isinstance(model, ConvTasNet) else ()  # the short-run form is Conv-TasNet's
    model = as_exported(model)  # what every path of the file computes with (see model.int8)
    output.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as outputs:
        tmp_sidecar = outputs.enter_context(atomic_output(sidecar_path(output), protect=(checkpoint,)))
        tmp = outputs.enter_context(atomic_output(output, protect=(checkpoint,)))
        tmp_rings = {
            k: outputs.enter_context(atomic_output(output.with_name(ring_graph_file(output, k)), protect=(checkpoint,)))
            for k in rings
        }
        tmp_step = (
            outputs.enter_context(atomic_output(output.with_name(step_file(output)), protect=(checkpoint,)))
            if rings
            else None
        )
        spec = model.state_spec()
        names = [s.name for s in spec]
        example = (torch.zeros(1, 4 * config.hop), *(torch.zeros(1, *s.shape) for s in spec))
        graph_outputs = [ENHANCED, *map(output_name, names)]
        dynamic = {CHUNK: {0: "batch", 1: "samples"}, ENHANCED: {0: "batch", 1: "samples"}}
        dynamic.update({n: {0: "batch"} for n in (*names, *graph_outputs[1:])})
        with torch.no_grad(), warnings.catch_warnings():
            # an LSTM's exporter warns of batch sizes unless h0/c0 are inputs: they are (the state), and
            # `verify` runs the graph at batch 2
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
            torch.onnx.export(
                _StreamGraph(model),
                example,
                str(tmp),
                input_names=[CHUNK, *names],
                output_names=graph_outputs,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
        error = verify(model, tmp)
        if not error <= TOLERANCE:
            raise ExportError(f"{output}: ONNX output differs from torch by {error:.2e} (> {TOLERANCE:g}); not written")
        for max_hops, path in tmp_rings.items():
            _export_ring_graph(model, path, max_hops)
            ring_error = verify_ring(model, path, max_hops)
            if not ring_error <= TOLERANCE:
                raise ExportError(
                    f"{output}: its {max_hops}-hop graph differs from torch by {ring_error:.2e} (> {TOLERANCE:g}); "
                    "not written"
                )
            error = max(error, ring_error)
        if tmp_step is not None:
            with open(tmp_step, "wb") as file:
                np.savez(file, **step_arrays(model, int8=True))
            step_error = verify_step(model, tmp_step)
            if not step_error <= TOLERANCE:
                raise ExportError(
                    f"{output}: its compiled step differs from torch by {step_error:.2e} (> {TOLERANCE:g}); not written"
                )
            error = max(error, step_error)
        train_cfg = TrainConfig.from_dict(payload.get("train_config", {}))
        sidecar = Sidecar(
            model_config=config.to_dict(),
            parameters=model.num_parameters(),
            hop=config.hop,
            delay=model.delay,
            state=state_layout(model),
            opset=OPSET,
            verified_max_abs_error=error,
            weights=INT8_DESCRIPTION if isinstance(model, ConvTasNet) else "float32",
            training={
                "checkpoint": checkpoint.name,
                "steps": payload.get("step"),
                "cpu_hours": round(payload.get("cpu_seconds", 0.0) / 3600, 3),
                "gpu_hours": round(payload.get("gpu_seconds", 0.0) / 3600, 3),
                **({"averaged_from": payload["averaged_from"]} if "averaged_from" in payload else {}),
                "train_config": train_cfg.to_dict(),
                # what the run recorded when it started; for checkpoints from before it did, today's folders
                "data": payload.get("data")
                or training_data(
                    train_cfg.speech, train_cfg.noise, train_cfg.paired, train_cfg.rir, train_cfg.allow_non_commercial
                ),
            },
            scores=scores or {},
            ring={
                "lags": lags(config),
                "channels": config.H,
                "graphs": [{"file": ring_graph_file(output, k), "max_hops": k} for k in rings],
                "step": step_file(output),
            }
            if rings
            else None,
            frame=model.window,
            model=model.title,
        )
        sidecar.write(tmp_sidecar)
    return sidecar.to_dict()
