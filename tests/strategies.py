"""Hypothesis strategies: trees of many shapes, values and weights."""

import numpy as np
from hypothesis import strategies as st

SHAPES = ("recursive", "chain", "star", "caterpillar", "binary", "broom", "forest",
          "deep")


def make_parent(shape, n, rng):
    """A parent array of the given shape, nodes in topological order."""
    if n == 1:
        return np.array([-1])
    if shape == "recursive":
        return np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n)])
    if shape == "chain":
        return np.arange(-1, n - 1)
    if shape == "star":
        p = np.zeros(n, dtype=int)
        p[0] = -1
        return p
    if shape == "caterpillar":                # a spine with one leaf per node
        spine = (n + 1) // 2
        p = [-1] + list(range(spine - 1))
        p += [int(rng.integers(0, spine)) for _ in range(n - spine)]
        return np.array(p)
    if shape == "binary":
        return np.array([-1] + [(i - 1) // 2 for i in range(1, n)])
    if shape == "broom":
        k = int(rng.integers(1, n))
        return np.array([-1] + list(range(k - 1)) + [k - 1] * (n - k))
    if shape == "forest":
        return np.array([-1 if rng.random() < 0.3 else int(rng.integers(0, i)) if i else -1
                         for i in range(n)])
    if shape == "deep":                        # long paths with short branches
        return np.array([-1] + [max(0, i - 1 - int(rng.integers(0, 2))) for i in range(1, n)])
    raise ValueError(shape)


def relabel(parent, perm):
    """Node i becomes perm[i]; keeps the tree, breaks topological order."""
    n = len(parent)
    out = np.full(n, -1)
    for v in range(n):
        if parent[v] >= 0:
            out[perm[v]] = perm[parent[v]]
    return out


@st.composite
def trees(draw, min_n=1, max_n=30, shapes=SHAPES):
    shape = draw(st.sampled_from(shapes))
    n = draw(st.integers(min_n, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    parent = make_parent(shape, n, rng)
    if draw(st.booleans()):
        parent = relabel(parent, rng.permutation(n))
    return parent


VALUE_KINDS = ("gaussian", "ties", "offset", "far-offset", "cauchy", "integers")
# Offsets reach 1e12; the spread stays at least 1e-4 of the offset there, so that 1e-6 of the
# spread is still thousands of ulps (a smaller change is not representable at all: a
# certificate cannot see it). tests/test_certify.py covers 1e12 + N(0, 1) on its own.
MAX_OFFSET = 1e12


def make_values(kind, shape, rng):
    if kind == "gaussian":
        return rng.normal(size=shape)
    if kind == "ties":
        return rng.integers(0, 3, size=shape).astype(float)
    if kind == "offset":
        return 1e6 + 1e-3 * rng.integers(0, 4, size=shape) + 1e-6 * rng.normal(size=shape)
    if kind == "far-offset":
        off = rng.choice([-1.0, 1.0]) * 10 ** rng.uniform(0, np.log10(MAX_OFFSET))
        spread = max(10 ** rng.uniform(-2, 2), 1e-4 * abs(off))
        base = rng.integers(0, 4, size=shape) + 0.3 * rng.normal(size=shape)
        return off + spread * base
    if kind == "cauchy":
        return rng.standard_cauchy(size=shape)
    return rng.integers(-5, 6, size=shape).astype(float)


WEIGHT_KINDS = ("none", "ones", "integers", "loguniform", "wide", "two-point")
# Weights over 1e-12 .. 1e12: "wide" log-uniform, "two-point" light and heavy nodes
# side by side (the case where a rounded mean lands on a heavy node's value).
W_MIN, W_MAX = 1e-12, 1e12


def make_weights(kind, shape, rng):
    if kind == "none":
        return None
    if kind == "ones":
        return np.ones(shape)
    if kind == "integers":
        return rng.integers(1, 6, size=shape).astype(float)
    if kind == "wide":
        return np.exp(rng.uniform(np.log(W_MIN), np.log(W_MAX), size=shape))
    if kind == "two-point":
        return rng.choice([W_MIN, 1.0, W_MAX], size=shape)
    return np.exp(rng.uniform(np.log(1e-3), np.log(1e3), size=shape))


# Weights that a dense least-squares reference (BVLS) still solves to 1e-7: it squares the
# conditioning, so 1e-12 .. 1e12 weights are beyond it (treeiso's certificate rejects its
# answers there, rightly).
MODERATE_WEIGHT_KINDS = ("none", "ones", "integers", "loguniform")


@st.composite
def problems(draw, min_n=1, max_n=30, shapes=SHAPES, max_rows=4, weight_kinds=WEIGHT_KINDS,
             value_kinds=VALUE_KINDS):
    """(parent, y of shape (rows, n), w or None)."""
    parent = draw(trees(min_n, max_n, shapes))
    rows = draw(st.integers(1, max_rows))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y = make_values(draw(st.sampled_from(value_kinds)), (rows, len(parent)), rng)
    w = make_weights(draw(st.sampled_from(weight_kinds)), (rows, len(parent)), rng)
    return parent, y, w
