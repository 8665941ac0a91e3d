"""Star trees: the centre is at least every leaf, exact in expected O(n) (SPEC section 3).

The centre's value ``v`` is the unique root of
``w_c (v - y_c) = sum_j w_j (y_j - v)_+``; leaves get ``min(y_j, v)``. It is
found like a simplex projection (Michelot's method): start from the mean of
all nodes, drop the leaves that are not above the current value, recompute the
mean, and stop when nothing is dropped. The value only rises and the active set
only shrinks, so the fixed point is reached in at most n passes; after a few
passes the (by then small) active set is sorted and scanned instead, which
bounds the worst case by O(n log n).
"""

import numpy as np
from numba import njit

_MAX_PASSES = 24


@njit(cache=True)
def star_rows(y, w, center, x, blocks, need_blocks):
    """Fit ``x[center] >= x[j]`` for every leaf ``j``; same contract as ``pav_rows``."""
    n_rows, n = y.shape
    n_w = w.shape[0]
    active = np.empty(n, dtype=np.int64)
    for b in range(n_rows):
        wr = 0 if n_w <= 1 else b
        yc = y[b, center]
        wc = w[wr, center] if n_w > 0 else 1.0
        # Centre the data on y_c: the centre's own term vanishes from the sums.
        s = 0.0
        total = wc
        m = 0
        for j in range(n):
            if j != center:
                wj = w[wr, j] if n_w > 0 else 1.0
                s += wj * (y[b, j] - yc)
                total += wj
                active[m] = j
                m += 1
        v = s / total
        passes = 0
        while True:
            passes += 1
            if passes > _MAX_PASSES:
                v = _sorted_scan(y, w, b, wr, n_w, yc, wc, active, m)
                break
            s = 0.0
            total = wc
            kept = 0
            for i in range(m):
                j = active[i]
                z = y[b, j] - yc
                if z > v:
                    wj = w[wr, j] if n_w > 0 else 1.0
                    s += wj * z
                    total += wj
                    active[kept] = j
                    kept += 1
            v_new = s / total
            if kept == m:
                v = v_new
                break
            m = kept
            v = v_new
        value = yc + v
        x[b, center] = value
        if need_blocks:
            blocks[b, center] = center
        for j in range(n):
            if j != center:
                yj = y[b, j]
                if yj - yc > v:
                    x[b, j] = value
                    if need_blocks:
                        blocks[b, j] = center
                else:
                    x[b, j] = yj
                    if need_blocks:
                        blocks[b, j] = j


@njit(cache=True)
def _sorted_scan(y, w, b, wr, n_w, yc, wc, active, m):
    # Greedy scan of the sorted prefix means: f(k) rises until it peaks.
    z = np.empty(m)
    for i in range(m):
        z[i] = y[b, active[i]] - yc
    perm = np.argsort(-z)
    s = 0.0
    total = wc
    v = 0.0
    for i in range(m):
        zi = z[perm[i]]
        if not zi > v:
            break
        wj = w[wr, active[perm[i]]] if n_w > 0 else 1.0
        s += wj * zi
        total += wj
        v = s / total
    return v
