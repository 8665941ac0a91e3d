"""IRT-BIN (Pardalos & Xue 1999) with array-based pairing max-heaps.

Same block-merging scheme as :mod:`treeiso._kernels.irt_leftist`. A pairing heap is
a heap-ordered multiway tree stored as ``child`` (first child) and ``sibling``
(next sibling) arrays indexed by node. Meld and insert are one comparison
(O(1)); delete-max pairs the root's children left to right and folds the
pairs right to left (two-pass pairing, O(log n) amortized). IRT-BIN inserts
every node once but deletes only when blocks merge, which suits pairing heaps.
"""

import numpy as np
from .jit import njit

from .irt_common import absorb, load_row, write_row


@njit(cache=True, inline="always")
def _link(a, b, key, child, sibling):
    # Two heap roots (sibling -1) -> one; the smaller root becomes the first child.
    if key[b] > key[a]:
        a, b = b, a
    sibling[b] = child[a]
    child[a] = b
    return a


@njit(cache=True, inline="always")
def _meld(a, b, key, child, sibling):
    if a < 0:
        return b
    if b < 0:
        return a
    return _link(a, b, key, child, sibling)


@njit(cache=True, inline="always")
def _pop(h, key, child, sibling):
    # Remove the root ``h``; return the heap made of its children.
    c = child[h]
    if c < 0:
        return -1
    # Pass 1: meld siblings in pairs, left to right, stacking the results.
    stacked = -1
    while c >= 0:
        a = c
        b = sibling[a]
        if b < 0:
            sibling[a] = stacked
            stacked = a
            break
        c = sibling[b]
        sibling[a] = -1
        sibling[b] = -1
        m = _link(a, b, key, child, sibling)
        sibling[m] = stacked
        stacked = m
    # Pass 2: fold the pairs right to left (the stack holds the last pair first).
    res = stacked
    stacked = sibling[res]
    sibling[res] = -1
    while stacked >= 0:
        nxt = sibling[stacked]
        sibling[stacked] = -1
        res = _link(res, stacked, key, child, sibling)
        stacked = nxt
    return res


@njit(cache=True, nogil=True)
def irt_pairing_rows(y, w, order, parent_pos, x, blocks):
    """IRT-BIN with pairing heaps; same contract as ``irt_leftist_rows``."""
    n_rows, n = y.shape
    idx_t = parent_pos.dtype.type
    mean = np.empty(n)
    weight = np.empty(n)
    heap = np.empty(n, dtype=idx_t)    # heap of lower blocks, per block top
    child = np.empty(n, dtype=idx_t)
    sibling = np.empty(n, dtype=idx_t)
    merged = np.empty(n, dtype=np.bool_)
    for b in range(n_rows):
        load_row(y, w, b, order, mean, weight, heap, merged)
        for v in range(n - 1, -1, -1):          # children before parents
            h = heap[v]
            # Absorb lower blocks, largest mean first, while they violate.
            while h >= 0 and mean[h] > mean[v]:
                c = h
                h = _pop(c, mean, child, sibling)
                absorb(v, c, mean, weight, merged)
                h = _meld(h, heap[c], mean, child, sibling)
            heap[v] = h
            p = parent_pos[v]
            if p >= 0:
                # v's block is final: offer it to the parent as a singleton.
                child[v] = -1
                sibling[v] = -1
                heap[p] = _meld(heap[p], v, mean, child, sibling)
        # The heaps are spent: ``heap`` now receives each position's block top.
        write_row(b, order, parent_pos, mean, heap, merged, x, blocks)
