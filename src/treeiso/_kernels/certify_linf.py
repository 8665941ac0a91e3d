"""O(n) optimality check of a weighted L-infinity isotonic fit, one row at a time."""

import numpy as np

from .certify_kernel import FLOOR_ULPS, _bound_ratio, _ratio
from .jit import njit, scratch_caller

# Passes of the lower-bound search beyond the first (each raises the bound strictly; one or
# two are the rule).
_MAX_PASSES = 64


@njit(cache=True)
def _linf_kkt_rows(y, w, x, parent, order, rtol, eps, lo, hi, has_lo, has_hi, out,
                   fwork, iwork):
    """Fill ``out[b] = (feasibility, 0, 0, band, gap)`` for ``min max w |x - y|`` with
    ``x[parent] >= x`` (and ``lo <= x <= hi`` where ``has_lo`` / ``has_hi``).

    A pair of nodes, ``a`` and a node ``d`` of its subtree, proves that every fit has error
    at least ``(y_d - y_a) / (r_d + r_a)`` (``r = 1 / w``; any fit has ``x_a >= x_d``), and a
    node below ``lo`` (above ``hi``) proves ``w (lo - y)`` (``w (y - hi)``). The check finds
    such a lower bound ``LB``: one pass children-first at the candidate's error ``E`` takes,
    for every ``a``, the ``d`` of its subtree maximizing ``y_d - E r_d``; while that leaves
    nodes outside their band, further passes at ``LB`` raise it (Dinkelbach's step, from
    below). ``x`` is accepted when it is feasible and every node is within its band at the
    proven bound, ``|x_v - y_v| <= LB r_v + tol_x`` (``tol_x`` as in the least-squares
    check): then its error is the optimum up to ``w_v tol_x`` at each node. ``band`` is the
    worst ``(|x_v - y_v| - LB r_v) / tol_x``; ``gap`` is ``E - LB``, in units of the error.
    ``fwork`` / ``iwork``: scratch rows, which the public name (made by
    :func:`treeiso._kernels.jit.scratch_caller`) allocates.
    """
    n_rows, n = y.shape
    n_w = w.shape[0]
    best = fwork[0]
    arg = iwork[0]
    for b in range(n_rows):
        wr = 0 if n_w <= 1 else b
        ymax = -np.inf
        ymin = np.inf
        amax = 0.0
        err = 0.0
        lower = 0.0
        feas = 0.0
        for v in range(n):
            yv = y[b, v]
            xv = x[b, v]
            ymax = max(ymax, yv)
            ymin = min(ymin, yv)
            amax = max(amax, abs(yv), abs(xv))
            wv = w[wr, v] if n_w > 0 else 1.0
            err = max(err, wv * abs(xv - yv))
            if has_lo:
                lower = max(lower, wv * (lo - yv))
            if has_hi:
                lower = max(lower, wv * (yv - hi))
        tol_x = rtol * (ymax - ymin) + FLOOR_ULPS * eps * amax
        for v in range(n):
            p = parent[v]
            xv = x[b, v]
            feas = max(feas, _bound_ratio(xv, lo, hi, has_lo, has_hi, tol_x))
            if p >= 0:
                feas = max(feas, _ratio(xv - x[b, p], tol_x))
        level = err
        band = 0.0
        for _ in range(_MAX_PASSES + 1):
            for v in range(n):
                best[v] = y[b, v] - level / (w[wr, v] if n_w > 0 else 1.0)
                arg[v] = v
            for i in range(n - 1, -1, -1):   # children before parents
                v = order[i]
                p = parent[v]
                if p >= 0 and best[v] > best[p]:
                    best[p] = best[v]
                    arg[p] = arg[v]
            for a in range(n):
                d = arg[a]
                if d != a and y[b, d] > y[b, a]:
                    ra = 1.0 / (w[wr, a] if n_w > 0 else 1.0)
                    rd = 1.0 / (w[wr, d] if n_w > 0 else 1.0)
                    lower = max(lower, (y[b, d] - y[b, a]) / (rd + ra))
            band = 0.0
            for v in range(n):
                rv = 1.0 / (w[wr, v] if n_w > 0 else 1.0)
                band = max(band, _ratio(abs(x[b, v] - y[b, v]) - lower * rv, tol_x))
            if band <= 1.0 or lower <= level and level < err:
                break                        # accepted, or the bound stopped rising
            level = lower
        out[b, 0] = feas
        out[b, 1] = 0.0
        out[b, 2] = 0.0
        out[b, 3] = band
        out[b, 4] = max(err - lower, 0.0)


linf_kkt_rows = scratch_caller(_linf_kkt_rows, (1, np.float64), (1, np.int64))
