"""The public entry point :func:`fit`: validate once, resolve the kernel, run a backend."""

from ._backends.numba_runner import solve
from ._dispatch import resolve_kernel, tree_arrays
from ._problem import finish, numpy_problem, restore_blocks
from ._result import FitResult
from ._tree import as_tree
from ._validation import check_fit_options, is_torch_tensor

__all__ = ["fit", "FitResult"]


def fit(values, tree, weights=None, *, orientation="root_largest", method="auto",
        backend="auto", return_blocks=False, y_min=None, y_max=None, axis=-1,
        threads=None, check_finite=True, loss="l2", quantile=None):
    r"""Weighted isotonic regression on a rooted tree or forest: least squares, L1, quantile or
    L-infinity.

    Solves, for every row ``y`` of ``values`` (axis ``axis`` indexes nodes),

    .. math::

        \min_x \sum_i w_i (x_i - y_i)^2 \quad \text{subject to} \quad
        x_{\mathrm{parent}(i)} \ge x_i \text{ for every non-root } i

    (``orientation="root_largest"``: each root holds the maximum of its tree),
    or the same with ``x_{parent(i)} <= x_i`` (``"root_smallest"``), and
    optionally ``y_min <= x_i <= y_max``. The solution is unique; without
    bounds it is constant on connected blocks of nodes, each at the weighted
    mean of its data. ``loss="l1"`` minimizes :math:`\sum_i w_i |x_i - y_i|`
    instead and ``loss="quantile"`` the pinball loss
    :math:`\sum_i w_i \rho_q(y_i - x_i)`, :math:`\rho_q(u) = u\,(q - [u < 0])`;
    their optima need not be unique, and ``fit`` returns the pointwise smallest
    one (every other optimum is at least as large at every node), whose values
    are data values (or a bound). ``loss="linf"`` minimizes the largest
    weighted error :math:`\max_i w_i |x_i - y_i|`; its optima within the
    data's range form a box-like set between a pointwise smallest and a
    pointwise largest one, and ``fit`` returns their midpoint.

    Parameters
    ----------
    values : array-like or torch.Tensor of shape (..., n)
        Data ``y``. Every row is fitted with the same tree. Must be finite.
        (With ``axis``, the nodes may lie along another axis.)
    tree : Tree or array-like of int of shape (n,)
        The tree, or its parent array (``-1`` marks a root).
    weights : array-like or torch.Tensor, optional
        Positive finite weights ``w``, broadcastable to ``values``. Default 1.
    orientation : {"root_largest", "root_smallest"}, default="root_largest"
        Direction of the order constraints.
    method : {"auto", "pav", "star", "broom", "irt", "irt-pairing", "irt-leftist", "irt-binomial"}, default="auto"
        ``"auto"`` picks from ``tree.kind``: pool-adjacent-violators for
        chains (O(n)), the star/broom kernel for stars and brooms with at
        most 8 handle nodes (star-plus-edge trees; a few O(n) passes in
        practice, O(n log n) at worst), IRT-BIN (O(n log n)) otherwise,
        longer brooms included. ``"irt"``
        is IRT-BIN with the default (pairing) heap; ``"irt-pairing"``,
        ``"irt-leftist"`` and ``"irt-binomial"`` (the published variant)
        choose the mergeable heap. IRT-BIN solves every tree; the others
        need the matching shape.
    backend : {"auto", "numba", "scipy", "torch"}, default="auto"
        ``"auto"``: Numba kernels for NumPy input, the torch backend for
        tensors. ``"scipy"`` is the slow reference: a dense bounded
        least-squares solve (``scipy.optimize.lsq_linear``, BVLS) whose
        active set then fixes the blocks' exact means; meant for n up to a
        few thousand and weights spanning at most 1e12 in a row (a
        ``ValueError`` beyond: the solve is ill-conditioned there).
    return_blocks : bool, default=False
        Also return the blocks (see :class:`FitResult`).
    y_min, y_max : float, optional
        Constant bounds on every fitted value (scikit-learn's names). The
        bounded solution is the unbounded one clipped to ``[y_min, y_max]``
        (exact; proof in the theory page); on tensors the gradient is zero
        where a bound is active.
    axis : int, default=-1
        The axis of ``values`` that indexes the nodes; the others index rows.
    threads : int, optional
        Threads that fit rows in parallel (NumPy input and CPU tensors).
        Default: ``torch.get_num_threads()`` if torch is imported, else every
        core, but only as many as the work is worth (one thread below about
        32k elements per thread) and never more than the rows.
    check_finite : bool, default=True
        Check that values and weights are finite and weights positive
        (SciPy's convention). ``False`` skips these scans (and, for CUDA
        tensors, the host synchronisation they cost); invalid data then gives
        undefined results instead of an error.
    loss : {"l2", "l1", "quantile", "linf"}, default="l2"
        The objective. ``"l1"``, ``"quantile"`` and ``"linf"`` take
        ``method="auto"``: the slope trick on mergeable heaps for the first
        two (O(n log n) per row on every tree), an iteration over violating
        pairs for ``"linf"`` (O(n) per pass, a few passes; O(n) per row at
        worst, with a bisection);
        ``backend="scipy"`` solves them as linear programs. Tensors run them
        on host copies (see Notes). :func:`objective` evaluates the loss of
        any fit (the optimal value, for the returned one).
    quantile : float in (0, 1), optional
        The level ``q`` of ``loss="quantile"`` (default 0.5, the median: the
        same fit as ``"l1"``). Given with another loss it is an error.

    Returns
    -------
    x : ndarray or Tensor of shape (..., n)
        Same type, shape and floating dtype as ``values`` (integers give
        float64). With ``return_blocks=True``, a :class:`FitResult`.

    Raises
    ------
    ValueError
        For NaN or infinite values or weights, non-positive weights, shapes
        that do not match the tree, 0-d values, an unknown method, a method
        that does not fit the tree's shape, ``y_min > y_max``, a ``y_min``
        above (or ``y_max`` below) the range of the result's dtype, a bad
        ``axis``, an unknown ``loss``, a ``quantile`` outside (0, 1) or given
        with another loss, ``numpy.longdouble`` data beyond float64's range (treeiso
        computes it in float64), or weights whose total exceeds 2**307 (about
        2.6e92) while the smallest is below 2**-1044 (about 5e-315) of that
        total (too wide a range to scale into float64).
    TypeError
        For complex or non-numeric values, weights or bounds, or masked arrays
        (the mask is not honoured: fill them or drop those nodes).

    See Also
    --------
    certify : check that an answer is optimal.
    objective : the loss of a fit, row by row.
    fit_topk : a different label-order tree for every row.

    Notes
    -----
    Float32 input is computed in float64 and rounded back. Inputs are never
    modified. Runs in O(n log n) time and O(n) memory per row at worst.
    Which kernel serves which tree is the table of the theory page
    (``treeiso._dispatch``). Any finite values are handled: data near the
    float limits is divided by a power of two (exact) and the fit scaled back.

    Torch tensors keep their device and dtype and are differentiable in
    ``values`` and ``weights`` (the Jacobian averages over blocks). Chains,
    stars and brooms run natively on the tensor's device; other trees run
    the CPU kernel, so CUDA tensors are then copied to the host and back.
    float16 and bfloat16 tensors are computed in float32 and returned in
    their own dtype (gradients too). With ``loss="l1"``, ``"quantile"`` or
    ``"linf"`` every tree runs the CPU kernel on a host copy (the same
    answer as for NumPy input, bit for bit, in the tensor's dtype and on its
    device); the gradient selects, for each block, the data node whose value
    it takes (shared equally at ties; zero for the weights), and for
    ``"linf"`` it differentiates the pair formula below
    (:ref:`theory-robust-gradients`).

    For ``loss="l1"`` / ``"quantile"`` (see :ref:`theory-quantile`): the
    returned optimum is the pointwise smallest in either orientation, so it
    does not depend on how nodes are numbered; with bounds it is the
    unbounded one clipped to them (still the smallest optimum of the bounded
    problem). Slopes that agree to a few float64 ulps of the weights involved
    count as equal, so ``quantile=0.1`` acts as exactly 1/10. The blocks are
    the connected nodes of one fitted value.

    For ``loss="linf"`` (see :ref:`theory-linf`): the optimal error ``e`` is
    the largest ``w_a w_d (y_d - y_a) / (w_a + w_d)`` over nodes ``d`` below
    ``a`` (and ``w (y_min - y)``, ``w (y - y_max)`` with bounds); the result is
    the midpoint of the smallest optimum ``L`` (``L_v`` the largest
    ``y_d - e / w_d`` over ``v``'s subtree) and the largest ``U`` (``U_v`` the
    smallest ``y_a + e / w_a`` over ``v`` and its ancestors), both clipped to
    the row's data range and the bounds (an optimum clipped to the data range
    is still one; without it a light root would sit far above the data). The midpoint does not depend on node numbering, and negating
    the data and the orientation negates it. Its error is ``e`` up to the
    rounding of ``x`` (a few ulps of ``w |x|``).

    Examples
    --------
    >>> import treeiso
    >>> treeiso.fit([0.0, 1.0, 10.0], [-1, 0, 0])   # a root and two leaves
    array([5., 1., 5.])
    >>> treeiso.fit([1.0, 3.0, 2.0], treeiso.Tree.chain(3))
    array([2., 2., 2.])
    >>> treeiso.fit([3.0, 1.0, 2.0], [-1, 0, 1], orientation="root_smallest")
    array([2., 2., 2.])
    >>> treeiso.fit([0.0, 1.0, 10.0], [-1, 0, 0], y_max=4.0)   # clipped block
    array([4., 1., 4.])
    >>> treeiso.fit([0.0, 1.0, 10.0, 9.0], [-1, 0, 0, 0], loss="l1")   # a median fit
    array([9., 1., 9., 9.])
    >>> treeiso.fit([0.0, 4.0, 1.0], [-1, 0, 1], loss="linf")   # error 2; the leaf has room
    array([2., 2., 1.])
    """
    level, bounds = check_fit_options(orientation, loss, quantile, method, backend, y_min,
                                      y_max, threads)
    if backend == "torch" or is_torch_tensor(values):
        from ._backends.torch_front import fit_tensor

        return fit_tensor(values, tree, weights, method=method, backend=backend, loss=loss,
                          level=level, orientation=orientation, bounds=bounds,
                          return_blocks=return_blocks, axis=axis, threads=threads,
                          check_finite=check_finite)
    if is_torch_tensor(weights):
        raise TypeError("values is a NumPy array but weights is a torch.Tensor: pass both "
                        "as NumPy arrays or both as tensors")
    tree = as_tree(tree)
    kernel = resolve_kernel(method, loss, tree)
    # PAV scans the values itself, in the same compiled call as the fit.
    p = numpy_problem(values, weights, tree.n, axis=axis, orientation=orientation,
                      bounds=bounds, check_finite=check_finite,
                      scan_values=kernel != "pav" or backend == "scipy")
    if backend == "scipy":
        from ._backends.scipy_ref import solve as scipy_solve

        x, blocks = scipy_solve(p, tree, loss, level)
        x = finish(p, x, clip=False)  # the reference solves the bounded problem itself
    else:
        x, blocks, _ = solve(p, kernel, tree_arrays(kernel, tree), threads, return_blocks,
                             level)
        x = finish(p, x)
    return FitResult(x, restore_blocks(p, blocks)) if return_blocks else x
