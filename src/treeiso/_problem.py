"""One call, normalized: the problem every front end hands to a backend, and its undoing.

:func:`treeiso.fit`, :func:`treeiso.fit_topk` and :func:`treeiso.certify` take values in many
forms (NumPy or torch, any ``axis``, weights that broadcast, either orientation, bounds, float16
to float64). Each turns its call into a :class:`Problem`: C-contiguous rows ``(B, n)`` with the
nodes last, the orientation's sign applied (every kernel solves ``root_largest``), weights as
``(Bw, n)`` rows (``Bw`` 0: unit weights, 1: one row shared by every row, or ``B``), and what it
takes to give the answer back its caller's shape, dtype and axis. A backend runs a kernel on
the rows (scaled by powers of two when the data nears the float limits,
:func:`solve_scaled`) and :func:`finish` undoes the rest.

The array library enters only through a small set of primitives (:class:`NumpyArrays` here,
``TorchArrays`` in :mod:`treeiso._backends.torch_arrays`), as in POT's backend layer: the steps are
written once.
"""

from __future__ import annotations

import numpy as np

from ._scaling import value_abs_max, value_exponent_of, weight_exponent
from ._validation import (
    _FLOAT64,
    as_real_array,
    as_rows,
    bounds_in_range,
    check_node_count,
    finite_abs_max,
    largest_value,
    nodes_last,
    prepare_weights,
    reject_masked,
)

_FLOAT32 = np.dtype(np.float32)

#: the sign that turns each orientation into ``root_largest``
SIGNS = {"root_largest": 1.0, "root_smallest": -1.0}


class Problem:
    """A normalized call.

    Attributes
    ----------
    y : (B, n) rows in the work dtype, multiplied by ``sign``.
    w : (Bw, n) float64 weights (NumPy; an empty (0, n) array for unit weights) or a tensor
        (torch; None for unit weights).
    sign : 1.0 or -1.0, the orientation's (see :data:`SIGNS`).
    shape : the shape of the values with the nodes moved last.
    axis : where the nodes axis goes back to.
    out_dtype : the dtype of the answer.
    bounds : ``(y_min, y_max)`` in the caller's orientation, within the answer dtype's range
        (None: no bound).
    amax : ``max|y|`` when the finiteness scan computed it (the range scaling reuses it).
    arrays : the array primitives (:data:`NUMPY` or torch's).
    check_values : True when the values still have to be checked for NaN and infinity: the
        scan is left to the backend, which reads them anyway.
    """

    __slots__ = ("y", "w", "sign", "shape", "axis", "out_dtype", "bounds", "amax", "arrays",
                 "check_values")

    def __init__(self, y, w, sign, shape, axis, out_dtype, bounds, amax, arrays,
                 check_values=False):
        self.y, self.w, self.sign, self.shape, self.axis = y, w, sign, shape, axis
        self.out_dtype, self.bounds, self.amax, self.arrays = out_dtype, bounds, amax, arrays
        self.check_values = check_values


class NumpyArrays:
    """The primitives of the steps for NumPy arrays. The answer's arrays are fresh, so they
    are updated in place."""

    @staticmethod
    def negative(x):
        return np.negative(x, out=x)

    @staticmethod
    def clip(x, lo, hi):
        return np.clip(x, lo, hi, out=x)

    @staticmethod
    def ldexp(x, e, copy=False):
        """``x * 2**e`` (exact short of underflow); in place unless ``copy``."""
        if copy:
            return np.ldexp(x, e).astype(x.dtype, copy=False)
        return np.ldexp(x, e, out=x)

    abs_max = staticmethod(value_abs_max)
    weight_exponent = staticmethod(weight_exponent)

    @staticmethod
    def restore(x, shape, dtype, axis):
        x = x.reshape(shape)
        if dtype is not None:
            x = x.astype(dtype, copy=False)
        return x if axis == len(shape) - 1 else np.moveaxis(x, -1, axis)


