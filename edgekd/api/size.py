"""Size the student to the device: enumerate candidates of a family, predict each one's latency (int8 when
quantization is planned) and peak memory on the profile, and choose the one with the most capacity
(parameters, then FLOPs: parameters compare across families) that fits every budget.

Candidates are exported untrained (random weights: latency does not depend on their values) with the fast
TorchScript exporter, quantized with the profile's preset when int8 is planned, and priced by
`edgekd.latency` on the fused graph onnxruntime would run.
"""
from __future__ import annotations

import math
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import data as data_mod
from ..deploy.measure import MIN_EFFECT
from ..errors import UsageError

# onnxruntime's own footprint in a session (edgekd.deploy.memprobe: session_mb on x86-64 and arm64)
ORT_SESSION_MB = 30.0


@dataclass
class Candidate:
    spec: str
    params: int
    flops: int
    predicted_ms: float
    predicted_peak_mb: float
    fits: bool = False
    why_not: str = ""


def family_of(student: str | None, input_shape, token_ids: bool = False) -> str:
    """The family to size: --student FAMILY (no knobs), or the default for the input shape."""
    from ..models.students import FAMILIES, default_family, is_entrypoint

    if student is None:
        return default_family(tuple(input_shape), token_ids)
    if is_entrypoint(student):
        raise UsageError(f"cannot size {student}: a user entrypoint has no width/depth knobs",
                         "pass a built-in family (--student mlp|mobilenet|resnet|transformer) or a student "
                         "with fixed knobs and no --profile search")
    if student not in FAMILIES:
        raise UsageError(f"unknown student family {student!r} (known: {', '.join(FAMILIES)})",
                         "e.g. --student mobilenet")
    return student


def _spec(family: str, knobs: dict) -> str:
    return family + ":" + ",".join(f"{k}={v}" for k, v in knobs.items())


def _peak_mb(model_path: Path, params: int, dtype_bytes: int, batch: int, input_shape) -> float:
    """Weights + the two largest activations live at once + onnxruntime's own footprint."""
    from ..latency.graph import analyze

    cost = analyze(model_path, batch=batch)
    acts = sorted((math.prod(n.shape) * 4 for n in cost.nodes if n.shape), reverse=True)[:2]
    inp = batch * math.prod(input_shape) * 4
    return ORT_SESSION_MB + (params * dtype_bytes + sum(acts) + inp) / 2**20


def _price(model, calib_x: np.ndarray, profile, threads: int, quantize: str, preset: str, path: Path,
           input_shape) -> tuple[float, float]:
    """(predicted ms, predicted peak MB) of a PyTorch model on the profile, at the planned precision."""
    from ..deploy.export import to_onnx
    from ..deploy.quantize import Attempt, quantize_file
    from ..latency.predictor import predict_latency
    from ..models.students import count_params

    to_onnx(model, calib_x[:2], path, exporter="torchscript")
    if quantize == "int8":
        q = path.with_suffix(".int8.onnx")
        quantize_file(path, q, Attempt(preset, preset), "static", calib_x[:32])
        path = q
    pred = predict_latency(str(path), profile, threads=threads, batch=1)
    return pred.latency_ms, _peak_mb(path, count_params(model), 1 if quantize == "int8" else 4, 1, input_shape)


def _preset(profile) -> str:
    preset = profile.int8_preset
    return preset if preset in ("s8s8", "u8s8", "u8s8-reduce-range", "u8u8") else "s8s8"


def price_teacher(teacher, input_shape, profile, threads: int, quantize: str, calib_x: np.ndarray) -> Candidate:
    """The teacher priced exactly as the candidates are (same profile, threads and precision): the row every
    student is compared with."""
    from ..models.students import count_flops, count_params

    with tempfile.TemporaryDirectory() as td, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms, mb = _price(teacher, calib_x, profile, threads, quantize, _preset(profile), Path(td) / "teacher.onnx",
                        input_shape)
    return Candidate("teacher", count_params(teacher), count_flops(teacher, input_shape), ms, mb)


