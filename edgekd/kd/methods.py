"""Distillation methods by name, combined as a weighted sum: `--method kd+hint:0.5`, each method's own
options after its colon: `--method dkd:alpha=1,beta=8` (a bare number there is the term's weight).

Families: response-based (kd, dkd), feature-based (hint, at, cosine), relation-based (rkd), and the plain
cross-entropy baseline (ce). Data distillation is any method trained on samples without labels: the
teacher supplies their targets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import UsageError


@dataclass(frozen=True)
class Method:
    name: str
    family: str
    needs_features: bool = False
    projects: bool = False       # a learned projection maps student features to the teacher's width
    summary: str = ""
    options: dict[str, float] = field(default_factory=dict)  # the method's own knobs and their defaults


class Term(NamedTuple):
    name: str
    weight: float
    options: dict


METHODS = {m.name: m for m in [
    Method("ce", "baseline", summary="cross-entropy on labels only (no teacher)"),
    Method("kd", "response", summary="alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE (Hinton et al. 2015)"),
    Method("dkd", "response", summary="CE + decoupled KD: alpha * TCKD + beta * NCKD (Zhao et al. 2022)",
           options={"alpha": 1.0, "beta": 8.0}),
    Method("hint", "feature", True, True, "FitNets: MSE between projected student and teacher features"),
    Method("at", "feature", True, False, "attention transfer between CNN feature maps"),
    Method("cosine", "feature", True, True, "1 - cos between (projected) hidden states (DistilBERT)"),
    Method("rkd", "relation", True, False, "RKD distance + angle relations of a layer's embeddings"),
]}


def parse(spec: str) -> list[Term]:
    """`kd+hint:0.5+dkd:alpha=1,beta=8` -> [Term("kd", 1.0, {}), Term("hint", 0.5, {}), Term("dkd", 1.0, {...})]."""
    terms: list[Term] = []
    for part in filter(None, (p.strip() for p in spec.split("+"))):
        name, _, rest = part.partition(":")
        if name not in METHODS:
            raise UsageError(f"unknown method {name!r} in --method {spec!r} (known: {', '.join(METHODS)})",
                             "combine methods with +, weights after a colon: --method kd+hint:0.5")
        method = METHODS[name]
        w, opts = 1.0, dict(method.options)
        for item in filter(None, (x.strip() for x in rest.split(","))):
            key, eq, value = item.partition("=")
            if eq and key not in method.options:
                known = ", ".join(method.options) or "none"
                raise UsageError(f"method {name} has no option {key!r} in --method {spec!r} (its options: {known})",
                                 f"e.g. --method {name}:0.5 for a weight" + (
                                     f" or {name}:{next(iter(method.options))}=1" if method.options else ""))
            try:
                number = float(value if eq else key)
            except ValueError:
                raise UsageError(f"{'option ' + key if eq else 'method weight'} {value if eq else key!r} in "
                                 f"--method {spec!r} is not a number", "e.g. --method kd+hint:0.5") from None
            if eq:
                opts[key] = number
            else:
                w = number
        if not w > 0:
            raise UsageError(f"method weight of {name} must be > 0, got {w}", "drop the term instead")
        if any(t.name == name for t in terms):
            raise UsageError(f"method {name!r} appears twice in --method {spec!r}", "give each method once")
        terms.append(Term(name, w, opts))
    if not terms:
        raise UsageError("--method is empty", "e.g. --method kd")
    return terms


def needs_features(terms: list[Term]) -> bool:
    return any(METHODS[t.name].needs_features for t in terms)
