"""Errors a user sees: one line saying what is wrong, one hint saying how to fix it.

The CLI turns these into `Error: ... (hint: ...)` on stderr with the exit code below, never a traceback.
"""
from __future__ import annotations


class EdgekdError(Exception):
    """Base class: a failure while doing the work (exit 1)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.replace("\n", " ")
        return f"{text} (hint: {self.hint})" if self.hint else text


class UsageError(EdgekdError):
    """Bad input from the user: a file, a field, an option (exit 2)."""

    exit_code = 2


class StepMissingError(UsageError):
    """A run directory lacks the output of an earlier step (e.g. quantize before export)."""
