"""Reference solver: the isotonic regression as a bounded least-squares problem.

Slow (dense n x n matrix, O(n^3)) and independent of the fast kernels: used as
``backend="scipy"`` and by the tests. SPEC section 4, "QP reference".

Write ``x = A (s * d)`` where ``A[i, j] = 1`` when ``j`` is ``i`` or one of its
ancestors, ``s = +1`` on roots and ``-1`` elsewhere. Then ``d`` at a root is
the root's value and ``d_c = x_parent(c) - x_c`` elsewhere, so the order
constraints become the bounds ``d_c >= 0``: a BVLS problem.
"""

import numpy as np

_MAX_N = 5_000      # three dense n x n float64 matrices: 600 MB at the cap


def ancestor_matrix(tree):
    """Dense ``A[i, j] = 1`` if ``j`` is ``i`` or an ancestor of ``i``."""
    n = tree.n
    a = np.zeros((n, n))
    for v in tree.order:                 # parents first
        p = tree.parent[v]
        if p >= 0:
            a[v] = a[p]
        a[v, v] = 1.0
    return a


def bvls_rows(y, w, tree):
    """Solve every row of ``y`` (B, n) with SciPy's BVLS; orientation root_largest."""
    from scipy.optimize import lsq_linear

    n = tree.n
    if n > _MAX_N:
        raise ValueError(
            f"backend='scipy' builds a dense {n} x {n} matrix; it is meant for "
            f"n <= {_MAX_N}, use the default backend"
        )
    x = np.empty_like(y)
    if n == 0:
        return x
    a = ancestor_matrix(tree)
    is_root = tree.parent < 0
    sign = np.where(is_root, 1.0, -1.0)
    lower = np.where(is_root, -np.inf, 0.0)
    a_signed = a * sign
    for b in range(y.shape[0]):
        wr = np.ones(n) if w.shape[0] == 0 else w[0 if w.shape[0] == 1 else b]
        sw = np.sqrt(wr)
        # Centre and scale: IR(a y + c) = a IR(y) + c for a > 0.
        shift = np.average(y[b], weights=wr)
        scale = max(np.abs(y[b] - shift).max(), np.finfo(float).tiny)
        target = sw * (y[b] - shift) / scale
        res = lsq_linear(sw[:, None] * a_signed, target, bounds=(lower, np.inf),
                         method="bvls", tol=1e-15, lsq_solver="exact")
        x[b] = a_signed @ res.x * scale + shift
    return x
