"""Weighted L-infinity isotonic regression on a tree: the optimal error by Dinkelbach's
iteration over violating pairs, then the midpoint of the smallest and largest optima.

For a row ``y`` with weights ``w`` (``r = 1 / w``) the kernel solves

    minimize  max_i w_i |x_i - y_i|   subject to  x[parent(i)] >= x[i]  (and lo <= x <= hi).

An isotonic ``x`` with error at most ``e`` exists if and only if, for every node ``a`` and
every node ``d`` of its subtree, ``y_d - e r_d <= y_a + e r_a`` (and ``lo <= y_a + e r_a``,
``y_d - e r_d <= hi``). So the optimal error is the largest of the pair values
``(y_d - y_a) / (r_d + r_a)`` and the bound values ``w (lo - y)``, ``w (y - hi)``. Starting
from the bound values, one pass children-first finds for every ``a`` the ``d`` of its subtree
that maximizes ``y_d - e r_d``; each violated pair's value is a lower bound on the optimum,
and the largest becomes the next ``e`` (Dinkelbach's method for this max-ratio problem: ``e``
rises strictly and reaches the optimum in a few passes). At the optimal ``e``,
``L_v = max(lo, max_{d in subtree(v)} y_d - e r_d)`` is the pointwise smallest optimum and
``U_v = min(hi, min_{a ancestor of v or v} y_a + e r_a)`` the largest. The kernel first
narrows ``[lo, hi]`` to the row's data range clipped to the bounds (every optimum clipped to
it is one, so the error is the same, and a light root's wide band cannot carry it far from
the data) and returns the midpoint of L and U, which commutes with negating the problem (so
both orientations agree), computed so that each node keeps its own error within ``e`` to its
own rounding. Each pass
is O(n); the iteration count is small in practice (Dinkelbach converges superlinearly), and
a bisection over the floats bounds it by a constant in any case (:func:`_optimal_error`), so a
row costs O(n).

Kernels are flat and trust their inputs; :func:`treeiso.fit` validates.
"""

import numpy as np

from .jit import INDEX, njit, scratch_caller


# Dinkelbach passes before a bisection takes over (2-6 passes are the rule; with the
# bisection a row costs at most 2 * DINKELBACH_PASSES + 66 passes of O(n))
DINKELBACH_PASSES = 16


@njit(cache=True, nogil=True)
def _load_row(y, w, b, bnd, order, ys, rs):
    """Row ``b``'s data and reciprocal weights by position into ``ys``, ``rs``; returns the
    bounds of the problem solved, ``(lo_r, hi_r)``: the data's range clipped to the bounds
    ``bnd`` (every optimum clipped to it is one, with the same error)."""
    n = ys.shape[0]
    n_w = w.shape[0]
    wr = 0 if n_w <= 1 else b
    ymin = np.inf
    ymax = -np.inf
    for i in range(n):
        v = order[i]
        ys[i] = y[b, v]
        wv = w[wr, v] if n_w > 0 else 1.0
        rs[i] = 1.0 / wv
        ymin = min(ymin, ys[i])
        ymax = max(ymax, ys[i])
    lo, hi = bnd[0], bnd[1]
    lo_r = max(ymin, lo) if bnd[2] > 0.5 else ymin
    hi_r = max(ymax, lo) if bnd[2] > 0.5 else ymax
    if bnd[3] > 0.5:
        lo_r = min(lo_r, hi)
        hi_r = min(hi_r, hi)
    return lo_r, hi_r


@njit(cache=True, nogil=True)
def _violation_pass(ys, rs, parent_pos, e, best, arg):
    """One pass at the error ``e``: fills ``best[i]`` / ``arg[i]`` (the largest
    ``y_d - e r_d`` over the subtree of position ``i`` and its position ``d``) and returns the
    largest ratio of a pair violated at ``e``, or ``e`` when none is (``e`` is feasible)."""
    n = ys.shape[0]
    for i in range(n):
        best[i] = ys[i] - e * rs[i]
        arg[i] = i
    for i in range(n - 1, 0, -1):    # children before parents
        p = parent_pos[i]
        if p >= 0 and best[i] > best[p]:
            best[p] = best[i]
            arg[p] = arg[i]
    nxt = e
    for i in range(n):
        if best[i] > ys[i] + e * rs[i]:
            d = arg[i]
            nxt = max(nxt, (ys[d] - ys[i]) / (rs[d] + rs[i]))
    return nxt


