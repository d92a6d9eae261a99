"""Reading and writing audio files: any format soundfile reads, any rate, any channel count.

Writes are atomic (a temporary file in the destination folder, renamed over the target only when
complete) and never touch an input file. Failures raise `AudioError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from realtime.errors import AudioError
from realtime.signals import DeferredInterrupts

AUDIO_EXTENSIONS = {"." + ext.lower() for ext in sf.available_formats()} | {".ogg", ".oga", ".opus", ".mp3"}


def is_audio_path(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS


def list_audio(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Sorted audio files under `folder`; raises AudioError if the folder is missing or has none."""
    root = Path(folder)
    if not root.is_dir():
        raise AudioError(f"{root}: {'not a folder' if root.exists() else 'no such folder'}")
    found = sorted(p for p in (root.rglob("*") if recursive else root.iterdir()) if is_audio_path(p))
    if not found:
        raise AudioError(f"{root}: no audio files found")
    return found


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, expected an audio file")
    if not p.is_file():  # opening a FIFO would wait forever for a writer
        raise AudioError(f"{p}: not a regular file (a pipe, device or socket), expected an audio file")
    try:
        info = sf.info(str(p))
    except Exception as exc:  # soundfile raises several types for unreadable data
        raise AudioError(f"{p}: not a readable audio file ({_describe(exc)})") from None
    if info.frames <= 0:
        raise AudioError(f"{p}: contains no audio samples")
    return info


def is_truncated(info: sf._SoundFileInfo) -> bool:
    """True when the header promised more audio data than the file holds (a cut-off WAV or AIFF):
    libsndfile then reads what is there and notes the mismatch in its log."""
    return any(
        line.split(":")[0].strip() in ("data", "SSND") and "should be" in line for line in info.extra_info.splitlines()
    )


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample (frames,) or (frames, channels) float audio with soxr's high quality filter."""
    if rate_in == rate_out:
        return audio
    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def read_audio(path: str | os.PathLike, sample_rate: int | None = None, mono: bool = False) -> tuple[np.ndarray, int]:
    """Read a whole file as float32 (frames, channels), or (frames,) when `mono` (channels averaged).

    Resampled to `sample_rate` when given. Non-finite samples are an error: they are not audio.
    """
    p = Path(path)
    audio_info(p)
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{p}: could not decode ({_describe(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{p}: contains no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{p}: contains NaN or infinite samples")
    if mono:
        data = data.mean(axis=1)
    if sample_rate is not None and sample_rate != rate:
        data = resample(data, rate, sample_rate)
        rate = sample_rate
    return np.ascontiguousarray(data, dtype=np.float32), rate


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when both paths name one existing file (symlinks and hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_NAME = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.part", re.DOTALL)  # atomic_output's: "." stem "." 8 ".part"
TEMP_STEM_BYTES = 255 - 15  # NAME_MAX less the temporary name's own 15 characters


def temp_stem(name: str) -> str:
    """The output's name as its temporary file's name holds it: cut to TEMP_STEM_BYTES, so that an output
    whose name is itself near NAME_MAX can still be written."""
    raw = os.fsencode(name)
    return name if len(raw) <= TEMP_STEM_BYTES else os.fsdecode(raw[:TEMP_STEM_BYTES])


def remove_stale_temps(targets: list[Path]) -> list[Path]:
    """Remove the temporary files an interrupted run left beside these outputs (ours only, by name);
    one listing per folder. Returns what was removed."""
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        by_folder.setdefault(target.parent, set()).add(temp_stem(target.name))
    removed = []
    for folder, names in by_folder.items():
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                match = TEMP_NAME.fullmatch(entry.name)
                if match and match.group(1) in names and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, protect: tuple[Path, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    A symlink is written through (its target is replaced). Refuses to write over any file in `protect` (the
    inputs), a folder, or a device, pipe or socket. On error the temporary file is removed, so no partial
    output is ever left behind.
    """
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    for src in protect:
        if same_file(src, target):
            raise AudioError(f"{given}: refusing to overwrite an input file")
    if target.is_dir():
        raise AudioError(f"{given}: is a folder, expected a file name")
    if target.exists() and not target.is_file():
        raise AudioError(f"{given}: not a regular file (a device, pipe or socket); refusing to replace it")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise AudioError(f"{folder}: output folder does not exist")
    tmp: Path | None = None
    deferred = DeferredInterrupts()  # a Ctrl-C or SIGTERM in between would leave the temporary file behind
    try:
        deferred.start()
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{temp_stem(target.name)}.", suffix=".part", dir=folder)
        except OSError as exc:
            raise AudioError(f"{folder}: cannot write here ({exc.strerror})") from None
        tmp = Path(tmp_name)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        deferred.stop()  # one that came meanwhile is raised here, where the cleanup knows the file
        yield tmp
        os.replace(tmp, target)
    finally:
        deferred.stop()
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_frames(dst: sf.SoundFile, data: np.ndarray, target: Path) -> None:
    """`dst.write`, naming the output and the system's reason when it fails (libsndfile says "System error")."""
    try:
        dst.write(data)
    except sf.LibsndfileError:
        reason = os.strerror(sf._ffi.errno) if sf._ffi.errno else "write failed"
        raise AudioError(f"{target}: cannot write ({reason})") from None


def output_format(path: Path, source_subtype: str | None = None) -> tuple[str, str | None]:
    """(format, subtype) for writing `path`, keeping the source subtype where the format allows it."""
    ext = path.suffix.lower().lstrip(".")
    fmt = {"oga": "OGG", "opus": "OGG", "aif": "AIFF"}.get(ext, ext.upper())
    if fmt not in sf.available_formats():
        raise AudioError(f"{path}: unknown output format '.{ext}'")
    subtype = source_subtype if source_subtype and sf.check_format(fmt, source_subtype) else None
    if fmt == "OGG":
        subtype = "OPUS" if ext == "opus" else "VORBIS"
    return fmt, subtype


def write_audio(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
    protect: tuple[Path, ...] = (),
) -> None:
    """Write a whole array atomically (float data clipped to [-1, 1])."""
    target = Path(path)
    fmt, subtype = output_format(target, subtype)
    data = np.clip(np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    with atomic_output(target, protect) as tmp:
        try:
            sf.write(str(tmp), data, sample_rate, subtype=subtype, format=fmt)
        except Exception as exc:
            raise AudioError(f"{target}: could not write ({_describe(exc)})") from None
