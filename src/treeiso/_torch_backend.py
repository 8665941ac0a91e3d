"""The torch backend: tree isotonic regression as differentiable ``torch.library`` ops.

The kernel is resolved by :func:`treeiso._dispatch.resolve` before this module is called;
:func:`fit_torch` runs it through one of three custom ops, each returning the fit ``x`` and
its ``blocks`` (``blocks[b, i]`` is the root-most node of the block holding ``i``), all with
the same autograd formula:

- ``treeiso::chain``: rows already in chain order, ``x0 >= x1 >= ...``. CPU tensors run the
  Numba PAV kernel; other devices run :func:`_chain_native`, batched rounds of pooling all
  adjacent violators at once (torch ops only).
- ``treeiso::broom``: one broom per row, given by its handle (labels). CPU tensors run the Numba
  kernel of :mod:`treeiso._broom`; other devices run :func:`_broom_native` (torch ops only).
- ``treeiso::tree``: any tree, on the CPU kernels (IRT-BIN); tensors on other devices are
  copied to the host and back.

Validation that needs the data (NaN, weights > 0, label range) runs inside the ops, on real
tensors, so that ``torch.compile`` traces the callers without graph breaks; ``check=False``
skips it (and the host synchronisation it costs on CUDA). The host paths split rows over
``threads`` threads (:mod:`treeiso._numba_backend`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ._result import FitResult
from ._validation import bounds_in_range, check_axis, check_ndim, move_weights

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
def _host_abs_max(t: Tensor) -> float | None:
    """max|t| of a CPU float32/float64 tensor in one compiled pass over its memory (no
    temporaries, no intra-op threads; NaN or inf when an entry is), else None."""
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64):
        from ._finite import abs_max

        return abs_max(t.detach().contiguous().reshape(-1).numpy())
    return None


def _finite_abs_max(t: Tensor, what: str) -> float | None:
    """Raise ValueError on NaN or inf in ``t``. Returns max|t| when the scan computed it (CPU
    float tensors), for the range scaling (:func:`_range_exponents`) to reuse, else None."""
    if not t.numel():
        return None
    amax = _host_abs_max(t)
    if amax is not None:
        if math.isfinite(amax):
            return amax
    # A finite sum means every entry is finite (NaN and inf propagate); only when the sum is
    # not finite (perhaps an overflow) look entry by entry.
    elif bool(torch.isfinite(t.sum())):
        return None
    if not bool(torch.isfinite(t).all()):
        kind = "a NaN" if bool(torch.isnan(t).any()) else "an infinite"
        raise ValueError(f"{what} contains {kind} value")


def _check_weights(w: Tensor | None) -> None:
    if w is None:
        return
    _finite_abs_max(w, "weights")
    if w.numel() and not bool(w.amin() > 0):
        raise ValueError("weights must be > 0")


def _range_exponents(y: Tensor, w: Tensor | None, amax: float | None = None
                     ) -> tuple[int, int]:
    """Exponents (ey, ew) to divide y and w by 2**e, 0 in the safe range of y's dtype (see
    :mod:`treeiso._scaling`; finite inputs): max|y| (``amax`` if the caller's finiteness scan
    computed it) and the weights' total."""
    from ._scaling import exponent_of, safe_exponent

    hi = safe_exponent(math.frexp(torch.finfo(y.dtype).max)[1])
    ey = ew = 0
    if y.numel():
        # On the host, one compiled pass (a tenth of aminmax + abs + max + sync on small
        # tensors, a third on 4096 x 1000); on other devices, torch ops.
        a = amax if amax is not None else _host_abs_max(y)
        if a is None:
            lo_, hi_ = torch.aminmax(y)
            a = float(torch.maximum(lo_.abs(), hi_.abs()))
        if math.isfinite(a) and not (a == 0.0 or 2.0**-hi <= a <= 2.0**hi):
            ey = exponent_of(a)
    if w is not None and w.numel():
        fi = torch.finfo(w.dtype)  # float64 on the host (as NumPy), the work dtype on devices
        hi = safe_exponent(math.frexp(fi.max)[1])
        t = float(w.sum())
        if not 2.0**-hi <= t <= 2.0**hi:
            ew = (exponent_of(float(w.max())) + max(w.numel() - 1, 1).bit_length()
                  if math.isinf(t) else exponent_of(t))
            small = float(w.min())
            if ew > 0 and math.ldexp(small, -ew) < fi.tiny * fi.eps * 2.0**30:
                raise ValueError(
                    f"weights span too wide a range for {w.dtype}: the smallest, {small!r}, "
                    "underflows once their total is scaled into range (rescale the weights)")
    return ey, ew


