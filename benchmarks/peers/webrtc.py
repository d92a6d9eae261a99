"""WebRTC noise suppression (`webrtc-noise-gain`), level 2 of 0-4, no gain control: 10 ms int16 frames at 16 kHz."""

from __future__ import annotations

import numpy as np

from benchmarks.peers.base import FrameStream, Stream, System

LEVEL = 2
FRAME = 160


class _WebRtcStream(FrameStream):
    def __init__(self) -> None:
        from webrtc_noise_gain import AudioProcessor

        super().__init__(FRAME, tail=FRAME)
        self.processor = AudioProcessor(0, LEVEL)

    def step(self, hop: np.ndarray) -> np.ndarray:
        pcm = np.clip(np.round(hop * 32768), -32768, 32767).astype(np.int16)
        out = self.processor.Process10ms(pcm.tobytes()).audio
        return np.frombuffer(out, np.int16).astype(np.float32) / 32768


class WebRtcNS(System):
    key, label = "webrtc", f"WebRTC NS (level {LEVEL})"
    streaming = True
    package = "webrtc_noise_gain"

    def stream(self, block: int) -> Stream:
        return _WebRtcStream()
