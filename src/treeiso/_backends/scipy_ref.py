"""Reference solver: the isotonic regression as a bounded least-squares problem.

Slow (dense n x n matrix, O(n^3)) and independent of the fast kernels: used as
``backend="scipy"`` and by the tests.

Without bounds, write ``x = A (s * d)`` where ``A[i, j] = 1`` when ``j`` is ``i`` or one of its
ancestors, ``s = +1`` on roots and ``-1`` elsewhere. Then ``d`` at a root is
the root's value and ``d_c = x_parent(c) - x_c`` elsewhere, so the order
constraints become the bounds ``d_c >= 0``: a BVLS problem.

With bounds ``lo <= x <= hi`` this change of variables no longer gives box constraints
(the lower bound binds at the leaves), so the bounded problem is solved as what it is, a
least-distance program (Lawson & Hanson 1974, ch. 23): with ``u = sqrt(w) (x - y)``,
minimize ``|u|`` subject to ``G u >= f`` (edges and bounds), through one non-negative least
squares problem (solved by BVLS with lower bounds 0: ``scipy.optimize.nnls`` returned
infeasible points on degenerate cases, such as ``lo`` equal to ``max(y)``). It does not use
the clipping argument of the fast path, so the tests can check that argument against it.

Both solvers are polished: the active set they find (edges at equality, nodes on a bound)
fixes the blocks, and each free block then takes the weighted mean of its data, each bound
block its bound. The least-squares solves themselves are only accurate to about
``1e-10 * cond``; the polished values are exact whenever the active set is right. Weights
spanning many orders of magnitude make the scaled matrix ill-conditioned and the active set
unreliable (wrong in 1 of 150 random trees at a spread of 1e16, none at 1e14), so the
reference accepts a weight spread of at most ``MAX_WEIGHT_SPREAD`` and says so otherwise.
"""

import numpy as np

_MAX_N = 5_000      # three dense n x n float64 matrices: 600 MB at the cap
MAX_WEIGHT_SPREAD = 1e12


def check_weight_spread(w):
    """The reference's regime: max(w) / min(w) <= MAX_WEIGHT_SPREAD in every row."""
    if w.size == 0:
        return
    spread = float(np.max(w.max(axis=1) / w.min(axis=1)))
    if not spread <= MAX_WEIGHT_SPREAD:
        raise ValueError(
            f"backend='scipy' is exact for weights spanning up to {MAX_WEIGHT_SPREAD:.0e} "
            f"(max/min) in a row; these span {spread:.3g}, where its least-squares solve is "
            "ill-conditioned: use the default backend (exact at any spread)")


def _tops(tree, tight):
    """Block of every node (its top node) when the edges above the nodes in ``tight`` are
    at equality."""
    top = np.arange(tree.n, dtype=np.int64)
    for v in tree.order:                 # parents first
        p = tree.parent[v]
        if p >= 0 and tight[v]:
            top[v] = top[p]
    return top


def _block_means(y, w, top):
    """Each block's weighted mean of ``y``, at every node of the block."""
    wsum = np.bincount(top, weights=w, minlength=top.size)
    ysum = np.bincount(top, weights=w * y, minlength=top.size)
    return ysum[top] / wsum[top]


def _ordered(x, tree, slack=0.0):
    child = np.flatnonzero(tree.parent >= 0)
    return bool(np.all(x[tree.parent[child]] - x[child] >= -slack))


def ancestor_matrix(tree):
    """Dense ``A[i, j] = 1`` if ``j`` is ``i`` or an ancestor of ``i``."""
    n = tree.n
    a = np.zeros((n, n))
    for v in tree.order:                 # parents first
        p = tree.parent[v]
        if p >= 0:
            a[v] = a[p]
        a[v, v] = 1.0
    return a


