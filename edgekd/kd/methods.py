"""Distillation methods by name, combined as a weighted sum: `--method kd+hint:0.5`.

Families: response-based (kd, dkd), feature-based (hint, at, cosine), relation-based (rkd), and the plain
cross-entropy baseline (ce). Data distillation is any method trained on samples without labels: the
teacher supplies their targets.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class Method:
    name: str
    family: str
    needs_features: bool = False
    projects: bool = False       # a learned projection maps student features to the teacher's width
    summary: str = ""


METHODS = {m.name: m for m in [
    Method("ce", "baseline", summary="cross-entropy on labels only (no teacher)"),
    Method("kd", "response", summary="alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE (Hinton et al. 2015)"),
    Method("dkd", "response", summary="CE + decoupled KD: alpha * TCKD + beta * NCKD (Zhao et al. 2022)"),
    Method("hint", "feature", True, True, "FitNets: MSE between projected student and teacher features"),
    Method("at", "feature", True, False, "attention transfer between CNN feature maps"),
    Method("cosine", "feature", True, True, "1 - cos between (projected) hidden states (DistilBERT)"),
    Method("rkd", "relation", True, False, "RKD distance + angle relations of a layer's embeddings"),
]}


def parse(spec: str) -> list[tuple[str, float]]:
    """`kd+hint:0.5` -> [("kd", 1.0), ("hint", 0.5)]."""
    terms: list[tuple[str, float]] = []
    for part in filter(None, (p.strip() for p in spec.split("+"))):
        name, _, weight = part.partition(":")
        if name not in METHODS:
            raise UsageError(f"unknown method {name!r} in --method {spec!r} (known: {', '.join(METHODS)})",
                             "combine methods with +, weights after a colon: --method kd+hint:0.5")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise UsageError(f"method weight {weight!r} in --method {spec!r} is not a number",
                             "e.g. --method kd+hint:0.5") from None
        if w <= 0:
            raise UsageError(f"method weight of {name} must be > 0, got {w}", "drop the term instead")
        if any(n == name for n, _ in terms):
            raise UsageError(f"method {name!r} appears twice in --method {spec!r}", "give each method once")
        terms.append((name, w))
    if not terms:
        raise UsageError("--method is empty", "e.g. --method kd")
    return terms


def needs_features(terms: list[tuple[str, float]]) -> bool:
    return any(METHODS[n].needs_features for n, _ in terms)
