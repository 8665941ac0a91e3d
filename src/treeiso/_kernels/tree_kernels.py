"""Numba kernels that analyse a parent array: traversal order, cycle check, shape.

The kernels trust their input (the public :class:`treeiso.Tree` validates it).
Everything here is iterative: a chain of 10**7 nodes is no deeper than a star.
"""

import numpy as np
from .jit import njit


@njit(cache=True)
def bfs_order(parent):
    """Breadth-first order from the roots (parents before children).

    Returns ``(order, count, n_children)``. ``count < n`` means that some nodes
    are unreachable from any root, which happens exactly when the parent array
    contains a cycle.

    Children are kept as first-child / next-sibling links, filled in one
    pass of independent writes. While walking, the next node to expand is
    already in the queue, so on a shuffled chain (a queue of one) each step
    waits on a single cache miss, ``first_child[v]``.
    """
    n = parent.shape[0]
    idx_t = parent.dtype.type
    n_children = np.zeros(n, dtype=idx_t)
    first_child = np.full(n, -1, dtype=idx_t)
    next_sibling = np.empty(n, dtype=idx_t)
    order = np.empty(n, dtype=idx_t)
    count = 0
    for v in range(n - 1, -1, -1):      # backwards: siblings come out in id order
        p = parent[v]
        if p >= 0:
            next_sibling[v] = first_child[p]
            first_child[p] = v
            n_children[p] += 1
    for v in range(n):
        if parent[v] < 0:
            order[count] = v
            count += 1
    head = 0
    while head < count:
        c = first_child[order[head]]
        head += 1
        while c >= 0:
            order[count] = c
            count += 1
            c = next_sibling[c]
    return order, count, n_children


@njit(cache=True)
def node_on_cycle(parent, visited_order, count):
    """Return a node that lies on a cycle (call only when ``count < n``)."""
    n = parent.shape[0]
    seen = np.zeros(n, dtype=np.bool_)
    for i in range(count):
        seen[visited_order[i]] = True
    start = -1
    for v in range(n):
        if not seen[v]:
            start = v
            break
    # Every unvisited node leads, by following parents, into a cycle; n steps
    # are enough to be inside it.
    v = start
    for _ in range(n):
        v = parent[v]
    return v


@njit(cache=True)
def parent_positions(parent, order):
    """``out[i]``: position in ``order`` of the parent of ``order[i]`` (-1 at roots)."""
    n = order.shape[0]
    pos = np.empty(n, dtype=order.dtype)
    for i in range(n):
        pos[order[i]] = i
    out = np.empty(n, dtype=order.dtype)
    for i in range(n):
        p = parent[order[i]]
        out[i] = pos[p] if p >= 0 else -1
    return out
