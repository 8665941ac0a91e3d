"""Mixup for text as in Mixup-Transformer (Sun et al., COLING 2020), for distillation.

Mixup-Transformer mixes the final-layer sentence representations of two examples,
``h~ = lam h_i + (1 - lam) h_j`` with ``lam ~ Beta(alpha, alpha)``, classifies ``h~`` with the
task head and trains on the mixed label ``lam y_i + (1 - lam) y_j``. For distillation the teacher
and the student each mix **their own** representations of the **same pair with the same lam**
(:func:`mix_pooled`); the teacher's logits on its mixed representation are the soft labels that
KD-aug distils, KD-i calibrates (:func:`treeiso.distill.isotonic_targets`) and KD-p's order refers
to.

The pair and ``lam`` are drawn by :func:`examples.kd.augment.draw_mix` (one ``lam`` per batch,
partners from a random permutation), and the label order of each mixed sample is the image
study's :func:`examples.kd.augment.label_order`: the larger-weight class first, ``lam == 0.5``
keeps the un-permuted sample's class first, a same-class pair gives one label ``[y, -1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..augment import draw_mix, label_order

__all__ = ["MixedPair", "mix_pooled", "text_loss", "CachedTeacher", "encode_all"]


@dataclass
class MixedPair:
    """Mixed teacher (``t``) and student (``s``) representations; ``y_a``, ``y_b``, ``lam`` and
    the order rows ``labels`` (B, 2) as in :class:`examples.kd.augment.MixedBatch`."""

    t: torch.Tensor
    s: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: torch.Tensor
    labels: torch.Tensor


def mix_pooled(h_t: torch.Tensor, h_s: torch.Tensor, y: torch.Tensor, aug: str, alpha: float,
               rng: np.random.Generator, gen: torch.Generator | None = None) -> MixedPair:
    """Mix teacher and student sentence representations of one batch with one pair and ``lam``.

    ``aug`` is ``"mixup"`` or ``"none"`` (plain KD: ``lam = 1``, rows ``[y, -1]``).

    Examples
    --------
    >>> import numpy as np, torch
    >>> h = torch.eye(4)
    >>> mp = mix_pooled(h, 2 * h, torch.tensor([0, 0, 1, 2]), "mixup", 1.0,
    ...                 np.random.default_rng(0), torch.Generator().manual_seed(0))
    >>> torch.allclose(mp.s, 2 * mp.t), mp.labels.shape
    (True, torch.Size([4, 2]))
    """
    b = y.shape[0]
    if h_t.shape[0] != b or h_s.shape[0] != b:
        raise ValueError(f"mix_pooled: batch sizes differ (teacher {h_t.shape[0]}, student {h_s.shape[0]}, "
                         f"labels {b})")
    if aug == "none":
        lam = torch.ones(b, dtype=torch.float32, device=y.device)
        return MixedPair(h_t, h_s, y, y, lam, label_order(y, y, lam))
    if aug != "mixup":
        raise ValueError(f"text augmentation must be 'mixup' or 'none', got {aug!r}")
    perm, lam = draw_mix(b, alpha, rng, gen)
    perm = perm.to(y.device)
    t = lam * h_t + (1.0 - lam) * h_t[perm]
    s = lam * h_s + (1.0 - lam) * h_s[perm]
    y_b = y[perm]
    lam_t = torch.full((b,), lam, dtype=torch.float32, device=y.device)
    return MixedPair(t, s, y, y_b, lam_t, label_order(y, y_b, lam_t))


class CachedTeacher(torch.nn.Module):
    """A fine-tuned teacher (eval mode, frozen) whose training-set sentence representations are
    computed once: the students' mixing happens after the encoder, so the teacher's encoder
    never needs to run again during distillation (``features(x, idx)`` looks rows up).
    ``head`` is the teacher's own head, applied to the mixed representations."""

    def __init__(self, model, train_features: torch.Tensor | None = None):
        super().__init__()
        self.model = model.eval()
        self.cache = train_features
        self.head = model.head

    @torch.no_grad()
    def features(self, x, idx=None):
        if self.cache is not None and idx is not None:
            return self.cache[idx].to(x.device)
        return self.model.features(x)

    @torch.no_grad()
    def forward(self, x):
        return self.model(x)


@torch.no_grad()
def encode_all(model, data, split, device, batch_size=256) -> torch.Tensor:
    """``model.features`` of every example of ``split`` (eval mode), in index order."""
    model.eval()
    out = []
    for i in range(0, data.size(split), batch_size):
        x, _ = data.get(split, torch.arange(i, min(i + batch_size, data.size(split))), device)
        out.append(model.features(x))
    return torch.cat(out)


def text_loss(net, batch, teacher, loss_fn):
    """One batch of the text study (a :class:`examples.kd.train.Batch`): ``(loss, stats)``; the
    ``batch_loss`` of :class:`examples.kd.train.Objective` (the image study's is
    :func:`examples.kd.train.image_loss`).

    The teacher (``loss_fn is None``) is fine-tuned with cross-entropy on the plain sentences. A
    student encodes the batch, the teacher's representations of the same sentences are looked
    up by ``batch.idx``, both are mixed by :func:`mix_pooled` and each network's head gives its
    logits.
    """
    x, y = batch.x, batch.y
    if loss_fn is None:
        return F.cross_entropy(net(x), y), {}
    h_s = net.features(x)
    h_t = teacher.features(x, batch.idx)
    mp = mix_pooled(h_t, h_s, y, batch.aug, batch.aug_alpha, batch.rng, batch.gen)
    with torch.no_grad():
        t = teacher.head(mp.t)
    s = net.head(mp.s)
    return loss_fn(s, t, mp.y_a, mp.y_b, mp.lam, mp.labels, batch.gen)
