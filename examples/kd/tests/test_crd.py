"""CRD: the NCE loss against a hand computation, negatives, the memory update, gradients, resume."""

import math

import pytest
import torch

from examples.kd.crd import CRDLoss, nce_loss, sample_negatives
from examples.kd.models import build_model


def _identity_crd(n=5, k=3, dim=2, t=0.5, momentum=0.5):
    crd = CRDLoss(dim, dim, n, dim=dim, k=k, t=t, momentum=momentum)
    for e in (crd.embed_s, crd.embed_t):
        with torch.no_grad():
            e.linear.weight.copy_(torch.eye(dim))
            e.linear.bias.zero_()
    return crd


def test_nce_loss_hand_computed():
    # one sample, one positive score 0.5, two negatives 0.1 and 0.3, N = 4: K/N = 0.5
    pos, neg = torch.tensor([[0.5]]), torch.tensor([[0.1, 0.3]])
    want = -(math.log(0.5 / 1.0) + math.log(0.5 / 0.6) + math.log(0.5 / 0.8))
    assert float(nce_loss(pos, neg, 4)) == pytest.approx(want, rel=1e-6)
    # weighted positives (a mixed sample): lam * -log h(a) + (1 - lam) * -log h(b) + negatives
    pos2 = torch.tensor([[0.5, 1.5]])
    w = torch.tensor([[0.25, 0.75]])
    want2 = -(0.25 * math.log(0.5 / 1.0) + 0.75 * math.log(1.5 / 2.0) + math.log(0.5 / 0.6)
              + math.log(0.5 / 0.8))
    assert float(nce_loss(pos2, neg, 4, w)) == pytest.approx(want2, rel=1e-6)


def test_crd_forward_hand_computed():
    """The full symmetric loss of a 1-sample batch, computed by hand from the memory rows."""
    n, k, t = 5, 3, 0.5
    crd = _identity_crd(n, k, t=t)
    mem_s = torch.tensor([[1.0, 0], [0, 1], [0.6, 0.8], [-1, 0], [0.8, -0.6]])
    mem_t = torch.tensor([[0.0, 1], [1, 0], [-0.6, 0.8], [0.8, 0.6], [0, -1]])
    crd.memory_s.copy_(mem_s)
    crd.memory_t.copy_(mem_t)
    crd.z_s.fill_(2.0)
    crd.z_t.fill_(3.0)
    u, v = [1.0, 0.0], [0.0, 1.0]
    idx = torch.tensor([2])
    neg = sample_negatives(n, k, idx, gen=torch.Generator().manual_seed(7))[0].tolist()
    loss, _ = crd(torch.tensor([u]), torch.tensor([v]), idx, gen=torch.Generator().manual_seed(7))

    def side(anchor, mem, z):
        score = lambda r: math.exp(sum(a * b for a, b in zip(anchor, mem[r].tolist())) / t) / z  # noqa: E731
        kn = k / n
        out = -math.log(score(2) / (score(2) + kn + 1e-7))
        return out - sum(math.log(kn / (score(j) + kn + 1e-7)) for j in neg)

    want = side(u, mem_t, 2.0) + side(v, mem_s, 3.0)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5)


def test_z_estimated_once_from_first_batch():
    crd = _identity_crd(n=6, k=4, t=0.1)
    f = torch.nn.functional.normalize(torch.randn(3, 2), dim=1)
    crd(f, f, torch.tensor([0, 1, 2]), gen=torch.Generator().manual_seed(0))
    z = float(crd.z_s)
    assert z > 0 and float(crd.z_t) > 0
    crd(f * -1, f, torch.tensor([3, 4, 5]), gen=torch.Generator().manual_seed(1))
    assert float(crd.z_s) == z


def test_negatives_uniform_over_other_ids():
    g = torch.Generator().manual_seed(0)
    neg = sample_negatives(6, 60000, torch.tensor([1, 3]), torch.tensor([4, 3]), g)
    assert set(neg[0].tolist()) == {0, 2, 3, 5} and set(neg[1].tolist()) == {0, 1, 2, 4, 5}
    freq = torch.bincount(neg[1], minlength=6).float() / 60000
    assert torch.allclose(freq[[0, 1, 2, 4, 5]], torch.full((5,), 0.2), atol=0.01)
    with pytest.raises(ValueError, match="at least 3"):
        CRDLoss(4, 4, 2)


