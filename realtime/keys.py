"""Single key presses from the terminal, without Enter, for live controls (the terminal is restored on exit).

Only when stdin is a terminal; otherwise (pipes, CI) `poll` just waits, so the caller's loop is the same.
"""

from __future__ import annotations

import os
import select
import sys
import time
from types import TracebackType


class Keys:
    def __init__(self) -> None:
        self.enabled = sys.stdin is not None and sys.stdin.isatty() and os.name == "posix"
        self._saved: list | None = None

    def __enter__(self) -> Keys:
        if self.enabled:
            import termios
            import tty

            fd = sys.stdin.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # keys arrive one by one; Ctrl-C still interrupts
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)

    def poll(self, timeout: float) -> str | None:
        """The next key pressed within `timeout` seconds, else None."""
        if not self.enabled:
            time.sleep(timeout)
            return None
        ready = select.select([sys.stdin], [], [], timeout)[0]
        return os.read(sys.stdin.fileno(), 1).decode(errors="replace") if ready else None
