"""Exact in every regime: wide weight ranges, overflow, long brooms, tree kinds,
masked arrays, both backends. Every case is checked against an independent answer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import treeiso
from naive import brute_force_fit
from strategies import problems

torch = pytest.importorskip("torch")
from treeiso._backends import torch_native as tn  # noqa: E402
from treeiso._backends import torch_ops as ops  # noqa: E402
from treeiso._problem import solve_scaled  # noqa: E402
from treeiso._backends.torch_arrays import TORCH, max_exponent  # noqa: E402

IRT = ("irt-pairing", "irt-leftist", "irt-binomial")


def methods_for(tree):
    out = ["auto", *IRT]
    out += {"chain": ["pav", "broom"], "star": ["star", "broom"],
            "broom": ["broom"]}.get(tree.kind, [])
    return out


def all_paths(y, tree, w):
    """Every way to fit (y, w) on ``tree``: NumPy kernels, torch ops (CPU kernels) and the
    device-native torch code run on the CPU."""
    out = {}
    for method in methods_for(tree):
        out[f"numpy/{method}"] = treeiso.fit(y, tree, w, method=method)
        yt = torch.tensor(y)
        wt = None if w is None else torch.tensor(w)
        out[f"torch/{method}"] = treeiso.fit(yt, tree, wt, method=method).numpy()
    y2 = torch.tensor(np.atleast_2d(y))
    w2 = None if w is None else torch.tensor(np.atleast_2d(w))
    if tree.kind == "chain" and tree.n:
        order = torch.as_tensor(tree.handle.astype(np.int64))
        out["native/chain"] = ops.chain_op(y2, w2, order, True)[0].numpy().reshape(y.shape)
    if tree.kind in ("star", "broom"):
        lab = torch.as_tensor(tree.handle.astype(np.int64)).expand(y2.shape[0], -1)
        labc = tn.compact_labels(lab.contiguous())
        for strategy in ("fixed_point", "sort"):
            x, _ = solve_scaled(TORCH, lambda ys, ws: tn.broom_native(ys, ws, labc, strategy),
                                y2, w2, None, max_exponent(y2.dtype))
            out[f"native/broom-{strategy}"] = x.numpy().reshape(y.shape)
        out["native/broom-op"] = ops.broom_op(y2, w2, lab.contiguous(), True)[0].numpy(
        ).reshape(y.shape)
    return out


# ----------------------------------------------------------------------------- wrong answers
@pytest.mark.parametrize("y, parent, w", [
    ([0.0, 1.0, -1.0], [-1, 0, 0], [1.0, 1e17, 1.0]),  # gave [0, 0, -1]
    ([-0.01, 2.08, 1.04, -0.99], [-1, 0, 0, 0], [1, 1, 1e14, 1]),  # root 1.035
    ([-0.46, 0.13, -1.76, 0.57, 0.82, 0.48], [5, 5, 1, 1, 1, -1],  # torch: 0/0 in the handle
     [1, 1, 1e16, 1, 1, 1e16]),
])
def test_wide_weight_cases(y, parent, w):
    y, w = np.array(y, float), np.array(w, float)
    tree = treeiso.Tree(parent)
    ref = brute_force_fit(y, parent, w)
    for name, x in all_paths(y, tree, w).items():
        np.testing.assert_allclose(x, ref, rtol=0, atol=1e-12, err_msg=name)
        assert treeiso.certify(y, tree, x, w), name


@pytest.mark.parametrize("span", [1e14, 1e16])
def test_wide_weight_rows_topk(span):
    # 0.2% (1e14) and 12% (1e16) of random fit_topk rows were wrong.
    rng = np.random.default_rng(int(np.log10(span)))
    rows, c = 300, 6
    y = np.round(rng.normal(size=(rows, c)), 2)  # ties, as logits rounded
    w = rng.choice([1.0, span], size=(rows, c))
    lab = np.stack([rng.permutation(c)[:2] for _ in range(rows)])
    x = treeiso.fit_topk(y, lab, w)
    xt = treeiso.fit_topk(torch.tensor(y), torch.tensor(lab), torch.tensor(w)).numpy()
    xn = ops.broom_op(torch.tensor(y), torch.tensor(w), torch.tensor(lab), True)[0].numpy()
    for b in range(rows):
        ref = brute_force_fit(y[b], treeiso.Tree.broom(c, lab[b]).parent, w[b])
        for name, got in (("numpy", x[b]), ("torch", xt[b]), ("native", xn[b])):
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12, err_msg=name)


@given(problems(max_n=30, max_rows=3), st.sampled_from(["root_largest", "root_smallest"]))
@settings(max_examples=150)
def test_every_path_is_certified(problem, orientation):
    # Weights over 1e-12 .. 1e12 and offsets up to 1e12 (tests/strategies.py) through every
    # kernel, on NumPy, on torch (CPU kernels) and on torch's device-native code.
    parent, y, w = problem
    tree = treeiso.Tree(parent)
    sign = 1.0 if orientation == "root_largest" else -1.0
    paths = all_paths(sign * y, tree, w)
    ref = paths["numpy/auto"]
    scale = max(np.abs(y).max(), 1e-300)
    for name, x in paths.items():
        assert treeiso.certify(sign * y, tree, x, w), name
        np.testing.assert_allclose(x, ref, rtol=0, atol=1e-9 * scale, err_msg=name)


# ----------------------------------------------------------------------------- overflow
@pytest.mark.parametrize("y, parent, w, expected", [
    ([-1e308, 1e308], [-1, 0], None, [0.0, 0.0]),  # gave [inf, inf]
    ([-1e308, 1e308, 1e308], [-1, 0, 0], None, [1e308 / 3] * 3),  # gave -1e308
    ([1.0, 2.0], [-1, 0], [1.7e308, 1.7e308], [1.5, 1.5]),  # gave [1, 1]
    ([1.0, 2.0, 0.0], [-1, 0, 0], [1.7e308, 1.7e308, 1.0], [1.5, 1.5, 0.0]),
    ([1.0, 2.0, 0.0], [-1, 0, 0], [1e-320, 3e-320, 1e-320], [1.75, 1.75, 0.0]),
    ([1e-310, 3e-310, 0.0], [-1, 0, 0], [1.0, 1.0, 2.0], [2e-310, 2e-310, 0.0]),
    ([-1e308, 1e308, 0.0, 1e308], [-1, 0, 1, 1], None, [1e308 / 3] * 2 + [0.0, 1e308 / 3]),
])
def test_overflow_is_computed(y, parent, w, expected):
    y = np.array(y)
    tree = treeiso.Tree(parent)
    w = None if w is None else np.array(w)
    expected = np.array(expected)
    for name, x in all_paths(y, tree, w).items():
        assert np.isfinite(x).all(), name
        np.testing.assert_allclose(x, expected, rtol=1e-14, atol=0, err_msg=name)
    if tree.kind in ("star", "broom"):
        x = treeiso.fit_topk(y[None], tree.handle[None], None if w is None else w[None])
        np.testing.assert_allclose(x[0], expected, rtol=1e-14, atol=0)


def test_overflow_float32_native():
    y = torch.tensor([[-1e38, 3e38, 3e38]], dtype=torch.float32)
    for native in (False, True):
        x, _ = ops.broom_op(y, None, torch.tensor([[0]]), native)
        np.testing.assert_allclose(x.numpy(), 5e38 / 3, rtol=1e-6)
        x, _ = ops.chain_op(y[:, :2], None, torch.tensor([0, 1]), native)
        np.testing.assert_allclose(x.numpy(), 1e38, rtol=1e-6)


def test_weights_too_wide_to_scale_raise():
    # The weights' total overflows and the smallest would underflow once it is scaled.
    for values in (np.array([1.0, 2.0, 0.0]), torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)):
        w = [5e-324, 1e308, 1e308]
        w = torch.tensor(w, dtype=torch.float64) if isinstance(values, torch.Tensor) else w
        with pytest.raises(ValueError, match="weights span too wide a range"):
            treeiso.fit(values, [-1, 0, 0], w)


def test_certify_rejects_the_old_overflow_answers():
    assert not treeiso.certify([1.0, 2.0], [-1, 0], [0.0, 0.0], [1.7e308, 1.7e308])
    assert not treeiso.certify([-1e308, 1e308, 1e308], [-1, 0, 0], [-1e308] * 3)


# ----------------------------------------------------------------------------- long brooms
def test_long_handle_goes_to_irt_and_the_kernel_sorts():
    from treeiso._dispatch import AUTO_BROOM_MAX_HANDLE, resolve

    rng = np.random.default_rng(3)
    n = 3000
    y = rng.normal(size=(2, n))
    y[1] = np.sort(y[1])  # the handle (the first nodes) increasing: pools all the way up
    for k in (1, 2, AUTO_BROOM_MAX_HANDLE, AUTO_BROOM_MAX_HANDLE + 1, 300):
        tree = treeiso.Tree.broom(n, np.arange(k))
        assert resolve("auto", tree) == ("broom" if k <= AUTO_BROOM_MAX_HANDLE else "irt-pairing")
        ref = treeiso.fit(y, tree, method="irt")
        for name, x in (("broom", treeiso.fit(y, tree, method="broom")),
                        ("topk", treeiso.fit_topk(y, np.arange(k)[None])),
                        ("auto", treeiso.fit(y, tree))):
            np.testing.assert_allclose(x, ref, rtol=0, atol=1e-12, err_msg=f"{name} {k}")


# ----------------------------------------------------------------------------- tree kinds
def test_small_trees_kinds_and_methods():
    assert treeiso.Tree.chain(0).kind == "chain"  # was "general"
    assert treeiso.Tree.star(2).kind == "chain"  # a chain, and a star: both methods run
    np.testing.assert_array_equal(treeiso.fit([0.0, 1.0], treeiso.Tree.star(2), method="star"),
                                  [0.5, 0.5])
    np.testing.assert_array_equal(treeiso.fit([0.0], treeiso.Tree.star(1), method="star"),
                                  [0.0])
    assert treeiso.fit(np.zeros((2, 0)), treeiso.Tree.chain(0), method="pav").shape == (2, 0)
    x = treeiso.fit(torch.tensor([0.0, 1.0]), treeiso.Tree.star(2), method="star")
    np.testing.assert_array_equal(x.numpy(), [0.5, 0.5])
    y = np.array([1.0, 3.0, 2.0, 5.0])
    np.testing.assert_array_equal(treeiso.fit(y, treeiso.Tree.chain(4), method="broom"),
                                  treeiso.fit(y, treeiso.Tree.chain(4), method="pav"))
    with pytest.raises(ValueError, match="method='star' needs"):
        treeiso.fit(y, treeiso.Tree.chain(4), method="star")


def test_masked_arrays_are_rejected():
    m = np.ma.masked_array([0.0, 5.0, 1.0], mask=[0, 1, 0])
    with pytest.raises(TypeError, match="values is a masked array"):
        treeiso.fit(m, [-1, 0, 0])
    with pytest.raises(TypeError, match="weights is a masked array"):
        treeiso.fit([0.0, 5.0, 1.0], [-1, 0, 0], np.ma.masked_array([1.0, 1, 1], [0, 1, 0]))
    with pytest.raises(TypeError, match="parent is a masked array"):
        treeiso.Tree(np.ma.masked_array([-1, 0, 0], [0, 1, 0]))
    with pytest.raises(TypeError, match="values is a masked array"):
        treeiso.fit_topk(m[None], [[0]])
    with pytest.raises(TypeError, match="labels is a masked array"):
        treeiso.fit_topk([[0.0, 5.0, 1.0]], np.ma.masked_array([[0]], [[1]]))
    with pytest.raises(TypeError, match="solution is a masked array"):
        treeiso.certify([0.0, 5.0, 1.0], [-1, 0, 0], m)


def test_tree_from_a_list_inside_compile():
    # a Tree built from a list inside torch.compile crashed dynamo (it traced into
    # numba). The torch backend now builds it in a torch.compiler.disable'd call: a graph
    # break, correct; fullgraph=True needs the Tree built outside (documented).
    y = torch.tensor([0.0, 1.0, 10.0], dtype=torch.float64)
    chain = treeiso.Tree.chain(3)  # built outside: calling Tree() inside is not supported

    def f(y):
        return treeiso.fit(y, [-1, 0, 0]) + treeiso.fit(y, chain) + treeiso.fit(y, [-1, 0, 1])

    def g(y):
        return treeiso.fit(y, chain) * 2

    torch._dynamo.reset()  # (dynamo caches per code object: the strict compile goes first)
    with pytest.raises(Exception, match="disable"):
        torch.compile(f, backend="aot_eager", fullgraph=True)(y)
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(f, backend="aot_eager")(y), f(y))
    torch.testing.assert_close(torch.compile(g, backend="aot_eager", fullgraph=True)(y), g(y))
