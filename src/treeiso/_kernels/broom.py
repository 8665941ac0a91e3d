"""Numba kernel for brooms: per row, x[l0] >= x[l1] >= ... >= x[l(K-1)] >= every other entry.

A broom is a chain (the handle ``l0 .. l(K-1)``) whose last node is the centre
of a star over all remaining nodes (the leaves). ``K = 1`` is a star, ``K = 2`` the Mixup tree.

Per row the kernel runs PAV down the handle. Every block is a weighted mean,
except the last one, which also holds the handle's last node: given its value ``v`` each leaf
is best at ``min(z, v)``, so its loss is convex in ``v`` and pooling adjacent violators stays
exact (PAV is exact for separable convex losses). The last block's value is the star value
(the star lemma of the theory page) with the block as centre, i.e. the root of

    W_c (v - m_c) = sum_j w_j (z_j - v)_+ ,

found without sorting by the fixed-point iteration ``A = {z > v}; v = mean(centre + A)``
(as in Michelot's simplex projection): started below the root, ``v`` rises and ``A`` shrinks,
and it stops exactly, when ``A`` no longer changes. A pooled centre has a lower value, so each
merge restarts the iteration from its own centre mean, again below the root. After
``_MAX_ITER`` rounds (never reached on ordinary data) the row falls back to the sorted greedy
of the star lemma on the leaves still active (a superset of the final set, so still exact),
and the worst case stays O(c log c) per star.

The kernel trusts its input: the callers (``treeiso.fit``, ``treeiso.fit_topk``) validate.
"""

from __future__ import annotations

import numpy as np
from .jit import njit

_MAX_ITER = 64
# Pools of the last block up the handle before the kernel sorts the row's leaves once: each
# pool costs an O(c) star otherwise, so a long handle would cost O(K c) (33 s for
# c = 1e6, K = 1e4). A star is a few passes; the sort is worth ~100 of them at c = 1e6.
_POOLS_BEFORE_SORT = 64


