"""The public entry point :func:`fit` and its dispatch to the kernels."""

from typing import NamedTuple

import numpy as np

from ._tree import as_tree
from ._validation import (
    as_rows,
    check_orientation,
    is_torch_tensor,
    prepare_values,
    prepare_weights,
)

__all__ = ["fit", "FitResult"]

METHODS = ("auto", "pav", "star", "broom", "irt", "irt-pairing", "irt-leftist",
           "irt-binomial")
BACKENDS = ("auto", "numba", "scipy", "torch")
# The heap used by method="irt": pairing heaps were 3-10x faster than leftist
# and binomial heaps in benchmarks/bench_cpu.py (see docs/benchmarks).
DEFAULT_HEAP = "irt-pairing"
_IRT_KERNELS = {
    "irt-pairing": ("_irt_pairing", "irt_pairing_rows"),
    "irt-leftist": ("_irt_leftist", "irt_leftist_rows"),
    "irt-binomial": ("_irt_binomial", "irt_binomial_rows"),
}


class FitResult(NamedTuple):
    """Result of :func:`fit` with ``return_blocks=True``.

    Attributes
    ----------
    x : ndarray or Tensor
        The fitted values, as returned by :func:`fit`.
    blocks : ndarray or Tensor of int64
        Same shape as ``x``: ``blocks[..., i]`` is the id of the top (closest
        to the root) node of the block that contains node ``i``. Nodes of one
        block share one fitted value, the weighted mean of their data.

    Examples
    --------
    >>> import treeiso
    >>> res = treeiso.fit([0.0, 1.0, 10.0], [-1, 0, 0], return_blocks=True)
    >>> res.x
    array([5., 1., 5.])
    >>> res.blocks      # node 2 pooled with the root, node 1 alone
    array([0, 1, 0])
    """

    x: object
    blocks: object


def fit(values, tree, weights=None, *, orientation="root_largest", method="auto",
        backend="auto", return_blocks=False):
    r"""Weighted least-squares isotonic regression on a rooted tree or forest.

    Solves, for every row ``y`` of ``values`` (the last axis indexes nodes),

    .. math::

        \min_x \sum_i w_i (x_i - y_i)^2 \quad \text{subject to} \quad
        x_{\mathrm{parent}(i)} \ge x_i \text{ for every non-root } i

    (``orientation="root_largest"``: each root holds the maximum of its tree),
    or the same with ``x_{parent(i)} <= x_i`` (``"root_smallest"``). The
    solution is unique; it is constant on connected blocks of nodes, each at
    the weighted mean of its data.

    Parameters
    ----------
    values : array-like or torch.Tensor of shape (..., n)
        Data ``y``. Every row is fitted with the same tree. Must be finite.
    tree : Tree or array-like of int of shape (n,)
        The tree, or its parent array (``-1`` marks a root).
    weights : array-like or torch.Tensor, optional
        Positive finite weights ``w``, broadcastable to ``values``. Default 1.
    orientation : {"root_largest", "root_smallest"}, default="root_largest"
        Direction of the order constraints.
    method : {"auto", "pav", "star", "broom", "irt", "irt-pairing", "irt-leftist", "irt-binomial"}, default="auto"
        ``"auto"`` picks from ``tree.kind``: pool-adjacent-violators for
        chains (O(n)), the star/broom kernel for stars and brooms
        (star-plus-edge trees; a few O(n) passes in practice, O(n log n) at
        worst), IRT-BIN (O(n log n)) otherwise. ``"irt"``
        is IRT-BIN with the default (pairing) heap; ``"irt-pairing"``,
        ``"irt-leftist"`` and ``"irt-binomial"`` (the published variant)
        choose the mergeable heap. IRT-BIN solves every tree; the others
        need the matching shape.
    backend : {"auto", "numba", "scipy", "torch"}, default="auto"
        ``"auto"``: Numba kernels for NumPy input, the torch backend for
        tensors. ``"scipy"`` is the slow reference: a dense bounded
        least-squares solve (``scipy.optimize.lsq_linear``, BVLS), accurate
        to about 1e-10 and meant for n up to a few thousand.
    return_blocks : bool, default=False
        Also return the blocks (see :class:`FitResult`).

    Returns
    -------
    x : ndarray or Tensor of shape (..., n)
        Same type, shape and floating dtype as ``values`` (integers give
        float64). With ``return_blocks=True``, a :class:`FitResult`.

    Raises
    ------
    ValueError
        For NaN or infinite values or weights, non-positive weights, shapes
        that do not match the tree, 0-d values, an unknown method, or a method
        that does not fit the tree's shape.
    TypeError
        For complex or non-numeric values or weights.

    See Also
    --------
    certify : check that an answer is optimal.
    fit_topk : a different label-order tree for every row.

    Notes
    -----
    Float32 input is computed in float64 and rounded back. Inputs are never
    modified. Runs in O(n log n) time and O(n) memory per row at worst.

    Torch tensors keep their device and dtype and are differentiable in
    ``values`` and ``weights`` (the Jacobian averages over blocks). Chains,
    stars and brooms run natively on the tensor's device; other trees run
    the CPU kernel, so CUDA tensors are then copied to the host and back.

    Examples
    --------
    >>> import treeiso
    >>> treeiso.fit([0.0, 1.0, 10.0], [-1, 0, 0])   # a root and two leaves
    array([5., 1., 5.])
    >>> treeiso.fit([1.0, 3.0, 2.0], treeiso.Tree.chain(3))
    array([2., 2., 2.])
    >>> treeiso.fit([3.0, 1.0, 2.0], [-1, 0, 1], orientation="root_smallest")
    array([2., 2., 2.])
    """
    check_orientation(orientation)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    tree = as_tree(tree)
    if is_torch_tensor(values) or backend == "torch":
        if not is_torch_tensor(values):
            raise TypeError("backend='torch' needs values given as a torch.Tensor")
        if backend not in ("auto", "torch"):
            raise ValueError(
                f"backend={backend!r} takes NumPy input; torch tensors run on "
                "backend='auto' or 'torch' (convert with .numpy() for the others)"
            )
        from ._torch_backend import fit_torch

        return fit_torch(values, tree, weights, orientation=orientation,
                         method=method, return_blocks=return_blocks)
    if is_torch_tensor(weights):
        raise TypeError(
            "values is a NumPy array but weights is a torch.Tensor: pass both "
            "as NumPy arrays or both as tensors"
        )
    y, out_dtype = prepare_values(values, tree.n)
    w = prepare_weights(weights, y.shape)
    y2 = as_rows(y)
    if backend == "scipy":
        if method != "auto":
            raise ValueError("backend='scipy' takes method='auto' only")
        from ._scipy_ref import bvls_rows

        sign = 1.0 if orientation == "root_largest" else -1.0
        x2 = sign * bvls_rows(sign * y2, w, tree)
        blocks = _blocks_from_solution(x2, tree) if return_blocks else None
    else:
        x2, blocks = fit_rows(y2, w, tree, orientation=orientation, method=method,
                              return_blocks=return_blocks)
    x = x2.reshape(y.shape).astype(out_dtype, copy=False)
    if return_blocks:
        return FitResult(x, blocks.reshape(y.shape))
    return x


