"""The torch backend: tree isotonic regression as differentiable ``torch.library`` ops.

Three custom ops, each returning the fit ``x`` and its blocks ``top`` (``top[b, i]`` is the
root-most node of the block holding ``i``), all with the same autograd formula (SPEC 5):

- ``treeiso::chain``: rows already in chain order, ``x0 >= x1 >= ...``. CPU tensors run the
  Numba PAV kernel; other devices run :func:`_chain_native`, batched rounds of pooling all
  adjacent violators at once (torch ops only).
- ``treeiso::broom``: one broom per row, given by its handle (labels). CPU tensors run the Numba
  kernel of :mod:`treeiso._broom`; other devices run :func:`_broom_native` (torch ops only).
- ``treeiso::tree``: any tree, on the CPU kernels (IRT-BIN); tensors on other devices are
  copied to the host and back.

Validation that needs the data (NaN, weights > 0, label range) runs inside the ops, on real
tensors, so that ``torch.compile`` traces the callers without graph breaks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ._validation import check_orientation

# Rounds of parallel pooling before the chain's native path hands the rows left to PAV on
# the host: _CHAIN_ROUNDS + _CHAIN_ROUNDS_PER_BIT * log2(n). A round costs O(n); random rows
# need about 20 (noise) to 130 (trend, n = 1e5) rounds, adversarial rows up to n.
_CHAIN_ROUNDS = 64
_CHAIN_ROUNDS_PER_BIT = 16
# Fixed-point rounds of the native broom before falling back to the host kernel.
_BROOM_ROUNDS = 64
# How the native broom finds the last block's value: "fixed_point" (masked sums) or "sort".
_BROOM_STRATEGY = "fixed_point"


# ----------------------------------------------------------------------------- helpers
def _check_finite(t: Tensor, what: str) -> None:
    # A finite sum means every entry is finite (NaN and inf propagate); only when the sum is
    # not finite (perhaps an overflow) look entry by entry.
    if t.numel() and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        kind = "a NaN" if bool(torch.isnan(t).any()) else "an infinite"
        raise ValueError(f"{what} contains {kind} value")


def _check_weights(w: Tensor | None) -> None:
    if w is None:
        return
    _check_finite(w, "weights")
    if w.numel() and not bool(w.amin() > 0):
        raise ValueError("weights must be > 0")


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _to_np64(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float64).numpy())


def _block_vjp(top: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
    """Per element, G_B / W_B of its block B (SPEC 5): sums over ``top`` then gathered."""
    gsum = torch.zeros_like(g).scatter_add_(-1, top, g)
    wfull = torch.ones_like(g) if w is None else w.expand_as(g)  # w may be one shared row
    wsum = torch.zeros_like(g).scatter_add_(-1, top, wfull)
    return gsum.gather(-1, top) / wsum.gather(-1, top)


# ----------------------------------------------------------------------------- chain
def _chain_native(y: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
    """Decreasing fit of every row of ``y`` (B, n) with torch ops only; ``w``: (B, n), (1, n)
    (one row shared by every row) or None.

    Pools every adjacent violating pair of blocks at once, in rounds; any order of pooling
    adjacent violators reaches the unique solution. Rows still violating after
    ``_CHAIN_ROUNDS`` rounds go to the host PAV kernel.
    """
    n_rows, n = y.shape
    sh = y.mean(-1, keepdim=True)  # centre: block sums of float32 rows stay accurate
    z = y - sh
    wz = z if w is None else w * z
    wt = torch.ones_like(z) if w is None else w.expand_as(z)
    starts = torch.ones(n_rows, n, dtype=torch.bool, device=y.device)
    for _ in range(_CHAIN_ROUNDS + _CHAIN_ROUNDS_PER_BIT * max(n - 1, 1).bit_length()):
        ids = starts.cumsum(-1) - 1
        s = torch.zeros_like(z).scatter_add_(-1, ids, wz)
        ws = torch.zeros_like(z).scatter_add_(-1, ids, wt)
        me = (s.gather(-1, ids)) / ws.gather(-1, ids)
        viol = starts[:, 1:] & (me[:, :-1] < me[:, 1:])  # block above smaller: pool
        if not bool(viol.any()):
            break
        starts[:, 1:] &= ~viol
    else:
        ids = starts.cumsum(-1) - 1
        s = torch.zeros_like(z).scatter_add_(-1, ids, wz)
        ws = torch.zeros_like(z).scatter_add_(-1, ids, wt)
        me = s.gather(-1, ids) / ws.gather(-1, ids)
        bad = (starts[:, 1:] & (me[:, :-1] < me[:, 1:])).any(-1)
        rows = bad.nonzero().squeeze(-1)
        wh = w if w is None or w.shape[0] == 1 else w[rows]
        xh, th = _chain_host(y[rows], wh)  # positions = ids here
        x = me + sh
        top = torch.cummax(torch.where(starts, torch.arange(n, device=y.device), 0), -1).values
        x[rows] = xh
        top[rows] = th
        return x, top
    top = torch.cummax(torch.where(starts, torch.arange(n, device=y.device), 0), -1).values
    return me + sh, top


def _chain_host(y: Tensor, w: Tensor | None, order: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
    """The Numba PAV kernel on host copies (none for contiguous CPU float32/float64)."""
    from ._pav import pav_rows

    yc = y.detach().to("cpu").contiguous()
    wc = (torch.empty((0, y.shape[1]), dtype=y.dtype) if w is None
          else w.detach().to("cpu", y.dtype).contiguous())
    chain = (np.arange(yc.shape[1], dtype=np.int64) if order is None
             else np.ascontiguousarray(order.detach().cpu().numpy(), dtype=np.int64))
    x = torch.empty_like(yc)
    top = torch.empty(yc.shape, dtype=torch.int64)
    if yc.numel():
        pav_rows(yc.numpy(), wc.numpy(), chain, x.numpy(), top.numpy(), True)
    return x.to(y.device), top.to(y.device)


@torch.library.custom_op("treeiso::chain", mutates_args=())
def _chain_op(y: Tensor, w: Tensor | None, order: Tensor, native: bool
              ) -> tuple[Tensor, Tensor]:
    """``x[order[0]] >= x[order[1]] >= ...`` per row; ``top`` holds node ids."""
    _check_finite(y, "values")
    _check_weights(w)
    if y.shape[-1] == 0:
        return y.clone(), torch.empty(y.shape, dtype=torch.int64, device=y.device)
    if not (native or y.device.type != "cpu"):
        return _chain_host(y, w, order)
    order = order.to(y.device)
    xo, to = _chain_native(y[:, order].contiguous(),
                           None if w is None else w[:, order].contiguous())
    x = torch.empty_like(y)
    top = torch.empty(y.shape, dtype=torch.int64, device=y.device)
    x[:, order] = xo
    top[:, order] = order[to]
    return x, top


# ----------------------------------------------------------------------------- broom
def _broom_native(y: Tensor, w: Tensor | None, lab: Tensor, strategy: str | None = None
                  ) -> tuple[Tensor, Tensor]:
    """Broom fit of every row with torch ops only (SPEC 3 via the fixed point of _broom).

    ``lab`` (B, K) int64: handles, deduplicated, ``-1`` padding at the end of each row.
    Iterates ``A = {z > v}`` (leaves above the last block's value) and ``v`` = last value of
    the handle's PAV with the last node augmented by ``A`` (the minimum over ``s`` of the
    augmented suffix means); from below, ``v`` rises, ``A`` shrinks and the fixed point is
    exact. Then the handle's values by the min-max formula x_i = min_{s<=i} max_{t>=i} A(s, t).

    ``strategy="sort"`` finds the same ``v`` as SPEC 3 writes it: one sort of the leaves,
    prefix sums, ``v = min_s max_k (C_s + S_k) / (W_s + L_k)``. ``_BROOM_STRATEGY`` holds
    the faster of the two (benchmarks/bench_torch.py measures both).
    """
    strategy = strategy or _BROOM_STRATEGY
    n_rows, c = y.shape
    k = lab.shape[1]
    dev = y.device
    valid = lab >= 0
    kr = valid.sum(-1)
    has = kr > 0
    labc = lab.clamp_min(0)
    last = labc.gather(-1, (kr - 1).clamp_min(0).unsqueeze(-1))
    sh = torch.where(has.unsqueeze(-1), y.gather(-1, last), torch.zeros_like(y[:, :1]))
    z = y - sh
    wt = torch.ones_like(z) if w is None else w.expand_as(z)
    hmask = torch.zeros(n_rows, c + 1, dtype=torch.bool, device=dev)
    hmask.scatter_(-1, torch.where(valid, lab, c), True)
    hmask = hmask[:, :c]
    neg_inf = torch.tensor(float("-inf"), dtype=z.dtype, device=dev)
    zl = torch.where(hmask, neg_inf, z)  # leaves only
    # w z and w on the leaves (zero on the handle), for the masked sums.
    wzl = (wt * z).masked_fill_(hmask, 0.0)
    wl = wt.masked_fill(hmask, 0.0)
    # Handle prefix sums (centred), zero weight on padding.
    zh = z.gather(-1, labc)
    whh = torch.where(valid, wt.gather(-1, labc), 0.0)
    zero = torch.zeros(n_rows, 1, dtype=z.dtype, device=dev)
    p = torch.cat([zero, (whh * zh).cumsum(-1)], -1)  # (B, K+1)
    q = torch.cat([zero, whh.cumsum(-1)], -1)
    pk = p.gather(-1, kr.unsqueeze(-1))
    qk = q.gather(-1, kr.unsqueeze(-1))
    cs = pk - p[:, :k]  # sums from s to the last handle node
    ws = qk - q[:, :k]
    smask = torch.arange(k, device=dev) < kr.unsqueeze(-1)
    inf = torch.tensor(float("inf"), dtype=z.dtype, device=dev)

    def last_value(sa, wa):
        return torch.where(smask, (cs + sa) / (ws + wa), inf).amin(-1, keepdim=True)

    if strategy == "sort":
        zs, idx = torch.sort(zl, -1, descending=True)
        wz2 = torch.stack([wzl, wl], -1)
        pre = torch.cat([torch.zeros_like(wz2[:, :1]),
                         wz2.gather(1, idx.unsqueeze(-1).expand(-1, -1, 2)).cumsum(1)], 1)
        num = cs.unsqueeze(-1) + pre[:, None, :, 0]  # [b, s, k]
        den = ws.unsqueeze(-1) + pre[:, None, :, 1]
        m_s = (num / den).amax(-1)
        v = torch.where(smask, m_s, inf).amin(-1, keepdim=True)
        n_abs = (zl > v).sum(-1, keepdim=True)
        sums = pre.gather(1, n_abs.unsqueeze(-1).expand(-1, -1, 2)).squeeze(1)
        sa, wa = sums[:, :1], sums[:, 1:]
        v = last_value(sa, wa)
    else:
        zcol = torch.zeros_like(sh)
        v = last_value(zcol, zcol)
        for _ in range(_BROOM_ROUNDS):
            a = (zl > v).to(z.dtype)  # A = {z > v}, as 0/1 (no matmul: TF32 would round)
            sa = (a * wzl).sum(-1, keepdim=True)
            wa = (a * wl).sum(-1, keepdim=True)
            vn = last_value(sa, wa)
            if torch.equal(vn, v):
                break
            v = vn
        else:  # adversarial data only (tests force it with _BROOM_ROUNDS = 0)
            return _broom_native(y, w, lab, "sort")
    # Handle values: means A(s, t) with the last node augmented by the absorbed leaves.
    ar = torch.arange(k, device=dev)
    is_last = (ar.unsqueeze(0) == (kr - 1).unsqueeze(-1)).to(z.dtype)  # (B, K) over t
    num = p[:, None, 1:] - p[:, :k, None] + (is_last * sa).unsqueeze(1)  # [b, s, t]
    den = q[:, None, 1:] - q[:, :k, None] + (is_last * wa).unsqueeze(1)
    ok = (ar[:, None] <= ar[None, :]) & (ar[None, :] < kr[:, None, None])
    mst = torch.where(ok, num / torch.where(ok, den, 1.0), neg_inf)
    rmax = mst.flip(-1).cummax(-1).values.flip(-1)  # [b, s, i] = max_{t >= i} A(s, t)
    sle = ar[:, None] <= ar[None, :]  # s <= i
    xh = torch.where(sle, rmax, inf).amin(1)  # (B, K)
    # Blocks of the handle: a new block where the value steps down.
    step = torch.ones_like(valid)
    step[:, 1:] = xh[:, :-1] > xh[:, 1:]
    first = torch.cummax(torch.where(step, ar, 0), -1).values
    toph = labc.gather(-1, first)
    t_last = toph.gather(-1, (kr - 1).clamp_min(0).unsqueeze(-1))
    absorbed = zl > v
    x = torch.where(absorbed, v, z)
    top = torch.where(absorbed, t_last, torch.arange(c, device=dev))
    col = torch.where(valid, lab, c)
    xpad = torch.cat([x, zero], -1).scatter(-1, col, xh)
    tpad = torch.cat([top, torch.zeros_like(top[:, :1])], -1).scatter(-1, col, toph)
    return (xpad[:, :c] + sh).contiguous(), tpad[:, :c].contiguous()


def _broom_host(y: Tensor, w: Tensor | None, lab: Tensor) -> tuple[Tensor, Tensor]:
    """The Numba kernel on host copies (none for contiguous CPU float32/float64 tensors)."""
    from ._broom import broom_rows_blocks

    yc = y.detach().to("cpu").contiguous()
    wc = (torch.empty((0, y.shape[1]), dtype=y.dtype) if w is None
          else w.detach().to("cpu", y.dtype).contiguous())
    labc = lab.detach().to("cpu", torch.int64).contiguous()
    x = torch.empty_like(yc)
    _, top = broom_rows_blocks(yc.numpy(), wc.numpy(), labc.numpy(), out=x.numpy(),
                               check_finite=True)
    return x.to(y.device), torch.from_numpy(top).to(y.device)


@torch.library.custom_op("treeiso::broom", mutates_args=())
def _broom_op(y: Tensor, w: Tensor | None, labels: Tensor, native: bool
              ) -> tuple[Tensor, Tensor]:
    native = native or y.device.type != "cpu"
    if native:
        _check_finite(y, "values")  # the host kernel checks in its own pass
    _check_weights(w)
    c = y.shape[-1]
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < -1 or hi >= c:
            bad = lo if lo < -1 else hi
            raise ValueError(
                f"labels must be class indices in [0, {c}) or -1 (padding), got {bad}")
    if y.numel() == 0:
        return y.clone(), torch.zeros(y.shape, dtype=torch.int64, device=y.device)
    labels = _compact_labels(labels)
    if native:
        return _broom_native(y, w, labels)
    return _broom_host(y, w, labels)


# ----------------------------------------------------------------------------- any tree
@torch.library.custom_op("treeiso::tree", mutates_args=())
def _tree_op(y: Tensor, w: Tensor | None, order: Tensor, parent_pos: Tensor, method: str
             ) -> tuple[Tensor, Tensor]:
    """IRT-BIN on host copies. ``order``/``parent_pos``: the tree's (``Tree.order``,
    ``Tree.parent_pos``, CPU tensors), so no ``Tree`` is rebuilt (nor re-checked) per call;
    ``method``: a key of ``treeiso._api._IRT_KERNELS``."""
    import importlib

    from ._api import _IRT_KERNELS

    _check_finite(y, "values")
    _check_weights(w)
    y64 = _to_np64(y)
    w64 = np.empty((0, y64.shape[1])) if w is None else _to_np64(w)
    x = np.empty_like(y64)
    top = np.empty(y64.shape, dtype=np.int64)
    if y64.size:
        module, name = _IRT_KERNELS[method]
        kernel = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        kernel(y64, w64, order.cpu().numpy(), parent_pos.cpu().numpy(), x, top, True)
    return (torch.from_numpy(x).to(y.device, y.dtype),
            torch.from_numpy(top).to(y.device))


# ----------------------------------------------------------------------------- fake + grad
def _fake(y, w, *args):
    return torch.empty_like(y), torch.empty(y.shape, dtype=torch.int64, device=y.device)


def _setup_context(ctx, inputs, output):
    y, w = inputs[0], inputs[1]
    x, top = output
    ctx.has_w = w is not None
    ctx.n_rest = len(inputs) - 2  # the inputs after y and w get no gradient
    ctx.save_for_backward(y, w, x, top)


def _backward(ctx, gx, gtop):
    y, w, x, top = ctx.saved_tensors
    r = _block_vjp(top, gx, w)
    gy = r if w is None else w * r
    gw = None
    if ctx.has_w:
        gw = (y - x) * r
        if w.shape[0] != gw.shape[0]:  # one row of weights shared by every row
            gw = gw.sum(0, keepdim=True)
    return (gy, gw) + (None,) * ctx.n_rest


for _op in (_chain_op, _broom_op, _tree_op):
    _op.register_fake(_fake)
    _op.register_autograd(_backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------- front ends
def _prepare(values: Tensor, weights, what_n: int | None = None):
    """values -> (rows (B, n) in a float dtype, weights (B, n), (1, n) when one row is shared
    by every row, or None, out dtype)."""
    if values.is_complex():
        raise TypeError(f"values must be real, got complex dtype {values.dtype}")
    if values.dtype == torch.bool:
        raise TypeError("values must be numeric, got dtype torch.bool")
    if values.ndim == 0:
        raise ValueError("values must have at least one dimension, got a scalar")
    out_dtype = values.dtype if values.is_floating_point() else torch.float64
    work = _work_dtype(out_dtype)
    y = values.to(work)
    w = None
    if weights is not None:
        if not isinstance(weights, Tensor):
            raise TypeError(
                f"values is a torch.Tensor but weights is {type(weights).__name__}: "
                "pass both as tensors")
        if weights.device != values.device:
            raise ValueError(
                f"weights are on {weights.device} but values on {values.device}")
        if weights.is_complex() or weights.dtype == torch.bool:
            raise TypeError(f"weights must be real numbers, got dtype {weights.dtype}")
        try:
            w = torch.broadcast_to(weights.to(work), values.shape)
        except RuntimeError:
            raise ValueError(f"weights of shape {tuple(weights.shape)} do not broadcast "
                             f"to values of shape {tuple(values.shape)}") from None
    n = values.shape[-1]
    n_rows = 1
    for d in values.shape[:-1]:
        n_rows *= d
    y2 = y.reshape(n_rows, n).contiguous()
    w2 = None
    if w is not None:
        if all(d == 1 for d in weights.shape[:-1]):  # one row for all: (1, n), no (B, n) copy
            w2 = w[(0,) * (values.ndim - 1)].unsqueeze(0).contiguous()
        else:
            w2 = w.reshape(n_rows, n).contiguous()
    return y2, w2, out_dtype


def fit_torch(values: Tensor, tree, weights=None, *, orientation="root_largest",
              method="auto", return_blocks=False):
    """Torch implementation of :func:`treeiso.fit` (see there).

    Chains, stars and brooms run on the tensor's device; other trees (and ``method='irt*'``)
    run the CPU kernel, so CUDA tensors are copied to the host and back. Differentiable in
    ``values`` and ``weights`` (the VJP averages over the blocks, SPEC 5).
    """
    from ._api import FitResult, _check_method_fits
    from ._tree import as_tree

    check_orientation(orientation)
    tree = as_tree(tree)
    if values.ndim and values.shape[-1] != tree.n:
        raise ValueError(f"values has {values.shape[-1]} entries in its last axis but the "
                         f"tree has {tree.n} nodes")
    y2, w2, out_dtype = _prepare(values, weights)
    _check_method_fits(method, tree)
    sign = 1.0 if orientation == "root_largest" else -1.0
    ys = y2 if sign > 0 else -y2
    kind = tree.kind
    native = values.device.type != "cpu"
    if method in ("auto", "pav", "star", "broom") and kind == "chain" and tree.n:
        order = torch.as_tensor(np.asarray(tree.handle, dtype=np.int64))
        x, top = _chain_op(ys, w2, order, native)
    elif method in ("auto", "star", "broom") and kind in ("star", "broom"):
        lab = torch.as_tensor(np.asarray(tree.handle, dtype=np.int64), device=values.device)
        x, top = _broom_op(ys, w2, lab.expand(ys.shape[0], -1).contiguous(), native)
    else:
        from ._api import _IRT_KERNELS, DEFAULT_HEAP, resolve_method

        kernel = resolve_method(method, tree)
        if kernel not in _IRT_KERNELS:  # an empty chain: any kernel does
            kernel = DEFAULT_HEAP
        order = torch.from_numpy(np.array(tree.order))  # host tensors: the kernel runs there
        parent_pos = torch.from_numpy(np.array(tree.parent_pos))
        x, top = _tree_op(ys, w2, order, parent_pos, kernel)
    if sign < 0:
        x = -x
    x = x.reshape(values.shape).to(out_dtype)
    if return_blocks:
        return FitResult(x, top.reshape(values.shape))
    return x


def _compact_labels(lab: Tensor) -> Tensor:
    """Drop -1 padding and repeats (first position wins), keep order, pad at the end."""
    k = lab.shape[-1]
    if k == 0:
        return lab
    ar = torch.arange(k, device=lab.device)
    earlier = ar[None, :] < ar[:, None]  # [i, j]: j before i
    dup = ((lab.unsqueeze(-1) == lab.unsqueeze(-2)) & earlier).any(-1)
    keep = (lab >= 0) & ~dup
    pos = torch.where(keep, keep.long().cumsum(-1) - 1, k)
    out = torch.full(lab.shape[:-1] + (k + 1,), -1, dtype=lab.dtype, device=lab.device)
    out = out.scatter(-1, pos, torch.where(keep, lab, -1))
    return out[..., :k]


def fit_topk_torch(values: Tensor, labels, weights=None, *, orientation="root_largest"
                   ) -> Tensor:
    """Torch implementation of :func:`treeiso.fit_topk` (see there)."""
    check_orientation(orientation)
    if not isinstance(labels, Tensor):
        raise TypeError(f"values is a torch.Tensor but labels is {type(labels).__name__}: "
                        "pass both as tensors")
    if labels.device != values.device:
        raise ValueError(f"labels are on {labels.device} but values on {values.device}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    if values.ndim == 0:
        raise ValueError("values must have at least one dimension, got a scalar")
    if labels.ndim == 0:
        labels = labels.reshape(1)
    lead = values.shape[:-1]
    try:
        lab = torch.broadcast_to(labels.long(), lead + labels.shape[-1:])
    except RuntimeError:
        raise ValueError(f"labels of shape {tuple(labels.shape)} do not fit values of shape "
                         f"{tuple(values.shape)}: expected (..., k) with ... = "
                         f"{tuple(lead)}") from None
    y2, w2, out_dtype = _prepare(values, weights)
    lab2 = lab.reshape(y2.shape[0], lab.shape[-1]).contiguous()
    if orientation == "root_smallest":  # every constraint reversed: fit -y, negate
        x, _ = _broom_op(-y2, w2, lab2, values.device.type != "cpu")
        x = -x
    else:
        x, _ = _broom_op(y2, w2, lab2, values.device.type != "cpu")
    return x.reshape(values.shape).to(out_dtype)
