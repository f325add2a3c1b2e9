"""The training loop: a student learns from the teacher (and labels) with any mix of methods.

Respecting the user's time: when inputs are deterministic (no augmentation) the teacher runs once over the
training set and its logits and hinted features are cached (in memory, or memory-mapped on disk when
large); later epochs cost only the student. Each epoch ends with an atomic checkpoint, so `--resume`
continues after a crash having lost at most the epoch in progress, with the same result as an uninterrupted
run. Under torchrun every rank takes an interleaved share of each global batch and DDP averages gradients;
rank 0 writes the artifacts.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import n_samples, take
from ..deploy.measure import mean_cosine, token_agreement
from ..errors import EdgekdError, UsageError
from ..models.inference import as_args, mask_index, predict, trim_padding, unwrap
from .features import FeatureTap, last_linear, projection
from .losses import prob_logits
from .methods import METHODS, Step, needs_features, parse

CACHE_MEMORY_LIMIT = 512 * 1024 * 1024  # bytes of teacher outputs kept in memory before memory-mapping


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    temperature: float = 4.0
    alpha: float = 0.9          # kd: weight of the soft (teacher) term; 1 - alpha weights the hard-label CE
    seed: int = 0
    warmup_epochs: int = 1
    method: str = "kd"
    feature_map: list[str] = field(default_factory=list)  # ["teacher.layer:student.layer", ...]
    # per-method feature maps ({"attn": [...], "hint": [...]}): each method sees only its own pairs
    feature_groups: dict[str, list[str]] = field(default_factory=dict)
    patience: int = 0           # early stopping on validation (0: off)
    augment: bool = False       # random flip and crop of image batches (turns the teacher cache off)
    cache: str = "auto"         # auto | memory | disk | off
    cache_max_bytes: int = CACHE_MEMORY_LIMIT  # in memory at most; auto goes to disk beyond, memory refuses
    device: str = "auto"        # auto | cpu | cuda
    kind: str = "logits"        # the distilled output: logits (accuracy / top-1), embedding (cosine), tokens
    activation: str = "none"    # the teacher outputs probabilities: softmax or sigmoid (see kd.losses.prob_logits)
    student_probs: bool = False  # the student does too (the teacher pruned keeps its activation); else logits


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    best_epoch: int | None = None
    stopped_early: bool = False
    cache: str = "off"
    resumed_from: int | None = None
    feature_map: list[str] = field(default_factory=list)

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


class DivergedError(EdgekdError):
    """A loss term became NaN or inf: training stops and the last good checkpoint is kept."""


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


predict_logits = predict  # the output being distilled, over every sample


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(-1) == y).mean())


def _cut(a: np.ndarray, width: int | None) -> np.ndarray:
    """A cached teacher feature of a trimmed batch: its sequence axis cut to the batch's width."""
    return a[:, :width] if width is not None and a.ndim >= 3 else a


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int):
    warm = max(1, cfg.warmup_epochs * steps_per_epoch)
    total = max(warm + 1, cfg.epochs * steps_per_epoch)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / (total - warm))))
    return f


def augment_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Light image augmentation: random horizontal flip, random crop after reflect-padding 1/8 of the size."""
    if x.ndim != 4:
        return x
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def _dist() -> tuple[int, int]:
    """(rank, world size) under torchrun; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import atexit

    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(dist.destroy_process_group)
    return dist.get_rank(), dist.get_world_size()


