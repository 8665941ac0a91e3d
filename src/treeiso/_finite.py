"""A fast scan for NaN and infinity (one branch-free pass, no temporaries, no FP warnings).

``x * 0.0`` is 0 for a finite ``x`` and NaN for NaN or infinity, so the sum of those is 0
exactly when every entry is finite (no overflow is possible). ``reassoc`` lets LLVM
vectorize the sum; it does not assume finite values (no ``nnan``/``ninf``).
"""

from ._jit import njit


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def all_finite(a):
    """True when every entry of the 1-D array ``a`` is finite."""
    acc = 0.0
    for i in range(a.shape[0]):
        acc += a[i] * 0.0
    return acc == 0.0
