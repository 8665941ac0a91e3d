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


def pinball(u, q):
    """The pinball loss rho_q(u) = u (q - [u < 0]), exact for Fractions."""
    return u * (q - (1 if u < 0 else 0))


def brute_force_quantile_optima(y, parent, w, q, lo=None, hi=None, orientation="root_largest"):
    """Every optimal data-valued fit of ``min sum w rho_q(y - x)`` under the tree order.

    Enumerates all assignments of the candidate values (the data values and bounds inside the
    bounds) to the nodes: an optimum of an L1/quantile problem exists among them, and the
    pointwise smallest and largest optima are among them too. ``q`` is a Fraction; the costs
    are exact rationals. Only for n <= ~6. Returns (optimal cost, list of optimal tuples).
    """
    n = len(parent)
    wq = [Fraction(1)] * n if w is None else [Fraction(float(v)) for v in w]
    yq = [Fraction(float(v)) for v in y]
    cand = set(yq) | {Fraction(float(b)) for b in (lo, hi) if b is not None}
    cand = sorted(c for c in cand if (lo is None or c >= Fraction(float(lo)))
                  and (hi is None or c <= Fraction(float(hi))))
    best, optima = None, []
    for x in itertools.product(cand, repeat=n):
        ok = True
        for v, p in enumerate(parent):
            if p >= 0 and ((x[p] < x[v]) if orientation == "root_largest" else (x[p] > x[v])):
                ok = False
                break
        if not ok:
            continue
        cost = sum(wq[i] * pinball(yq[i] - x[i], q) for i in range(n))
        if best is None or cost < best:
            best, optima = cost, [x]
        elif cost == best:
            optima.append(x)
    return best, optima


def threshold_quantile_fit(y, parent, w, q, lo=None, hi=None, largest=False):
    """The pointwise smallest (or largest) optimum of ``min sum w rho_q(y - x)`` with
    ``x[parent] >= x`` and optional bounds, by threshold decomposition in exact rationals.

    With the candidate values ``c_0 < c_1 < ...`` (data values and bounds inside the bounds),
    ``x_v >= c_k`` holds at the smallest optimum exactly for the nodes of the smallest
    ancestor-closed set ``U`` minimizing ``sum_{v in U} a_v``, with ``a_v`` the cost of
    raising ``x_v`` from ``c_{k-1}`` to ``c_k`` per unit (``w (1 - q)`` if ``y_v < c_k``,
    else ``-w q``). Each set is found by a tree DP. ``q`` is a Fraction. O(n * candidates).
    """
    n = len(parent)
    wq = [Fraction(1)] * n if w is None else [Fraction(float(v)) for v in w]
    yq = [Fraction(float(v)) for v in y]
    lo_q = None if lo is None else Fraction(float(lo))
    hi_q = None if hi is None else Fraction(float(hi))
    cand = set(yq) | {b for b in (lo_q, hi_q) if b is not None}
    cand = sorted(c for c in cand if (lo_q is None or c >= lo_q) and (hi_q is None or c <= hi_q))
    kids = children_lists(parent)
    order = []                                   # parents before children
    stack = [v for v in range(n) if parent[v] < 0]
    while stack:
        v = stack.pop()
        order.append(v)
        stack.extend(kids[v])
    x = [cand[0]] * n
    for ck in cand[1:]:
        best = [Fraction(0)] * n
        for v in reversed(order):
            a = wq[v] * ((1 - q) if yq[v] < ck else -q)
            best[v] = a + sum(min(Fraction(0), best[c]) if largest else
                              (best[c] if best[c] < 0 else Fraction(0)) for c in kids[v])
        take = [False] * n
        for v in order:
            p = parent[v]
            ok = (best[v] <= 0) if largest else (best[v] < 0)
            take[v] = ok and (p < 0 or take[p])
            if take[v]:
                x[v] = ck
    return np.array([float(v) for v in x])


def exact_linf_fit(y, parent, w=None, lo=None, hi=None, in_range=True):
    """The weighted L-infinity fit (orientation root_largest) as treeiso defines it, in exact
    rationals and by definition, O(n^2): the optimal error is the largest of the pair values
    ``w_a w_d (y_d - y_a) / (w_a + w_d)`` over nodes ``d`` below ``a`` and the bound values
    ``w (lo - y)``, ``w (y - hi)``; ``L_v = max(lo, max_{d under v or v} y_d - e / w_d)``,
    ``U_v = min(hi, min_{a over v or v} y_a + e / w_a)`` and the fit is ``(L + U) / 2``.
    With ``in_range`` (treeiso's choice) ``lo`` and ``hi`` are first replaced by the data's
    range clipped to them, which leaves the error as it is; without, L and U are the
    smallest and largest of all optima. Returns (error, L, U, fit) as Fractions."""
    n = len(parent)
    wq = [Fraction(1)] * n if w is None else [Fraction(float(v)) for v in w]
    yq = [Fraction(float(v)) for v in y]
    lo_q = None if lo is None else Fraction(float(lo))
    hi_q = None if hi is None else Fraction(float(hi))
    if in_range:
        a, b = min(yq), max(yq)
        if lo_q is not None:
            a, b = max(a, lo_q), max(b, lo_q)
        if hi_q is not None:
            a, b = min(a, hi_q), min(b, hi_q)
        lo_q, hi_q = a, b
    ancestors = []
    for v in range(n):
        chain, a = [v], parent[v]
        while a >= 0:
            chain.append(a)
            a = parent[a]
        ancestors.append(chain)
    e = Fraction(0)
    for d in range(n):
        for a in ancestors[d][1:]:
            if yq[d] > yq[a]:
                e = max(e, wq[a] * wq[d] * (yq[d] - yq[a]) / (wq[a] + wq[d]))
        if lo_q is not None and lo_q > yq[d]:
            e = max(e, wq[d] * (lo_q - yq[d]))
        if hi_q is not None and yq[d] > hi_q:
            e = max(e, wq[d] * (yq[d] - hi_q))
    low = [max(yq[d] - e / wq[d] for d in range(n) if v in ancestors[d]) for v in range(n)]
    up = [min(yq[a] + e / wq[a] for a in ancestors[v]) for v in range(n)]
    if lo_q is not None:
        low = [max(v, lo_q) for v in low]
    if hi_q is not None:
        up = [min(v, hi_q) for v in up]
    return e, low, up, [(a + b) / 2 for a, b in zip(low, up)]
