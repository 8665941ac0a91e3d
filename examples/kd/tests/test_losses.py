"""Losses on hand-computed cases; KD-i targets certified optimal; KD-p penalty zero iff ordered."""

import math

import pytest
import torch
import torch.nn.functional as F

import treeiso
from examples.kd.losses import KDAugLoss, KDILoss, KDLoss, KDPLoss
from examples.kd.methods import build_loss
from treeiso.distill import isotonic_targets, kd_divergence, soft_cross_entropy
from treeiso.distill import order_penalty as _order_penalty


def order_penalty(z, labels):
    return _order_penalty(z, labels, on="logits")

from ._topk_ref import fit_topk_ref, row_tree


def test_kd_hand_computed():
    # student logits [0, 0], teacher [log 3, 0] at tau = 1: q = [3/4, 1/4], p = [1/2, 1/2]
    s = torch.zeros(1, 2)
    t = torch.tensor([[math.log(3.0), 0.0]])
    y = torch.tensor([0])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    ce = math.log(2.0)
    loss, _ = KDLoss(alpha=0.3, tau=1.0)(s, t, y, y, torch.ones(1), torch.tensor([[0, -1]]))
    assert float(loss) == pytest.approx(0.3 * kl + 0.7 * ce, rel=1e-6)
    # tau^2 scaling: with tau = 2 the KL is taken between softened distributions, times 4
    q = F.softmax(t / 2, 1)[0]
    kl2 = float((q * (q / 0.5).log()).sum())
    loss2, _ = KDLoss(alpha=1.0, tau=2.0)(s, t, y, y, torch.ones(1), torch.tensor([[0, -1]]))
    assert float(loss2) == pytest.approx(4 * kl2, rel=1e-6)


def test_kd_divergence_zero_at_match_and_mixed_ce():
    s = torch.randn(5, 7)
    assert float(kd_divergence(s, F.softmax(s / 3, 1), 3.0)) == pytest.approx(0.0, abs=1e-6)
    ya, yb = torch.tensor([1]), torch.tensor([4])
    s1 = torch.randn(1, 7)
    logp = F.log_softmax(s1, 1)[0]
    want = -(0.3 * logp[1] + 0.7 * logp[4])
    assert float(soft_cross_entropy(s1, (ya, yb, torch.tensor([0.3])))) == pytest.approx(float(want), rel=1e-6)


def test_kd_aug_is_kd_on_mixed_labels():
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    ya, yb, lam = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 4, 3, 2]), torch.full((4,), 0.6)
    lab = torch.stack([ya, yb], 1)
    a, _ = KDLoss(0.9, 4.0)(s, t, ya, yb, lam, lab)
    b, _ = KDAugLoss(0.9, 4.0)(s, t, ya, yb, lam, lab)
    assert torch.equal(a, b)


@pytest.mark.parametrize("on", ["logits", "probs"])
def test_kdi_targets_are_certified_projections(on):
    torch.manual_seed(0)
    c = 12
    t = torch.randn(16, c, dtype=torch.float64) * 3
    labels = torch.stack([torch.randint(0, c, (16,)), torch.randint(0, c, (16,))], 1)
    labels[:3, 1] = -1                      # one class (same-class pair)
    labels[3:5, 1] = labels[3:5, 0]         # duplicate counts once
    tau = 2.0
    q = isotonic_targets(t, labels, tau=tau, on=on)
    assert torch.allclose(q.sum(1), torch.ones(16, dtype=q.dtype))
    base = t if on == "logits" else F.softmax(t / tau, 1)
    sol = treeiso.fit_topk(base, labels)
    for i in range(16):
        cert = treeiso.certify(base[i].numpy(), row_tree(c, labels[i].tolist()), sol[i].numpy())
        assert cert.optimal, (i, cert)
    # the calibrated soft labels respect the order (penalty exactly 0 up to rounding)
    assert float(order_penalty(q, labels).max()) <= 1e-12


def test_kdi_no_double_softmax_and_fraction():
    torch.manual_seed(1)
    s, t = torch.randn(8, 10), torch.randn(8, 10)
    ya, yb, lam = torch.arange(8), (torch.arange(8) + 3) % 10, torch.full((8,), 0.7)
    lab = torch.stack([ya, yb], 1)
    tau, beta = 3.0, 2.0
    loss, st = KDILoss(0.9, tau, beta)(s, t, ya, yb, lam, lab)
    base, _ = KDAugLoss(0.9, tau)(s, t, ya, yb, lam, lab)
    m = treeiso.fit_topk(t, lab)
    q = F.softmax(m / tau, 1)
    extra = tau ** 2 * (q * (q.log() - F.log_softmax(s / tau, 1))).sum(1).mean()
    assert float(loss) == pytest.approx(float(base + beta * extra), rel=1e-5)
    # calibrated_fraction = 0: the extra term distils towards the raw teacher
    loss0, _ = KDILoss(0.9, tau, beta, calibrated_fraction=0.0)(s, t, ya, yb, lam, lab,
                                                                 torch.Generator().manual_seed(0))
    raw = F.softmax(t / tau, 1)
    extra0 = tau ** 2 * (raw * (raw.log() - F.log_softmax(s / tau, 1))).sum(1).mean()
    assert float(loss0) == pytest.approx(float(base + beta * extra0), rel=1e-5)
    assert 0 <= float(st["violation"]) <= 1


