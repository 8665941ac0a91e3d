"""``fit_topk``: one small label-order tree (a broom) per row, for distillation."""

from __future__ import annotations

import numpy as np

import math

from ._backends.numba_runner import solve
from ._problem import finish, numpy_problem
from ._validation import (
    check_bounds,
    check_label_range,
    check_orientation,
    check_threads,
    is_torch_tensor,
    reject_masked,
)

__all__ = ["fit_topk"]


def fit_topk(values, labels, weights=None, *, orientation="root_largest", y_min=None,
             y_max=None, axis=-1, threads=None, check_finite=True):
    r"""Isotonic regression of each row onto its label order (a broom tree per row).

    For every row ``b`` (all axes but the last), with ``l = labels[b]``, solves exactly

    .. math::

        \min_x \sum_j w_{bj} (x_j - y_{bj})^2 \quad \text{s.t.} \quad
        x_{l_0} \ge x_{l_1} \ge \dots \ge x_{l_{k-1}} \ge x_j \;\; \forall j \notin l,

    the broom tree of :meth:`treeiso.Tree.broom` (``k = 2`` is the Mixup tree of Cui & Yan
    (2021), ``k = 1`` a star). ``-1`` entries of ``labels`` are padding; a label repeated in
    a row counts once, at its first position (same-class Mixup is a star). A row with no label
    is returned unchanged. The result equals ``treeiso.fit(values[b], Tree.broom(c, l))``.

    With ``orientation="root_smallest"`` every constraint is reversed,
    ``x_{l_0} <= x_{l_1} <= ... <= x_j``, as in :func:`treeiso.fit`.

    Parameters
    ----------
    values : array-like or torch.Tensor of shape (..., c)
        Scores per class (logits). Floating dtypes are kept; integers give float64.
    labels : array-like or torch.Tensor of int, shape (..., k)
        Class indices in ``[0, c)`` or ``-1``, most important first. Leading axes broadcast
        to those of ``values``.
    weights : array-like or torch.Tensor, optional
        Positive finite weights, broadcastable to ``values``. Default: all ones.
    orientation : {"root_largest", "root_smallest"}, default="root_largest"
        ``"root_largest"``: the first label is the largest entry (the order above);
        ``"root_smallest"``: every inequality reversed (the first label is the smallest).
    y_min, y_max : float, optional
        Constant bounds on every fitted value: the fit clipped to ``[y_min, y_max]``,
        which is the exact bounded solution (as in :func:`treeiso.fit`).
    axis : int, default=-1
        The axis of ``values`` that indexes the classes; ``labels`` keeps its classes
        last, its other axes matching the other axes of ``values``.
    threads : int, optional
        Threads that fit rows in parallel, as in :func:`treeiso.fit`.
    check_finite : bool, default=True
        As in :func:`treeiso.fit`: ``False`` skips the checks of the data (NaN, infinity,
        weights > 0). Labels are range-checked whatever this option: on the host before
        the kernel runs (a ``ValueError``); for CUDA tensors with ``check_finite=False`` on
        the device, without a synchronisation (a bad label then fails the CUDA stream with
        a device-side assertion instead of reading or writing outside a row).

    Returns
    -------
    x : ndarray or torch.Tensor of shape (..., c)
        Same type, device and dtype as ``values``.

    Notes
    -----
    NumPy input runs a Numba kernel (``treeiso._kernels.broom``): per row, PAV down the labels and a
    sort-free star value for the last block (a few masked passes over the row), O(c) on
    ordinary data. Torch input runs on the tensor's device (CPU: the same kernel; CUDA:
    batched torch ops, no host loop over rows) and is differentiable in ``values`` and
    ``weights``: the gradient averages over the blocks of the fit.
    Rows are centred on their last label first; on the CPU the sums are float64 for any dtype
    (float32 values are read as float32, weights as float64).

    Examples
    --------
    >>> import numpy as np
    >>> import treeiso
    >>> y = np.array([[1.0, 3.0, 0.0, 2.0]])
    >>> treeiso.fit_topk(y, [[0, 2]])   # x0 >= x2 >= x1, x3
    array([[1.5, 1.5, 1.5, 1.5]])
    >>> treeiso.fit_topk(y, [[1, 1]])   # a repeated label counts once: a star
    array([[1., 3., 0., 2.]])
    >>> treeiso.fit_topk(y, [[0]], orientation="root_smallest")   # x0 <= every other
    array([[0.5, 3. , 0.5, 2. ]])
    """
    check_orientation(orientation)
    bounds = check_bounds(y_min, y_max)
    check_threads(threads)
    if is_torch_tensor(values):
        from ._backends.torch_front import fit_topk_torch

        return fit_topk_torch(values, labels, weights, orientation=orientation,
                              bounds=bounds, axis=axis, threads=threads,
                              check_finite=check_finite)
    if is_torch_tensor(labels) or is_torch_tensor(weights):
        raise TypeError("values is not a torch.Tensor but labels or weights are: pass all "
                        "as NumPy arrays or all as tensors")
    # NaN and infinity are caught by the kernel's own pass (no separate scan of the data).
    p = numpy_problem(values, weights, None, axis=axis, orientation=orientation,
                      bounds=bounds, check_finite=check_finite, row_dtype=None,
                      scan_values=False)
    labels = broom_labels(labels, p.shape)
    x, _, _ = solve(p, "broom", (labels,), threads)
    return finish(p, x)


def broom_labels(labels, shape):
    """``labels`` of :func:`fit_topk` for values of (nodes-last) ``shape``, checked (integers,
    broadcastable, in range), as the broom kernel's (B, k) int64 handles (see
    :func:`compact_labels`)."""
    reject_masked(labels, "labels")
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {lab.dtype}")
    if lab.ndim == 0:
        lab = lab.reshape(1)
    lead = shape[:-1]
    try:
        lab = np.broadcast_to(lab, lead + lab.shape[-1:])
    except ValueError:
        raise ValueError(f"labels of shape {lab.shape} do not fit values of shape {shape}: "
                         f"expected (..., k) with ... = {lead}") from None
    if lab.size:
        check_label_range(int(lab.min()), int(lab.max()), shape[-1])
    return compact_labels(lab.reshape(math.prod(lead), lab.shape[-1]))


def compact_labels(lab):
    """(B, k) labels -> int64 (B, k): -1 and repeats dropped (first wins), order kept,
    padding moved to the end of each row. O(B k) memory: a stable sort of each row puts the
    copies of a label side by side, the first occurrence first."""
    lab = np.asarray(lab, dtype=np.int64)
    n_rows, k = lab.shape
    out = np.full((n_rows, k), -1, dtype=np.int64)
    if k == 0 or n_rows == 0:
        return out
    idx = np.argsort(lab, axis=1, kind="stable")
    srt = np.take_along_axis(lab, idx, axis=1)
    dup_sorted = np.zeros(lab.shape, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, idx, dup_sorted, axis=1)
    keep = (lab >= 0) & ~dup
    pos = np.cumsum(keep, axis=1) - 1
    rows = np.broadcast_to(np.arange(n_rows)[:, None], lab.shape)
    out[rows[keep], pos[keep]] = lab[keep]
    return out
