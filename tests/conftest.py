"""Shared fixtures: repository paths and a fixed clock."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "conformance"
FIXED_NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)


@pytest.fixture
def fixed_clock() -> datetime.datetime:
    return FIXED_NOW