def candidates(family: str, input_shape, num_classes: int, profile, threads: int, quantize: str,
               calib_x: np.ndarray, progress=None, vocab: int | None = None) -> list[Candidate]:
    """Build, export, (quantize) and price every candidate of the family (or families: `mobilenet+resnet`)."""
    import torch

    from ..models import students

    out: list[Candidate] = []
    grid = [(f, knobs) for f in family.split("+") for knobs in students.FAMILIES[f].grid]
    with tempfile.TemporaryDirectory() as td, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (fam, knobs) in enumerate(grid):
            spec = students.with_vocab(_spec(fam, knobs), vocab)
            rec = students.record(spec, input_shape, num_classes)
            torch.manual_seed(0)
            try:
                model = students.build(rec).eval()
            except UsageError:
                continue  # e.g. a width that does not divide into the heads
            ms, mb = _price(model, calib_x, profile, threads, quantize, _preset(profile), Path(td) / f"c{i}.onnx",
                            input_shape)
            out.append(Candidate(spec, students.count_params(model), students.count_flops(model, input_shape), ms, mb))
            if progress:
                progress(i + 1, len(grid), spec)
    return out


@dataclass
class SizeResult:
    family: str
    profile: str
    threads: int
    quantize: str
    budget_ms: float
    memory_mb: float
    margin: float
    chosen: dict
    teacher: dict
    candidates: list[dict]
    warnings: list[str]
    min_compression: float = 2.0
    verdict: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def speedup(self) -> float:
        """The chosen student's predicted speed-up over the teacher."""
        return self.teacher["predicted_ms"] / self.chosen["predicted_ms"]


MIN_COMPRESSION = 2.0  # a student must have at most half the teacher's parameters: less compresses too little


class FamilyPricer:
    """Prices a PyTorch teacher and the candidates of built-in student families (`mobilenet+resnet`) on a
    profile: each exported with the TorchScript exporter and quantized statically when int8 is planned."""

    min_compression = MIN_COMPRESSION

    def __init__(self, family: str, teacher, input_shape, num_classes: int, calib_x: np.ndarray | None = None,
                 vocab: int | None = None) -> None:
        self.family, self.model, self.input_shape, self.num_classes = family, teacher, tuple(input_shape), num_classes
        self.calib_x = np.random.default_rng(0).random((32, *input_shape), dtype=np.float32) if calib_x is None \
            else calib_x
        self.vocab = vocab

    def teacher(self, profile, threads: int, quantize: str) -> Candidate:
        return price_teacher(self.model, self.input_shape, profile, threads, quantize, self.calib_x)

    def candidates(self, profile, threads: int, quantize: str, progress=None) -> list[Candidate]:
        return candidates(self.family, self.input_shape, self.num_classes, profile, threads, quantize, self.calib_x,
                          progress, self.vocab)


