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


# modules only the training side needs, and the install that brings them
TRAINING_MODULES = {"torch": "torch", "sklearn": "scikit-learn", "PIL": "pillow", "onnxscript": "onnxscript",
                    "transformers": "transformers", "optimum": "optimum"}


def missing_module(e: ModuleNotFoundError) -> UsageError | None:
    """A training dependency missing from a runtime-only install, as one line saying what to install."""
    root = (e.name or "").split(".")[0]
    if root not in TRAINING_MODULES:
        return None
    extra = "hf" if root in ("transformers", "optimum") else "train"
    return UsageError(f"this needs {TRAINING_MODULES[root]}, which this install does not have (the runtime install "
                      "runs bench, predict, compare, report and profiles)", install_hint(extra))


# what each extra brings, for the hint (edgekd is installed from a clone or a wheel: it is not on the index)
EXTRA_PACKAGES = {"train": '"torch==2.13.0" onnxscript scikit-learn pillow torch-pruning',
                  "hf": '"torch==2.13.0" onnxscript scikit-learn pillow torch-pruning "transformers>=4.57,<4.58" '
                        '"optimum>=2.1,<2.2" "optimum-onnx>=0.1,<0.2"',
                  "report": "matplotlib"}


def install_hint(extra: str) -> str:
    """How to add an extra to an installed edgekd: from its clone or wheel, or the packages themselves."""
    return (f'pip install "edgekd[{extra}] @ file:///path/to/edgekd" (your clone, or the wheel `make wheel` '
            f"wrote), or pip install {EXTRA_PACKAGES[extra]}")
