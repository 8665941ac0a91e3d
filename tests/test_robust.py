"""L1, quantile and L-infinity isotonic regression: fit against exact enumeration, exact
rationals and the LP reference, the certificate, the documented choice among optima,
options and bad input."""

import threading
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import treeiso
from naive import (brute_force_quantile_optima, exact_linf_fit, pinball,
                   threshold_quantile_fit)
from strategies import MODERATE_WEIGHT_KINDS, SHAPES, problems, trees

ORIENTATIONS = ["root_largest", "root_smallest"]
EPS = float(np.finfo(np.float64).eps)
LEVELS = [Fraction(1, 2), Fraction(1, 4), Fraction(3, 4), Fraction(1, 10), Fraction(9, 10)]


def loss_args(q):
    """fit's keywords for level q (L1 for one half, half the time)."""
    return {"loss": "quantile", "quantile": float(q)}


def objective(y, x, w, q):
    """sum w rho_q(y - x) per row, float64."""
    u = y - x
    cost = u * (q - (u < 0))
    return (cost if w is None else w * cost).sum(-1)


@st.composite
def small_problems(draw):
    """Integer data with ties on trees of up to 5 nodes, integer weights, optional bounds."""
    parent = draw(trees(1, 5))
    n = len(parent)
    y = np.array(draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), dtype=float)
    w = draw(st.none() | st.lists(st.integers(1, 4), min_size=n, max_size=n).map(
        lambda v: np.array(v, dtype=float)))
    lo = draw(st.none() | st.sampled_from([-2.5, -1.0, 0.0]))
    hi = draw(st.none() | st.sampled_from([0.5, 1.0, 2.0]))
    return parent, y, w, lo, hi


@given(small_problems(), st.sampled_from(LEVELS), st.sampled_from(ORIENTATIONS))
@settings(max_examples=150)
def test_smallest_optimum_by_enumeration(problem, q, orientation):
    # The fit is the pointwise smallest of all optima, in both orientations and with bounds:
    # exact rational costs over every assignment of data values and bounds.
    parent, y, w, lo, hi = problem
    best, optima = brute_force_quantile_optima(y, parent, w, q, lo, hi, orientation)
    smallest = np.array([min(o[i] for o in optima) for i in range(len(parent))], dtype=float)
    largest = np.array([max(o[i] for o in optima) for i in range(len(parent))], dtype=float)
    # the threshold reference, used on larger trees below, agrees with enumeration
    sign = 1 if orientation == "root_largest" else -1
    neg = lambda b: None if b is None else -b  # noqa: E731
    ref_lo, ref_hi = (lo, hi) if sign > 0 else (neg(hi), neg(lo))
    for pick, want in ((False, smallest), (True, largest)):
        ref = sign * threshold_quantile_fit(sign * y, parent, w, q if sign > 0 else 1 - q,
                                            ref_lo, ref_hi, largest=pick if sign > 0 else not pick)
        np.testing.assert_array_equal(ref, want)
    kw = {"loss": "l1"} if q == Fraction(1, 2) and lo is None else loss_args(q)
    x = treeiso.fit(y, parent, w, orientation=orientation, y_min=lo, y_max=hi, **kw)
    np.testing.assert_array_equal(x, smallest)
    cost = sum((Fraction(1) if w is None else Fraction(float(w[i])))
               * pinball(Fraction(float(y[i])) - Fraction(float(x[i])), q)
               for i in range(len(parent)))
    assert cost == best
    cert = treeiso.certify(y, parent, x, w, orientation=orientation, y_min=lo, y_max=hi,
                           loss="quantile", quantile=float(q))
    assert cert.optimal, cert
    # ... and so is every other optimum; one that is not optimal is rejected
    rng = np.random.default_rng(len(optima))
    for o in [optima[-1], optima[int(rng.integers(len(optima)))]]:
        assert treeiso.certify(y, parent, np.array(o, dtype=float), w, orientation=orientation,
                               y_min=lo, y_max=hi, loss="quantile", quantile=float(q)).optimal


