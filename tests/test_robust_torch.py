"""L1, quantile and L-infinity fits of torch tensors: the same answer as NumPy (every dtype,
orientation, bound, axis and weight layout), gradients against finite differences away from
ties, the documented gradient at ties, and the objective."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import treeiso
from strategies import problems

torch = pytest.importorskip("torch")

LOSSES = [("l1", None), ("quantile", 0.3), ("quantile", 0.9), ("linf", None)]
ORIENTATIONS = ["root_largest", "root_smallest"]
DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16}


def kwargs(loss, q, orientation="root_largest", bounds=(None, None)):
    return {"loss": loss, "quantile": q, "orientation": orientation, "y_min": bounds[0],
            "y_max": bounds[1]}


@settings(max_examples=60, deadline=None)
@given(problems(max_n=20), st.sampled_from(LOSSES), st.sampled_from(ORIENTATIONS),
       st.sampled_from(list(DTYPES)), st.booleans(), st.booleans())
def test_tensor_fit_is_the_numpy_fit(problem, loss_q, orientation, dtype, bounded, shared_w):
    parent, y, w = problem
    loss, q = loss_q
    if dtype in ("float16", "bfloat16"):   # the data must be representable
        y = np.clip(y, -6e4, 6e4) if dtype == "float16" else y
        w = None if w is None else np.clip(w, 1e-4, 1e4)
    yt = torch.tensor(y).to(DTYPES[dtype])
    if shared_w and w is not None:
        w = w[0]
    wt = None if w is None else torch.tensor(w).to(DTYPES[dtype])
    bounds = (-0.5, 0.75) if bounded else (None, None)
    kw = kwargs(loss, q, orientation, bounds)
    got = treeiso.fit(yt, parent, wt, **kw, return_blocks=True)
    y_host = yt.float().numpy() if dtype == "bfloat16" else yt.numpy()
    w_host = None if wt is None else (wt.float().numpy() if dtype == "bfloat16" else wt.numpy())
    want = treeiso.fit(y_host, parent, w_host, **kw, return_blocks=True)
    assert got.x.dtype == yt.dtype
    assert np.array_equal(got.x.float().numpy() if dtype == "bfloat16" else got.x.numpy(),
                          want.x.astype(np.float32) if dtype == "bfloat16" else want.x)
    assert np.array_equal(got.blocks.numpy(), want.blocks)


@pytest.mark.parametrize("loss,q", LOSSES)
def test_axis_and_integer_values(loss, q):
    rng = np.random.default_rng(3)
    y = rng.integers(-5, 5, size=(6, 3))        # nodes along axis 0
    w = rng.uniform(0.5, 2.0, size=(6, 1))
    parent = [-1, 0, 0, 1, 1, 2]
    got = treeiso.fit(torch.tensor(y), parent, torch.tensor(w), loss=loss, quantile=q, axis=0)
    want = treeiso.fit(y, parent, w, loss=loss, quantile=q, axis=0)
    assert got.dtype == torch.float64 and np.array_equal(got.numpy(), want)


def continuous_problem(seed, n, rows=2):
    """Data in general position (no ties almost surely), on a random tree."""
    rng = np.random.default_rng(seed)
    parent = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n)])
    y = rng.normal(size=(rows, n))
    w = rng.uniform(0.5, 2.0, size=(rows, n))
    return parent, y, w


@pytest.mark.parametrize("loss,q", LOSSES)
@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("bounds", [(None, None), (-0.4, 0.5)])
@pytest.mark.parametrize("seed", range(4))
def test_gradcheck_away_from_ties(loss, q, orientation, bounds, seed):
    parent, y, w = continuous_problem(seed, n=3 + 3 * seed)
    yt = torch.tensor(y, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    kw = kwargs(loss, q, orientation, bounds)
    assert torch.autograd.gradcheck(lambda a, b: treeiso.fit(a, parent, b, **kw), (yt, wt),
                                    eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("loss,q", LOSSES)
def test_gradients_match_finite_differences_of_the_numpy_fit(loss, q):
    """The backward pass against central differences of the NumPy fit itself, on a deeper
    tree with weights shared by the rows."""
    parent, y, w = continuous_problem(11, n=40, rows=3)
    w = w[0]
    yt = torch.tensor(y, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    g = torch.tensor(np.random.default_rng(1).normal(size=y.shape))
    (treeiso.fit(yt, parent, wt, loss=loss, quantile=q) * g).sum().backward()
    h = 1e-7

    def f(yy, ww):
        return float((treeiso.fit(yy, parent, ww, loss=loss, quantile=q) * g.numpy()).sum())

    for idx in [(0, 0), (1, 7), (2, 39), (0, 20)]:
        e = np.zeros_like(y)
        e[idx] = h
        fd = (f(y + e, w) - f(y - e, w)) / (2 * h)
        assert abs(fd - yt.grad[idx].item()) < 1e-5
    for i in [0, 13, 39]:
        e = np.zeros_like(w)
        e[i] = h
        fd = (f(y, w + e) - f(y, w - e)) / (2 * h)
        assert abs(fd - wt.grad[i].item()) < 1e-5


def test_l1_gradient_selects_the_median_node_and_splits_ties():
    # chain 0 -> 1 -> 2 (root largest): 0 < 1 pools {0, 1} at its lower median 0, and node 2
    # (0.0) joins at the same value; two nodes hold 0: the gradient of sum(x) is shared.
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
    x = treeiso.fit(y, [-1, 0, 1], loss="l1")
    x.sum().backward()
    assert x.tolist() == [0.0, 0.0, 0.0]
    assert y.grad.tolist() == [1.5, 0.0, 1.5]
    # no tie: the pooled pair takes node 0's value, node 2 keeps its own
    y = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64, requires_grad=True)
    x = treeiso.fit(y, [-1, 0, 1], w, loss="l1")
    (x * torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)).sum().backward()
    assert y.grad.tolist() == [3.0, 0.0, 4.0]
    assert w.grad.tolist() == [0.0, 0.0, 0.0]


def test_a_bound_stops_the_gradient():
    y = torch.tensor([0.0, 3.0, 2.0], dtype=torch.float64, requires_grad=True)
    x = treeiso.fit(y, [-1, 0, 0], loss="l1", y_max=1.0)
    x.sum().backward()
    assert x.tolist() == [1.0, 1.0, 1.0] and y.grad.tolist() == [0.0, 0.0, 0.0]


def test_linf_gradient_by_hand():
    # chain 0 -> 1, y = (0, 4), unit weights: e = 2, both at 2 = (y0 + y1) / 2
    y = torch.tensor([0.0, 4.0], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([1.0, 3.0], dtype=torch.float64, requires_grad=True)
    x = treeiso.fit(y, [-1, 0], w, loss="linf")
    # e = w0 w1 (y1 - y0) / (w0 + w1) = 3, x = y0 + e / w0 = 3 for both nodes
    assert x.tolist() == [3.0, 3.0]
    x[0].backward()
    # x = (w0 y0 + w1 y1) / (w0 + w1): d/dy = (1/4, 3/4), d/dw0 = (y0 - x)/4, d/dw1 = (y1 - x)/4
    assert torch.allclose(y.grad, torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert torch.allclose(w.grad, torch.tensor([-0.75, 0.25], dtype=torch.float64))


def test_no_graph_without_requires_grad():
    x = treeiso.fit(torch.randn(4), [-1, 0, 0, 1], loss="l1")
    assert x.grad_fn is None and not x.requires_grad


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("loss,q", LOSSES)
def test_cuda_tensors_keep_their_device(loss, q):
    parent, y, w = continuous_problem(5, n=12)
    yt = torch.tensor(y, device="cuda", requires_grad=True)
    wt = torch.tensor(w, device="cuda")
    x = treeiso.fit(yt, parent, wt, loss=loss, quantile=q)
    assert x.device.type == "cuda"
    assert np.array_equal(x.detach().cpu().numpy(), treeiso.fit(y, parent, w, loss=loss,
                                                                quantile=q))
    x.sum().backward()
    assert yt.grad.device.type == "cuda"


def test_bad_tensor_input():
    with pytest.raises(TypeError, match="pass both as tensors"):
        treeiso.fit(torch.zeros(3), [-1, 0, 0], [1.0, 1.0, 1.0], loss="l1")
    with pytest.raises(TypeError, match="weights must be real numbers"):
        treeiso.fit(torch.zeros(2), [-1, 0], torch.ones(2, dtype=torch.bool), loss="l1")
    assert treeiso.fit(torch.tensor([0.0, 4.0]), [-1, 0], 2.0, loss="linf").tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="NaN"):
        treeiso.fit(torch.tensor([0.0, float("nan")]), [-1, 0], loss="linf")
    with pytest.raises(ValueError, match="weights must be > 0"):
        treeiso.fit(torch.zeros(2), [-1, 0], torch.tensor([1.0, -1.0]), loss="quantile",
                    quantile=0.2)


# ----------------------------------------------------------------------------- objective
def naive_objective(y, x, w, loss, q):
    """Loop over nodes, in exact rationals where it matters little: a plain restatement."""
    out = []
    for yr, xr, wr in zip(y, x, w):
        terms = []
        for yi, xi, wi in zip(yr, xr, wr):
            u = yi - xi
            if loss == "l2":
                terms.append(wi * u * u)
            elif loss in ("l1", "linf"):
                terms.append(wi * abs(u))
            else:
                terms.append(wi * u * (q if u >= 0 else q - 1))
        out.append(max(terms, default=0.0) if loss == "linf" else sum(terms))
    return np.array(out)


@pytest.mark.parametrize("loss,q", [("l2", None)] + LOSSES)
def test_objective_against_a_loop(loss, q):
    rng = np.random.default_rng(7)
    y = rng.normal(size=(3, 9))
    w = rng.uniform(0.1, 3.0, size=(3, 9))
    x = rng.normal(size=(3, 9))
    got = treeiso.objective(y, x, w, loss=loss, quantile=q)
    assert got.shape == (3,)
    assert np.allclose(got, naive_objective(y, x, w, loss, q), rtol=1e-13, atol=0)
    got_t = treeiso.objective(torch.tensor(y), torch.tensor(x), torch.tensor(w), loss=loss,
                              quantile=q)
    assert np.allclose(got_t.numpy(), got, rtol=1e-13, atol=0)
    # along another axis, unit weights
    assert np.allclose(treeiso.objective(y.T, x.T, loss=loss, quantile=q, axis=0),
                       naive_objective(y, x, np.ones_like(y), loss, q), rtol=1e-13)


@pytest.mark.parametrize("loss,q", LOSSES)
def test_objective_of_the_fit_is_the_lp_optimum(loss, q):
    parent, y, w = continuous_problem(2, n=25, rows=2)
    x = treeiso.fit(y, parent, w, loss=loss, quantile=q)
    ref = treeiso.fit(y, parent, w, loss=loss, quantile=q, backend="scipy")
    a = treeiso.objective(y, x, w, loss=loss, quantile=q)
    b = treeiso.objective(y, ref, w, loss=loss, quantile=q)
    assert np.allclose(a, b, rtol=1e-7) and (a <= b * (1 + 1e-12)).all()


def test_objective_is_differentiable_and_checked():
    y = torch.tensor([0.0, 4.0, 1.0], requires_grad=True)
    o = treeiso.objective(y, torch.full((3,), 2.0), loss="quantile", quantile=0.2)
    o.backward()
    assert o.item() == pytest.approx(2.8)
    assert y.grad.tolist() == pytest.approx([-0.8, 0.2, -0.8])
    assert float(treeiso.objective([1.0, 2.0], [1.0, 2.0], loss="linf")) == 0.0
    with pytest.raises(ValueError, match="NaN"):
        treeiso.objective([1.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        treeiso.objective([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="weights must be > 0"):
        treeiso.objective([1.0, 2.0], [1.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="loss must be one of"):
        treeiso.objective([1.0], [1.0], loss="huber")
    with pytest.raises(ValueError, match="quantile"):
        treeiso.objective([1.0], [1.0], loss="l1", quantile=0.3)
    with pytest.raises(TypeError, match="all be NumPy arrays or all"):
        treeiso.objective(torch.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="broadcast"):
        treeiso.objective([1.0, 2.0], [1.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="broadcast"):
        treeiso.objective(torch.ones(2), torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        treeiso.objective(torch.ones(2), torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="weights must be > 0"):
        treeiso.objective(torch.ones(2), torch.ones(2), torch.tensor([1.0, 0.0]))
    with pytest.raises(TypeError, match="real"):
        treeiso.objective(torch.ones(2), torch.ones(2), torch.ones(2, dtype=torch.complex64))


def test_objective_weights_follow_the_nodes_axis():
    rng = np.random.default_rng(8)
    y, x, w = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.uniform(0.5, 2, (5, 1))
    for loss, q in [("l2", None)] + LOSSES:
        want = naive_objective(y.T, x.T, np.broadcast_to(w, y.shape).T, loss, q)
        got = treeiso.objective(y, x, w, loss=loss, quantile=q, axis=0)
        got_t = treeiso.objective(torch.tensor(y), torch.tensor(x), torch.tensor(w), loss=loss,
                                  quantile=q, axis=0)
        assert np.allclose(got, want, rtol=1e-13) and np.allclose(got_t.numpy(), want,
                                                                  rtol=1e-13)
