"""One small registry for everything users add by name: distillation methods, student families, teacher
loaders, execution providers. A dict (lookups stay `REG[name]`, insertion order is kept) with `register`,
`names` and `lookup`, whose unknown name is a one-line error listing the known ones and the closest match.
"""
from __future__ import annotations

import difflib
from typing import Generic, TypeVar

from .errors import UsageError

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """Named items of one kind ("method", "student family", ...), each registered under its `name`."""

    def __init__(self, kind: str, example: str = ""):
        super().__init__()
        self.kind, self.example = kind, example

    def register(self, item: T, first: bool = False) -> T:
        """Add (or replace) `item` under `item.name`; `first` puts it before the others (loaders are tried in
        order). Returns the item, so it works as a decorator's last line."""
        name = item.name  # type: ignore[attr-defined]
        if first:
            rest = {k: v for k, v in self.items() if k != name}
            self.clear()
            self[name] = item
            self.update(rest)
        else:
            self[name] = item
        return item

    def names(self) -> list[str]:
        return list(self)

    def lookup(self, name: str, where: str = "") -> T:
        """The item called `name`; unknown: a UsageError naming the known ones and the closest (`where` says
        where the name came from, e.g. "in --method kd+hnt")."""
        if name in self:
            return self[name]
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else (self.example or f"use one of: {', '.join(self)}")
        raise UsageError(f"unknown {self.kind} {name!r}{' ' + where if where else ''} (known: {', '.join(self)})",
                         hint)