def _scaled(impl, y: Tensor, w: Tensor | None, *args, amax: float | None = None
            ) -> tuple[Tensor, Tensor]:
    """``impl(y, w, *args)`` on data divided by powers of two when it is near the float limits
    (overflow-free kernels; the fit is equivariant: x(a y, b w) = a x(y, w)).
    ``amax``: max|y| when already known (see :func:`_finite_abs_max`)."""
    ey, ew = _range_exponents(y, w, amax)
    if ey == 0 and ew == 0:
        return impl(y, w, *args)

    def p2(t, e):  # t * 2**e, exactly: two factors, as 2**e itself may not be a float
        h = e // 2
        return t * math.ldexp(1.0, h) * math.ldexp(1.0, e - h)

    x, top = impl(p2(y, -ey), None if w is None else p2(w, -ew), *args)
    return p2(x, ey), top


def _work_weights(w: Tensor | None, y: Tensor, native: bool) -> Tensor | None:
    """Weights come in float64 (as NumPy's): the host kernels read them so; the native
    paths compute in the values' work dtype, so they get them cast to it."""
    if w is None or not (native or y.device.type != "cpu"):
        return w
    return w.to(y.dtype)


def _to_np64(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float64).numpy())


def _block_vjp(blocks: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
    """Per element, G_B / W_B of its block B: sums over ``blocks`` then gathered."""
    gsum = torch.zeros_like(g).scatter_add_(-1, blocks, g)
    wfull = torch.ones_like(g) if w is None else w.expand_as(g)  # w may be one shared row
    wsum = torch.zeros_like(g).scatter_add_(-1, blocks, wfull)
    return gsum.gather(-1, blocks) / wsum.gather(-1, blocks)


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


def _chain_host(y: Tensor, w: Tensor | None, order: Tensor | None = None, threads: int = 1
                ) -> tuple[Tensor, Tensor]:
    """The Numba PAV kernel on host copies (none for contiguous CPU float32/float64: the
    kernel reads float32 rows as they are and pools in float64)."""
    from ._numba_backend import run_kernel

    work = y.dtype if y.dtype in (torch.float32, torch.float64) else torch.float64
    yc = y.detach().to("cpu", work).contiguous()
    wc = (torch.empty((0, y.shape[1]), dtype=torch.float64) if w is None
          else w.detach().to("cpu", torch.float64).contiguous())
    chain = (np.arange(yc.shape[1], dtype=np.int64) if order is None
             else np.ascontiguousarray(order.detach().cpu().numpy(), dtype=np.int64))
    x = torch.empty_like(yc)
    blocks = torch.empty(yc.shape, dtype=torch.int64)
    if yc.numel():
        run_kernel("pav", yc.numpy(), wc.numpy(), (chain,), x.numpy(), blocks.numpy(),
                   threads)
    return x.to(y.device, y.dtype), blocks.to(y.device)


@torch.library.custom_op("treeiso::chain", mutates_args=())
def _chain_op(y: Tensor, w: Tensor | None, order: Tensor, native: bool, threads: int = 0,
              check: bool = True) -> tuple[Tensor, Tensor]:
    """``x[order[0]] >= x[order[1]] >= ...`` per row; ``blocks`` holds node ids."""
    amax = None
    if check:
        amax = _finite_abs_max(y, "values")  # max|y| too, for the scaling
        _check_weights(w)
    return _scaled(_chain_impl, y, _work_weights(w, y, native), order, native, threads,
                   amax=amax)


def _chain_impl(y: Tensor, w: Tensor | None, order: Tensor, native: bool, threads: int
                ) -> tuple[Tensor, Tensor]:
    if y.shape[-1] == 0:
        return y.clone(), torch.empty(y.shape, dtype=torch.int64, device=y.device)
    if not (native or y.device.type != "cpu"):
        return _chain_host(y, w, order, _threads(threads, y))
    order = order.to(y.device)
    xo, to = _chain_native(y[:, order].contiguous(),
                           None if w is None else w[:, order].contiguous())
    x = torch.empty_like(y)
    blocks = torch.empty(y.shape, dtype=torch.int64, device=y.device)
    x[:, order] = xo
    blocks[:, order] = order[to]
    return x, blocks


# ----------------------------------------------------------------------------- broom
def _broom_native(y: Tensor, w: Tensor | None, lab: Tensor, strategy: str | None = None
                  ) -> tuple[Tensor, Tensor]:
    """Broom fit of every row with torch ops only (via the fixed point of _broom).

    ``lab`` (B, K) int64: handles, deduplicated, ``-1`` padding at the end of each row.
    Iterates ``A = {z > v}`` (leaves above the last block's value) and ``v`` = last value of
    the handle's PAV with the last node augmented by ``A`` (the minimum over ``s`` of the
    augmented suffix means); from below, ``v`` rises, ``A`` shrinks and the fixed point is
    exact. Then the handle's values by the min-max formula x_i = min_{s<=i} max_{t>=i} A(s, t).

    ``strategy="sort"`` finds the same ``v`` as the star lemma writes it: one sort of the leaves,
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
    # Segment sums P[b, s, t] = sum_{s <= i <= t} (w z)_i, Q likewise for w, each summed from
    # s on: differences of prefix sums cancel (a weight 1 after 1e16 vanished, 0/0).
    ar = torch.arange(k, device=dev)
    upper = (ar[:, None] <= ar[None, :]).to(z.dtype)  # [s, t]: t >= s
    pst = ((whh * zh).unsqueeze(1) * upper).cumsum(-1)  # (B, K, K)
    qst = (whh.unsqueeze(1) * upper).cumsum(-1)
    lastk = (kr - 1).clamp_min(0).view(n_rows, 1, 1).expand(n_rows, k, 1)
    cs = pst.gather(-1, lastk).squeeze(-1)  # sums from s to the last handle node
    ws = qst.gather(-1, lastk).squeeze(-1)
    smask = torch.arange(k, device=dev) < kr.unsqueeze(-1)
    inf = torch.tensor(float("inf"), dtype=z.dtype, device=dev)

    def last_value(sa, wa):
        return torch.where(smask, (cs + sa) / (ws + wa), inf).amin(-1, keepdim=True)

    # Rounding bound of a computed mean (O(k) serial and O(log c) reduced terms), in units of
    # eps max|z| over the row.
    amax = z.abs().amax(-1, keepdim=True)  # (faster than aminmax or an inf-norm on CPU)
    d = (2 * (k + (c + 1).bit_length()) + 8) * torch.finfo(z.dtype).eps * amax
    near = None
    if strategy == "sort":
        zs, idx = torch.sort(zl, -1, descending=True)
        wz2 = torch.stack([wzl, wl], -1)
        pre = torch.cat([torch.zeros_like(wz2[:, :1]),
                         wz2.gather(1, idx.unsqueeze(-1).expand(-1, -1, 2)).cumsum(1)], 1)
        num = cs.unsqueeze(-1) + pre[:, None, :, 0]  # [b, s, k]
        den = ws.unsqueeze(-1) + pre[:, None, :, 1]
        m_s = (num / den).amax(-1)
        v = torch.where(smask, m_s, inf).amin(-1, keepdim=True)
        # The min-max value is within rounding of the root whatever the weights; absorb every
        # leaf down to the bound d below it. Not the strict {z > v}: a heavy leaf may sit on
        # the rounded v and belong; leaves within d of v move the value by <= d.
        n_abs = (zs >= v - d).sum(-1, keepdim=True)
        sums = pre.gather(1, n_abs.unsqueeze(-1).expand(-1, -1, 2)).squeeze(1)
        sa, wa = sums[:, :1], sums[:, 1:]
        v = last_value(sa, wa)
    else:
        # Fixed point from below, keeping every leaf down to a rounding bound d below v: a
        # superset of the exact set (a strict z > v dropped heavy leaves whose value the
        # rounded mean reproduces). d bounds the error of a mean (above).
        zcol = torch.zeros_like(sh)
        v = last_value(zcol, zcol)
        a = zl >= v - d  # -inf on the handle: never in
        for _ in range(_BROOM_ROUNDS):
            af = a.to(z.dtype)  # as 0/1 (no matmul: TF32 would round)
            sa = (af * wzl).sum(-1, keepdim=True)
            wa = (af * wl).sum(-1, keepdim=True)
            vn = last_value(sa, wa)
            if torch.equal(vn, v):  # a was made from this very v: it would not change
                break
            v = vn
            a = zl >= v - d  # still a superset of the exact set (the bound d, by induction)
        else:  # adversarial data only (tests force it with _BROOM_ROUNDS = 0)
            return _broom_native(y, w, lab, "sort")
        # Exact unless leaves of the set lie within d of v, where no comparison with the rounded
        # v decides them. Wrongly kept, they moved v by at most W_amb / (W - W_amb) * d (W: the
        # last block's weight): rounding-sized unless they carry half of W, as a heavy leaf
        # that pulls v onto itself does. Those rows take the sort strategy.
        # Cheaply first (two passes over the rows, not four): the ambiguous weight can only be
        # positive in a row where the smallest leaf of the set is within d of v.
        if bool((torch.where(a, zl, inf).amin(-1, keepdim=True) <= v + d).any()):
            w_amb = torch.where(a & (zl <= v + d), wl, 0.0).sum(-1, keepdim=True)
            near = (w_amb > 0.5 * (wa + wt.gather(-1, last))).squeeze(-1)
    # Handle values: means A(s, t) with the last node augmented by the absorbed leaves.
    is_last = (ar.unsqueeze(0) == (kr - 1).unsqueeze(-1)).to(z.dtype)  # (B, K) over t
    num = pst + (is_last * sa).unsqueeze(1)  # [b, s, t]
    den = qst + (is_last * wa).unsqueeze(1)
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
    absorbed = zl >= v - d  # within rounding of v: in the block, at v (see _broom)
    x = torch.where(absorbed, v, z)
    top = torch.where(absorbed, t_last, torch.arange(c, device=dev))
    col = torch.where(valid, lab, c)
    xpad = torch.cat([x, zero], -1).scatter(-1, col, xh)
    tpad = torch.cat([top, torch.zeros_like(top[:, :1])], -1).scatter(-1, col, toph)
    x, top = (xpad[:, :c] + sh).contiguous(), tpad[:, :c].contiguous()
    if near is not None and bool(near.any()):
        rows = near.nonzero().squeeze(-1)
        wr = None if w is None else (w if w.shape[0] == 1 else w[rows])
        x[rows], top[rows] = _broom_native(y[rows], wr, lab[rows], "sort")
    return x, top


def _broom_host(y: Tensor, w: Tensor | None, lab: Tensor, threads: int = 1, check: bool = True
                ) -> tuple[Tensor, Tensor]:
    """The Numba kernel on host copies (none for contiguous CPU float32/float64 tensors)."""
    from ._numba_backend import run_kernel

    work = y.dtype if y.dtype in (torch.float32, torch.float64) else torch.float64
    yc = y.detach().to("cpu", work).contiguous()
    wc = (torch.empty((0, y.shape[1]), dtype=torch.float64) if w is None
          else w.detach().to("cpu", torch.float64).contiguous())
    labc = lab.detach().to("cpu", torch.int64).contiguous()
    x = torch.empty_like(yc)
    blocks = torch.empty(yc.shape, dtype=torch.int64)
    finite = run_kernel("broom", yc.numpy(), wc.numpy(), (labc.numpy(),), x.numpy(),
                        blocks.numpy(), threads)
    if check and not all(finite):
        kind = "a NaN" if bool(torch.isnan(yc).any()) else "an infinite"
        raise ValueError(f"values contains {kind} value")
    return x.to(y.device, y.dtype), blocks.to(y.device)


@torch.library.custom_op("treeiso::broom", mutates_args=())
def _broom_op(y: Tensor, w: Tensor | None, labels: Tensor, native: bool, threads: int = 0,
              check: bool = True) -> tuple[Tensor, Tensor]:
    native = native or y.device.type != "cpu"
    c = y.shape[-1]
    amax = None
    if check:
        if native:
            amax = _finite_abs_max(y, "values")  # the host kernel checks in its own pass
        _check_weights(w)
    if labels.numel():
        # The label range is checked even with check=False: the kernels index rows by label.
        # On the host that costs no synchronisation; on a device, check there (asynchronous:
        # a bad label fails the stream instead of reading or writing outside a row).
        if not native or check or y.device.type == "cpu":
            lo, hi = int(labels.min()), int(labels.max())
            if lo < -1 or hi >= c:
                bad = lo if lo < -1 else hi
                raise ValueError(
                    f"labels must be class indices in [0, {c}) or -1 (padding), got {bad}")
        else:
            torch._assert_async(((labels >= -1) & (labels < c)).all(),
                                f"treeiso: labels must be class indices in [0, {c}) or -1")
    if y.numel() == 0:
        return y.clone(), torch.zeros(y.shape, dtype=torch.int64, device=y.device)
    labels = _compact_labels(labels)
    if native:
        return _scaled(_broom_native, y, _work_weights(w, y, True), labels, amax=amax)
    return _scaled(_broom_host, y, w, labels, _threads(threads, y), check)


# ----------------------------------------------------------------------------- any tree
@torch.library.custom_op("treeiso::tree", mutates_args=())
def _tree_op(y: Tensor, w: Tensor | None, order: Tensor, parent_pos: Tensor, kernel: str,
             threads: int = 0, check: bool = True) -> tuple[Tensor, Tensor]:
    """IRT-BIN on host copies. ``order``/``parent_pos``: the tree's (``Tree.order``,
    ``Tree.parent_pos``, CPU tensors), so no ``Tree`` is rebuilt (nor re-checked) per call;
    ``kernel``: an IRT-BIN kernel name of :data:`treeiso._dispatch.KERNELS`."""
    amax = None
    if check:
        amax = _finite_abs_max(y, "values")  # max|y| too, for the scaling
        _check_weights(w)
    return _scaled(_tree_impl, y, w, order, parent_pos, kernel, threads, amax=amax)


def _tree_impl(y: Tensor, w: Tensor | None, order: Tensor, parent_pos: Tensor, kernel: str,
               threads: int) -> tuple[Tensor, Tensor]:
    from ._numba_backend import run_kernel

    y64 = _to_np64(y)
    w64 = np.empty((0, y64.shape[1])) if w is None else _to_np64(w)
    x = np.empty_like(y64)
    blocks = np.empty(y64.shape, dtype=np.int64)
    if y64.size:
        run_kernel(kernel, y64, w64, (order.cpu().numpy(), parent_pos.cpu().numpy()), x,
                   blocks, _threads(threads, y))
    return (torch.from_numpy(x).to(y.device, y.dtype),
            torch.from_numpy(blocks).to(y.device))


# ----------------------------------------------------------------------------- fake + grad
def _fake(y, w, *args):
    return torch.empty_like(y), torch.empty(y.shape, dtype=torch.int64, device=y.device)


def _setup_context(ctx, inputs, output):
    y, w = inputs[0], inputs[1]
    x, blocks = output
    ctx.has_w = w is not None
    ctx.n_rest = len(inputs) - 2  # the inputs after y and w get no gradient
    ctx.save_for_backward(y, w, x, blocks)


def _backward(ctx, gx, gblocks):
    y, w, x, blocks = ctx.saved_tensors
    wg = None if w is None else w.to(gx.dtype)  # weights come in float64
    r = _block_vjp(blocks, gx, wg)
    gy = r if w is None else wg * r
    gw = None
    if ctx.has_w:
        gw = (y - x) * r
        if w.shape[0] != gw.shape[0]:  # one row of weights shared by every row
            gw = gw.sum(0, keepdim=True)
        gw = gw.to(w.dtype)
    return (gy, gw) + (None,) * ctx.n_rest


for _op in (_chain_op, _broom_op, _tree_op):
    _op.register_fake(_fake)
    _op.register_autograd(_backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------- front ends
def _prepare(values: Tensor, weights, axis: int = -1):
    """values -> (rows (B, n) in the work dtype, weights (B, n), (1, n) when one row is
    shared by every row, or None (float64 on the host), out dtype, axis of the nodes in
    ``values``). A real number as ``weights`` is one weight for every node, as in NumPy.

    The work dtype is float32 or float64: integers give float64, and float16/bfloat16 are
    computed in float32 (the output is cast back, which autograd follows)."""
    if values.is_complex():
        raise TypeError(f"values must be real, got complex dtype {values.dtype}")
    check_ndim(values.shape)
    ax = check_axis(axis, values.ndim)
    out_dtype = values.dtype if values.is_floating_point() else torch.float64  # as NumPy
    work = out_dtype if out_dtype in (torch.float32, torch.float64) else torch.float32
    weights = weight_tensor(weights, values)
    if weights is not None:
        weights = move_weights(weights, values.shape, ax)
    values = values.movedim(ax, -1)
    n = values.shape[-1]
    n_rows = 1
    for d in values.shape[:-1]:
        n_rows *= d
    y2 = values.to(work).reshape(n_rows, n).contiguous()
    w2 = None
    if weights is not None:
        # On the host in float64, as NumPy's (the host kernels read them so); on devices,
        # where the native paths compute in the work dtype (MPS has no float64), in that.
        w = weights.to(torch.float64 if values.device.type == "cpu" else work)
        if all(d == 1 for d in w.shape[:-1]):  # one row for all: (1, n), no (B, n) copy
            w2 = w.reshape(1, w.shape[-1]).expand(1, n).contiguous()
        else:
            w2 = torch.broadcast_to(w, values.shape).reshape(n_rows, n).contiguous()
    return y2, w2, out_dtype, ax


def weight_tensor(weights, values: Tensor) -> Tensor | None:
    """``weights`` for tensor ``values``: None, a tensor on their device with real entries, or
    a real number as a 0-d float64 tensor (one weight for all, as NumPy accepts)."""
    if weights is None:
        return None
    if _is_real_scalar(weights):
        weights = torch.tensor(float(weights), dtype=torch.float64, device=values.device)
    if not isinstance(weights, Tensor):
        raise TypeError(
            f"values is a torch.Tensor but weights is {type(weights).__name__}: "
            "pass both as tensors")
    if weights.device != values.device:
        raise ValueError(
            f"weights are on {weights.device} but values on {values.device}")
    if weights.is_complex() or weights.dtype == torch.bool:
        raise TypeError(f"weights must be real numbers, got dtype {weights.dtype}")
    return weights


def _is_real_scalar(obj) -> bool:
    return (isinstance(obj, (int, float, np.integer, np.floating))
            and not isinstance(obj, (bool, np.bool_)))


def _threads(threads: int, y: Tensor) -> int:
    """Host threads for the rows of ``y``; ``threads=0`` (the ops' encoding of None): torch's
    thread count, limited by the work (see :func:`treeiso._numba_backend.n_threads`)."""
    from ._numba_backend import n_threads

    return n_threads(threads or None, y.shape[0], y.shape[1])


def _op_threads(threads) -> int:
    """The ops' encoding of ``threads``: 0 for None (resolved in the op: torch.compile traces
    no thread count), else at most :data:`treeiso._numba_backend.MAX_THREADS` (an int64)."""
    from ._numba_backend import MAX_THREADS

    return 0 if threads is None else min(int(threads), MAX_THREADS)


def _finish(x: Tensor, shape, out_dtype, ax: int, bounds, sign: float) -> Tensor:
    """Undo the orientation's sign, clip to the bounds, restore shape, dtype and axis."""
    if sign < 0:
        x = -x
    bounds = bounds_in_range(bounds, torch.finfo(out_dtype).max, out_dtype)
    if bounds != (None, None):
        x = torch.clamp(x, min=bounds[0], max=bounds[1])
    return x.reshape(shape).to(out_dtype).movedim(-1, ax)


