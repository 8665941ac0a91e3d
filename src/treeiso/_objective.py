"""The public function :func:`objective`: the value of a fit's loss, row by row."""

import numpy as np

from ._validation import (
    as_real_array,
    as_rows,
    check_axis,
    check_loss,
    check_ndim,
    finite_abs_max,
    is_torch_tensor,
    move_weights,
    nodes_last,
    prepare_weights,
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
    y, weights, ax = nodes_last(y, weights, axis)
    xa = np.moveaxis(xa, ax, -1)
    finite_abs_max(y, "values")
    finite_abs_max(xa, "x")
    w = prepare_weights(weights, y.shape)        # (0 | 1 | rows, n), checked
    terms = _terms(as_rows(y) - as_rows(xa), loss, level, np.where)
    if w.shape[0]:
        terms = terms * w
    out = terms.max(axis=-1, initial=0.0) if loss == "linf" else terms.sum(axis=-1)
    return out.reshape(y.shape[:-1])


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

    from ._backends.torch_arrays import check_weights, finite_abs_max, weight_tensor

    if x.shape != values.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but values has shape "
                         f"{tuple(values.shape)}")
    check_ndim(tuple(values.shape))
    ax = check_axis(axis, values.ndim)
    weights = weight_tensor(weights, values)
    for name, t in (("values", values), ("x", x)):
        if t.is_complex():
            raise TypeError(f"{name} must be real, got complex dtype {t.dtype}")
        finite_abs_max(t, name)
    check_weights(weights)
    dtype = torch.promote_types(values.dtype, x.dtype)
    if weights is not None:
        weights = move_weights(weights, tuple(values.shape), ax)   # checks the broadcast
        dtype = torch.promote_types(dtype, weights.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    terms = _terms(values.movedim(ax, -1).to(dtype) - x.movedim(ax, -1).to(dtype), loss,
                   level, torch.where)
    if weights is not None:
        terms = terms * weights.to(dtype)
    if loss == "linf":
        return terms.amax(dim=-1) if terms.shape[-1] else terms.sum(dim=-1)
    return terms.sum(dim=-1)
