"""Pool-adjacent-violators for a chain, O(n) per row (SPEC section 2).

Kernels are flat and trust their inputs; :func:`treeiso.fit` validates.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def pav_rows(y, w, chain, x, blocks, need_blocks):
    """Fit ``x[chain[0]] >= x[chain[1]] >= ...`` for every row of ``y``.

    ``y``: float64 (B, n). ``w``: float64 (Bw, n) with Bw in {0 (unit
    weights), 1 (shared), B}. ``chain``: node ids from the root down.
    ``x``: float64 (B, n) output. ``blocks``: int64 (B, n) output, filled with
    the top node of each node's block when ``need_blocks``.
    """
    n_rows, n = y.shape
    n_w = w.shape[0]
    mean = np.empty(n)           # stack of block means
    weight = np.empty(n)         # stack of block weights
    first = np.empty(n, np.int64)  # stack of block starts (positions in chain)
    for b in range(n_rows):
        wr = 0 if n_w <= 1 else b
        top = -1
        for i in range(n):
            v = chain[i]
            m = y[b, v]
            wt = w[wr, v] if n_w > 0 else 1.0
            start = i
            # Pool while the block above is smaller (ties are not pooled).
            while top >= 0 and mean[top] < m:
                w_new = weight[top] + wt
                # Convex-combination update: no overflow, no cancellation.
                m = mean[top] + (wt / w_new) * (m - mean[top])
                wt = w_new
                start = first[top]
                top -= 1
            top += 1
            mean[top] = m
            weight[top] = wt
            first[top] = start
        # Write the blocks out, last one first.
        end = n
        while top >= 0:
            m = mean[top]
            s = first[top]
            head = chain[s]
            for i in range(s, end):
                x[b, chain[i]] = m
                if need_blocks:
                    blocks[b, chain[i]] = head
            end = s
            top -= 1
