"""Distillation losses of Cui & Yan (IJCAI 2021), one small ``nn.Module`` each.

Notation: ``s`` student logits and ``t`` teacher logits, both (B, c); ``tau`` the temperature;
a (mixed) sample has hard labels ``y_a`` with weight ``lam`` and ``y_b`` with weight ``1 - lam``
(unmixed samples: ``y_b = y_a``, ``lam = 1``) and an order row ``labels`` (B, 2) as built by
:func:`examples.kd.augment.label_order`.

Every module returns ``(loss, stats)`` where ``stats`` holds detached per-batch diagnostics
(``violation``: share of samples whose teacher logits break the label order of Eq. 8).

Soft-label KL: the paper writes Eq. 1-2 with a cross-entropy against the teacher's soft labels;
CE(q, p) = KL(q || p) + H(q) and H(q) does not depend on the student, so we use KL (zero at a
perfect match, same gradients).
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["kd_term", "mixed_ce", "order_penalty", "calibrate", "CELoss", "KDLoss", "KDAugLoss", "KDILoss",
           "KDPLoss", "build_loss", "loss_params", "base_method", "METHODS", "KD_METHODS", "CRD_METHODS", "SINGLE_VIEW"]

#: CRD rows of Table 1: the KD-family loss of the same suffix plus ``crd_weight`` x the CRD term
#: (:mod:`examples.kd.crd`), as the paper's code combines them.
CRD_METHODS = ("crd", "crd-aug", "crd-i", "crd-p")
#: every student method: ``ce`` (the student alone, cross-entropy: Table 1's Student row),
#: the KD family and the CRD family.
KD_METHODS = ("kd", "kd-aug", "kd-i", "kd-p")
METHODS = ("ce",) + KD_METHODS + CRD_METHODS
#: methods trained on un-mixed images only (no augmentation suffix)
SINGLE_VIEW = ("ce", "kd", "crd")


def base_method(method: str) -> str:
    """The KD-family loss of a method: ``crd-i -> kd-i``, ``crd -> kd``; others unchanged."""
    return "kd" + method[3:] if method in CRD_METHODS else method


def kd_term(s: torch.Tensor, q: torch.Tensor, tau: float) -> torch.Tensor:
    """``tau^2 * KL(q || softmax(s / tau))`` averaged over the batch; ``q`` is a distribution.

    The student side is a single ``log_softmax`` (no double softmax); zero entries of ``q``
    contribute 0.
    """
    logp = F.log_softmax(s / tau, dim=1)
    q = q.to(logp.dtype)
    return tau * tau * (torch.special.xlogy(q, q) - q * logp).sum(1).mean()


def mixed_ce(s: torch.Tensor, y_a, y_b, lam) -> torch.Tensor:
    """Cross-entropy with the mixed hard label ``lam * e(y_a) + (1 - lam) * e(y_b)`` (Eq. 3)."""
    logp = F.log_softmax(s, dim=1)
    la = logp.gather(1, y_a[:, None])[:, 0]
    lb = logp.gather(1, y_b[:, None])[:, 0]
    lam = lam.to(logp.dtype)
    return -(lam * la + (1 - lam) * lb).mean()


def order_penalty(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample hinge of Eq. 11-12: ``max(0, z2 - z1) + max(0, max_{j other} z_j - min(z1, z2))``.

    ``z1 = z[labels[:, 0]]``, ``z2 = z[labels[:, 1]]``. A row ``[l, -1]`` (one class) has only the
    second term, ``max(0, max_{j != l} z_j - z_l)``. The penalty is zero exactly when the order
    ``z1 >= z2 >= every other`` holds (ties allowed).

    Examples
    --------
    >>> import torch
    >>> order_penalty(torch.tensor([[3., 2., 1.], [1., 2., 3.]]), torch.tensor([[0, 1], [0, -1]]))
    tensor([0., 2.])
    """
    l0 = labels[:, 0:1]
    has2 = labels[:, 1] >= 0
    l1 = labels[:, 1:2].clamp(min=0)
    z1 = z.gather(1, l0)[:, 0]
    z2 = z.gather(1, l1)[:, 0]
    keep = torch.ones_like(z, dtype=torch.bool)
    keep.scatter_(1, l0, False)
    keep.scatter_(1, l1, ~has2[:, None] & keep.gather(1, l1))
    others = torch.where(keep, z, torch.full_like(z, float("-inf"))).amax(1)
    low = torch.where(has2, torch.minimum(z1, z2), z1)
    first = torch.where(has2, F.relu(z2 - z1), torch.zeros_like(z1))
    second = F.relu(others - low)  # relu(-inf) = 0 when no other class is left
    return first + second


