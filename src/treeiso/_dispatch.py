"""Which kernel serves which tree: the one dispatch table of treeiso (imports no Numba).

:func:`treeiso.fit` validates its arguments, calls :func:`resolve` once and hands the
resulting kernel name, with the normalized problem (:mod:`treeiso._problem`), to a backend
(:mod:`treeiso._backends.numba_runner`, :mod:`treeiso._backends.torch_runner`,
:mod:`treeiso._backends.scipy_ref`), which only runs it.

The kernel contract (every kernel in ``KERNELS``, all with orientation ``root_largest``)::

    kernel(y, w, *tree_arrays, x, blocks)

- ``y``: (B, n) float64 (PAV and the broom kernel also take float32, read as it is and
  pooled in float64), C-contiguous, finite;
- ``w``: (Bw, n) float64 (or like ``y``), Bw in {0 (unit weights), 1 (one row shared by
  every row), B};
- ``tree_arrays`` (:func:`tree_arrays`): ``pav`` takes the chain from the root down (None
  for the chain ``0 -> 1 -> ... -> n-1``);
  ``broom`` takes labels (Bl, k) int64, Bl in {1 (shared), B}, each row a handle padded
  with ``-1`` at its end; the IRT-BIN kernels take ``Tree.order`` and ``Tree.parent_pos``;
- ``x``: (B, n) output, same dtype as ``y``;
- ``blocks``: int64 output, (B, n) to receive the blocks (``blocks[b, i]``: the top node
  of the block holding ``i``) or (0, n) when the caller does not want them.

Kernels trust their input and are compiled ``nogil``, so rows can run on several threads.
The broom kernel also returns whether every value it read was finite (its callers use
that instead of a separate pass over the data); the others return nothing.
"""

from __future__ import annotations


import numpy as np

METHODS = ("auto", "pav", "star", "broom", "irt", "irt-pairing", "irt-leftist",
           "irt-binomial")
BACKENDS = ("auto", "numba", "scipy", "torch")
# The heap used by method="irt": pairing heaps were 3-10x faster than leftist and
# binomial heaps in benchmarks/bench_cpu.py (see docs/benchmarks).
DEFAULT_HEAP = "irt-pairing"
#: kernel name -> (module, function)
KERNELS = {
    "pav": ("_kernels.pav", "pav_rows"),
    "pav-scanned": ("_kernels.pav", "pav_rows_scanned"),
    "broom": ("_kernels.broom", "broom_rows"),
    "irt-pairing": ("_kernels.irt_pairing", "irt_pairing_rows"),
    "irt-leftist": ("_kernels.irt_leftist", "irt_leftist_rows"),
    "irt-binomial": ("_kernels.irt_binomial", "irt_binomial_rows"),
    "quantile": ("_kernels.quantile", "quantile_rows"),
    "linf": ("_kernels.linf", "linf_rows"),
}
#: method -> the tree kinds it solves (the IRT methods solve every tree)
_SHAPES = {"pav": ("chain",), "star": ("star",), "broom": ("star", "broom", "chain")}
# Brooms whose handle has more nodes than this go to IRT-BIN under method="auto": past it
# the broom kernel may sort the leaves (O(n log n), as IRT-BIN, but slower).
AUTO_BROOM_MAX_HANDLE = 8
#: tree kind -> the kernel of method="auto"
_AUTO = {"chain": "pav", "star": "broom", "broom": "broom", "general": DEFAULT_HEAP}


def resolve(method, tree):
    """The kernel (a key of ``KERNELS``) that runs ``method`` on ``tree``.

    Raises ValueError for an unknown method or one that does not fit the tree's kind.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    shapes = _SHAPES.get(method)
    if method == "star" and tree.kind == "chain" and tree.n <= 2:
        shapes = None               # a root with at most one child is a star too
    if shapes is not None and tree.kind not in shapes:
        raise ValueError(
            f"method={method!r} needs a tree of kind {' or '.join(shapes)}, "
            f"but this tree is of kind {tree.kind!r}; use method='irt' or 'auto'"
        )
    if method == "auto":
        if tree.kind == "broom" and tree.handle.size > AUTO_BROOM_MAX_HANDLE:
            return DEFAULT_HEAP     # the broom kernel would sort: IRT-BIN is faster
        return _AUTO[tree.kind]
    if method == "star":
        return "broom"              # a star is a broom whose handle is the root
    if method == "irt":
        return DEFAULT_HEAP
    return method


#: the losses of :func:`treeiso.fit` beside least squares, and the kernels that solve them
ROBUST_LOSSES = {"l1": "quantile", "quantile": "quantile", "linf": "linf"}


def resolve_robust(method, loss):
    """The kernel of ``loss`` in :data:`ROBUST_LOSSES` (each solves every tree; ``method="auto"``
    only): the quantile slope trick, or the L-infinity pair iteration."""
    if method != "auto":
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        raise ValueError(f"method={method!r} solves loss='l2' only; loss={loss!r} takes "
                         "method='auto'")
    return ROBUST_LOSSES[loss]


def resolve_kernel(method, loss, tree):
    """The kernel of ``method`` for ``loss`` on ``tree``: :func:`resolve` for least squares,
    :func:`resolve_robust` for the other losses."""
    return resolve(method, tree) if loss == "l2" else resolve_robust(method, loss)


_loaded = {}


def load(kernel):
    """The compiled kernel function (imports its module, hence Numba, on first use)."""
    fn = _loaded.get(kernel)
    if fn is None:
        import importlib

        module, name = KERNELS[kernel]
        fn = _loaded[kernel] = getattr(importlib.import_module(f"{__package__}.{module}"),
                                       name)
    return fn


def tree_arrays(kernel, tree):
    """The tree arguments of ``kernel`` for ``tree`` (see the module docstring)."""
    if kernel == "pav":  # None: the chain 0 -> 1 -> ... (no indirection in the kernel)
        return (None if tree._chain_in_order else tree.handle,)
    if kernel == "broom":
        return (tree.handle.astype(np.int64).reshape(1, -1),)
    return (tree.order, tree.parent_pos)