@njit(cache=True, nogil=True)
def _argsort_desc(z):
    """Indices of ``z`` by decreasing value: a heap sort, O(c log c), no recursion.

    Here rather than ``np.argsort``: numba compiles its quicksort for every kernel that uses
    it, which was a third of the broom kernel's first-call compile time (the cold
    start); this is the rare path, so its speed matters less.
    """
    c = z.shape[0]
    idx = np.arange(c)
    # A min-heap on z: popping the minimum to the end leaves the largest first.
    for start in range(c // 2 - 1, -1, -1):
        _sift(z, idx, start, c)
    for end in range(c - 1, 0, -1):
        t = idx[0]
        idx[0] = idx[end]
        idx[end] = t
        _sift(z, idx, 0, end)
    return idx


@njit(cache=True, nogil=True)
def _sift(z, idx, i, size):
    while True:
        m = i
        a = 2 * i + 1
        b = a + 1
        if a < size and z[idx[a]] < z[idx[m]]:
            m = a
        if b < size and z[idx[b]] < z[idx[m]]:
            m = b
        if m == i:
            return
        t = idx[i]
        idx[i] = idx[m]
        idx[m] = t
        i = m


@njit(cache=True, nogil=True)
def _star_sorted(z, w, cs, wc):
    """Star value by the sorted greedy of the star lemma (fallback)."""
    order = _argsort_desc(z)
    s = cs
    tw = wc
    for k in range(z.shape[0]):
        j = order[k]
        if z[j] > s / tw:  # f(k+1) > f(k) iff z_(k+1) > f(k); unimodal: stop at the first no
            s += w[j] * z[j]
            tw += w[j]
        else:
            break
    return s / tw


@njit(cache=True, nogil=True)
def _star(z, w, unit, cs, wc, zb, wb, m0, ea):
    """Root v of wc (v - cs/wc) = sum_j w_j (z_j - v)_+ (handle nodes have z = -inf), and
    ``d``, a bound on its rounding error.

    ``cs`` is a sum of ``m0`` terms; ``ea`` is ``eps * max|z|`` over the row's finite
    entries, the unit of the rounding bound ``d`` below.

    One pass over the row collects A1 = {z >= f(0) - d}; later sets only shrink (v rises), so
    the iteration then runs on the compacted buffer ``zb``/``wb`` alone, until a pass keeps
    every entry. The loops are branch-free (selects), as the comparisons are unpredictable.

    Rounding: a computed mean of m terms, each |w z| <= w max|z|, is within
    d = (2 m + 8) eps max|z| of the exact mean of the same set. Keeping every leaf with
    z >= v - d therefore never drops a leaf above the exact root (a strict ``z > v`` did: with
    weights 1e17 and 1 the rounded mean of a heavy leaf and a light centre *is* the leaf's
    value, and losing that leaf moved the answer by the whole spread). The set S it ends on
    is a superset of the exact one; if every member is above v + d, S is exactly the
    absorbed set (a member at or below the exact mean cannot exist then) and v is the root
    to rounding. Otherwise some leaf sits within d of v, where including it or not is
    decided wrongly by any comparison with the rounded mean (a heavy one can justify itself);
    then the sorted greedy on S decides, comparing each leaf with the mean of the leaves
    above it only, which is what makes its error at most 2 d.
    """
    c = z.shape[0]
    v = cs / wc  # f(0), below the root
    t = v - (2 * m0 + 8) * ea
    s = cs
    tw = wc
    na = 0
    if unit:  # no weights to read or carry
        for j in range(c):
            zj = z[j]
            zb[na] = zj
            wb[na] = 1.0
            f = zj >= t
            s += zj if f else 0.0
            na += 1 if f else 0
        tw += na
    else:
        for j in range(c):
            zj = z[j]
            wj = w[j]
            zb[na] = zj
            wb[na] = wj
            f = zj >= t
            s += wj * zj if f else 0.0
            tw += wj if f else 0.0
            na += 1 if f else 0
    for _ in range(_MAX_ITER):
        v = s / tw
        d = (2 * (na + m0) + 8) * ea
        t = v - d
        s = cs
        tw = wc
        nb = 0
        for q in range(na):
            zj = zb[q]
            wj = wb[q]
            zb[nb] = zj
            wb[nb] = wj
            f = zj >= t
            s += wj * zj if f else 0.0
            tw += wj if f else 0.0
            nb += 1 if f else 0
        if nb == na:  # the set reproduced itself (same sums, same v): the fixed point
            zmin = np.inf
            for q in range(na):
                zmin = min(zmin, zb[q])
            if zmin > v + d:  # no leaf near v: the set is exact
                return v, d
            break
        na = nb
    # zb[:na] is a superset of {z > root}, and entries below the root contribute nothing,
    # so the greedy on it alone is exact.
    return _star_sorted(zb[:na], wb[:na], cs, wc), (2 * (na + m0) + 8) * ea


@njit(cache=True, nogil=True)
def broom_rows(y, w, labels, x, blocks):
    """Fit every row of ``y`` to its broom (orientation ``root_largest``): minimize
    ``sum_j w[b, j] (x[b, j] - y[b, j])**2`` subject to
    ``x[b, l0] >= x[b, l1] >= ... >= x[b, l(K-1)] >= x[b, j]`` for every other ``j``.

    The contract of :mod:`treeiso._dispatch`: ``y``, ``x``: (B, c) float32 or float64 (the
    sums are float64 either way); ``w``: (Bw, c) float32 or float64, Bw in {0 (unit
    weights), 1 (one row shared by every row), B}; ``labels``: (Bl, k) int64, Bl in {1
    (shared), B}, valid and deduplicated, ``-1`` padding at the end of a row (an
    all-padding row is copied as is); ``blocks``: int64, (B, c) or (0, c) for none.
    Returns False if some value of ``y`` was NaN or infinite (checked in the kernel's own
    pass over the row), else True.
    """
    n_rows, c = y.shape
    k_max = labels.shape[1]
    shared_labels = labels.shape[0] == 1
    with_blocks = blocks.shape[0] > 0
    n_w = w.shape[0]
    unit = n_w == 0
    ones = np.ones(c)
    wrow = np.empty(c)
    if n_w == 1:  # shared: convert once
        for j in range(c):
            wrow[j] = w[0, j]
    zr = np.empty(c)  # the centred row, -inf on the handle
    zb = np.empty(c)  # star buffers
    wb = np.empty(c)
    st_m = np.empty(k_max + 1)  # PAV stack: block mean (centred), weight, first handle position
    st_w = np.empty(k_max + 1)
    st_s = np.empty(k_max + 1, np.int64)
    finite = True
    eps = np.finfo(np.float64).eps
    for b in range(n_rows):
        lr = 0 if shared_labels else b
        kr = 0
        while kr < k_max and labels[lr, kr] >= 0:
            kr += 1
        if with_blocks:
            for j in range(c):
                blocks[b, j] = j
        if kr == 0:
            for j in range(c):
                x[b, j] = y[b, j]
                finite &= np.isfinite(y[b, j])  # NaN != NaN: all comparisons fail
            continue
        last = labels[lr, kr - 1]
        sh = np.float64(y[b, last])  # centre the row on the handle's last node (cancellation)
        acc = 0.0
        amax = 0.0
        for j in range(c):
            zj = np.float64(y[b, j]) - sh
            zr[j] = zj
            acc += zj * 0.0  # stays 0 unless some zj is NaN or infinite
            amax = max(amax, abs(zj))
        finite &= acc == 0.0
        ea = eps * amax  # the unit of _star's rounding bound
        if unit:
            wr = ones
        else:
            if n_w > 1:
                for j in range(c):
                    wrow[j] = w[b, j]
            wr = wrow
        for i in range(kr):
            zr[labels[lr, i]] = -np.inf
        # PAV down the handle, all but its last node; ties are not pooled.
        ns = 0
        for i in range(kr - 1):
            h = labels[lr, i]
            m = np.float64(y[b, h]) - sh
            wt = wr[h]
            s = i
            while ns > 0 and st_m[ns - 1] < m:
                ns -= 1
                wn = st_w[ns] + wt
                m = st_m[ns] + (wt / wn) * (m - st_m[ns])
                wt = wn
                s = st_s[ns]
            st_m[ns] = m
            st_w[ns] = wt
            st_s[ns] = s
            ns += 1
        # The last block: the handle's last node (y - sh = 0) plus absorbed leaves (star lemma).
        cs = 0.0
        wc = wr[last]
        s_last = kr - 1
        m0 = 1
        v, d = _star(zr, wr, unit, cs, wc, zb, wb, m0, ea)
        srt = np.empty(0, np.int64)  # leaves sorted by z, descending, once pools are many
        k_abs = 0  # ... the greedy's absorbed prefix, and its sums
        s_abs = 0.0
        w_abs = 0.0
        while ns > 0 and st_m[ns - 1] < v:  # pool the violator above; v can only go down
            ns -= 1
            cs += st_w[ns] * st_m[ns]
            wc += st_w[ns]
            s_last = st_s[ns]
            m0 += 1
            if m0 <= _POOLS_BEFORE_SORT:
                v, d = _star(zr, wr, unit, cs, wc, zb, wb, m0, ea)
                continue
            # A long handle: one O(c log c) sort instead of an O(c) star per pool. v only
            # goes down, so the absorbed prefix only grows: the greedy resumes where it was.
            if srt.shape[0] == 0:
                srt = _argsort_desc(zr)
            while k_abs < c:
                j = srt[k_abs]
                if not zr[j] > (cs + s_abs) / (wc + w_abs):  # also stops at the handle's -inf
                    break
                s_abs += wr[j] * zr[j]
                w_abs += wr[j]
                k_abs += 1
            v = (cs + s_abs) / (wc + w_abs)
            d = (2 * (k_abs + m0) + 8) * ea
        # Write the leaves, x_j = min(y_j, v) (absorbed iff y_j - sh > v), then the handle.
        xv = v + sh
        t_last = labels[lr, s_last]
        # A leaf within the rounding bound d of v may belong to the last block (a heavy one
        # on the rounded mean does): put it there, at v (it moves by <= d), so that every
        # block holds the mean of its data and the gradient sees the block.
        lo = v - d
        for j in range(c):  # handle entries (zr = -inf) are overwritten just below
            x[b, j] = xv if zr[j] >= lo else y[b, j]
        if with_blocks:
            for j in range(c):
                if zr[j] >= lo:
                    blocks[b, j] = t_last
        for q in range(ns):
            end = st_s[q + 1] if q + 1 < ns else s_last
            for i in range(st_s[q], end):
                h = labels[lr, i]
                x[b, h] = st_m[q] + sh
                if with_blocks:
                    blocks[b, h] = labels[lr, st_s[q]]
        for i in range(s_last, kr):
            h = labels[lr, i]
            x[b, h] = xv
            if with_blocks:
                blocks[b, h] = t_last
    return finite