NUMPY = NumpyArrays()


def numpy_problem(values, weights, n, *, axis, orientation, bounds, check_finite,
                  row_dtype=_FLOAT64, scan_values=True):
    """The :class:`Problem` of NumPy ``values`` (``n`` nodes along ``axis``; ``n=None``: any
    count) and ``weights``, checked: NaN, infinity and weights <= 0 raise unless
    ``check_finite`` is False. ``row_dtype``: the work dtype of the rows (``None``: float32
    rows stay float32, others float64); ``scan_values=False``: the values' scan is left to
    the backend, which checks them in the kernel's own pass (``Problem.check_values``)."""
    reject_masked(weights, "weights")
    y = as_real_array(values, "values")
    y, weights, ax = nodes_last(y, weights, axis)
    shape = y.shape
    if n is not None and shape[-1] != n:
        check_node_count(shape[-1], n, axis)
    out_dtype = y.dtype if y.dtype.kind == "f" else _FLOAT64  # integers give float64
    if bounds[0] is not None or bounds[1] is not None:
        bounds = bounds_in_range(bounds, largest_value(out_dtype), out_dtype)
    # The finiteness scan also yields max|y| (or None), which the range scaling reuses.
    amax = finite_abs_max(y, "values") if check_finite and scan_values else None
    w = prepare_weights(weights, shape, check_finite)
    if row_dtype is None:
        row_dtype = _FLOAT32 if y.dtype.char == "f" else _FLOAT64
    y2 = as_rows(y, row_dtype)
    sign = SIGNS[orientation]
    if sign < 0:
        y2 = -y2
    return Problem(y2, w, sign, shape, ax, out_dtype, bounds, amax, NUMPY,
                   check_finite and not scan_values)


def oriented_level(level, sign):
    """``(level, largest)`` of the quantile kernel for a problem of ``sign``: the pinball
    loss of the negated data, ``rho_q(y - x) = rho_{1-q}((-y) - (-x))``, whose largest
    optimum is minus the smallest optimum of the original problem."""
    if level is not None and sign < 0:
        return 1.0 - level, 1.0
    return level, 0.0


def solve_scaled(arrays, run, y, w, amax=None, maxexp=1024):
    """``run(y, w) -> (x, extra)`` on data divided by powers of two when it nears the float
    limits (the fit is equivariant: ``x(a y, b w) = a x(y, w)``), ``x`` scaled back.

    ``amax``: ``max|y|``, or None to have ``arrays.abs_max`` compute it; ``maxexp``: the
    largest exponent of the work dtype. ``arrays.weight_exponent(w)`` gives the weights'
    exponent (:func:`treeiso._scaling.weight_exponent_of`; 0 for unit weights)."""
    if amax is None:
        amax = arrays.abs_max(y)
    ey = value_exponent_of(amax, maxexp)
    ew = arrays.weight_exponent(w)
    if ey:
        y = arrays.ldexp(y, -ey, copy=True)
    if ew:
        w = arrays.ldexp(w, -ew, copy=True)
    x, extra = run(y, w)
    if ey:
        x = arrays.ldexp(x, ey)
    return x, extra


def finish(p, x, clip=True):
    """The answer for problem ``p`` from the fitted rows ``x``: the sign undone, clipped to
    the bounds (the exact bounded fit; ``clip=False`` when the solver already honoured
    them), in the caller's shape, dtype and axis."""
    arrays = p.arrays
    if p.sign < 0:
        x = arrays.negative(x)
    lo, hi = p.bounds
    if clip and (lo is not None or hi is not None):
        x = arrays.clip(x, lo, hi)
    return arrays.restore(x, p.shape, p.out_dtype, p.axis)


def restore_blocks(p, blocks):
    """The blocks of the fit of ``p`` in the caller's shape and axis."""
    return p.arrays.restore(blocks, p.shape, None, p.axis)