def _check_method_fits(method, tree):
    shapes = {"pav": ("chain",), "star": ("star",), "broom": ("star", "broom")}
    if method in shapes and tree.kind not in shapes[method]:
        raise ValueError(
            f"method={method!r} needs a tree of kind {' or '.join(shapes[method])}, "
            f"but this tree is of kind {tree.kind!r}; use method='irt' or 'auto'"
        )


def resolve_method(method, tree):
    """The concrete kernel name that ``fit`` runs for ``method`` on ``tree``."""
    _check_method_fits(method, tree)
    if method == "auto":
        method = {"chain": "pav", "star": "broom", "broom": "broom"}.get(tree.kind, "irt")
    if method == "star":
        method = "broom"            # a star is a broom whose handle is the root
    if method == "irt":
        method = DEFAULT_HEAP
    return method


def fit_rows(y, w, tree, *, orientation="root_largest", method="auto",
             return_blocks=False):
    """Fit every row of ``y`` (float64, C-contiguous, shape (B, n)); no validation.

    ``w`` is float64 of shape (Bw, n), Bw in {0 (unit weights), 1 (shared), B}.
    Returns ``(x, blocks)``, both of shape (B, n); ``blocks`` is None unless
    ``return_blocks``. Used by :func:`fit` and by the torch backend.
    """
    method = resolve_method(method, tree)
    if orientation == "root_smallest":
        y = -y
    n_rows, n = y.shape
    x = np.empty((n_rows, n))
    blocks = np.empty((n_rows, n) if return_blocks else (0, n), dtype=np.int64)
    if n_rows and n:
        if method == "pav":
            from ._pav import pav_rows

            pav_rows(y, w, tree.handle, x, blocks, return_blocks)
        elif method == "broom":
            from ._broom import broom_rows_blocks

            labels = np.ascontiguousarray(
                np.broadcast_to(tree.handle.astype(np.int64), (n_rows, tree.handle.size)))
            x, top = broom_rows_blocks(y, w, labels, want_top=return_blocks, out=x)
            if return_blocks:
                blocks = top
        else:
            import importlib

            module, name = _IRT_KERNELS[method]
            kernel = getattr(importlib.import_module(f"{__package__}.{module}"), name)
            kernel(y, w, tree.order, tree.parent_pos, x, blocks, return_blocks)
    if orientation == "root_smallest":
        np.negative(x, out=x)
    return x, (blocks if return_blocks else None)


def _blocks_from_solution(x, tree, rtol=1e-9):
    """Blocks of an approximate solution: a node joins its parent's block when
    their values agree to ``rtol`` times the row's scale (reference backend)."""
    blocks = np.empty(x.shape, dtype=np.int64)
    order, parent = tree.order, tree.parent
    for b in range(x.shape[0]):
        top = np.arange(tree.n, dtype=np.int64)
        row = x[b]
        tol = rtol * max(np.abs(row).max(initial=0.0), np.finfo(float).tiny)
        for v in order:
            p = parent[v]
            if p >= 0 and abs(row[p] - row[v]) <= tol:
                top[v] = top[p]
        blocks[b] = top
    return blocks