def calibrate(t: torch.Tensor, labels: torch.Tensor, tau: float, on: str = "logits") -> torch.Tensor:
    """Order-restricted teacher soft labels (Eq. 9-10), computed with :func:`treeiso.fit_topk`.

    ``on="logits"`` (default): ``m^ = argmin ||t - m||^2`` s.t. ``m[l0] >= m[l1] >= others``,
    returned as ``softmax(m^ / tau)``. The order survives the softmax. ``on="probs"``: the same
    projection applied to ``softmax(t / tau)``; isotonic regression with unit weights keeps the
    sum and non-negativity, so the result is already a distribution (no second softmax).
    """
    import treeiso

    with torch.no_grad():
        if on == "logits":
            m = treeiso.fit_topk(t.detach(), labels)
            return F.softmax(m / tau, dim=1)
        if on == "probs":
            q = treeiso.fit_topk(F.softmax(t.detach() / tau, dim=1), labels).clamp_min(0)
            return q / q.sum(1, keepdim=True)
        raise ValueError(f"calibrate on must be 'logits' or 'probs', got {on!r}")


class CELoss(nn.Module):
    """The student alone (Table 1's Student row): cross-entropy with the (mixed) hard label; the
    teacher's logits are ignored (the training step does not run the teacher)."""

    uses_teacher = False

    def forward(self, s, t, y_a, y_b, lam, labels, gen=None):
        return mixed_ce(s, y_a, y_b, lam), {}


class KDLoss(nn.Module):
    """Eq. 2 (Hinton et al. 2015): ``alpha tau^2 KL(p_T^tau || p_S^tau) + (1 - alpha) CE(s, y)``.

    On mixed samples with mixed hard labels this is exactly Eq. 3 (KD-aug), see :class:`KDAugLoss`.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[2.0, 0.0]]); y = torch.tensor([0]); one = torch.ones(1)
    >>> loss, _ = KDLoss(alpha=0.0, tau=1.0)(s, s, y, y, one, torch.tensor([[0, -1]]))
    >>> round(float(loss), 4)  # = -log softmax(s)[0] = log(1 + e^-2)
    0.1269
    """

    def __init__(self, alpha: float = 0.95, tau: float = 4.5):
        super().__init__()
        self.alpha, self.tau = float(alpha), float(tau)

    def base(self, s, t, y_a, y_b, lam):
        q = F.softmax(t.detach() / self.tau, dim=1)
        return self.alpha * kd_term(s, q, self.tau) + (1 - self.alpha) * mixed_ce(s, y_a, y_b, lam)

    def forward(self, s, t, y_a, y_b, lam, labels, gen=None):
        with torch.no_grad():
            viol = (order_penalty(t.detach(), labels) > 0).float().mean()
        return self.base(s, t, y_a, y_b, lam), {"violation": viol}


class KDAugLoss(KDLoss):
    """Eq. 3 (KD-aug): the KD loss of Eq. 2 on mixed samples ``x~`` with mixed hard labels ``y~``."""


class KDILoss(KDLoss):
    """Eq. 9 (KD-i): ``L_KD-aug + beta tau^2 KL(q^ || p_S^tau)``, ``q^`` the calibrated teacher.

    Reading of Eq. 9: the printed ``CE(y~, m^)`` does not involve the student; following the text
    ("we use the order-restricted soft label distribution to supervise the knowledge
    distillation") the extra term distils the student towards the calibrated soft labels ``q^``,
    with the same temperature and ``tau^2`` scaling as the KD term. ``q^`` comes from
    :func:`calibrate` (teacher logits by default, ``calibrate_on="probs"`` for temperature-scaled
    probabilities). ``calibrated_fraction`` f in [0, 1] (Fig. 4): each sample is calibrated with
    probability f; the others use the raw teacher ``softmax(t / tau)`` in the extra term, so f = 0
    isolates the effect of the order constraint.
    """

    def __init__(self, alpha=0.95, tau=4.5, beta=3.0, calibrate_on="logits", calibrated_fraction=1.0):
        super().__init__(alpha, tau)
        if not 0.0 <= calibrated_fraction <= 1.0:
            raise ValueError(f"calibrated_fraction must be in [0, 1], got {calibrated_fraction}")
        self.beta, self.on, self.fraction = float(beta), calibrate_on, float(calibrated_fraction)

    def forward(self, s, t, y_a, y_b, lam, labels, gen=None):
        base = self.base(s, t, y_a, y_b, lam)
        q = calibrate(t, labels, self.tau, self.on)
        with torch.no_grad():
            viol = (order_penalty(t.detach(), labels) > 0).float().mean()
            if self.fraction < 1.0:
                u = torch.rand(t.shape[0], generator=gen).to(t.device)
                q = torch.where((u < self.fraction)[:, None], q, F.softmax(t.detach() / self.tau, dim=1))
        return base + self.beta * kd_term(s, q, self.tau), {"violation": viol}


