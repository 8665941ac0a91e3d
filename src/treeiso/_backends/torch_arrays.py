"""Tensors at the edges of the pipeline: the :class:`treeiso._problem.Problem` of a tensor
call, the array primitives of :mod:`treeiso._problem` for tensors, and the checks that read
tensor data (they run inside the custom ops, on real tensors, so that ``torch.compile``
traces the callers without graph breaks)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .._problem import SIGNS, Problem
from .._kernels.finite import abs_max
from .._scaling import weight_exponent_of
from .._validation import (
    bounds_in_range,
    check_axis,
    check_ndim,
    check_node_count,
    move_weights,
)
from .numba_runner import MAX_THREADS, n_threads


def host_abs_max(t: Tensor) -> float | None:
    """max|t| of a CPU float32/float64 tensor in one compiled pass over its memory (no
    temporaries, no intra-op threads; NaN or inf when an entry is), else None."""
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64):
        return abs_max(t.detach().contiguous().reshape(-1).numpy())
    return None


def finite_abs_max(t: Tensor, what: str) -> float | None:
    """Raise ValueError on NaN or inf in ``t``. Returns max|t| when the scan computed it (CPU
    float tensors), for the range scaling to reuse, else None."""
    if not t.numel():
        return None
    amax = host_abs_max(t)
    if amax is not None:
        if math.isfinite(amax):
            return amax
    # A finite sum means every entry is finite (NaN and inf propagate); only when the sum is
    # not finite (perhaps an overflow) look entry by entry.
    elif bool(torch.isfinite(t.sum())):
        return None
    if not bool(torch.isfinite(t).all()):
        kind = "a NaN" if bool(torch.isnan(t).any()) else "an infinite"
        raise ValueError(f"{what} contains {kind} value")


def check_weights(w: Tensor | None) -> None:
    """Raise ValueError for NaN, infinite or non-positive weights."""
    if w is None:
        return
    finite_abs_max(w, "weights")
    if w.numel() and not bool(w.amin() > 0):
        raise ValueError("weights must be > 0")


def max_exponent(dtype) -> int:
    """The largest binary exponent of a torch float dtype (1024 for float64)."""
    return math.frexp(torch.finfo(dtype).max)[1]


class TorchArrays:
    """The primitives of :mod:`treeiso._problem` for tensors (never in place: autograd)."""

    @staticmethod
    def negative(x):
        return -x

    @staticmethod
    def clip(x, lo, hi):
        return torch.clamp(x, min=lo, max=hi)

    @staticmethod
    def ldexp(x, e, copy=True):
        """``x * 2**e``, exactly: two factors, as ``2**e`` itself may not be a float."""
        h = e // 2
        return x * math.ldexp(1.0, h) * math.ldexp(1.0, e - h)

    @staticmethod
    def restore(x, shape, dtype, axis):
        x = x.reshape(shape)
        if dtype is not None:
            x = x.to(dtype)
        return x.movedim(-1, axis)

    @staticmethod
    def abs_max(y):
        """max|y|: one compiled pass on the host, torch ops on other devices."""
        if not y.numel():
            return 0.0
        a = host_abs_max(y)
        if a is None:
            lo, hi = torch.aminmax(y)
            a = float(torch.maximum(lo.abs(), hi.abs()))
        return a

    @staticmethod
    def weight_exponent(w):
        """:func:`treeiso._scaling.weight_exponent_of` for weights in their own dtype (float64
        on the host, as NumPy's; the work dtype on devices)."""
        if w is None or not w.numel():
            return 0
        fi = torch.finfo(w.dtype)
        return weight_exponent_of(float(w.sum()), w.numel(), lambda: w.max(),
                                  lambda: w.min(), max_exponent(w.dtype),
                                  fi.tiny * fi.eps * 2.0**30, str(w.dtype))


TORCH = TorchArrays()


def tensor_problem(values: Tensor, weights, axis: int, orientation: str, bounds,
                   n: int | None = None) -> Problem:
    """The :class:`treeiso._problem.Problem` of tensor ``values`` (``n`` nodes along ``axis``;
    None: any count) and ``weights``; the data is checked later, inside the ops.

    The rows are in the work dtype, float32 or float64: integers give float64, and
    float16/bfloat16 are computed in float32 (the output is cast back, which autograd
    follows). Weights are float64 on the host, as NumPy's (the host kernels read them so),
    and in the work dtype on devices (where the native paths compute; MPS has no float64),
    as (B, n) rows or one (1, n) row shared by every row (no (B, n) copy), or None. A real
    number as ``weights`` is one weight for every node, as in NumPy."""
    if values.is_complex():
        raise TypeError(f"values must be real, got complex dtype {values.dtype}")
    check_ndim(values.shape)
    ax = check_axis(axis, values.ndim)
    out_dtype = values.dtype if values.is_floating_point() else torch.float64  # as NumPy
    work = out_dtype if out_dtype in (torch.float32, torch.float64) else torch.float32
    weights = weight_tensor(weights, values)
    if weights is not None:
        weights = move_weights(weights, values.shape, ax)
    values = values.movedim(ax, -1)
    shape = values.shape
    if n is not None:
        check_node_count(shape[-1], n, axis)
    n = shape[-1]
    n_rows = math.prod(shape[:-1])
    y2 = values.to(work).reshape(n_rows, n).contiguous()
    w2 = None
    if weights is not None:
        w = weights.to(torch.float64 if values.device.type == "cpu" else work)
        if all(d == 1 for d in w.shape[:-1]):  # one row for all
            w2 = w.reshape(1, w.shape[-1]).expand(1, n).contiguous()
        else:
            w2 = torch.broadcast_to(w, shape).reshape(n_rows, n).contiguous()
    sign = SIGNS[orientation]
    bounds = bounds_in_range(bounds, torch.finfo(out_dtype).max, out_dtype)
    return Problem(y2 if sign > 0 else -y2, w2, sign, shape, ax, out_dtype, bounds, None,
                   TORCH)


def weight_tensor(weights, values: Tensor) -> Tensor | None:
    """``weights`` for tensor ``values``: None, a tensor on their device with real entries, or
    a real number as a 0-d float64 tensor (one weight for all, as NumPy accepts)."""
    if weights is None:
        return None
    if _is_real_scalar(weights):
        weights = torch.tensor(float(weights), dtype=torch.float64, device=values.device)
    if not isinstance(weights, Tensor):
        raise TypeError(
            f"values is a torch.Tensor but weights is {type(weights).__name__}: "
            "pass both as tensors")
    if weights.device != values.device:
        raise ValueError(
            f"weights are on {weights.device} but values on {values.device}")
    if weights.is_complex() or weights.dtype == torch.bool:
        raise TypeError(f"weights must be real numbers, got dtype {weights.dtype}")
    return weights


def _is_real_scalar(obj) -> bool:
    return (isinstance(obj, (int, float, np.integer, np.floating))
            and not isinstance(obj, (bool, np.bool_)))


def op_threads(threads) -> int:
    """The ops' encoding of ``threads``: 0 for None (resolved in the op: torch.compile traces
    no thread count), else at most :data:`treeiso._backends.numba_runner.MAX_THREADS` (an int64)."""
    return 0 if threads is None else min(int(threads), MAX_THREADS)


def host_threads(threads: int, y: Tensor) -> int:
    """Host threads for the rows of ``y``; ``threads=0`` (the ops' encoding of None): torch's
    thread count, limited by the work (see :func:`treeiso._backends.numba_runner.n_threads`)."""
    return n_threads(threads or None, y.shape[0], y.shape[1])
