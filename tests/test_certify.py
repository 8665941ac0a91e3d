"""treeiso.certify accepts optimal answers and rejects perturbed ones."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import treeiso
from naive import brute_force_fit
from strategies import VALUE_KINDS, problems


@given(problems(max_n=9), st.sampled_from(["root_largest", "root_smallest"]))
def test_accepts_brute_force_answers(problem, orientation):
    # Exact answers (rational arithmetic), weights over 1e-12 .. 1e12, offsets up to 1e12:
    # no false rejection at the default tolerance.
    parent, y, w = problem
    sign = 1 if orientation == "root_largest" else -1
    for r in range(y.shape[0]):
        wr = None if w is None else w[r]
        x = sign * brute_force_fit(sign * y[r], parent, wr)
        cert = treeiso.certify(y[r], parent, x, wr, orientation=orientation)
        assert cert.optimal, cert


def perturbations(x, y, tree, w, rng):
    """Answers moved by 1e-6 of each row's spread: everywhere, one node, one block."""
    delta = 1e-6 * (y.max(-1) - y.min(-1))[:, None]
    sign = rng.choice([-1.0, 1.0])
    yield "all", x + sign * delta * rng.uniform(1, 2, size=x.shape)
    i = rng.integers(0, x.shape[-1])
    one = x.copy()
    one[:, i] += sign * delta[:, 0]
    yield "node", one
    blocks = treeiso.fit(y, tree, w, return_blocks=True).blocks
    pick = blocks[np.arange(x.shape[0]), rng.integers(0, x.shape[-1], size=x.shape[0])]
    yield "block", np.where(blocks == pick[:, None], x + sign * delta, x)


# Every value kind but "offset", whose spread is 1e-9 of its offset: there 1e-6 of the spread
# is a few ulps, below what any float answer is exact to (the certificate's floor).
SPREAD_KINDS = tuple(k for k in VALUE_KINDS if k != "offset")


@given(problems(min_n=2, max_n=60, max_rows=3, value_kinds=SPREAD_KINDS),
       st.integers(0, 2**32 - 1))
@settings(max_examples=300)
def test_rejects_perturbed_answers(problem, seed):
    # No false acceptance of an answer perturbed by 1e-6 of the data's spread, with weights
    # over 1e-12 .. 1e12 and offsets up to 1e12 (tests/strategies.py).
    parent, y, w = problem
    if not (y.max(-1) > y.min(-1)).all():
        return  # a constant row has nothing to perturb against
    tree = treeiso.Tree(parent)
    x = treeiso.fit(y, tree, w)
    assert treeiso.certify(y, tree, x, w)
    rng = np.random.default_rng(seed)
    for name, bad in perturbations(x, y, tree, w, rng):
        cert = treeiso.certify(y, tree, bad, w)
        assert not cert.optimal_rows.any(), (name, cert)


def test_shifted_data_constant_answer_rejected():
    # y = 1e12 + N(0, 1); the tolerance followed max|y| and accepted a constant
    # although the optimum spreads over about 1. Now at every offset the fit passes and the
    # constant fails.
    rng = np.random.default_rng(0)
    y0 = rng.normal(size=200)
    tree = treeiso.Tree.chain(200)
    for off in (0.0, 1e3, 1e6, 1e9, 1e12, -1e12):
        y = y0 + off
        x = treeiso.fit(y, tree)
        assert np.ptp(x) > 0.5
        assert treeiso.certify(y, tree, x), off
        assert not treeiso.certify(y, tree, np.full(200, y.mean())), off


def test_light_block_in_a_large_star_rejected():
    # on a 10**7-node star a root value 1% of max|y| off passed: the multiplier's
    # tolerance grew with the whole tree's weight. A light root on its own, in a heavy tree,
    # shows the same at 10**5 nodes.
    rng = np.random.default_rng(1)
    n = 10**5
    y = rng.normal(size=n)
    y[0] = y.max() + 1.0                      # the root stays alone, above every leaf
    w = np.ones(n)
    w[0] = 1e-3
    tree = treeiso.Tree.star(n)
    x = treeiso.fit(y, tree, w)
    assert x[0] == y[0] and treeiso.certify(y, tree, x, w)
    for step in (-0.01 * np.abs(y).max(), 1e-6 * np.ptp(y)):
        bad = x.copy()
        bad[0] += step                        # still feasible
        assert not treeiso.certify(y, tree, bad, w), step


def test_wide_weights_perturbations_rejected():
    # with weights spanning 1e18, 1e-3 perturbations were accepted in 3-5% of trials.
    rng = np.random.default_rng(2)
    accepted = 0
    for _ in range(300):
        n = int(rng.integers(2, 30))
        parent = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n)])
        y = rng.normal(size=n)
        w = 10 ** rng.uniform(-9, 9, size=n)
        x = treeiso.fit(y, parent, w)
        assert treeiso.certify(y, parent, x, w)
        bad = x.copy()
        bad[rng.integers(0, n)] += rng.choice([-1, 1]) * 1e-3
        accepted += bool(treeiso.certify(y, parent, bad, w))
    assert accepted == 0


def test_tiny_and_huge_weights_and_values():
    # weights below ~1e-315 raised ZeroDivisionError; weights near 1.7e308 made a
    # wrong answer pass.
    parent = [-1, 0]
    for w in ([1e-320, 1e-320], [5e-324, 5e-324], [1e-300, 3e-300]):
        assert treeiso.certify([1.0, 0.0], parent, [1.0, 0.0], w)
        assert not treeiso.certify([1.0, 0.0], parent, [0.5, 0.5], w)
    w = [1.7e308, 1.7e308]
    assert not treeiso.certify([1.0, 2.0], parent, [0.0, 0.0], w)
    assert treeiso.certify([1.0, 2.0], parent, [1.5, 1.5], w)
    y = [-1e308, 1e308]
    assert treeiso.certify(y, parent, [0.0, 0.0])
    assert not treeiso.certify(y, parent, y)


def test_nan_solution_is_named():
    with pytest.raises(ValueError, match="solution contains a NaN"):
        treeiso.certify([1.0, 0.0], [-1, 0], [np.nan, 0.0])
    with pytest.raises(ValueError, match="solution contains an infinite"):
        treeiso.certify([1.0, 0.0], [-1, 0], [np.inf, 0.0])
    with pytest.raises(ValueError, match="values contains a NaN"):
        treeiso.certify([np.nan, 0.0], [-1, 0], [1.0, 0.0])


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
    # The exact answer's gap is at the floating-point floor: its dual point (built from the rounded
    # x) has stationarity residuals of about n eps sum(w |y|) per node, each costing
    # residual**2 / (2 w_i) (the floor that weights spanning 1e24 reach; see Certificate.gap).
    floor = (len(y) * np.finfo(float).eps * np.sum(ww * np.abs(y))) ** 2 / ww.min()
    assert treeiso.certify(y, tree, x, w).gap <= 1e-9 * max(np.sum(ww * y**2), 1e-300) + floor


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
