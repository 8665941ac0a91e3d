"""max|y| in one compiled pass, for :mod:`treeiso._scaling` (no temporaries, no BLAS threads,
no floating-point state to save and restore: cheaper per call than the NumPy ways)."""

from ._jit import njit


@njit(cache=True, nogil=True)
def absmax(v):
    """max |v_i| of a 1-D float array (finite: the callers validate; 0.0 when empty)."""
    m = 0.0
    for i in range(v.shape[0]):
        a = abs(v[i])
        m = a if a > m else m
    return float(m)