def test_memory_update_rows_and_only_those():
    crd = _identity_crd(n=5, momentum=0.5)
    old_s, old_t = crd.memory_s.clone(), crd.memory_t.clone()
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[0.6, 0.8], [-1.0, 0.0]])
    idx = torch.tensor([4, 1])
    crd.update(idx, u, v)
    for mem, old, new in ((crd.memory_s, old_s, u), (crd.memory_t, old_t, v)):
        for row, i in enumerate(idx.tolist()):
            w = 0.5 * old[i] + 0.5 * new[row]
            assert torch.allclose(mem[i], w / w.norm())
        for i in (0, 2, 3):
            assert torch.equal(mem[i], old[i])


def _tiny_pair():
    torch.manual_seed(0)
    s, t = build_model("resnet8", 4), build_model("resnet8", 4).eval()
    return s, t


def test_contrastive_gradient_reaches_student_backbone():
    """The student's features are not detached: the CRD term alone moves its first conv."""
    s, t = _tiny_pair()
    x = torch.randn(6, 3, 8, 8)
    crd = CRDLoss(s.feat_dim, t.feat_dim, 20, dim=8, k=5)
    fs, _ = s(x, return_features=True)
    with torch.no_grad():
        ft, _ = t(x, return_features=True)
    loss, _ = crd(fs, ft, torch.arange(6), gen=torch.Generator().manual_seed(0))
    loss.backward()
    g = s.stem[0].weight.grad
    assert g is not None and float(g.abs().sum()) > 0
    assert crd.embed_s.linear.weight.grad is not None and crd.embed_t.linear.weight.grad is not None
    assert all(p.grad is None for p in t.parameters())


def test_mixup_never_writes_mixed_embeddings():
    """With mixed ids the loss uses both positives; update() given the clean embeddings writes
    exactly those (a mixed embedding would give other rows)."""
    crd = _identity_crd(n=6, k=4)
    g = torch.Generator().manual_seed(3)
    clean = torch.nn.functional.normalize(torch.randn(2, 2, generator=g), dim=1)
    lam = torch.tensor([0.7, 0.7])
    mixed = torch.nn.functional.normalize(0.7 * clean + 0.3 * clean.flip(0), dim=1)
    idx_a, idx_b = torch.tensor([0, 5]), torch.tensor([5, 0])
    loss_mix, _ = crd(mixed, mixed, idx_a, idx_b, lam, gen=torch.Generator().manual_seed(0))
    loss_a, _ = crd(mixed, mixed, idx_a, gen=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss_mix) and float(loss_mix.detach()) != pytest.approx(float(loss_a.detach()))
    before = crd.memory_s.clone()
    crd.update(idx_a, *crd.embed(clean, clean))
    for row, i in enumerate(idx_a.tolist()):
        w = 0.5 * before[i] + 0.5 * clean[row]
        assert torch.allclose(crd.memory_s[i], w / w.norm())


def test_resume_restores_memory_bank(tmp_path):
    crd = _identity_crd(n=7)
    f = torch.nn.functional.normalize(torch.randn(3, 2), dim=1)
    crd(f, f, torch.tensor([0, 1, 2]), gen=torch.Generator().manual_seed(0))
    crd.update(torch.tensor([0, 1, 2]), f, f)
    torch.save(crd.state_dict(), tmp_path / "crd.pt")
    fresh = CRDLoss(2, 2, 7, dim=2, k=3, t=0.5)
    assert not torch.equal(fresh.memory_s, crd.memory_s)
    fresh.load_state_dict(torch.load(tmp_path / "crd.pt", weights_only=True))
    for name in ("memory_s", "memory_t", "z_s", "z_t"):
        assert torch.equal(getattr(fresh, name), getattr(crd, name))
