"""Optimality certificate for tree isotonic regression (KKT conditions)."""

from dataclasses import dataclass

import numpy as np

from ._scaling import value_exponent, weight_exponent
from ._tree import as_tree
from ._validation import (
    as_real_array,
    as_rows,
    check_finite,
    check_orientation,
    is_torch_tensor,
    prepare_values,
    prepare_weights,
)

__all__ = ["certify", "Certificate"]


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
        Largest duality-gap bound over the rows: for a feasible ``x``,
        ``0.5 * sum w (x - x*)**2 <= gap``. The dual point is built from
        ``x`` itself, so its stationarity residual at node ``i`` is about
        ``eps * sum(w |y|)`` even for an exact float answer, and it costs
        ``residual**2 / (2 w_i)``: with weights spanning many orders of
        magnitude the bound stays valid but is loose (about
        ``(eps * sum(w |y|))**2 / min(w)``), not a sign of a wrong answer.
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
            rtol=1e-9):
    r"""Check that ``solution`` solves the tree isotonic regression of ``values``.

    With the multiplier of edge ``(parent(c), c)`` equal to the subtree
    residual :math:`R(c) = \sum_{j \in \mathrm{subtree}(c)} w_j (y_j - x_j)`,
    ``x`` is optimal if and only if it is feasible
    (:math:`x_{p(c)} \ge x_c`), :math:`R(c) \ge 0`, :math:`R(c) = 0` wherever
    :math:`x_{p(c)} > x_c`, and :math:`R(\mathrm{root}) = 0`. The check is
    O(n) per row and runs in float64.

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
    rtol : float, default=1e-9
        Relative tolerance, against the spread of each row's data: values are
        compared to ``tol_x = rtol * (max y - min y) + 32 * eps * max|y|`` (the
        second term: an exact answer is only representable to about an ulp of
        the data), a multiplier to ``tol_x * W(subtree)`` and a block's
        residual to ``tol_x * W(block)``. Shifting the data leaves the
        tolerances unchanged up to that floor; scaling values or weights scales
        them alike.

    Returns
    -------
    Certificate
        The verdict and the worst violation ratios (<= 1 is satisfied).

    Raises
    ------
    ValueError
        For NaN or infinite values or weights, for a NaN or infinite
        ``solution`` (named so: a bad candidate), non-positive weights, or
        shapes that do not match.

    Notes
    -----
    Sound for any positive weights: each block is judged by its own weight,
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
    """
    check_orientation(orientation)
    rtol = float(rtol)
    if not rtol > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}")
    tree = as_tree(tree)

    def to_numpy(a):
        return a.detach().cpu().numpy() if is_torch_tensor(a) else a

    y, _ = prepare_values(to_numpy(values), tree.n)
    x = as_real_array(to_numpy(solution), "solution")
    if x.shape != y.shape:
        raise ValueError(
            f"solution has shape {x.shape} but values has shape {y.shape}"
        )
    check_finite(x, "solution")
    w = prepare_weights(to_numpy(weights), y.shape)
    y2 = as_rows(y)
    x2 = as_rows(x)
    # Powers of two keep every sum in range (overflow-free, and tiny weights do not vanish).
    ey = max(value_exponent(y2), value_exponent(x2))
    ew = weight_exponent(w)
    sign = -1.0 if orientation == "root_smallest" else 1.0
    if ey or sign < 0:
        y2 = sign * np.ldexp(y2, -ey)
        x2 = sign * np.ldexp(x2, -ey)
    if ew:
        w = np.ldexp(w, -ew)
    out = np.zeros((y2.shape[0], 5))
    if tree.n and y2.shape[0]:
        from ._certify_kernel import kkt_rows

        kkt_rows(y2, w, x2, tree.parent, tree.order, rtol, out)
    if ey or ew:
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
        optimal_rows=ok.reshape(y.shape[:-1]),
    )
