"""Distillation losses. Softmax and KL are computed in fp32 whatever the logits' dtype.

`kd_loss` is Hinton et al. (2015): alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE(z_S, y).
The T^2 factor keeps the soft-target gradients the same size whatever the temperature.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p_T || p_S) at temperature T, averaged over the batch (not over classes), times T^2."""
    t = float(temperature)
    log_ps = F.log_softmax(student_logits.float() / t, dim=-1)
    log_pt = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return F.kl_div(log_ps, log_pt, log_target=True, reduction="batchmean") * (t * t)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
            temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """alpha weights the soft (teacher) term; 1 - alpha the hard-label CE. No labels: soft term only."""
    soft = soft_kl(student_logits, teacher_logits, temperature)
    if labels is None or alpha >= 1.0:
        return soft
    hard = F.cross_entropy(student_logits.float(), labels)
    return alpha * soft + (1.0 - alpha) * hard
