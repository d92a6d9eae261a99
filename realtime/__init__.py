"""The torch-free runtime: streaming engine, file processing, live audio and the `denoise` command.

from realtime import Denoiser, denoise
clean = denoise(noisy, 48000)                  # whole signal, any rate, (frames,) or (frames, channels)
engine = Denoiser()                            # streaming, shipped model, 16 kHz
out = engine.feed(block)                       # any block size; `engine.latency` samples behind
tail = engine.flush()
"""

from realtime.engine import Denoiser
from realtime.files import denoise

__all__ = ["Denoiser", "denoise"]
