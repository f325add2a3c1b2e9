"""Progress on stderr (so `--json` output on stdout stays clean): bars on a terminal; off one (a log, CI, a
pipe), a plain line at most every PLAIN_EVERY_S seconds, so a long step is never silent and a short one
prints nothing."""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator

ETA_AFTER = 0.05  # share of the work done before a plain progress line gives an ETA
PLAIN_EVERY_S = 10.0


class _Live:
    """What the CLI's current step is doing, said on stderr as it happens: `[quantize] timing fp32 against 2
    int8 models` when a phase starts, and off a terminal a heartbeat line when nothing was printed for
    PLAIN_EVERY_S (a 70 s export is never silent). Notes are said when they are known, not after the work.
    Off (silent) for API callers unless they turn it on; the CLI turns it on."""

    def __init__(self) -> None:
        self.on = False
        self.label: str | None = None
        self.what = ""
        self.t0 = self.last = time.perf_counter()
        self.said: set[str] = set()
        self._stop: threading.Event | None = None

    def line(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)
        self.last = time.perf_counter()

    def beat(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            if self.label and time.perf_counter() - self.last >= PLAIN_EVERY_S:
                self.line(f"[{self.label}] {self.what or 'working'} ({time.perf_counter() - self.t0:.0f} s)")


LIVE = _Live()


def set_live(on: bool = True) -> None:
    """Say progress and notes on stderr as they happen (the CLI does; the Python API stays quiet)."""
    LIVE.on = on


@contextlib.contextmanager
def activity(label: str) -> Iterator[None]:
    """The step running now (`quantize`): `say` lines carry its name; off a terminal a heartbeat thread
    keeps the log moving. Nested activities keep the outer label."""
    if not LIVE.on or LIVE.label is not None:
        yield
        return
    LIVE.label, LIVE.what, LIVE.t0, LIVE.last = label, "", time.perf_counter(), time.perf_counter()
    LIVE.said = set()
    stop = threading.Event()
    ticker = None
    if not console().is_terminal:
        ticker = threading.Thread(target=LIVE.beat, args=(stop,), daemon=True)
        ticker.start()
    try:
        yield
    finally:
        stop.set()
        if ticker is not None:
            ticker.join(timeout=2)
        LIVE.label = None


def relabel(label: str) -> None:
    """Name the running activity after the command (`profiles`, `quantize`)."""
    if LIVE.label is not None:
        LIVE.label = label


def say(what: str) -> None:
    """A phase of the current step begins: said now (and repeated by the heartbeat while it lasts)."""
    LIVE.what = what
    if LIVE.on and LIVE.label:
        LIVE.line(f"[{LIVE.label}] {what} ({time.perf_counter() - LIVE.t0:.0f} s)")


def note(text: str, notes: list[str] | None = None) -> None:
    """A note for the user, said now when live (the CLI then does not repeat it at the end) and kept in
    `notes`, the step's result."""
    if notes is not None:
        notes.append(text)
    if LIVE.on and text not in LIVE.said:
        LIVE.said.add(text)
        LIVE.line(f"Note: {text}")


def unsaid(notes) -> list[str]:
    """The notes not said yet (the CLI prints these after the step)."""
    return [n for n in notes or () if n not in LIVE.said]


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
            eta = ""
            # the rest at the pace so far, once 5% is done (the first items' pace includes the set-up: calibrate
            # said "about 70655 s left" after its first of 5,952 timings)
            if self.total and self.total * ETA_AFTER <= done < self.total and done > 0:
                eta = f", about {(now - self.t0) / done * (self.total - done):.0f} s left"
            print(f"{self.label}: {done}{of} {self.unit}{', ' + what if what else ''} ({now - self.t0:.0f} s{eta})",
                  file=sys.stderr, flush=True)
            LIVE.last = now


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
