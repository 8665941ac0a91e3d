"""Mixed-sample augmentation (paper Sec. 3, Eq. 3-4) and the label order it implies (Eq. 8).

Both augmentations act on a whole batch: one ``lam`` per batch, partner images from a random
permutation ``perm`` of the batch (as in Zhang et al. 2018 and Yun et al. 2019).

* **Mixup**: ``x~ = lam * x + (1 - lam) * x[perm]`` with ``lam ~ Beta(a, a)``.
* **CutMix**: draw ``lam ~ Beta(a, a)``; a box of width ``W sqrt(1 - lam)`` and height
  ``H sqrt(1 - lam)``, centre uniform over the image, clipped to it, is pasted from ``x[perm]``;
  ``lam`` is then recomputed as ``1 - (box area) / (W H)``, so it is the true share of ``x``.

**Label order per sample** (the rows given to :func:`treeiso.fit_topk`, ``-1`` padding):

* the class with the larger weight comes first: ``[y, y[perm]]`` if ``lam > 0.5``, else
  ``[y[perm], y]``;
* tie-break, ``lam == 0.5`` exactly (possible for CutMix on a pixel grid): both classes are
  co-maximal, which is not a tree order; we keep the *un-permuted* sample's class first,
  ``[y, y[perm]]``, deterministically;
* both images of one class, or a partner with weight exactly 0 (``lam`` in {0, 1}): a single label,
  ``[y_top, -1]`` (a star, k = 1). (The paper's public code used ``topk(hard, 2)`` here, which
  promotes an arbitrary class to second place.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from treeiso import distill

__all__ = ["MixedBatch", "mix_batch", "label_order", "cutmix_box", "draw_mix"]


@dataclass
class MixedBatch:
    """A mixed batch. ``x`` images; ``y_a = y`` and ``y_b = y[perm]`` the two hard labels;
    ``lam`` (B,) the weight of ``y_a``; ``labels`` (B, 2) the order rows (``-1`` padded);
    ``perm`` the partner of each sample (``None`` when nothing was mixed)."""

    x: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: torch.Tensor
    labels: torch.Tensor
    perm: torch.Tensor | None = None


def label_order(y_a: torch.Tensor, y_b: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Order rows for samples ``lam * (class y_a) + (1 - lam) * (class y_b)``.

    Returns a (B, 2) int64 tensor: larger-weight class first; ``lam == 0.5`` keeps ``y_a`` first;
    one class (``y_a == y_b``, ``lam == 1`` or ``lam == 0``) gives ``[y, -1]``
    (:func:`treeiso.distill.label_order` of ``(y_a, y_b, lam)``).

    Examples
    --------
    >>> import torch
    >>> label_order(torch.tensor([1, 2, 3, 4]), torch.tensor([5, 2, 6, 7]),
    ...             torch.tensor([0.7, 0.3, 0.5, 0.0])).tolist()
    [[1, 5], [2, -1], [3, 6], [7, -1]]
    """
    return distill.label_order((y_a, y_b, lam), check=False)


def cutmix_box(h: int, w: int, lam: float, rng: np.random.Generator):
    """The CutMix box (Yun et al. 2019): returns ``(y0, y1, x0, x1, lam_corrected)``."""
    cut = np.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
    x0, x1 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
    lam_c = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    return int(y0), int(y1), int(x0), int(x1), float(lam_c)


def draw_mix(b: int, alpha: float, rng: np.random.Generator, gen: torch.Generator | None = None):
    """The random part of a mixed batch: ``(perm, lam)``.

    ``perm`` is a permutation of ``range(b)`` drawn from ``gen`` (torch, CPU), the partner of
    sample ``i`` being ``perm[i]``; ``lam ~ Beta(alpha, alpha)`` is one float for the whole batch,
    drawn from ``rng`` (``alpha <= 0`` gives ``lam = 1``, no mixing). Shared by the image study
    (pixels, :func:`mix_batch`) and the text study (pooled representations,
    :mod:`examples.kd.text.mixing`), so both draw in the same order from the same generators.
    """
    perm = torch.randperm(b, generator=gen)
    lam = float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0
    return perm, lam


def mix_batch(x: torch.Tensor, y: torch.Tensor, kind: str, alpha: float,
              rng: np.random.Generator, gen: torch.Generator | None = None) -> MixedBatch:
    """Mix a batch with ``kind`` in {"mixup", "cutmix", "none"}.

    ``rng`` (NumPy) draws ``lam`` and the box, ``gen`` (torch, on the CPU) the permutation, so a
    run seeded per epoch replays exactly.

    Examples
    --------
    >>> import numpy as np, torch
    >>> mb = mix_batch(torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]), "cutmix", 1.0,
    ...                np.random.default_rng(0), torch.Generator().manual_seed(0))
    >>> mb.labels.shape, bool((mb.lam >= 0).all() and (mb.lam <= 1).all())
    (torch.Size([4, 2]), True)
    """
    b = x.shape[0]
    if kind == "none":
        lam = torch.ones(b, dtype=torch.float32, device=x.device)
        return MixedBatch(x, y, y, lam, label_order(y, y, lam))
    if kind not in ("mixup", "cutmix"):
        raise ValueError(f"augmentation must be 'mixup', 'cutmix' or 'none', got {kind!r}")
    perm, lam = draw_mix(b, alpha, rng, gen)
    perm = perm.to(x.device)
    if kind == "mixup":
        xm = lam * x + (1.0 - lam) * x[perm]
    else:
        y0, y1, x0, x1, lam = cutmix_box(x.shape[2], x.shape[3], lam, rng)
        xm = x.clone()
        xm[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    y_b = y[perm]
    lam_t = torch.full((b,), lam, dtype=torch.float32, device=x.device)
    return MixedBatch(xm, y, y_b, lam_t, label_order(y, y_b, lam_t), perm)
