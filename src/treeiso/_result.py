"""The result types of the public API (no dependencies: the front ends and every backend
return them)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["FitResult"]


class FitResult(NamedTuple):
    """Result of :func:`fit` with ``return_blocks=True``.

    Attributes
    ----------
    x : ndarray or Tensor
        The fitted values, as returned by :func:`fit`.
    blocks : ndarray or Tensor of int64
        Same shape as ``x``: ``blocks[..., i]`` is the id of the top (closest
        to the root) node of the block that contains node ``i``. Nodes of one
        block share one fitted value, the weighted mean of their data (with
        ``y_min``/``y_max``, that mean clipped to the bounds; the blocks are
        those of the unbounded fit).

    See Also
    --------
    objective : the loss of ``x`` (the optimal value of the problem solved).

    Examples
    --------
    >>> import treeiso
    >>> res = treeiso.fit([0.0, 1.0, 10.0], [-1, 0, 0], return_blocks=True)
    >>> res.x
    array([5., 1., 5.])
    >>> res.blocks      # node 2 pooled with the root, node 1 alone
    array([0, 1, 0])
    """

    x: object
    blocks: object
