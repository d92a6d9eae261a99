"""The bad-input and fault corpus (issue 6): every case is built at run time in its own folder, run through
the real `denoise` command in a fresh interpreter, and judged by one set of rules (`run_case`), shared by
tests/test_reliability.py and benchmarks/reliability.py.

A case either works (the expected exit; a denoised file has the input's rate, channels, sample format and
length, and is finite and within full scale) or fails cleanly (the expected non-zero exit, a message naming
the file and the reason, no traceback, no new file). In every case the inputs keep their checksums and no
temporary file (`.*.part`, `.*.tmp`) is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from helpers import write_tone_noise

from realtime.model_file import default_model_path

DATA = Path(__file__).parent / "data"
SPEECH, NOISE = DATA / "speech", DATA / "noise"
RATES = (8000, 22050, 44100, 48000, 96000)
CHANNELS = (1, 2, 6)
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
TINY_MODEL = ["--N", "16", "--B", "16", "--H", "16", "--X", "2", "--R", "1", "--L", "16"]
# --allow-non-commercial: the test noise is UrbanSound8K (CC BY-NC)
TINY_RUN = [*TINY_MODEL, "--batch-size", "2", "--seconds", "0.5", "--threads", "1", "--val-every", "1000"]
TINY_RUN += ["--allow-non-commercial"]
TEMP_FILE = re.compile(r"^\..*\.(part|tmp)$")
MESSAGE = re.compile(r"((denoise|error|warning|not scored|step \d+):|(skipped|saved|removed|resuming) ).*")


@dataclass
class Case:
    """One `denoise` command on prepared files, and what it must do."""

    root: Path  # the case's folder: paths in reports are shown relative to it
    argv: list[str]  # the command line after `denoise`
    code: int  # expected exit status
    says: tuple[str, ...] = ()  # must appear in the output (stderr, or stdout for training's step notes)
    denies: tuple[str, ...] = ()  # must not appear in the output
    inputs: list[Path] = field(default_factory=list)  # files and folders whose checksums must not change
    outputs: list[Path] = field(default_factory=list)  # folders where no temporary file may stay
    produces: list[Path] = field(default_factory=list)  # files a working case writes
    like: Path | None = None  # the input that `produces[0]` must match (rate, channels, format, length)
    max_file_bytes: int | None = None  # RLIMIT_FSIZE for the command: a disk that fills up mid-write
    cache: Path | None = None  # RTDENOISE_CACHE (default: in the case folder)
    note: str = ""  # how the fault was made, for the report
    verify: Callable[[], list[str]] | None = None  # further checks after the run; returns the problems
    during: Callable[[subprocess.Popen], None] | None = None  # done to the running command (send it a signal)
    timeout: float = 600  # seconds before the command counts as hung and is killed


@dataclass
class Outcome:
    """What a case's command did, and every promise it broke (`problems`)."""

    case: Case
    code: int
    message: str
    inputs_unchanged: bool
    partial_left: list[str]
    problems: list[str]


