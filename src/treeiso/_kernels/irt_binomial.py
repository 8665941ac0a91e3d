"""IRT-BIN (Pardalos & Xue 1999) with binomial max-heaps, as published.

Same block-merging scheme as :mod:`treeiso._kernels.irt_leftist`; only the mergeable
heap differs. A heap is a list of binomial trees (linked through ``sibling``,
by increasing degree); each tree keeps its first child in ``child``. Meld,
insert and delete-max are O(log n), all iterative.
"""

import numpy as np
from .jit import njit

from .irt_common import absorb, load_row, write_row


@njit(cache=True, inline="always")
def _merge_root_lists(a, b, degree, sibling):
    # Merge two root lists sorted by degree into one sorted list.
    if a < 0:
        return b
    if b < 0:
        return a
    if degree[b] < degree[a]:
        a, b = b, a
    head = a
    tail = a
    a = sibling[a]
    while a >= 0 and b >= 0:
        if degree[a] <= degree[b]:
            sibling[tail] = a
            tail = a
            a = sibling[a]
        else:
            sibling[tail] = b
            tail = b
            b = sibling[b]
    sibling[tail] = a if a >= 0 else b
    return head


@njit(cache=True, inline="always")
def _meld(a, b, key, degree, child, sibling):
    h = _merge_root_lists(a, b, degree, sibling)
    if h < 0:
        return h
    prev = -1
    x = h
    nxt = sibling[x]
    while nxt >= 0:
        if degree[x] != degree[nxt] or (
            sibling[nxt] >= 0 and degree[sibling[nxt]] == degree[x]
        ):
            prev = x
            x = nxt
        elif key[x] >= key[nxt]:
            # nxt becomes a child of x.
            sibling[x] = sibling[nxt]
            sibling[nxt] = child[x]
            child[x] = nxt
            degree[x] += 1
        else:
            # x becomes a child of nxt.
            if prev < 0:
                h = nxt
            else:
                sibling[prev] = nxt
            sibling[x] = child[nxt]
            child[nxt] = x
            degree[nxt] += 1
            x = nxt
        nxt = sibling[x]
    return h


@njit(cache=True, inline="always")
def _find_max(h, key, sibling):
    best = h
    v = sibling[h]
    while v >= 0:
        if key[v] > key[best]:
            best = v
        v = sibling[v]
    return best


@njit(cache=True, inline="always")
def _delete(h, top, key, degree, child, sibling):
    # Unlink root ``top`` from the root list ``h``.
    if h == top:
        h = sibling[top]
    else:
        v = h
        while sibling[v] != top:
            v = sibling[v]
        sibling[v] = sibling[top]
    # Its children (by decreasing degree) reversed form a root list.
    rev = -1
    c = child[top]
    while c >= 0:
        nxt = sibling[c]
        sibling[c] = rev
        rev = c
        c = nxt
    return _meld(h, rev, key, degree, child, sibling)


@njit(cache=True, nogil=True)
def irt_binomial_rows(y, w, order, parent_pos, x, blocks):
    """IRT-BIN with binomial heaps; same contract as ``irt_leftist_rows``."""
    n_rows, n = y.shape
    idx_t = parent_pos.dtype.type
    mean = np.empty(n)
    weight = np.empty(n)
    heap = np.empty(n, dtype=idx_t)
    child = np.empty(n, dtype=idx_t)
    sibling = np.empty(n, dtype=idx_t)
    degree = np.empty(n, dtype=np.uint8)
    merged = np.empty(n, dtype=np.bool_)
    for b in range(n_rows):
        load_row(y, w, b, order, mean, weight, heap, merged)
        for v in range(n - 1, -1, -1):
            h = heap[v]
            while h >= 0:
                c = _find_max(h, mean, sibling)
                if not mean[c] > mean[v]:
                    break
                h = _delete(h, c, mean, degree, child, sibling)
                absorb(v, c, mean, weight, merged)
                h = _meld(h, heap[c], mean, degree, child, sibling)
            heap[v] = h
            p = parent_pos[v]
            if p >= 0:
                child[v] = -1
                sibling[v] = -1
                degree[v] = 0
                heap[p] = _meld(heap[p], v, mean, degree, child, sibling)
        # The heaps are spent: ``heap`` now receives each position's block top.
        write_row(b, order, parent_pos, mean, heap, merged, x, blocks)
