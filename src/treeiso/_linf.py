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
is O(n); the iteration count is small in practice (Dinkelbach converges superlinearly) but
not bounded by a constant.

Kernels are flat and trust their inputs; :func:`treeiso.fit` validates.
"""

import numpy as np

from ._jit import njit


@njit(cache=True, nogil=True)
def linf_rows(y, w, bnd, order, parent_pos, x, blocks):
    """Fit every row of ``y``; ``bnd`` is a float64 array ``[lo, hi, has_lo, has_hi]``.

    ``y``: float64 (B, n). ``w``: float64 (Bw, n), Bw in {0 (unit weights), 1, B}.
    ``order`` / ``parent_pos``: the tree's breadth-first order and parent positions.
    ``x``: float64 (B, n) output; ``blocks``: int64 (B, n) output or (0, n).
    """
    n_rows, n = y.shape
    n_w = w.shape[0]
    lo, hi = bnd[0], bnd[1]
    has_lo, has_hi = bnd[2] > 0.5, bnd[3] > 0.5
    idx_t = parent_pos.dtype.type
    ys = np.empty(n)          # data, by position
    rs = np.empty(n)          # 1 / weight, by position
    best = np.empty(n)        # max over the subtree of y_d - e r_d
    arg = np.empty(n, dtype=idx_t)
    xs = np.empty(n)          # the fit, by position
    up = np.empty(n)
    key = np.empty(n)         # weight of the node whose band set the value
    top = np.empty(n, dtype=idx_t)
    with_blocks = blocks.shape[0] > 0
    for b in range(n_rows):
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
        # The data's range, clipped to the bounds, bounds the fit: every optimum clipped to
        # it is one (the same error), so these are the bounds of the problem solved.
        lo_r = max(ymin, lo) if has_lo else ymin
        hi_r = max(ymax, lo) if has_lo else ymax
        if has_hi:
            lo_r = min(lo_r, hi)
            hi_r = min(hi_r, hi)
        e = 0.0
        for i in range(n):
            if lo_r > ys[i]:
                e = max(e, (lo_r - ys[i]) / rs[i])
            if ys[i] > hi_r:
                e = max(e, (ys[i] - hi_r) / rs[i])
        while True:
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
            if nxt <= e:
                break
            e = nxt
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
