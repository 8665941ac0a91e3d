"""The options users of isotonic regression expect: bounds, axis, threads, check_finite,
and half-precision tensors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import treeiso
from strategies import MODERATE_WEIGHT_KINDS, make_parent, problems
from treeiso._backends import numba_runner as _numba_backend


def random_tree(n, seed=0):
    return treeiso.Tree(make_parent("recursive", n, np.random.default_rng(seed)))


# ----------------------------------------------------------------------------- bounds
def test_bounds_are_validated():
    y, p = [0.0, 1.0, 10.0], [-1, 0, 0]
    with pytest.raises(ValueError, match="y_min must be <= y_max"):
        treeiso.fit(y, p, y_min=2, y_max=1)
    with pytest.raises(ValueError, match="y_max must be a finite number"):
        treeiso.fit(y, p, y_max=np.nan)
    with pytest.raises(TypeError, match="y_min must be None or a real number"):
        treeiso.fit(y, p, y_min=[0.0, 1.0])
    with pytest.raises(TypeError, match="y_min must be None or a real number"):
        treeiso.fit_topk(y, [0], y_min="0")


def test_bounds_known_answer_and_blocks():
    res = treeiso.fit([0.0, 1.0, 10.0], [-1, 0, 0], y_max=4.0, y_min=2.0, return_blocks=True)
    np.testing.assert_array_equal(res.x, [4.0, 2.0, 4.0])
    np.testing.assert_array_equal(res.blocks, [0, 1, 0])  # the unbounded fit's blocks
    x = treeiso.fit_topk([[1.0, 3.0, 0.0, 2.0]], [[0, 2]], y_min=1.6)
    np.testing.assert_allclose(x, [[1.6, 1.6, 1.6, 1.6]])  # unbounded: all 1.5


def test_bounds_scipy_reference_is_not_a_clip():
    # The reference solves the bounded problem (least-distance program); check it on a case
    # where the answer is known by hand: y = (3, 0) on root -> child with y_min = 1: the
    # child is held at 1, the root stays 3.
    x = treeiso.fit([3.0, 0.0], [-1, 0], y_min=1.0, backend="scipy")
    np.testing.assert_allclose(x, [3.0, 1.0], atol=1e-10)
    x = treeiso.fit([0.0, 3.0], [-1, 0], y_max=1.0, backend="scipy")  # pooled at 1.5 -> 1
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-10)


# ----------------------------------------------------------------------------- axis
@pytest.mark.parametrize("axis", [0, 1, -2])
def test_axis(axis):
    rng = np.random.default_rng(1)
    tree = random_tree(7)
    y = rng.normal(size=(3, 7, 2)) if axis != 0 else rng.normal(size=(7, 3, 2))
    if axis in (1, -2):
        w = np.exp(rng.normal(size=(7, 1)))
        ref = np.moveaxis(treeiso.fit(np.moveaxis(y, 1, -1), tree,
                                      np.moveaxis(np.broadcast_to(w, y.shape), 1, -1)), -1, 1)
    else:
        w = np.exp(rng.normal(size=(7, 3, 2)))
        ref = np.moveaxis(treeiso.fit(np.moveaxis(y, 0, -1), tree, np.moveaxis(w, 0, -1)),
                          -1, 0)
    res = treeiso.fit(y, tree, w, axis=axis, return_blocks=True)
    np.testing.assert_array_equal(res.x, ref)
    assert res.blocks.shape == y.shape
    with pytest.raises(ValueError, match="axis 3 is out of bounds"):
        treeiso.fit(y, tree, axis=3)
    with pytest.raises(TypeError, match="axis must be an integer"):
        treeiso.fit_topk(y, [0], axis=-1.0)


def test_topk_axis():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(5, 4))      # classes along axis 0, 4 rows
    lab = np.array([[0, 2], [1, 1], [4, 3], [2, -1]])
    ref = treeiso.fit_topk(y.T, lab).T
    np.testing.assert_array_equal(treeiso.fit_topk(y, lab, axis=0), ref)


# ----------------------------------------------------------------------------- threads
@pytest.mark.parametrize("wkind", ["none", "shared", "rows"])
@pytest.mark.parametrize("shape", ["chain", "broom", "recursive"])
def test_threads_give_identical_answers(shape, wkind, monkeypatch):
    rng = np.random.default_rng(3)
    n, rows = 60, 7
    tree = treeiso.Tree(make_parent(shape, n, rng))
    y = rng.normal(size=(rows, n))
    w = {"none": None, "shared": np.exp(rng.normal(size=n)),
         "rows": np.exp(rng.normal(size=(rows, n)))}[wkind]
    one = treeiso.fit(y, tree, w, threads=1, return_blocks=True)
    calls = []
    run_rows = _numba_backend.run_rows
    monkeypatch.setattr(_numba_backend, "run_rows",
                        lambda *a: calls.append(a[-1]) or run_rows(*a))
    for t in (2, 3, 16):
        res = treeiso.fit(y, tree, w, threads=t, return_blocks=True)
        np.testing.assert_array_equal(res.x, one.x)
        np.testing.assert_array_equal(res.blocks, one.blocks)
    assert calls == [2, 3, 7]  # capped by the rows


def test_topk_threads_identical_and_labels_per_row():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(9, 30)).astype(np.float32)
    lab = np.stack([rng.permutation(30)[:3] for _ in range(9)])
    ref = treeiso.fit_topk(y, lab, threads=1)
    for t in (2, 4):
        np.testing.assert_array_equal(treeiso.fit_topk(y, lab, threads=t), ref)
    y[5, 7] = np.nan
    with pytest.raises(ValueError, match=r"NaN value at index \(5, 7\)"):
        treeiso.fit_topk(y, lab, threads=2)


def test_threads_default_and_validation():
    assert _numba_backend.n_threads(None, 1, 10**7) == 1           # one row
    assert _numba_backend.n_threads(None, 64, 10, default=8) == 1   # too little work
    assert _numba_backend.n_threads(None, 64, 10**5, default=2) == 2
    assert _numba_backend.n_threads(5, 3, 10) == 3
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # a training loop's setting is respected
        assert _numba_backend.n_threads(None, 64, 10**5) == 1
    finally:
        torch.set_num_threads(before)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be None or a positive integer"):
            treeiso.fit([1.0, 2.0], [-1, 0], threads=bad)


# ----------------------------------------------------------------------------- check_finite
def test_check_finite_false_skips_the_scans(monkeypatch):
    from treeiso import _validation

    def boom(*a):
        raise AssertionError("scanned")

    y = np.random.default_rng(5).normal(size=(4, 50))
    ref = treeiso.fit(y, random_tree(50), np.ones(50))
    monkeypatch.setattr(_validation, "finite_abs_max", boom)
    x = treeiso.fit(y, random_tree(50), np.ones(50), check_finite=False)
    np.testing.assert_array_equal(x, ref)
    with pytest.raises(AssertionError, match="scanned"):
        treeiso.fit(y, random_tree(50), np.ones(50))


def test_check_finite_true_names_the_entry():
    y = np.zeros((3, 4))
    y[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"infinite value at index \(2, 1\)"):
        treeiso.fit(y, [-1, 0, 1, 2])
    with pytest.raises(ValueError, match="weights must be > 0"):
        treeiso.fit(np.zeros(3), [-1, 0, 0], [1.0, 0.0, 1.0])


# ----------------------------------------------------------------------------- torch
def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", ["chain", "broom", "general", "topk"])
def test_half_precision_against_float32(dtype, case):
    torch = _torch()
    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(6)
    n = 40
    y = (torch.randn(3, n, generator=g) * 4).to(dt).requires_grad_()
    w = (torch.rand(n, generator=g) + 0.5).to(dt).requires_grad_()
    tree = {"chain": treeiso.Tree.chain(n), "broom": treeiso.Tree.broom(n, [3, 1]),
            "general": random_tree(n)}.get(case)
    lab = torch.tensor([[0, 5], [2, 2], [7, -1]])

    def f(y, w):
        if case == "topk":
            return treeiso.fit_topk(y, lab, w, y_max=3.0)
        return treeiso.fit(y, tree, w, y_max=3.0)

    x = f(y, w)
    assert x.dtype == dt and x.shape == y.shape
    y32, w32 = y.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    x32 = f(y32, w32)
    eps = torch.finfo(dt).eps
    torch.testing.assert_close(x.float(), x32.to(dt).float(), rtol=0, atol=4 * eps * 8)
    probe = torch.linspace(-1, 1, n)
    gy, gw = torch.autograd.grad((x.float() * probe).sum(), (y, w))
    gy32, gw32 = torch.autograd.grad((x32 * probe).sum(), (y32, w32))
    assert gy.dtype == dt and gw.dtype == dt
    torch.testing.assert_close(gy.float(), gy32.to(dt).float(), rtol=8 * eps, atol=8 * eps)
    torch.testing.assert_close(gw.float(), gw32.to(dt).float(), rtol=8 * eps,
                               atol=8 * eps * float(gw32.abs().max()) + 8 * eps)


def test_torch_bounds_gradient_and_check_finite():
    torch = _torch()
    y = torch.tensor([[0.0, 1.0, 10.0]], dtype=torch.float64, requires_grad=True)
    x = treeiso.fit(y, [-1, 0, 0], y_max=4.0)
    torch.testing.assert_close(x.detach(), torch.tensor([[4.0, 1.0, 4.0]], dtype=torch.float64))
    (g,) = torch.autograd.grad(x.sum(), y)
    torch.testing.assert_close(g, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
    bad = torch.tensor([1.0, float("nan")])
    with pytest.raises(ValueError, match="NaN"):
        treeiso.fit(bad, [-1, 0])
    treeiso.fit(bad, [-1, 0], check_finite=False)  # no scan, no error (result undefined)
    with pytest.raises(ValueError, match="NaN"):
        treeiso.fit_topk(bad, torch.tensor([0]))
    treeiso.fit_topk(bad, torch.tensor([0]), check_finite=False)


def test_torch_axis_and_threads():
    torch = _torch()
    rng = np.random.default_rng(7)
    tree = random_tree(9)
    y = rng.normal(size=(9, 4))
    ref = treeiso.fit(y, tree, axis=0)
    for t in (None, 1, 3):
        out = treeiso.fit(torch.tensor(y), tree, axis=0, threads=t, return_blocks=True)
        np.testing.assert_allclose(out.x.numpy(), ref, rtol=1e-12, atol=1e-12)
        assert out.blocks.shape == (9, 4)
    lab = torch.tensor([[1, 2], [0, 0], [3, 4], [8, 7]])
    np.testing.assert_allclose(
        treeiso.fit_topk(torch.tensor(y), lab, axis=0, threads=2).numpy(),
        treeiso.fit_topk(y, lab.numpy(), axis=0), rtol=1e-12, atol=1e-12)


@given(problems(max_n=40, max_rows=2, weight_kinds=MODERATE_WEIGHT_KINDS),
       st.sampled_from(["root_largest", "root_smallest"]), st.floats(-1.2, 1.2),
       st.floats(0.0, 1.5))
@settings(max_examples=60)
def test_bounds_against_the_scipy_reference(problem, orientation, lo, width):
    # The reference solves the bounded problem (a least-distance program, no clipping).
    parent, y, w = problem
    s = max(np.abs(y).max(), 1e-300)
    y_min, y_max = lo * s, (lo + width) * s
    kw = dict(orientation=orientation, y_min=y_min, y_max=y_max)
    ref = treeiso.fit(y, parent, w, backend="scipy", **kw)
    for method in ("auto", "irt-leftist"):
        x = treeiso.fit(y, parent, w, method=method, **kw)
        np.testing.assert_allclose(x, ref, rtol=0, atol=1e-7 * s)
    assert (x >= y_min).all() and (x <= y_max).all()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_threads_after_fork():
    # A forked child (a DataLoader worker) must not wait on the parent's pool threads.
    import multiprocessing as mp

    y = np.random.default_rng(8).normal(size=(8, 100))
    tree = random_tree(100)
    ref = treeiso.fit(y, tree, threads=2)  # the parent's pool exists now
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        out = pool.apply_async(_fit_two_threads, (y, tree.parent)).get(timeout=60)
    np.testing.assert_array_equal(out, ref)


def _fit_two_threads(y, parent):
    return treeiso.fit(y, parent, threads=2)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("threads", [None, 1, 2])
def test_chain_scan_and_fit_paths(threads, fused, monkeypatch):
    # Small chains are scanned in the same compiled call as the fit, which fits only data
    # that needs no scaling; every other case (larger rows, threads, scaling, bad data)
    # takes the general path. All must agree.
    if not fused:
        monkeypatch.setattr(_numba_backend, "FUSED_SCAN_MAX", 0)
    rng = np.random.default_rng(12)
    y = rng.normal(size=(6, 40))
    tree = treeiso.Tree.chain(40)
    x = treeiso.fit(y, tree, threads=threads)
    for e in (1000, -1000, 0):  # data beyond the safe range is scaled, exactly
        np.testing.assert_array_equal(treeiso.fit(np.ldexp(y, e), tree, threads=threads),
                                      np.ldexp(x, e))
    w = rng.uniform(0.5, 2.0, size=y.shape)
    xw = treeiso.fit(y, tree, w, threads=threads)
    np.testing.assert_array_equal(treeiso.fit(y, tree, np.ldexp(w, 1020), threads=threads),
                                  xw)  # weights beyond the safe range: scaled too
    bad = y.copy()
    bad[4, 17] = np.nan
    with pytest.raises(ValueError, match=r"NaN value at index \(4, 17\)"):
        treeiso.fit(bad, tree, threads=threads)
    bad[4, 17] = -np.inf
    with pytest.raises(ValueError, match=r"infinite value at index \(4, 17\)"):
        treeiso.fit(bad, tree, threads=threads, orientation="root_smallest")
    treeiso.fit(bad, tree, threads=threads, check_finite=False)  # no scan, no error
    assert treeiso.certify(np.zeros((2, 40)), tree, treeiso.fit(np.zeros((2, 40)), tree))
