"""The one exception every stage raises for a failure the user must act on."""
from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """A one-line diagnosis, and where the full log is."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log = log

    def __str__(self) -> str:
        if self.log is None:
            return self.message
        return f"{self.message} (full log: {self.log})"