@njit(cache=True, nogil=True)
def _dinkelbach(ys, rs, parent_pos, e, best, arg, passes):
    """At most ``passes`` steps of Dinkelbach's iteration from ``e`` (a lower bound): returns
    ``(e, True)`` at the first feasible value (``best`` / ``arg`` at it), else
    ``(the last value, False)``."""
    for _ in range(passes):
        nxt = _violation_pass(ys, rs, parent_pos, e, best, arg)
        if nxt <= e:
            return e, True
        e = nxt
    return e, False


@njit(cache=True, nogil=True)
def _optimal_error(ys, rs, parent_pos, lo_r, hi_r, best, arg, passes):
    """The optimal error, by Dinkelbach's iteration (each value a pair's ratio, computed from
    the pair's own difference). If it has not converged in ``passes`` passes, a bisection over
    the float64 numbers (at most 64 passes) finds the smallest float that the check accepts,
    and the iteration restarts from the float below it (``passes`` more); should that not
    converge either, that smallest accepted float is the answer. So a row costs at most
    ``2 passes + 66`` passes of O(n). Leaves ``best`` / ``arg`` (see :func:`_violation_pass`)
    at the returned error."""
    n = ys.shape[0]
    e = 0.0
    rmin = np.inf
    ymin = np.inf
    ymax = -np.inf
    for i in range(n):
        if lo_r > ys[i]:
            e = max(e, (lo_r - ys[i]) / rs[i])
        if ys[i] > hi_r:
            e = max(e, (ys[i] - hi_r) / rs[i])
        rmin = min(rmin, rs[i])
        ymin = min(ymin, ys[i])
        ymax = max(ymax, ys[i])
    e, done = _dinkelbach(ys, rs, parent_pos, e, best, arg, passes)
    if done or _violation_pass(ys, rs, parent_pos, e, best, arg) <= e:
        return e
    # e is rejected. Every pair's ratio is at most (ymax - ymin) / (2 rmin); doubling covers
    # rounding.
    high = max(e, 0.5 * (ymax - ymin) / rmin)
    while _violation_pass(ys, rs, parent_pos, high, best, arg) > high:
        high = 2.0 * high if high > 0.0 else 1.0
    bits = np.empty(2)
    ibits = bits.view(np.int64)      # the order of non-negative floats is that of their bits
    bits[0] = e
    bits[1] = high
    lo_b, hi_b = ibits[0], ibits[1]
    while hi_b - lo_b > 1:
        ibits[0] = lo_b + (hi_b - lo_b) // 2
        mid = bits[0]
        if _violation_pass(ys, rs, parent_pos, mid, best, arg) > mid:
            lo_b = ibits[0]
        else:
            hi_b = ibits[0]
    ibits[0] = lo_b
    ibits[1] = hi_b
    e, done = _dinkelbach(ys, rs, parent_pos, bits[0], best, arg, passes)
    if done:
        return e
    _violation_pass(ys, rs, parent_pos, bits[1], best, arg)
    return bits[1]


@njit(cache=True, nogil=True)
def linf_structure_rows(y, w, bnd, order, parent_pos, down, up, crit):
    """What the fit of each row is a function of, for its derivatives (arguments as in
    :func:`linf_rows`; outputs by node id): ``down[b, v]``, the node ``d`` of ``v``'s subtree
    with the largest ``y_d - e r_d`` (it sets the smallest optimum ``L_v``); ``up[b, v]``, the
    node ``a`` among ``v`` and its ancestors with the smallest ``y_a + e r_a`` (it sets
    ``U_v``); ``crit[b] = (kind, i, j)``, the term that sets the optimal error ``e``: kind 0
    none (``e = 0``), 1 the pair ``(y_i - y_j) / (r_i + r_j)`` (``i`` below ``j``), 2 the
    bound term ``(lo_r - y_i) / r_i``, 3 the bound term ``(y_i - hi_r) / r_i``."""
    n_rows, n = y.shape
    idx_t = parent_pos.dtype.type
    ys = np.empty(n)
    rs = np.empty(n)
    best = np.empty(n)
    arg = np.empty(n, dtype=idx_t)
    low = np.empty(n)
    low_arg = np.empty(n, dtype=idx_t)
    for b in range(n_rows):
        lo_r, hi_r = _load_row(y, w, b, bnd, order, ys, rs)
        e = _optimal_error(ys, rs, parent_pos, lo_r, hi_r, best, arg, int(bnd[4]))
        kind, ci, cj, top = 0, 0, 0, 0.0
        for i in range(n):
            if lo_r > ys[i] and (lo_r - ys[i]) / rs[i] > top:
                kind, ci, cj, top = 2, i, i, (lo_r - ys[i]) / rs[i]
            if ys[i] > hi_r and (ys[i] - hi_r) / rs[i] > top:
                kind, ci, cj, top = 3, i, i, (ys[i] - hi_r) / rs[i]
            d = arg[i]
            if d != i and ys[d] > ys[i] and (ys[d] - ys[i]) / (rs[d] + rs[i]) > top:
                kind, ci, cj, top = 1, d, i, (ys[d] - ys[i]) / (rs[d] + rs[i])
        crit[b, 0] = kind
        crit[b, 1] = order[ci]
        crit[b, 2] = order[cj]
        for i in range(n):                   # parents first: the smallest y_a + e r_a above
            p = parent_pos[i]
            low[i] = ys[i] + e * rs[i]
            low_arg[i] = i
            if p >= 0 and low[p] < low[i]:
                low[i] = low[p]
                low_arg[i] = low_arg[p]
            down[b, order[i]] = order[arg[i]]
            up[b, order[i]] = order[low_arg[i]]


