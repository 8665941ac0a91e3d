"""The torch backend: values against the NumPy core, gradients, custom-op checks, compile."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import treeiso  # noqa: E402
from treeiso._backends import torch_arrays as ta  # noqa: E402
from treeiso._backends import torch_native as tn  # noqa: E402
from treeiso._backends import torch_ops as ops  # noqa: E402
from treeiso._backends import torch_runner as runner  # noqa: E402

DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")])]


def trees(n=9):
    rng = np.random.default_rng(0)
    general = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n)])
    perm = rng.permutation(n)  # ids out of topological order
    inv = np.argsort(perm)
    shuffled = np.where(general[inv] < 0, -1, perm[general[inv]])
    return {
        "chain": treeiso.Tree.chain(n),
        "chain_shuffled": treeiso.Tree.from_edges(list(zip(perm[:-1], perm[1:])), n=n),
        "star": treeiso.Tree.star(n, 3),
        "mixup": treeiso.Tree.star_plus_edge(n, 5, 2),
        "broom": treeiso.Tree.broom(n, [4, 0, 7, 1]),
        "general": treeiso.Tree(shuffled),
    }


TREES = trees()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(TREES))
@pytest.mark.parametrize("orientation", ["root_largest", "root_smallest"])
def test_fit_matches_numpy(device, name, orientation):
    tree = TREES[name]
    rng = np.random.default_rng(1)
    y = rng.normal(size=(2, 3, tree.n))
    y[0, 0] = np.round(y[0, 0])  # ties
    w = np.exp(rng.normal(size=(2, 3, tree.n)))
    ref = treeiso.fit(y, tree, w, orientation=orientation, return_blocks=True)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        yt = torch.tensor(y, dtype=dtype, device=device)
        wt = torch.tensor(w, dtype=dtype, device=device)
        out = treeiso.fit(yt, tree, wt, orientation=orientation, return_blocks=True)
        assert out.x.dtype == dtype and out.x.device.type == device
        assert out.x.shape == yt.shape and out.blocks.dtype == torch.int64
        np.testing.assert_allclose(out.x.cpu().numpy(), ref.x, rtol=tol, atol=tol)
        if dtype == torch.float64:
            # Blocks agree wherever the values do not tie (ties may be split either way).
            xb = ref.x[np.arange(2)[:, None, None], np.arange(3)[None, :, None], ref.blocks]
            mine = out.blocks.cpu().numpy()
            xm = ref.x[np.arange(2)[:, None, None], np.arange(3)[None, :, None], mine]
            np.testing.assert_allclose(xm, xb, rtol=1e-12, atol=1e-12)
    x1 = treeiso.fit(torch.tensor(y[0, 0], device=device), tree,
                     torch.tensor(w[0, 0], device=device), orientation=orientation)
    np.testing.assert_allclose(x1.cpu().numpy(), ref.x[0, 0], rtol=1e-12, atol=1e-12)


def test_integer_values_and_unit_weights():
    x = treeiso.fit(torch.tensor([1, 3, 2]), treeiso.Tree.chain(3))
    assert x.dtype == torch.float64 and torch.allclose(x, torch.full((3,), 2.0, dtype=x.dtype))


@pytest.mark.parametrize("native", [False, True])
def test_batched_chains_against_core(native):
    rng = np.random.default_rng(2)
    y = np.concatenate([rng.normal(size=(20, 50)), np.round(rng.normal(size=(10, 50))),
                        np.cumsum(rng.normal(size=(10, 50)), 1)])
    w = rng.integers(1, 5, size=y.shape).astype(float)
    ref = treeiso.fit(y, treeiso.Tree.chain(50), w, return_blocks=True)
    x, top = ops.chain_op(torch.tensor(y), torch.tensor(w), torch.arange(50), native)
    np.testing.assert_allclose(x.numpy(), ref.x, rtol=1e-12, atol=1e-12)
    assert np.array_equal(top.numpy(), ref.blocks)


def test_native_chain_hands_long_cascades_to_host(monkeypatch):
    # Each round of parallel pooling absorbs one block: more rounds than allowed.
    n = 200
    monkeypatch.setattr(tn, "CHAIN_ROUNDS", 20)
    monkeypatch.setattr(tn, "CHAIN_ROUNDS_PER_BIT", 1)
    y = np.r_[np.arange(n - 1, 0, -1.0), 10.0 * n][None]
    y = np.concatenate([y, np.zeros_like(y)])
    calls = []
    host = runner.run_host

    def spy(kernel, yh, wh, *args):
        calls.append(yh.shape[0])
        return host(kernel, yh, wh, *args)

    monkeypatch.setattr(runner, "run_host", spy)
    ref = treeiso.fit(y, treeiso.Tree.chain(n))
    w = np.random.default_rng(3).uniform(0.5, 2.0, size=(1, n))  # shared by both rows
    ref_w = treeiso.fit(y, treeiso.Tree.chain(n), w)
    x, _ = ops.chain_op(torch.tensor(y), None, torch.arange(n), True)
    assert calls == [1]  # only the long cascade went to the host
    np.testing.assert_allclose(x.numpy(), ref, rtol=1e-12)
    x, _ = ops.chain_op(torch.tensor(y), torch.tensor(w), torch.arange(n), True)
    assert calls == [1, 1]
    np.testing.assert_allclose(x.numpy(), ref_w, rtol=1e-12)


def test_native_broom_matches_host_kernel():
    rng = np.random.default_rng(4)
    y = torch.tensor(rng.normal(size=(64, 30)))
    w = torch.tensor(np.exp(rng.normal(size=(64, 30)) * 2))
    lab = torch.tensor(rng.integers(-1, 30, size=(64, 4)))
    xh, th = ops.broom_op(y, w, lab, False)
    xn, tn = ops.broom_op(y, w, lab, True)
    torch.testing.assert_close(xn, xh, rtol=1e-12, atol=1e-12)
    assert torch.equal(tn, th)


@pytest.mark.parametrize("wkind", ["none", "rows", "shared"])
def test_broom_sort_strategy_and_fallback(wkind, monkeypatch):
    rng = np.random.default_rng(9)
    y = rng.normal(size=(40, 25))
    y[::5] = np.round(y[::5])
    w = {"none": None, "rows": np.exp(rng.normal(size=y.shape) * 2),
         "shared": np.exp(rng.normal(size=(1, 25)) * 2)}[wkind]
    lab = torch.tensor(rng.integers(-1, 25, size=(40, 3)))
    ref = treeiso.fit_topk(y, lab.numpy(), w)
    yt = torch.tensor(y)
    wt = None if w is None else torch.tensor(w)
    labc = tn.compact_labels(lab)
    xs, _ = tn.broom_native(yt, wt, labc, "sort")
    torch.testing.assert_close(xs, torch.tensor(ref), rtol=1e-12, atol=1e-12)
    # No fixed-point round allowed: the native path must fall back to the sort.
    calls = []
    native = tn.broom_native

    def spy(*args):
        calls.append(args[3] if len(args) > 3 else None)
        return native(*args)

    monkeypatch.setattr(tn, "BROOM_ROUNDS", 0)
    monkeypatch.setattr(tn, "broom_native", spy)
    xf, _ = ops.broom_op(yt, wt, lab, True)
    assert calls == [None, "sort"]  # the op's call, then the fallback's
    torch.testing.assert_close(xf, torch.tensor(ref), rtol=1e-12, atol=1e-12)


def test_shared_weight_row_values_and_gradients():
    # Weights of shape (n,) for (B, n) values travel as one (1, n) row (no (B, n) copy).
    g = torch.Generator().manual_seed(11)
    for tree in (TREES["chain_shuffled"], TREES["broom"], TREES["general"]):
        y = torch.randn(3, tree.n, generator=g, dtype=torch.float64, requires_grad=True)
        w = (torch.rand(tree.n, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
        ref = treeiso.fit(y.detach().numpy(), tree, w.detach().numpy())
        assert ta.tensor_problem(y, w, -1, "root_largest", (None, None)).w.shape == (1, tree.n)
        np.testing.assert_allclose(treeiso.fit(y, tree, w).detach().numpy(), ref,
                                   rtol=1e-12, atol=1e-12)
        assert torch.autograd.gradcheck(lambda y, w: treeiso.fit(y, tree, w), (y, w))
    lab = torch.tensor([[0, 2], [1, -1], [3, 3]])
    y = torch.randn(3, 7, generator=g, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(1, 7, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    for native in (False, True):
        assert torch.autograd.gradcheck(lambda y, w: ops.broom_op(y, w, lab, native)[0], (y, w))
        assert torch.autograd.gradcheck(
            lambda y, w: ops.chain_op(y, w, torch.arange(7), native)[0], (y, w))


def test_float32_topk_agrees_with_float64():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(64, 1000, generator=g) * 3 + 1000
    lab = torch.stack([torch.randperm(1000, generator=g)[:2] for _ in range(64)])
    for native in (False, True):
        x32, _ = ops.broom_op(y, None, lab, native)
        x64, _ = ops.broom_op(y.double(), None, lab, native)
        assert ((x32.double() - x64).abs() / x64.abs()).max() < 1e-6


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["chain_shuffled", "mixup", "broom", "general"])
def test_gradcheck_fit(device, name):
    tree = TREES[name]
    g = torch.Generator().manual_seed(5)
    y = torch.randn(2, tree.n, generator=g, dtype=torch.float64).to(device).requires_grad_()
    w = (torch.rand(2, tree.n, generator=g, dtype=torch.float64) + 0.5).to(device)
    w.requires_grad_()
    for orientation in ("root_largest", "root_smallest"):
        assert torch.autograd.gradcheck(
            lambda y, w: treeiso.fit(y, tree, w, orientation=orientation), (y, w))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("native", [False, True])
def test_gradcheck_topk(device, native):
    g = torch.Generator().manual_seed(6)
    y = torch.randn(5, 7, generator=g, dtype=torch.float64).to(device).requires_grad_()
    w = (torch.rand(5, 7, generator=g, dtype=torch.float64) + 0.5).to(device).requires_grad_()
    lab = torch.tensor([[0, 2], [1, -1], [3, 3], [6, 4], [-1, -1]], device=device)
    assert torch.autograd.gradcheck(lambda y, w: ops.broom_op(y, w, lab, native)[0], (y, w))
    assert torch.autograd.gradcheck(lambda y: treeiso.fit_topk(y, lab), (y,))


def test_vjp_is_block_averaging():
    # y = [0, 1, 10] on the star centred at 0: blocks {0, 2} and {1}.
    y = torch.tensor([0.0, 1.0, 10.0], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([1.0, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    x = treeiso.fit_topk(y, torch.tensor([0]), w)
    gy, gw = torch.autograd.grad(x @ torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64), (y, w))
    torch.testing.assert_close(gy, torch.tensor([1.5, 2.0, 4.5], dtype=torch.float64))
    m = 30.0 / 4.0
    torch.testing.assert_close(gw, torch.tensor([(0 - m) * 1.5, 0.0, (10 - m) * 1.5],
                                                dtype=torch.float64))


# ----------------------------------------------------------------------------- custom ops
@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    g = torch.Generator().manual_seed(7)
    y = torch.randn(3, 6, generator=g, dtype=torch.float64).to(device).requires_grad_()
    w = (torch.rand(3, 6, generator=g, dtype=torch.float64) + 0.5).to(device).requires_grad_()
    w1 = w[:1].detach().clone().requires_grad_()  # one row shared by every row
    lab = torch.tensor([[0, 2], [1, -1], [5, 5]], device=device)
    tree = treeiso.Tree([-1, 0, 0, 1, 1, 2])
    order = torch.from_numpy(np.array(tree.order))
    parent_pos = torch.from_numpy(np.array(tree.parent_pos))
    for native in (False, True):
        torch.library.opcheck(ops.broom_op, (y, w, lab, native))
        torch.library.opcheck(ops.broom_op, (y, w1, lab, native))
        torch.library.opcheck(ops.chain_op, (y, None, torch.tensor([2, 0, 1, 5, 4, 3]), native))
        torch.library.opcheck(ops.chain_op, (y, w, torch.arange(6), native))
    torch.library.opcheck(ops.tree_op, (y, w, order, parent_pos, "irt-pairing"))
    torch.library.opcheck(ops.tree_op, (y, w1, order, parent_pos, "irt-leftist"))


def test_compile_parity():
    # aot_eager: traces the ops through their fake kernels and autograd formula without
    # inductor's C++ compile (slow on two cores).
    g = torch.Generator().manual_seed(8)
    y = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(4, 6, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    lab = torch.tensor([[0, 2], [1, -1], [3, 3], [5, 4]])
    chain = treeiso.Tree.chain(6)

    def f(y, w):
        return treeiso.fit_topk(y, lab, w) * 2 + treeiso.fit(y, chain, w)

    cf = torch.compile(f, backend="aot_eager", fullgraph=True)
    out, ref = cf(y, w), f(y, w)
    torch.testing.assert_close(out, ref)
    probe = torch.arange(6, dtype=torch.float64)
    g1 = torch.autograd.grad((out * probe).sum(), (y, w))
    g2 = torch.autograd.grad((ref * probe).sum(), (y, w))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------- errors
def test_errors():
    t = treeiso.Tree.chain(3)
    with pytest.raises(ValueError, match="NaN"):
        treeiso.fit(torch.tensor([1.0, float("nan"), 0.0]), t)
    with pytest.raises(ValueError, match="> 0"):
        treeiso.fit(torch.ones(3), t, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(TypeError, match="tensors"):
        treeiso.fit(torch.ones(3), t, np.ones(3))
    with pytest.raises(TypeError, match="complex"):
        treeiso.fit(torch.ones(3, dtype=torch.complex64), t)
    with pytest.raises(ValueError, match="nodes"):
        treeiso.fit(torch.ones(4), t)
    with pytest.raises(ValueError, match="broadcast"):
        treeiso.fit(torch.ones(2, 3), t, torch.ones(4, 3))
    with pytest.raises(ValueError, match="method"):
        treeiso.fit(torch.ones(3), treeiso.Tree.star(3), method="pav")
    with pytest.raises(ValueError, match="backend"):
        treeiso.fit(torch.zeros(3), [-1, 0, 0], backend="numba")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
def test_mixed_devices_cuda():
    with pytest.raises(ValueError, match="cpu"):
        treeiso.fit(torch.ones(3, device="cuda"), treeiso.Tree.chain(3), torch.ones(3))


def test_empty_and_broadcast_shapes():
    assert treeiso.fit(torch.randn(0, 4), treeiso.Tree.chain(4)).shape == (0, 4)
    assert treeiso.fit(torch.randn(3, 0), treeiso.Tree.chain(0)).shape == (3, 0)
    assert treeiso.fit(torch.randn(0, 4), treeiso.Tree([-1, 0, -1, 2])).shape == (0, 4)
    assert treeiso.fit_topk(torch.zeros(0, 5), torch.zeros(0, 2, dtype=torch.long)).shape == (0, 5)
    y = torch.randn(3, 5)
    assert torch.equal(treeiso.fit_topk(y, torch.zeros(3, 0, dtype=torch.long)), y)
    x = treeiso.fit_topk(torch.randn(2, 3, 5, dtype=torch.float16), torch.tensor([4, 1]))
    assert x.shape == (2, 3, 5) and x.dtype == torch.float16
    xi = treeiso.fit_topk(torch.arange(5), torch.tensor([0]))
    torch.testing.assert_close(xi, torch.tensor([7 / 3, 1, 2, 7 / 3, 7 / 3], dtype=torch.float64))


def test_inputs_not_modified_and_noncontiguous():
    y = torch.randn(6, 4).t()  # (4, 6), non-contiguous
    y0 = y.clone()
    w = torch.rand(4, 6) + 0.5
    treeiso.fit(y, treeiso.Tree.chain(6), w)
    treeiso.fit_topk(y, torch.tensor([2, 3]), w)
    assert torch.equal(y, y0)
    torch.testing.assert_close(treeiso.fit_topk(y, torch.tensor([2, 3]), w),
                               treeiso.fit_topk(y.contiguous(), torch.tensor([2, 3]), w))


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    @settings(max_examples=60)
    @given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 12)),
                      elements=st.sampled_from([-2.0, -0.5, 0.0, 0.5, 1.0, 3.0, 1e3])),
           st.sampled_from(["one", "extreme"]))
    def test_hypothesis_native_chains(y, wkind):
        rng = np.random.default_rng(y.size)
        w = (np.ones_like(y) if wkind == "one"
             else rng.choice([1e-4, 1.0, 1e4], size=y.shape))
        ref = treeiso.fit(y, treeiso.Tree.chain(y.shape[1]), w)
        x, top = ops.chain_op(torch.tensor(y), torch.tensor(w), torch.arange(y.shape[1]), True)
        np.testing.assert_allclose(x.numpy(), ref, rtol=1e-9, atol=1e-9 * np.abs(y).max())
