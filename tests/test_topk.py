"""fit_topk: brooms per row, NumPy/Numba and torch, against independent references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import treeiso
from naive import brute_force_fit
from strategies import W_MAX, W_MIN
from treeiso._topk import compact_labels

def _torch():
    return pytest.importorskip("torch")


def bvls_fit(y, parent, w):
    """Least squares over x = A (s * d) with d >= 0 below the root, by SciPy BVLS."""
    from scipy.optimize import lsq_linear

    n = len(y)
    a = np.zeros((n, n))
    for i in range(n):
        j = i
        while j >= 0:
            a[i, j] = 1.0
            j = parent[j]
    s = np.where(parent < 0, 1.0, -1.0)
    lb = np.where(parent < 0, -np.inf, 0.0)
    sw = np.sqrt(w)
    r = lsq_linear(sw[:, None] * a * s, sw * y, bounds=(lb, np.inf), method="bvls", tol=1e-15)
    return a @ (s * r.x)


def broom_parent(c, handle):
    parent = np.full(c, handle[-1])
    parent[handle[0]] = -1
    parent[handle[1:]] = handle[:-1]
    return parent


def reference_row(y, handle, w):
    """Independent answer for one row: brute force when small, BVLS otherwise."""
    if len(handle) == 0:
        return np.asarray(y, dtype=float)
    parent = broom_parent(len(y), np.asarray(handle))
    if len(y) <= 9:
        return brute_force_fit(y, parent, w)
    return bvls_fit(np.asarray(y, float), parent, np.asarray(w, float))


def first_unique(row):
    out = []
    for v in row:
        if v >= 0 and v not in out:
            out.append(int(v))
    return out


# ----------------------------------------------------------------------------- exact values
def test_mixup_two_cases():
    # y1 >= v2: x1 = y1, x2 = star value of class 2 with the leaves.
    assert np.allclose(treeiso.fit_topk([5.0, 1.0, 3.0, 0.0], [0, 1]), [5, 2, 2, 0])
    # y1 < v2: both pooled at m12.
    assert np.allclose(treeiso.fit_topk([0.0, 1.0, 3.0, 0.0], [0, 1]), [4 / 3, 4 / 3, 4 / 3, 0])


def test_max_first_example_from_spec():
    # root 0 with leaves 1 and 10 gives [5, 1, 5].
    assert np.allclose(treeiso.fit_topk([[0.0, 1.0, 10.0]], [[0]]), [[5, 1, 5]])


def test_padding_and_repeats():
    y = np.array([[1.0, 3.0, 0.0, 2.0]] * 4)
    lab = np.array([[-1, 1, 1, 0], [1, 0, -1, -1], [-1, -1, -1, -1], [2, 2, 2, 2]])
    x = treeiso.fit_topk(y, lab)
    assert np.allclose(x[0], x[1])
    assert np.array_equal(x[2], y[2])
    assert np.allclose(x[3], treeiso.fit(y[3], treeiso.Tree.star(4, 2)))
    assert compact_labels(lab).tolist() == [
        [1, 0, -1, -1], [1, 0, -1, -1], [-1, -1, -1, -1], [2, -1, -1, -1]]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_against_fit_on_explicit_trees(k):
    rng = np.random.default_rng(k)
    n_rows, c = 40, 12
    y = rng.normal(size=(n_rows, c))
    y[::3] = np.round(y[::3])  # ties
    w = np.exp(rng.normal(size=(n_rows, c)) * 2)
    lab = np.stack([rng.permutation(c)[:k] for _ in range(n_rows)])
    x = treeiso.fit_topk(y, lab, w)
    for b in range(n_rows):
        ref = treeiso.fit(y[b], treeiso.Tree.broom(c, lab[b]), w[b], method="irt")
        assert np.allclose(x[b], ref, rtol=1e-12, atol=1e-12)


def test_against_bvls_larger_rows():
    rng = np.random.default_rng(7)
    for k in (1, 2, 4):
        y = rng.standard_cauchy(30)
        w = rng.integers(1, 6, 30).astype(float)
        h = rng.permutation(30)[:k]
        x = treeiso.fit_topk(y, h, w)
        assert np.allclose(x, bvls_fit(y, broom_parent(30, h), w), rtol=1e-9, atol=1e-9)


def test_dtype_shape_and_inputs_untouched():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 3, 6)).astype(np.float32)
    lab = np.array([0, 1])  # broadcast to every row
    y0, lab0 = y.copy(), lab.copy()
    y.setflags(write=False)
    x = treeiso.fit_topk(y, lab)
    assert x.dtype == np.float32 and x.shape == y.shape
    assert np.array_equal(y, y0) and np.array_equal(lab, lab0)
    assert treeiso.fit_topk(np.arange(4), [3]).dtype == np.float64
    assert treeiso.fit_topk(np.zeros((0, 5)), np.zeros((0, 2), int)).shape == (0, 5)
    xt = treeiso.fit_topk(np.asfortranarray(rng.normal(size=(5, 4))), [[2]] * 5)
    assert xt.shape == (5, 4)


def test_float32_centred_matches_float64():
    rng = np.random.default_rng(3)
    y = (rng.normal(size=(64, 1000)) * 3 + 1000).astype(np.float32)
    lab = np.stack([rng.permutation(1000)[:2] for _ in range(64)])
    x32 = treeiso.fit_topk(y, lab)
    x64 = treeiso.fit_topk(y.astype(np.float64), lab)
    assert np.max(np.abs(x32 - x64) / np.abs(x64)) < 1e-6


def test_geometric_leaves():
    # Leaves on many scales: the fixed point's sets shrink over several rounds.
    c = 200
    y = np.concatenate([[0.0], 2.0 ** -np.arange(c - 1) * 1e3])
    y[1:] = np.sort(y[1:])[::-1]
    x = treeiso.fit_topk(y, [0])
    assert np.allclose(x, treeiso.fit(y, treeiso.Tree.star(c, 0), method="irt"), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_root_smallest_matches_fit(k):
    rng = np.random.default_rng(10 + k)
    n_rows, c = 20, 9
    y = rng.normal(size=(n_rows, c))
    y[::4] = np.round(y[::4])
    w = np.exp(rng.normal(size=(n_rows, c)))
    lab = np.stack([rng.permutation(c)[:k] for _ in range(n_rows)])
    x = treeiso.fit_topk(y, lab, w, orientation="root_smallest")
    for b in range(n_rows):
        ref = treeiso.fit(y[b], treeiso.Tree.broom(c, lab[b]), w[b], orientation="root_smallest")
        assert np.allclose(x[b], ref, rtol=1e-12, atol=1e-12)
        assert x[b, lab[b, 0]] <= x[b].min() + 1e-12
    torch = _torch()
    xt = treeiso.fit_topk(torch.tensor(y), torch.tensor(lab), torch.tensor(w),
                          orientation="root_smallest")
    assert np.allclose(xt.numpy(), x, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="orientation"):
        treeiso.fit_topk(y, lab, orientation="max")
    with pytest.raises(ValueError, match="orientation"):
        treeiso.fit_topk(torch.tensor(y), torch.tensor(lab), orientation="max")


def test_float32_values_float64_weights_and_shared_rows():
    rng = np.random.default_rng(11)
    y = rng.normal(size=(3, 5, 40))
    w = np.exp(rng.normal(size=40) * 3)  # one row of weights for every row (Bw = 1)
    lab = np.stack([rng.permutation(40)[:3] for _ in range(15)]).reshape(3, 5, 3)
    x = treeiso.fit_topk(y, lab, w)
    full = treeiso.fit_topk(y, lab, np.broadcast_to(w, y.shape).copy())
    assert np.array_equal(x, full)
    x32 = treeiso.fit_topk(y.astype(np.float32), lab, w)  # float32 rows, float64 weights
    assert x32.dtype == np.float32
    assert np.allclose(x32, treeiso.fit_topk(y.astype(np.float32).astype(np.float64), lab, w),
                       rtol=1e-6, atol=1e-6)


def adversarial_star(m):
    """Centre 0 (weight 1) and leaves that the fixed point drops one per round: m rounds.

    Leaf 1 at 2m pulls the mean to t_1 = m; leaf k >= 2 sits at m + 0.5 - k with weight
    2 W_(k-1), so the mean with leaves 1..k is t_k = m + 1 - k, between leaves k and k - 1.
    """
    z = np.empty(m)
    w = np.empty(m)
    z[0], w[0] = 2.0 * m, 1.0
    tot = 2.0
    for k in range(2, m + 1):
        z[k - 1] = m + 0.5 - k
        w[k - 1] = 2.0 * tot
        tot += w[k - 1]
    return z, w


def test_star_sorted_fallback_in_the_kernel():
    # More rounds than _MAX_ITER: the kernel ends on the sorted greedy over the compacted set.
    from treeiso._kernels import broom as _broom

    m = _broom._MAX_ITER + 20
    z, wl = adversarial_star(m)
    y = np.concatenate([[0.0], z])
    w = np.concatenate([[1.0], wl])
    x = treeiso.fit_topk(y, [0], w)
    assert np.allclose(x[[0, 1]], m, rtol=1e-12) and np.array_equal(x[2:], y[2:])
    ref = treeiso.fit(y, treeiso.Tree.star(m + 1, 0), w, method="irt")
    assert np.allclose(x, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("unit", [False, True])
def test_star_sorted_against_fixed_point(unit, monkeypatch):
    from treeiso._kernels import broom as _broom

    rng = np.random.default_rng(12 + unit)
    for _ in range(50):
        c = int(rng.integers(1, 40))
        z = rng.normal(size=c) * rng.choice([0.1, 1.0, 100.0])
        if rng.random() < 0.3:
            z = np.round(z)
        w = np.ones(c) if unit else np.exp(rng.normal(size=c) * 2)
        cs, wc = float(rng.normal()), float(rng.uniform(0.1, 3.0))
        ea = np.finfo(float).eps * max(np.abs(z).max(), abs(cs / wc))
        v, _ = _broom._star(z, w, unit, cs, wc, np.empty(c), np.empty(c), 1, ea)
        assert np.isclose(_broom._star_sorted(z, w, cs, wc), v, rtol=1e-12, atol=1e-12)
        # Any superset of {z > v} gives the same value: the compacted call of the fallback.
        keep = z > min(v, cs / wc) - rng.uniform(0, 1)
        assert np.isclose(_broom._star_sorted(z[keep], w[keep], cs, wc), v, rtol=1e-12,
                          atol=1e-12)
        # The fallback itself, in the Python version of _star with few rounds allowed.
        monkeypatch.setattr(_broom, "_MAX_ITER", int(rng.integers(0, 2)))
        vp, _ = _broom._star.py_func(z, w, unit, cs, wc, np.empty(c), np.empty(c), 1, ea)
        monkeypatch.undo()
        assert np.isclose(vp, v, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- hypothesis
@st.composite
def topk_rows(draw):
    c = draw(st.integers(1, 8))
    k = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["normal", "ties", "offset", "far", "int"]))
    elems = {
        "normal": st.floats(-10, 10, allow_nan=False),
        "ties": st.sampled_from([-1.0, 0.0, 0.5, 2.0]),
        "offset": st.sampled_from([1e3, 1e3 + 1, 1e3 - 0.5]),
        "far": st.sampled_from([-1e12, -1e12 + 1e8, -1e12 - 5e7, 1e12, 1e12 + 1e8]),
        "int": st.integers(-3, 3).map(float),
    }[kind]
    y = draw(hnp.arrays(np.float64, c, elements=elems))
    lab = draw(hnp.arrays(np.int64, k, elements=st.integers(-1, c - 1)))
    wkind = draw(st.sampled_from(["one", "int", "extreme", "wide"]))
    if wkind == "one":
        w = np.ones(c)
    elif wkind == "int":
        w = draw(hnp.arrays(np.float64, c, elements=st.integers(1, 5).map(float)))
    elif wkind == "extreme":  # light and heavy side by side, 1e-12 .. 1e12
        w = draw(hnp.arrays(np.float64, c, elements=st.sampled_from(
            [W_MIN, 1e-6, 1.0, 1e6, W_MAX])))
    else:
        w = draw(hnp.arrays(np.float64, c, elements=st.floats(
            np.log(W_MIN), np.log(W_MAX)).map(np.exp)))
    return y, lab, w


@settings(max_examples=120)
@given(topk_rows())
def test_hypothesis_against_brute_force(case):
    y, lab, w = case
    x = treeiso.fit_topk(y, lab, w)
    ref = reference_row(y, first_unique(lab), w)
    assert np.allclose(x, ref, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(y).max()))


@settings(max_examples=60)
@given(topk_rows())
def test_hypothesis_torch_matches_numpy(case):
    torch = _torch()
    y, lab, w = case
    x = treeiso.fit_topk(y, lab, w)
    yt, lt, wt = torch.tensor(y), torch.tensor(lab), torch.tensor(w)
    assert np.allclose(treeiso.fit_topk(yt, lt, wt).numpy(), x, rtol=1e-12, atol=1e-12)
    from treeiso._backends.torch_ops import broom_op as _broom_op

    xn, _ = _broom_op(yt[None], wt[None], lt[None], True)  # the device-native path, on CPU
    assert np.allclose(xn[0].numpy(), x, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(y).max()))


# ----------------------------------------------------------------------------- bad input
BAD = [
    (dict(values=[[1.0, np.nan]], labels=[[0]]), ValueError, "NaN"),
    (dict(values=[[np.nan, 1.0]], labels=[[-1]]), ValueError, "NaN"),
    (dict(values=[[1.0, -np.inf]], labels=[[1]]), ValueError, "infinite"),
    (dict(values=[[1.0, 2.0]], labels=[[2]]), ValueError, "labels must be class indices"),
    (dict(values=[[1.0, 2.0]], labels=[[-2]]), ValueError, "labels must be class indices"),
    (dict(values=[[1.0, 2.0]], labels=[[0.0]]), TypeError, "labels must be integers"),
    (dict(values=[[1.0, 2.0]], labels=[[True]]), TypeError, "labels must be integers"),
    (dict(values=np.ones((3, 2)), labels=np.zeros((2, 1), int)), ValueError, "do not fit"),
    (dict(values=[[1.0, 2.0]], labels=[[0]], weights=[[1.0, 0.0]]), ValueError, "> 0"),
    (dict(values=[[1.0, 2.0]], labels=[[0]], weights=[1.0, 1.0, 1.0]), ValueError, "broadcast"),
    (dict(values=1.0, labels=[0]), ValueError, "at least one dimension"),
    (dict(values=[["a", "b"]], labels=[[0]]), TypeError, "numeric"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD)
def test_bad_input_numpy(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        treeiso.fit_topk(**kwargs)


@pytest.mark.parametrize("kwargs, exc, match", BAD[:-2])  # the last two cannot be tensors
def test_bad_input_torch(kwargs, exc, match):
    torch = _torch()
    args = {}
    for key, val in kwargs.items():
        arr = np.asarray(val)
        args[key] = torch.tensor(arr)
    with pytest.raises(exc, match=match):
        treeiso.fit_topk(**args)


def test_mixed_array_libraries():
    torch = _torch()
    with pytest.raises(TypeError, match="torch"):
        treeiso.fit_topk(np.ones((2, 3)), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="tensors"):
        treeiso.fit_topk(torch.ones(2, 3), np.zeros((2, 1), int))
    with pytest.raises(TypeError, match="tensors"):
        treeiso.fit_topk(torch.ones(2, 3), torch.zeros(2, 1, dtype=torch.long), np.ones((2, 3)))


@pytest.mark.cuda
def test_mixed_devices_cuda():
    torch = _torch()
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    with pytest.raises(ValueError, match="on cpu"):
        treeiso.fit_topk(torch.ones(2, 3, device="cuda"), torch.zeros(2, 1, dtype=torch.long))