class KDPLoss(KDLoss):
    """Eq. 12 (KD-p): ``L_KD-aug + sigma E[max(0, S2 - S1) + max(0, max_{j>=3} S_j - min(S1, S2))]``.

    ``penalty_on="probs"`` (default) applies the hinge to the student's probabilities
    ``softmax(s)``, as the paper's public code does and which trains normally;
    ``penalty_on="logits"`` applies it to raw logits as the paper's text reads (a ResNet-8 student
    collapsed with sigma = 2 in our pilot). See :func:`order_penalty`.
    """

    def __init__(self, alpha=0.95, tau=4.5, sigma=2.0, penalty_on="probs"):
        super().__init__(alpha, tau)
        if penalty_on not in ("probs", "logits"):
            raise ValueError(f"penalty_on must be 'probs' or 'logits', got {penalty_on!r}")
        self.sigma, self.on = float(sigma), penalty_on

    def forward(self, s, t, y_a, y_b, lam, labels, gen=None):
        base = self.base(s, t, y_a, y_b, lam)
        z = F.softmax(s, dim=1) if self.on == "probs" else s
        pen = order_penalty(z, labels).mean()
        with torch.no_grad():
            viol = (order_penalty(t.detach(), labels) > 0).float().mean()
        return base + self.sigma * pen, {"violation": viol, "penalty": pen.detach()}


_DEFAULTS = {"alpha": 0.95, "tau": 4.5, "beta": 3.0, "calibrate_on": "logits", "calibrated_fraction": 1.0,
             "sigma": 2.0, "penalty_on": "probs",
             # RepDistiller's CIFAR settings (= examples.kd.crd.CRD_DEFAULTS)
             "crd_weight": 0.8, "crd_dim": 128, "crd_k": 16384, "crd_t": 0.07, "crd_momentum": 0.5}
_CRD_KEYS = ("crd_weight", "crd_dim", "crd_k", "crd_t", "crd_momentum")
_USES = {"ce": (), "kd": ("alpha", "tau"), "kd-aug": ("alpha", "tau"),
         "kd-i": ("alpha", "tau", "beta", "calibrate_on", "calibrated_fraction"),
         "kd-p": ("alpha", "tau", "sigma", "penalty_on")}
_USES.update({m: _USES[base_method(m)] + _CRD_KEYS for m in CRD_METHODS})


def loss_params(method: str, cfg: dict) -> dict:
    """The loss settings ``method`` uses, defaults filled in, numbers as floats (a run's identity:
    changing ``sigma`` does not change a KD-i run).

    Examples
    --------
    >>> loss_params("kd-p", {"tau": 2, "beta": 1.0})
    {'alpha': 0.95, 'tau': 2.0, 'sigma': 2.0, 'penalty_on': 'probs'}
    """
    if method not in _USES:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    out = {}
    for k in _USES[method]:
        v = cfg.get(k, _DEFAULTS[k])
        out[k] = (int(v) if k in ("crd_dim", "crd_k") else float(v)) \
            if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    return out


def build_loss(method: str, cfg: dict) -> nn.Module:
    """Loss module for ``method`` in :data:`METHODS` from a config's ``loss`` section.

    For a CRD method this is the KD-family part (:func:`base_method`); the training step adds
    the contrastive term.
    """
    method = base_method(method)
    p = loss_params(method, cfg)
    if method == "ce":
        return CELoss()
    if p["tau"] <= 0:
        raise ValueError(f"loss.tau must be > 0, got {p['tau']}")
    if method == "kd":
        return KDLoss(p["alpha"], p["tau"])
    if method == "kd-aug":
        return KDAugLoss(p["alpha"], p["tau"])
    if method == "kd-i":
        return KDILoss(p["alpha"], p["tau"], p["beta"], p["calibrate_on"], p["calibrated_fraction"])
    return KDPLoss(p["alpha"], p["tau"], p["sigma"], p["penalty_on"])
