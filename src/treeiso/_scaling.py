"""Powers of two that keep the kernels' intermediate values in range.

The solution is equivariant: ``x*(a y, b w) = a x*(y, w)`` for ``a, b > 0``. The kernels form
differences of values (up to ``2 max|y|``), products ``w z`` and sums of weights, so finite
data near the float limits overflowed (``fit([-1e308, 1e308], Tree.chain(2))`` gave ``inf``;
weights near ``1.7e308`` summed to ``inf`` and pooled nothing), and tiny data lost its bits
to subnormal products. Dividing ``y`` and ``w`` by powers of two is exact (short of
underflowing entries far below the largest), so the callers scale when the data leaves a
safe range, solve, and multiply ``x`` back.

The check needs ``max|y|``, which the callers' finiteness scan already yields
(:func:`treeiso._kernels.finite.abs_max`: one pass for both, passed in as ``amax``), and the
weights' total (one compiled pass, only when weights are given). In range, nothing else is
done.
"""

from __future__ import annotations

import math

import numpy as np

# |y| <= 2**307 and sum(w) <= 2**307 keep every difference, product and sum (of up to 2**40
# terms) below 2**(2 * 307 + 42) < 2**1023 in float64; above 2**-614 at the low end. With
# 0.3 of the exponent range the same holds for float32 (torch's native paths).
def safe_exponent(maxexp):
    """The exponent bound used for a float type whose largest exponent is ``maxexp``."""
    return int(0.3 * maxexp)


def exponent_of(a):
    """The e with a / 2**e in [0.5, 1) (a > 0 finite)."""
    return math.frexp(a)[1]


#: the magnitudes (and totals of weights) that float64 data may have without scaling
SAFE_LO, SAFE_HI = 2.0 ** -safe_exponent(1024), 2.0 ** safe_exponent(1024)
_finite = None  # treeiso._kernels.finite, imported on first use (import treeiso loads no numba)


def _kernels():
    global _finite
    if _finite is None:
        from ._kernels import finite as _finite
    return _finite


def in_safe_range(a, maxexp=1024):
    """Whether ``a`` (a magnitude or a total of weights) lies in the safe range of a float
    type whose largest exponent is ``maxexp``: ``2**-s <= a <= 2**s``, ``s`` its
    :func:`safe_exponent` (False for NaN)."""
    if maxexp == 1024:
        return SAFE_LO <= a <= SAFE_HI
    hi = safe_exponent(maxexp)
    return 2.0**-hi <= a <= 2.0**hi


def value_exponent_of(amax, maxexp=1024):
    """The exponent ``e`` that brings data of largest magnitude ``amax`` into the safe range
    of a float type whose largest exponent is ``maxexp`` (``y / 2**e``); 0 when it already is
    there, when ``amax`` is 0, and when it is not finite (the caller's check reports that)."""
    if in_safe_range(amax, maxexp):
        return 0
    if not math.isfinite(amax) or amax == 0.0:
        return 0
    return exponent_of(amax)


# Scaled weights keep at least 30 bits: a subnormal weight is still exact to 2**-30 there.
_W_MIN = math.ldexp(1.0, -1074 + 30)


def weight_exponent_of(total, count, largest, smallest, maxexp=1024, keep=_W_MIN,
                       dtype="float64"):
    """The exponent ``e`` that brings ``count`` positive finite weights of sum ``total`` into
    the safe range (``w / 2**e``); 0 when they are in it. ``largest`` and ``smallest`` are
    callables returning the largest and the smallest weight (called only out of range).

    Raises ValueError when a scaled weight would fall below ``keep`` (the smallest value of
    the type times 2**30: 30 bits kept), that is when the total overflows (or leaves the safe
    range) and the weights span more than ``total / keep``."""
    if in_safe_range(total, maxexp):
        return 0
    if math.isinf(total):  # the total overflowed: bound it by max * size
        e = exponent_of(float(largest())) + max(count - 1, 1).bit_length()
    else:
        e = exponent_of(total)
    if e > 0:
        small = float(smallest())
        if math.ldexp(small, -e) < keep:
            bits = 1 - math.frexp(keep)[1]
            raise ValueError(
                f"weights span too wide a range for {dtype}: their total is too large to use "
                f"as it is, and scaled down the smallest, {small!r}, would underflow; treeiso "
                f"supports a ratio total/smallest of up to 2**{bits} (about "
                f"1e{round(bits * math.log10(2))}) there: rescale the weights")
    return e


def value_abs_max(y):
    """``max|y|`` of a NumPy array (NaN or inf when an entry is; 0.0 when empty)."""
    v = y.reshape(-1)
    if not (v.dtype.char in "fd" and v.dtype.isnative and v.flags.c_contiguous):
        v = np.ascontiguousarray(v, dtype=np.float64)
    return _kernels().abs_max(v)


def value_exponent(y, amax=None):
    """:func:`value_exponent_of` for a NumPy array ``y`` (finite, float64 ranges).

    ``amax``: ``max|y|`` when the caller knows it (its finiteness scan computed it), so that
    the data is not read again."""
    if y.size == 0:
        return 0
    return value_exponent_of(value_abs_max(y) if amax is None else amax)


def weight_exponent(w):
    """:func:`weight_exponent_of` for a NumPy array of positive finite weights (float64)."""
    if w.size == 0:
        return 0
    v = w.reshape(-1)
    if not (v.dtype.char == "d" and v.dtype.isnative and v.flags.c_contiguous):
        v = np.ascontiguousarray(v, dtype=np.float64)
    # A compiled sum: no np.errstate to enter and leave (it was most of this check's cost).
    return weight_exponent_of(_kernels().total(v), v.size, lambda: np.max(v),
                              lambda: np.min(v))


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
