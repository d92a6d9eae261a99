"""The runtime never imports torch or the scoring packages: users install it without any extra."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import realtime

RUNTIME = Path(realtime.__file__).parent
NOT_IN_THE_RUNTIME = ("torch", "pesq", "pystoi")  # pesq needs a C compiler to install
# numba compiles live's step, whose matrix products go to BLAS through scipy (both install from wheels)
RUNTIME_REQUIREMENTS = {"numba", "numpy", "onnxruntime", "scipy", "sounddevice", "soundfile", "soxr", "tqdm"}


def imports_of(package: Path, top_level: set[str]) -> list[str]:
    """'file: module' for every import (lazy ones included) in `package` of a module under `top_level`."""
    found = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in top_level]
    return found


def test_no_runtime_module_imports_torch() -> None:
    assert imports_of(RUNTIME, set(NOT_IN_THE_RUNTIME)) == []


def test_the_runtime_install_pulls_no_torch_and_no_scoring_packages() -> None:
    """`pip install .` installs the requirements without an `extra ==` marker: none of those may be heavy."""
    base = [r for r in metadata.requires("rtdenoise") or [] if "extra ==" not in r]
    assert {requirement_name(r) for r in base} == RUNTIME_REQUIREMENTS


def runtime_closure() -> set[str]:
    """The distributions `pip install .` brings: rtdenoise's requirements without an extra, and theirs."""
    seen: set[str] = set()
    todo = ["rtdenoise"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [requirement_name(r) for r in requires if "extra ==" not in r]
    return seen


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def modules_not_in_the_runtime() -> list[str]:
    """Top-level modules installed here (by the test, train and bench extras) that the runtime install lacks."""
    runtime = runtime_closure()
    return sorted(
        module
        for module, dists in metadata.packages_distributions().items()
        if module.isidentifier() and not {requirement_name(d) for d in dists} & runtime
    )


def test_the_extras_modules_are_found() -> None:
    """What the runtime path below is kept from importing: the extras' modules, here in CI."""
    lacking = set(modules_not_in_the_runtime())
    assert set(NOT_IN_THE_RUNTIME) | {"jack", "pytest"} <= lacking
    assert not RUNTIME_REQUIREMENTS & lacking


def test_runtime_runs_with_only_the_runtime_install(example_noisy, tmp_path) -> None:
    """Every module the runtime install lacks (torch, the scoring packages, the JACK client, ...) is made to fail
    on import; the CLI (all of its subcommands registered) and the whole runtime path must still work."""
    code = f"""
import sys
for name in {modules_not_in_the_runtime()!r}:
    sys.modules[name] = None  # any import of it now raises ImportError
import pkgutil, importlib, realtime
for m in pkgutil.walk_packages(realtime.__path__, "realtime."):
    importlib.import_module(m.name)
from realtime.cli import main
sys.exit(main(["file", {str(example_noisy)!r}, "-o", {str(tmp_path / "out.wav")!r}, "--quiet"]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.wav").exists()


def test_a_command_that_needs_an_extra_says_which(example_clean, example_noisy, tmp_path) -> None:
    """Without the eval extra, `denoise eval` fails in one line that names the package and the extra."""
    for folder, audio in (("clean", example_clean), ("scored", example_noisy)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.flac").write_bytes(audio.read_bytes())
    code = f"""
import sys
sys.modules["pesq"] = None
from realtime.cli import main
sys.exit(main(["eval", "--clean", {str(tmp_path / "clean")!r}, "--enhanced", {str(tmp_path / "scored")!r}]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "denoise: this command needs pesq: pip install 'rtdenoise[eval]'"


LAYERS = ("realtime", "model", "training", "benchmarks")  # each may import only the ones before it


@pytest.mark.parametrize("package", LAYERS[:-1])
def test_dependencies_point_one_way(package: str) -> None:
    """realtime <- model <- training <- benchmarks: no package imports one above it, even lazily."""
    above = set(LAYERS[LAYERS.index(package) + 1 :])
    assert imports_of(RUNTIME.parent / package, above) == []


@pytest.mark.parametrize("leaf", ["errors.py", "options.py", "model_file.py"])
def test_shared_leaves_import_nothing_above_them(leaf: str) -> None:
    """Exit codes, the error type and option checks import nothing of the project; the model-file contract only
    the errors and audio I/O."""
    allowed = {"model_file.py": {"realtime.errors", "realtime.audio_io"}}.get(leaf, set())
    tree = ast.parse((RUNTIME / leaf).read_text())
    project = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {m for m in project if m.split(".")[0] in LAYERS} <= allowed
