"""The torch front ends of :func:`treeiso.fit` and :func:`treeiso.fit_topk`: a tensor
call (least squares) becomes a :class:`treeiso._problem.Problem`
(:func:`treeiso._backends.torch_arrays.tensor_problem`), one custom op of
:mod:`treeiso._backends.torch_ops` fits its rows, and :func:`treeiso._problem.finish` gives
the answer back its shape, dtype and axis.

Chains, stars and brooms run natively on the tensor's device; other trees (and
``method='irt*'``) run the CPU kernel, so CUDA tensors are copied to the host and back. The
host paths split rows over ``threads`` threads (:mod:`treeiso._backends.numba_runner`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._dispatch import resolve_kernel
from .._problem import finish, restore_blocks
from .._result import FitResult
from .._tree import Tree, as_tree
from .._validation import is_torch_tensor
from .torch_arrays import op_threads, tensor_problem
from .torch_ops import broom_op, chain_op, tree_op


def fit_tensor(values, tree, weights, *, method, backend, loss, level, orientation, bounds,
               return_blocks, axis, threads, check_finite):
    """:func:`treeiso.fit` for tensor ``values`` (options checked): resolves the kernel
    and runs the least-squares ops (:func:`fit_torch`) or, for the other losses, the host
    kernels (:func:`treeiso._backends.torch_robust.fit_robust_torch`)."""
    if not is_torch_tensor(values):
        raise TypeError("backend='torch' needs values given as a torch.Tensor")
    if backend not in ("auto", "torch"):
        raise ValueError(f"backend={backend!r} takes NumPy input; torch tensors run on "
                         "backend='auto' or 'torch' (convert with .numpy() for the others)")
    tree = as_tree(tree if isinstance(tree, Tree) else _build_tree(tree))
    kernel = resolve_kernel(method, loss, tree)
    opts = dict(orientation=orientation, bounds=bounds, return_blocks=return_blocks,
                axis=axis, threads=threads, check_finite=check_finite)
    if loss != "l2":
        from .torch_robust import fit_robust_torch

        return fit_robust_torch(values, tree, weights, kernel, level=level, loss=loss, **opts)
    return fit_torch(values, tree, weights, kernel, **opts)


def fit_torch(values: Tensor, tree, weights, kernel: str, *, orientation="root_largest",
              bounds=(None, None), return_blocks=False, axis=-1, threads=None,
              check_finite=True):
    """Torch implementation of :func:`treeiso.fit` (see there): runs ``kernel``, resolved
    by :func:`treeiso._dispatch.resolve` for ``tree``. Differentiable in ``values`` and
    ``weights`` (the VJP averages over the blocks)."""
    p = tensor_problem(values, weights, axis, orientation, bounds, tree.n)
    native = values.device.type != "cpu"
    nt = op_threads(threads)
    if kernel == "pav":
        order = torch.as_tensor(np.asarray(tree.handle, dtype=np.int64))
        x, blocks = chain_op(p.y, p.w, order, native, nt, check_finite)
    elif kernel == "broom":
        lab = torch.as_tensor(np.asarray(tree.handle, dtype=np.int64), device=values.device)
        x, blocks = broom_op(p.y, p.w, lab.expand(p.y.shape[0], -1).contiguous(), native, nt,
                             check_finite)
    else:
        order = torch.from_numpy(np.array(tree.order))  # host tensors: the kernel runs there
        parent_pos = torch.from_numpy(np.array(tree.parent_pos))
        x, blocks = tree_op(p.y, p.w, order, parent_pos, kernel, nt, check_finite)
    x = finish(p, x)
    return FitResult(x, restore_blocks(p, blocks)) if return_blocks else x


@torch.compiler.disable
def _build_tree(parent):
    """``Tree(parent)`` outside torch.compile: its validation is a NumPy/Numba pass that
    dynamo cannot trace (it crashed tracing into numba). A graph break, here only."""
    return Tree(parent)


def fit_topk_torch(values: Tensor, labels, weights=None, *, orientation="root_largest",
                   bounds=(None, None), axis=-1, threads=None, check_finite=True) -> Tensor:
    """Torch implementation of :func:`treeiso.fit_topk` (see there)."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"values is a torch.Tensor but labels is {type(labels).__name__}: "
                        "pass both as tensors")
    if labels.device != values.device:
        raise ValueError(f"labels are on {labels.device} but values on {values.device}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    p = tensor_problem(values, weights, axis, orientation, bounds)
    if labels.ndim == 0:
        labels = labels.reshape(1)
    lead = p.shape[:-1]
    try:
        lab = torch.broadcast_to(labels.long(), lead + labels.shape[-1:])
    except RuntimeError:
        raise ValueError(f"labels of shape {tuple(labels.shape)} do not fit values of shape "
                         f"{tuple(values.shape)}: expected (..., k) with ... = "
                         f"{tuple(lead)}") from None
    lab2 = lab.reshape(p.y.shape[0], lab.shape[-1]).contiguous()
    x, _ = broom_op(p.y, p.w, lab2, values.device.type != "cpu", op_threads(threads),
                    check_finite)
    return finish(p, x)