class Distiller:
    """Trains `student` against `teacher` (None: labels only) on (x, y); y is -1 where the teacher labels."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, cfg: TrainConfig, x: np.ndarray,
                 y: np.ndarray, val: tuple[np.ndarray, np.ndarray | None] | None = None,
                 test: tuple[np.ndarray, np.ndarray | None] | None = None, run_dir: Path | None = None,
                 label: str = "student", show_progress: bool = True, fingerprint: dict | None = None) -> None:
        self.cfg, self.student, self.teacher = cfg, student, teacher
        self.x, self.y, self.val, self.test = x, y, val, test
        self.run_dir, self.label, self.show_progress = run_dir, label, show_progress
        self.terms = parse(cfg.method) if teacher is not None else parse("ce")
        if teacher is None and any(t.name != "ce" for t in parse(cfg.method)):
            raise UsageError(f"--method {cfg.method} needs a teacher", "use --method ce to train without one")
        if any(t.name == "ce" for t in self.terms) and (y < 0).all():
            raise UsageError("--method ce needs labels, but the data has none",
                             "use kd (the teacher supplies targets) or give labels as `y`")
        self.rank, self.world = _dist()
        self.device = torch.device("cuda" if cfg.device == "cuda" or (cfg.device == "auto" and
                                                                    torch.cuda.is_available()) else "cpu")
        self.fingerprint = {**asdict(cfg), **(fingerprint or {}), "world_size": self.world}
        self.fingerprint.pop("device", None)
        self.slices: dict[str, slice] = {}  # a method's own feature pairs (cfg.feature_groups), by method name
        self.pairs = self._feature_pairs() if teacher is not None and needs_features(self.terms) else []
        self.tap_t = FeatureTap(unwrap(teacher), [t for t, _ in self.pairs], "teacher") if self.pairs else None
        self.tap_s = FeatureTap(unwrap(student), [s for _, s in self.pairs], "student") if self.pairs else None
        self.proj = nn.ModuleList()
        self.cache_mode = "off"
        self._teacher_pred: dict[int, np.ndarray] = {}
        self.mask_at = mask_index(x)  # padded token data: batches are trimmed to their longest text

    # ---------------------------------------------------------------- set-up

    def _feature_pairs(self) -> list[tuple[str, str]]:
        specs = list(self.cfg.feature_map)
        for name, group in self.cfg.feature_groups.items():
            self.slices[name] = slice(len(specs), len(specs) + len(group))
            specs += group
        if specs:
            pairs = []
            for spec in specs:
                t, sep, s = spec.partition(":")
                if not sep or not t or not s:
                    raise UsageError(f"--feature-map {spec!r} is not TEACHER_MODULE:STUDENT_MODULE",
                                     "e.g. --feature-map features.6:3")
                pairs.append((t.removeprefix("teacher."), s.removeprefix("student.")))
            return pairs
        t, s = last_linear(unwrap(self.teacher)), last_linear(unwrap(self.student))
        if t is None or s is None:
            raise UsageError("feature methods need --feature-map: a model has no final nn.Linear to tap",
                             "pass --feature-map TEACHER_MODULE:STUDENT_MODULE")
        return [(f"{t}@in", f"{s}@in")]  # the penultimate embeddings

    def _probe_features(self) -> None:
        """One forward pass on two samples: check shapes, build projections."""
        xb = as_args(take(self.x, slice(0, 2)), self.device)
        with torch.no_grad():
            self.teacher(*xb)
            self.student(*xb)
        tf, sf = self.tap_t.take(), self.tap_s.take()
        methods = [t.name for t in self.terms if METHODS[t.name].needs_features]
        for (t, s), ft, fs in zip(self.pairs, tf, sf):
            pair = f"{t}:{s}"
            if ft is None or fs is None:
                raise UsageError(f"feature pair {pair} recorded nothing (the module is not used in forward)",
                                 "pick modules that forward() calls")
            if "at" in methods and (ft.ndim != 4 or fs.ndim != 4):
                raise UsageError(f"attention transfer needs CNN feature maps; {pair} gives shapes "
                                 f"{tuple(ft.shape[1:])} and {tuple(fs.shape[1:])}",
                                 "pass --feature-map between conv layers")
            projects = any(METHODS[m].projects for m in methods)
            self.proj.append(projection(tuple(fs.shape), tuple(ft.shape), pair) if projects else nn.Identity())
        self.proj.to(self.device)

    def _cache_teacher(self, workdir: Path) -> None:
        """Run the teacher once over the training set (deterministic inputs only)."""
        cfg = self.cfg
        if cfg.augment or cfg.cache == "off":
            self.cache_mode = "off"
            return
        n = n_samples(self.x)
        with torch.inference_mode():
            probe = self._teacher_forward(as_args(take(self.x, slice(0, 1)), self.device))
        shapes = [tuple(t.shape[1:]) for t in probe]
        total = sum(n * math.prod(s) * 4 for s in shapes)
        mode = cfg.cache if cfg.cache != "auto" else ("memory" if total <= cfg.cache_max_bytes else "disk")
        if mode == "memory" and total > cfg.cache_max_bytes:
            raise UsageError(f"--cache memory would hold {total / 2**20:,.0f} MB of teacher outputs, more than "
                             f"--max-memory-mb {cfg.cache_max_bytes / 2**20:,.0f}",
                             "use --cache auto or disk (memory-mapped), or raise --max-memory-mb")
        if mode == "disk":
            free = shutil.disk_usage(next(d for d in (workdir, *workdir.parents) if d.exists())).free
            if free < total:
                raise UsageError(f"the teacher cache needs {total / 2**20:,.0f} MB on disk, {workdir} has "
                                 f"{free / 2**20:,.0f} MB free", "free space, or pass --cache off")
            workdir.mkdir(parents=True, exist_ok=True)
            arrays = [np.lib.format.open_memmap(workdir / f"teacher_{i}.npy", mode="w+", dtype=np.float32,
                                                shape=(n, *s)) for i, s in enumerate(shapes)]
        else:
            arrays = [np.empty((n, *s), np.float32) for s in shapes]
        with torch.inference_mode():
            for i in range(0, n, 512):
                outs = self._teacher_forward(as_args(take(self.x, slice(i, i + 512)), self.device))
                for arr, o in zip(arrays, outs):
                    arr[i:i + 512] = o.float().cpu().numpy()
        self.cache, self.cache_mode = arrays, mode

    def _teacher_forward(self, xb: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """[logits, *hinted features] of the teacher for a batch (its inputs, positionally)."""
        logits = self.teacher(*xb)
        return [logits, *(self.tap_t.take() if self.tap_t else [])]

    # ---------------------------------------------------------------- one step

    def _terms(self, epoch: int, s_logits, t_out, s_feats, yb, mask=None) -> dict[str, torch.Tensor]:
        """Each method's weighted loss term (the methods own their losses: kd.methods)."""
        cfg = self.cfg
        projected = [p(fs) for p, fs in zip(self.proj, s_feats)]
        t_feats = t_out[1:] if t_out else []
        t_logits = t_out[0] if t_out else None
        if cfg.activation != "none":  # probabilities are distilled in logit space
            t_logits = prob_logits(t_logits, cfg.activation) if t_logits is not None else None
            s_logits = prob_logits(s_logits, cfg.activation) if cfg.student_probs else s_logits
        out = {}
        for name, w, opts in self.terms:
            method = METHODS[name]
            own = self.slices.get(name, slice(None))
            feats = projected if method.projects else s_feats
            step = Step(s_logits, t_logits, feats[own], t_feats[own], yb, cfg.temperature,
                        cfg.alpha, epoch, cfg.epochs, mask, multilabel=cfg.activation == "sigmoid")
            out[name] = w * method.loss(step, opts)
        return out

    # ---------------------------------------------------------------- checkpoints

    def _ckpt_path(self) -> Path | None:
        return self.run_dir / "checkpoints" / "last.pt" if self.run_dir else None

    def _save(self, epoch: int, opt, sched, gen, aug_gen, result: TrainResult, best: dict, bad: int,
              best_state: dict | None) -> None:
        from ..files import atomic_path

        path = self._ckpt_path()
        if path is None or self.rank != 0:
            return
        state = {"epoch": epoch, "student": self._inner().state_dict(), "proj": self.proj.state_dict(),
                 "opt": opt.state_dict(), "sched": sched.state_dict(), "torch_rng": torch.get_rng_state(),
                 "gen": gen.get_state(), "aug_gen": aug_gen.get_state(), "history": json.dumps(result.history),
                 "best": json.dumps(best), "best_state": best_state or {}, "bad_epochs": bad,
                 "fingerprint": json.dumps(self.fingerprint, sort_keys=True, default=str)}
        with atomic_path(path) as tmp:
            torch.save(state, str(tmp))

    def _load(self, opt, sched, gen, aug_gen) -> tuple[int, list, dict, int, dict | None]:
        path = self._ckpt_path()
        if path is None or not path.is_file():
            raise UsageError(f"--resume: no checkpoint at {path}", "run without --resume to start from scratch")
        state = _checkpoint(path)
        saved = json.loads(state["fingerprint"])
        now = json.loads(json.dumps(self.fingerprint, sort_keys=True, default=str))
        diff = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
        if diff:
            detail = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}" for k in diff[:4])
            raise UsageError(f"--resume: the checkpoint in {path.parent} belongs to another configuration ({detail})",
                             "rerun with the checkpoint's options, or drop --resume to start over")
        self._inner().load_state_dict(state["student"])
        self.proj.load_state_dict(state["proj"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["torch_rng"])
        gen.set_state(state["gen"])
        aug_gen.set_state(state["aug_gen"])
        return (state["epoch"], json.loads(state["history"]), json.loads(state["best"]), int(state["bad_epochs"]),
                state["best_state"] or None)

    def _inner(self) -> nn.Module:
        return self.student


    def _sync_projection_grads(self) -> None:
        """DDP averages the student's gradients; the projections live outside it, so average theirs here."""
        if self.world <= 1:
            return
        import torch.distributed as dist

        for p in self.proj.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world

    # ---------------------------------------------------------------- the loop

    def _evaluate(self, data) -> float | None:
        """Accuracy on labels, or top-1 agreement with the teacher where there are none."""
        if data is None:
            return None
        x, y = data
        was = self.student.training
        self.student.cpu()
        logits = predict_logits(self.student, x)
        self.student.to(self.device).train(was)
        if self.cfg.kind == "embedding":
            ref = self._teacher_pred.get(id(x))
            return None if ref is None else mean_cosine(logits, ref)
        if self.cfg.kind == "tokens":
            ref = self._teacher_pred.get(id(x))
            return None if ref is None else token_agreement(logits, ref, x.get("attention_mask"))
        if self.cfg.activation == "sigmoid":  # independent outputs: the share of them on the teacher's side of 0.5
            ref = self._teacher_pred.get(id(x))
            return None if ref is None else float(((logits > (0.5 if self.cfg.student_probs else 0.0)) == ref).mean())
        if y is not None and (y >= 0).all():
            return accuracy(logits, y)
        if id(x) not in self._teacher_pred:
            return None
        return float((logits.argmax(-1) == self._teacher_pred[id(x)]).mean())

    def _teacher_predictions(self) -> None:
        """The teacher's top-1 on unlabeled val/test data (its embeddings, for embedders), once: scores are
        agreement (mean cosine) with it there."""
        for data in (self.val, self.test):
            if data is None or self.teacher is None:
                continue
            if self.cfg.kind in ("embedding", "tokens"):
                self._teacher_pred[id(data[0])] = predict_logits(self.teacher, data[0])
            elif self.cfg.activation == "sigmoid":
                self._teacher_pred[id(data[0])] = predict_logits(self.teacher, data[0]) > 0.5
            elif data[1] is None or (data[1] < 0).any():
                self._teacher_pred[id(data[0])] = predict_logits(self.teacher, data[0]).argmax(-1)

    def fit(self, resume: bool = False) -> TrainResult:
        from ..progress import epoch_progress

        cfg = self.cfg
        seed_everything(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self._teacher_predictions()  # on CPU, before the teacher moves to the training device
        self.student.to(self.device)
        if self.teacher is not None:
            self.teacher.to(self.device).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        if self.pairs:
            self._probe_features()
        model: nn.Module = self.student
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(self.student)
        params = list(self.student.parameters()) + list(self.proj.parameters())
        steps = max(1, math.ceil(n_samples(self.x) / cfg.batch_size))
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, steps))
        scaler = torch.amp.GradScaler("cuda") if self.device.type == "cuda" else None
        result = TrainResult(feature_map=[f"{t}:{s}" for t, s in self.pairs])
        best: dict = {"score": None, "epoch": None}
        best_state = None
        bad, start_epoch = 0, 1
        if resume:
            done, result.history, best, bad, best_state = self._load(opt, sched, gen, aug_gen)
            result.resumed_from, start_epoch = done, done + 1
            if self.run_dir and self.rank == 0:  # drop lines of epochs the crash lost
                from ..files import write_text
                write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in result.history))
        with tempfile.TemporaryDirectory() as td:
            if self.teacher is not None:
                self._cache_teacher((self.run_dir / "cache") if self.run_dir else Path(td))
            result.cache = self.cache_mode
            xt, yt = as_args(self.x), torch.from_numpy(self.y)
            t0 = time.perf_counter()
            with epoch_progress(self.label, cfg.epochs, enabled=self.show_progress and self.rank == 0) as bar:
                bar.skip(start_epoch - 1)
                for epoch in range(start_epoch, cfg.epochs + 1):
                    row = self._epoch(epoch, model, opt, sched, scaler, gen, aug_gen, xt, yt)
                    score = self._evaluate(self.val)
                    if score is not None:
                        row["val_score"] = score
                        if best["score"] is None or score > best["score"]:
                            best, bad = {"score": score, "epoch": epoch}, 0
                            best_state = {k: v.detach().clone() for k, v in self.student.state_dict().items()}
                        else:
                            bad += 1
                    test = self._evaluate(self.test)
                    if test is not None:
                        row["test_score"] = test
                    result.history.append(row)
                    if self.run_dir and self.rank == 0:
                        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                            f.write(json.dumps(row) + "\n")
                    self._save(epoch, opt, sched, gen, aug_gen, result, best, bad, best_state)
                    bar.advance(loss=row["loss"], val=score, test=test)
                    if cfg.patience and bad >= cfg.patience:
                        result.stopped_early = True
                        break
            result.seconds = time.perf_counter() - t0
        if best_state is not None:
            self.student.load_state_dict(best_state)
        result.best_epoch = best["epoch"]
        for tap in (self.tap_s, self.tap_t):
            if tap:
                tap.close()
        self.student.cpu().eval()
        if self.teacher is not None:
            self.teacher.cpu()
        return result

    def _order(self, gen: torch.Generator) -> torch.Tensor:
        """This epoch's sample order: shuffled; for padded token data, in batches of similar length."""
        n = n_samples(self.x)
        if self.mask_at is None:
            return torch.randperm(n, generator=gen)
        from ..data.text import length_order

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        mask = next(v for i, v in enumerate(self.x.values()) if i == self.mask_at)
        return torch.from_numpy(length_order(mask, self.cfg.batch_size, np.random.default_rng(seed)))

    def _epoch(self, epoch, model, opt, sched, scaler, gen, aug_gen, xt, yt) -> dict:
        cfg = self.cfg
        model.train()
        if self.teacher is not None:
            self.teacher.eval()
        order = self._order(gen)
        sums: dict[str, torch.Tensor] = {}
        n, t0 = 0, time.perf_counter()
        amp = torch.autocast("cuda", dtype=torch.float16) if scaler else contextlib.nullcontext()
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size][self.rank::self.world]
            if len(idx) == 0:
                continue
            xb, yb = trim_padding(tuple(t[idx] for t in xt), self.mask_at), yt[idx].to(self.device)
            width = xb[self.mask_at].shape[1] if self.mask_at is not None else None
            xb = tuple(t.to(self.device) for t in xb)
            if cfg.augment and len(xb) == 1:
                xb = (augment_batch(xb[0].cpu(), aug_gen).to(self.device),)
            with amp:
                t_out = None
                if self.teacher is not None:
                    if self.cache_mode != "off":
                        t_out = [torch.from_numpy(np.ascontiguousarray(_cut(a[idx.numpy()], width)))
                                 .to(self.device) for a in self.cache]
                    else:
                        with torch.inference_mode():
                            outs = self._teacher_forward(xb)
                        t_out = [t.clone() for t in outs]  # a normal tensor: losses may save it for backward
                s_logits = model(*xb)
                s_feats = self.tap_s.take() if self.tap_s else []
            terms = self._terms(epoch, s_logits, t_out, s_feats, yb,
                                xb[self.mask_at] if self.mask_at is not None else None)
            loss = sum(terms.values())
            if not torch.isfinite(loss):  # one check per step; name the culprit only when it fails
                name, v = next((n, v) for n, v in terms.items() if not torch.isfinite(v))
                path = self._ckpt_path()
                kept = f"; the last good checkpoint is {path} (epoch {epoch - 1})" if path and epoch > 1 else ""
                raise DivergedError(f"loss term `{name}` became {v.item()} at epoch {epoch}{kept}",
                                    "lower --lr or that term's weight, or check the data; then --resume")
            opt.zero_grad(set_to_none=True)
            if scaler:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                self._sync_projection_grads()
                opt.step()
            sched.step()
            k = len(idx)
            for name, v in (("loss", loss), *((f"loss_{n}", t) for n, t in terms.items())):
                sums[name] = sums.get(name, 0.0) + v.detach() * k  # summed as tensors: no sync per step
            n += k
        row = {"model": self.label, "epoch": epoch, **{k: float(v) / max(n, 1) for k, v in sums.items()},
               "lr": sched.get_last_lr()[0], "epoch_seconds": time.perf_counter() - t0}
        return row


