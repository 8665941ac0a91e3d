"""O(n) KKT check of a candidate solution, one row at a time."""

import numpy as np
from .jit import njit, scratch_caller

# Rounding allowance, in units of eps * max|y| per unit of weight: an exact answer is only
# representable to about an ulp of the data's magnitude, and the solvers' convex-combination
# means add a few more (the data's offset, not its spread, sets this floor).
FLOOR_ULPS = 32.0


@njit(cache=True, inline="always")
def _ratio(viol, tol):
    """viol / tol, safe for tol == 0 (a zero tolerance passes exactly zero violations)."""
    if viol <= 0.0:
        return 0.0
    if tol > 0.0:
        return viol / tol
    return np.inf


@njit(cache=True, inline="always")
def _bound_ratio(xv, lo, hi, has_lo, has_hi, tol):
    """How far ``xv`` is outside ``[lo, hi]`` (the bounds that are set), over ``tol``."""
    out = 0.0
    if has_lo:
        out = _ratio(lo - xv, tol)
    if has_hi:
        out = max(out, _ratio(xv - hi, tol))
    return out


# Kinds of block, by the bound its value sits on (within tol_x).
_FREE, _AT_HI, _AT_LO, _AT_BOTH = 0, 1, 2, 3


@njit(cache=True)
def _kkt_rows(y, w, x, parent, order, rtol, eps, lo, hi, has_lo, has_hi, out,
              fwork, iwork):
    """Fill ``out[b] = (feasibility, dual_sign, slackness, stationarity, gap)``.

    Each of the first four is the worst violation divided by its tolerance
    (<= 1 means satisfied). ``gap`` bounds ``0.5 * ||x - x*||_w^2`` (for feasible ``x``).
    Orientation root_largest, bounds ``lo <= x <= hi`` where ``has_lo`` / ``has_hi``;
    float64 inputs, finite, scaled so that sums neither overflow nor underflow; ``eps``:
    the unit roundoff of the precision the candidate was given in.

    Blocks are the nodes joined by edges with ``x[p] - x[c] <= tol_x``. The KKT conditions
    decompose by block: with ``g = w (y - x)`` and ``S(v)`` the sum of ``g`` over the part
    of ``v``'s subtree inside its block,

    - a block within the bounds holds its weighted mean (``S(top) = 0``) and every edge
      inside it has a non-negative multiplier (``S(v) >= 0``);
    - a block on the upper bound needs ``S(v) >= 0`` everywhere, its top included (the
      bound's multiplier takes ``S(top)``);
    - a block on the lower bound may hand any deficit to the bound's multipliers: with
      ``Q(v) = g_v + sum over its children in the block of max(Q(c), 0)`` (the smallest
      non-negative edge multipliers), it needs ``Q(top) <= 0``.

    Tolerances come from the row's spread ``max y - min y`` (shift-invariant) plus a floor
    of ``FLOOR_ULPS`` units of ``eps * max(|y|, |x|)`` (representation), per unit weight:
    values ``tol_x = rtol * spread + floor``; ``S(v) >= -W(v) * tol_x`` with ``W(v)`` the
    weight of that part of the subtree; a block's condition to ``W(block) * tol_x``. One
    tolerance per block: a light block in a heavy tree is judged on its own weight.

    The gap comes from the dual point these multipliers make (edges ``lam``, bounds ``mu``):
    ``sum (d - g)^2 / (2 w) + sum lam (x_p - x_c) + sum mu_hi (hi - x) + sum mu_lo (x - lo)``
    with ``d`` each node's net multiplier, a sum of non-negative terms for a feasible ``x``
    (no cancellation), zero exactly when the multipliers prove ``x`` optimal.
    ``fwork`` / ``iwork``: scratch rows, which the public name (made by
    :func:`treeiso._kernels.jit.scratch_caller`) allocates.
    """
    n_rows, n = y.shape
    n_w = w.shape[0]
    acc = fwork[0]        # S(v) (or Q(v) in a block on the lower bound)
    wblk = fwork[1]       # weight of v's subtree inside its block
    lam = fwork[2]        # multiplier of the edge above v (0 at a block's top)
    lam_ch = fwork[3]     # sum of the children's lam
    top = iwork[0]
    kind = iwork[1]
    for b in range(n_rows):
        wr = 0 if n_w <= 1 else b
        ymax = -np.inf
        ymin = np.inf
        amax = 0.0
        for v in range(n):
            yv = y[b, v]
            ymax = max(ymax, yv)
            ymin = min(ymin, yv)
            amax = max(amax, abs(yv), abs(x[b, v]))
            wv = w[wr, v] if n_w > 0 else 1.0
            acc[v] = wv * (yv - x[b, v])
            wblk[v] = wv
            lam_ch[v] = 0.0
        tol_x = rtol * (ymax - ymin) + FLOOR_ULPS * eps * amax
        feas = 0.0
        for i in range(n):                   # parents before children: the blocks
            v = order[i]
            p = parent[v]
            xv = x[b, v]
            feas = max(feas, _bound_ratio(xv, lo, hi, has_lo, has_hi, tol_x))
            if p >= 0:
                feas = max(feas, _ratio(xv - x[b, p], tol_x))
                if x[b, p] - xv <= tol_x:
                    top[v] = top[p]
                    kind[v] = kind[p]
                    continue
            top[v] = v
            at_hi = has_hi and abs(xv - hi) <= tol_x
            at_lo = has_lo and abs(xv - lo) <= tol_x
            kind[v] = (_AT_BOTH if at_hi and at_lo else _AT_HI if at_hi
                       else _AT_LO if at_lo else _FREE)
        sign = 0.0
        slack = 0.0
        stat = 0.0
        for i in range(n - 1, -1, -1):       # children before parents: the sums
            v = order[i]
            p = parent[v]
            k = kind[v]
            if top[v] != v:                  # an edge inside a block
                a = acc[v]
                lam[v] = a if a > 0.0 else 0.0
                if k == _FREE or k == _AT_HI:
                    sign = max(sign, _ratio(-a, wblk[v] * tol_x))
                    acc[p] += a
                else:
                    acc[p] += lam[v]
                wblk[p] += wblk[v]
                lam_ch[p] += lam[v]
                continue
            lam[v] = 0.0
            a = acc[v]
            if k == _FREE:
                viol = abs(a)
            elif k == _AT_HI:
                viol = -a
            elif k == _AT_LO:
                viol = a
            else:
                viol = 0.0
            q = _ratio(viol, wblk[v] * tol_x)
            if p >= 0:
                slack = max(slack, q)
            else:
                stat = max(stat, q)
        gap = 0.0
        for v in range(n):
            wv = w[wr, v] if n_w > 0 else 1.0
            g = wv * (y[b, v] - x[b, v])
            k = kind[v]
            d = lam[v] - lam_ch[v]
            if k != _FREE:
                # The bounds' multipliers: what the edges leave of g (see the docstring).
                a = g - d
                if a > 0.0 and (k == _AT_HI or k == _AT_BOTH):
                    d += a
                    gap += a * (hi - x[b, v])
                elif a < 0.0 and (k == _AT_LO or k == _AT_BOTH):
                    d += a
                    gap += -a * (x[b, v] - lo)
            e = d - g
            gap += 0.5 * (e / wv) * e
            p = parent[v]
            if p >= 0 and lam[v] > 0.0:
                gap += lam[v] * (x[b, p] - x[b, v])
        out[b, 0] = feas
        out[b, 1] = sign
        out[b, 2] = slack
        out[b, 3] = stat
        out[b, 4] = gap


kkt_rows = scratch_caller(_kkt_rows, (4, np.float64), (2, np.int64))
