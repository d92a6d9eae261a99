"""The runtime never imports torch: users install it without the [train] extra."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import realtime

RUNTIME = Path(realtime.__file__).parent


def test_no_runtime_module_imports_torch() -> None:
    offenders = []
    for path in RUNTIME.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "torch"]
    assert offenders == []


def test_runtime_runs_with_torch_unavailable(example_noisy, tmp_path) -> None:
    """Importing torch is made to fail; the whole runtime path must still work."""
    code = f"""
import sys
sys.modules["torch"] = None  # any import of torch now raises ImportError
import pkgutil, importlib, realtime
for m in pkgutil.walk_packages(realtime.__path__, "realtime."):
    importlib.import_module(m.name)
from realtime.cli import main
sys.exit(main(["file", {str(example_noisy)!r}, "-o", {str(tmp_path / "out.wav")!r}, "--quiet"]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.wav").exists()