def choose(profile, pricer, *, family: str, budget_ms: float | None = None, memory_mb: float | None = None,
           quantize: str = "int8", threads: int | None = None, margin: float | None = None,
           speedup: float | None = None, progress=None) -> SizeResult:
    """Choose the candidate with the most capacity that fits the latency and memory budgets and is worth
    distilling: predicted at least `speedup` times faster than the teacher (priced the same way, by `pricer`:
    FamilyPricer or HFPricer; default 1.05, a speed-up that can be measured) and at least
    `pricer.min_compression` times smaller.

    A candidate fits when predicted_ms * (1 + margin) <= budget. The default margin is the calibrated
    profile's median prediction error (0 for a datasheet profile, whose error is unknown)."""
    if quantize not in ("int8", "none"):
        raise UsageError(f"--quantize must be int8 or none, got {quantize!r}", "e.g. --quantize int8")
    budget_ms = profile.latency_budget_ms if budget_ms is None else budget_ms
    memory_mb = profile.memory_budget_mb if memory_mb is None else memory_mb
    if budget_ms <= 0 or memory_mb <= 0:
        raise UsageError(f"budgets must be > 0 (got --budget-ms {budget_ms}, --memory-mb {memory_mb})",
                         "e.g. --budget-ms 5 --memory-mb 256")
    margin = profile.median_error if margin is None else margin
    speedup = 1 + MIN_EFFECT if speedup is None else float(speedup)
    if not 1 <= speedup <= 1000:
        raise UsageError(f"--speedup must be in [1, 1000], got {speedup}", "e.g. --speedup 3")
    if margin < 0:
        raise UsageError(f"--margin must be >= 0, got {margin}", "e.g. --margin 0.1 keeps 10% headroom")
    notes = []
    if memory_mb > profile.ram_mb:
        notes.append(f"--memory-mb {memory_mb:g} is more than {profile.name}'s RAM ({profile.ram_mb:g} MB)")
    threads = threads or profile.cores
    t = pricer.teacher(profile, threads, quantize)
    if t.predicted_ms * (1 + margin) <= budget_ms and t.predicted_peak_mb <= memory_mb:
        notes.append(f"the teacher already fits the budget on {profile.name} ({t.predicted_ms:.3g} ms <= "
                     f"{budget_ms:g} ms): shipping the teacher is an option; the student below is what a smaller, "
                     "faster model would gain")
    cands = pricer.candidates(profile, threads, quantize, progress)
    min_compression = pricer.min_compression
    for c in cands:
        c.fits, c.why_not = _verdict(c, t, budget_ms, memory_mb, margin, min_compression, speedup)
    fitting = [c for c in cands if c.fits]
    if not fitting:
        raise _nothing_fits(family, profile, cands, t, budget_ms, memory_mb, margin, min_compression, speedup)
    best = max(fitting, key=lambda c: (c.flops, c.params))
    t.fits, t.why_not = t.predicted_ms * (1 + margin) <= budget_ms, "the teacher"
    line = (f"{best.spec}: predicted {t.predicted_ms / best.predicted_ms:.1f}x faster than the teacher on "
            f"{profile.name} ({best.predicted_ms:.3g} vs {t.predicted_ms:.3g} ms, {threads} thread(s), {quantize}), "
            f"{t.params / best.params:.1f}x fewer parameters")
    return SizeResult(family, profile.name, threads, quantize, budget_ms, memory_mb, margin, asdict(best), asdict(t),
                      [asdict(c) for c in sorted(cands, key=lambda c: c.flops)], notes, min_compression, line)


def _verdict(c: Candidate, t: Candidate, budget_ms: float, memory_mb: float, margin: float,
             min_compression: float = MIN_COMPRESSION, speedup: float = 1 + MIN_EFFECT) -> tuple[bool, str]:
    over = []
    if c.predicted_ms * (1 + margin) > budget_ms:
        over.append(f"{c.predicted_ms:.3g} ms{f' (+{margin:.0%})' if margin else ''} > {budget_ms:g} ms")
    if c.predicted_peak_mb > memory_mb:
        over.append(f"{c.predicted_peak_mb:.3g} MB > {memory_mb:g} MB")
    if c.predicted_ms * speedup > t.predicted_ms:  # by default 1.05x: 1.02x is no speed-up anyone can measure
        over.append(f"not {speedup:g}x faster than the teacher ({c.predicted_ms:.3g} vs {t.predicted_ms:.3g} ms)")
    if c.params * min_compression > t.params:
        over.append(f"not {min_compression:g}x smaller than the teacher")
    return not over, "; ".join(over)


