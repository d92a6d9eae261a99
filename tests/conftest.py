"""Shared fixtures: the shipped model and example audio, small real corpora, and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CliResult, assert_clean_failure, run_cli, write_tone_noise

from realtime.model_file import default_model_path

__all__ = ["CliResult", "assert_clean_failure", "run_cli", "write_tone_noise"]

DATA = Path(__file__).parent / "data"
ASSETS = default_model_path().parent


@pytest.fixture(scope="session")
def model_path() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def example_noisy() -> Path:
    return ASSETS / "example_noisy.flac"


@pytest.fixture(scope="session")
def example_clean() -> Path:
    return ASSETS / "example_clean.flac"


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    return DATA / "speech"


@pytest.fixture(scope="session")
def noise_dir() -> Path:
    return DATA / "noise"


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep decoded-corpus caches out of the user's home during tests."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("RTDENOISE_CACHE", str(folder))
    monkeypatch.setattr("training.corpus.CACHE_DIR", folder)
    return folder