def bvls_rows(y, w, tree):
    """Solve every row of ``y`` (B, n) with SciPy's BVLS; orientation root_largest.
    Returns the fit and its blocks (top node of each node's block)."""
    from scipy.optimize import lsq_linear

    n = tree.n
    if n > _MAX_N:
        raise ValueError(
            f"backend='scipy' builds a dense {n} x {n} matrix; it is meant for "
            f"n <= {_MAX_N}, use the default backend"
        )
    x = np.empty_like(y)
    blocks = np.empty(y.shape, dtype=np.int64)
    if n == 0:
        return x, blocks
    a = ancestor_matrix(tree)
    is_root = tree.parent < 0
    sign = np.where(is_root, 1.0, -1.0)
    lower = np.where(is_root, -np.inf, 0.0)
    a_signed = a * sign
    for b in range(y.shape[0]):
        wr = np.ones(n) if w.shape[0] == 0 else w[0 if w.shape[0] == 1 else b]
        sw = np.sqrt(wr)
        # Centre and scale: IR(a y + c) = a IR(y) + c for a > 0.
        shift = np.average(y[b], weights=wr)
        scale = max(np.abs(y[b] - shift).max(), np.finfo(float).tiny)
        target = sw * (y[b] - shift) / scale
        res = lsq_linear(sw[:, None] * a_signed, target, bounds=(lower, np.inf),
                         method="bvls", tol=1e-15, lsq_solver="exact")
        raw = a_signed @ res.x * scale + shift
        # Polish: the edges BVLS holds at their bound are the blocks' internal edges.
        top = _tops(tree, (res.active_mask != 0) & ~is_root)
        polished = _block_means(y[b], wr, top)
        if _ordered(polished, tree):
            x[b], blocks[b] = polished, top
        else:  # (not seen in the regime the reference accepts)
            x[b], blocks[b] = raw, top
    return x, blocks


def ldp_rows(y, w, tree, lo, hi):
    """Every row of ``y`` (B, n), orientation root_largest, with ``lo <= x <= hi`` (either
    may be None), as a least-distance program solved by NNLS (Lawson & Hanson, ch. 23)."""
    from scipy.optimize import lsq_linear

    n = tree.n
    if n > _MAX_N:
        raise ValueError(f"backend='scipy' is meant for n <= {_MAX_N}, use the default backend")
    x = np.empty_like(y)
    if n == 0:
        return x
    if lo is not None and hi is not None and lo == hi:
        x[...] = lo                       # the only feasible point
        return x
    child = np.flatnonzero(tree.parent >= 0)
    g_edge = np.zeros((child.size, n))    # G x >= h: x_parent - x_child >= 0
    g_edge[np.arange(child.size), tree.parent[child]] = 1.0
    g_edge[np.arange(child.size), child] = -1.0
    for b in range(y.shape[0]):
        wr = np.ones(n) if w.shape[0] == 0 else w[0 if w.shape[0] == 1 else b]
        # A bound outside the data's range is inactive (the unbounded fit lies within the
        # range and is then feasible); drop it, so that it does not spoil the scaling.
        lo_b = lo if lo is not None and lo > y[b].min() else None
        hi_b = hi if hi is not None and hi < y[b].max() else None
        # Centre and scale (bounds too): IR(a y + c) = a IR(y) + c for a > 0.
        shift = np.average(y[b], weights=wr)
        spread = [np.abs(y[b] - shift).max()]
        spread += [abs(v - shift) for v in (lo_b, hi_b) if v is not None]
        scale = max(spread) or 1.0
        g, h = [g_edge], [np.zeros(child.size)]
        if lo_b is not None:
            g.append(np.eye(n))
            h.append(np.full(n, (lo_b - shift) / scale))
        if hi_b is not None:
            g.append(-np.eye(n))
            h.append(np.full(n, -(hi_b - shift) / scale))
        g, h = np.concatenate(g), np.concatenate(h)
        yb = (y[b] - shift) / scale
        if g.shape[0] == 0:               # one node, no active bound
            x[b] = y[b]
            continue
        e = g / np.sqrt(wr)               # G D with D = diag(w^-1/2)
        f = h - g @ yb
        m = np.vstack([e.T, f[None, :]])  # (n + 1, constraints)
        target = np.zeros(n + 1)
        target[n] = 1.0
        res = lsq_linear(m, target, bounds=(0.0, np.inf), method="bvls", tol=1e-15,
                         lsq_solver="exact")
        r = m @ res.x - target            # u = -r[:n] / r[n] (Lawson & Hanson, 23.4)
        raw = (yb - r[:n] / (r[n] * np.sqrt(wr))) * scale + shift
        # The active constraints are those whose multiplier BVLS left off its bound 0.
        active = res.active_mask == 0
        tight = np.zeros(n, dtype=bool)
        tight[child] = active[:child.size]
        k = child.size
        at_lo = at_hi = None
        if lo_b is not None:
            at_lo, k = active[k:k + n], k + n
        if hi_b is not None:
            at_hi = active[k:k + n]
        x[b] = _polish_bounded(raw, y[b], wr, tree, tight, (lo_b, at_lo), (hi_b, at_hi))
    return x


