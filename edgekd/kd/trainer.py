"""The training loop: a student learns from cached teacher logits (and labels), with progress and metrics.

The teacher runs once over the training set under inference_mode; its logits are reused every epoch,
which is exact because inputs are deterministic (no augmentation).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import EdgekdError
from .losses import kd_loss


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    temperature: float = 4.0
    alpha: float = 0.9  # weight of the soft (teacher) term; 0 = plain cross-entropy
    seed: int = 0
    warmup_epochs: int = 1


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits of `model` (eval mode) over `x`, in batches."""
    model.eval()
    outs = [model(torch.from_numpy(x[i:i + batch_size])).float().numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(outs)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(-1) == y).mean())


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int):
    warm = max(1, cfg.warmup_epochs * steps_per_epoch)
    total = max(warm + 1, cfg.epochs * steps_per_epoch)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
    return f


def train(student: torch.nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainConfig,
          teacher_logits: np.ndarray | None = None, eval_set: tuple[np.ndarray, np.ndarray] | None = None,
          metrics_path: Path | None = None, label: str = "student", show_progress: bool = True) -> TrainResult:
    """Train `student` in place on (x, y), distilling from `teacher_logits` when given (else plain CE)."""
    from ..progress import epoch_progress

    seed_everything(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    tt = torch.from_numpy(teacher_logits) if teacher_logits is not None else None
    steps = max(1, math.ceil(len(x) / cfg.batch_size))
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, steps))
    result, start = TrainResult(), time.perf_counter()
    with epoch_progress(label, cfg.epochs, enabled=show_progress) as bar:
        for epoch in range(1, cfg.epochs + 1):
            student.train()
            order = torch.randperm(len(x), generator=gen)
            total, n = 0.0, 0
            for i in range(0, len(x), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                logits = student(xt[idx])
                if tt is None:
                    loss = torch.nn.functional.cross_entropy(logits, yt[idx])
                else:
                    loss = kd_loss(logits, tt[idx], yt[idx], cfg.temperature, cfg.alpha)
                if not torch.isfinite(loss):
                    raise EdgekdError(f"the training loss became {loss.item()} at epoch {epoch}",
                                      "lower --lr or check the data for extreme values")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
                n += len(idx)
            row = {"model": label, "epoch": epoch, "loss": total / n, "lr": sched.get_last_lr()[0]}
            if eval_set is not None:
                row["test_accuracy"] = accuracy(predict_logits(student, eval_set[0]), eval_set[1])
            result.history.append(row)
            if metrics_path is not None:
                with open(metrics_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
            bar.advance(loss=row["loss"], acc=row.get("test_accuracy"))
    student.eval()
    result.seconds = time.perf_counter() - start
    return result
