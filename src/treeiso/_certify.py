"""Optimality certificate for tree isotonic regression (KKT conditions)."""

import math
from dataclasses import dataclass

import numpy as np

from ._problem import numpy_problem
from ._scaling import value_exponent, value_exponent_of, weight_exponent
from ._tree import as_tree
from ._validation import (
    as_real_array,
    as_rows,
    check_bounds,
    check_loss,
    check_orientation,
    finite_abs_max,
    is_torch_tensor,
    oriented_bounds,
)

__all__ = ["certify", "Certificate"]


def _to_numpy(a):
    """Tensors as NumPy arrays (detached, on the host; bfloat16, which NumPy lacks, as
    float32: exact)."""
    if not is_torch_tensor(a):
        return a
    import torch

    a = a.detach().cpu()
    return (a.float() if a.dtype == torch.bfloat16 else a).numpy()


def _precision(a):
    """Machine epsilon of the precision ``a`` holds (float64's for integers and others)."""
    if is_torch_tensor(a):
        import torch

        return float(torch.finfo(a.dtype).eps) if a.dtype.is_floating_point else _EPS64
    dt = getattr(a, "dtype", None)
    if dt is None or np.dtype(dt).kind != "f" or np.dtype(dt).itemsize > 8:
        return _EPS64
    return float(np.finfo(dt).eps)


_EPS64 = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, eq=False)
class Certificate:
    """Outcome of :func:`certify`.

    Each ``*_ratio`` attribute is the worst violation of one KKT condition
    divided by its tolerance, over all rows: a value <= 1 means the condition
    holds. ``bool(cert)`` is ``cert.optimal``.

    Attributes
    ----------
    optimal : bool
        True when every condition holds in every row.
    feasibility : float
        Order constraints, ``x[child] - x[parent] <= tol_x``.
    dual_sign : float
        Multipliers (subtree residual sums) are non-negative.
    complementary_slackness : float
        Multipliers vanish on edges that are strictly ordered: each block
        (nodes joined by edges where ``x`` is equal to ``tol_x``) below such an
        edge holds the weighted mean of its data, ``sum_B w (y - x) = 0``.
    stationarity : float
        The same for the blocks that contain a root (each tree's total
        residual is zero).
    gap : float
        Largest duality-gap bound over the rows: for a feasible ``x`` (order
        and bounds), ``0.5 * sum w (x - x*)**2 <= gap``, up to the rounding
        of its own terms (a relative few ``n * eps``). It is computed as a sum
        of non-negative terms (the squared stationarity residual of each node
        over twice its weight, and each multiplier times its constraint's
        slack), so it is not lost to cancellation at any weight range; it is
        0 only when the multipliers built from ``x`` prove it optimal
        exactly, or when every term underflows (below about 1e-308 after
        rescaling). The dual point is built from ``x`` itself, so for an exact
        float answer the residuals are rounding-sized, and the bound is about
        ``(eps * sum(w |y|))**2 / min(w)``: loose when weights span many
        orders of magnitude, not a sign of a wrong answer. For an infeasible
        ``x`` it bounds nothing (see ``feasibility``). NaN for the L1 and
        quantile losses, whose check has no such bound. For ``loss="linf"``:
        ``x``'s weighted error minus the proven lower bound on the optimum
        (0 when ``x`` is an optimum, up to rounding).
    optimal_rows : ndarray of bool
        Shape ``values.shape[:-1]``: the verdict for each row.

    Examples
    --------
    >>> import treeiso
    >>> cert = treeiso.certify([2.0, 0.0], [-1, 0], [1.0, 1.0])
    >>> cert.optimal, cert.dual_sign > 1    # pooling two ordered nodes is wrong
    (False, True)
    """

    optimal: bool
    feasibility: float
    dual_sign: float
    complementary_slackness: float
    stationarity: float
    gap: float
    optimal_rows: np.ndarray

    def __bool__(self):
        return bool(self.optimal)