def train(student: nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, label: str = "student",
          show_progress: bool = True) -> TrainResult:
    """Plain cross-entropy training without a teacher or run directory: how the demo trains its teacher."""
    ce = TrainConfig(**{**asdict(cfg), "method": "ce"})
    return Distiller(student, None, ce, x, y, label=label, show_progress=show_progress).fit()


CHECKPOINT_KEYS = ("epoch", "student", "proj", "opt", "sched", "torch_rng", "gen", "aug_gen", "history", "best",
                   "best_state", "bad_epochs", "fingerprint")


def _checkpoint(path: Path) -> dict:
    """A checkpoint this trainer wrote, loaded without unpickling code; anything else (a tampered file, a pickle
    that would run code, another tool's checkpoint) is refused as what it is."""
    import pickle

    fix = f"delete {path} and rerun without --resume to start over (or restore the file)"
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        json.loads(state["fingerprint"])
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError, ValueError, IndexError,
            AttributeError) as e:
        why = ("not a tensors-only file: it is damaged, or pickles objects, which are never loaded"
               if isinstance(e, pickle.UnpicklingError) else
               f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:100]}")
        raise UsageError(f"--resume: {path} is not a checkpoint edgekd wrote ({why})", fix) from None
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise UsageError(f"--resume: {path} is not a checkpoint edgekd wrote (it lacks {', '.join(missing[:3])})",
                         fix)
    return state
