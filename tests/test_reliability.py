"""Issue 6's bad-input and fault corpus (tests/bad_inputs.py): every case through the real `denoise` command.

The same cases, run by `denoise bench reliability`, make the table in benchmarks/results/reliability.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_inputs import CASES, run_case


@pytest.mark.parametrize("name", list(CASES))
def test_case_works_or_fails_cleanly_and_never_harms_a_file(name: str, tmp_path: Path) -> None:
    outcome = run_case(CASES[name](tmp_path))
    assert not outcome.problems, f"{outcome.problems}; output: {outcome.message}"
