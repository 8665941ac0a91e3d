"""treeiso.fit against independent references, and its mathematical properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import treeiso
from naive import brute_force_fit, component_roots, connected_blocks_ok, is_feasible
from strategies import MODERATE_WEIGHT_KINDS, problems

IRT = ("irt-pairing", "irt-leftist", "irt-binomial")


def methods_for(tree):
    out = ["auto", *IRT]
    out += {"chain": ["pav"], "star": ["star", "broom"], "broom": ["broom"]}.get(tree.kind, [])
    return out


def scale_of(y):
    return max(np.abs(y).max(), 1e-300)


@given(problems(max_n=9), st.sampled_from(["root_largest", "root_smallest"]))
def test_matches_brute_force(problem, orientation):
    parent, y, w = problem
    tree = treeiso.Tree(parent)
    sign = 1 if orientation == "root_largest" else -1
    for r in range(y.shape[0]):
        ref = sign * brute_force_fit(sign * y[r], parent, None if w is None else w[r])
        for method in methods_for(tree):
            x = treeiso.fit(y[r], tree, None if w is None else w[r], method=method,
                            orientation=orientation)
            np.testing.assert_allclose(x, ref, rtol=0, atol=1e-9 * scale_of(y[r]),
                                       err_msg=method)


@given(problems(max_n=40, max_rows=3, weight_kinds=MODERATE_WEIGHT_KINDS),
       st.sampled_from(["root_largest", "root_smallest"]))
@settings(max_examples=60)
def test_matches_scipy_reference(problem, orientation):
    parent, y, w = problem
    tree = treeiso.Tree(parent)
    ref = treeiso.fit(y, tree, w, backend="scipy", orientation=orientation)
    assert treeiso.certify(y, tree, ref, w, orientation=orientation, rtol=1e-7)
    for method in methods_for(tree):
        x = treeiso.fit(y, tree, w, method=method, orientation=orientation)
        np.testing.assert_allclose(x, ref, rtol=0, atol=1e-7 * scale_of(y), err_msg=method)


@given(problems(max_n=200, max_rows=8), st.sampled_from(["root_largest", "root_smallest"]))
@settings(max_examples=600)
def test_certified_and_methods_agree(problem, orientation):
    parent, y, w = problem
    tree = treeiso.Tree(parent)
    xs = {}
    for method in methods_for(tree):
        x = treeiso.fit(y, tree, w, method=method, orientation=orientation)
        cert = treeiso.certify(y, tree, x, w, orientation=orientation)
        assert cert.optimal, (method, cert)
        xs[method] = x
    for method, x in xs.items():
        np.testing.assert_allclose(x, xs["auto"], rtol=0, atol=1e-10 * scale_of(y),
                                   err_msg=method)


@given(problems(max_n=60, max_rows=3))
def test_blocks_are_connected_and_hold_weighted_means(problem):
    parent, y, w = problem
    tree = treeiso.Tree(parent)
    ww = np.ones_like(y) if w is None else w
    for method in ("auto", *IRT):
        res = treeiso.fit(y, tree, w, method=method, return_blocks=True)
        x2 = treeiso.fit(y, tree, w, method=method)
        np.testing.assert_array_equal(res.x, x2)
        for r in range(y.shape[0]):
            blocks = res.blocks[r]
            assert connected_blocks_ok(blocks, parent)
            for top in np.unique(blocks):
                m = blocks == top
                mean = np.sum(ww[r, m] * y[r, m]) / np.sum(ww[r, m])
                np.testing.assert_allclose(res.x[r, m], mean, rtol=0,
                                           atol=1e-10 * scale_of(y[r]))


@given(problems(max_n=60, max_rows=2))
def test_properties(problem):
    parent, y, w = problem
    tree = treeiso.Tree(parent)
    x = treeiso.fit(y, tree, w)
    s = scale_of(y)
    assert is_feasible(x, parent, tol=1e-12 * s)
    # Idempotence: a feasible input is its own answer.
    np.testing.assert_allclose(treeiso.fit(x, tree, w), x, rtol=0, atol=1e-12 * s)
    # Shift and positive-scale equivariance.
    np.testing.assert_allclose(treeiso.fit(2.5 * y - 3.0, tree, w), 2.5 * x - 3.0,
                               rtol=0, atol=1e-9 * (s + 3))
    # Reversing the orientation is fitting -y.
    np.testing.assert_allclose(treeiso.fit(-y, tree, w, orientation="root_smallest"), -x,
                               rtol=0, atol=1e-12 * s)
    # Weighted sum preserved on every connected tree of the forest.
    ww = np.ones_like(y) if w is None else w
    comp = component_roots(parent)
    for root in np.unique(comp):
        m = comp == root
        np.testing.assert_allclose((ww * x)[:, m].sum(-1), (ww * y)[:, m].sum(-1),
                                   rtol=1e-9, atol=1e-9 * s * ww.sum())


@given(st.integers(1, 300), st.integers(0, 2**32 - 1), st.booleans())
def test_chains_match_scipy_isotonic_regression(n, seed, weighted):
    from scipy.optimize import isotonic_regression

    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    w = rng.uniform(0.1, 10, size=n) if weighted else None
    ref = isotonic_regression(y, weights=w, increasing=False).x
    x = treeiso.fit(y, treeiso.Tree.chain(n), w)
    np.testing.assert_allclose(x, ref, rtol=1e-12, atol=1e-12)
    # A chain given root last is the increasing problem.
    up = treeiso.fit(y, np.arange(1, n + 1) % (n + 1) - (np.arange(n) == n - 1) * (n + 1), w)
    np.testing.assert_allclose(up, isotonic_regression(y, weights=w).x, rtol=1e-12,
                               atol=1e-12)


# Small problems worked by hand.
KNOWN = [
    # (parent, y, w, expected)
    ([-1, 0, 0], [0.0, 1.0, 10.0], None, [5.0, 1.0, 5.0]),      # max-first matters
    ([-1, 0, 0], [0.0, 1.0, 10.0], [3.0, 1.0, 1.0], [2.5, 1.0, 2.5]),
    ([-1, 0, 1], [1.0, 2.0, 3.0], None, [2.0, 2.0, 2.0]),
    ([-1, 0, 1], [3.0, 2.0, 1.0], None, [3.0, 2.0, 1.0]),
    ([-1, 0, 1, 0], [1.0, 5.0, 0.0, 3.0], None, [3.0, 3.0, 0.0, 3.0]),
    ([-1, -1], [1.0, 2.0], None, [1.0, 2.0]),                   # a forest of two roots
    ([1, -1], [4.0, 0.0], [1.0, 3.0], [1.0, 1.0]),              # root last
    ([-1], [7.0], None, [7.0]),
]


@pytest.mark.parametrize("parent, y, w, expected", KNOWN)
@pytest.mark.parametrize("method", ["auto", *IRT])
def test_known_answers(parent, y, w, expected, method):
    np.testing.assert_allclose(treeiso.fit(y, parent, w, method=method), expected,
                               rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(treeiso.fit(y, parent, w, backend="scipy"), expected,
                               rtol=1e-9, atol=1e-9)


def test_dtypes_are_kept():
    tree = treeiso.Tree([-1, 0, 0, 1])
    y = np.array([0.0, 3.0, 1.0, 5.0])
    for dtype in (np.float32, np.float64, np.float16):
        x = treeiso.fit(y.astype(dtype), tree)
        assert x.dtype == dtype
    assert treeiso.fit(np.array([0, 3, 1, 5]), tree).dtype == np.float64
    assert treeiso.fit([0, 3, 1, 5], tree).dtype == np.float64


def test_float32_accuracy():
    rng = np.random.default_rng(1)
    parent = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, 500)])
    y = (1000 + rng.normal(size=(4, 500))).astype(np.float32)
    x32 = treeiso.fit(y, parent)
    x64 = treeiso.fit(y.astype(np.float64), parent)
    np.testing.assert_allclose(x32, x64, rtol=2e-7)


def test_inputs_are_not_modified_and_views_work():
    rng = np.random.default_rng(2)
    parent = np.array([-1, 0, 0, 1, 1, 2])
    y = rng.normal(size=(3, 12))[:, ::2]          # non-contiguous
    w = rng.uniform(1, 2, size=(3, 6))
    y.flags.writeable = False
    w.flags.writeable = False
    parent.flags.writeable = False
    y0, w0, p0 = y.copy(), w.copy(), parent.copy()
    for method in ("auto", *IRT):
        for orientation in ("root_largest", "root_smallest"):
            x = treeiso.fit(y, parent, w, method=method, orientation=orientation)
            assert treeiso.certify(y, parent, x, w, orientation=orientation)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(parent, p0)
    yf = np.asfortranarray(rng.normal(size=(6, 6)))
    np.testing.assert_allclose(treeiso.fit(yf, parent), treeiso.fit(yf.copy(order="C"), parent))


def test_batch_shapes_and_weight_broadcasting():
    rng = np.random.default_rng(3)
    parent = [-1, 0, 0, 2, 2]
    y = rng.normal(size=(2, 3, 5))
    w_row = rng.uniform(0.5, 2, size=5)
    x = treeiso.fit(y, parent, w_row)
    assert x.shape == y.shape
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(x[i, j], treeiso.fit(y[i, j], parent, w_row))
    w_col = rng.uniform(0.5, 2, size=(3, 1))
    x = treeiso.fit(y, parent, w_col)
    np.testing.assert_allclose(x[1, 2], treeiso.fit(y[1, 2], parent, np.full(5, w_col[2, 0])))
    np.testing.assert_allclose(treeiso.fit(y, parent, 2.0), treeiso.fit(y, parent))


def test_empty_and_single():
    assert treeiso.fit(np.zeros((0, 3)), [-1, 0, 0]).shape == (0, 3)
    assert treeiso.fit(np.zeros(0), np.zeros(0, dtype=int)).shape == (0,)
    np.testing.assert_array_equal(treeiso.fit([2.5], [-1]), [2.5])


def test_extreme_scales():
    parent = [-1, 0, 0, 1]
    for s in (1e-200, 1e-10, 1e10, 1e200):
        y = s * np.array([0.0, 1.0, 10.0, 3.0])
        x = treeiso.fit(y, parent)
        np.testing.assert_allclose(x / s, treeiso.fit(y / s, parent), rtol=1e-12)


def test_return_blocks_on_every_path():
    rng = np.random.default_rng(4)
    for tree in (treeiso.Tree.chain(7), treeiso.Tree.star(7, 3),
                 treeiso.Tree.star_plus_edge(7, 2, 5), treeiso.Tree([-1, 0, 0, 1, 1, 2, 2])):
        y = rng.normal(size=(2, 7))
        for orientation in ("root_largest", "root_smallest"):
            res = treeiso.fit(y, tree, return_blocks=True, orientation=orientation)
            assert isinstance(res, treeiso.FitResult)
            assert res.blocks.dtype == np.int64 and res.blocks.shape == y.shape
            for r in range(2):
                assert connected_blocks_ok(res.blocks[r], tree.parent)
                for top in np.unique(res.blocks[r]):
                    m = res.blocks[r] == top
                    np.testing.assert_allclose(res.x[r, m], y[r, m].mean())
            ref = treeiso.fit(y, tree, backend="scipy", return_blocks=True,
                              orientation=orientation)
            np.testing.assert_allclose(ref.x, res.x, atol=1e-9)
            np.testing.assert_array_equal(ref.blocks, res.blocks)


@pytest.mark.slow
def test_deep_shuffled_chain_of_ten_million():
    n = 10**7
    rng = np.random.default_rng(5)
    perm = rng.permutation(n).astype(np.int64)      # node perm[i] is i-th in the chain
    parent = np.empty(n, dtype=np.int64)
    parent[perm[0]] = -1
    parent[perm[1:]] = perm[:-1]
    y = rng.normal(size=n)
    tree = treeiso.Tree(parent)
    assert tree.kind == "chain"
    x = treeiso.fit(y, tree)
    assert np.all(np.diff(x[perm]) <= 0)
    x_irt = treeiso.fit(y, tree, method="irt")
    np.testing.assert_allclose(x_irt, x, rtol=0, atol=1e-9)
    assert treeiso.certify(y, tree, x)