def _polish_bounded(raw, y, w, tree, tight, lower, upper):
    """The bounded solution at its exact values from its active set: ``tight`` edges join
    blocks; a block with a node on a bound (``lower = (lo, at_lo)``, ``upper`` alike; None
    when the bound is not used) takes that bound, the others their weighted means."""
    top = _tops(tree, tight)
    x = _block_means(y, w, top)
    for bound, at in (lower, upper):
        if bound is not None:
            on = np.zeros(tree.n, dtype=bool)
            on[top[at]] = True          # the blocks holding a node on the bound
            x[on[top]] = bound
    if lower[0] is not None or upper[0] is not None:
        x = np.clip(x, lower[0], upper[0])
        raw = np.clip(raw, lower[0], upper[0])
    return x if _ordered(x, tree) else raw  # (raw: not seen in the reference's regime)


def fit_rows(y, w, tree, lo=None, hi=None):
    """The reference fit of every row (orientation root_largest), bounded or not, and its
    blocks: those of the unbounded fit (as the fast path returns them)."""
    check_weight_spread(w)
    x, blocks = bvls_rows(y, w, tree)
    if lo is None and hi is None:
        return x, blocks
    return ldp_rows(y, w, tree, lo, hi), blocks


def quantile_lp(y, w, tree, lo, hi, level):
    """One row's quantile isotonic regression as a linear program (HiGHS, sparse):
    variables ``x, u, v`` with ``y - x = u - v``, ``u, v >= 0``, minimizing
    ``sum w (level u + (1 - level) v)`` subject to ``x[parent] >= x`` and the bounds.
    Returns ``(x, objective, (c, A_ub, A_eq, bounds))``."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, hstack, identity

    n = tree.n
    child = np.flatnonzero(tree.parent >= 0)
    m = child.size
    rows = np.repeat(np.arange(m), 2)
    cols = np.column_stack([child, tree.parent[child]]).ravel()
    vals = np.tile([1.0, -1.0], m)
    order = csr_matrix((vals, (rows, cols)), shape=(m, n))           # x_child - x_parent <= 0
    a_ub = hstack([order, csr_matrix((m, 2 * n))]).tocsr()
    eye = identity(n, format="csr")
    a_eq = hstack([eye, eye, -eye]).tocsr()                          # x + u - v = y
    c = np.concatenate([np.zeros(n), w * level, w * (1.0 - level)])
    bounds = [(lo, hi)] * n + [(0, None)] * (2 * n)
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq, b_eq=y, bounds=bounds,
                  method="highs")
    if res.status != 0:
        raise RuntimeError(f"the reference linear program failed: {res.message}")
    return res.x[:n], float(res.fun), (c, a_ub, a_eq, bounds)


def _lp_rows(y, w):
    """The common start of the linear-program references: the checks, the outputs ``x`` and
    ``blocks``, and ``row_weights(b)``, row ``b``'s weights scaled to a unit mean."""
    check_weight_spread(w)
    n_rows, n = y.shape
    if n > _MAX_N:
        raise ValueError(f"backend='scipy' takes at most {_MAX_N} nodes, got {n}")

    def row_weights(b):
        wb = np.ones(n) if w.shape[0] == 0 else w[min(b, w.shape[0] - 1)]
        return wb / wb.mean()

    return np.empty((n_rows, n)), np.empty((n_rows, n), dtype=np.int64), row_weights


