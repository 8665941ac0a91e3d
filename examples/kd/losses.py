"""The study's losses: the KD family of :mod:`treeiso.distill` in the training step's convention,
the Student row, and the method lists of Table 1.

Every KD-family loss is :mod:`treeiso.distill`'s (one softmax on each side, ``KL`` for the
soft-label cross-entropy, the hinge on probabilities by default). What is specific to the study
lives here: the call convention of the training step, ``loss(s, t, y_a, y_b, lam, labels, gen)``
with ``s``/``t`` student and teacher logits (B, c), the mixed hard labels ``y_a`` (weight
``lam``) and ``y_b``, the order rows ``labels`` of :func:`examples.kd.augment.label_order` and
the generator ``gen`` that draws Fig. 4's calibrated samples; the Student row (:class:`CELoss`);
the CRD composition (:mod:`examples.kd.crd` adds its term in the training step); and
:func:`build_loss` from a config's ``loss`` section.

Every module returns ``(loss, stats)``: ``stats`` are the detached ``parts`` of
:mod:`treeiso.distill` (``violation``: share of samples whose teacher logits break the label
order of Eq. 8; ``kd``, ``ce``, ``isotonic``, ``penalty``: the terms).
"""

from __future__ import annotations

from torch import nn

from treeiso import distill

__all__ = ["CELoss", "KDLoss", "KDAugLoss", "KDILoss", "KDPLoss", "build_loss", "loss_params", "base_method",
           "METHODS", "KD_METHODS", "CRD_METHODS", "SINGLE_VIEW"]

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


class CELoss(nn.Module):
    """The student alone (Table 1's Student row): cross-entropy with the (mixed) hard label; the
    teacher's logits are ignored (the training step does not run the teacher)."""

    uses_teacher = False

    def forward(self, s, t, y_a, y_b, lam, labels, gen=None):
        return distill.soft_cross_entropy(s, (y_a, y_b, lam)), {}


class KDLoss(nn.Module):
    """Eq. 2 (Hinton et al. 2015): :class:`treeiso.distill.KDLoss` in the training step's convention.

    On mixed samples with mixed hard labels this is exactly Eq. 3 (KD-aug), see :class:`KDAugLoss`.
    The inputs come from the study's own pipeline, so the per-call checks are off (no host syncs).

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[2.0, 0.0]]); y = torch.tensor([0]); one = torch.ones(1)
    >>> loss, _ = KDLoss(alpha=0.0, tau=1.0)(s, s, y, y, one, torch.tensor([[0, -1]]))
    >>> round(float(loss), 4)  # = -log softmax(s)[0] = log(1 + e^-2)
    0.1269
    """

    public = distill.KDLoss

    def __init__(self, alpha: float = 0.95, tau: float = 4.5):
        super().__init__()
        self.loss = self.public(alpha, tau, check=False)

    def forward(self, s, t, y_a, y_b, lam, labels, gen=None):
        return self.loss(s, t, (y_a, y_b, lam), order=labels)


class KDAugLoss(KDLoss):
    """Eq. 3 (KD-aug): the KD loss of Eq. 2 on mixed samples ``x~`` with mixed hard labels ``y~``
    (:class:`treeiso.distill.MixedKDLoss`)."""

    public = distill.MixedKDLoss


class KDILoss(nn.Module):
    """Eq. 9 (KD-i): :class:`treeiso.distill.IsotonicKDLoss` (its docstring gives the reading of
    Eq. 9). ``calibrate_on`` is its ``on``; ``calibrated_fraction`` (Fig. 4) draws the calibrated
    samples from ``gen``."""

    def __init__(self, alpha=0.95, tau=4.5, beta=3.0, calibrate_on="logits", calibrated_fraction=1.0):
        super().__init__()
        self.loss = distill.IsotonicKDLoss(alpha, tau, beta, on=calibrate_on,
                                           calibrated_fraction=calibrated_fraction, check=False)

    def forward(self, s, t, y_a, y_b, lam, labels, gen=None):
        return self.loss(s, t, (y_a, y_b, lam), order=labels, generator=gen)


class KDPLoss(nn.Module):
    """Eq. 12 (KD-p): :class:`treeiso.distill.OrderPenaltyKDLoss`. ``penalty_on="probs"``
    (default) puts the hinge on the student's probabilities, as the paper's public code does;
    ``"logits"`` on raw logits as its text reads (a ResNet-8 student collapsed with sigma = 2 in
    our pilot)."""

    def __init__(self, alpha=0.95, tau=4.5, sigma=2.0, penalty_on="probs"):
        super().__init__()
        self.loss = distill.OrderPenaltyKDLoss(alpha, tau, sigma, on=penalty_on, check=False)

    def forward(self, s, t, y_a, y_b, lam, labels, gen=None):
        return self.loss(s, t, (y_a, y_b, lam), order=labels)


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
    for key in ("calibrate_on", "penalty_on"):
        if key in p and p[key] not in ("logits", "probs"):
            raise ValueError(f"loss.{key} must be 'logits' or 'probs', got {p[key]!r}")
    if method == "kd":
        return KDLoss(p["alpha"], p["tau"])
    if method == "kd-aug":
        return KDAugLoss(p["alpha"], p["tau"])
    if method == "kd-i":
        return KDILoss(p["alpha"], p["tau"], p["beta"], p["calibrate_on"], p["calibrated_fraction"])
    return KDPLoss(p["alpha"], p["tau"], p["sigma"], p["penalty_on"])
