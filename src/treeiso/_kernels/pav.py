"""Pool-adjacent-violators for a chain, O(n) per row.

Kernels are flat and trust their inputs; :func:`treeiso.fit` validates.
"""

import numpy as np
from numba import types
from numba.extending import overload

from .finite import _abs_max64
from .jit import njit


def _node(chain, i):
    """The node at position ``i`` of the chain: ``chain[i]``, or ``i`` when ``chain`` is
    None (a chain given in order, compiled without the indirection)."""
    return i if chain is None else chain[i]


@overload(_node, inline="always")
def _node_impl(chain, i):
    if isinstance(chain, types.NoneType):
        return lambda chain, i: i
    return lambda chain, i: chain[i]


@njit(cache=True, nogil=True)
def pav_rows(y, w, chain, x, blocks):
    """Fit ``x[chain[0]] >= x[chain[1]] >= ...`` for every row of ``y``.

    ``y``: float64 (B, n). ``w``: float64 (Bw, n) with Bw in {0 (unit
    weights), 1 (shared), B}. ``chain``: node ids from the root down, or None
    for the chain ``0 -> 1 -> ... -> n-1`` (then the kernel reads and writes the
    rows in place, without indirection: a separate compilation).
    ``x``: float64 (B, n) output. ``blocks``: int64 output, (B, n) to receive
    the top node of each node's block, or (0, n) (the contract of
    :mod:`treeiso._dispatch`).

    The newest block (mean ``m_top``, weight ``w_top``, first position
    ``s_top``) lives in registers; older blocks are on array stacks. This
    keeps the common no-violation step to one comparison and three stores.
    """
    n_rows, n = y.shape
    n_w = w.shape[0]
    with_blocks = blocks.shape[0] > 0
    mean = np.empty(n)             # stack of finished block means
    weight = np.empty(n)           # ... their weights
    first = np.empty(n, np.int64)  # ... their first positions in the chain
    for b in range(n_rows):
        wr = 0 if n_w <= 1 else b
        depth = 0
        v = _node(chain, 0)
        m_top = y[b, v]
        w_top = w[wr, v] if n_w > 0 else 1.0
        s_top = 0
        for i in range(1, n):
            v = _node(chain, i)
            m = y[b, v]
            wt = w[wr, v] if n_w > 0 else 1.0
            if m <= m_top:
                # Ordered (ties are not pooled): the top block is final for now.
                mean[depth] = m_top
                weight[depth] = w_top
                first[depth] = s_top
                depth += 1
                m_top = m
                w_top = wt
                s_top = i
            else:
                # Pool into the top block, then with older blocks while they
                # are smaller. Convex-combination updates: no overflow and no
                # cancellation of large sums.
                w_new = w_top + wt
                m_top += (wt / w_new) * (m - m_top)
                w_top = w_new
                while depth > 0 and mean[depth - 1] < m_top:
                    depth -= 1
                    w_new = weight[depth] + w_top
                    m_top = mean[depth] + (w_top / w_new) * (m_top - mean[depth])
                    w_top = w_new
                    s_top = first[depth]
        mean[depth] = m_top
        first[depth] = s_top
        # Write the blocks out, last one first.
        end = n
        for q in range(depth, -1, -1):
            m = mean[q]
            s = first[q]
            head = _node(chain, s)
            for i in range(s, end):
                x[b, _node(chain, i)] = m
                if with_blocks:
                    blocks[b, _node(chain, i)] = head
            end = s


@njit(cache=True, nogil=True)
def pav_rows_scanned(y, w, chain, x, blocks, lo, hi):
    """:func:`pav_rows` behind the scan for NaN and infinity, in one compiled call (for
    float64 rows, C-contiguous): returns ``max|y|`` over all rows (NaN or inf when some entry
    is) and fits the rows only when it lies in ``[lo, hi]`` (the range in which no scaling
    is needed); otherwise ``x`` and ``blocks`` are left untouched."""
    a = _abs_max64(y.reshape(-1))
    if lo <= a <= hi:
        pav_rows(y, w, chain, x, blocks)
    return a
