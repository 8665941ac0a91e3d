"""The public function :func:`objective`: the value of a fit's loss, row by row."""

import numpy as np

from ._validation import (
    as_real_array,
    check_axis,
    check_loss,
    check_ndim,
    finite_abs_max,
    first_bad,
    is_torch_tensor,
)

__all__ = ["objective"]


def objective(values, x, weights=None, *, loss="l2", quantile=None, axis=-1):
    r"""The objective that :func:`fit` minimizes, evaluated at ``x``, for every row.

    For data ``y``, weights ``w`` and a candidate ``x`` (axis ``axis`` indexes nodes):

    - ``"l2"``: :math:`\sum_i w_i (x_i - y_i)^2`;
    - ``"l1"``: :math:`\sum_i w_i |x_i - y_i|`;
    - ``"quantile"``: :math:`\sum_i w_i \rho_q(y_i - x_i)`, :math:`\rho_q(u) = u\,(q - [u < 0])`;
    - ``"linf"``: :math:`\max_i w_i |x_i - y_i|`.

    With ``x = fit(values, tree, weights, loss=loss, ...)`` this is the optimal value of
    the problem (the optima of ``"l1"``, ``"quantile"`` and ``"linf"`` are not unique, but
    they share it). The tree is not needed: the value does not check that ``x`` is
    feasible (:func:`certify` does, and proves optimality).

    Parameters
    ----------
    values : array-like or torch.Tensor of shape (..., n)
        The data ``y``. Must be finite.
    x : array-like or torch.Tensor, the shape of ``values``
        The candidate fit. Must be finite.
    weights : array-like or torch.Tensor, optional
        Positive finite weights, broadcastable to ``values``. Default 1.
    loss : {"l2", "l1", "quantile", "linf"}, default="l2"
    quantile : float in (0, 1), optional
        The level of ``loss="quantile"`` (default 0.5). Given with another loss it is an
        error.
    axis : int, default=-1
        The axis that indexes the nodes.

    Returns
    -------
    value : ndarray or Tensor of shape ``values.shape`` without ``axis``
        NumPy input is computed in float64 (a 0-d array for one row). Tensors give a
        tensor on their device, differentiable in every argument, computed in their dtype
        (float16 and bfloat16 in float32).

    Raises
    ------
    ValueError
        For shapes that differ, NaN or infinite entries, non-positive weights, a bad
        ``axis``, an unknown ``loss`` or a bad ``quantile``.
    TypeError
        For complex or non-numeric input, or NumPy arrays mixed with tensors.

    Examples
    --------
    >>> import treeiso
    >>> y = [0.0, 1.0, 10.0, 9.0]
    >>> x = treeiso.fit(y, [-1, 0, 0, 0], loss="l1")
    >>> x, float(treeiso.objective(y, x, loss="l1"))
    (array([9., 1., 9., 9.]), 10.0)
    >>> float(treeiso.objective([0.0, 4.0], [2.0, 2.0], loss="linf"))
    2.0
    """
    level = check_loss(loss, quantile)
    tensors = [is_torch_tensor(a) for a in (values, x, weights)]
    if any(tensors):
        if not all(t for t, a in zip(tensors, (values, x, weights)) if a is not None):
            raise TypeError("values, x and weights must all be NumPy arrays or all "
                            "torch.Tensors")
        return _objective_torch(values, x, weights, loss, level, axis)
    y = as_real_array(values, "values")
    xa = as_real_array(x, "x")
    check_ndim(y.shape)
    if xa.shape != y.shape:
        raise ValueError(f"x has shape {xa.shape} but values has shape {y.shape}")
    ax = check_axis(axis, y.ndim)
    finite_abs_max(y, "values")
    finite_abs_max(xa, "x")
    w = None
    if weights is not None:
        w = as_real_array(weights, "weights")
        try:
            w = np.broadcast_to(w, y.shape)
        except ValueError:
            raise ValueError(f"weights of shape {np.shape(weights)} do not broadcast to "
                             f"values of shape {y.shape}") from None
        finite_abs_max(w, "weights")
        if w.size and not (w > 0).all():
            i = first_bad(~(w > 0))
            raise ValueError(f"weights must be > 0, got {w[i]} at index {i}")
        w = w.astype(np.float64, copy=False)
    terms = _terms(y.astype(np.float64) - xa.astype(np.float64), loss, level, np.where)
    if w is not None:
        terms = terms * w
    if loss == "linf":
        return terms.max(axis=ax, initial=0.0)
    return terms.sum(axis=ax)


def _terms(r, loss, level, where):
    """Each node's loss at the residual ``r = y - x`` (NumPy or torch: ``where`` is the
    array library's)."""
    if loss == "l2":
        return r * r
    if loss != "quantile":
        return abs(r)
    above = where(r < 0, 0.0 * r, r)     # y above x; below: above - r (both exact)
    return above * level + (above - r) * (1.0 - level)


def _objective_torch(values, x, weights, loss, level, axis):
    import torch

    if x.shape != values.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but values has shape "
                         f"{tuple(values.shape)}")
    check_ndim(tuple(values.shape))
    ax = check_axis(axis, values.ndim)
    for name, t in (("values", values), ("x", x), ("weights", weights)):
        if t is not None:
            if t.is_complex() or not (t.is_floating_point() or t.dtype in (
                    torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
                    torch.bool)):
                raise TypeError(f"{name} must be real and numeric, got {t.dtype}")
            if t.numel() and not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} must be finite (it has NaN or infinite entries)")
    if weights is not None and weights.numel() and not bool((weights > 0).all()):
        raise ValueError("weights must be > 0")
    dtype = torch.promote_types(values.dtype, x.dtype)
    if weights is not None:
        dtype = torch.promote_types(dtype, weights.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    terms = _terms(values.to(dtype) - x.to(dtype), loss, level, torch.where)
    if weights is not None:
        try:
            terms = terms * weights.to(dtype)
        except RuntimeError:
            raise ValueError(f"weights of shape {tuple(weights.shape)} do not broadcast to "
                             f"values of shape {tuple(values.shape)}") from None
        if terms.shape != values.shape:
            raise ValueError(f"weights of shape {tuple(weights.shape)} do not broadcast to "
                             f"values of shape {tuple(values.shape)}")
    if loss == "linf":
        return terms.amax(dim=ax) if terms.shape[ax] else terms.sum(dim=ax)
    return terms.sum(dim=ax)