# -- running and judging ----------------------------------------------------------------------------------------
def digest(path: Path) -> dict[str, str]:
    """sha256 of a file, or of every file under a folder (by relative path)."""
    if path.is_file():
        return {"": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {p.relative_to(path).as_posix(): digest(p)[""] for p in sorted(path.rglob("*")) if p.is_file()}


def files_in(folder: Path, root: Path) -> set[Path]:
    """Files under `folder`; only its own entries for a system folder outside the case (/sys)."""
    if not folder.is_dir():
        return set()
    found = folder.rglob("*") if folder.is_relative_to(root) else folder.glob("*")
    return {p for p in found if p.is_file() or TEMP_FILE.match(p.name)}


def _limit_file_size(limit: int) -> Callable[[], None]:
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def run_case(case: Case) -> Outcome:
    """Run the case's command as a user would and check every promise."""
    before = {p: digest(p) for p in case.inputs}
    existing = set().union(*(files_in(f, case.root) for f in case.outputs))
    env = {**os.environ, "RTDENOISE_CACHE": str(case.cache or case.root / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime.cli", *case.argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=case.root,
        preexec_fn=_limit_file_size(case.max_file_bytes) if case.max_file_bytes else None,
    )
    problems = []
    try:
        if case.during is not None:
            case.during(proc)
        stdout, stderr = proc.communicate(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        problems.append(f"hung: killed after {case.timeout:g} s")
    output = stderr + stdout
    if proc.returncode != case.code:
        problems.append(f"exit {proc.returncode}, expected {case.code}")
    if "Traceback" in output:
        problems.append("traceback")
    if case.code and not stderr.strip():
        problems.append("failed without saying why")
    problems += [f"does not say {s!r}" for s in case.says if s not in output]
    problems += [f"says {s!r}" for s in case.denies if s in output]
    changed = [str(p) for p, d in before.items() if digest(p) != d]
    problems += [f"input changed: {p}" for p in changed]
    after = set().union(*(files_in(f, case.root) for f in case.outputs))
    partial = sorted(
        str(p.relative_to(case.root) if p.is_relative_to(case.root) else p) for p in after if TEMP_FILE.match(p.name)
    )
    problems += [f"temporary file left: {p}" for p in partial]
    if proc.returncode != 0:  # a partial failure (exit 1) may write what `produces` lists
        new = sorted(p for p in after - existing if not TEMP_FILE.match(p.name) and p not in case.produces)
        problems += [f"failed but wrote {p}" for p in new]
    if proc.returncode == case.code:
        problems += [f"missing output {p}" for p in case.produces if not p.is_file()]
        if case.like is not None and case.produces and case.produces[0].is_file():
            problems += _compare_audio(case.produces[0], case.like)
    if case.verify is not None:
        problems += case.verify()
    lines = [m.group(0).strip() for line in output.splitlines() if (m := MESSAGE.search(line))]  # after any bar
    message = " / ".join(dict.fromkeys(lines)).replace(f"{case.root}/", "")
    return Outcome(case, proc.returncode, message, not changed, partial, problems)


def _compare_audio(out: Path, source: Path) -> list[str]:
    """A denoised file keeps the input's rate, channels, sample format and length, finite and unclipped."""
    a, b = sf.info(str(source)), sf.info(str(out))
    problems = [
        f"{name} {got} != input's {want}"
        for name, want, got in (
            ("rate", a.samplerate, b.samplerate),
            ("channels", a.channels, b.channels),
            ("frames", a.frames, b.frames),
            ("format", a.subtype, b.subtype),
        )
        if want != got
    ]
    data, _ = sf.read(str(out), dtype="float32", always_2d=True)
    if not np.isfinite(data).all():
        problems.append("non-finite output samples")
    elif data.size and np.abs(data).max() > 1.0:
        problems.append(f"output beyond full scale ({np.abs(data).max():.3f})")
    return problems


def command_line(case: Case) -> str:
    """The command as a user would type it, with paths relative to the case folder."""
    repo = f"{DATA.parent.parent}/"
    words = ["denoise", *(a.replace(f"{case.root}/", "").replace(repo, "") for a in case.argv)]
    limit = f"ulimit -f {case.max_file_bytes // 1024}; " if case.max_file_bytes else ""
    return limit + " ".join(words)


# -- building blocks --------------------------------------------------------------------------------------------
def tone(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tone_noise(path, seconds, rate, channels, subtype=subtype)
    return path


def write(path: Path, data: np.ndarray, rate: int = 16000, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data.astype(np.float32), rate, subtype=subtype)
    return path


def unwritable_folder(root: Path) -> Path:
    """A folder this user cannot create files in: a read-only one, or /sys for root (who ignores modes)."""
    folder = root / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return Path("/sys") if os.access(folder, os.W_OK) else folder


def sine(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def garbage(path: Path, size: int = 5000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).bytes(size))
    return path


def file_works(root: Path, source: Path, says: tuple[str, ...] = ()) -> Case:
    """`denoise file SOURCE -o out/SOURCE` must write a file like the source."""
    out = root / "out" / source.name
    argv = ["file", str(source), "-o", str(out), "--quiet"]
    return Case(root, argv, 0, says, inputs=[source], outputs=[out.parent], produces=[out], like=source)


def file_fails(
    root: Path, source: Path, code: int, says: tuple[str, ...], *extra: str, out: Path | None = None
) -> Case:
    """`denoise file SOURCE -o OUT EXTRA...` must fail with `code`, saying `says`, writing nothing."""
    out = out or root / "out" / source.name
    inputs = [p for p in (source, *map(Path, extra)) if p.exists()]
    argv = ["file", str(source), "-o", str(out), "--quiet", *extra]
    return Case(root, argv, code, says, inputs=inputs, outputs=[out.parent])


def sound(root: Path) -> Path:
    return tone(root / "in.wav")


# -- denoise file ------------------------------------------------------------------------------------------------
def _missing(root: Path) -> Case:
    return file_fails(root, root / "missing.wav", 2, ("missing.wav", "no such file"))


def _empty_paths(root: Path, source: str, output: str, says: str) -> Case:
    """An empty path is not the current folder: refused before anything is read or written."""
    sound(root)
    return Case(root, ["file", source, "-o", output, "--quiet"], 2, (says,), inputs=[root / "in.wav"], outputs=[root])


def _empty(root: Path) -> Case:
    (root / "empty.wav").write_bytes(b"")
    return file_fails(root, root / "empty.wav", 1, ("empty.wav", "not a readable audio file"))


def _zero_length(root: Path) -> Case:
    return file_fails(root, write(root / "zero.wav", np.zeros((0, 1))), 1, ("zero.wav", "contains no audio samples"))


def _not_audio(root: Path) -> Case:
    return file_fails(root, garbage(root / "noise.wav"), 1, ("noise.wav", "not a readable audio file"))


def _truncated_wav(root: Path) -> Case:
    whole = tone(root / "whole.wav", 1.0).read_bytes()
    (root / "cut.wav").write_bytes(whole[: len(whole) // 2 + 1])  # mid-sample, too
    return file_works(root, root / "cut.wav", ("cut.wav", "shorter than its header says"))


def _truncated_flac(root: Path) -> Case:
    whole = tone(root / "whole.flac", 2.0, 48000, 2, "PCM_24").read_bytes()
    (root / "cut.flac").write_bytes(whole[: len(whole) // 2])
    return file_fails(root, root / "cut.flac", 1, ("error: ", "cut.flac"))


def _nan_inf(root: Path) -> Case:
    x = sine(1.0)
    x[100:200], x[300], x[400] = np.nan, np.inf, -np.inf
    src = write(root / "nan.wav", x)
    return file_works(root, src, ("nan.wav", "102 NaN/infinite samples replaced by silence"))


def _clipped(root: Path) -> Case:
    return file_works(root, write(root / "clipped.wav", np.clip(sine(1.0, 48000) * 20, -1, 1), 48000))


def _beyond_full_scale(root: Path) -> Case:
    return file_works(root, write(root / "loud.wav", sine(1.0, 48000) * 8 / 0.3, 48000))


def _dc(root: Path) -> Case:
    return file_works(root, write(root / "dc.wav", sine(1.0) + 0.5))


def _silence(root: Path) -> Case:
    return file_works(root, write(root / "silence.wav", np.zeros(16000), subtype="PCM_16"))


def _shorter_than_window(root: Path) -> Case:
    return file_works(root, write(root / "short.wav", sine(20 / 16000)))  # the model's window is 64 samples


def _one_sample(root: Path) -> Case:
    return file_works(root, write(root / "one.wav", sine(1 / 48000, 48000), 48000))


def _rate(rate: int) -> Callable[[Path], Case]:
    return lambda root: file_works(root, tone(root / f"r{rate}.wav", rate=rate))


def _channels(channels: int) -> Callable[[Path], Case]:
    return lambda root: file_works(root, tone(root / f"c{channels}.wav", 0.5, 44100, channels))


def _subtype(subtype: str) -> Callable[[Path], Case]:
    return lambda root: file_works(root, tone(root / f"{subtype.lower()}.wav", subtype=subtype))


def _unwritable(root: Path) -> Case:
    folder = unwritable_folder(root)
    return file_fails(root, sound(root), 1, (str(folder), "cannot write here"), out=folder / "in.wav")


def _folder_blocked_by_file(root: Path) -> Case:
    src = sound(root)
    return file_fails(root, src, 1, ("in.wav/sub", "Not a directory"), out=src / "sub" / "out.wav")


def _output_is_input(root: Path) -> Case:
    src = sound(root)
    return file_fails(root, src, 2, ("in.wav", "refusing to overwrite an input file"), out=src)


def _output_links_to_input(root: Path) -> Case:
    src = sound(root)
    (root / "link.wav").symlink_to(src)
    return file_fails(root, src, 2, ("link.wav", "refusing to overwrite an input file"), out=root / "link.wav")


def _output_folder_is_input_folder(root: Path) -> Case:
    folder = sound(root / "in").parent
    argv = ["file", str(folder), "-o", str(folder), "--quiet"]
    return Case(root, argv, 2, ("output folder is the input folder",), inputs=[folder], outputs=[folder])


def _output_replaces_another_input(root: Path) -> Case:
    """d1/x.wav's output, d2/x.wav, is the second input."""
    d1, d2 = sound(root / "d1").parent, root / "d2"
    shutil.copytree(d1, d2)
    argv = ["file", str(d1 / "in.wav"), str(d2 / "in.wav"), "-o", str(d2), "--quiet"]
    return Case(root, argv, 2, ("d2/in.wav", "refusing to overwrite an input file"), inputs=[d1, d2], outputs=[d2])


def _output_links_to_another_input(root: Path) -> Case:
    """The output for d1/in.wav would be written through the symlink out/in.wav into the second input."""
    first, second = sound(root / "d1"), tone(root / "d2" / "other.wav")
    (root / "out").mkdir()
    (root / "out" / "in.wav").symlink_to(second)
    argv = ["file", str(first), str(second), "-o", str(root / "out"), "--quiet"]
    says = ("out/in.wav", "refusing to overwrite an input file", "d2/other.wav")
    return Case(root, argv, 2, says, inputs=[first, second], outputs=[root / "out"])


def _two_inputs_one_name(root: Path) -> Case:
    first, second = sound(root / "d1"), sound(root / "d2")
    argv = ["file", str(first), str(second), "-o", str(root / "out"), "--quiet"]
    says = ("out/in.wav", "d1/in.wav", "d2/in.wav")
    return Case(root, argv, 2, says, inputs=[first, second], outputs=[root / "out"])


def _output_folder_inside_input_folder(root: Path) -> Case:
    """`denoise file in -o in/den` run again: in/den holds the first run's output, which is not an input."""
    src = sound(root / "in")
    earlier = tone(root / "in" / "den" / "in.wav")
    argv = ["file", str(src.parent), "-o", str(earlier.parent), "--quiet"]
    case = Case(root, argv, 0, ("denoised 1 of 1 files",), inputs=[src], outputs=[src.parent], produces=[earlier])
    case.verify = lambda: [f"denoised its own output into {p}" for p in (root / "in" / "den" / "den").glob("*")]
    return case


def _fifo_input(root: Path) -> Case:
    os.mkfifo(root / "pipe.wav")
    case = file_fails(root, root / "pipe.wav", 1, ("pipe.wav", "not a regular file"))
    case.timeout = 60  # opening the pipe would wait forever for a writer
    return case


def _fifo_output(root: Path) -> Case:
    os.mkfifo(root / "pipe.wav")
    case = file_fails(root, sound(root), 1, ("pipe.wav", "not a regular file"), out=root / "pipe.wav")
    case.verify = lambda: [] if (root / "pipe.wav").is_fifo() else ["replaced the pipe"]
    return case


def _output_through_symlink(root: Path) -> Case:
    src, real = sound(root), tone(root / "real" / "kept.wav", 0.1)
    (root / "link.wav").symlink_to(real)
    argv = ["file", str(src), "-o", str(root / "link.wav"), "--quiet"]
    case = Case(root, argv, 0, inputs=[src], outputs=[root / "real"], produces=[real], like=src)
    case.verify = lambda: [] if (root / "link.wav").is_symlink() else ["replaced the symlink instead of its target"]
    return case


def _output_folder_with_slash(root: Path) -> Case:
    src = sound(root)
    argv = ["file", str(src), "-o", f"{root / 'new'}/", "--quiet"]
    return Case(root, argv, 0, inputs=[src], outputs=[root / "new"], produces=[root / "new" / "in.wav"], like=src)


def _missing_among_several(root: Path) -> Case:
    first, second = tone(root / "a.wav"), tone(root / "b.wav")
    argv = ["file", str(first), str(root / "nope.wav"), str(second), "-o", str(root / "out"), "--quiet"]
    says = ("nope.wav: no such file", "denoised 2 of 3 files")
    produces = [root / "out" / "a.wav", root / "out" / "b.wav"]
    return Case(root, argv, 1, says, inputs=[first, second], outputs=[root / "out"], produces=produces)


def _sigterm_mid_write(root: Path) -> Case:
    case = file_fails(root, tone(root / "long.wav", 120.0), 130, ("interrupted", "denoised 0 of 1 files"))

    def terminate(proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not list(case.outputs[0].glob(".*.part")):
            time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)

    case.during = terminate
    case.note = "SIGTERM once the output's temporary file exists"
    return case


def _sigterm_twice_with_workers(root: Path) -> Case:
    """Two SIGTERMs a millisecond apart (as `timeout` sends them) while two worker processes write: the second
    must neither hang the stop (it cut the pool's terminate short) nor let the workers finish their files."""
    sources = [tone(root / "in" / f"{name}.wav", 120.0) for name in ("a", "b")]
    argv = ["file", str(root / "in"), "-o", str(root / "out"), "--jobs", "2", "--quiet"]
    case = Case(root, argv, 130, ("interrupted",), inputs=sources, outputs=[root / "out"], timeout=120)

    def terminate(proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not list(root.glob("out/.*.part")):
            time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)

    case.during = terminate
    case.verify = lambda: [f"{p} was written after the stop" for p in (root / "out").glob("*.wav")]
    case.note = "two SIGTERMs 1 ms apart once a worker's temporary file exists"
    return case


def _stale_temporary_file(root: Path) -> Case:
    """An earlier run killed mid-write left its temporary file; another program's file beside it stays."""
    case = file_works(root, sound(root), ("removed", ".in.wav.k1ll3d_x.part"))
    out = case.outputs[0]
    out.mkdir()
    (out / ".in.wav.k1ll3d_x.part").write_bytes(b"RIFF")
    (out / ".in.wav.notes").write_text("not ours")
    case.verify = lambda: [] if (out / ".in.wav.notes").exists() else ["removed a file that is not ours"]
    return case


def _disk_full(root: Path) -> Case:
    case = file_fails(root, tone(root / "in.wav", 2.0), 1, ("out/in.wav", "cannot write", "File too large"))
    case.max_file_bytes = 20000
    case.note = "files limited to 20000 bytes (RLIMIT_FSIZE); the output needs 64 kB"
    return case


def _name_max_output(root: Path) -> Case:
    """An output name of NAME_MAX (255 bytes) is writable: its temporary file's name must not outgrow it."""
    source, out = sound(root), root / "out" / ("y" * 251 + ".wav")
    out.parent.mkdir()
    argv = ["file", str(source), "-o", str(out), "--quiet"]
    return Case(root, argv, 0, inputs=[source], outputs=[out.parent], produces=[out], like=source)


def _over_name_max_output(root: Path) -> Case:
    """A name the file system refuses: its reason in words, not Python's '[Errno 36] ...'."""
    case = file_fails(root, sound(root), 2, ("File name too long",), out=root / ("y" * 252 + ".wav"))
    case.denies = ("[Errno",)
    return case


def _unknown_format(root: Path) -> Case:
    return file_fails(root, sound(root), 1, ("out.xyz", "unknown output format"), out=root / "out" / "out.xyz")


def _model(root: Path, onnx: bytes | None, sidecar: bool) -> Path:
    """`model.onnx` (these bytes, or none), with the shipped sidecar, short-run graphs and step beside it if
    `sidecar`."""
    model = root / "model.onnx"
    if onnx is not None:
        model.write_bytes(onnx)
    if sidecar:
        doc = json.loads(default_model_path().with_suffix(".json").read_text())
        for graph in doc["ring"]["graphs"]:
            shipped = default_model_path().with_name(graph["file"])
            graph["file"] = f"model.ring{graph['max_hops']}.onnx"
            (root / graph["file"]).write_bytes(shipped.read_bytes())
        (root / "model.step.npz").write_bytes(default_model_path().with_name(doc["ring"]["step"]).read_bytes())
        doc["ring"]["step"] = "model.step.npz"
        model.with_suffix(".json").write_text(json.dumps(doc))
    return model


def _sidecar_changed(
    change: Callable[[dict], object], says: tuple[str, ...], blamed: str = "model.json"
) -> Callable[[Path], Case]:
    """The shipped model with its sidecar edited by `change`; the error names the `blamed` file."""

    def build(root: Path) -> Case:
        model = _model(root, default_model_path().read_bytes(), sidecar=True)
        doc = json.loads(model.with_suffix(".json").read_text())
        change(doc)
        model.with_suffix(".json").write_text(json.dumps(doc))
        return file_fails(root, sound(root), 2, (blamed, *says), "--model", str(model))

    return build


def _corrupted_model(root: Path) -> Case:
    model = _model(root, default_model_path().read_bytes()[:3000], sidecar=True)
    return file_fails(root, sound(root), 2, ("model.onnx", "cannot load the model"), "--model", str(model))


def _corrupted_step(root: Path) -> Case:
    model = _model(root, default_model_path().read_bytes(), sidecar=True)
    step = root / "model.step.npz"
    step.write_bytes(step.read_bytes()[:3000])
    return file_fails(root, sound(root), 2, ("model.step.npz", "not a valid step file"), "--model", str(model))


def _step_without_scales(root: Path) -> Case:
    """A step file whose int8 weights lost their scales (they would read as weights of up to 127)."""
    model = _model(root, default_model_path().read_bytes(), sidecar=True)
    step = root / "model.step.npz"
    arrays = {k: v for k, v in np.load(step).items() if k != "in_scale"}
    with open(step, "wb") as file:
        np.savez(file, **arrays)
    return file_fails(
        root, sound(root), 2, ("model.step.npz", "in_w is int8 exactly when in_scale"), "--model", str(model)
    )


def _missing_model(root: Path) -> Case:
    model = _model(root, None, sidecar=True)
    return file_fails(root, sound(root), 2, ("model.onnx", "model file not found"), "--model", str(model))


def _model_without_sidecar(root: Path) -> Case:
    model = _model(root, default_model_path().read_bytes(), sidecar=False)
    return file_fails(root, sound(root), 2, ("model.json", "sidecar JSON is missing"), "--model", str(model))


def _file_option(option: str, value: str) -> Callable[[Path], Case]:
    return lambda root: file_fails(root, sound(root), 2, (option, f"got '{value}'"), option, value)


# -- denoise eval ------------------------------------------------------------------------------------------------
Writer = Callable[[Path], object]


def empty_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder


def folder_only(path: Path) -> None:
    empty_folder(path.parent)


def one_second(path: Path) -> Path:
    return tone(path, 1.0)


def eval_case(
    root: Path, code: int, says: tuple[str, ...], enhanced: Writer | None, *extra: str, clean: Writer = one_second
) -> Case:
    """Score enhanced/x.wav against clean/x.wav, each made by its writer (None: no enhanced folder)."""
    clean(root / "clean" / "x.wav")
    if enhanced is not None:
        enhanced(root / "enhanced" / "x.wav")
    argv = ["eval", "--clean", str(root / "clean"), "--enhanced", str(root / "enhanced"), "--jobs", "1", *extra]
    denies = ("not scored",) if code == 0 and not says else ()
    inputs = [p for p in (root / "clean", root / "enhanced") if p.exists()]
    return Case(root, argv, code, says, denies, inputs)


def _eval_json_unwritable(root: Path) -> Case:
    folder = unwritable_folder(root)
    case = eval_case(root, 2, (str(folder), "cannot write here"), one_second, "--json", str(folder / "s.json"))
    case.outputs = [folder]
    return case


def _eval_noisy_corrupted_model(root: Path) -> Case:
    model = _model(root, default_model_path().read_bytes()[:3000], sidecar=True)
    one_second(root / "clean" / "x.wav")
    one_second(root / "noisy" / "x.wav")
    argv = ["eval", "--clean", str(root / "clean"), "--noisy", str(root / "noisy"), "--model", str(model)]
    return Case(root, argv, 2, ("model.onnx", "cannot load the model"), inputs=[root / "clean", root / "noisy", model])


def _eval_csv(text: str) -> Callable[[Path], Case]:
    def build(root: Path) -> Case:
        (root / "pairs.csv").write_text(text)
        return eval_case(root, 2, ("pairs.csv", "not a valid pairs CSV"), one_second, "--csv", str(root / "pairs.csv"))

    return build


def _eval_option(option: str, value: str) -> Callable[[Path], Case]:
    return lambda root: eval_case(root, 2, (option, f"got '{value}'"), one_second, option, value)


def _eval_json_is_an_input(root: Path) -> Case:
    """--json naming the clean reference: refused before anything is scored, the reference untouched."""
    return eval_case(root, 2, ("x.wav", "is one of the inputs"), one_second, "--json", str(root / "clean" / "x.wav"))


def _dataset_option(*option: str, says: tuple[str, ...]) -> Callable[[Path], Case]:
    def build(root: Path) -> Case:
        case = dataset_case(root, 2, says)
        case.argv += list(option)
        case.verify = lambda: [f"wrote {p} outside --out" for p in root.glob("escape*")]
        return case

    return build


# -- denoise make-dataset --------------------------------------------------------------------------------------
def dataset_case(
    root: Path, code: int, says: tuple[str, ...], speech: Path = SPEECH, noise: Path = NOISE, out: Path | None = None
) -> Case:
    out = out or root / "dataset"
    argv = ["make-dataset", "--speech", str(speech), "--noise", str(noise), "--out", str(out)]
    argv += ["--count", "2", "--seconds", "0.5"]
    produces = [out / "train.csv", out / "voice_origin/train/train_0001.flac", out / "denoising/train/train_0001.flac"]
    inputs = [p for p in (speech, noise) if p.exists()]
    return Case(root, argv, code, says, inputs=inputs, outputs=[out], produces=produces if code == 0 else [])


def unreadable_folder(folder: Path) -> Path:
    """Audio names, no audio: random bytes, an empty file, a header without samples."""
    garbage(folder / "junk.wav")
    (folder / "empty.flac").write_bytes(b"")
    write(folder / "zero.wav", np.zeros((0, 1)))
    return folder


def _dataset_mixed_folder(root: Path) -> Case:
    speech = root / "speech"
    shutil.copytree(SPEECH, speech)
    unreadable_folder(speech)
    x = sine(0.5)
    x[10] = np.nan
    write(speech / "nan.wav", x)
    tone(speech / "stereo48k.flac", 1.0, 48000, 2, "PCM_24")
    write(speech / "tiny.wav", sine(20 / 16000))
    return dataset_case(root, 0, ("skipped", "junk.wav", "empty.flac", "zero.wav", "nan.wav"), speech=speech)


def _dataset_over_inputs(root: Path) -> Case:
    speech = root / "data" / "voice_origin" / "train"
    shutil.copytree(SPEECH, speech)
    return dataset_case(root, 2, ("among the input files",), speech=speech, out=root / "data")


# -- denoise train ------------------------------------------------------------------------------------------------
def shared_folder(root: Path) -> Path:
    """Beside every case folder (pytest's tmp_path, or the benchmark's): one tiny run for the faults to copy."""
    return root.parent / "shared"


def base_run(root: Path) -> Path:
    """A copy of a tiny training run that saved every step (last.pt and prev.pt at step 2)."""
    shared = shared_folder(root)
    base = shared / "run"
    if not (base / "last.pt").exists():
        argv = ["train", "--speech", str(SPEECH), "--noise", str(NOISE), "--out", str(base), *TINY_RUN]
        proc = subprocess.run(
            [sys.executable, "-m", "realtime.cli", *argv, "--steps", "2", "--checkpoint-minutes", "0"],
            capture_output=True,
            text=True,
            env={**os.environ, "RTDENOISE_CACHE": str(shared / "cache")},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the tiny training run failed: {proc.stderr[-2000:]}")
    return Path(shutil.copytree(base, root / "run"))


def train_case(root: Path, code: int, says: tuple[str, ...], speech: Path = SPEECH, noise: Path = NOISE) -> Case:
    run = root / "run"
    argv = ["train", "--speech", str(speech), "--noise", str(noise), "--out", str(run), *TINY_RUN, "--steps", "2"]
    return Case(root, argv, code, says, inputs=[p for p in (speech, noise) if p.exists()], outputs=[run])


def _train_option(option: str, value: str) -> Callable[[Path], Case]:
    def build(root: Path) -> Case:
        case = train_case(root, 2, (option, f"got '{value}'"))
        case.argv += [option, value]  # after train_case's own --steps: the last one counts
        return case

    return build


def _train_range(root: Path, option: str, low: str, high: str) -> Case:
    case = train_case(root, 2, (option, "is above HIGH"))
    case.argv += [option, low, high]
    return case


def resume_case(root: Path, run: Path, steps: int, code: int, says: tuple[str, ...]) -> Case:
    argv = ["train", "--out", str(run), "--resume", "--steps", str(steps)]
    produces = [run / "last.pt"] if code == 0 else []
    return Case(root, argv, code, says, outputs=[run], produces=produces, cache=shared_folder(root) / "cache")


def _train_corrupted_checkpoints(root: Path) -> Case:
    run = root / "run"
    for name in ("last.pt", "prev.pt"):
        garbage(run / name)
    case = resume_case(root, run, 4, 2, ("last.pt", "prev.pt", "unreadable checkpoint"))
    case.inputs = [run / "last.pt", run / "prev.pt"]
    return case


def _train_nan_loss(root: Path) -> Case:
    """A learning rate of 1e30 blows the weights up after one step: every later loss is infinite or NaN."""
    case = train_case(root, 0, ("skipped step: non-finite loss", "at step 3"))
    case.argv[-1] = "3"
    case.argv += ["--lr", "1e30"]
    case.produces = [root / "run" / "last.pt"]

    def logged() -> list[str]:
        log = root / "run" / "train_log.csv"
        rows = log.read_text().splitlines() if log.exists() else []
        return [] if any(",skip," in r and "non-finite loss" in r for r in rows) else ["skipped steps not logged"]

    case.verify = logged
    return case


def _train_resume_corrupted_last(root: Path) -> Case:
    run = base_run(root)
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 2])
    case = resume_case(root, run, 4, 0, ("last.pt: unreadable checkpoint", "resuming from", "prev.pt", "at step 4"))
    case.note = "last.pt cut to half its size"
    return case


def _train_disk_full(root: Path) -> Case:
    run = base_run(root)
    size = (run / "last.pt").stat().st_size
    case = resume_case(root, run, 4, 2, ("last.pt: cannot save the checkpoint", "previous checkpoint is kept"))
    case.inputs = [run / "last.pt", run / "prev.pt"]
    case.max_file_bytes = size // 2
    case.note = f"files limited to {size // 2} bytes (RLIMIT_FSIZE), half a checkpoint"
    return case


def _proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def kill_during_checkpoint_write(proc: subprocess.Popen, run: Path, timeout: float = 300) -> Path:
    """SIGKILL `proc` while it writes a checkpoint; returns the temporary file the write leaves behind.

    Each time a checkpoint's temporary file appears the process is frozen (SIGSTOP); if the file is still there
    and has data, the write was under way and the process gets SIGKILL, else it goes on (SIGCONT)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        temps = list(run.glob(".last.pt.*.tmp"))
        if not temps:
            time.sleep(0.0002)
            continue
        os.kill(proc.pid, signal.SIGSTOP)
        while proc.poll() is None and _proc_state(proc.pid) != "T":
            time.sleep(0.0001)
        if temps[0].exists() and temps[0].stat().st_size:
            proc.kill()
            proc.wait()
            return temps[0]
        os.kill(proc.pid, signal.SIGCONT)
    proc.kill()
    proc.wait()
    raise RuntimeError("the training ended or timed out before a checkpoint write could be interrupted")


def _train_kill_during_checkpoint_write(root: Path) -> Case:
    from training.checkpoint import load_latest

    run = base_run(root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime.cli", "train", "--out", str(run), "--resume", "--steps", "1000000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RTDENOISE_CACHE": str(shared_folder(root) / "cache")},
    )
    temp = kill_during_checkpoint_write(proc, run)
    step = load_latest(run)["step"]
    case = resume_case(root, run, step + 2, 0, ("removed", temp.name, "interrupted", f"at step {step + 2}"))
    size = (run / "prev.pt").stat().st_size
    case.note = f"kill -9 while {temp.name} held {temp.stat().st_size} of {size} bytes; last complete: step {step}"
    return case


# -- denoise export --------------------------------------------------------------------------------------------
def _export_case(output: Callable[[Path], Path], says: tuple[str, ...]) -> Callable[[Path], Case]:
    """`denoise export run/last.pt -o OUTPUT` must fail with `says`, writing nothing, the checkpoint intact."""

    def build(root: Path) -> Case:
        checkpoint = base_run(root) / "last.pt"
        argv = ["export", str(checkpoint), "-o", str(output(root))]
        return Case(root, argv, 2, says, inputs=[checkpoint], outputs=[root], cache=shared_folder(root) / "cache")

    return build


def _folder_named_like_the_sidecar(root: Path) -> Path:
    (root / "m.json").mkdir()
    return root / "m.onnx"


# -- denoise live ---------------------------------------------------------------------------------------------------
def _live_unknown_device(root: Path) -> Case:
    argv = ["live", "--input", "no-such-device", "--duration", "1"]
    return Case(root, argv, 2, ("no-such-device", "denoise devices"))


# -- the corpus ----------------------------------------------------------------------------------------------------
CASES: dict[str, Callable[[Path], Case]] = {
    "file: missing path": _missing,
    "file: empty input path": lambda root: _empty_paths(root, "", str(root / "out.wav"), "an input path is empty"),
    "file: empty output path": lambda root: _empty_paths(root, str(root / "in.wav"), "", "the output path is empty"),
    "file: empty file (0 bytes)": _empty,
    "file: zero-length audio (header, no samples)": _zero_length,
    "file: non-audio bytes with a .wav name": _not_audio,
    "file: truncated WAV (cut mid-sample)": _truncated_wav,
    "file: truncated FLAC": _truncated_flac,
    "file: NaN and Inf samples in a float WAV": _nan_inf,
    "file: full-scale clipping (48 kHz float)": _clipped,
    "file: beyond full scale (48 kHz float, peaks at 8)": _beyond_full_scale,
    "file: DC offset (+0.5)": _dc,
    "file: silence": _silence,
    "file: shorter than one model window (20 samples)": _shorter_than_window,
    "file: one sample at 48 kHz": _one_sample,
    **{f"file: {rate / 1000:g} kHz": _rate(rate) for rate in RATES},
    **{f"file: {n} channel{'s' * (n > 1)}": _channels(n) for n in CHANNELS},
    **{f"file: {subtype} WAV": _subtype(subtype) for subtype in SUBTYPES},
    "file: unwritable output folder": _unwritable,
    "file: output folder path blocked by a file": _folder_blocked_by_file,
    "file: output equal to input": _output_is_input,
    "file: output a symlink to the input": _output_links_to_input,
    "file: output folder equal to input folder": _output_folder_is_input_folder,
    "file: output replaces another input": _output_replaces_another_input,
    "file: output a symlink to another input": _output_links_to_another_input,
    "file: two inputs with one name into one folder": _two_inputs_one_name,
    "file: rerun with the output folder inside the input folder": _output_folder_inside_input_folder,
    "file: a FIFO as input": _fifo_input,
    "file: a FIFO as output": _fifo_output,
    "file: output a symlink (written through)": _output_through_symlink,
    "file: output folder given with a trailing slash": _output_folder_with_slash,
    "file: a missing file among several": _missing_among_several,
    "file: SIGTERM mid-write": _sigterm_mid_write,
    "file: two SIGTERMs during a --jobs 2 run": _sigterm_twice_with_workers,
    "file: a stale temporary file from a killed run": _stale_temporary_file,
    "file: disk full while writing": _disk_full,
    "file: unknown output format": _unknown_format,
    "file: an output name of 255 bytes (NAME_MAX)": _name_max_output,
    "file: an output name over NAME_MAX": _over_name_max_output,
    "file: corrupted model file": _corrupted_model,
    "file: corrupted step file of the model": _corrupted_step,
    "file: step file with int8 weights but no scales": _step_without_scales,
    "file: missing model file": _missing_model,
    "file: model without its sidecar JSON": _model_without_sidecar,
    "file: sidecar with a state shape reversed": _sidecar_changed(
        lambda d: d["state"]["conv3"].update(shape=["batch", 16, 1, 128]), ("state conv3", "ONNX graph")
    ),
    "file: sidecar with a huge state dimension": _sidecar_changed(
        lambda d: d["state"]["conv3"].update(shape=["batch", 128, 1, 2**31]), ("state holds",)
    ),
    "file: sidecar with delay -5": _sidecar_changed(lambda d: d.update(delay=-5), ("delay -5",)),
    "file: sidecar naming a state the graph lacks": _sidecar_changed(
        lambda d: d["inputs"].__setitem__(2, "conv99") or d["state"].__setitem__("conv99", d["state"].pop("conv0")),
        ("inputs", "ONNX graph"),
    ),
    "file: sidecar naming a missing short-run graph": _sidecar_changed(
        lambda d: d["ring"]["graphs"][0].update(file="gone.onnx"), ("short-run graph gone.onnx is missing",)
    ),
    "file: sidecar naming a missing step file": _sidecar_changed(
        lambda d: d["ring"].update(step="gone.npz"), ("short-run graph gone.npz is missing",)
    ),
    "file: sidecar whose ring lags do not match its step file": _sidecar_changed(
        lambda d: d["ring"]["lags"].__setitem__(0, [3, 1]),
        ("its lags", "differ from the sidecar's [[3, 1], [4, 2]"),
        blamed="model.step.npz",
    ),
    "file: sidecar with ring taps of unequal counts": _sidecar_changed(
        lambda d: d["ring"]["lags"].__setitem__(0, [1]), ("ring lags",)
    ),
    "file: --atten-lim-db nan": _file_option("--atten-lim-db", "nan"),
    "file: --threads 1000": _file_option("--threads", "1000"),
    "eval: missing folder": lambda root: eval_case(root, 2, ("enhanced", "no such folder"), None),
    "eval: empty folder": lambda root: eval_case(root, 2, ("enhanced", "no audio files found"), folder_only),
    "eval: non-audio bytes with a .wav name": lambda root: eval_case(
        root, 1, ("x.wav", "not a readable audio file"), garbage
    ),
    "eval: zero-length audio": lambda root: eval_case(
        root, 1, ("x.wav", "contains no audio samples"), lambda p: write(p, np.zeros((0, 1)))
    ),
    "eval: NaN samples": lambda root: eval_case(
        root, 1, ("x.wav", "contains NaN or infinite samples"), lambda p: write(p, np.full(16000, np.nan))
    ),
    "eval: silent enhanced file": lambda root: eval_case(
        root,
        0,
        ("x.wav: pesq_wb: the enhanced file is silent: PESQ cannot score silence",),
        lambda p: write(p, np.zeros(16000)),
    ),
    "eval: silent clean reference": lambda root: eval_case(
        root,
        0,
        ("x.wav: pesq_wb: the clean reference is silent",),
        one_second,
        clean=lambda p: write(p, np.zeros(16000)),
    ),
    "eval: shorter than one model window": lambda root: eval_case(
        root,
        0,
        ("x.wav: pesq_wb: too short to score",),
        lambda p: write(p, sine(20 / 16000)),
        clean=lambda p: write(p, sine(20 / 16000)),
    ),
    "eval: 48 kHz stereo 24-bit against 16 kHz mono": lambda root: eval_case(
        root, 0, (), lambda p: tone(p, 1.0, 48000, 2, "PCM_24")
    ),
    "eval: enhanced half as long as the clean file": lambda root: eval_case(
        root, 0, ("x.wav: lengths differ",), lambda p: tone(p, 0.5)
    ),
    "eval: unwritable --json folder": _eval_json_unwritable,
    "eval: --json naming the clean reference": _eval_json_is_an_input,
    "eval: --json in a missing folder": lambda root: eval_case(
        root, 2, ("nowhere", "no such folder"), one_second, "--json", str(root / "nowhere" / "s.json")
    ),
    "eval: --max-delay-ms 1e9": _eval_option("--max-delay-ms", "1e9"),
    "make-dataset: --split leaving --out": _dataset_option("--split", "../escape", says=("--split", "'../escape'")),
    "make-dataset: --snr nan": _dataset_option("--snr", "nan", "5", says=("--snr", "got 'nan'")),
    "make-dataset: --snr above its high end": _dataset_option("--snr", "20", "0", says=("--snr", "is above HIGH")),
    "make-dataset: a file as --speech": lambda root: dataset_case(
        root, 2, ("in.wav", "not a folder"), speech=sound(root)
    ),
    "eval --noisy: corrupted model file": _eval_noisy_corrupted_model,
    "eval: --max-delay-ms inf": _eval_option("--max-delay-ms", "inf"),
    "eval: CSV with a short row": _eval_csv("name,snr_db\nx.wav\n"),
    "eval: CSV with an unterminated quote": _eval_csv('name,snr_db\n"x.wav,5\n'),
    "make-dataset: missing speech folder": lambda root: dataset_case(
        root, 2, ("nope", "no such folder"), speech=root / "nope"
    ),
    "make-dataset: empty noise folder": lambda root: dataset_case(
        root, 2, ("empty", "no audio files found"), noise=empty_folder(root / "empty")
    ),
    "make-dataset: only unreadable files": lambda root: dataset_case(
        root, 2, ("skipped", "junk.wav", "no readable audio"), speech=unreadable_folder(root / "bad")
    ),
    "make-dataset: only silent noise": lambda root: dataset_case(
        root, 2, ("every noise clip is silent",), noise=write(root / "quiet" / "s.wav", np.zeros(16000)).parent
    ),
    "make-dataset: unwritable output folder": lambda root: dataset_case(
        root, 2, ("cannot create the dataset folders",), out=unwritable_folder(root) / "dataset"
    ),
    "make-dataset: output over its own inputs": _dataset_over_inputs,
    "make-dataset: odd files among good ones": _dataset_mixed_folder,
    "train: missing speech folder": lambda root: train_case(root, 2, ("nope", "no such folder"), speech=root / "nope"),
    "train: empty noise folder": lambda root: train_case(
        root, 2, ("empty", "no audio files found"), noise=empty_folder(root / "empty")
    ),
    "train: only unreadable files": lambda root: train_case(
        root, 2, ("no readable audio",), speech=unreadable_folder(root / "bad")
    ),
    "train: --resume, both checkpoints corrupted": _train_corrupted_checkpoints,
    "train: NaN loss": _train_nan_loss,
    "train: --resume after kill -9 during a checkpoint write": _train_kill_during_checkpoint_write,
    "train: disk full during a checkpoint write": _train_disk_full,
    "train: --resume from a corrupted last.pt": _train_resume_corrupted_last,
    "train: --steps -1": _train_option("--steps", "-1"),
    "train: --level above its high end": lambda root: _train_range(root, "--level", "-10", "-20"),
    "train: --batch-size 0": _train_option("--batch-size", "0"),
    "train: --threads 0": _train_option("--threads", "0"),
    "train: --seconds 0": _train_option("--seconds", "0"),
    "export: output equal to the checkpoint": _export_case(lambda root: root / "run" / "last.pt", ("last.pt", ".onnx")),
    "export: a .json output (where its sidecar goes)": _export_case(lambda root: root / "m.json", ("m.json", ".onnx")),
    "export: a folder where the sidecar goes": _export_case(_folder_named_like_the_sidecar, ("m.json", "is a folder")),
    "live: unknown device name": _live_unknown_device,
    "live: --json in a missing folder": lambda root: Case(
        root, ["live", "--json", str(root / "nowhere" / "s.json"), "--duration", "1"], 2, ("nowhere", "no such folder")
    ),
    "live: --atten-lim-db nan": lambda root: Case(
        root, ["live", "--atten-lim-db", "nan", "--duration", "1"], 2, ("--atten-lim-db", "got 'nan'")
    ),
}