def fit_torch(values: Tensor, tree, weights, kernel: str, *, orientation="root_largest",
              bounds=(None, None), return_blocks=False, axis=-1, threads=None,
              check_finite=True):
    """Torch implementation of :func:`treeiso.fit` (see there): runs ``kernel``, resolved
    by :func:`treeiso._dispatch.resolve` for ``tree``.

    Chains, stars and brooms run on the tensor's device; other trees (and ``method='irt*'``)
    run the CPU kernel, so CUDA tensors are copied to the host and back. Differentiable in
    ``values`` and ``weights`` (the VJP averages over the blocks).
    """
    y2, w2, out_dtype, ax = _prepare(values, weights, axis)
    if y2.shape[-1] != tree.n:
        raise ValueError(f"values has {y2.shape[-1]} entries along axis {axis} but the "
                         f"tree has {tree.n} nodes")
    sign = 1.0 if orientation == "root_largest" else -1.0
    ys = y2 if sign > 0 else -y2
    native = values.device.type != "cpu"
    nt = _op_threads(threads)
    if kernel == "pav":
        order = torch.as_tensor(np.asarray(tree.handle, dtype=np.int64))
        x, blocks = _chain_op(ys, w2, order, native, nt, check_finite)
    elif kernel == "broom":
        lab = torch.as_tensor(np.asarray(tree.handle, dtype=np.int64), device=values.device)
        x, blocks = _broom_op(ys, w2, lab.expand(ys.shape[0], -1).contiguous(), native, nt,
                              check_finite)
    else:
        order = torch.from_numpy(np.array(tree.order))  # host tensors: the kernel runs there
        parent_pos = torch.from_numpy(np.array(tree.parent_pos))
        x, blocks = _tree_op(ys, w2, order, parent_pos, kernel, nt, check_finite)
    shape = values.movedim(ax, -1).shape
    x = _finish(x, shape, out_dtype, ax, bounds, sign)
    if return_blocks:
        return FitResult(x, blocks.reshape(shape).movedim(-1, ax))
    return x


