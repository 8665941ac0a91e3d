"""Mixup / CutMix: lambdas, pasted areas and label orders (same-class pairs, ties)."""

import numpy as np
import pytest
import torch

from examples.kd.augment import cutmix_box, label_order, mix_batch


def _batch(b=8, c=3, h=8, w=8):
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, c, h, w, generator=g), torch.arange(b) % 4


def test_mixup_formula_and_labels():
    x, y = _batch()
    mb = mix_batch(x, y, "mixup", 1.0, np.random.default_rng(5), torch.Generator().manual_seed(5))
    lam = float(mb.lam[0])
    assert 0.0 <= lam <= 1.0 and torch.all(mb.lam == lam)
    # reconstruct the permutation from the images themselves
    partner = (mb.x - lam * x) / (1 - lam)
    for i in range(8):
        d = ((x - partner[i]) ** 2).flatten(1).sum(1)
        j = int(d.argmin())
        assert float(d[j]) < 1e-8 and int(mb.y_b[i]) == int(y[j])
    assert torch.equal(mb.labels, label_order(y, mb.y_b, mb.lam))


def test_cutmix_lambda_is_pasted_area():
    x, y = _batch(h=16, w=16)  # random pixels: a pasted pixel differs from the original one
    pasted_any = 0
    for seed in range(20):
        mb = mix_batch(x, y, "cutmix", 1.0, np.random.default_rng(seed), torch.Generator().manual_seed(seed))
        changed = (mb.x != x).any(1)                      # (B, H, W): pixels from the partner
        lam = float(mb.lam[0])
        moved = [i for i in range(8) if not torch.equal(mb.x[i], x[i])]  # partner is not itself
        if lam < 1.0:
            assert moved, f"seed {seed}: lam = {lam} but no image changed"
        for i in moved:
            assert float(changed[i].float().mean()) == pytest.approx(1 - lam, abs=1e-6)
            pasted_any += 1
        # the pasted box is one rectangle: changed rows x changed columns
        for i in moved:
            rows, cols = changed[i].any(1), changed[i].any(0)
            assert torch.equal(changed[i], rows[:, None] & cols[None, :])
    assert pasted_any >= 20  # something was pasted in most draws (lam ~ Beta(1, 1))


def test_cutmix_box_clipped_and_corrected():
    rng = np.random.default_rng(0)
    for _ in range(200):
        lam = rng.uniform()
        y0, y1, x0, x1, lc = cutmix_box(32, 32, lam, rng)
        assert 0 <= y0 <= y1 <= 32 and 0 <= x0 <= x1 <= 32
        assert lc == pytest.approx(1 - (y1 - y0) * (x1 - x0) / 1024)
        assert lc >= lam - 1e-9  # clipping only removes pasted area


@pytest.mark.parametrize("ya, yb, lam, want", [
    (1, 2, 0.7, [1, 2]),      # larger weight first
    (1, 2, 0.3, [2, 1]),
    (1, 2, 0.5, [1, 2]),      # exact tie: the un-permuted sample first
    (3, 3, 0.7, [3, -1]),     # same class: a single label
    (3, 3, 0.5, [3, -1]),
    (1, 2, 1.0, [1, -1]),     # partner has weight 0
    (1, 2, 0.0, [2, -1]),
])
def test_label_order(ya, yb, lam, want):
    got = label_order(torch.tensor([ya]), torch.tensor([yb]), torch.tensor([lam]))
    assert got.tolist() == [want]


def test_none_and_bad_kind():
    x, y = _batch()
    mb = mix_batch(x, y, "none", 1.0, np.random.default_rng(0))
    assert torch.equal(mb.x, x) and mb.labels[:, 1].eq(-1).all() and mb.lam.eq(1).all()
    with pytest.raises(ValueError, match="augmentation"):
        mix_batch(x, y, "mosaic", 1.0, np.random.default_rng(0))


def test_same_seed_same_batch():
    x, y = _batch()
    a = mix_batch(x, y, "cutmix", 1.0, np.random.default_rng(9), torch.Generator().manual_seed(9))
    b = mix_batch(x, y, "cutmix", 1.0, np.random.default_rng(9), torch.Generator().manual_seed(9))
    assert torch.equal(a.x, b.x) and torch.equal(a.labels, b.labels)
