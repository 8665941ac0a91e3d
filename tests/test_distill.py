"""treeiso.distill against references written here: the projection by enumerating the
order's upper and lower sets, the losses per sample in NumPy float64."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from treeiso import distill  # noqa: E402


# --------------------------------------------------------------------- references
def project_by_enumeration(y, order):
    """Least-squares projection of ``y`` onto ``x[o0] >= x[o1] >= ... >= every other``, by
    the max-min formula over upper and lower sets (exact; small ``len(y)`` only)."""
    c = len(y)
    order = [int(o) for o in order if o >= 0]
    above = {j: set(order) for j in range(c)}  # the nodes that must be >= j
    for i, o in enumerate(order):
        above[o] = set(order[:i])
    subsets = [frozenset(s) for r in range(1, c + 1) for s in itertools.combinations(range(c), r)]
    upper = [s for s in subsets if all(above[j] <= s for j in s)]
    lower = [s for s in subsets if all(k in s for j in s for k in range(c) if j in above[k])]
    return np.array([max(min(np.mean(y[list(u & lo)]) for lo in lower if i in lo and u & lo)
                         for u in upper if i in u) for i in range(c)])


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def kl(q, p):
    return float(np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1) / p), 0.0)))


def penalty(z, order):
    order = [int(o) for o in order if o >= 0]
    if not order:
        return 0.0
    chain = sum(max(0.0, z[b] - z[a]) for a, b in zip(order, order[1:]))
    rest = [z[j] for j in range(len(z)) if j not in order]
    return chain + (max(0.0, max(rest) - min(z[o] for o in order)) if rest else 0.0)


def reference_losses(s, t, ya, yb, lam, alpha, tau, beta, sigma, on_iso, on_pen):
    """Per-sample NumPy float64: KD-aug, KD-i and KD-p totals, averaged."""
    out = {"kd": [], "kd-i": [], "kd-p": []}
    for b in range(s.shape[0]):
        order = [ya[b], yb[b]] if lam[b] >= 0.5 else [yb[b], ya[b]]
        if ya[b] == yb[b] or lam[b] in (0.0, 1.0):
            order = [order[0], -1]
        p = softmax(s[b] / tau)
        logp1 = np.log(softmax(s[b]))
        ce = -(lam[b] * logp1[ya[b]] + (1 - lam[b]) * logp1[yb[b]])
        base = alpha * tau**2 * kl(softmax(t[b] / tau), p) + (1 - alpha) * ce
        if on_iso == "logits":
            q = softmax(project_by_enumeration(t[b], order) / tau)
        else:
            q = np.clip(project_by_enumeration(softmax(t[b] / tau), order), 0, None)
            q = q / q.sum()
        out["kd"].append(base)
        out["kd-i"].append(base + beta * tau**2 * kl(q, p))
        z = softmax(s[b]) if on_pen == "probs" else s[b]
        out["kd-p"].append(base + sigma * penalty(z, order))
    return {k: float(np.mean(v)) for k, v in out.items()}


def batch(rng, b=6, c=5, dtype=torch.float64):
    s = torch.tensor(rng.normal(size=(b, c)) * 2, dtype=dtype)
    t = torch.tensor(rng.normal(size=(b, c)) * 3, dtype=dtype)
    ya = torch.tensor(rng.integers(0, c, size=b))
    yb = torch.tensor(rng.integers(0, c, size=b))
    lam = torch.tensor(rng.uniform(size=b))
    yb[0] = ya[0]      # same class twice
    lam[1] = 1.0       # unmixed
    return s, t, ya, yb, lam


# --------------------------------------------------------------------- golden values
@pytest.mark.parametrize("on_iso,on_pen", [("logits", "probs"), ("probs", "logits")])
def test_losses_match_a_per_sample_reference(on_iso, on_pen):
    rng = np.random.default_rng(0)
    for c in (3, 4, 5):
        s, t, ya, yb, lam = batch(rng, c=c)
        kw = {"alpha": 0.9, "tau": 2.5}
        want = reference_losses(s.numpy(), t.numpy(), ya.numpy(), yb.numpy(), lam.numpy(),
                                beta=3.0, sigma=2.0, on_iso=on_iso, on_pen=on_pen, **kw)
        tg = (ya, yb, lam)
        got = {"kd": distill.MixedKDLoss(**kw)(s, t, tg)[0],
               "kd-i": distill.IsotonicKDLoss(beta=3.0, on=on_iso, **kw)(s, t, tg)[0],
               "kd-p": distill.OrderPenaltyKDLoss(sigma=2.0, on=on_pen, **kw)(s, t, tg)[0]}
        for name in want:
            assert float(got[name]) == pytest.approx(want[name], rel=1e-10, abs=1e-12), name


def test_isotonic_targets_are_the_projection():
    rng = np.random.default_rng(1)
    for _ in range(30):
        c = int(rng.integers(3, 6))
        t = rng.normal(size=(1, c)) * 3
        k = int(rng.integers(1, c + 1))
        order = list(rng.choice(c, size=k, replace=False)) + [-1]
        q = distill.isotonic_targets(torch.tensor(t), torch.tensor([order]), tau=2.0)
        want = softmax(project_by_enumeration(t[0], order) / 2.0)
        np.testing.assert_allclose(q[0].numpy(), want, rtol=1e-12, atol=1e-15)
        assert float(distill.order_penalty(q, torch.tensor([order]), on="logits")[0]) == 0.0


def test_order_penalty_cases():
    z = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    for order, want in (([0, 1], 0.0), ([1, 0], 1.0 + 0.0), ([2, -1], 2.0), ([3, 2], 1 + 3.0),
                        ([0, 1, 2], 0.0), ([2, 1, 0], 1 + 1 + 0.0), ([-1, -1], 0.0)):
        got = distill.order_penalty(z, torch.tensor([order]), on="logits")
        assert float(got[0]) == pytest.approx(want)
        assert float(got[0]) == pytest.approx(penalty(z[0].numpy(), order))


# --------------------------------------------------------------------- gradients
@pytest.mark.parametrize("loss", [distill.KDLoss(0.9, 2.0), distill.IsotonicKDLoss(0.9, 2.0),
                                  distill.IsotonicKDLoss(0.9, 2.0, on="probs"),
                                  distill.OrderPenaltyKDLoss(0.9, 2.0),
                                  distill.OrderPenaltyKDLoss(0.9, 2.0, on="logits")])
def test_gradcheck(loss):
    rng = np.random.default_rng(2)
    s, t, ya, yb, lam = batch(rng, b=4, c=5)
    s.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss(x, t, (ya, yb, lam))[0], (s,))
    # The teacher gets no gradient.
    t2 = t.clone().requires_grad_(True)
    total, _ = loss(s, t2, (ya, yb, lam))
    total.backward()
    assert t2.grad is None or float(t2.grad.abs().max()) == 0.0


# --------------------------------------------------------------------- target forms
def test_soft_target_matrix_equals_the_tuple():
    rng = np.random.default_rng(3)
    s, t, ya, yb, lam = batch(rng, b=8, c=6)
    lam = torch.where(lam == 0.5, torch.tensor(0.4, dtype=lam.dtype), lam)
    q = (lam[:, None] * F.one_hot(ya, 6) + (1 - lam[:, None]) * F.one_hot(yb, 6)).double()
    assert torch.equal(distill.label_order(q), distill.label_order((ya, yb, lam)))
    for loss in (distill.MixedKDLoss(), distill.IsotonicKDLoss(), distill.OrderPenaltyKDLoss()):
        a, pa = loss(s, t, (ya, yb, lam))
        b, pb = loss(s, t, q)
        assert float(a) == pytest.approx(float(b), rel=1e-12)
        assert set(pa) == set(pb)


def test_label_order_from_matrices():
    # label smoothing (0.1) on a 0.7/0.3 mix, a tie, a smoothed single label, a 4-way mosaic
    c = 6
    smooth = 0.1 / c
    mix = torch.full((1, c), smooth)
    mix[0, 4] += 0.9 * 0.7
    mix[0, 1] += 0.9 * 0.3
    tie = torch.zeros(1, c)
    tie[0, 3] = tie[0, 2] = 0.5
    single = torch.full((1, c), smooth)
    single[0, 5] += 0.9
    mosaic = torch.zeros(1, c)
    mosaic[0, [0, 2, 3, 5]] = torch.tensor([0.1, 0.4, 0.2, 0.3])
    q = torch.cat([mix, tie, single, mosaic])
    assert distill.label_order(q).tolist() == [[4, 1], [2, 3], [5, -1], [2, 5]]
    assert distill.label_order(q, k=4).tolist() == [[4, 1, -1, -1], [2, 3, -1, -1],
                                                     [5, -1, -1, -1], [2, 5, 3, 0]]
    # k-way broom: the targets follow the 4-label order
    t = torch.randn(4, c, dtype=torch.float64)
    order = distill.label_order(q, k=4)
    qi = distill.isotonic_targets(t, order, tau=1.0)
    assert float(distill.order_penalty(qi, order, on="logits").max()) == 0.0
    np.testing.assert_allclose(
        qi[3].numpy(), softmax(project_by_enumeration(t[3].numpy(), [2, 5, 3, 0])),
        rtol=1e-12)
    # hard labels
    assert distill.label_order(torch.tensor([2, 0])).tolist() == [[2, -1], [0, -1]]


# --------------------------------------------------------------------- precision, compile
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_logits(dtype):
    rng = np.random.default_rng(4)
    s, t, ya, yb, lam = batch(rng, b=8, c=10, dtype=torch.float32)
    for loss in (distill.KDLoss(), distill.MixedKDLoss(), distill.IsotonicKDLoss(),
                 distill.IsotonicKDLoss(on="probs", calibrated_fraction=0.5),
                 distill.OrderPenaltyKDLoss(), distill.OrderPenaltyKDLoss(on="logits")):
        ref, _ = loss(s, t, (ya, yb, lam), generator=torch.Generator().manual_seed(0)) \
            if isinstance(loss, distill.IsotonicKDLoss) else loss(s, t, (ya, yb, lam))
        sl = s.to(dtype).requires_grad_(True)
        kw = ({"generator": torch.Generator().manual_seed(0)}
              if isinstance(loss, distill.IsotonicKDLoss) else {})
        with torch.autocast("cpu", dtype=dtype):
            total, parts = loss(sl, t.to(dtype), (ya, yb, lam), **kw)
        assert total.dtype == torch.float32
        total.backward()
        assert sl.grad.dtype == dtype and bool(torch.isfinite(sl.grad.float()).all())
        assert float(total.detach()) == pytest.approx(float(ref), rel=0.05)


def test_isotonic_targets_in_float32_from_half_logits():
    t = torch.randn(4, 7).to(torch.bfloat16)
    order = torch.tensor([[0, 1], [2, -1], [3, 4], [6, 5]])
    q = distill.isotonic_targets(t, order, tau=4.0)
    assert q.dtype == torch.float32
    torch.testing.assert_close(q, distill.isotonic_targets(t.float(), order, tau=4.0))


def test_compiles_without_graph_breaks():
    rng = np.random.default_rng(5)
    s, t, ya, yb, lam = batch(rng, b=8, c=10, dtype=torch.float32)
    order = distill.label_order((ya, yb, lam))
    for loss in (distill.IsotonicKDLoss(check=False), distill.OrderPenaltyKDLoss(check=False)):
        def step(s_, t_):
            return loss(s_, t_, (ya, yb, lam), order=order)[0]

        compiled = torch.compile(step, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(s, t), step(s, t))


def test_no_state_between_calls():
    loss = distill.IsotonicKDLoss()
    assert not list(loss.parameters()) and not list(loss.buffers())
    rng = np.random.default_rng(6)
    s, t, ya, yb, lam = batch(rng)
    assert torch.equal(loss(s, t, (ya, yb, lam))[0], loss(s, t, (ya, yb, lam))[0])


# --------------------------------------------------------------------- bad input
def test_bad_input_is_a_clear_error():
    s = torch.randn(3, 4)
    ya, yb, lam = torch.tensor([0, 1, 2]), torch.tensor([1, 1, 3]), torch.tensor([0.7, 1, 0.2])
    loss = distill.IsotonicKDLoss()
    with pytest.raises(ValueError, match="one shape"):
        loss(s, torch.randn(3, 5), (ya, yb, lam))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        loss(s, s, (ya, torch.tensor([1, 1, 4]), lam))
    with pytest.raises(ValueError, match="lam must be in"):
        loss(s, s, (ya, yb, torch.tensor([0.7, 1.5, 0.2])))
    with pytest.raises(ValueError, match="distributions"):
        loss(s, s, torch.full((3, 4), 0.3))
    with pytest.raises(ValueError, match="non-negative"):
        loss(s, s, torch.tensor([[1.5, -0.5, 0, 0]] * 3))
    with pytest.raises(ValueError, match="NaN"):
        loss(s, torch.full((3, 4), float("nan")), (ya, yb, lam))
    with pytest.raises(ValueError, match="samples"):
        loss(s, s, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer class labels"):
        loss(s, s, (ya.float(), yb, lam))
    with pytest.raises(ValueError, match="tau must be > 0"):
        distill.KDLoss(tau=0)
    with pytest.raises(ValueError, match="calibrated_fraction"):
        distill.IsotonicKDLoss(calibrated_fraction=2)
    with pytest.raises(ValueError, match="on must be"):
        distill.OrderPenaltyKDLoss(on="prob")
    with pytest.raises(ValueError, match="k must be"):
        distill.label_order(torch.full((1, 4), 0.25), k=0)


# --------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp", [None, torch.bfloat16, torch.float16])
def test_cuda_losses_equal_the_cpu_ones(amp):
    """Every loss on CUDA (plain and under CUDA autocast) against the float32 CPU loss, with
    tuple and soft-target-matrix targets; the soft labels stay on the logits' device."""
    rng = np.random.default_rng(7)
    s, t, ya, yb, lam = batch(rng, b=16, c=12, dtype=torch.float32)
    q = lam[:, None] * F.one_hot(ya, 12) + (1 - lam[:, None]) * F.one_hot(yb, 12)
    dev = "cuda"
    for loss in (distill.KDLoss(), distill.IsotonicKDLoss(), distill.IsotonicKDLoss(on="probs"),
                 distill.OrderPenaltyKDLoss(), distill.OrderPenaltyKDLoss(on="logits")):
        for targets in ((ya, yb, lam), q.float()):
            ref, _ = loss(s, t, targets)
            moved = tuple(v.to(dev) for v in targets) if isinstance(targets, tuple) else targets.to(dev)
            sd = s.to(dev).requires_grad_(True)
            with torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
                total, parts = loss(sd, t.to(dev), moved)
            total.backward()
            assert total.device.type == "cuda" and total.dtype == torch.float32
            assert bool(torch.isfinite(sd.grad).all())
            assert float(total.detach()) == pytest.approx(float(ref), rel=1e-4 if amp is None else 0.05)
    order = distill.label_order((ya.to(dev), yb.to(dev), lam.to(dev)))
    assert order.device.type == "cuda"
    assert distill.isotonic_targets(t.to(dev), order, tau=4.5).device.type == "cuda"
