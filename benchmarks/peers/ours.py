"""Our model: streaming through the torch-free engine (its compiled step, or its ONNX short-run graphs), and
offline through torch from the checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from benchmarks.macs import onnx_macs
from benchmarks.peers.base import BLOCK, System
from realtime.model_file import CHUNK, load_model_info

if TYPE_CHECKING:
    from realtime.engine import Denoiser


class OursStreaming(System):
    """The shipped engine (`realtime.engine.Denoiser`), one thread, fed like a live stream: short blocks run
    through the compiled step where the model has its weights."""

    key, label = "ours_stream", "ours, streaming (engine)"
    streaming = True
    compiled = True

    def load(self) -> None:
        self.engines: dict[int, Denoiser] = {}
        self.stream(BLOCK)

    def stream(self, block: int) -> Denoiser:
        """The engine set up for `block` (its buffering latency depends on the block size), reset."""
        from realtime.engine import Denoiser

        if block not in self.engines:
            self.engines[block] = Denoiser(self.options.model, block_size=block, threads=1, compiled=self.compiled)
        engine = self.engines[block]
        engine.reset()
        return engine

    def macs_per_second(self) -> float | None:
        info = load_model_info(self.options.model)
        dims = {name: [1, *shape[1:]] for name, shape in info.state_shapes.items()}
        return onnx_macs(info.path, {CHUNK: [1, info.hop], **dims}) * info.sample_rate / info.hop


class OursGraphs(OursStreaming):
    """The same engine with the compiled step left out: short blocks through the ONNX short-run graphs (for
    speed; its output equals the compiled step's, so quality runs it only when named)."""

    key, label = "ours_graphs", "ours, streaming (ONNX short-run graphs)"
    compiled = False
    by_default = False


class OursTorch(System):
    """The checkpoint run offline by torch (its network's `forward` on the whole signal), one thread, as its
    export computes it (a Conv-TasNet's blocks on the int8 grid: `model.int8`)."""

    key, label = "ours_torch", "ours, offline (torch)"
    package = "torch"

    def missing(self) -> str | None:
        if reason := super().missing():
            return reason
        if self.options.checkpoint is None or not self.options.checkpoint.is_file():
            return f"checkpoint {self.options.checkpoint} not found (--checkpoint FILE)"
        return None

    def load(self) -> None:
        import torch

        from model.families import build
        from model.int8 import as_exported

        torch.set_num_threads(1)
        saved = torch.load(self.options.checkpoint, map_location="cpu", weights_only=True)
        self.net = build(saved["model_config"])
        self.net.load_state_dict(saved["model"])
        self.net = as_exported(self.net.eval())

    def process(self, noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.net(torch.from_numpy(np.ascontiguousarray(noisy))).numpy()
