"""Contrastive representation distillation (CRD; Tian, Krishnan & Isola, ICLR 2020).

The settings are those of RepDistiller (the CRD authors' code), used by the paper's CRD rows:

* the penultimate features ``f_s`` (student) and ``f_t`` (teacher, no gradient) go through
  trainable linear **embedding heads** and L2 normalisation to ``d = 128`` dimensions;
* two **memory banks** ``M_s, M_t`` (``N x d``, one row per training sample id) hold past
  embeddings; for sample ``i`` the positive of the student embedding ``u_i`` is ``M_t[i]`` and its
  ``K = 16384`` negatives are rows ``M_t[j]`` of other ids ``j`` drawn uniformly (with replacement);
  symmetrically the teacher embedding ``v_i`` is scored against ``M_s``;
* scores ``P = exp(<u, m> / T) / Z`` with ``T = 0.07``; ``Z`` (one per bank) is estimated once,
  from the first batch, as ``N`` times the mean score, then kept (it is a buffer, saved with the
  state);
* **NCE loss** (noise distribution uniform, ``P_n = 1/N``):
  ``-log h(P_pos) - sum_neg log(1 - h(P_neg))`` with ``h(P) = P / (P + K/N)``, averaged over the
  batch, summed over the two directions;
* after the step each used memory row becomes ``normalise(m * old + (1 - m) * new)``, ``m = 0.5``.

Two faults of the IJCAI 2021 paper's CRD code are *not* reproduced:

* the student's features keep their gradient: the contrastive term trains the student's backbone
  (the paper's code detached them, so only the embedding head learned from it);
* under Mixup/CutMix a memory row is only ever updated with an embedding of *its own* un-mixed
  sample (:meth:`CRDLoss.update` is given the embeddings of the clean batch); the paper's code
  wrote the mixed embeddings into the rows of the un-permuted ids.

**Mixed samples** (our choice): a mixed image with ids ``a`` (weight ``lam``) and
``b`` (``1 - lam``) is contrasted with ``lam``-weighted positives of both ids,
``lam (-log h(P_a)) + (1 - lam) (-log h(P_b)) - sum_neg log(1 - h(P_neg))``; negatives exclude both
ids. Without mixing (``lam = 1``) this is exactly CRD.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["Embed", "CRDLoss", "build_crd", "nce_loss", "sample_negatives", "CRD_DEFAULTS"]

#: RepDistiller's CIFAR settings (``crd_weight`` is its ``-b 0.8``).
CRD_DEFAULTS = dict(crd_weight=0.8, crd_dim=128, crd_k=16384, crd_t=0.07, crd_momentum=0.5)

_EPS = 1e-7  # as in RepDistiller's NCE criterion


class Embed(nn.Module):
    """Linear map to ``dim`` followed by L2 normalisation (CRD's embedding head)."""

    def __init__(self, dim_in: int, dim: int = 128):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim)

    def forward(self, f):
        return F.normalize(self.linear(torch.flatten(f, 1)), dim=1)


def sample_negatives(n: int, k: int, idx_a: torch.Tensor, idx_b: torch.Tensor | None = None,
                     gen: torch.Generator | None = None) -> torch.Tensor:
    """``(B, k)`` ids drawn uniformly from ``{0..n-1}`` minus ``{idx_a[i], idx_b[i]}``, with replacement.

    Exact uniform sampling without rejection: draw ``r`` in ``[0, n - c)`` (``c`` = number of
    excluded ids of the row) and shift it past the excluded ids in increasing order.

    Examples
    --------
    >>> import torch
    >>> neg = sample_negatives(4, 1000, torch.tensor([1]), torch.tensor([2]), torch.Generator().manual_seed(0))
    >>> sorted(set(neg.flatten().tolist()))
    [0, 3]
    """
    idx_a = idx_a.long().cpu()
    idx_b = idx_a if idx_b is None else idx_b.long().cpu()
    lo, hi = torch.minimum(idx_a, idx_b)[:, None], torch.maximum(idx_a, idx_b)[:, None]
    two = (lo != hi)
    c = 1 + two.long()
    if n - int(c.max()) < 1:
        raise ValueError(f"CRD needs at least 3 training samples to draw negatives, got {n}")
    u = torch.rand(len(idx_a), k, generator=gen, dtype=torch.float64)
    r = (u * (n - c)).floor().long().clamp_max(n - c - 1)
    r = r + (r >= lo).long()
    r = r + (two & (r >= hi)).long()
    return r