def test_gradients_reach_student_only():
    s = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5, requires_grad=True)
    ya, yb = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 1, 3, 4])
    lab = torch.tensor([[0, 1], [1, -1], [2, 3], [3, 4]])
    for loss_fn in (KDLoss(), KDILoss(), KDPLoss(), KDPLoss(penalty_on="logits")):
        loss, _ = loss_fn(s, t, ya, yb, torch.full((4,), 0.8), lab)
        loss.backward()
        assert s.grad is not None and t.grad is None
        s.grad = None


@pytest.mark.parametrize("z, labels, want", [
    ([3.0, 2.0, 1.0, 0.0], [0, 1], 0.0),       # order holds
    ([2.0, 2.0, 2.0, 0.0], [0, 1], 0.0),       # ties allowed
    ([1.0, 2.0, 0.0, 0.0], [0, 1], 1.0),       # z2 > z1
    ([3.0, 1.0, 2.0, 0.0], [0, 1], 1.0),       # another class above min(z1, z2)
    ([1.0, 3.0, 2.0, 0.0], [0, 1], 2.0 + 1.0),  # both
    ([1.0, 3.0, 0.0, 0.0], [0, -1], 2.0),      # one class: max other - z1
    ([3.0, 1.0, 0.0, 0.0], [0, -1], 0.0),
])
def test_order_penalty_cases(z, labels, want):
    got = order_penalty(torch.tensor([z]), torch.tensor([labels]))
    assert float(got[0]) == pytest.approx(want)


def test_order_penalty_zero_exactly_when_order_holds():
    g = torch.Generator().manual_seed(3)
    z = torch.randint(0, 4, (2000, 5), generator=g).double()   # many ties
    lab = torch.randint(0, 5, (2000, 2), generator=g)
    lab[lab[:, 0] == lab[:, 1], 1] = -1
    pen = order_penalty(z, lab)
    for i in range(2000):
        l0, l1 = int(lab[i, 0]), int(lab[i, 1])
        rest = [j for j in range(5) if j != l0 and j != l1]
        if l1 >= 0:
            holds = z[i, l0] >= z[i, l1] and all(z[i, l1] >= z[i, j] for j in rest)
        else:
            holds = all(z[i, l0] >= z[i, j] for j in rest)
        assert (float(pen[i]) == 0.0) == holds


def test_kdp_penalty_on_probs_and_logits():
    s = torch.tensor([[0.0, 2.0, 0.0]])
    t = torch.zeros(1, 3)
    y = torch.tensor([0])
    lab = torch.tensor([[0, -1]])
    base, _ = KDAugLoss(0.5, 1.0)(s, t, y, y, torch.ones(1), lab)
    lp, _ = KDPLoss(0.5, 1.0, sigma=2.0, penalty_on="logits")(s, t, y, y, torch.ones(1), lab)
    assert float(lp - base) == pytest.approx(2.0 * 2.0)
    pp, _ = KDPLoss(0.5, 1.0, sigma=2.0, penalty_on="probs")(s, t, y, y, torch.ones(1), lab)
    p = F.softmax(s, 1)[0]
    assert float(pp - base) == pytest.approx(2.0 * float(p[1] - p[0]), rel=1e-5)


@pytest.mark.parametrize("method, kwargs, err", [
    ("nope", {}, "unknown method"),
    ("kd-i", {"calibrated_fraction": 1.5}, "calibrated_fraction"),
    ("kd-p", {"penalty_on": "x"}, "penalty_on"),
])
def test_build_loss_errors(method, kwargs, err):
    with pytest.raises(ValueError, match=err):
        build_loss(method, kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fit_topk_matches_per_row_reference(dtype):
    """The batched projection KD-i uses equals one tree fit per row (teacher-like logits)."""
    g = torch.Generator().manual_seed(4)
    t = (torch.randn(64, 100, generator=g) * 4).to(dtype)
    lab = torch.stack([torch.randint(0, 100, (64,), generator=g), torch.randint(0, 100, (64,), generator=g)], 1)
    lab[:8, 1] = -1
    got = treeiso.fit_topk(t, lab)
    assert got.dtype == dtype and got.shape == t.shape
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(got, fit_topk_ref(t, lab), rtol=tol, atol=tol)
