"""The study's losses: the KD family of :mod:`treeiso.distill` in the training step's convention,
and the Student row. Which method trains with which loss is :mod:`examples.kd.methods`' table.

Every KD-family loss is :mod:`treeiso.distill`'s (one softmax on each side, ``KL`` for the
soft-label cross-entropy, the hinge on probabilities by default). What is specific to the study
lives here: the call convention of the training step, ``loss(s, t, y_a, y_b, lam, labels, gen)``
with ``s``/``t`` student and teacher logits (B, c), the mixed hard labels ``y_a`` (weight
``lam``) and ``y_b``, the order rows ``labels`` of :func:`examples.kd.augment.label_order` and
the generator ``gen`` that draws Fig. 4's calibrated samples; the Student row (:class:`CELoss`);
the CRD composition (:mod:`examples.kd.crd` adds its term in the training step). Each class
takes the method's ``loss.*`` settings as keyword arguments
(:func:`examples.kd.methods.build_loss` builds one from a config's ``loss`` section).

Every module returns ``(loss, stats)``: ``stats`` are the detached ``parts`` of
:mod:`treeiso.distill` (``violation``: share of samples whose teacher logits break the label
order of Eq. 8; ``kd``, ``ce``, ``isotonic``, ``penalty``: the terms).
"""

from __future__ import annotations

from torch import nn

from treeiso import distill

__all__ = ["CELoss", "KDLoss", "KDAugLoss", "KDILoss", "KDPLoss"]


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