@njit(cache=True, nogil=True)
def _linf_rows(y, w, bnd, order, parent_pos, x, blocks, fwork, iwork):
    """Fit every row of ``y``; ``bnd`` is a float64 array ``[lo, hi, has_lo, has_hi,
    passes]`` (``passes``: Dinkelbach passes before the bisection, see :func:`_optimal_error`).

    ``y``: float64 (B, n). ``w``: float64 (Bw, n), Bw in {0 (unit weights), 1, B}.
    ``order`` / ``parent_pos``: the tree's breadth-first order and parent positions.
    ``x``: float64 (B, n) output; ``blocks``: int64 (B, n) output or (0, n).
    ``fwork`` / ``iwork``: scratch rows, which the public name (made by
    :func:`treeiso._kernels.jit.scratch_caller`) allocates.
    """
    n_rows, n = y.shape
    ys = fwork[0]          # data, by position
    rs = fwork[1]          # 1 / weight, by position
    best = fwork[2]        # max over the subtree of y_d - e r_d
    arg = iwork[0]
    xs = fwork[3]          # the fit, by position
    up = fwork[4]
    key = fwork[5]         # weight of the node whose band set the value
    top = iwork[1]
    with_blocks = blocks.shape[0] > 0
    for b in range(n_rows):
        lo_r, hi_r = _load_row(y, w, b, bnd, order, ys, rs)
        e = _optimal_error(ys, rs, parent_pos, lo_r, hi_r, best, arg, int(bnd[4]))
        for i in range(n):                   # parents before children: U, the midpoint
            p = parent_pos[i]
            u = ys[i] + e * rs[i]
            if p >= 0 and up[p] < u:
                u = up[p]
            up[i] = u
            lv = best[i]
            if lv < lo_r:
                lv = lo_r
            uv = u
            if uv > hi_r:
                uv = hi_r
            t = 0.5 * lv + 0.5 * uv
            # What follows changes t only by rounding, which L and U carry from other nodes
            # (a light node's y - e r loses the digits a heavy one needs): keep t in the
            # node's own band, computed at its own scale, and in the bounds.
            band = e * rs[i]
            if t < ys[i] - band:
                t = ys[i] - band
            if t > ys[i] + band:
                t = ys[i] + band
            if t < lo_r:
                t = lo_r
            if t > hi_r:
                t = hi_r
            xs[i] = t
            key[i] = 1.0 / rs[i]
        # Rounding conflicts with the order go to the heavier side: a parent below a child
        # that holds a heavier node's value is raised to it (children first) ...
        for i in range(n - 1, 0, -1):
            p = parent_pos[i]
            if p >= 0 and xs[i] > xs[p] and key[i] >= key[p]:
                xs[p] = xs[i]
                key[p] = key[i]
        # ... and every child is kept at or below its parent (parents first): exact order.
        for i in range(n):
            p = parent_pos[i]
            t = xs[i]
            if p >= 0 and t > xs[p]:
                t = xs[p]
                xs[i] = t
            top[i] = top[p] if p >= 0 and xs[p] == t else i
            v = order[i]
            x[b, v] = t
            if with_blocks:
                blocks[b, v] = order[top[i]]


linf_rows = scratch_caller(_linf_rows, (6, np.float64), (2, INDEX), index_arg=4)