def _centred(yb, lo, hi):
    """(centre, scale, the row centred and scaled) for the linear programs: the problems are
    shift and scale equivariant, and HiGHS's tolerances are absolute. The scale covers the
    data and the bounds (1 when they are all equal)."""
    mid = float(np.median(yb))
    spread = float(yb.max() - yb.min())
    for v in (lo, hi):
        if v is not None:
            spread = max(spread, abs(v - mid))
    spread = spread if spread > 0 else 1.0
    return mid, spread, (yb - mid) / spread


def quantile_fit_rows(y, w, tree, lo, hi, level, largest=False):
    """The reference quantile fit of every row (orientation root_largest): the linear
    program's optimum, then a second program that finds the pointwise smallest (or, with
    ``largest``, the largest) optimum, minimizing (maximizing) ``sum x`` among the points
    within 1e-9 n of the optimal cost (data centred, scaled to a unit spread and unit mean
    weight); its values are then snapped to the nearest
    data values or bounds, kept if still feasible and optimal to that tolerance.
    Blocks: connected nodes of one value."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, vstack

    x, blocks, row_weights = _lp_rows(y, w)
    n_rows, n = y.shape
    for b in range(n_rows):
        wb = row_weights(b)
        mid, spread, yb = _centred(y[b], lo, hi)
        lo_n = None if lo is None else (lo - mid) / spread
        hi_n = None if hi is None else (hi - mid) / spread
        x0, best, (c, a_ub, a_eq, bounds) = quantile_lp(yb, wb, tree, lo_n, hi_n, level)
        tol = 1e-9 * n
        cost = csr_matrix(c.reshape(1, -1))
        sign = -1.0 if largest else 1.0
        c2 = np.concatenate([sign * np.ones(n), np.zeros(2 * n)])
        res = linprog(c2, A_ub=vstack([a_ub, cost]).tocsr(),
                      b_ub=np.concatenate([np.zeros(a_ub.shape[0]), [best + tol]]),
                      A_eq=a_eq, b_eq=yb, bounds=bounds, method="highs")
        xb = res.x[:n] if res.status == 0 else x0
        # The smallest (largest) optimum takes data values and bounds: snap to the nearest
        # one, and keep the snapped point if it is still feasible and optimal.
        cand = np.unique(np.concatenate([y[b], [v for v in (lo, hi) if v is not None]]))
        cand = cand[(cand >= (-np.inf if lo is None else lo))
                    & (cand <= (np.inf if hi is None else hi))]
        cand_n = (cand - mid) / spread
        right = np.clip(np.searchsorted(cand_n, xb), 0, cand.size - 1)
        left = np.maximum(right - 1, 0)
        pick = np.where(np.abs(cand_n[left] - xb) <= np.abs(cand_n[right] - xb), left, right)
        snap = cand_n[pick]
        child = tree.parent >= 0
        feasible = (snap[tree.parent[child]] >= snap[child]).all()
        if feasible and c[n:] @ np.concatenate([np.maximum(yb - snap, 0),
                                               np.maximum(snap - yb, 0)]) <= best + tol:
            xb = cand[pick]
        else:
            xb = mid + spread * xb
        x[b] = xb
        top = np.arange(n, dtype=np.int64)
        for v in tree.order:             # parents first
            p = tree.parent[v]
            if p >= 0 and xb[p] == xb[v]:
                top[v] = top[p]
        blocks[b] = top
    return x, blocks


# HiGHS's feasibility tolerances (1e-7 by default), tightened for the L-infinity programs
_TIGHT = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def linf_lp(y, w, tree, lo, hi):
    """One row's weighted L-infinity isotonic regression as a linear program (HiGHS, sparse,
    tolerances 1e-10): variables ``x, t``, minimizing ``t`` subject to ``|x - y| <= t / w``,
    ``x[parent] >= x`` and ``lo <= x <= hi`` (both given). Returns
    ``(t*, (A_ub, b_ub, bounds))``."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, diags, hstack, vstack

    n = tree.n
    child = np.flatnonzero(tree.parent >= 0)
    m = child.size
    rows = np.repeat(np.arange(m), 2)
    cols = np.column_stack([child, tree.parent[child]]).ravel()
    order = csr_matrix((np.tile([1.0, -1.0], m), (rows, cols)), shape=(m, n))
    eye = diags(np.ones(n))
    col = csr_matrix(-1.0 / w[:, None])          # x - y <= t / w: a tolerance in x
    a_ub = vstack([hstack([eye, col]), hstack([-eye, col]),
                   hstack([order, csr_matrix((m, 1))])]).tocsr()
    b_ub = np.concatenate([y, -y, np.zeros(m)])
    bounds = [(lo, hi)] * n + [(0, None)]
    c = np.zeros(n + 1)
    c[n] = 1.0
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs", options=_TIGHT)
    if res.status != 0:
        raise RuntimeError(f"the reference linear program failed: {res.message}")
    return float(res.x[n]), (a_ub, b_ub, bounds)


