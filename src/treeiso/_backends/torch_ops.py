"""Tree isotonic regression as differentiable ``torch.library`` custom ops.

Three ops, each returning the fit ``x`` and its ``blocks`` (``blocks[b, i]`` is the root-most
node of the block holding ``i``), with one autograd formula (the Jacobian averages over the
blocks):

- ``treeiso::chain``: ``x[order[0]] >= x[order[1]] >= ...`` per row;
- ``treeiso::broom``: one broom per row, given by its handle (labels);
- ``treeiso::tree``: any tree, by an IRT-BIN kernel on the host.

The ops register the operation, its shape function and its derivative; what they compute
is :mod:`treeiso._backends.torch_runner`'s (checks, scaling, host or native kernels). ``native``
asks for the torch-only code on CPU tensors too (other devices always run it); ``threads``
0 means the default; ``check=False`` skips the data checks (and the host synchronisation
they cost on CUDA).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import torch_runner as runner


@torch.library.custom_op("treeiso::chain", mutates_args=())
def chain_op(y: Tensor, w: Tensor | None, order: Tensor, native: bool, threads: int = 0,
             check: bool = True) -> tuple[Tensor, Tensor]:
    """``x[order[0]] >= x[order[1]] >= ...`` per row; ``blocks`` holds node ids."""
    return runner.chain_rows(y, w, order, native, threads, check)


@torch.library.custom_op("treeiso::broom", mutates_args=())
def broom_op(y: Tensor, w: Tensor | None, labels: Tensor, native: bool, threads: int = 0,
             check: bool = True) -> tuple[Tensor, Tensor]:
    """One broom per row: ``x[l0] >= x[l1] >= ... >= every other entry``, ``l = labels[b]``."""
    return runner.broom_rows(y, w, labels, native, threads, check)


@torch.library.custom_op("treeiso::tree", mutates_args=())
def tree_op(y: Tensor, w: Tensor | None, order: Tensor, parent_pos: Tensor, kernel: str,
            threads: int = 0, check: bool = True) -> tuple[Tensor, Tensor]:
    """IRT-BIN on host copies. ``order``/``parent_pos``: the tree's (``Tree.order``,
    ``Tree.parent_pos``, CPU tensors), so no ``Tree`` is rebuilt (nor re-checked) per call;
    ``kernel``: an IRT-BIN kernel name of :data:`treeiso._dispatch.KERNELS`."""
    return runner.tree_rows(y, w, order, parent_pos, kernel, threads, check)


def _block_vjp(blocks: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
    """Per element, G_B / W_B of its block B: sums over ``blocks`` then gathered."""
    gsum = torch.zeros_like(g).scatter_add_(-1, blocks, g)
    wfull = torch.ones_like(g) if w is None else w.expand_as(g)  # w may be one shared row
    wsum = torch.zeros_like(g).scatter_add_(-1, blocks, wfull)
    return gsum.gather(-1, blocks) / wsum.gather(-1, blocks)


def _fake(y, w, *args):
    return torch.empty_like(y), torch.empty(y.shape, dtype=torch.int64, device=y.device)


def _setup_context(ctx, inputs, output):
    y, w = inputs[0], inputs[1]
    x, blocks = output
    ctx.has_w = w is not None
    ctx.n_rest = len(inputs) - 2  # the inputs after y and w get no gradient
    ctx.save_for_backward(y, w, x, blocks)


def _backward(ctx, gx, gblocks):
    y, w, x, blocks = ctx.saved_tensors
    wg = None if w is None else w.to(gx.dtype)  # weights come in float64
    r = _block_vjp(blocks, gx, wg)
    gy = r if w is None else wg * r
    gw = None
    if ctx.has_w:
        gw = (y - x) * r
        if w.shape[0] != gw.shape[0]:  # one row of weights shared by every row
            gw = gw.sum(0, keepdim=True)
        gw = gw.to(w.dtype)
    return (gy, gw) + (None,) * ctx.n_rest


for _op in (chain_op, broom_op, tree_op):
    _op.register_fake(_fake)
    _op.register_autograd(_backward, setup_context=_setup_context)

