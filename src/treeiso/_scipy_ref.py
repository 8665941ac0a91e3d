"""Reference solver: the isotonic regression as a bounded least-squares problem.

Slow (dense n x n matrix, O(n^3)) and independent of the fast kernels: used as
``backend="scipy"`` and by the tests. SPEC section 4, "QP reference".

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
"""

import numpy as np

_MAX_N = 5_000      # three dense n x n float64 matrices: 600 MB at the cap


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
    """Solve every row of ``y`` (B, n) with SciPy's BVLS; orientation root_largest."""
    from scipy.optimize import lsq_linear

    n = tree.n
    if n > _MAX_N:
        raise ValueError(
            f"backend='scipy' builds a dense {n} x {n} matrix; it is meant for "
            f"n <= {_MAX_N}, use the default backend"
        )
    x = np.empty_like(y)
    if n == 0:
        return x
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
        x[b] = a_signed @ res.x * scale + shift
    return x


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
        lam = lsq_linear(m, target, bounds=(0.0, np.inf), method="bvls", tol=1e-15,
                         lsq_solver="exact").x
        r = m @ lam - target              # u = -r[:n] / r[n] (Lawson & Hanson, 23.4)
        x[b] = (yb - r[:n] / (r[n] * np.sqrt(wr))) * scale + shift
    return x


def fit_rows(y, w, tree, lo=None, hi=None):
    """The reference fit of every row (orientation root_largest), bounded or not."""
    if lo is None and hi is None:
        return bvls_rows(y, w, tree)
    return ldp_rows(y, w, tree, lo, hi)