def _nothing_fits(family, profile, cands, t: Candidate, budget_ms, memory_mb, margin,
                  min_compression: float = MIN_COMPRESSION, speedup: float = 1 + MIN_EFFECT) -> UsageError:
    """Why no candidate fits, with the numbers that decide it and what would help."""
    worth = [c for c in cands if c.predicted_ms * speedup <= t.predicted_ms and c.params * min_compression <= t.params]
    if not worth:
        fastest = min(cands, key=lambda c: c.predicted_ms)
        faster = "faster" if speedup == 1 + MIN_EFFECT else f"{speedup:g}x faster"
        return UsageError(f"no {family} student is both {faster} than the teacher and {min_compression:g}x smaller on "
                          f"{profile.name}: the teacher is predicted at {t.predicted_ms:.3g} ms ({t.params:,} "
                          f"params), the fastest {family} candidate ({fastest.spec}) at {fastest.predicted_ms:.3g} ms "
                          f"({fastest.params:,} params)",
                          f"try another --student family ({_others(family)}), or ship the teacher")
    smallest = min(worth, key=lambda c: c.predicted_ms)
    kept = f" (+{margin:.0%} margin: {smallest.predicted_ms * (1 + margin):.3g} ms)" if margin else ""
    return UsageError(f"no {family} student fits {profile.name}: the fastest worth distilling ({smallest.spec}) is "
                      f"predicted at {smallest.predicted_ms:.3g} ms{kept} and {smallest.predicted_peak_mb:.3g} MB "
                      "against "
                      f"budgets of {budget_ms:g} ms and {memory_mb:g} MB (the teacher: {t.predicted_ms:.3g} ms)",
                      f"raise --budget-ms to at least {smallest.predicted_ms * (1 + margin) * 1.05:.3g} "
                      f"(and --memory-mb to {max(memory_mb, smallest.predicted_peak_mb * 1.05):.3g}), "
                      f"or try another --student family ({_others(family)})")


def _others(family: str) -> str:
    from ..models.students import FAMILIES

    if family == "hf":
        return "fewer layers or a narrower hidden size: --student hf:layers=1,hidden=H"
    return ", ".join(f for f in FAMILIES if f not in family.split("+"))


