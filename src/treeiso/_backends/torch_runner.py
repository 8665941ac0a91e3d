"""The torch runner: a resolved kernel over tensor rows, checked, scaled, and run where it
can run (the bodies of the custom ops of :mod:`treeiso._backends.torch_ops`).

Each ``*_rows`` function takes the rows of a :class:`treeiso._problem.Problem` (orientation
``root_largest``), checks the data unless ``check`` is False (NaN, infinity, weights > 0,
label range), scales it by powers of two near the float limits
(:func:`treeiso._problem.solve_scaled`) and runs the kernel: on the host, the Numba kernel
on the tensors' memory (:func:`run_host`, no copy for contiguous CPU float32/float64
tensors), or, for chains and brooms on other devices (or ``native=True``), the torch-only
code of :mod:`treeiso._backends.torch_native`. It returns the fit ``x`` and its ``blocks``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import torch_native as native_kernels
from .._problem import solve_scaled
from .._validation import check_label_range, unit_weights
from .numba_runner import run_kernel
from .torch_arrays import TORCH, check_weights, finite_abs_max, host_threads, max_exponent

#: the kernels that read float32 rows as they are (and pool in float64)
_READS_FLOAT32 = ("pav", "broom")


def run_host(kernel: str, y: Tensor, w: Tensor | None, tree_args, threads: int):
    """``kernel`` (a name of :data:`treeiso._dispatch.KERNELS`) on host copies of ``y`` and
    ``w`` (none for contiguous CPU tensors in the kernel's dtype); ``tree_args``: its tree
    arrays as tensors, NumPy arrays or None. Returns ``(x, blocks, finite)``: ``x`` in
    ``y``'s dtype and ``blocks`` on ``y``'s device, and the kernel's per-chunk results."""
    work = (y.dtype if kernel in _READS_FLOAT32 and y.dtype in (torch.float32, torch.float64)
            else torch.float64)
    yc = y.detach().to("cpu", work).contiguous()
    wc = (unit_weights(yc.shape[1]) if w is None
          else w.detach().to("cpu", torch.float64).contiguous().numpy())
    index = torch.int64 if kernel in _READS_FLOAT32 else None  # (IRT-BIN: the tree's dtype)
    args = tuple(a if a is None or isinstance(a, np.ndarray)
                 else a.detach().to("cpu", index).contiguous().numpy()
                 for a in tree_args)
    x = torch.empty_like(yc)
    blocks = torch.empty(yc.shape, dtype=torch.int64)
    finite = [True]
    if yc.numel():
        finite = run_kernel(kernel, yc.numpy(), wc, args, x.numpy(), blocks.numpy(), threads)
    return x.to(y.device, y.dtype), blocks.to(y.device), finite


def _checked(y: Tensor, w: Tensor | None, check: bool, scan_values: bool = True):
    """max|y| when the check computed it, else None; raises for bad data when ``check``."""
    if not check:
        return None
    amax = finite_abs_max(y, "values") if scan_values else None
    check_weights(w)
    return amax


def _work_weights(w: Tensor | None, y: Tensor, native: bool) -> Tensor | None:
    """Weights come in float64 (as NumPy's): the host kernels read them so; the native
    paths compute in the values' work dtype, so they get them cast to it."""
    if w is None or not (native or y.device.type != "cpu"):
        return w
    return w.to(y.dtype)


def _chain_in_order_on_host(y: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
    """The rows the native chain could not finish, by the host kernel (rows in order)."""
    x, blocks, _ = run_host("pav", y, w, (None,), 1)
    return x, blocks


def chain_rows(y: Tensor, w: Tensor | None, order: Tensor, native: bool, threads: int,
               check: bool) -> tuple[Tensor, Tensor]:
    """``x[order[0]] >= x[order[1]] >= ...`` per row; ``blocks`` holds node ids."""
    amax = _checked(y, w, check)
    native = native or y.device.type != "cpu"

    def run(ys, ws):
        if ys.shape[-1] == 0:
            return ys.clone(), torch.empty(ys.shape, dtype=torch.int64, device=ys.device)
        if not native:
            x, blocks, _ = run_host("pav", ys, ws, (order,), host_threads(threads, ys))
            return x, blocks
        o = order.to(ys.device)
        xo, to = native_kernels.chain_native(ys[:, o].contiguous(),
                                             None if ws is None else ws[:, o].contiguous(),
                                             _chain_in_order_on_host)
        x = torch.empty_like(ys)
        blocks = torch.empty(ys.shape, dtype=torch.int64, device=ys.device)
        x[:, o] = xo
        blocks[:, o] = o[to]
        return x, blocks

    return solve_scaled(TORCH, run, y, _work_weights(w, y, native), amax,
                        max_exponent(y.dtype))


def broom_rows(y: Tensor, w: Tensor | None, labels: Tensor, native: bool, threads: int,
               check: bool) -> tuple[Tensor, Tensor]:
    """One broom per row, its handle ``labels[b]`` (-1 padding, repeats count once)."""
    native = native or y.device.type != "cpu"
    # The host kernel checks the values in its own pass.
    amax = _checked(y, w, check, scan_values=native)
    _check_labels(labels, y, native, check)
    if y.numel() == 0:
        return y.clone(), torch.zeros(y.shape, dtype=torch.int64, device=y.device)
    labels = native_kernels.compact_labels(labels)

    def run(ys, ws):
        if native:
            return native_kernels.broom_native(ys, ws, labels)
        x, blocks, finite = run_host("broom", ys, ws, (labels,), host_threads(threads, ys))
        if check and not all(finite):
            kind = "a NaN" if bool(torch.isnan(ys).any()) else "an infinite"
            raise ValueError(f"values contains {kind} value")
        return x, blocks

    return solve_scaled(TORCH, run, y, _work_weights(w, y, native), amax,
                        max_exponent(y.dtype))


def _check_labels(labels: Tensor, y: Tensor, native: bool, check: bool) -> None:
    """The label range is checked even with ``check=False``: the kernels index rows by
    label. On the host that costs no synchronisation; on a device, check there (asynchronous:
    a bad label fails the stream instead of reading or writing outside a row)."""
    if not labels.numel():
        return
    c = y.shape[-1]
    if not native or check or y.device.type == "cpu":
        check_label_range(int(labels.min()), int(labels.max()), c)
    else:
        torch._assert_async(((labels >= -1) & (labels < c)).all(),
                            f"treeiso: labels must be class indices in [0, {c}) or -1")


def tree_rows(y: Tensor, w: Tensor | None, order: Tensor, parent_pos: Tensor, kernel: str,
              threads: int, check: bool) -> tuple[Tensor, Tensor]:
    """``kernel`` (IRT-BIN) on host copies; ``order``/``parent_pos``: the tree's."""
    amax = _checked(y, w, check)

    def run(ys, ws):
        x, blocks, _ = run_host(kernel, ys, ws, (order, parent_pos),
                                host_threads(threads, ys))
        return x, blocks

    return solve_scaled(TORCH, run, y, w, amax, max_exponent(y.dtype))
