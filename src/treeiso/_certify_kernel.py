"""O(n) KKT check of a candidate solution (SPEC section 4), one row at a time."""

import numpy as np
from ._jit import njit

# Rounding allowance, in units of eps * max|y| per unit of weight: an exact answer is only
# representable to about an ulp of the data's magnitude, and the solvers' convex-combination
# means add a few more (issue 8: the data's offset, not its spread, sets this floor).
FLOOR_ULPS = 32.0


@njit(cache=True, inline="always")
def _ratio(viol, tol):
    """viol / tol, safe for tol == 0 (a zero tolerance passes exactly zero violations)."""
    if viol <= 0.0:
        return 0.0
    if tol > 0.0:
        return viol / tol
    return np.inf


@njit(cache=True)
def kkt_rows(y, w, x, parent, order, rtol, out):
    """Fill ``out[b] = (feasibility, dual_sign, slackness, stationarity, gap)``.

    Each of the first four is the worst violation divided by its tolerance
    (<= 1 means satisfied). ``gap`` is the duality-gap bound on
    ``0.5 * ||x - x*||_w^2``. Orientation root_largest; float64 inputs, finite,
    weights scaled so that their sums neither overflow nor underflow.

    Tolerances come from the row's spread ``max y - min y`` (shift-invariant) plus a
    floor of ``FLOOR_ULPS`` ulps of ``max|y|`` (representation), per unit weight:

    - values: ``tol_x = rtol * spread + floor``;
    - a multiplier ``R(c)`` (sum of ``w (y - x)`` over the subtree of ``c``) must be
      ``>= -W(subtree) * tol_x``;
    - blocks (nodes joined by edges with ``x[p] - x[c] <= tol_x``) must hold their
      weighted mean: ``|sum_B w (y - x)| <= W(B) * tol_x``. Given dual feasibility this is
      complementary slackness (blocks below a strictly ordered edge) and stationarity
      (root blocks); with one tolerance per block, a light block in a heavy tree is judged
      on its own weight, not the tree's.
    """
    n_rows, n = y.shape
    n_w = w.shape[0]
    eps = np.finfo(np.float64).eps
    resid = np.empty(n)      # R(c): subtree sums of w (y - x)
    wsub = np.empty(n)       # subtree weights
    lam_plus = np.empty(n)   # children's sum of max(R, 0)
    top = np.empty(n, np.int64)  # block of each node (its top node)
    bres = np.empty(n)       # per block top: sum of w (y - x), and weight
    bw = np.empty(n)
    for b in range(n_rows):
        wr = 0 if n_w <= 1 else b
        ymax = -np.inf
        ymin = np.inf
        amax = 0.0
        wt = 0.0
        mu = 0.0             # weighted mean (convex updates: no large sums)
        for v in range(n):
            yv = y[b, v]
            ymax = max(ymax, yv)
            ymin = min(ymin, yv)
            amax = max(amax, abs(yv))
            wv = w[wr, v] if n_w > 0 else 1.0
            wt += wv
            mu += (wv / wt) * (yv - mu)
            resid[v] = wv * (y[b, v] - x[b, v])
            wsub[v] = wv
            lam_plus[v] = 0.0
            bres[v] = 0.0
            bw[v] = 0.0
        for i in range(n - 1, -1, -1):       # children before parents
            v = order[i]
            p = parent[v]
            if p >= 0:
                resid[p] += resid[v]
                wsub[p] += wsub[v]
                if resid[v] > 0.0:
                    lam_plus[p] += resid[v]
        tol_x = rtol * (ymax - ymin) + FLOOR_ULPS * eps * amax
        feas = 0.0
        sign = 0.0
        slack = 0.0
        stat = 0.0
        primal = 0.0
        dual = 0.0
        for i in range(n):                   # parents before children
            v = order[i]
            wv = w[wr, v] if n_w > 0 else 1.0
            p = parent[v]
            if p >= 0:
                feas = max(feas, _ratio(x[b, v] - x[b, p], tol_x))
                sign = max(sign, _ratio(-resid[v], wsub[v] * tol_x))
                top[v] = top[p] if x[b, p] - x[b, v] <= tol_x else v
                own = resid[v] if resid[v] > 0.0 else 0.0
            else:
                top[v] = v
                own = 0.0
            t = top[v]
            bres[t] += wv * (y[b, v] - x[b, v])
            bw[t] += wv
            # The dual objective on centred data (sum d = 0: the same value, less cancellation).
            d = own - lam_plus[v]
            r = x[b, v] - y[b, v]
            primal += 0.5 * wv * r * r
            dual += d * (y[b, v] - mu) - d * (d / wv) * 0.5
        for v in range(n):
            if top[v] == v:
                q = _ratio(abs(bres[v]), bw[v] * tol_x)
                if parent[v] >= 0:
                    slack = max(slack, q)
                else:
                    stat = max(stat, q)
        out[b, 0] = feas
        out[b, 1] = sign
        out[b, 2] = slack
        out[b, 3] = stat
        out[b, 4] = max(primal - dual, 0.0)
