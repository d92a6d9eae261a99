"""Signal handling shared by the commands: SIGINT and SIGTERM as KeyboardInterrupt, or ignored."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def handling(signals: tuple[signal.Signals, ...], handler: Any) -> Iterator[None]:
    previous = [signal.signal(s, handler) for s in signals]
    try:
        yield
    finally:
        for s, old in zip(signals, previous):
            signal.signal(s, old)


def interrupt_on_signals() -> contextlib.AbstractContextManager[None]:
    """SIGINT (Ctrl-C) and SIGTERM raise KeyboardInterrupt, so that temporary files are removed and summaries
    written, even in a process started with SIGINT ignored: a shell without job control starts background
    commands so, and Python then leaves it ignored."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return handling((signal.SIGINT, signal.SIGTERM), interrupt)


def signals_ignored() -> contextlib.AbstractContextManager[None]:
    return handling((signal.SIGINT, signal.SIGTERM), signal.SIG_IGN)