@given(small_problems(), st.sampled_from(LEVELS), st.integers(0, 2**32 - 1))
@settings(max_examples=100)
def test_certificate_rejects_every_non_optimal_assignment(problem, q, seed):
    # Random feasible data-valued fits whose exact cost is above the optimum are rejected.
    parent, y, w, lo, hi = problem
    best, optima = brute_force_quantile_optima(y, parent, w, q, lo, hi)
    opt = {tuple(o) for o in optima}
    rng = np.random.default_rng(seed)
    x = treeiso.fit(y, parent, w, y_min=lo, y_max=hi, **loss_args(q))
    for _ in range(20):
        cand = x + rng.integers(-2, 3, size=x.size) * 0.5
        if lo is not None:
            cand = np.maximum(cand, lo)
        if hi is not None:
            cand = np.minimum(cand, hi)
        if any(p >= 0 and cand[p] < cand[v] for v, p in enumerate(parent)):
            continue
        cost = sum((Fraction(1) if w is None else Fraction(float(w[i])))
                   * pinball(Fraction(float(y[i])) - Fraction(float(cand[i])), q)
                   for i in range(len(parent)))
        verdict = treeiso.certify(y, parent, cand, w, y_min=lo, y_max=hi,
                                  **loss_args(q)).optimal
        assert verdict == (cost == best), (cand, cost, best, tuple(cand) in opt)


@given(problems(max_n=40, max_rows=3, weight_kinds=MODERATE_WEIGHT_KINDS),
       st.sampled_from([0.5, 0.2, 0.7]), st.sampled_from(ORIENTATIONS), st.booleans())
@settings(max_examples=120)
def test_objective_equals_linear_program(problem, q, orientation, bounded):
    # Every tree shape (forests included): the LP reference (HiGHS) reaches the same cost,
    # and the reference's smallest optimum is the fit.
    parent, y, w = problem
    lo = hi = None
    if bounded:
        lo, hi = np.quantile(y, [0.2, 0.9])
    kw = dict(orientation=orientation, y_min=lo, y_max=hi, loss="quantile", quantile=q)
    x = treeiso.fit(y, parent, w, **kw)
    ref = treeiso.fit(y, parent, w, backend="scipy", **kw)
    f_x, f_ref = objective(y, x, w, q), objective(y, ref, w, q)
    spread = y.max(-1) - y.min(-1)
    wsum = y.shape[-1] if w is None else w.sum(-1)
    # HiGHS solves to absolute tolerances of about 1e-9 on the centred, unit-spread problem
    np.testing.assert_array_less(f_x - f_ref, 1e-15 * wsum * np.abs(y).max(-1) + 1e-300)
    np.testing.assert_array_less(f_ref - f_x, 1e-7 * wsum * spread + 1e-300)
    assert treeiso.certify(y, parent, x, w, **kw).optimal
    # the documented optimum, exactly: the pointwise smallest (threshold decomposition), for
    # the level meant (0.2, not its binary rounding: slopes within a relative 1e-12 of a
    # tie are a tie)
    qr = Fraction(q).limit_denominator(1000)
    sign = 1 if orientation == "root_largest" else -1
    if sign < 0:
        lo, hi = (None if hi is None else -hi), (None if lo is None else -lo)
    for r in range(y.shape[0]):
        exact = sign * threshold_quantile_fit(
            sign * y[r], parent, None if w is None else w[r],
            qr if sign > 0 else 1 - qr, lo, hi, largest=sign < 0)
        np.testing.assert_array_equal(x[r], exact)


@given(problems(min_n=2, max_n=60, max_rows=3), st.sampled_from([0.5, 0.3, 0.95]),
       st.sampled_from(ORIENTATIONS), st.integers(0, 2**32 - 1))
@settings(max_examples=200)
def test_certificate_accepts_fit_and_rejects_moved_fits(problem, q, orientation, seed):
    # Weights 1e-12 .. 1e12, offsets to 1e12: the fit is certified; moved below the smallest
    # optimum by 1e-6 of the spread (everywhere, or at one node) it is not.
    parent, y, w = problem
    kw = dict(orientation=orientation, loss="quantile", quantile=q)
    x = treeiso.fit(y, parent, w, **kw)
    assert treeiso.certify(y, parent, x, w, **kw).optimal
    spread = (y.max(-1) - y.min(-1))[:, None]
    if not (spread > 1e-4 * np.abs(y).max(-1, keepdims=True)).all():
        return  # 1e-6 of the spread would be below the data's ulps
    down = 1e-6 * spread * (1 if orientation == "root_largest" else -1)
    # the smallest optimum of root_smallest is the largest of the negated problem: moving
    # it down is moving the negated one up, off the largest optimum; both are rejected
    rng = np.random.default_rng(seed)
    moved = x - np.abs(down) * rng.uniform(1, 2, size=x.shape)
    assert not treeiso.certify(y, parent, moved, w, **kw).optimal_rows.any()
    one = x.copy()
    one[:, int(rng.integers(x.shape[1]))] -= np.abs(down[:, 0])
    assert not treeiso.certify(y, parent, one, w, **kw).optimal_rows.any()


