"""Signal handling shared by the commands: SIGINT and SIGTERM as KeyboardInterrupt, or ignored."""

from __future__ import annotations

import contextlib
import signal
import threading
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


def interrupt_once() -> contextlib.AbstractContextManager[None]:
    """The first SIGINT (Ctrl-C) or SIGTERM raises KeyboardInterrupt, so that temporary files are removed and
    summaries written, even in a process started with SIGINT ignored (a shell without job control starts
    background commands so, and Python then leaves it ignored). Later ones are ignored until the context ends,
    so that the stop runs its cleanup to the end however many signals follow: `timeout` and service managers
    signal the process and then its group, a user presses Ctrl-C twice."""
    fired = False

    def interrupt(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise KeyboardInterrupt

    return handling((signal.SIGINT, signal.SIGTERM), interrupt)


def signals_ignored() -> contextlib.AbstractContextManager[None]:
    return handling((signal.SIGINT, signal.SIGTERM), signal.SIG_IGN)


class DeferredInterrupts:
    """Between start() and stop(), SIGINT and SIGTERM are held, then handled at stop() as they would have been.

    For the few steps that create something their cleanup must know of. Signals reach Python handlers in the
    main thread only, so elsewhere there is nothing to hold."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._pending: list[int] = []

    def start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = {
                s: signal.signal(s, lambda signum, frame: self._pending.append(signum)) for s in self.SIGNALS
            }

    def stop(self) -> None:
        previous, self._previous = self._previous, {}
        for s, handler in previous.items():
            signal.signal(s, handler)
        pending, self._pending = self._pending, []
        for s in pending:
            signal.raise_signal(s)
