"""Powers of two that keep the kernels' intermediate values in range.

The solution is equivariant: ``x*(a y, b w) = a x*(y, w)`` for ``a, b > 0``. The kernels form
differences of values (up to ``2 max|y|``), products ``w z`` and sums of weights, so finite
data near the float limits overflowed (``fit([-1e308, 1e308], Tree.chain(2))`` gave ``inf``;
weights near ``1.7e308`` summed to ``inf`` and pooled nothing), and tiny data lost its bits
to subnormal products. Dividing ``y`` and ``w`` by powers of two is exact (short of
underflowing entries far below the largest), so the callers scale when the data leaves a
safe range, solve, and multiply ``x`` back.

The check needs ``max|y|``, which the callers' finiteness scan already yields
(:func:`treeiso._finite.abs_max`: one pass for both, passed in as ``amax``), and the weights'
total (one compiled pass, only when weights are given). In range, nothing else is done.
"""

from __future__ import annotations

import math

import numpy as np

# |y| <= 2**_Y_HI and sum(w) <= 2**_W_HI keep every difference, product and sum (of up to
# 2**40 terms) below 2**(2 * 307 + 42) < 2**1023 in float64; above 2**-614 at the low end.
# With 0.3 of the exponent range the same holds for float32 (torch's native paths).
def safe_exponent(maxexp):
    """The exponent bound used for a float type whose largest exponent is ``maxexp``."""
    return int(0.3 * maxexp)


_Y_HI = _W_HI = safe_exponent(1024)
_Y_LO = _W_LO = -_Y_HI
_T_LO, _T_HI = 2.0 ** (2 * _Y_LO), 2.0 ** (2 * _Y_HI)


def exponent_of(a):
    """The e with a / 2**e in [0.5, 1) (a > 0 finite)."""
    return math.frexp(a)[1]


_A_LO, _A_HI = 2.0**_Y_LO, 2.0**_Y_HI  # = 2.0**_W_LO, 2.0**_W_HI too
_finite = None  # treeiso._finite, imported on first use (import treeiso loads no numba)


def _kernels():
    global _finite
    if _finite is None:
        from . import _finite
    return _finite


def value_exponent(y, hi=_Y_HI, lo=_Y_LO, amax=None):
    """e such that ``y / 2**e`` is in the safe range; 0 when ``y`` (finite) already is.

    ``amax``: ``max|y|`` when the caller knows it (its finiteness scan computed it), so that
    the data is not read again."""
    if y.size == 0:
        return 0
    if amax is None:
        v = y.reshape(-1)
        if not (v.dtype.char in "fd" and v.dtype.isnative and v.flags.c_contiguous):
            v = np.ascontiguousarray(v, dtype=np.float64)
        amax = _kernels().abs_max(v)
    a = amax
    if (_A_LO if lo == _Y_LO else 2.0**lo) <= a <= (_A_HI if hi == _Y_HI else 2.0**hi):
        return 0
    if not math.isfinite(a) or a == 0.0:
        return 0  # (non-finite data is reported by the caller's own check)
    return exponent_of(a)


# Scaled weights keep at least 30 bits: a subnormal weight is still exact to 2**-30 there.
_W_MIN = math.ldexp(1.0, -1074 + 30)


def weight_exponent(w, hi=_W_HI, lo=_W_LO, smallest=_W_MIN):
    """e such that ``w / 2**e`` (positive, finite) sums into the safe range; 0 if it does.

    Raises ValueError when a scaled weight would lose more than 23 of its 53 bits: weights
    whose total overflows (or exceeds 2**307) and spans more than 2**1044 of the smallest.
    """
    if w.size == 0:
        return 0
    v = w.reshape(-1)
    if not (v.dtype.char == "d" and v.dtype.isnative and v.flags.c_contiguous):
        v = np.ascontiguousarray(v, dtype=np.float64)
    # A compiled sum: no np.errstate to enter and leave (it was most of this check's cost).
    t = _kernels().total(v)
    if (_A_LO if lo == _W_LO else 2.0**lo) <= t <= (_A_HI if hi == _W_HI else 2.0**hi):
        return 0
    if math.isinf(t):  # the total overflowed: bound it by max * size
        e = exponent_of(float(np.max(v))) + max(v.size - 1, 1).bit_length()
    else:
        e = exponent_of(t)
    small = float(np.min(v))
    if e > 0 and math.ldexp(small, -e) < smallest:
        raise ValueError(
            f"weights span too wide a range: their total is too large to use as it is, and "
            f"scaled down the smallest, {small!r}, would underflow; treeiso supports a ratio "
            "total/smallest of up to 2**1044 (about 1e314) there: rescale the weights")
    return e


def scale_rows(y, w, amax=None):
    """``(y / 2**ey, w / 2**ew, ey)``: new arrays only when an exponent is not 0 (inputs are
    never modified). Multiply the fit by ``2**ey`` (``np.ldexp(x, ey)``). ``amax``: ``max|y|``
    if the caller has it (see :func:`value_exponent`)."""
    ey = value_exponent(y, amax=amax)
    ew = weight_exponent(w) if w.size else 0
    if ey:
        y = np.ldexp(y, -ey).astype(y.dtype, copy=False)
    if ew:
        w = np.ldexp(w, -ew)
    return y, w, ey
