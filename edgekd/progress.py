"""Progress on stderr (so `--json` output on stdout stays clean): bars on a terminal; off one (a log, CI, a
pipe), a plain line at most every PLAIN_EVERY_S seconds, so a long step is never silent and a short one
prints nothing."""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

PLAIN_EVERY_S = 10.0


class _Plain:
    """`label: 12/40 epochs, loss 0.4321 (15 s)` lines, the first after PLAIN_EVERY_S seconds."""

    def __init__(self, label: str, total: int | None, unit: str) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done, self.t0 = 0, time.perf_counter()
        self.last = self.t0

    def update(self, done: int, total: int | None = None, what: str = "") -> None:
        self.done, self.total = done, total or self.total
        now = time.perf_counter()
        if now - self.last >= PLAIN_EVERY_S or (self.total and done >= self.total and self.last > self.t0):
            self.last = now
            of = f"/{self.total}" if self.total else ""
            print(f"{self.label}: {done}{of} {self.unit}{', ' + what if what else ''} ({now - self.t0:.0f} s)",
                  file=sys.stderr, flush=True)


class _Bar:
    def __init__(self, progress, task, plain: _Plain | None = None) -> None:
        self._progress, self._task, self._plain = progress, task, plain

    def skip(self, n: int) -> None:
        """Mark `n` steps done without metrics (a resumed run)."""
        if self._progress is not None and n:
            self._progress.update(self._task, advance=n)
        if self._plain is not None:
            self._plain.done += n

    def advance(self, **metrics) -> None:
        text = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None)
        if self._plain is not None:
            self._plain.update(self._plain.done + 1, what=text)
        if self._progress is not None:
            self._progress.update(self._task, advance=1, metrics=text)


def console():
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def epoch_progress(label: str, total: int, enabled: bool = True) -> Iterator[_Bar]:
    """A bar with ETA and the key metric on a terminal, plain lines off one; silent when disabled."""
    if not enabled:
        yield _Bar(None, None)
        return
    if not console().is_terminal:
        yield _Bar(None, None, _Plain(label, total, "epochs"))
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
    On a terminal the bar is cleared when done, so an error after it is still one line; off one, plain
    lines (none for work shorter than PLAIN_EVERY_S)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    con = console()
    if not con.is_terminal:
        yield _Plain(label, None, "done").update
        return
    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), TextColumn("{task.fields[what]}"), console=con, transient=True) as bar:
        task = bar.add_task(label, total=None, what="")
        yield lambda done, total, what: bar.update(task, completed=done, total=total, what=what)
