"""Fixtures shared by every test layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throwaway project: this repo's stages/ and functions/, its modules/ linked."""
    return make_project(tmp_path / "proj")
