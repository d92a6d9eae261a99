"""Atomic checkpoints with one previous generation kept, so a kill or a full disk loses nothing.

`last.pt` is written as a temporary file, flushed to disk and renamed; the file it replaces is kept
as `prev.pt`. Loading falls back from a corrupted `last.pt` to `prev.pt` and says so.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

LAST, PREV, BEST = "last.pt", "prev.pt", "best.pt"
TEMP_SUFFIX = ".tmp"


class CheckpointError(Exception):
    """No usable checkpoint (message says which files and why)."""


def _write_temp(payload: dict[str, Any], folder: Path, name: str) -> str:
    """Write `payload` completely (flushed to disk) to a temporary file in `folder`; return its path.

    A failed write (disk full, say) removes the temporary file and raises CheckpointError; the files
    already there are untouched."""
    import torch  # here, not at the top: the file names above are shared with torch-free code (publish)

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise CheckpointError(f"{folder / name}: cannot save the checkpoint ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        os.unlink(tmp)
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not a failed write
            raise
        # an OSError (a full disk, say), or torch's RuntimeError wrapping one
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{folder / name}: cannot save the checkpoint ({reason}); the previous checkpoint is kept"
        ) from None
    return tmp


def remove_unfinished(folder: Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that a kill interrupted; returns them."""
    stale = [p for name in (LAST, BEST) for p in folder.glob(f".{name}.*{TEMP_SUFFIX}")]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """Write `payload` to `path` via a temporary file in the same folder; never leaves a partial file."""
    tmp = _write_temp(payload, path.parent, path.name)
    try:
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(payload: dict[str, Any], folder: Path) -> None:
    """Save as last.pt, keeping the former last.pt as prev.pt (only once the new one is complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    last, prev = folder / LAST, folder / PREV
    tmp = _write_temp(payload, folder, LAST)
    try:
        if last.exists():
            os.replace(last, prev)
        os.replace(tmp, last)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_file(path: Path) -> dict[str, Any]:
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or "model" not in payload or "model_config" not in payload:
        raise CheckpointError(f"{path}: not an rtdenoise checkpoint")
    return payload


def load_latest(folder: Path) -> dict[str, Any] | None:
    """The newest loadable checkpoint in `folder` (last.pt, else prev.pt), or None if there is none."""
    errors = []
    for name in (LAST, PREV):
        path = folder / name
        if not path.exists():
            continue
        try:
            payload = load_file(path)
        except CheckpointError as exc:
            errors.append(str(exc))
            print(f"warning: {exc}; trying the previous checkpoint", file=sys.stderr)
            continue
        if errors:
            print(f"resuming from {path} (step {payload.get('step', '?')})", file=sys.stderr)
        return payload
    if errors:
        raise CheckpointError("; ".join(errors))
    return None
