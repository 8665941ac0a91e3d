"""Slow, obviously-right references for the tests. Independent of treeiso's kernels."""

import itertools
from fractions import Fraction

import numpy as np


def children_lists(parent):
    kids = [[] for _ in parent]
    for v, p in enumerate(parent):
        if p >= 0:
            kids[p].append(v)
    return kids


def brute_force_fit(y, parent, w=None):
    """Exact answer by enumerating every partition into connected blocks.

    The optimum is constant on connected blocks at their weighted means, so it
    is the best *feasible* candidate among all 2**(n - roots) ways of cutting
    edges. Only for n <= ~10. The means, the order checks and the objective are
    exact rationals (every float is one), so no tolerance decides anything: with
    weights spanning 1e24 a light node's error is far below any rounding of the
    objective, and a tolerance on feasibility let offset data through.
    """
    y = np.asarray(y, dtype=float)
    n = y.size
    w = np.ones(n) if w is None else np.asarray(w, dtype=float)
    yq = [Fraction(float(v)) for v in y]
    wq = [Fraction(float(v)) for v in w]
    edges = [(p, v) for v, p in enumerate(parent) if p >= 0]
    best, best_obj = None, None
    for keep in itertools.product((False, True), repeat=len(edges)):
        label = list(range(n))                # union-find without recursion

        def find(a):
            while label[a] != a:
                label[a] = label[label[a]]
                a = label[a]
            return a

        for (p, v), k in zip(edges, keep):
            if k:
                label[find(v)] = find(p)
        roots = [find(v) for v in range(n)]
        sums = {}
        for v, r in enumerate(roots):
            s, t = sums.get(r, (0, 0))
            sums[r] = (s + wq[v] * yq[v], t + wq[v])
        x = [sums[r][0] / sums[r][1] for r in roots]
        if all(x[p] >= x[v] for p, v in edges):
            obj = sum(wq[v] * (x[v] - yq[v]) ** 2 for v in range(n))
            if best_obj is None or obj < best_obj:
                best, best_obj = x, obj
    return np.array([float(v) for v in best])


def is_feasible(x, parent, tol=0.0):
    parent = np.asarray(parent)
    child = np.flatnonzero(parent >= 0)
    return bool(np.all(x[..., parent[child]] >= x[..., child] - tol))


def connected_blocks_ok(blocks, parent):
    """Each block's top is an ancestor-or-self of its members, and a member's
    parent (when not the top) is in the same block: blocks are connected."""
    for v, top in enumerate(blocks):
        if top != v:
            p = parent[v]
            if p < 0 or blocks[p] != top:
                return False
        elif blocks[v] != v:
            return False
    return True


def component_roots(parent):
    """The root of each node's tree, by walking up (slow, fine for tests)."""
    out = np.empty(len(parent), dtype=int)
    for v in range(len(parent)):
        r = v
        while parent[r] >= 0:
            r = parent[r]
        out[v] = r
    return out
