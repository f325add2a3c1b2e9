"""The `edgekd` command line (see app.py); `main` is the console script.

Importing the command line takes a second or two (click, rich, numpy): a Ctrl-C or SIGTERM in that time, before
`main` installs its handlers, ended the process by the signal itself (exit -2 / -15 instead of 130 / 143).
Nothing is written yet then, so the import leaves at once with the shell's code; the handlers are put back
after it, so that importing `edgekd.cli` from Python changes nothing.
"""
import os
import signal


def _while_importing(signum, frame):
    os._exit(128 + signum)


try:
    _before = {s: signal.signal(s, _while_importing) for s in (signal.SIGINT, signal.SIGTERM)}
except ValueError:  # not the main thread: signals are not ours to handle
    _before = {}
try:
    from .app import cli, main
finally:
    for _sig, _handler in _before.items():
        signal.signal(_sig, _handler)

__all__ = ["cli", "main"]
