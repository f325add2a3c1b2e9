"""What this host can hold and run: the memory available and the cores to use.

Checked before a big allocation (a model a config or `--student` describes, a dataset's one-hot labels, an
input an ONNX graph declares), so that a size the host cannot hold is an error naming that size and where it
came from, instead of the allocator's `can't allocate memory`, a `MemoryError` or the kernel's OOM killer.
"""
from __future__ import annotations

import os

from .errors import UsageError


def available_bytes() -> int:
    """Memory a new allocation can take now: MemAvailable (Linux), else free physical pages, else unknown
    (a very large number: the check then never refuses)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def human(nbytes: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes / 1024:.1f} KiB"


def require_memory(nbytes: float, what: str, fix: str) -> None:
    """Refuse `what` (e.g. "the student mlp:hidden=100000000 (4.0e+15 parameters)") when it cannot fit."""
    avail = available_bytes()
    if nbytes > avail:
        raise UsageError(f"{what} needs {human(nbytes)} of memory; this host has {human(avail)} available", fix)


def cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. a container's CPU set), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