@torch.compiler.disable
def _build_tree(parent):
    """``Tree(parent)`` outside torch.compile: its validation is a NumPy/Numba pass that
    dynamo cannot trace (it crashed tracing into numba). A graph break, here only."""
    from ._tree import Tree

    return Tree(parent)


def _compact_labels(lab: Tensor) -> Tensor:
    """Drop -1 padding and repeats (first position wins), keep order, pad at the end.

    O(B k) memory: a stable sort of each row puts the copies of a label side by side, the
    first occurrence first."""
    k = lab.shape[-1]
    if k == 0:
        return lab
    srt, idx = torch.sort(lab, dim=-1, stable=True)
    dup_sorted = torch.zeros_like(srt, dtype=torch.bool)
    dup_sorted[..., 1:] = srt[..., 1:] == srt[..., :-1]
    dup = torch.zeros_like(dup_sorted).scatter(-1, idx, dup_sorted)
    keep = (lab >= 0) & ~dup
    pos = torch.where(keep, keep.long().cumsum(-1) - 1, k)
    out = torch.full(lab.shape[:-1] + (k + 1,), -1, dtype=lab.dtype, device=lab.device)
    out = out.scatter(-1, pos, torch.where(keep, lab, -1))
    return out[..., :k]


def fit_topk_torch(values: Tensor, labels, weights=None, *, orientation="root_largest",
                   bounds=(None, None), axis=-1, threads=None, check_finite=True) -> Tensor:
    """Torch implementation of :func:`treeiso.fit_topk` (see there)."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"values is a torch.Tensor but labels is {type(labels).__name__}: "
                        "pass both as tensors")
    if labels.device != values.device:
        raise ValueError(f"labels are on {labels.device} but values on {values.device}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    y2, w2, out_dtype, ax = _prepare(values, weights, axis)
    shape = values.movedim(ax, -1).shape
    if labels.ndim == 0:
        labels = labels.reshape(1)
    lead = shape[:-1]
    try:
        lab = torch.broadcast_to(labels.long(), lead + labels.shape[-1:])
    except RuntimeError:
        raise ValueError(f"labels of shape {tuple(labels.shape)} do not fit values of shape "
                         f"{tuple(values.shape)}: expected (..., k) with ... = "
                         f"{tuple(lead)}") from None
    lab2 = lab.reshape(y2.shape[0], lab.shape[-1]).contiguous()
    sign = 1.0 if orientation == "root_largest" else -1.0
    ys = y2 if sign > 0 else -y2  # root_smallest: every constraint reversed, fit -y
    x, _ = _broom_op(ys, w2, lab2, values.device.type != "cpu", _op_threads(threads),
                     check_finite)
    return _finish(x, shape, out_dtype, ax, bounds, sign)
