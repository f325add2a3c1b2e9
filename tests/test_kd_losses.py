"""The loss families against their defining properties (zero at a match, invariances, hand values)."""
import math

import pytest
import torch

from edgekd.kd import losses as L


def test_dkd_is_zero_at_a_match_and_positive_otherwise():
    torch.manual_seed(0)
    z, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    assert L.dkd_loss(z, z.clone(), y).item() == pytest.approx(0.0, abs=1e-5)
    assert L.dkd_loss(torch.randn(8, 5), z, y).item() > 0


def test_dkd_target_term_matches_binary_kl_by_hand():
    s, t, y = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([0])
    ps, pt = torch.softmax(s, -1)[0], torch.softmax(t, -1)[0]
    bs, bt = [ps[0].item(), 1 - ps[0].item()], [pt[0].item(), 1 - pt[0].item()]
    tckd = sum(a * math.log(a / b) for a, b in zip(bt, bs))
    # non-target classes of s and t are uniform: NCKD is 0, so DKD = alpha * TCKD at T = 1
    assert L.dkd_loss(s, t, y, temperature=1.0, alpha=1.0, beta=8.0).item() == pytest.approx(tckd, rel=1e-4)


def test_feature_losses_vanish_at_a_match():
    torch.manual_seed(0)
    f = torch.randn(6, 8, 4, 4)
    assert L.hint_loss(f, f.clone()).item() == 0
    assert L.at_loss(f, f.clone()).item() == pytest.approx(0, abs=1e-9)
    h = torch.randn(6, 10, 16)
    assert L.cosine_loss(h, h.clone()).item() == pytest.approx(0, abs=1e-6)
    assert L.cosine_loss(h, -h).item() == pytest.approx(2.0, rel=1e-5)


def test_attention_transfer_pools_to_the_smaller_map():
    torch.manual_seed(0)
    assert L.at_loss(torch.randn(4, 8, 8, 8), torch.randn(4, 32, 4, 4)).item() > 0


def test_rkd_is_scale_invariant_and_allows_different_widths():
    torch.manual_seed(0)
    e = torch.randn(10, 12)
    assert L.rkd_loss(e * 3.0, e).item() == pytest.approx(0.0, abs=1e-5)  # distances are mean-normalised
    s = torch.randn(10, 4, requires_grad=True)
    loss = L.rkd_loss(s, torch.randn(10, 64))
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(s.grad).all()