def nce_loss(pos: torch.Tensor, neg: torch.Tensor, n_data: int, weights: torch.Tensor | None = None):
    """NCE loss of CRD from normalised scores.

    Parameters
    ----------
    pos : (B, P) scores of the positives (``P = 1``, or 2 for a mixed sample).
    neg : (B, K) scores of the negatives.
    n_data : int
        ``N``, the number of memory rows (noise probability ``1/N``).
    weights : (B, P), optional
        Weight of each positive (``lam, 1 - lam``); default 1.

    Returns
    -------
    The batch mean of ``-sum_p w_p log h(pos_p) - sum_k log(1 - h(neg_k))``,
    ``h(x) = x / (x + K/N)``.
    """
    kpn = neg.shape[1] / float(n_data)
    log_d1 = torch.log(pos / (pos + kpn + _EPS))
    log_d0 = torch.log(kpn / (neg + kpn + _EPS))
    if weights is not None:
        log_d1 = log_d1 * weights
    return -(log_d1.sum(1) + log_d0.sum(1)).mean()


class CRDLoss(nn.Module):
    """CRD's embedding heads, memory banks and symmetric NCE loss (see the module docstring).

    Parameters
    ----------
    s_dim, t_dim : int
        Sizes of the student's and the teacher's penultimate features.
    n_data : int
        Number of training samples (memory rows); sample ids index the training split.
    dim, k, t, momentum : embedding size, negatives per sample, temperature, memory momentum.

    The memory banks and the normalisers ``Z`` are buffers, so ``state_dict`` holds everything a
    resumed run needs.
    """

    def __init__(self, s_dim: int, t_dim: int, n_data: int, dim: int = 128, k: int = 16384,
                 t: float = 0.07, momentum: float = 0.5):
        super().__init__()
        if n_data < 3:
            raise ValueError(f"CRD needs at least 3 training samples, got {n_data}")
        if not (k >= 1 and t > 0 and 0.0 <= momentum < 1.0 and dim >= 1):
            raise ValueError(f"CRD settings out of range: k={k} (>= 1), t={t} (> 0), "
                             f"momentum={momentum} (in [0, 1)), dim={dim} (>= 1)")
        self.embed_s, self.embed_t = Embed(s_dim, dim), Embed(t_dim, dim)
        self.n, self.k, self.t, self.momentum = int(n_data), int(k), float(t), float(momentum)
        stdv = 1.0 / math.sqrt(dim / 3)  # RepDistiller's initialisation of the banks
        g = torch.Generator().manual_seed(0)
        self.register_buffer("memory_s", torch.rand(n_data, dim, generator=g) * 2 * stdv - stdv)
        self.register_buffer("memory_t", torch.rand(n_data, dim, generator=g) * 2 * stdv - stdv)
        self.register_buffer("z_s", torch.tensor(-1.0, dtype=torch.float64))
        self.register_buffer("z_t", torch.tensor(-1.0, dtype=torch.float64))

    def _scores(self, anchor, memory, pos_ids, neg_ids, z):
        """exp(<anchor, memory row> / T) / Z for positives (B, P) and negatives (B, K)."""
        rows = memory[torch.cat([pos_ids, neg_ids], 1).to(memory.device)]   # (B, P+K, d)
        e = torch.exp(torch.bmm(rows.to(anchor.dtype), anchor[:, :, None])[:, :, 0] / self.t)
        if float(z) < 0:  # first batch: Z = N * mean score, then fixed
            with torch.no_grad():
                zz = e.detach().double().mean() * self.n
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    torch.distributed.all_reduce(zz)
                    zz /= torch.distributed.get_world_size()
                z.fill_(float(zz))
        e = e / float(z)
        p = pos_ids.shape[1]
        return e[:, :p], e[:, p:]

    def forward(self, f_s, f_t, idx_a, idx_b=None, lam=None, gen=None):
        """The CRD loss of a batch; returns ``(loss, (u, v))`` with the embeddings.

        ``f_s`` keeps its graph (the student learns from this term); ``f_t`` is detached. For a
        mixed batch pass the partner ids ``idx_b`` and the weights ``lam`` (B,) of ``idx_a``.
        The memory is *not* updated here: call :meth:`update` with clean-sample embeddings.
        """
        u = self.embed_s(f_s)
        v = self.embed_t(f_t.detach())
        idx_a = idx_a.long()
        mixed = idx_b is not None and lam is not None and bool((lam < 1).any())
        if mixed:
            idx_b = idx_b.long()
            pos_ids = torch.stack([idx_a, idx_b], 1)
            lam = lam.to(u.dtype).to(u.device)
            w = torch.stack([lam, 1 - lam], 1)
        else:
            pos_ids, w, idx_b = idx_a[:, None], None, None
        neg = sample_negatives(self.n, self.k, idx_a, idx_b, gen)
        pos_ids = pos_ids.cpu()
        # exp(<u, m> / 0.07) overflows float16 from a cosine of 0.78: the scores and the NCE loss
        # are computed in float32 even under autocast
        with torch.autocast(u.device.type, enabled=False):
            uf, vf = u.float(), v.float()
            w = w.float() if w is not None else None
            ps, ns = self._scores(uf, self.memory_t, pos_ids, neg, self.z_s)   # student anchored
            pt, nt = self._scores(vf, self.memory_s, pos_ids, neg, self.z_t)   # teacher anchored
            loss = nce_loss(ps, ns, self.n, w) + nce_loss(pt, nt, self.n, w)
        return loss, (u, v)

    @torch.no_grad()
    def embed(self, f_s, f_t):
        """Embeddings of (clean) features, without gradient (for :meth:`update`)."""
        return self.embed_s(f_s), self.embed_t(f_t)

    @torch.no_grad()
    def update(self, idx, u, v):
        """``M[idx] <- normalise(m M[idx] + (1 - m) new)`` for both banks.

        ``u, v`` must be embeddings of the samples ``idx`` themselves (never mixed images). Under
        ``torch.distributed`` the rows of every rank are gathered first, so all banks stay equal.
        """
        idx, u, v = idx.long().to(self.memory_s.device), u.detach(), v.detach()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            parts = []
            for x in (idx, u, v):
                got = [torch.empty_like(x) for _ in range(world)]
                torch.distributed.all_gather(got, x.contiguous())
                parts.append(torch.cat(got))
            idx, u, v = parts
        m = self.momentum
        for mem, new in ((self.memory_s, u), (self.memory_t, v)):
            rows = F.normalize(mem[idx] * m + new.to(mem.dtype) * (1 - m), dim=1)
            mem.index_copy_(0, idx, rows)


def build_crd(loss_cfg: dict, s_dim: int, t_dim: int, n_data: int) -> CRDLoss:
    """A :class:`CRDLoss` from a config's ``loss`` section (keys of :data:`CRD_DEFAULTS`), with
    ``weight`` = ``crd_weight``."""
    c = dict(CRD_DEFAULTS, **{k: v for k, v in loss_cfg.items() if k in CRD_DEFAULTS})
    crd = CRDLoss(s_dim, t_dim, n_data, int(c["crd_dim"]), int(c["crd_k"]), float(c["crd_t"]),
                  float(c["crd_momentum"]))
    crd.weight = float(c["crd_weight"])  # the training step adds weight x the CRD loss
    return crd
