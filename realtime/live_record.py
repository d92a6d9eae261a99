"""`denoise live --record DIR`: write what the device captured and played to WAV files, off the audio thread.

The callback copies both signals into rings; a thread drains them into temporary files that are renamed
into place only when the recording is closed, so a file either is complete (a proper header, every frame
that reached the ring) or does not exist. `close()` runs on every stop, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from realtime.audio_io import atomic_output
from realtime.errors import AudioError
from realtime.live import set_realtime
from realtime.ring import RingBuffer

DRAIN_S = 0.05  # how often the thread moves frames from the rings to the files


class Recorder:
    """Two mono WAV files, `<stem>-input.wav` and `<stem>-output.wav`, fed from two rings."""

    def __init__(
        self, folder: str | Path, rate: int, rings: tuple[RingBuffer | None, RingBuffer | None], priority: int = 0
    ) -> None:
        if None in rings:
            raise ValueError("the bridge was made without recording rings")
        root = Path(folder)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AudioError(f"{root}: cannot create the recording folder ({exc.strerror})") from None
        stem = time.strftime("live-%Y%m%d-%H%M%S")
        self.paths = (root / f"{stem}-input.wav", root / f"{stem}-output.wav")
        self._rings = rings
        self._stack = contextlib.ExitStack()
        self._buffer = np.zeros((rings[0].capacity, 1), np.float32)
        try:
            self._files = [
                self._stack.enter_context(sf.SoundFile(str(tmp), "w", rate, 1, "FLOAT", format="WAV"))
                for tmp in (self._stack.enter_context(atomic_output(p)) for p in self.paths)
            ]
        except BaseException:
            self._stack.close()
            raise
        self._error: AudioError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(priority,), name="denoise-recorder", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        for ring, file, path in zip(self._rings, self._files, self.paths):
            n = ring.read_into(self._buffer)
            try:
                file.write(self._buffer[:n])
            except Exception as exc:  # soundfile raises several types (disk full, I/O errors)
                raise AudioError(f"{path}: could not write the recording ({exc})") from None

    def _run(self, priority: int) -> None:
        set_realtime(priority)  # it takes the GIL: see set_realtime
        try:
            while not self._stop.wait(DRAIN_S):
                self._drain()
        except AudioError as exc:
            self._error = exc

    def close(self) -> None:
        """Write what is left and move both files into place (or remove them after a write error)."""
        self._stop.set()
        self._thread.join()
        with self._stack:
            if self._error is not None:
                raise self._error
            self._drain()
