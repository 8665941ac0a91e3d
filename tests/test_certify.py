"""treeiso.certify accepts optimal answers and rejects perturbed ones."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import treeiso
from naive import brute_force_fit
from strategies import problems


@given(problems(max_n=9), st.sampled_from(["root_largest", "root_smallest"]))
def test_accepts_brute_force_answers(problem, orientation):
    parent, y, w = problem
    sign = 1 if orientation == "root_largest" else -1
    for r in range(y.shape[0]):
        wr = None if w is None else w[r]
        x = sign * brute_force_fit(sign * y[r], parent, wr)
        cert = treeiso.certify(y[r], parent, x, wr, orientation=orientation, rtol=1e-8)
        assert cert.optimal, cert


@given(problems(min_n=2, max_n=60, max_rows=3), st.integers(0, 2**32 - 1))
@settings(max_examples=200)
def test_rejects_perturbed_answers(problem, seed):
    parent, y, w = problem
    tree = treeiso.Tree(parent)
    x = treeiso.fit(y, tree, w)
    assert treeiso.certify(y, tree, x, w)
    rng = np.random.default_rng(seed)
    ww = np.ones_like(y) if w is None else w
    scale = np.abs(y).max(axis=-1)
    scale = np.where(scale > 0, scale, 1.0)
    sign = rng.choice([-1.0, 1.0])
    # Moving one node by delta moves the weighted residual of its tree by
    # w_i * delta: make that 1e-6 of the scale times the total weight, a
    # thousand times the tolerance of the stationarity test.
    i = rng.integers(0, len(parent))
    bumped = x.copy()
    bumped[:, i] += sign * 1e-6 * scale * ww.sum(-1) / ww[:, i]
    cert = treeiso.certify(y, tree, bumped, w)
    assert not cert.optimal
    assert not cert.optimal_rows.any()
    # Relative noise of 1e-6 in one direction everywhere.
    noisy = x + sign * 1e-6 * scale[:, None] * rng.uniform(1, 2, size=x.shape)
    assert not treeiso.certify(y, tree, noisy, w).optimal_rows.any()


@given(problems(min_n=2, max_n=40, max_rows=1), st.integers(0, 2**32 - 1))
@settings(max_examples=100)
def test_gap_bounds_the_distance(problem, seed):
    parent, y, w = problem
    tree = treeiso.Tree(parent)
    x = treeiso.fit(y, tree, w)
    ww = np.ones_like(y) if w is None else w
    rng = np.random.default_rng(seed)
    # Any feasible candidate: the optimum of perturbed data.
    cand = treeiso.fit(y + rng.normal(size=y.shape) * np.abs(y).max(), tree, w)
    cert = treeiso.certify(y, tree, cand, w)
    dist = 0.5 * np.sum(ww * (cand - x) ** 2)
    assert dist <= cert.gap * (1 + 1e-9) + 1e-12 * np.sum(ww * y**2)
    assert treeiso.certify(y, tree, x, w).gap <= 1e-9 * max(np.sum(ww * y**2), 1e-300)


def test_reports_each_condition():
    parent = [-1, 0]
    y = np.array([0.0, 2.0])
    cert = treeiso.certify(y, parent, np.array([1.0, 1.0]))
    assert cert.optimal and bool(cert)
    cert = treeiso.certify(y, parent, np.array([0.0, 2.0]))   # infeasible
    assert cert.feasibility > 1 and not cert.optimal
    cert = treeiso.certify(y, parent, np.array([0.5, 0.5]))   # not stationary
    assert cert.stationarity > 1
    y = np.array([2.0, 0.0])
    cert = treeiso.certify(y, parent, np.array([1.0, 1.0]))   # pooled needlessly
    assert cert.dual_sign > 1
    cert = treeiso.certify(np.array([0.0, 1.0, 3.0]), [-1, 0, 0],
                           np.array([1.0, 0.0, 1.0]))          # slack edge with R != 0
    assert cert.complementary_slackness > 1
    assert cert.optimal_rows.shape == ()


def test_weights_and_batches():
    rng = np.random.default_rng(0)
    parent = [-1, 0, 0, 1, 1]
    y = rng.normal(size=(3, 5))
    w = rng.uniform(0.1, 10, size=(3, 5))
    x = treeiso.fit(y, parent, w)
    assert treeiso.certify(y, parent, x, w)
    assert not treeiso.certify(y, parent, x, w[::-1]).optimal_rows.all()
    x[1] = treeiso.fit(y[1], parent)             # wrong weights for row 1
    cert = treeiso.certify(y, parent, x, w)
    np.testing.assert_array_equal(cert.optimal_rows, [True, False, True])


def test_accepts_the_reference_solver():
    rng = np.random.default_rng(1)
    parent = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, 300)])
    y = rng.normal(size=300)
    x = treeiso.fit(y, parent, backend="scipy")
    assert treeiso.certify(y, parent, x, rtol=1e-7)
