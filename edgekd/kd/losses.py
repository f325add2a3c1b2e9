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


PROB_EPS = 1e-6  # probabilities are clamped into [eps, 1 - eps] before their logarithm


def prob_logits(p: torch.Tensor, activation: str) -> torch.Tensor:
    """The logits that `activation` ("softmax" or "sigmoid") turns into the probabilities p: log p for softmax
    (up to a per-row constant, which softmax ignores), log(p / (1 - p)) for sigmoid. A teacher that outputs
    probabilities is distilled in logit space: softmax(log p / T) is the tempered target KD needs, where the
    softmax of probabilities themselves is close to uniform and teaches almost nothing."""
    p = p.float().clamp(PROB_EPS, 1 - PROB_EPS)
    return p.log() if activation == "softmax" else p.log() - torch.log1p(-p)


def soft_bce(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KD for independent (sigmoid) outputs: binary cross-entropy of each output against the teacher's tempered
    probability, averaged over outputs, times T^2 (as soft_kl)."""
    t = float(temperature)
    target = torch.sigmoid(teacher_logits.float() / t)
    return F.binary_cross_entropy_with_logits(student_logits.float() / t, target) * (t * t)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
            temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """alpha weights the soft (teacher) term; 1 - alpha the hard-label CE. No labels: soft term only."""
    soft = soft_kl(student_logits, teacher_logits, temperature)
    if labels is None or alpha >= 1.0:
        return soft
    hard = F.cross_entropy(student_logits.float(), labels)
    return alpha * soft + (1.0 - alpha) * hard


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
             temperature: float = 4.0, alpha: float = 1.0, beta: float = 8.0) -> torch.Tensor:
    """Decoupled KD (Zhao et al. 2022): alpha * TCKD + beta * NCKD, each x T^2, averaged over the batch.

    TCKD compares the binary (target vs rest) distributions; NCKD the distributions over non-target classes.
    `target` is the label, or the teacher's argmax where a sample has no label.
    """
    t = float(temperature)
    zs, zt = student_logits.float() / t, teacher_logits.float() / t
    gt = F.one_hot(target, zs.shape[-1]).bool()
    ps, pt = F.softmax(zs, -1), F.softmax(zt, -1)
    bs = torch.stack([(ps * gt).sum(-1), (ps * ~gt).sum(-1)], -1).clamp_min(1e-8)
    bt = torch.stack([(pt * gt).sum(-1), (pt * ~gt).sum(-1)], -1).clamp_min(1e-8)
    tckd = (bt * (bt.log() - bs.log())).sum(-1).mean()
    log_ns = F.log_softmax(zs - 1000.0 * gt, -1)
    log_nt = F.log_softmax(zt - 1000.0 * gt, -1)
    nckd = F.kl_div(log_ns, log_nt, log_target=True, reduction="batchmean")
    return (alpha * tckd + beta * nckd) * t * t


def hint_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """FitNets: mean squared error between the (projected) student feature and the teacher's."""
    return F.mse_loss(student_feat.float(), teacher_feat.float())


def attention_map(feat: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis: the L2-normalised spatial map of mean squared activations."""
    return F.normalize(feat.float().pow(2).mean(1).flatten(1), dim=1)


def at_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Attention transfer between CNN feature maps; the larger map is pooled to the smaller's size."""
    hs, ht = student_feat.shape[-2:], teacher_feat.shape[-2:]
    if hs != ht:
        size = (min(hs[0], ht[0]), min(hs[1], ht[1]))
        student_feat = F.adaptive_avg_pool2d(student_feat, size)
        teacher_feat = F.adaptive_avg_pool2d(teacher_feat, size)
    return (attention_map(student_feat) - attention_map(teacher_feat)).pow(2).mean()


def cosine_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """DistilBERT's cosine embedding loss on hidden states: mean of 1 - cos over samples (and tokens)."""
    d = student_feat.shape[-1]
    s, t = student_feat.float().reshape(-1, d), teacher_feat.float().reshape(-1, d)
    return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()


def _pdist(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    sq = e.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp_min(eps).sqrt()
    return d * (1 - torch.eye(len(e), device=e.device))  # zero diagonal: no NaN gradient through sqrt(0)


def rkd_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor, w_dist: float = 1.0,
             w_angle: float = 2.0) -> torch.Tensor:
    """Relational KD (Park et al. 2019): match pairwise distances (normalised by their mean) and the angles
    of triplets between student and teacher embeddings; widths may differ. Weights keep the paper's 25:50."""
    s, t = student_feat.float().flatten(1), teacher_feat.float().flatten(1)
    loss = s.new_zeros(())
    if w_dist:
        with torch.no_grad():
            td = _pdist(t)
            td = td / td[td > 0].mean().clamp_min(1e-12)
        sd = _pdist(s)
        sd = sd / sd[sd > 0].mean().clamp_min(1e-12)
        loss = loss + w_dist * F.smooth_l1_loss(sd, td)
    if w_angle:
        with torch.no_grad():
            tv = F.normalize(t[None] - t[:, None], p=2, dim=2)
            ta = torch.bmm(tv, tv.transpose(1, 2)).flatten()
        sv = F.normalize(s[None] - s[:, None], p=2, dim=2)
        sa = torch.bmm(sv, sv.transpose(1, 2)).flatten()
        loss = loss + w_angle * F.smooth_l1_loss(sa, ta)
    return loss


def relation_kl(s_a: torch.Tensor, s_b: torch.Tensor, t_a: torch.Tensor, t_b: torch.Tensor,
                mask: torch.Tensor | None = None, heads: int = 0) -> torch.Tensor:
    """KL between teacher and student self-attention relations softmax(A B^T / sqrt(d)) per relation head,
    averaged over the (unpadded) query positions: A, B = queries, keys for TinyBERT's attention
    distributions; A = B = values for MiniLM's value relation. Hidden widths may differ: both are split into
    the same number of relation heads (`heads`, default the largest of 12..1 dividing both)."""
    import math

    hs, ht = s_a.shape[-1], t_a.shape[-1]
    heads = heads or next(h for h in range(12, 0, -1) if hs % h == 0 and ht % h == 0)

    def log_rel(a, b):
        n, length, width = a.shape
        d = width // heads
        a = a.float().view(n, length, heads, d).transpose(1, 2)
        b = b.float().view(n, length, heads, d).transpose(1, 2)
        scores = a @ b.transpose(-1, -2) / math.sqrt(d)
        if mask is not None:
            scores = scores.masked_fill(mask[:, None, None, :] == 0, -1e4)
        return F.log_softmax(scores, -1)
    lt, ls = log_rel(t_a, t_b), log_rel(s_a, s_b)
    kl = (lt.exp() * (lt - ls)).sum(-1)  # (N, heads, L)
    if mask is None:
        return kl.mean()
    m = mask[:, None, :].float()
    return (kl * m).sum() / (m.sum() * heads).clamp_min(1.0)
