r"""Isotonic data augmentation for knowledge distillation (Cui & Yan, IJCAI 2021), for any
PyTorch training loop.

A teacher's soft labels on a mixed sample (Mixup, CutMix, mosaics) often break the order of
the sample's hard labels: ``lam * e(a) + (1 - lam) * e(b)`` with ``lam > 1/2`` says class ``a``
comes first, then ``b``, then every other class, and the teacher disagrees. The paper repairs
the soft labels by isotonic regression onto that order (KD-i) or penalises the student for
breaking it (KD-p). This module holds the pieces:

- :func:`label_order`: the order of each sample, from ``(y_a, y_b, lam)`` or from a
  soft-target matrix as Mixup/CutMix libraries hand it out;
- :func:`isotonic_targets`: the order-restricted soft labels (Eq. 10), through
  :func:`treeiso.fit_topk`;
- :func:`order_penalty`: the hinge of Eq. 11-12;
- loss modules with one convention, ``loss(student_logits, teacher_logits, targets) ->
  (total, parts)``: :class:`KDLoss` (Eq. 2), :class:`MixedKDLoss` (KD-aug, Eq. 3),
  :class:`IsotonicKDLoss` (KD-i, Eq. 9) and :class:`OrderPenaltyKDLoss` (KD-p, Eq. 12).

``targets`` is one of: hard labels ``(B,)`` (int), a tuple ``(y_a, y_b, lam)`` of two label
vectors and the mixing weight of ``y_a`` (a float or ``(B,)``), or a soft-target matrix
``(B, C)`` whose rows are distributions. The modules keep no state between calls (nothing
to synchronise under DistributedDataParallel), run under ``torch.autocast`` (the projection
and the soft labels are computed in float32 whatever the logits' dtype) and under
``torch.compile`` (:func:`treeiso.fit_topk` is a custom op; with a soft-target matrix the
label count is fixed by ``k``).

The soft-label terms use ``KL(q || p)`` for the paper's cross-entropy against soft labels
(``CE(q, p) = KL(q || p) + H(q)``, and ``H(q)`` does not depend on the student).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "label_order",
    "isotonic_targets",
    "order_penalty",
    "kd_divergence",
    "soft_cross_entropy",
    "KDLoss",
    "MixedKDLoss",
    "IsotonicKDLoss",
    "OrderPenaltyKDLoss",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _float(t):
    """Half-precision logits (autocast) in float32; float32 and float64 as they are."""
    return t.float() if t.dtype in _LOW_PRECISION else t


def _is_mix_tuple(targets):
    return isinstance(targets, (tuple, list)) and len(targets) == 3


def _check_labels(y, c, what):
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise TypeError(f"{what} must be integer class labels, got dtype {y.dtype}")
    if c is not None and y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= c:
            raise ValueError(f"{what} must be class indices in [0, {c}), got "
                             f"{lo if lo < 0 else hi}")


def _mix_tuple(targets, n_classes=None, check=True):
    """``(y_a, y_b, lam)`` as tensors: labels (B,), lam (B,) float64 on their device."""
    y_a, y_b, lam = targets
    if not (isinstance(y_a, torch.Tensor) and isinstance(y_b, torch.Tensor)):
        raise TypeError("targets (y_a, y_b, lam): y_a and y_b must be tensors of labels")
    if y_a.ndim != 1 or y_b.shape != y_a.shape:
        raise ValueError(f"targets (y_a, y_b, lam): y_a and y_b must have one shape (B,), got "
                         f"{tuple(y_a.shape)} and {tuple(y_b.shape)}")
    lam = torch.as_tensor(lam, device=y_a.device)
    if lam.ndim > 1 or (lam.ndim == 1 and lam.shape != y_a.shape):
        raise ValueError(f"lam must be a number or of shape {tuple(y_a.shape)}, got "
                         f"{tuple(lam.shape)}")
    if check:
        _check_labels(y_a, n_classes, "y_a")
        _check_labels(y_b, n_classes, "y_b")
        if lam.numel() and not bool(((lam >= 0) & (lam <= 1)).all()):
            raise ValueError("lam must be in [0, 1]")
    return y_a, y_b, lam


def _check_distribution(q, n_classes=None):
    if not q.is_floating_point():
        raise TypeError(f"soft targets must be floating point, got dtype {q.dtype}")
    if q.ndim != 2:
        raise ValueError(f"soft targets must have shape (B, C), got {tuple(q.shape)}")
    if n_classes is not None and q.shape[1] != n_classes:
        raise ValueError(f"soft targets have {q.shape[1]} classes but the logits {n_classes}")
    if q.numel():
        qf = q.float()
        if not bool(torch.isfinite(qf).all()) or bool((qf < 0).any()):
            raise ValueError("soft targets must be finite and non-negative")
        if not bool(((qf.sum(1) - 1).abs() <= 1e-3).all()):
            raise ValueError("soft targets must be distributions: each row summing to 1")


def label_order(targets, *, k=2, check=True):
    r"""The label order of each (mixed) sample: the rows of the broom tree it calls for.

    Parameters
    ----------
    targets : tuple or torch.Tensor
        ``(y_a, y_b, lam)``: labels ``(B,)`` of the two mixed images and the weight ``lam``
        of ``y_a`` (a number or ``(B,)``); or a soft-target matrix ``(B, C)`` (rows are
        distributions: ``lam * onehot(a) + (1 - lam) * onehot(b)``, per-sample ``lam``,
        label smoothing on top, or a ``k``-way mix such as a 4-image mosaic); or hard
        labels ``(B,)``.
    k : int, default=2
        Soft-target matrices only: the most labels per row (4 for a mosaic). The result has
        ``k`` columns whatever the batch holds, so its shape is known in advance.
    check : bool, default=True
        Check the targets (labels are integers, ``lam`` in [0, 1], rows are distributions);
        ``False`` skips the checks, which on CUDA cost a host synchronisation.

    Returns
    -------
    order : torch.Tensor of int64, shape (B, 2) or (B, k)
        The classes of each row from the largest mass down, ``-1`` padding after them:
        ``x[order[:, 0]] >= x[order[:, 1]] >= ... >= every other class`` is the order
        :func:`isotonic_targets` and :func:`order_penalty` use.

    Notes
    -----
    From ``(y_a, y_b, lam)``: ``y_a`` first when ``lam >= 0.5`` (a tie keeps ``y_a`` first),
    ``y_b`` first otherwise; a single class (``y_a == y_b``, ``lam`` of 0 or 1) gives
    ``[y, -1]``. From a matrix: the classes whose mass is above the row's smallest mass
    (label smoothing gives every class that floor; a row where every class has the floor
    has no label), at most ``k`` of them, by decreasing mass; equal masses (``lam = 0.5``)
    go by increasing class index, as a matrix does not say which image came first. Hard
    labels give ``[y, -1]``.

    Examples
    --------
    >>> import torch
    >>> from treeiso.distill import label_order
    >>> label_order((torch.tensor([1, 2, 3]), torch.tensor([5, 2, 6]),
    ...              torch.tensor([0.7, 0.3, 0.2]))).tolist()
    [[1, 5], [2, -1], [6, 3]]
    >>> q = torch.tensor([[0.05, 0.65, 0.3], [0.1, 0.8, 0.1]])   # a mix, a smoothed label
    >>> label_order(q).tolist()
    [[1, 2], [1, -1]]
    """
    if _is_mix_tuple(targets):
        y_a, y_b, lam = _mix_tuple(targets, check=check)
        lam = lam.to(torch.float64).expand(y_a.shape)
        a_first = lam >= 0.5
        first = torch.where(a_first, y_a, y_b)
        second = torch.where(a_first, y_b, y_a)
        single = (y_a == y_b) | (lam == 1.0) | (lam == 0.0)
        second = torch.where(single, torch.full_like(second, -1), second)
        return torch.stack([first, second], dim=1).long()
    if not isinstance(targets, torch.Tensor):
        raise TypeError("targets must be a tensor of labels, a soft-target matrix or a tuple "
                        f"(y_a, y_b, lam), got {type(targets).__name__}")
    if targets.ndim == 1:
        if check:
            _check_labels(targets, None, "targets")
        y = targets.long()
        return torch.stack([y, torch.full_like(y, -1)], dim=1)
    if check:
        _check_distribution(targets)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    q = targets.detach().float()
    c = q.shape[1]
    kk = min(k, c)
    # Sort by mass, equal masses by class index: a stable sort of -q does both.
    mass, idx = torch.sort(-q, dim=1, stable=True)
    mass, idx = -mass[:, :kk], idx[:, :kk]
    floor = q.amin(1, keepdim=True)
    # Above the floor by more than rounding (label smoothing's floor is eps / C for all).
    above = mass > floor + 1e-6 * q.amax(1, keepdim=True)
    order = torch.where(above, idx, torch.full_like(idx, -1))
    if kk < k:
        order = torch.cat([order, order.new_full((order.shape[0], k - kk), -1)], dim=1)
    return order


def isotonic_targets(teacher_logits, order, *, tau, on="logits"):
    r"""Order-restricted soft labels of the teacher (Eq. 9-10 of Cui & Yan, 2021).

    ``on="logits"`` (the paper's default): the teacher's logits ``t`` projected onto the order,

    .. math::

        \hat m = \arg\min_m \|m - t\|^2 \quad \text{s.t.} \quad
        m_{o_0} \ge m_{o_1} \ge \dots \ge m_j \;\; \forall j \notin o,

    returned as ``softmax(m_hat / tau)`` (the order survives the softmax). ``on="probs"``:
    the same projection of ``softmax(t / tau)``; with unit weights it keeps the sum and the
    signs, so the result is a distribution as it is (renormalised against rounding).

    Parameters
    ----------
    teacher_logits : torch.Tensor of shape (B, C)
        Any floating dtype (float16 and bfloat16 are projected in float32); no gradient
        flows to the teacher.
    order : torch.Tensor of int, shape (B, k)
        From :func:`label_order` (``-1`` padding).
    tau : float
        The distillation temperature (> 0).
    on : {"logits", "probs"}, default="logits"

    Returns
    -------
    q : torch.Tensor of shape (B, C), float32 (float64 for float64 logits)
        Soft labels, on the logits' device.

    Examples
    --------
    >>> import torch
    >>> from treeiso.distill import isotonic_targets
    >>> t = torch.tensor([[1.0, 3.0, 0.0]])          # the teacher ranks class 1 first
    >>> q = isotonic_targets(t, torch.tensor([[0, -1]]), tau=1.0)
    >>> bool(q[0, 0] >= q[0].max()), round(float(q.sum()), 6)
    (True, 1.0)
    """
    import treeiso

    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    with torch.no_grad():
        t = _float(teacher_logits.detach())
        if on == "logits":
            return F.softmax(treeiso.fit_topk(t, order) / tau, dim=1)
        if on == "probs":
            q = treeiso.fit_topk(F.softmax(t / tau, dim=1), order).clamp_min(0)
            return q / q.sum(1, keepdim=True)
        raise ValueError(f"on must be 'logits' or 'probs', got {on!r}")


def order_penalty(student, order, *, on="probs"):
    r"""Per-sample hinge on the label order (Eq. 11-12 of Cui & Yan, 2021).

    With ``z = softmax(student)`` (``on="probs"``, the default, as the paper's public code)
    or ``z = student`` (``on="logits"``, as its text reads) and the order
    ``o_0, ..., o_{k-1}`` of a row,

    .. math::

        \sum_{i < k-1} \max(0, z_{o_{i+1}} - z_{o_i})
        + \max\bigl(0, \max_{j \notin o} z_j - \min_i z_{o_i}\bigr),

    which for two labels is the paper's ``max(0, S2 - S1) + max(0, max_{j>=3} S_j -
    min(S1, S2))``. It is zero exactly when the order holds (ties allowed); a row with one
    label has only the second term, one with no label is 0.

    Returns
    -------
    penalty : torch.Tensor of shape (B,)

    Examples
    --------
    >>> import torch
    >>> from treeiso.distill import order_penalty
    >>> z = torch.tensor([[3., 2., 1.], [1., 2., 3.]])
    >>> order_penalty(z, torch.tensor([[0, 1], [0, -1]]), on="logits")
    tensor([0., 2.])
    """
    if on == "probs":
        z = F.softmax(_float(student), dim=1)
    elif on == "logits":
        z = student
    else:
        raise ValueError(f"on must be 'probs' or 'logits', got {on!r}")
    order = order.long()
    valid = order >= 0
    idx = order.clamp(min=0)
    zo = z.gather(1, idx)
    # Chain terms between consecutive labels, where both are labels.
    chain = torch.where(valid[:, 1:], F.relu(zo[:, 1:] - zo[:, :-1]), torch.zeros_like(zo[:, 1:]))
    # The classes that are labels (padding goes to an extra column, then dropped).
    c = z.shape[1]
    is_label = torch.zeros(z.shape[0], c + 1, dtype=torch.bool, device=z.device)
    is_label.scatter_(1, torch.where(valid, order, c), True)
    others = torch.where(is_label[:, :c], torch.full_like(z, float("-inf")), z).amax(1)
    low = torch.where(valid, zo, torch.full_like(zo, float("inf"))).amin(1)
    last = torch.where(valid[:, 0], F.relu(others - low), torch.zeros_like(low))
    return chain.sum(1) + last


def kd_divergence(student_logits, q, tau):
    r"""``tau^2 KL(q || softmax(student / tau))`` averaged over the batch (Eq. 2's soft term).

    One ``log_softmax`` on the student's side; zero entries of ``q`` contribute 0.

    Examples
    --------
    >>> import torch
    >>> from treeiso.distill import kd_divergence
    >>> s = torch.tensor([[1.0, 2.0, 0.5]])
    >>> float(kd_divergence(s, torch.softmax(s / 2.0, dim=1), tau=2.0))  # zero at a match
    0.0
    """
    logp = F.log_softmax(_float(student_logits) / tau, dim=1)
    q = q.to(logp.dtype)
    return tau * tau * (torch.special.xlogy(q, q) - q * logp).sum(1).mean()


def soft_cross_entropy(student_logits, targets):
    r"""Cross-entropy with the (mixed) hard label, averaged over the batch (Eq. 3's last term).

    ``targets``: labels ``(B,)``, ``(y_a, y_b, lam)`` (``-lam log p_a - (1 - lam) log p_b``),
    or a soft-target matrix (``-sum_j q_j log p_j``).

    Examples
    --------
    >>> import torch
    >>> from treeiso.distill import soft_cross_entropy
    >>> s = torch.tensor([[2.0, 0.0, 0.0]])
    >>> a = soft_cross_entropy(s, (torch.tensor([0]), torch.tensor([1]), 0.75))
    >>> b = soft_cross_entropy(s, torch.tensor([[0.75, 0.25, 0.0]]))
    >>> bool(torch.isclose(a, b))
    True
    """
    logp = F.log_softmax(_float(student_logits), dim=1)
    if _is_mix_tuple(targets):
        y_a, y_b, lam = targets
        la = logp.gather(1, y_a[:, None])[:, 0]
        lb = logp.gather(1, y_b[:, None])[:, 0]
        lam = torch.as_tensor(lam, device=logp.device).to(logp.dtype)
        return -(lam * la + (1 - lam) * lb).mean()
    if targets.ndim == 1:
        return F.nll_loss(logp, targets.long())
    return -(targets.to(logp.dtype) * logp).sum(1).mean()


def _check_call(student_logits, teacher_logits, targets, check):
    if not (isinstance(student_logits, torch.Tensor) and isinstance(teacher_logits, torch.Tensor)):
        raise TypeError("student_logits and teacher_logits must be tensors")
    if student_logits.ndim != 2 or teacher_logits.shape != student_logits.shape:
        raise ValueError(f"student and teacher logits must have one shape (B, C), got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    if not check:
        return
    b, c = student_logits.shape
    for name, z in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if not bool(torch.isfinite(z.detach()).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    if _is_mix_tuple(targets):
        y_a, _, _ = _mix_tuple(targets, c)
        if y_a.shape[0] != b:
            raise ValueError(f"targets hold {y_a.shape[0]} samples but the logits {b}")
    elif isinstance(targets, torch.Tensor) and targets.ndim == 1:
        _check_labels(targets, c, "targets")
        if targets.shape[0] != b:
            raise ValueError(f"targets hold {targets.shape[0]} samples but the logits {b}")
    elif isinstance(targets, torch.Tensor):
        _check_distribution(targets, c)
        if targets.shape[0] != b:
            raise ValueError(f"targets hold {targets.shape[0]} samples but the logits {b}")
    else:
        raise TypeError("targets must be labels (B,), a tuple (y_a, y_b, lam) or a soft-target "
                        f"matrix (B, C), got {type(targets).__name__}")


class KDLoss(nn.Module):
    r"""Knowledge distillation (Hinton et al. 2015; Eq. 2 of Cui & Yan, 2021).

    .. math::

        \alpha \tau^2 \mathrm{KL}(p_T^\tau \,\|\, p_S^\tau) + (1 - \alpha)\,\mathrm{CE}(y, p_S)

    with ``p^tau = softmax(logits / tau)``. ``forward(student_logits, teacher_logits,
    targets, *, order=None)`` returns ``(total, parts)``: ``parts`` holds the detached terms
    ``kd`` and ``ce`` and ``violation``, the share of samples whose teacher logits break
    the label order (Fig. 1 of the paper). ``order`` (from :func:`label_order`) may be
    passed when already known; it is computed from ``targets`` otherwise.

    Parameters
    ----------
    alpha : float, default=0.95
        Weight of the soft term (the paper's CIFAR setting).
    tau : float, default=4.5
        Temperature (> 0).
    k : int, default=2
        Soft-target matrices: the most labels per sample (see :func:`label_order`).
    check : bool, default=True
        Validate shapes, labels, ``lam`` and finiteness on every call (host syncs on CUDA;
        ``False`` for ``torch.compile(fullgraph=True)``).

    Examples
    --------
    >>> import torch
    >>> from treeiso.distill import KDLoss
    >>> s = torch.tensor([[2.0, 0.0]])
    >>> total, parts = KDLoss(alpha=0.0, tau=1.0)(s, s, torch.tensor([0]))
    >>> round(float(total), 4)   # -log softmax(s)[0] = log(1 + e^-2)
    0.1269
    """

    def __init__(self, alpha: float = 0.95, tau: float = 4.5, *, k: int = 2,
                 check: bool = True):
        super().__init__()
        self.k = k
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha, self.tau, self.check = float(alpha), float(tau), bool(check)

    def _base(self, s, t, targets, order):
        _check_call(s, t, targets, self.check)
        if order is None:
            order = label_order(targets, k=self.k, check=False)
        q = F.softmax(_float(t.detach()) / self.tau, dim=1)
        kd = kd_divergence(s, q, self.tau)
        ce = soft_cross_entropy(s, targets)
        with torch.no_grad():
            viol = (order_penalty(t.detach(), order, on="logits") > 0).float().mean()
        parts = {"kd": kd.detach(), "ce": ce.detach(), "violation": viol}
        return self.alpha * kd + (1 - self.alpha) * ce, parts, order

    def forward(self, student_logits, teacher_logits, targets, *, order=None):
        total, parts, _ = self._base(student_logits, teacher_logits, targets, order)
        return total, parts


class MixedKDLoss(KDLoss):
    r"""KD-aug (Eq. 3 of Cui & Yan, 2021): :class:`KDLoss` on mixed samples with their mixed
    hard labels (``targets`` a tuple ``(y_a, y_b, lam)`` or a soft-target matrix).

    Examples
    --------
    >>> import torch
    >>> from treeiso.distill import MixedKDLoss
    >>> s, t = torch.randn(4, 10), torch.randn(4, 10)
    >>> y_a, y_b = torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6, 7, 8])
    >>> total, parts = MixedKDLoss()(s, t, (y_a, y_b, 0.7))
    >>> sorted(parts)
    ['ce', 'kd', 'violation']
    """


class IsotonicKDLoss(KDLoss):
    r"""KD-i (Eq. 9 of Cui & Yan, 2021): KD-aug plus distillation towards the
    order-restricted soft labels :math:`\hat q` of :func:`isotonic_targets`,

    .. math::

        L_{\text{KD-aug}} + \beta \tau^2 \mathrm{KL}(\hat q \,\|\, p_S^\tau).

    The printed Eq. 9 writes this term as a cross-entropy that does not involve the student;
    following the text ("we use the order-restricted soft label distribution to supervise
    the knowledge distillation"), it distils the student towards :math:`\hat q` with the
    temperature and ``tau^2`` of the KD term. ``parts`` adds ``isotonic`` (that KL).

    Parameters
    ----------
    alpha, tau : float
        As in :class:`KDLoss`.
    beta : float, default=3.0
        Weight of the isotonic term.
    on : {"logits", "probs"}, default="logits"
        What is projected (see :func:`isotonic_targets`).
    calibrated_fraction : float in [0, 1], default=1.0
        Fig. 4 of the paper: each sample is calibrated with this probability; the others use
        the raw teacher ``softmax(t / tau)`` in the isotonic term (0 keeps the extra term and
        drops the calibration: a control). Drawn from ``generator`` (``forward``'s keyword)
        on the CPU, so that runs are reproducible on any device.
    check : bool, default=True
        As in :class:`KDLoss`.

    Examples
    --------
    >>> import torch
    >>> from treeiso.distill import IsotonicKDLoss
    >>> s = torch.randn(4, 10, requires_grad=True)
    >>> t = torch.randn(4, 10)
    >>> targets = (torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6, 7, 8]), torch.full((4,), 0.7))
    >>> total, parts = IsotonicKDLoss(beta=3.0)(s, t, targets)
    >>> total.backward()                      # the gradient reaches the student only
    >>> sorted(parts)
    ['ce', 'isotonic', 'kd', 'violation']
    """

    def __init__(self, alpha=0.95, tau=4.5, beta=3.0, *, on="logits",
                 calibrated_fraction=1.0, k=2, check=True):
        super().__init__(alpha, tau, k=k, check=check)
        if not 0.0 <= calibrated_fraction <= 1.0:
            raise ValueError(f"calibrated_fraction must be in [0, 1], got {calibrated_fraction}")
        if on not in ("logits", "probs"):
            raise ValueError(f"on must be 'logits' or 'probs', got {on!r}")
        self.beta, self.on, self.fraction = float(beta), on, float(calibrated_fraction)

    def forward(self, student_logits, teacher_logits, targets, *, order=None, generator=None):
        base, parts, order = self._base(student_logits, teacher_logits, targets, order)
        q = isotonic_targets(teacher_logits, order, tau=self.tau, on=self.on)
        if self.fraction < 1.0:
            with torch.no_grad():
                u = torch.rand(teacher_logits.shape[0], generator=generator).to(q.device)
                raw = F.softmax(_float(teacher_logits.detach()) / self.tau, dim=1)
                q = torch.where((u < self.fraction)[:, None], q, raw)
        iso = kd_divergence(student_logits, q, self.tau)
        parts["isotonic"] = iso.detach()
        return base + self.beta * iso, parts


class OrderPenaltyKDLoss(KDLoss):
    r"""KD-p (Eq. 12 of Cui & Yan, 2021): KD-aug plus ``sigma`` times the batch mean of
    :func:`order_penalty` on the student.

    ``on="probs"`` (default) applies the hinge to ``softmax(student)``, as the paper's public
    code does and which trains normally; ``on="logits"`` to the raw logits, as its text reads
    (a ResNet-8 student collapsed with ``sigma = 2`` in our pilot). ``parts`` adds
    ``penalty``.

    Examples
    --------
    >>> import torch
    >>> from treeiso.distill import OrderPenaltyKDLoss
    >>> s = torch.tensor([[0.0, 3.0, 0.0]])       # ranks class 1 first; the label is class 0
    >>> total, parts = OrderPenaltyKDLoss(sigma=2.0)(s, s, torch.tensor([0]))
    >>> bool(parts["penalty"] > 0)
    True
    """

    def __init__(self, alpha=0.95, tau=4.5, sigma=2.0, *, on="probs", k=2, check=True):
        super().__init__(alpha, tau, k=k, check=check)
        if on not in ("probs", "logits"):
            raise ValueError(f"on must be 'probs' or 'logits', got {on!r}")
        self.sigma, self.on = float(sigma), on

    def forward(self, student_logits, teacher_logits, targets, *, order=None):
        base, parts, order = self._base(student_logits, teacher_logits, targets, order)
        pen = order_penalty(student_logits, order, on=self.on).mean()
        parts["penalty"] = pen.detach()
        return base + self.sigma * pen, parts
