"""Torch tensors for the L1, quantile and L-infinity losses: the NumPy front end runs on host
copies (the kernels are CPU kernels), and the answer's derivatives come from the piecewise
linear function it is of the data.

- L1 / quantile: each block (connected nodes of one fitted value) takes its value from its
  own data, ``x_v = y_s`` for a node ``s`` of ``v``'s block (or a bound). Away from ties the
  Jacobian selects ``s``; when several nodes of a block hold that value (a tie, where the fit
  is not differentiable) the gradient is shared equally among them. The weights get zero
  gradient (moving them a little moves no block's choice).
- L-infinity: ``x_v`` is the midpoint of ``L_v = y_d - e / w_d`` and ``U_v = y_a + e / w_a``
  (each clipped to the data's range and the bounds), where ``d`` and ``a`` are nodes that
  :func:`treeiso._kernels.linf.linf_structure_rows` names and the optimal error ``e`` is one pair's
  (or one bound's) term. The gradient differentiates that expression in values and weights;
  at ties (two nodes setting ``L_v`` at once) it takes one of them.
"""

import numpy as np
import torch

from .._result import FitResult
from .torch_arrays import weight_tensor
from .._validation import check_axis, move_weights, oriented_bounds


def fit_robust_torch(values, tree, weights, kernel, *, level, loss, orientation, bounds,
                     return_blocks, axis, threads, check_finite):
    """:func:`treeiso.fit` for ``loss`` in ("l1", "quantile", "linf") on tensors: ``kernel``
    (resolved) runs on the problem of host copies, as for NumPy input; ``level``: the
    quantile level; ``bounds``: the checked ``(y_min, y_max)``."""
    from .._dispatch import tree_arrays
    from .numba_runner import solve
    from .._problem import finish, numpy_problem, restore_blocks

    w = weight_tensor(weights, values)
    p = numpy_problem(_host(values), None if w is None else _host(w), tree.n, axis=axis,
                      orientation=orientation, bounds=bounds, check_finite=check_finite)
    x, blocks, _ = solve(p, kernel, tree_arrays(kernel, tree), threads, True, level)
    res = FitResult(finish(p, x), restore_blocks(p, blocks))
    out_dtype = values.dtype if values.is_floating_point() else torch.float64
    x = torch.from_numpy(res.x).to(values.device, out_dtype)
    blocks = torch.from_numpy(res.blocks).to(values.device)
    grad = values.requires_grad or (w is not None and w.requires_grad)
    if grad and torch.is_grad_enabled():
        ax = check_axis(axis, values.ndim)
        problem = _Problem(tree, loss, orientation, bounds, ax, res)
        x = _Piecewise.apply(values, w, x, problem)
    return FitResult(x, blocks) if return_blocks else x


def _host(t):
    """A NumPy copy of ``t`` (bfloat16, which NumPy lacks, as float32: exact)."""
    t = t.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