class HFPricer:
    """Prices a Hugging Face teacher and its `hf:layers=N,hidden=H` students on a profile at the data's real
    sequence length (the median token count of the training texts): each exported with the exporter a real
    run uses and quantized dynamically (the transformer default) when int8 is planned."""

    min_compression = 1.5  # the embedding table stays: DistilBERT itself is 1.65x smaller than BERT

    def __init__(self, teacher, seq: int, names: list[str]) -> None:
        self.tm, self.seq, self.names = teacher, int(seq), list(names)

    def grid(self) -> list[dict]:
        """Layers 1..L-1 (at most 4 depths) x hidden H, 3H/4, H/2, H/4 (where the heads divide it)."""
        from ..models.hf import layers_of

        cfg = self.tm.config
        depth = layers_of(cfg)
        layers = sorted({n for n in (1, 2, 3, depth // 2, (3 * depth) // 4) if 1 <= n < depth})[:4]
        h, heads = int(cfg.hidden_size), int(cfg.num_attention_heads)
        ratio = int(getattr(cfg, "intermediate_size", 4 * h)) / h
        widths = [w for w in dict.fromkeys((h, 3 * h // 4, h // 2, h // 4)) if w >= heads and w % heads == 0]
        return [{"layers": n, **({} if w == h else {"hidden": w, "intermediate": int(round(w * ratio))})}
                for n in layers for w in widths]

    def _price(self, model, path: Path, profile, threads: int, quantize: str) -> tuple[float, float]:
        from ..deploy.quantize import Attempt, quantize_file
        from ..latency.predictor import predict_latency
        from ..models import hf
        from ..models.inference import adapt
        from ..models.students import count_params

        sample = {n: np.ones((2, self.seq), np.int64) for n in self.names}
        out = "sentence_embedding" if model.task == "embedding" else "logits"
        hf.to_onnx(adapt(model, self.names, None, {}), sample, path, 17, out)
        if quantize == "int8":
            q = path.with_suffix(".int8.onnx")
            quantize_file(path, q, Attempt(_preset(profile), _preset(profile)), "dynamic", None)
            path = q
        shapes = {n: [1, self.seq] for n in self.names}
        pred = predict_latency(str(path), profile, threads=threads, batch=1, shapes=shapes)
        return pred.latency_ms, ORT_SESSION_MB + count_params(model) * (1 if quantize == "int8" else 4) / 2**20

    def teacher(self, profile, threads: int, quantize: str) -> Candidate:
        from ..models.students import count_params

        with tempfile.TemporaryDirectory() as td, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ms, mb = self._price(self.tm, Path(td) / "teacher.onnx", profile, threads, quantize)
        return Candidate("teacher", count_params(self.tm), _flops(self.tm.config, self.seq), ms, mb)

    def candidates(self, profile, threads: int, quantize: str, progress=None) -> list[Candidate]:
        from ..models import hf
        from ..models.students import count_params

        out, grid = [], self.grid()
        with tempfile.TemporaryDirectory() as td, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, knobs in enumerate(grid):
                spec = "hf:" + ",".join(f"{k}={v}" for k, v in knobs.items())
                model, _ = hf.build_student(self.tm, spec, init=False)
                ms, mb = self._price(model.eval(), Path(td) / f"c{i}.onnx", profile, threads, quantize)
                out.append(Candidate(spec, count_params(model), _flops(model.config, self.seq), ms, mb))
                if progress:
                    progress(i + 1, len(grid), spec)
        return out


def _flops(cfg, seq: int) -> int:
    """Encoder FLOPs of one text of `seq` tokens: 2 per MAC of the projections, the FFN and attention."""
    h, n = int(cfg.hidden_size), int(getattr(cfg, "num_hidden_layers", 1))
    ff = int(getattr(cfg, "intermediate_size", 4 * h))
    return int(n * 2 * seq * (4 * h * h + 2 * h * ff + 2 * seq * h))


def hf_search(ds: data_mod.Dataset, teacher, prof, **kw) -> SizeResult:
    """Size a Hugging Face student (layers x hidden) for `prof` at the data's median text length."""
    mask = ds.x_train["attention_mask"] if "attention_mask" in ds.x_train else None
    seq = int(np.median(mask.sum(1))) if mask is not None else ds.input_shape[0]
    pricer = HFPricer(teacher, max(1, seq), ds.input_names)
    res = choose(prof, pricer, family="hf", **kw)
    res.warnings.append(f"candidates priced at {pricer.seq} tokens per text (the training texts' median length)")
    return res


PRUNE_STEPS = 7  # bisection probes over the pruning ratio, to within ~0.01
PRUNE_RANGE = (0.05, 0.75)  # beyond 0.75, rounding to blocks of 8 leaves narrow layers whole (torch-pruning)


def prune_search(ds: data_mod.Dataset, teacher, prof, knobs: dict, *, budget_ms: float | None = None,
                 speedup: float | None = None, threads: int | None = None, quantize: str = "int8",
                 margin: float | None = None, progress=None) -> tuple[dict, SizeResult]:
    """`--student prune` sized by the predictor: the least pruning ratio (the most of the teacher kept) whose
    pruned copy, exported (and quantized when int8 is planned), is predicted within the budget on the profile —
    `--budget-ms`, the profile's budget, or the teacher's predicted time / `--speedup`. Bisection: each probe
    prunes a copy, exports and predicts it. Returns (the knobs with that ratio, the search as a SizeResult)."""
    import torch

    from ..models import prune as P
    from ..models.inference import as_args
    from ..models.students import count_flops, count_params

    threads = threads or prof.cores
    margin = prof.median_error if margin is None else margin
    calib = np.asarray(ds.x_train[:64], np.float32)
    t = price_teacher(teacher, ds.input_shape, prof, threads, quantize, calib)
    target = t.predicted_ms / speedup if speedup else (budget_ms or prof.latency_budget_ms)
    why = f"{speedup:g}x faster than the teacher" if speedup else "the latency budget"
    example = as_args(data_mod.take(ds.x_train, slice(0, 2)))
    rows: dict[float, Candidate] = {}

    def probe(ratio: float) -> bool:
        student, _ = P.prune(teacher, example, {**knobs, "ratio": ratio})
        with tempfile.TemporaryDirectory() as td, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            ms, mb = _price(student, calib, prof, threads, quantize, _preset(prof), Path(td) / "s.onnx",
                            ds.input_shape)
        rows[ratio] = Candidate(f"prune:ratio={ratio:.3g}", count_params(student),
                                count_flops(student, ds.input_shape), ms, mb)
        if progress:
            progress(len(rows), PRUNE_STEPS + 1, f"ratio {ratio:.2f}: {ms:.3g} ms predicted")
        return ms * (1 + margin) <= target

    lo, hi = PRUNE_RANGE
    if not probe(hi):
        c = rows[hi]
        raise UsageError(f"even with {hi:.0%} of its channels pruned the teacher is predicted at "
                         f"{c.predicted_ms:.3g} ms on {prof.name}, over {target:.3g} ms ({why}, with a "
                         f"{margin:.0%} margin)",
                         "raise --budget-ms, lower --speedup, or pick a smaller family (--student mobilenet)")
    if not probe(lo):
        for _ in range(PRUNE_STEPS - 1):
            mid = round((lo + hi) / 2, 3)
            lo, hi = (lo, mid) if probe(mid) else (mid, hi)
        ratio = hi
    else:
        ratio = lo
    chosen = rows[ratio]
    for c in rows.values():
        c.fits = c.predicted_ms * (1 + margin) <= target
        c.why_not = "" if c.fits else f"predicted {c.predicted_ms:.3g} ms > {target:.3g} ms"
    table = [asdict(c) for _, c in sorted(rows.items())]
    res = SizeResult(family="prune", profile=prof.name, threads=threads, quantize=quantize, budget_ms=target,
                     memory_mb=prof.memory_budget_mb, margin=margin,
                     chosen=asdict(chosen), teacher=asdict(t), candidates=table, warnings=[],
                     verdict=f"prune:ratio={ratio:.3g}: predicted {chosen.predicted_ms:.3g} ms on {prof.name} against "
                             f"{target:.3g} ms ({why}); {len(rows)} probes")
    return {**knobs, "ratio": ratio}, res


def init_from_teacher(student, teacher) -> str:
    """DistilBERT-style initialisation when the student is a smaller copy of the teacher's structure:
    fewer layers take every k-th teacher layer; narrower layers keep the units with the largest norms.
    Returns how the student was initialised ("random" when the structures differ)."""
    import torch

    s_lin = [m for m in student.modules() if isinstance(m, torch.nn.Linear)]
    t_lin = [m for m in teacher.modules() if isinstance(m, torch.nn.Linear)]
    only_linear = all(isinstance(m, (torch.nn.Linear, torch.nn.ReLU, torch.nn.Flatten, torch.nn.Sequential,
                                     torch.nn.Dropout)) for m in [*student.modules(), *teacher.modules()])
    if not only_linear or len(s_lin) < 2 or len(t_lin) < len(s_lin):
        return "random"
    if s_lin[0].in_features != t_lin[0].in_features or s_lin[-1].out_features != t_lin[-1].out_features:
        return "random"
    hidden_t = t_lin[:-1]
    k = len(hidden_t) / (len(s_lin) - 1)
    picked = [hidden_t[min(len(hidden_t) - 1, int(i * k))] for i in range(len(s_lin) - 1)] + [t_lin[-1]]
    plan, keep_prev = [], None  # (student layer, weight, bias); units kept from the previous layer
    for s, t in zip(s_lin, picked):
        w, b = t.weight.detach(), None if t.bias is None else t.bias.detach()
        if keep_prev is not None:
            w = w[:, keep_prev]
        if s.out_features > w.shape[0] or w.shape[1] != s.in_features:
            return "random"  # the student is wider than the teacher here: nothing sensible to copy
        keep = torch.argsort(w.norm(dim=1), descending=True)[:s.out_features].sort().values
        plan.append((s, w[keep], None if b is None else b[keep]))
        keep_prev = keep
    with torch.no_grad():  # copy only once every layer is known to fit
        for s, w, b in plan:
            s.weight.copy_(w)
            if s.bias is not None and b is not None:
                s.bias.copy_(b)
    return f"teacher: layers {[t_lin.index(t) for t in picked]} of {len(t_lin)}, largest-norm units"


# ---------------------------------------------------------------- the step

def size(teacher: str, data: str, profile: str, *, arch: str | None = None, student: str | None = None,
         budget_ms: float | None = None, memory_mb: float | None = None, quantize: str = "int8",
         threads: int | None = None, data_options: data_mod.DataOptions | None = None,
         margin: float | None = None, speedup: float | None = None, output: str | None = None, progress=None,
         task: str | None = None,
         text_column: str = "text", label_column: str = "label", max_length: int = 128, encoding: str = "utf-8"):
    """The student-size search alone (no training): candidates, their predicted latency/memory, the choice."""
    from ..data.text import codec_for
    from ..models import prune as P
    from ..models.hf import is_text_model
    from ..models.inference import fit_teacher, single_input, unwrap
    from ..models.teachers import load_teacher
    from .target import load_profile

    prof = load_profile(profile)
    traw, _ = load_teacher(teacher, arch, task=task)
    opts = data_options or data_mod.DataOptions(text_column=text_column, label_column=label_column,
                                                max_length=max_length, encoding=encoding)
    ds = data_mod.load(data, opts, codec=codec_for(traw))
    tmodel, t_out, _ = fit_teacher(traw, ds, output)
    if is_text_model(traw):  # a Hugging Face teacher: layers x hidden
        if student not in (None, "hf"):
            raise UsageError(f"cannot size --student {student} for a Hugging Face teacher",
                             "leave --student out (or pass --student hf): sizing searches hf:layers=N,hidden=H")
        return hf_search(ds, traw, prof, budget_ms=budget_ms, memory_mb=memory_mb, quantize=quantize,
                         threads=threads, margin=margin, speedup=speedup, progress=progress)
    single_input(ds, student or "sizing")
    if P.is_prune(student):  # the teacher cut: the ratio by bisection, each probe pruned, exported and predicted
        if "ratio=" in student or memory_mb is not None:
            raise UsageError("size --student prune searches the ratio for --budget-ms or --speedup (not given "
                             "with ratio=, nor a --memory-mb budget yet)", "e.g. edgekd size ... --student prune "
                             "--speedup 2")
        return prune_search(ds, unwrap(tmodel), prof, P.parse(student), budget_ms=budget_ms, speedup=speedup,
                            threads=threads, quantize=quantize, margin=margin, progress=progress)[1]
    return search(ds, tmodel, ds.num_classes or t_out.shape[1], prof, student, budget_ms=budget_ms,
                   memory_mb=memory_mb, quantize=quantize, threads=threads, margin=margin, speedup=speedup,
                   progress=progress)


def search(ds: data_mod.Dataset, teacher, num_classes: int, prof, student: str | None, **kw):
    """Size a student of `student`'s family (or the data's default) for `prof`, against the teacher."""
    from ..models.students import token_ids, vocab_of

    if kw.get("threads") is not None and kw["threads"] < 1:
        raise UsageError(f"--threads must be >= 1, got {kw['threads']}", "e.g. --threads 1")
    family = family_of(student, ds.input_shape, token_ids(ds.x_train))
    pricer = FamilyPricer(family, teacher, ds.input_shape, num_classes, ds.x_train[:64],
                          vocab_of(ds.x_train, ds.x_test))
    return choose(prof, pricer, family=family, **kw)
