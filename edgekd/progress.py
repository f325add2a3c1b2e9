"""Progress bars on stderr (so `--json` output on stdout stays clean)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator


class _Bar:
    def __init__(self, progress, task) -> None:
        self._progress, self._task = progress, task

    def skip(self, n: int) -> None:
        """Mark `n` steps done without metrics (a resumed run)."""
        if self._progress is not None and n:
            self._progress.update(self._task, advance=n)

    def advance(self, **metrics) -> None:
        if self._progress is None:
            return
        text = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None)
        self._progress.update(self._task, advance=1, metrics=text)


def console():
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def epoch_progress(label: str, total: int, enabled: bool = True) -> Iterator[_Bar]:
    """A bar with ETA and the key metric; silent when disabled or when stderr is not a terminal."""
    if not enabled or not console().is_terminal:
        yield _Bar(None, None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"),
                  console=console(), transient=False) as progress:
        task = progress.add_task(label, total=total, metrics="")
        yield _Bar(progress, task)


@contextlib.contextmanager
def step_progress(label: str) -> Iterator:
    """A bar for work of N known steps; yields `progress(done, total, what)` for the worker to call.
    Drawn only on a terminal, and cleared when done, so an error after it is still one line."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    con = console()
    if not con.is_terminal:
        yield lambda done, total, what: None
        return
    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), TextColumn("{task.fields[what]}"), console=con, transient=True) as bar:
        task = bar.add_task(label, total=None, what="")
        yield lambda done, total, what: bar.update(task, completed=done, total=total, what=what)
