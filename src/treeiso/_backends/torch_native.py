"""Tree isotonic regression with torch operations only: the paths that run on any device.

- :func:`chain_native`: rows already in chain order, ``x0 >= x1 >= ...``, by batched rounds of
  pooling every adjacent violating pair of blocks at once; rows still violating after
  ``CHAIN_ROUNDS + CHAIN_ROUNDS_PER_BIT * log2(n)`` rounds go to the host kernel.
- :func:`broom_native`: one broom per row, given by its handle (labels), by the fixed point of
  :mod:`treeiso._kernels.broom` (or one sort of the leaves).
- :func:`compact_labels`: the handles in the form both broom paths read.

They trust their input (checked rows in the work dtype, scaled into range: see
:mod:`treeiso._backends.torch_runner`).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Rounds of parallel pooling before the chain's native path hands the rows left to PAV on
# the host: CHAIN_ROUNDS + CHAIN_ROUNDS_PER_BIT * log2(n). A round costs O(n); random rows
# need about 20 (noise) to 130 (trend, n = 1e5) rounds, adversarial rows up to n.
CHAIN_ROUNDS = 64
CHAIN_ROUNDS_PER_BIT = 16
# Fixed-point rounds of the native broom before falling back to the sort.
BROOM_ROUNDS = 64
# How the native broom finds the last block's value: "fixed_point" (masked sums) or "sort".
BROOM_STRATEGY = "fixed_point"


def chain_native(y: Tensor, w: Tensor | None, host) -> tuple[Tensor, Tensor]:
    """Decreasing fit of every row of ``y`` (B, n) with torch ops only; ``w``: (B, n), (1, n)
    (one row shared by every row) or None.

    Pools every adjacent violating pair of blocks at once, in rounds; any order of pooling
    adjacent violators reaches the unique solution. Rows still violating after
    ``CHAIN_ROUNDS`` rounds go to ``host(y, w) -> (x, blocks)``, the host PAV kernel.
    """
    n_rows, n = y.shape
    sh = y.mean(-1, keepdim=True)  # centre: block sums of float32 rows stay accurate
    z = y - sh
    wz = z if w is None else w * z
    wt = torch.ones_like(z) if w is None else w.expand_as(z)
    starts = torch.ones(n_rows, n, dtype=torch.bool, device=y.device)
    for _ in range(CHAIN_ROUNDS + CHAIN_ROUNDS_PER_BIT * max(n - 1, 1).bit_length()):
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
        xh, th = host(y[rows], wh)  # positions = ids here
        x = me + sh
        top = torch.cummax(torch.where(starts, torch.arange(n, device=y.device), 0), -1).values
        x[rows] = xh
        top[rows] = th
        return x, top
    top = torch.cummax(torch.where(starts, torch.arange(n, device=y.device), 0), -1).values
    return me + sh, top



def broom_native(y: Tensor, w: Tensor | None, lab: Tensor, strategy: str | None = None
                  ) -> tuple[Tensor, Tensor]:
    """Broom fit of every row with torch ops only (via the fixed point of _broom).

    ``lab`` (B, K) int64: handles, deduplicated, ``-1`` padding at the end of each row.
    Iterates ``A = {z > v}`` (leaves above the last block's value) and ``v`` = last value of
    the handle's PAV with the last node augmented by ``A`` (the minimum over ``s`` of the
    augmented suffix means); from below, ``v`` rises, ``A`` shrinks and the fixed point is
    exact. Then the handle's values by the min-max formula x_i = min_{s<=i} max_{t>=i} A(s, t).

    ``strategy="sort"`` finds the same ``v`` as the star lemma writes it: one sort of the leaves,
    prefix sums, ``v = min_s max_k (C_s + S_k) / (W_s + L_k)``. ``BROOM_STRATEGY`` holds
    the faster of the two (benchmarks/bench_torch.py measures both).
    """
    strategy = strategy or BROOM_STRATEGY
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
        for _ in range(BROOM_ROUNDS):
            af = a.to(z.dtype)  # as 0/1 (no matmul: TF32 would round)
            sa = (af * wzl).sum(-1, keepdim=True)
            wa = (af * wl).sum(-1, keepdim=True)
            vn = last_value(sa, wa)
            if torch.equal(vn, v):  # a was made from this very v: it would not change
                break
            v = vn
            a = zl >= v - d  # still a superset of the exact set (the bound d, by induction)
        else:  # adversarial data only (tests force it with BROOM_ROUNDS = 0)
            return broom_native(y, w, lab, "sort")
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
        x[rows], top[rows] = broom_native(y[rows], wr, lab[rows], "sort")
    return x, top



def compact_labels(lab: Tensor) -> Tensor:
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