@given(problems(max_n=30, max_rows=4), st.sampled_from([0.5, 0.25]))
@settings(max_examples=60)
def test_node_numbering_does_not_matter(problem, q):
    parent, y, w = problem
    n = len(parent)
    perm = np.random.default_rng(n).permutation(n)
    inv = np.argsort(perm)
    parent2 = np.where(parent[inv] >= 0, perm[parent[inv]], -1)   # node perm[i] is old i
    x = treeiso.fit(y, parent, w, loss="quantile", quantile=q)
    x2 = treeiso.fit(y[:, inv], parent2, None if w is None else w[:, inv],
                     loss="quantile", quantile=q)
    np.testing.assert_array_equal(x2, x[:, inv])


def test_l1_is_quantile_one_half_and_examples():
    y = np.array([0.0, 1.0, 10.0, 9.0])
    p = [-1, 0, 0, 0]
    np.testing.assert_array_equal(treeiso.fit(y, p, loss="l1"), [9.0, 1.0, 9.0, 9.0])
    np.testing.assert_array_equal(treeiso.fit(y, p, loss="quantile"), [9.0, 1.0, 9.0, 9.0])
    # an outlier moves the least-squares fit, not the median fit
    chain = [-1, 0, 1, 2, 3]
    y = np.array([5.0, 4.0, 3.0, 100.0, 1.0])
    np.testing.assert_array_equal(treeiso.fit(y, chain, loss="l1"), [5, 4, 3, 3, 1])
    assert treeiso.fit(y, chain)[0] > 20
    # every leaf above the root: a low quantile pools them at the root's value (cost
    # 0.1 * 6), a high one lifts the root to the largest leaf instead (cost 0.1 * 3)
    star = [-1, 0, 0, 0]
    y = np.array([0.0, 1.0, 2.0, 3.0])
    assert treeiso.fit(y, star, loss="quantile", quantile=0.1).tolist() == [0, 0, 0, 0]
    assert treeiso.fit(y, star, loss="quantile", quantile=0.9).tolist() == [3, 1, 2, 3]


def check_rows_axis_threads_untouched(loss, seed):
    """(parent, y, w, x): the fit of 64 rows equals row by row, along axis 0 and on two
    threads, and leaves its inputs as they were."""
    rng = np.random.default_rng(seed)
    parent = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, 200)])
    y = rng.normal(size=(64, 200))
    w = rng.uniform(0.5, 2, size=200)
    y0, w0 = y.copy(), w.copy()
    x = treeiso.fit(y, parent, w, loss=loss)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(w, w0)
    rows = np.stack([treeiso.fit(y[b], parent, w, loss=loss) for b in range(64)])
    np.testing.assert_array_equal(x, rows)
    np.testing.assert_array_equal(treeiso.fit(y.T, parent, w[:, None], loss=loss, axis=0), x.T)
    np.testing.assert_array_equal(treeiso.fit(y, parent, w, loss=loss, threads=2), x)
    return parent, y, w, x


def test_options_rows_axis_dtype_blocks_threads():
    parent, y, w, x = check_rows_axis_threads_untouched("l1", 0)
    x32 = treeiso.fit(y.astype(np.float32), parent, w, loss="l1")
    assert x32.dtype == np.float32
    np.testing.assert_array_equal(x32, treeiso.fit(y.astype(np.float32).astype(float), parent,
                                                   w, loss="l1").astype(np.float32))
    assert set(np.unique(x32[0])) <= set(y.astype(np.float32)[0])   # data values
    res = treeiso.fit(y, parent, w, loss="l1", return_blocks=True)
    np.testing.assert_array_equal(res.x, x)
    for b in range(3):
        for v in range(200):
            t = res.blocks[b, v]
            assert res.x[b, t] == res.x[b, v]
            assert parent[t] < 0 or res.x[b, parent[t]] != res.x[b, t]
    # weights scaled by any power or factor: the same fit
    np.testing.assert_array_equal(treeiso.fit(y, parent, w * 1e200, loss="l1"), x)


