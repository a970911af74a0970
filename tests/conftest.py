"""Shared test fixtures: one torch thread (the machine is shared) and the real-data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

try:  # one intra-op thread: tests run beside other developers' jobs on two cores
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``<repo>/../shared/data`` (read-only real data); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA
