"""The :class:`Tree` type: a validated, reusable rooted tree or forest."""

import operator

import numpy as np

from ._validation import is_torch_tensor, reject_masked

__all__ = ["Tree", "as_tree"]


def _readonly(a):
    a.flags.writeable = False
    return a


def _index_dtype(n):
    return np.int32 if n < 2**31 - 1 else np.int64


def _as_index_array(obj, what):
    """Convert ``obj`` to a 1-D integer NumPy array, rejecting non-integers."""
    if is_torch_tensor(obj):
        obj = obj.detach().cpu().numpy()
    reject_masked(obj, what)
    arr = np.asarray(obj)
    if arr.dtype == object:
        raise TypeError(f"{what} must be an array of integers, got objects")
    if arr.dtype.kind not in "iu":
        if arr.size == 0 and arr.dtype.kind == "f":
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"{what} must contain integers, got dtype {arr.dtype}"
            )
    return arr


class Tree:
    """A rooted tree or forest on nodes ``0 .. n-1``, validated once.

    The tree defines the order constraints of the isotonic regression: in the
    default orientation ``"root_largest"`` every parent is at least each of its
    children, ``x[parent[i]] >= x[i]``.

    Parameters
    ----------
    parent : array-like of int, shape (n,)
        ``parent[i]`` is the parent of node ``i``; ``-1`` marks a root. Several
        roots make a forest. Node ids need not be in any topological order.

    Attributes
    ----------
    parent : ndarray of shape (n,)
        Read-only parent array (``int32`` when ``n < 2**31 - 1``).
    n : int
        Number of nodes.
    order : ndarray of shape (n,)
        Read-only breadth-first order from the roots: every parent comes
        before its children.
    parent_pos : ndarray of shape (n,)
        Read-only: ``parent_pos[i]`` is the position in ``order`` of the
        parent of ``order[i]``, or -1 for a root (so ``parent_pos[i] < i``).
    roots : ndarray
        Read-only ids of the roots, in increasing order.
    kind : {"chain", "star", "broom", "general"}
        The shape, used by :func:`treeiso.fit` to pick a solver. ``"chain"``:
        one root and at most one child per node, or no node at all; a chain of
        ``n <= 2`` nodes is also a star, and every chain is also a broom, so
        ``method="star"`` and ``"broom"`` accept them. ``"star"``: one root whose
        children are all the other nodes (``n >= 3``). ``"broom"``: a handle
        ``c1 -> c2 -> ... -> cK`` (``K >= 2``) whose last node is the parent of
        all the other nodes, which are leaves (``x[c1] >= ... >= x[cK] >=``
        every other node; ``K = 2`` is the star-plus-edge tree of Mixup).
        Anything else, forests included, is ``"general"``.
    handle : ndarray or None
        For a chain, all nodes from the root down; for a star, ``[root]``; for
        a broom, ``[c1, ..., cK]``. ``None`` for general trees.

    Raises
    ------
    TypeError
        If ``parent`` does not hold integers.
    ValueError
        If ``parent`` is not one-dimensional, has an id outside
        ``[-1, n)``, a node that is its own parent, or a cycle.

    Notes
    -----
    Construction is O(n) time and memory and never recurses, so a chain of
    ten million nodes given as a shuffled parent array is fine.

    Examples
    --------
    >>> import treeiso
    >>> t = treeiso.Tree([-1, 0, 0, 1])
    >>> t.n, t.kind, t.roots.tolist()
    (4, 'general', [0])
    >>> treeiso.Tree.chain(3).kind
    'chain'
    """

    __slots__ = ("parent", "n", "order", "parent_pos", "roots", "kind", "handle",
                 "_n_children", "_chain_in_order")

    def __init__(self, parent):
        if isinstance(parent, Tree):
            for name in Tree.__slots__:
                setattr(self, name, getattr(parent, name))
            return
        arr = _as_index_array(parent, "parent")
        if arr.ndim != 1:
            raise ValueError(
                f"parent must be one-dimensional, got shape {arr.shape}"
            )
        n = arr.shape[0]
        if n and (arr.min() < -1 or arr.max() >= n):
            bad = int(np.flatnonzero((arr < -1) | (arr >= n))[0])
            raise ValueError(
                f"parent[{bad}] = {int(arr[bad])} is out of range: parent ids "
                f"must be -1 (a root) or in [0, {n})"
            )
        idx_t = _index_dtype(n)
        par = np.ascontiguousarray(arr, dtype=idx_t)
        if par is arr or np.shares_memory(par, arr):
            par = par.copy()
        self_loop = np.flatnonzero(par == np.arange(n, dtype=idx_t))
        if self_loop.size:
            raise ValueError(f"node {int(self_loop[0])} is its own parent")
        if n == 0:
            order = np.empty(0, dtype=idx_t)
            parent_pos = np.empty(0, dtype=idx_t)
            n_children = np.empty(0, dtype=idx_t)
        else:
            from ._kernels.tree_kernels import bfs_order, node_on_cycle, parent_positions

            order, count, n_children = bfs_order(par)
            if count < n:
                v = int(node_on_cycle(par, order, count))
                raise ValueError(
                    f"parent array has a cycle through node {v}: not a tree"
                )
            parent_pos = parent_positions(par, order)
        self.parent = _readonly(par)
        self.n = int(n)
        self.order = _readonly(order)
        self.parent_pos = _readonly(parent_pos)
        self.roots = _readonly(np.flatnonzero(par < 0).astype(idx_t))
        self._n_children = n_children
        self.kind, handle = self._classify()
        self.handle = None if handle is None else _readonly(handle)
        # The chain 0 -> 1 -> ... -> n-1: PAV then runs without the index indirection.
        self._chain_in_order = self.kind == "chain" and bool(
            (handle == np.arange(n, dtype=handle.dtype)).all())

    def _classify(self):
        n, nch, order = self.n, self._n_children, self.order
        if n == 0:  # the empty chain (no roots, nothing to order)
            return "chain", order.copy()
        if self.roots.shape[0] != 1:
            return "general", None
        if n <= 2 or nch.max() <= 1:
            return "chain", order.copy()
        root = int(self.roots[0])
        if nch[root] == n - 1:
            return "star", order[:1].copy()
        # A broom: the first K nodes of the BFS order form the handle.
        k = 0
        while k < n and nch[order[k]] == 1:
            k += 1
        # order[k] is the last handle node; it must own every remaining node.
        if k >= 1 and nch[order[k]] == n - k - 1:
            return "broom", order[: k + 1].copy()
        return "general", None

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_parents(cls, parent):
        """Build a tree from a parent array (``-1`` marks a root).

        Same as ``Tree(parent)``.

        Examples
        --------
        >>> import treeiso
        >>> treeiso.Tree.from_parents([1, -1, 1]).kind
        'star'
        """
        return cls(parent)

    @classmethod
    def from_edges(cls, edges, n=None):
        """Build a tree from ``(u, v)`` pairs meaning ``x[u] >= x[v]``.

        Each pair makes ``u`` the parent of ``v``.

        Parameters
        ----------
        edges : array-like of int, shape (m, 2)
            The edges, parent first.
        n : int, optional
            Number of nodes; defaults to ``max(edges) + 1``. Nodes that appear
            in no edge become isolated roots.

        Raises
        ------
        ValueError
            If a node has two parents, or the edges contain a cycle.

        Examples
        --------
        >>> import treeiso
        >>> t = treeiso.Tree.from_edges([(0, 1), (1, 2)])
        >>> t.parent.tolist(), t.kind
        ([-1, 0, 1], 'chain')
        """
        e = _as_index_array(edges, "edges")
        if e.size == 0:
            e = e.reshape(0, 2)
        if e.ndim != 2 or e.shape[1] != 2:
            raise ValueError(f"edges must have shape (m, 2), got {e.shape}")
        if n is None:
            n = int(e.max()) + 1 if e.size else 0
        n = operator.index(n)
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        if e.size and (e.min() < 0 or e.max() >= n):
            raise ValueError(f"edge node ids must be in [0, {n})")
        parent = np.full(n, -1, dtype=np.int64)
        child = e[:, 1]
        counts = np.bincount(child, minlength=n)
        if counts.size and counts.max() > 1:
            v = int(np.flatnonzero(counts > 1)[0])
            parents = e[child == v, 0]
            if np.unique(parents).size < parents.size:
                dup = [int(p) for p in parents]
                u = next(p for p in dup if dup.count(p) > 1)
                raise ValueError(f"edge ({u}, {v}) is repeated in edges")
            raise ValueError(f"node {v} has more than one parent in edges "
                             f"({', '.join(str(int(p)) for p in parents[:4])})")
        parent[child] = e[:, 0]
        return cls(parent)

    @classmethod
    def chain(cls, n):
        """The chain ``x[0] >= x[1] >= ... >= x[n-1]`` (node ``i`` is the parent of ``i+1``).

        Examples
        --------
        >>> import treeiso
        >>> treeiso.Tree.chain(4).parent.tolist()
        [-1, 0, 1, 2]
        """
        n = operator.index(n)
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        return cls(np.arange(-1, n - 1, dtype=np.int64))

    @classmethod
    def star(cls, n, center=0):
        """The star: node ``center`` is at least every other node.

        Examples
        --------
        >>> import treeiso
        >>> treeiso.Tree.star(4, center=2).parent.tolist()
        [2, 2, -1, 2]
        """
        n = operator.index(n)
        center = operator.index(center)
        if not 0 <= center < n:
            raise ValueError(f"center must be in [0, {n}), got {center}")
        parent = np.full(n, center, dtype=np.int64)
        parent[center] = -1
        return cls(parent)

    @classmethod
    def broom(cls, n, handle):
        """The broom ``x[h0] >= x[h1] >= ... >= x[h(K-1)] >=`` every other node.

        This is the label-order tree of distillation: the handle lists the
        labels, most important first.

        Parameters
        ----------
        n : int
            Number of nodes.
        handle : sequence of int
            Distinct node ids, root first (``K >= 1``; ``K = 1`` is a star).

        Examples
        --------
        >>> import treeiso
        >>> treeiso.Tree.broom(5, [3, 1]).parent.tolist()
        [1, 3, 1, -1, 1]
        """
        n = operator.index(n)
        h = _as_index_array(handle, "handle").reshape(-1)
        if h.size == 0:
            raise ValueError("handle must name at least one node")
        if h.min() < 0 or h.max() >= n:
            raise ValueError(f"handle node ids must be in [0, {n})")
        if np.unique(h).size != h.size:
            raise ValueError("handle node ids must be distinct")
        parent = np.full(n, h[-1], dtype=np.int64)
        parent[h[0]] = -1
        parent[h[1:]] = h[:-1]
        return cls(parent)

    @classmethod
    def star_plus_edge(cls, n, a, b):
        """The Mixup tree of Cui & Yan (2021): ``x[a] >= x[b] >=`` every other node.

        Examples
        --------
        >>> import treeiso
        >>> t = treeiso.Tree.star_plus_edge(4, 2, 0)
        >>> t.parent.tolist(), t.kind
        ([2, 0, -1, 0], 'broom')
        """
        return cls.broom(n, [a, b])

    # ----------------------------------------------------------------- dunder
    def __len__(self):
        return self.n

    def __repr__(self):
        return f"Tree(n={self.n}, kind={self.kind!r}, roots={self.roots.shape[0]})"

    def __eq__(self, other):
        if not isinstance(other, Tree):
            return NotImplemented
        return self.n == other.n and bool(np.array_equal(self.parent, other.parent))

    __hash__ = None


def as_tree(tree):
    """Return ``tree`` as a :class:`Tree`, building one from a parent array.

    Parameters
    ----------
    tree : Tree or array-like of int
        A tree, or a parent array with ``-1`` at the roots.

    Examples
    --------
    >>> import treeiso
    >>> treeiso.as_tree([-1, 0, 0]).kind
    'star'
    """
    return tree if isinstance(tree, Tree) else Tree(tree)
