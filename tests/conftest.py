"""Fixtures shared by the unit tests."""
from __future__ import annotations

from tests.fakes import fake_apt

__all__ = ["fake_apt"]