class _Problem:
    """What the derivative of one fit needs: the data's layout and the constants of the
    piecewise linear expression (computed once, in the forward pass)."""

    def __init__(self, tree, loss, orientation, bounds, ax, res):
        self.tree, self.loss, self.ax = tree, loss, ax
        self.sign = 1.0 if orientation == "root_largest" else -1.0
        self.bounds = bounds
        self.x = torch.from_numpy(np.moveaxis(res.x, ax, -1).astype(np.float64))
        self.blocks = torch.from_numpy(np.ascontiguousarray(np.moveaxis(res.blocks, ax, -1)))

    def rows(self, t):
        """``t`` (values' layout) as float64 rows (B, n), on its device, and the shape of
        ``t`` with the nodes last."""
        t = t.movedim(self.ax, -1)
        return t.to(torch.float64).reshape(-1, t.shape[-1]), t.shape

    def weight_rows(self, w, shape):
        if w is None:
            return None
        w = move_weights(w, tuple(shape), self.ax).to(torch.float64)
        return torch.broadcast_to(w, tuple(shape)).reshape(-1, shape[-1])

    def expression(self, y, w):
        """The fit as a differentiable function of ``y`` and ``w`` near the data (equal to
        the computed fit up to rounding)."""
        y2, shape = self.rows(y)
        w2 = self.weight_rows(w, shape)
        if self.loss == "linf":
            x2 = self._linf(y2, w2)
        else:
            x2 = self._selected(y2)
        return x2.reshape(shape).movedim(-1, self.ax)

    def _selected(self, y2):
        x_num = self.x.reshape(y2.shape).to(y2.device)
        blocks = self.blocks.reshape(y2.shape).to(y2.device)
        lo, hi = self.bounds
        sel = y2.detach() == x_num
        if lo is not None:
            sel &= x_num != lo
        if hi is not None:
            sel &= x_num != hi
        sel = sel.to(y2.dtype)
        count = torch.zeros_like(y2).scatter_add_(1, blocks, sel).gather(1, blocks)
        total = torch.zeros_like(y2).scatter_add(1, blocks, sel * y2).gather(1, blocks)
        return torch.where(count > 0, total / count.clamp(min=1), x_num)

    def _linf(self, y2, w2):
        from .._dispatch import tree_arrays
        from .._kernels.linf import linf_structure_rows
        from .numba_runner import linf_inputs

        s = self.sign
        if not hasattr(self, "down"):
            yh = np.ascontiguousarray(s * y2.detach().cpu().numpy())
            wh = (np.empty((0, yh.shape[1])) if w2 is None
                  else np.ascontiguousarray(w2.detach().cpu().numpy()))
            yh, wh, _, bnd = linf_inputs(yh, wh, None, self.bounds, s)
            down = np.empty(yh.shape, dtype=np.int64)
            up = np.empty(yh.shape, dtype=np.int64)
            crit = np.zeros((yh.shape[0], 3), dtype=np.int64)
            if yh.size:
                linf_structure_rows(yh, wh, bnd, *tree_arrays("linf", self.tree), down, up,
                                    crit)
            self.down, self.up, self.crit = (torch.from_numpy(a) for a in (down, up, crit))
        dev = y2.device
        down, up, crit = self.down.to(dev), self.up.to(dev), self.crit.to(dev)
        ys = s * y2
        r = torch.ones_like(ys) if w2 is None else 1.0 / w2
        lo, hi = oriented_bounds(self.bounds, s)
        lo_r = ys.amin(1, keepdim=True) if ys.shape[1] else ys[:, :1]
        hi_r = ys.amax(1, keepdim=True) if ys.shape[1] else ys[:, :1]
        if lo is not None:
            lo_r, hi_r = lo_r.clamp(min=lo), hi_r.clamp(min=lo)
        if hi is not None:
            lo_r, hi_r = lo_r.clamp(max=hi), hi_r.clamp(max=hi)
        kind, i, j = crit[:, :1], crit[:, 1:2], crit[:, 2:3]
        yi, yj, ri, rj = ys.gather(1, i), ys.gather(1, j), r.gather(1, i), r.gather(1, j)
        e = torch.where(kind == 1, (yi - yj) / (ri + rj),
                        torch.where(kind == 2, (lo_r - yi) / ri,
                                    torch.where(kind == 3, (yi - hi_r) / ri,
                                                torch.zeros_like(yi))))
        low = torch.maximum(ys.gather(1, down) - e * r.gather(1, down), lo_r)
        high = torch.minimum(ys.gather(1, up) + e * r.gather(1, up), hi_r)
        t = torch.minimum(torch.maximum(0.5 * low + 0.5 * high, lo_r), hi_r)
        x = s * t
        if self.bounds[0] is not None:
            x = x.clamp(min=self.bounds[0])
        if self.bounds[1] is not None:
            x = x.clamp(max=self.bounds[1])
        return x


class _Piecewise(torch.autograd.Function):
    """Returns the computed fit; its backward differentiates the problem's expression."""

    @staticmethod
    def forward(ctx, y, w, x, problem):
        ctx.problem = problem
        ctx.save_for_backward(y, w)
        return x.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gx):
        y, w = ctx.saved_tensors
        with torch.enable_grad():
            yd = y.detach().requires_grad_(y.is_floating_point())
            wd = None if w is None else w.detach().requires_grad_(w.is_floating_point())
            xe = ctx.problem.expression(yd, wd)
            inputs = [t for t in (yd, wd) if t is not None and t.requires_grad]
            grads = torch.autograd.grad(xe, inputs, gx.to(xe.dtype), allow_unused=True)
        it = iter(grads)
        gy = next(it) if yd.requires_grad else None
        gw = next(it) if wd is not None and wd.requires_grad else None
        gy = torch.zeros_like(y) if gy is None and yd.requires_grad else gy
        gw = torch.zeros_like(w) if gw is None and w is not None and wd.requires_grad else gw
        return (None if gy is None else gy.to(y.dtype),
                None if gw is None else gw.to(w.dtype), None, None)
