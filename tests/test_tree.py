"""treeiso.Tree: constructors, shapes, traversal orders."""

import numpy as np
import pytest
from hypothesis import given

import treeiso
from strategies import trees


@given(trees(max_n=60))
def test_order_puts_parents_first(parent):
    tree = treeiso.Tree(parent)
    pos = np.empty(tree.n, dtype=int)
    pos[tree.order] = np.arange(tree.n)
    assert sorted(tree.order.tolist()) == list(range(tree.n))
    for v, p in enumerate(parent):
        if p >= 0:
            assert pos[p] < pos[v]
            assert tree.parent_pos[pos[v]] == pos[p]
        else:
            assert tree.parent_pos[pos[v]] == -1
    np.testing.assert_array_equal(tree.parent, parent)
    np.testing.assert_array_equal(tree.roots, np.flatnonzero(np.asarray(parent) < 0))


@pytest.mark.parametrize(
    "parent, kind, handle",
    [
        ([-1], "chain", [0]),
        ([1, -1], "chain", [1, 0]),
        ([-1, 0, 1, 2], "chain", [0, 1, 2, 3]),
        ([2, 2, -1, 2], "star", [2]),
        ([-1, 0, 1, 1, 1], "broom", [0, 1]),
        ([3, 2, 0, -1, 2, 2], "broom", [3, 0, 2]),
        ([-1, 0, 0, 1], "general", None),
        ([-1, -1, 0], "general", None),          # forest
        ([-1, 0, 1, 1, 2], "general", None),     # branching below the handle
    ],
)
def test_kinds(parent, kind, handle):
    tree = treeiso.Tree(parent)
    assert tree.kind == kind
    if handle is None:
        assert tree.handle is None
    else:
        np.testing.assert_array_equal(tree.handle, handle)


def test_constructors():
    assert treeiso.Tree.chain(5) == treeiso.Tree([-1, 0, 1, 2, 3])
    assert treeiso.Tree.star(4, center=1) == treeiso.Tree([1, -1, 1, 1])
    t = treeiso.Tree.star_plus_edge(5, 3, 1)
    assert t == treeiso.Tree([1, 3, 1, -1, 1]) and t.kind == "broom"
    assert treeiso.Tree.broom(4, [2]).kind == "star"
    assert treeiso.Tree.from_edges([(2, 0), (2, 1)]) == treeiso.Tree([2, 2, -1])
    assert treeiso.Tree.from_edges([(0, 1)], n=3) == treeiso.Tree([-1, 0, -1])
    assert treeiso.Tree.from_parents([-1, 0]) == treeiso.Tree([-1, 0])
    assert treeiso.as_tree(t) is t
    assert treeiso.Tree(t) == t
    assert len(t) == 5 and "broom" in repr(t)
    assert treeiso.Tree.chain(0).n == 0


def test_tree_arrays_are_read_only_copies():
    parent = np.array([-1, 0, 0])
    tree = treeiso.Tree(parent)
    parent[1] = 2                               # the tree keeps its own copy
    assert tree.parent[1] == 0
    for name in ("parent", "order", "parent_pos", "roots"):
        with pytest.raises(ValueError):
            getattr(tree, name)[0] = 5


def test_accepts_other_integer_types():
    for dtype in (np.int8, np.int16, np.int32, np.int64, np.uint8):
        p = np.array([1, 2, 255 if dtype == np.uint8 else -1], dtype=dtype)
        if dtype == np.uint8:
            with pytest.raises(ValueError, match="out of range"):
                treeiso.Tree(p)
        else:
            assert treeiso.Tree(p).kind == "chain"
    torch = pytest.importorskip("torch")
    assert treeiso.Tree(torch.tensor([-1, 0, 0])).kind == "star"


def test_deep_shuffled_chain_builds_without_recursion():
    n = 10**6
    rng = np.random.default_rng(0)
    perm = rng.permutation(n)
    parent = np.empty(n, dtype=np.int64)
    parent[perm[0]] = -1
    parent[perm[1:]] = perm[:-1]
    tree = treeiso.Tree(parent)
    assert tree.kind == "chain"
    np.testing.assert_array_equal(tree.handle, perm)