@pytest.mark.parametrize("kw", [dict(loss="quantile", quantile=0.3), dict(loss="linf")])
def test_many_threads_at_once(kw):
    rng = np.random.default_rng(1)
    parent = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, 300)])
    y = rng.normal(size=(16, 300))
    want = treeiso.fit(y, parent, **kw)
    got, errors = [None] * 8, []

    def work(k):
        try:
            for _ in range(5):
                got[k] = treeiso.fit(y, parent, threads=1 + k % 3, **kw)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for g in got:
        np.testing.assert_array_equal(g, want)


def test_deep_chain_and_extreme_scales():
    n = 300_000
    y = np.random.default_rng(2).normal(size=n)
    parent = np.arange(-1, n - 1)
    x = treeiso.fit(y, parent, loss="l1")
    assert treeiso.certify(y, parent, x, loss="l1").optimal
    for scale in (1e-300, 1e300):
        ys = y[:1000] * scale
        xs = treeiso.fit(ys, parent[:1000], loss="quantile", quantile=0.7)
        np.testing.assert_array_equal(
            xs, treeiso.fit(y[:1000], parent[:1000], loss="quantile", quantile=0.7) * scale)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_against_reference(shape):
    from strategies import make_parent

    rng = np.random.default_rng(len(shape))
    for _ in range(5):
        parent = make_parent(shape, 50, rng)
        y = np.round(rng.normal(size=(2, 50)), 1)     # ties
        w = rng.integers(1, 4, size=(2, 50)).astype(float)
        for q in (0.5, 0.15):
            x = treeiso.fit(y, parent, w, loss="quantile", quantile=q)
            ref = treeiso.fit(y, parent, w, loss="quantile", quantile=q, backend="scipy")
            np.testing.assert_allclose(objective(y, x, w, q), objective(y, ref, w, q),
                                       rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(x, ref, atol=1e-7)


BAD = [
    (dict(loss="l3"), ValueError, "loss must be one of"),
    (dict(loss=None), ValueError, "loss must be one of"),
    (dict(loss="quantile", quantile=0.0), ValueError, r"quantile must be in \(0, 1\)"),
    (dict(loss="quantile", quantile=1.0), ValueError, r"quantile must be in \(0, 1\)"),
    (dict(loss="quantile", quantile=float("nan")), ValueError, r"quantile must be in \(0, 1\)"),
    (dict(loss="quantile", quantile="0.5"), TypeError, "quantile must be a real number"),
    (dict(loss="quantile", quantile=True), TypeError, "quantile must be a real number"),
    (dict(loss="l1", quantile=0.5), ValueError, "given with loss='l1'"),
    (dict(loss="linf", quantile=0.5), ValueError, "given with loss='linf'"),
    (dict(loss="linf", method="irt-binomial"), ValueError, "solves loss='l2' only"),
    (dict(quantile=0.5), ValueError, "given with loss='l2'"),
    (dict(loss="l1", method="pav"), ValueError, "method='pav' solves loss='l2' only"),
    (dict(loss="l1", method="bogus"), ValueError, "method must be one of"),
]


@pytest.mark.parametrize("kw, exc, match", BAD)
def test_bad_input(kw, exc, match):
    y = np.array([1.0, 2.0, 3.0])
    with pytest.raises(exc, match=match):
        treeiso.fit(y, [-1, 0, 0], **kw)
    if "method" not in kw:
        with pytest.raises(exc, match=match):
            treeiso.certify(y, [-1, 0, 0], y, **kw)


def test_bad_input_shared_with_least_squares():
    with pytest.raises(ValueError, match="NaN"):
        treeiso.fit([1.0, np.nan], [-1, 0], loss="l1")
    with pytest.raises(ValueError, match="weights must be > 0"):
        treeiso.fit([1.0, 2.0], [-1, 0], [1.0, 0.0], loss="l1")
    with pytest.raises(ValueError, match="cycle"):
        treeiso.fit([1.0, 2.0], [1, 0], loss="l1")


# ----------------------------------------------------------------------------- L-infinity

@given(problems(max_n=30, max_rows=2), st.sampled_from(ORIENTATIONS), st.booleans())
@settings(max_examples=150)
def test_linf_against_exact_definition(problem, orientation, bounded):
    # Weights 1e-12 .. 1e12 and offsets to 1e12: the optimal error, and the midpoint of the
    # smallest and largest optima, against exact rationals.
    parent, y, w = problem
    lo = hi = None
    if bounded:
        lo, hi = np.quantile(y, [0.3, 0.8])
    x = treeiso.fit(y, parent, w, loss="linf", orientation=orientation, y_min=lo, y_max=hi)
    assert_exact_linf(y, parent, w, x, orientation, lo, hi)


def assert_exact_linf(y, parent, w, x, orientation, lo, hi):
    """Each row's error is the exact optimum and its values the exact midpoints (to x's
    rounding), and certify accepts the fit."""
    sign = 1 if orientation == "root_largest" else -1
    rlo, rhi = (lo, hi) if sign > 0 else (None if hi is None else -hi, None if lo is None else -lo)
    for r in range(y.shape[0]):
        wr = None if w is None else w[r]
        e, low, up, mid = exact_linf_fit(sign * y[r], parent, wr, rlo, rhi)
        wv = 1.0 if wr is None else wr
        err = np.max(wv * np.abs(x[r] - y[r]))
        ulps = 16 * EPS * np.max(wv * (np.abs(x[r]) + np.abs(y[r])))   # x's rounding
        assert abs(err - float(e)) <= 1e-12 * float(e) + ulps
        size = np.array([max(abs(float(a)), abs(float(b))) for a, b in zip(low, up)])
        np.testing.assert_array_less(np.abs(sign * x[r] - np.array([float(v) for v in mid])),
                                     16 * EPS * (size + np.abs(y[r]).max()) + 1e-300)
    cert = treeiso.certify(y, parent, x, w, loss="linf", orientation=orientation,
                           y_min=lo, y_max=hi)
    assert cert.optimal, cert


@given(problems(max_n=30, max_rows=2), st.sampled_from(ORIENTATIONS), st.booleans(),
       st.sampled_from([0, 1, 2]))
@settings(max_examples=150)
def test_linf_bisection_fallback_is_exact_too(problem, orientation, bounded, passes):
    # With the Dinkelbach iteration cut after 0-2 passes the kernel bisects over the floats
    # and restarts: the answer must still be the optimum, against exact rationals.
    import treeiso._kernels.linf as linf

    parent, y, w = problem
    lo = hi = None
    if bounded:
        lo, hi = np.quantile(y, [0.3, 0.8])
    saved = linf.DINKELBACH_PASSES
    linf.DINKELBACH_PASSES = passes
    try:
        x = treeiso.fit(y, parent, w, loss="linf", orientation=orientation, y_min=lo, y_max=hi)
    finally:
        linf.DINKELBACH_PASSES = saved
    assert_exact_linf(y, parent, w, x, orientation, lo, hi)


def exact_distance_to_optima(y, parent, w, x, lo, hi, orientation):
    """max over nodes of how far x is outside [L_v, U_v], exactly: for an x in order, the
    sup-norm distance to the set of optimal fits (clipping x to [L, U] keeps it in order)."""
    sign = 1 if orientation == "root_largest" else -1
    if sign < 0:
        lo, hi = (None if hi is None else -hi), (None if lo is None else -lo)
    _, low, up, _ = exact_linf_fit(sign * y, parent, w, lo, hi, in_range=False)
    z = [Fraction(float(v)) for v in sign * x]
    return float(max(max(a - v, v - b, Fraction(0)) for a, v, b in zip(low, z, up)))


@given(problems(min_n=2, max_n=25, max_rows=1), st.sampled_from(ORIENTATIONS), st.booleans(),
       st.integers(0, 2**32 - 1))
@settings(max_examples=150)
def test_linf_certificate_decides_by_distance_to_the_optima(problem, orientation, bounded,
                                                            seed):
    # L-infinity optima are many (every ordered x within the bands at the optimal error):
    # moved fits are judged by their exact distance to that set. Within half the tolerance
    # they must be accepted, beyond four times it (or out of order beyond it) rejected.
    parent, y, w = problem
    y, w = y[0], None if w is None else w[0]
    lo = hi = None
    if bounded:
        lo, hi = np.quantile(y, [0.3, 0.8])
    kw = dict(loss="linf", orientation=orientation, y_min=lo, y_max=hi)
    x = treeiso.fit(y, parent, w, **kw)
    spread = y.max() - y.min()
    if not spread > 1e-4 * np.abs(y).max():
        return  # moves of a useful size would be below the data's ulps
    tol = 1e-9 * spread + 32 * EPS * max(np.abs(y).max(), np.abs(x).max())
    rng = np.random.default_rng(seed)
    sign = 1 if orientation == "root_largest" else -1
    for trial in range(6):
        moved = x.copy()
        step = rng.choice([-1, 1]) * 10 ** rng.uniform(-9, -4) * spread
        if trial % 2:
            moved += step
        else:
            moved[int(rng.integers(len(y)))] += step
        z = sign * moved
        child = np.flatnonzero(parent >= 0)
        disorder = max(0.0, float((z[child] - z[parent[child]]).max())) if child.size else 0.0
        far = disorder if disorder > 0 else exact_distance_to_optima(
            y, parent, w, moved, lo, hi, orientation)
        ok = treeiso.certify(y, parent, moved, w, **kw).optimal
        if far < 0.5 * tol:
            assert ok, (far / tol, trial)
        elif far > 4 * tol:
            assert not ok, (far / tol, trial)


@given(problems(max_n=40, max_rows=2, weight_kinds=MODERATE_WEIGHT_KINDS),
       st.sampled_from(ORIENTATIONS), st.booleans())
@settings(max_examples=80)
def test_linf_against_linear_program(problem, orientation, bounded):
    parent, y, w = problem
    lo = hi = None
    if bounded:
        lo, hi = np.quantile(y, [0.2, 0.9])
    kw = dict(loss="linf", orientation=orientation, y_min=lo, y_max=hi)
    x = treeiso.fit(y, parent, w, **kw)
    ref = treeiso.fit(y, parent, w, backend="scipy", **kw)
    wv = 1.0 if w is None else w
    ends = [y] + [np.full((len(y), 1), v) for v in (lo, hi) if v is not None]
    ends = np.concatenate(ends, axis=1)              # the LP is scaled to these
    spread = (ends.max(-1) - ends.min(-1))[:, None]
    spread = np.where(spread > 0, spread, 1.0)       # the programs' unit when it is 0
    err, err_ref = (np.max(wv * np.abs(v - y), axis=-1) for v in (x, ref))
    ulps = 16 * EPS * np.max(wv * (np.abs(x) + np.abs(y)))    # x's own rounding, weighted
    np.testing.assert_allclose(err, err_ref, rtol=1e-7,
                               atol=1e-9 * float(np.max(wv * spread)) + ulps)
    # the programs' tolerance is on the weighted error: at a light node it allows more
    scale = np.max(wv * np.ones_like(y), axis=-1, keepdims=True)
    ulps = 8 * EPS * np.abs(y).max(-1, keepdims=True)
    assert (wv * np.abs(x - ref) <= scale * (1e-6 * spread + ulps)).all()


def test_linf_examples_by_hand():
    # root 0 above 2: the error is 1 and both meet at 1; a child three times as heavy
    # takes the error 3 * 1 * 2 / 4 = 1.5 and the meeting point 1.5
    np.testing.assert_array_equal(treeiso.fit([0.0, 2.0], [-1, 0], loss="linf"), [1, 1])
    np.testing.assert_array_equal(treeiso.fit([0.0, 2.0], [-1, 0], [1.0, 3.0], loss="linf"),
                                  [1.5, 1.5])
    # chain 0 -> 4 -> 1: error 2 from the first pair; the leaf may be anywhere in
    # [1 - 2, 2], within the data's range [0, 2], and takes the midpoint 1
    np.testing.assert_array_equal(treeiso.fit([0.0, 4.0, 1.0], [-1, 0, 1], loss="linf"),
                                  [2, 2, 1])
    # error 1 from the chain below a light root, which could be anywhere in
    # [1, 2 + 1e12]: the data's range [0, 2] keeps it in [1, 2]
    np.testing.assert_array_equal(
        treeiso.fit([2.0, 0.0, 2.0], [-1, 0, 1], [1e-12, 1.0, 1.0], loss="linf"),
        [1.5, 1.0, 1.0])
    # data in order: the fit is the data
    y = np.array([5.0, 1.0, 0.0, 3.0])
    np.testing.assert_array_equal(treeiso.fit(y, [-1, 0, 0, 0], loss="linf"), y)
    # a bound above a datum sets the error: 0.5 * (4 - 2) = 1 at node 1, which sits on
    # the bound; the root may be in [4, 6], within the range [4, 5]
    np.testing.assert_array_equal(
        treeiso.fit([5.0, 2.0], [-1, 0], [1.0, 0.5], loss="linf", y_min=4.0), [4.5, 4.0])


def test_linf_options_rows_axis_dtype_blocks_threads_numbering():
    parent, y, w, x = check_rows_axis_threads_untouched("linf", 3)
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(treeiso.fit(y, parent, w * 2.0**40, loss="linf"), x)
    # root_smallest is the negated problem
    np.testing.assert_array_equal(
        treeiso.fit(-y, parent, w, loss="linf", orientation="root_smallest"), -x)
    x32 = treeiso.fit(y.astype(np.float32), parent, w, loss="linf")
    assert x32.dtype == np.float32
    assert treeiso.certify(y.astype(np.float32), parent, x32, w, loss="linf").optimal
    res = treeiso.fit(y, parent, w, loss="linf", return_blocks=True)
    np.testing.assert_array_equal(res.x, x)
    for b in range(3):
        for v in range(200):
            t = res.blocks[b, v]
            assert res.x[b, t] == res.x[b, v]
            assert parent[t] < 0 or res.x[b, parent[t]] != res.x[b, t]
    perm = rng.permutation(200)
    inv = np.argsort(perm)
    parent2 = np.where(parent[inv] >= 0, perm[parent[inv]], -1)   # node perm[i] is old i
    np.testing.assert_array_equal(treeiso.fit(y[:, inv], parent2, w[inv], loss="linf"),
                                  x[:, inv])


def test_linf_deep_chain_and_extreme_scales():
    n = 300_000
    y = np.random.default_rng(4).normal(size=n)
    parent = np.arange(-1, n - 1)
    x = treeiso.fit(y, parent, loss="linf")
    assert treeiso.certify(y, parent, x, loss="linf").optimal
    # the node at the largest error moved further away: the error grows, not optimal
    worse = x.copy()
    v = int(np.argmax(np.abs(x - y)))
    worse[v] += 1e-6 * np.sign(x[v] - y[v])
    worse = np.maximum.accumulate(worse[::-1])[::-1]   # back in order (root largest)
    assert not treeiso.certify(y, parent, worse, loss="linf").optimal
    for scale in (1e-300, 1e300):
        ys = y[:1000] * scale
        xs = treeiso.fit(ys, parent[:1000], loss="linf", y_min=-2 * scale)
        np.testing.assert_allclose(
            xs, treeiso.fit(y[:1000], parent[:1000], loss="linf", y_min=-2.0) * scale,
            rtol=1e-12, atol=0)
        assert treeiso.certify(ys, parent[:1000], xs, loss="linf", y_min=-2 * scale).optimal


def test_scratch_reuse_across_sizes_and_threads():
    """The kernels' scratch rows are reused per thread: interleaving sizes (growing and
    shrinking the buffers, past the size where they are no longer reused) on several threads
    must give every call the answer it gets alone."""
    rng = np.random.default_rng(4)
    cases = []
    for n in [5, 30_000, 40, 300_000, 50_000, 3000]:
        parent = (rng.random(n) * np.arange(n)).astype(np.int64)
        parent[0] = -1
        cases.append((parent, rng.normal(size=n)))
    losses = [("l1", None), ("quantile", 0.2), ("linf", None)]
    want = {(i, loss): (treeiso.fit(y, p, loss=loss, quantile=q),
                        treeiso.certify(y, p, treeiso.fit(y, p, loss=loss, quantile=q),
                                        loss=loss, quantile=q).optimal)
            for i, (p, y) in enumerate(cases) for loss, q in losses}
    errors = []

    def work(order):
        for i in order:
            p, y = cases[i]
            for loss, q in losses:
                x = treeiso.fit(y, p, loss=loss, quantile=q)
                ok = treeiso.certify(y, p, x, loss=loss, quantile=q).optimal
                if not (np.array_equal(x, want[(i, loss)][0]) and ok == want[(i, loss)][1]):
                    errors.append((i, loss))

    threads = [threading.Thread(target=work, args=(np.tile(rng.permutation(len(cases)), 3),))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(ok for _, ok in want.values())
