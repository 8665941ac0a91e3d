"""IRT-BIN (Pardalos & Xue 1999) with array-based leftist max-heaps.

Every finished block keeps a mergeable max-heap of its lower-adjacent blocks,
keyed by their (final) means. Node ``v`` is processed after all its children;
while the largest lower block has a larger mean than ``v``'s block, the two
merge and the absorbed block's own heap is melded in. O(n log n).

Heaps are stored in arrays indexed by node id (``left``, ``right``, ``rank``)
and melded iteratively along the right spines, whose length is at most
``log2(n + 1)``: no recursion, no allocation in the inner loop.
"""

import numpy as np
from .jit import njit

from .irt_common import absorb, load_row, write_row

# Right spines of two leftist heaps of < 2**63 nodes sum to at most 126.
_SPINE = 128


@njit(cache=True, inline="always")
def _meld(a, b, key, left, right, rank, stack):
    if a < 0:
        return b
    if b < 0:
        return a
    if key[b] > key[a]:
        a, b = b, a
    root = a
    depth = 0
    # Walk down the right spine of the heap rooted at ``a``, splicing in ``b``.
    while True:
        stack[depth] = a
        depth += 1
        r = right[a]
        if r < 0:
            right[a] = b
            break
        if key[b] > key[r]:
            right[a] = b
            a = b
            b = r
        else:
            a = r
    # Restore the leftist property bottom-up.
    while depth > 0:
        depth -= 1
        v = stack[depth]
        lv = left[v]
        rv = right[v]
        rank_l = rank[lv] if lv >= 0 else 0
        rank_r = rank[rv] if rv >= 0 else 0
        if rank_l < rank_r:
            left[v] = rv
            right[v] = lv
            rank[v] = rank_l + 1
        else:
            rank[v] = rank_r + 1
    return root


@njit(cache=True, nogil=True)
def irt_leftist_rows(y, w, order, parent_pos, x, blocks):
    """IRT-BIN for every row of ``y`` (orientation root_largest).

    ``y``: float64 (B, n). ``w``: float64 (Bw, n), Bw in {0, 1, B}.
    ``order``: node ids, parents before children (breadth-first);
    ``parent_pos[i]``: position in ``order`` of the parent of ``order[i]``
    (-1 for a root). The kernel works on positions, so that siblings are
    adjacent in memory. ``x``: float64 (B, n) output; ``blocks``: int64
    output, (B, n) for the top node of each node's block or (0, n) for none
    (the contract of :mod:`treeiso._dispatch`).
    """
    n_rows, n = y.shape
    idx_t = parent_pos.dtype.type
    mean = np.empty(n)
    weight = np.empty(n)
    heap = np.empty(n, dtype=idx_t)    # heap of lower blocks, per block top
    left = np.empty(n, dtype=idx_t)
    right = np.empty(n, dtype=idx_t)
    rank = np.empty(n, dtype=np.uint8)
    merged = np.empty(n, dtype=np.bool_)
    stack = np.empty(_SPINE, dtype=np.int64)
    for b in range(n_rows):
        load_row(y, w, b, order, mean, weight, heap, merged)
        for v in range(n - 1, -1, -1):          # children before parents
            h = heap[v]
            # Absorb lower blocks, largest mean first, while they violate.
            while h >= 0 and mean[h] > mean[v]:
                c = h
                h = _meld(left[c], right[c], mean, left, right, rank, stack)
                absorb(v, c, mean, weight, merged)
                h = _meld(h, heap[c], mean, left, right, rank, stack)
            heap[v] = h
            p = parent_pos[v]
            if p >= 0:
                # v's block is final: offer it to the parent as a singleton.
                left[v] = -1
                right[v] = -1
                rank[v] = 1
                heap[p] = _meld(heap[p], v, mean, left, right, rank, stack)
        # The heaps are spent: ``heap`` now receives each position's block top.
        write_row(b, order, parent_pos, mean, heap, merged, x, blocks)
