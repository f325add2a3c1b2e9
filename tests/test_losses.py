"""KD loss against values computed by hand, and the T^2 scaling that keeps gradients T-independent."""
import math

import pytest
import torch

from edgekd.kd.losses import kd_loss, soft_kl


def _softmax(v, t):
    e = [math.exp(x / t) for x in v]
    return [x / sum(e) for x in e]


def test_soft_kl_matches_hand_computation():
    zs, zt, t = [1.0, 2.0, 0.5], [2.0, 0.0, 1.0], 2.0
    ps, pt = _softmax(zs, t), _softmax(zt, t)
    expected = t * t * sum(a * math.log(a / b) for a, b in zip(pt, ps))
    got = soft_kl(torch.tensor([zs]), torch.tensor([zt]), t).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_soft_kl_is_batch_mean_not_class_mean():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]])
    t = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    per_row = [soft_kl(s[i:i + 1], t[i:i + 1], 3.0).item() for i in range(2)]
    assert soft_kl(s, t, 3.0).item() == pytest.approx(sum(per_row) / 2, rel=1e-6)


def test_kd_loss_mixes_soft_and_hard_terms_by_alpha():
    s, t, y = torch.tensor([[1.0, 2.0, 0.5]]), torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([1])
    ps = _softmax([1.0, 2.0, 0.5], 1.0)
    ce = -math.log(ps[1])
    soft = soft_kl(s, t, 4.0).item()
    assert kd_loss(s, t, y, temperature=4.0, alpha=0.7).item() == pytest.approx(0.7 * soft + 0.3 * ce, rel=1e-5)
    assert kd_loss(s, t, y, temperature=4.0, alpha=0.0).item() == pytest.approx(ce, rel=1e-5)
    assert kd_loss(s, t, None, temperature=4.0, alpha=0.5).item() == pytest.approx(soft, rel=1e-6)


def test_loss_is_zero_when_student_matches_teacher():
    z = torch.tensor([[0.3, -1.0, 2.0]])
    assert soft_kl(z, z.clone(), 5.0).item() == pytest.approx(0.0, abs=1e-7)


def test_t_squared_keeps_soft_gradient_size_across_temperatures():
    """Without T^2 the soft gradient shrinks ~1/T^2; with it, the size stays of the same order."""
    torch.manual_seed(0)
    zt = torch.randn(64, 10) * 3
    norms = {}
    for t in (2.0, 8.0):
        zs = (torch.randn(64, 10) * 3).requires_grad_()
        soft_kl(zs, zt, t).backward()
        norms[t] = zs.grad.norm().item()
    # high-T limit: grad ~ (zs - zt) / (N*T^2) * T^2 -> T-independent; unscaled it would be 16x smaller
    assert 0.25 < norms[8.0] / norms[2.0] < 4.0


def test_gradient_flows_only_to_student():
    zs = torch.randn(4, 5, requires_grad=True)
    zt = torch.randn(4, 5, requires_grad=True)
    kd_loss(zs, zt.detach(), torch.tensor([0, 1, 2, 3]), 2.0, 0.5).backward()
    assert zs.grad is not None and zt.grad is None