def certify(values, tree, solution, weights=None, *, orientation="root_largest",
            y_min=None, y_max=None, rtol=1e-9, loss="l2", quantile=None):
    r"""Check that ``solution`` solves the tree isotonic regression of ``values``.

    With the multiplier of edge ``(parent(c), c)`` equal to the subtree
    residual :math:`R(c) = \sum_{j \in \mathrm{subtree}(c)} w_j (y_j - x_j)`,
    ``x`` is optimal if and only if it is feasible
    (:math:`x_{p(c)} \ge x_c`), :math:`R(c) \ge 0`, :math:`R(c) = 0` wherever
    :math:`x_{p(c)} > x_c`, and :math:`R(\mathrm{root}) = 0`. With bounds
    ``y_min``/``y_max`` the bound multipliers relax these at the blocks that
    sit on a bound (see the theory page). The check is O(n) per row and runs
    in float64.

    Parameters
    ----------
    values : array-like or torch.Tensor of shape (..., n)
        The data ``y``. Tensors are detached and copied to the CPU.
    tree : Tree or array-like of int
        The tree or its parent array.
    solution : array-like or torch.Tensor of shape (..., n)
        The candidate ``x``.
    weights : array-like, optional
        Positive weights broadcastable to ``values``. Default 1.
    orientation : {"root_largest", "root_smallest"}, default="root_largest"
        Direction of the constraints, as in :func:`fit`.
    y_min, y_max : float, optional
        The bounds of the problem ``solution`` claims to solve, as in :func:`fit`.
    rtol : float, default=1e-9
        Relative tolerance, against the spread of each row's data: values are
        compared to ``tol_x = rtol * (max y - min y) + 32 * eps * max|y, x|``
        (the second term: an exact answer is only representable to about an
        ulp of the data, where ``eps`` is the machine epsilon of the coarser
        of the dtypes of ``values`` and ``solution``: float16, bfloat16,
        float32 or float64), a multiplier to ``tol_x * W(subtree)`` and a
        block's residual to ``tol_x * W(block)``. Shifting the data leaves the
        tolerances unchanged up to that floor; scaling values or weights scales
        them alike.
    loss : {"l2", "l1", "quantile", "linf"}, default="l2"
        The objective ``solution`` claims to minimize, as in :func:`fit`. For
        ``"l1"`` and ``"quantile"`` the check is that of a dual flow: edge
        multipliers ``lam >= 0``, zero below every strict edge, whose net at
        each node is a subgradient of that node's loss (``-w q`` below its
        data, ``w (1 - q)`` above it, anything between at it, unbounded on a
        bound it sits on). Values count as equal within ``tol_x``; sums of
        ``k`` slopes are compared to ``4 k`` float64 ulps of the weight they
        sum. ``gap`` is NaN for these losses (any optimum is accepted, not
        only the one :func:`fit` returns). For ``"linf"``: a lower bound ``LB``
        on the optimal error is proven from pairs of nodes (a node ``a`` and
        a node ``d`` below it give ``(y_d - y_a) / (1/w_a + 1/w_d)``) and the
        bounds, and ``x`` is accepted when it is feasible and every node is
        within its band, ``|x_v - y_v| <= LB / w_v + tol_x``
        (``stationarity`` is the worst band excess over ``tol_x``): then an
        exact optimum lies within a few ``tol_x`` of ``x`` at every node. Any
        optimum is accepted, not only the midpoint.
    quantile : float in (0, 1), optional
        The level of ``loss="quantile"`` (default 0.5).

    Returns
    -------
    Certificate
        The verdict and the worst violation ratios (<= 1 is satisfied).

    Raises
    ------
    ValueError
        For an unknown ``loss``, a bad ``quantile`` (as in :func:`fit`), for
        NaN or infinite values or weights, for a NaN or infinite
        ``solution`` (named so: a bad candidate), non-positive weights, or
        shapes that do not match.

    Notes
    -----
    The precision contract: every answer :func:`fit` returns is accepted in
    the dtype it returns (float16, bfloat16, float32 or float64: it is the
    exact answer rounded to that dtype, well within ``32 * eps``), and an
    answer whose blocks are off by more than ``tol_x`` is rejected. Sound for
    any positive weights: each block is judged by its own weight,
    so a light block in a heavy tree cannot hide in the tree's tolerance, and
    values and weights are rescaled by powers of two when their sums would
    overflow or underflow. A perturbation of an exact answer is detected when
    it moves some block by more than ``tol_x`` (feasibility also catches it
    when it breaks the order).

    Examples
    --------
    >>> import numpy as np, treeiso
    >>> y = np.array([0.0, 1.0, 10.0]); parent = [-1, 0, 0]
    >>> treeiso.certify(y, parent, treeiso.fit(y, parent)).optimal
    True
    >>> treeiso.certify(y, parent, [4.0, 1.0, 4.0]).optimal
    False
    >>> treeiso.certify(y, parent, [4.0, 1.0, 4.0], loss="l1").optimal  # a median fit
    True
    """
    check_orientation(orientation)
    level = check_loss(loss, quantile)
    bounds = check_bounds(y_min, y_max)
    rtol = float(rtol)
    if not rtol > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}")
    tree = as_tree(tree)
    eps = max(_precision(values), _precision(solution))
    p = numpy_problem(_to_numpy(values), _to_numpy(weights), tree.n, axis=-1,
                      orientation=orientation, bounds=(None, None), check_finite=True)
    x = as_real_array(_to_numpy(solution), "solution")
    if x.shape != p.shape:
        raise ValueError(f"solution has shape {x.shape} but values has shape {p.shape}")
    finite_abs_max(x, "solution")
    y2, w, sign = p.y, p.w, p.sign
    x2 = as_rows(x)
    # Powers of two keep every sum in range (overflow-free, and tiny weights do not vanish).
    ey = max(value_exponent(y2, p.amax), value_exponent(x2),
             *(value_exponent_of(abs(b)) for b in bounds if b is not None))
    ew = weight_exponent(w)
    lo, hi = oriented_bounds(bounds, sign)
    if ey:
        y2 = np.ldexp(y2, -ey)
    if ey or sign < 0:
        x2 = sign * np.ldexp(x2, -ey)
    lo_s = 0.0 if lo is None else math.ldexp(lo, -ey)
    hi_s = 0.0 if hi is None else math.ldexp(hi, -ey)
    if ew:
        w = np.ldexp(w, -ew)
    out = np.zeros((y2.shape[0], 5))
    parent, order = tree.parent, tree.order
    if tree.n > 1 and y2.shape[0] and not tree._chain_in_order:
        # The checks visit nodes in breadth-first order: hand them the rows in that order,
        # with parents as positions, so that they read memory in sequence (on a tree with
        # shuffled ids this is several times faster than following the ids).
        y2, x2 = y2[:, order], x2[:, order]
        if w.shape[0]:
            w = w[:, order]
        parent, order = tree.parent_pos, np.arange(tree.n, dtype=tree.parent_pos.dtype)
    if tree.n and y2.shape[0] and loss == "linf":
        from ._kernels.certify_linf import linf_kkt_rows

        linf_kkt_rows(y2, w, x2, parent, order, rtol, eps, lo_s, hi_s,
                      lo is not None, hi is not None, out)
        if ey or ew:
            with np.errstate(over="ignore"):
                out[:, 4] = np.ldexp(out[:, 4], ey + ew)
    elif tree.n and y2.shape[0] and level is not None:
        from ._kernels.certify_quantile import quantile_kkt_rows

        # rho_q(y - x) = rho_{1-q}((-y) - (-x)) (up to u = 0, where both vanish)
        quantile_kkt_rows(y2, w, x2, parent, order,
                          level if sign > 0 else 1.0 - level, rtol, eps, lo_s, hi_s,
                          lo is not None, hi is not None, out)
    elif tree.n and y2.shape[0]:
        from ._kernels.certify_kernel import kkt_rows

        kkt_rows(y2, w, x2, parent, order, rtol, eps, lo_s, hi_s,
                 lo is not None, hi is not None, out)
    if loss == "l2" and (ey or ew):
        with np.errstate(over="ignore"):
            out[:, 4] = np.ldexp(out[:, 4], 2 * ey + ew)
    ok = (out[:, :4] <= 1.0).all(axis=1)
    worst = out.max(axis=0) if out.shape[0] else np.zeros(5)
    return Certificate(
        optimal=bool(ok.all()),
        feasibility=float(worst[0]),
        dual_sign=float(worst[1]),
        complementary_slackness=float(worst[2]),
        stationarity=float(worst[3]),
        gap=float(worst[4]),
        optimal_rows=ok.reshape(p.shape[:-1]),
    )
