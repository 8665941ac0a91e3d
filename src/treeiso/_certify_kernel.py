"""O(n) KKT check of a candidate solution (SPEC section 4), one row at a time."""

import numpy as np
from numba import njit


@njit(cache=True)
def kkt_rows(y, w, x, parent, order, rtol, out):
    """Fill ``out[b] = (feasibility, dual_sign, slackness, stationarity, gap)``.

    Each of the first four is the worst violation divided by its tolerance
    (<= 1 means satisfied). ``gap`` is the duality-gap bound on
    ``0.5 * ||x - x*||_w^2``. Orientation root_largest; float64 inputs.
    """
    n_rows, n = y.shape
    n_w = w.shape[0]
    resid = np.empty(n)      # R(c): subtree sums of w (y - x)
    wsub = np.empty(n)       # subtree weights
    lam_plus = np.empty(n)   # children's sum of max(R, 0)
    tiny = np.finfo(np.float64).tiny
    for b in range(n_rows):
        wr = 0 if n_w <= 1 else b
        scale = tiny
        for v in range(n):
            a = abs(y[b, v])
            if a > scale:
                scale = a
            wv = w[wr, v] if n_w > 0 else 1.0
            resid[v] = wv * (y[b, v] - x[b, v])
            wsub[v] = wv
            lam_plus[v] = 0.0
        for i in range(n - 1, -1, -1):       # children before parents
            v = order[i]
            p = parent[v]
            if p >= 0:
                resid[p] += resid[v]
                wsub[p] += wsub[v]
                if resid[v] > 0.0:
                    lam_plus[p] += resid[v]
        tol_x = rtol * scale
        feas = 0.0
        sign = 0.0
        slack = 0.0
        stat = 0.0
        primal = 0.0
        dual = 0.0
        for v in range(n):
            wv = w[wr, v] if n_w > 0 else 1.0
            p = parent[v]
            tol_lam = rtol * scale * wsub[v]
            if p >= 0:
                feas = max(feas, (x[b, v] - x[b, p]) / tol_x)
                sign = max(sign, -resid[v] / tol_lam)
                if x[b, p] - x[b, v] > tol_x:
                    slack = max(slack, abs(resid[v]) / tol_lam)
                own = resid[v] if resid[v] > 0.0 else 0.0
            else:
                stat = max(stat, abs(resid[v]) / tol_lam)
                own = 0.0
            d = own - lam_plus[v]
            r = x[b, v] - y[b, v]
            primal += 0.5 * wv * r * r
            dual += d * y[b, v] - d * d / (2.0 * wv)
        out[b, 0] = feas
        out[b, 1] = sign
        out[b, 2] = slack
        out[b, 3] = stat
        out[b, 4] = max(primal - dual, 0.0)
