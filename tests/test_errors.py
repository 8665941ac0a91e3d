"""Bad input gives a clear error that names the problem."""

import numpy as np
import pytest

import treeiso

Y3 = np.array([1.0, 2.0, 3.0])
P3 = [-1, 0, 0]

TREE_ERRORS = [
    ([0, 0, 1], ValueError, "node 0 is its own parent"),
    ([-1, 2, 1], ValueError, "cycle through node"),
    ([1, 2, 0], ValueError, "cycle through node"),
    ([-1, 0, 3], ValueError, r"parent\[2\] = 3 is out of range"),
    ([-2, 0, 0], ValueError, r"parent\[0\] = -2 is out of range"),
    ([-1.0, 0.0, 0.0], TypeError, "parent must contain integers"),
    ([True, False], TypeError, "parent must contain integers"),
    ([[-1, 0]], ValueError, "one-dimensional"),
    (np.array([None, 1]), TypeError, "integers"),
    ("abc", TypeError, "integers"),
]


@pytest.mark.parametrize("parent, exc, match", TREE_ERRORS)
def test_tree_errors(parent, exc, match):
    with pytest.raises(exc, match=match):
        treeiso.Tree(parent)
    with pytest.raises(exc, match=match):
        treeiso.fit(np.zeros(np.shape(parent)[-1] if np.ndim(parent) else 3), parent)


CONSTRUCTOR_ERRORS = [
    (lambda: treeiso.Tree.from_edges([(0, 1), (2, 1)]), ValueError, "node 1 has more than one parent"),
    (lambda: treeiso.Tree.from_edges([(0, 1), (1, 0)]), ValueError, "cycle"),
    (lambda: treeiso.Tree.from_edges([(0, 1, 2)]), ValueError, r"shape \(m, 2\)"),
    (lambda: treeiso.Tree.from_edges([(0, 5)], n=3), ValueError, r"in \[0, 3\)"),
    (lambda: treeiso.Tree.chain(-1), ValueError, "non-negative"),
    (lambda: treeiso.Tree.chain(2.5), TypeError, "integer"),
    (lambda: treeiso.Tree.star(3, center=3), ValueError, "center"),
    (lambda: treeiso.Tree.broom(4, [1, 1]), ValueError, "distinct"),
    (lambda: treeiso.Tree.broom(4, []), ValueError, "at least one"),
    (lambda: treeiso.Tree.broom(4, [0, 4]), ValueError, r"in \[0, 4\)"),
    (lambda: treeiso.Tree.star_plus_edge(4, 2, 2), ValueError, "distinct"),
]


@pytest.mark.parametrize("make, exc, match", CONSTRUCTOR_ERRORS)
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


FIT_ERRORS = [
    (dict(values=[1.0, np.nan, 3.0]), ValueError, r"values contains a NaN value at index 1"),
    (dict(values=[1.0, np.inf, 3.0]), ValueError, "values contains an infinite value"),
    (dict(values=[[1.0, 2.0, 3.0], [1.0, 2.0, -np.inf]]), ValueError, r"index \(1, 2\)"),
    (dict(values=[1.0, 2.0]), ValueError, "2 entries in its last axis but the tree has 3"),
    (dict(values=5.0), ValueError, "at least one dimension"),
    (dict(values=[1 + 1j, 2, 3]), TypeError, "values must be real"),
    (dict(values=["a", "b", "c"]), TypeError, "values must be numeric"),
    (dict(values=np.array([1, None, 3], dtype=object)), TypeError, "values must be numeric"),
    (dict(weights=[1.0, 0.0, 1.0]), ValueError, r"weights must be > 0, got 0.0 at index 1"),
    (dict(weights=[1.0, -2.0, 1.0]), ValueError, "weights must be > 0"),
    (dict(weights=[1.0, np.nan, 1.0]), ValueError, "weights contains a NaN"),
    (dict(weights=[1.0, 1.0]), ValueError, "do not broadcast"),
    (dict(weights=np.ones((2, 2, 3))), ValueError, "more dimensions than values"),
    (dict(weights=[1j, 1, 1]), TypeError, "weights must be real"),
    (dict(method="fast"), ValueError, "method must be one of"),
    (dict(method="pav"), ValueError, "method='pav' needs a tree of kind chain"),
    (dict(method="broom", tree=[-1, 0, 1, 1, 2]), ValueError, "kind star or broom"),
    (dict(backend="jax"), ValueError, "backend must be one of"),
    (dict(backend="torch"), TypeError, "torch.Tensor"),
    (dict(backend="scipy", method="pav"), ValueError, "method='auto' only"),
    (dict(orientation="up"), ValueError, "orientation must be one of"),
]


@pytest.mark.parametrize("kwargs, exc, match", FIT_ERRORS)
def test_fit_errors(kwargs, exc, match):
    args = dict(values=Y3, tree=P3)
    args.update(kwargs)
    if "tree" in kwargs:
        args["values"] = np.zeros(len(kwargs["tree"]))
    with pytest.raises(exc, match=match):
        treeiso.fit(**args)


def test_certify_errors():
    with pytest.raises(ValueError, match="solution has shape"):
        treeiso.certify(np.zeros((2, 3)), P3, np.zeros(3))
    with pytest.raises(ValueError, match="rtol must be > 0"):
        treeiso.certify(Y3, P3, Y3, rtol=0)
    with pytest.raises(ValueError, match="NaN"):
        treeiso.certify(Y3, P3, [np.nan, 1.0, 1.0])
    with pytest.raises(ValueError, match="orientation"):
        treeiso.certify(Y3, P3, Y3, orientation="down")


def test_mixed_array_libraries():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="torch.Tensor"):
        treeiso.fit(Y3, P3, weights=torch.ones(3))


def test_scipy_backend_refuses_huge_trees():
    with pytest.raises(ValueError, match="dense"):
        treeiso.fit(np.zeros(30_000), treeiso.Tree.star(30_000), backend="scipy")
