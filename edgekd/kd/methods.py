"""Distillation methods by name, combined as a weighted sum: `--method kd+hint:0.5`, each method's own
options after its colon: `--method dkd:alpha=1,beta=8` (a bare number there is the term's weight).

Families: response-based (kd, dkd, embed), feature-based (hint, at, cosine, attn), relation-based (rkd, minilm),
and the plain cross-entropy baseline (ce). Data distillation is any method trained on samples without labels:
the teacher supplies their targets.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import UsageError
from ..registry import Registry


@dataclass
class Step:
    """What one training step gives a method's loss: the student's logits and (projected) features, the
    teacher's logits and features, labels (-1 where the teacher labels), and the run's settings."""

    s_logits: Any
    t_logits: Any
    s_feats: list
    t_feats: list
    labels: Any
    temperature: float
    alpha: float
    epoch: int
    epochs: int
    mask: Any = None  # padded token data: the batch's attention mask (1 = a real token)
    multilabel: bool = False  # the outputs are independent (a sigmoid teacher): no softmax across them

    def ce(self):
        """Cross-entropy on the labelled samples (0 when the batch has none)."""
        import torch.nn.functional as F

        labeled = self.labels >= 0
        if not labeled.any():
            return self.s_logits.sum() * 0
        return F.cross_entropy(self.s_logits[labeled].float(), self.labels[labeled])


@dataclass(frozen=True)
class Method:
    """A distillation method: its name, family, its own options (`--method NAME:key=value`) and its loss."""

    name: str
    family: str
    loss: Callable[[Step, dict], Any]
    needs_features: bool = False
    projects: bool = False       # a learned projection maps student features to the teacher's width
    summary: str = ""
    options: dict[str, float] = field(default_factory=dict)  # the method's own knobs and their defaults


class Term(NamedTuple):
    name: str
    weight: float
    options: dict


METHODS: Registry[Method] = Registry("method", "combine methods with +, weights after a colon: --method kd+hint:0.5")


def register(method: Method) -> Method:
    """Add a method (users may add their own before calling edgekd.distill)."""
    return METHODS.register(method)


def _kd(b: Step, _opts: dict):
    from . import losses as L

    if b.s_logits.ndim == 3:  # a token classifier: KD over every real token (the teacher labels them all)
        keep = b.mask.bool() if b.mask is not None else None
        s, t = (b.s_logits[keep], b.t_logits[keep]) if keep is not None else (b.s_logits.flatten(0, 1),
                                                                               b.t_logits.flatten(0, 1))
        return L.soft_kl(s, t, b.temperature)
    if b.multilabel:  # class labels say nothing of independent outputs: the teacher's probabilities alone
        return L.soft_bce(b.s_logits, b.t_logits, b.temperature)
    soft = L.soft_kl(b.s_logits, b.t_logits, b.temperature)
    return b.alpha * soft + (1 - b.alpha) * b.ce() if b.alpha < 1 else soft


def _dkd(b: Step, opts: dict):
    import torch

    from . import losses as L

    target = torch.where(b.labels >= 0, b.labels, b.t_logits.argmax(-1))
    warm = min(1.0, b.epoch / max(1, b.epochs // 10))  # warmed up over the first 10% of epochs
    return b.ce() + warm * L.dkd_loss(b.s_logits, b.t_logits, target, b.temperature, opts["alpha"], opts["beta"])


def _embed(b: Step, opts: dict):
    """The sentence-transformers recipe: the student's sentence embedding regresses onto the teacher's."""
    import torch.nn.functional as F

    s, t = b.s_logits.float(), b.t_logits.float()
    return opts["mse"] * F.mse_loss(s, t) + opts["cos"] * (1 - F.cosine_similarity(s, t, dim=-1)).mean()


def _attn(b: Step, _opts: dict):
    """TinyBERT's attention loss over the mapped layers; features come as (queries, keys) per layer."""
    import torch

    from . import losses as L

    pairs = range(0, len(b.s_feats), 2)
    return torch.stack([L.relation_kl(b.s_feats[i], b.s_feats[i + 1], b.t_feats[i], b.t_feats[i + 1], b.mask)
                        for i in pairs]).mean()


def _minilm(b: Step, _opts: dict):
    """MiniLM: the last layer's attention distributions and value relation; features: queries, keys, values."""
    from . import losses as L

    (qs, ks, vs), (qt, kt, vt) = b.s_feats[:3], b.t_feats[:3]
    return L.relation_kl(qs, ks, qt, kt, b.mask) + L.relation_kl(vs, vs, vt, vt, b.mask)


def _per_pair(name: str):
    """A feature loss averaged over the --feature-map pairs."""
    def loss(b: Step, _opts: dict):
        import torch

        from . import losses as L

        fn = getattr(L, f"{name}_loss")
        return torch.stack([fn(fs, ft) for fs, ft in zip(b.s_feats, b.t_feats)]).mean()
    return loss


for _m in [
    Method("ce", "baseline", lambda b, _o: b.ce(), summary="cross-entropy on labels only (no teacher)"),
    Method("kd", "response", _kd, summary="alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE (Hinton et al. 2015)"),
    Method("dkd", "response", _dkd, summary="CE + decoupled KD: alpha * TCKD + beta * NCKD (Zhao et al. 2022)",
           options={"alpha": 1.0, "beta": 8.0}),
    Method("hint", "feature", _per_pair("hint"), True, True, "FitNets: MSE between projected student and teacher "
                                                               "features"),
    Method("at", "feature", _per_pair("at"), True, False, "attention transfer between CNN feature maps"),
    Method("cosine", "feature", _per_pair("cosine"), True, True, "1 - cos between (projected) hidden states "
                                                                   "(DistilBERT)"),
    Method("embed", "response", _embed, summary="embedders: mse * MSE + cos * (1 - cos) between student and "
                                                "teacher sentence embeddings (Reimers & Gurevych 2020)",
           options={"mse": 1.0, "cos": 1.0}),
    Method("attn", "feature", _attn, True, False, "TinyBERT: KL between teacher and student self-attention "
                                                  "distributions (queries x keys) of mapped layers"),
    Method("minilm", "relation", _minilm, True, False, "MiniLM: KL of the last layer's attention distributions "
                                                       "and value relations (values x values)"),
    Method("rkd", "relation", _per_pair("rkd"), True, False, "RKD distance + angle relations of a layer's "
                                                              "embeddings"),
]:
    register(_m)


def parse(spec: str) -> list[Term]:
    """`kd+hint:0.5+dkd:alpha=1,beta=8` -> [Term("kd", 1.0, {}), Term("hint", 0.5, {}), Term("dkd", 1.0, {...})]."""
    terms: list[Term] = []
    for part in filter(None, (p.strip() for p in spec.split("+"))):
        name, _, rest = part.partition(":")
        method = METHODS.lookup(name, f"in --method {spec!r}")
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
