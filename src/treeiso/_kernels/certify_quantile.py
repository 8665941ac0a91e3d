"""O(n) optimality check of a quantile (or L1) isotonic fit, one row at a time."""

import numpy as np

from .certify_kernel import FLOOR_ULPS, _bound_ratio, _ratio
from .jit import njit, scratch_caller

# Sums of k weighted slopes are compared with 0 to this many ulps of float64 per term, of the
# weight they sum (their rounding; the slopes themselves are exact products w * q).
_SUM_ULPS = 4.0
_EPS64 = float(np.finfo(np.float64).eps)


@njit(cache=True)
def _quantile_kkt_rows(y, w, x, parent, order, level, rtol, eps, lo, hi, has_lo, has_hi, out,
                       fwork, iwork):
    """Fill ``out[b] = (feasibility, dual_sign, slackness, stationarity, nan)`` for the
    problem ``min sum w rho_q(y - x)`` with ``x[parent] >= x`` (and ``lo <= x <= hi`` where
    ``has_lo`` / ``has_hi``), ``q = level``; ratios <= 1 mean satisfied.

    ``x`` is optimal if and only if there are edge multipliers ``lam >= 0``, zero on edges
    with ``x[p] > x[c]``, and a subgradient ``g_v`` of node ``v``'s loss at ``x_v`` with
    ``g_v = sum over children lam_c - lam_v``. The loss's subgradient in ``x`` is
    ``-w q`` below the data, ``w (1 - q)`` above it and the interval between at it; a bound
    that ``x_v`` sits on opens that interval to -inf (lower) or +inf (upper). Within a block
    (nodes joined by equal values) the multipliers are the subtree sums ``lam_v = -G_v``,
    ``G_v = sum of g over v's subtree inside the block``, so the conditions are: every
    ``G_v <= 0`` below a block's top and ``G_top = 0``. Children first, the achievable
    ``G_v`` form the interval ``[a_v + sum A_c, b_v + sum min(B_c, 0)]`` over the children
    ``c`` in the block, whose own ``G_c`` must reach ``<= 0`` (``A_c <= 0``: dual sign);
    a top must reach 0 (``A <= 0 <= B``: slackness below a strict edge, stationarity at a
    root).

    Values are equal (to the data, a parent, a bound) within ``tol_x = rtol * spread +
    FLOOR_ULPS * eps * max|y, x|`` as in the least-squares check; sums of ``k`` slopes
    are compared to ``_SUM_ULPS * k * eps64`` times the weight they sum.
    ``fwork`` / ``iwork``: scratch rows, which the public name (made by
    :func:`treeiso._kernels.jit.scratch_caller`) allocates.
    """
    n_rows, n = y.shape
    n_w = w.shape[0]
    top = iwork[0]
    lo_g = fwork[0]       # A_v
    hi_g = fwork[1]       # B_v
    wsum = fwork[2]       # weight of v's subtree inside its block
    cnt = fwork[3]        # its number of nodes
    for b in range(n_rows):
        wr = 0 if n_w <= 1 else b
        ymax = -np.inf
        ymin = np.inf
        amax = 0.0
        for v in range(n):
            ymax = max(ymax, y[b, v])
            ymin = min(ymin, y[b, v])
            amax = max(amax, abs(y[b, v]), abs(x[b, v]))
        tol_x = rtol * (ymax - ymin) + FLOOR_ULPS * eps * amax
        feas = 0.0
        for i in range(n):                   # parents before children: the blocks
            v = order[i]
            p = parent[v]
            xv = x[b, v]
            feas = max(feas, _bound_ratio(xv, lo, hi, has_lo, has_hi, tol_x))
            top[v] = v
            if p >= 0:
                feas = max(feas, _ratio(xv - x[b, p], tol_x))
                if x[b, p] - xv <= tol_x:
                    top[v] = top[p]
            wv = w[wr, v] if n_w > 0 else 1.0
            r = y[b, v] - xv
            # the subgradient interval [a, c]: one end below the data (r > tol_x), the other
            # above it, both at it (written as two selects: no unpredictable branch)
            down = -wv * level
            up = wv * (1.0 - level)
            a = up if r < -tol_x else down
            c = down if r > tol_x else up
            if has_lo and xv - lo <= tol_x:
                a = -np.inf
            if has_hi and hi - xv <= tol_x:
                c = np.inf
            lo_g[v] = a
            hi_g[v] = c
            wsum[v] = wv
            cnt[v] = 1.0
        sign = 0.0
        slack = 0.0
        stat = 0.0
        for i in range(n - 1, -1, -1):       # children before parents: the sums
            v = order[i]
            p = parent[v]
            tol = _SUM_ULPS * _EPS64 * cnt[v] * wsum[v]
            a = lo_g[v]
            c = hi_g[v]
            if top[v] != v:                  # an edge inside a block: G_v <= 0 reachable
                sign = max(sign, _ratio(a, tol))
                lo_g[p] += a
                hi_g[p] += min(c, 0.0)
                wsum[p] += wsum[v]
                cnt[p] += cnt[v]
                continue
            viol = max(a, -c)                # 0 must be reachable
            if p >= 0:
                slack = max(slack, _ratio(viol, tol))
            else:
                stat = max(stat, _ratio(viol, tol))
        out[b, 0] = feas
        out[b, 1] = sign
        out[b, 2] = slack
        out[b, 3] = stat
        out[b, 4] = np.nan


quantile_kkt_rows = scratch_caller(_quantile_kkt_rows, (4, np.float64), (1, np.int64))