def linf_fit_rows(y, w, tree, lo, hi):
    """The reference L-infinity fit of every row (orientation root_largest), by linear
    programs (HiGHS, sparse): the optimal error ``t*`` of ``min t`` subject to
    ``|x - y| <= t / w``, the order and the bounds; then the smallest and the largest
    ``sum x`` with ``t <= t* (1 + 1e-9)``, whose midpoint is returned (the midpoint of the
    pointwise smallest and largest optima within the data's range clipped to the bounds,
    as :func:`treeiso.fit` defines it, to the programs' tolerance). Solved centred and scaled to a unit spread and unit mean weight.
    A child within 1e-9 of the spread above its parent is set to the parent's value (the
    programs' tolerance), so the values are in order and the blocks are connected nodes of
    one value."""
    from scipy.optimize import linprog

    x, blocks, row_weights = _lp_rows(y, w)
    n_rows, n = y.shape
    for b in range(n_rows):
        wb = row_weights(b)
        mid, spread, yb = _centred(y[b], lo, hi)
        # the data's range clipped to the bounds: the fit's range (as in treeiso.fit)
        lo_n, hi_n = float(yb.min()), float(yb.max())
        if lo is not None:
            lo_n, hi_n = max(lo_n, (lo - mid) / spread), max(hi_n, (lo - mid) / spread)
        if hi is not None:
            lo_n, hi_n = min(lo_n, (hi - mid) / spread), min(hi_n, (hi - mid) / spread)
        t_opt, (a_ub, b_ub, bounds) = linf_lp(yb, wb, tree, lo_n, hi_n)
        t_max = t_opt * (1 + 1e-9) + 1e-12
        ends = []
        for sgn in (1.0, -1.0):
            c2 = np.concatenate([sgn * np.ones(n), [0.0]])
            r2 = linprog(c2, A_ub=a_ub, b_ub=b_ub, bounds=bounds[:n] + [(0, t_max)],
                         method="highs", options=_TIGHT)
            if r2.status != 0:
                raise RuntimeError(f"the reference linear program failed: {r2.message}")
            ends.append(r2.x[:n])
        xb = np.clip(0.5 * ends[0] + 0.5 * ends[1], lo_n, hi_n)
        top = np.arange(n, dtype=np.int64)
        for v in tree.order:             # parents first: exact order, blocks to 1e-9
            p = tree.parent[v]
            if p >= 0 and xb[v] >= xb[p] - 1e-9:
                xb[v] = xb[p]
                top[v] = top[p]
        x[b] = mid + spread * xb
        blocks[b] = top
    return x, blocks


def solve(p, tree, loss, level):
    """The reference fit of :class:`treeiso._problem.Problem` ``p`` (rows oriented
    root_largest, bounds honoured): ``(x, blocks)`` for ``loss`` ("l2", "l1", "quantile",
    "linf"; ``level``: the quantile level of the two middle ones)."""
    from .._problem import oriented_level
    from .._validation import oriented_bounds

    lo, hi = oriented_bounds(p.bounds, p.sign)
    if loss == "linf":
        return linf_fit_rows(p.y, p.w, tree, lo, hi)
    if level is None:
        return fit_rows(p.y, p.w, tree, lo, hi)
    level, largest = oriented_level(level, p.sign)
    return quantile_fit_rows(p.y, p.w, tree, lo, hi, level, largest > 0)
