"""Quantile (and L1) isotonic regression on a tree: the slope trick on pairing heaps.

For a row ``y`` with weights ``w`` and a quantile level ``q`` in (0, 1) the kernel solves

    minimize  sum_i w_i rho_q(y_i - x_i)   subject to  x[parent(i)] >= x[i],

with the pinball loss ``rho_q(u) = u (q - [u < 0])`` (``q = 1/2``: half the weighted L1 loss).
Let ``f_v(t)`` be the least cost of the subtree of ``v`` with ``x_v = t`` and
``F_v(s) = min_{t <= s} f_v(t)`` the least cost when the parent holds ``s``. Then

    f_v(t) = w_v rho_q(y_v - t) + sum_{children c} F_c(t).

Every ``F_c`` is convex, piecewise linear and non-increasing; it is kept as the multiset of
its breakpoints (position, slope increase) in a max-heap. ``f_v`` melds the children's heaps and
adds the breakpoint ``(y_v, w_v)``; its slope at the far right is ``(1 - q) w_v``, so ``F_v``
(the running minimum of ``f_v``) removes that much slope increase from the largest breakpoints
(splitting the last one). What remains has its top at the smallest minimiser ``m_v`` of ``f_v``
(the lowest breakpoint removed or split is its largest minimiser). Going down from the roots,
``x_v = min(x_parent, m_v)``: the pointwise smallest optimal fit (with the largest minimisers,
the pointwise largest), whose values are data values. Each breakpoint is inserted once and removed at most once, so a
row costs O(n log n) with pairing heaps (meld O(1), delete-max O(log n) amortized), O(n) memory.

Kernels are flat and trust their inputs; :func:`treeiso.fit` validates.
"""

import numpy as np

from .irt_pairing import _meld, _pop
from .jit import INDEX, njit, scratch_caller

# Slope increases are weights, the slope to remove is (1 - q) w and what is left of it after
# each removal: values that agree to this many ulps of the largest weight that went into
# them are equal (a tie, resolved to the documented minimiser). So q = 0.1 acts as 1/10,
# and weights a billion times lighter than their neighbours do not shift a decision by
# their rounding.
_TIE_ULPS = 8.0
_EPS = float(np.finfo(np.float64).eps)


@njit(cache=True, nogil=True)
def _quantile_rows(y, w, q, order, parent_pos, x, blocks, fwork, iwork):
    """Fit every row of ``y``; ``q`` is a float64 array ``[level, largest]``: the quantile
    level, and 1.0 for the pointwise largest optimum instead of the smallest.

    ``y``: float64 (B, n). ``w``: float64 (Bw, n), Bw in {0 (unit weights), 1, B}.
    ``order`` / ``parent_pos``: the tree's breadth-first order and parent positions.
    ``x``: float64 (B, n) output; ``blocks``: int64 (B, n) output (the top node of each
    node's block: connected nodes of one value) or (0, n).
    ``fwork`` / ``iwork``: scratch rows, which the public name (made by
    :func:`treeiso._kernels.jit.scratch_caller`) allocates.
    """
    n_rows, n = y.shape
    n_w = w.shape[0]
    level = q[0]
    largest = q[1] > 0.5
    idx_t = parent_pos.dtype.type
    key = fwork[0]                  # breakpoint of position i: its data value
    slope = fwork[1]                # its remaining slope increase
    mag = fwork[2]                  # the largest weight that went into it
    child = iwork[0]   # pairing heap links, per breakpoint
    sibling = iwork[1]
    heap = iwork[2]    # heap of F at position i (children melded in)
    low = fwork[3]                  # smallest (or largest) minimiser of f at position i
    xs = fwork[4]                   # the fit, by position
    top = iwork[3]     # block tops, by position
    with_blocks = blocks.shape[0] > 0
    for b in range(n_rows):
        wr = 0 if n_w <= 1 else b
        for i in range(n):
            v = order[i]
            key[i] = y[b, v]
            slope[i] = w[wr, v] if n_w > 0 else 1.0
            mag[i] = slope[i]
            child[i] = -1
            sibling[i] = -1
            heap[i] = -1
        for i in range(n - 1, -1, -1):   # children before parents
            excess = (1.0 - level) * slope[i]
            excess_mag = slope[i]
            h = _meld(heap[i], idx_t(i), key, child, sibling)
            last = key[h]                  # the lowest breakpoint removed (or split)
            while True:
                s = slope[h]
                last = key[h]
                tie = _TIE_ULPS * _EPS * max(mag[h], excess_mag)
                # the last breakpoint always stays: F keeps slope q * (subtree weight) > 0
                if s <= excess + tie and child[h] >= 0:
                    excess -= s
                    h = _pop(h, key, child, sibling)
                    if excess <= tie:
                        break
                else:
                    slope[h] = s - excess if s > excess else 0.0
                    mag[h] = max(mag[h], excess_mag)
                    break
            # f is flat between the top that stays and the lowest breakpoint removed
            low[i] = last if largest else key[h]
            p = parent_pos[i]
            if p >= 0:
                heap[p] = _meld(heap[p], h, key, child, sibling)
        for i in range(n):               # parents before children
            p = parent_pos[i]
            t = low[i]
            if p >= 0 and xs[p] < t:
                t = xs[p]
            xs[i] = t
            top[i] = top[p] if p >= 0 and xs[p] == t else i
            v = order[i]
            x[b, v] = t
            if with_blocks:
                blocks[b, v] = order[top[i]]


quantile_rows = scratch_caller(_quantile_rows, (5, np.float64), (4, INDEX), index_arg=4)
