"""The runtime's numba decorator: compiled, GIL-free functions whose machine code is cached in the user's cache
folder (`$XDG_CACHE_HOME/rtdenoise/numba`, else `~/.cache/rtdenoise/numba`), not beside their modules.

numba caches beside the module by default: in an installed package that is `site-packages/realtime/__pycache__`,
files pip does not know of, so `pip uninstall` (and so `pip install -e .` after `pip install .`) leaves the
folder behind, and Python then imports it as an empty namespace package `realtime` that shadows the editable
install. A `NUMBA_CACHE_DIR` the user set still wins; where the folder is not writable numba falls back to
its own choices. Only our functions are affected: numba's setting is put back after each decoration (numba
picks a function's cache folder when it is decorated).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numba

F = TypeVar("F", bound=Callable)


def cache_folder() -> Path:
    """Where our compiled functions' machine code is cached unless `NUMBA_CACHE_DIR` is set."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rtdenoise" / "numba"


def jit(**flags: object) -> Callable[[F], F]:
    """`numba.njit(cache=True, nogil=True, **flags)`, caching in `cache_folder()`."""

    def decorate(function: F) -> F:
        chosen = numba.config.CACHE_DIR  # the user's NUMBA_CACHE_DIR, or ""
        numba.config.CACHE_DIR = chosen or str(cache_folder())
        try:
            return numba.njit(cache=True, nogil=True, **flags)(function)
        finally:
            numba.config.CACHE_DIR = chosen

    return decorate
