"""The edges a hostile user reaches first: memory safety with checks off, threads racing
over the pool, precisions, extreme ranges, and the error each bad input must give."""

import subprocess
import sys
import textwrap
import threading
import tracemalloc

import numpy as np
import pytest

import treeiso

torch = pytest.importorskip("torch")


def run_isolated(code):
    """Run ``code`` in a fresh interpreter: a memory error kills that process, not pytest."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


# --------------------------------------------------------------------- memory safety
@pytest.mark.parametrize("label", [5, 7, 10**9, -2, -(10**9)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_out_of_range_label_with_checks_off_is_an_error_not_a_write(label, dtype):
    result = run_isolated(f"""
        import torch, treeiso
        y = torch.zeros(1, 5, dtype=torch.{dtype})
        try:
            treeiso.fit_topk(y, torch.tensor([[{label}]]), check_finite=False)
        except ValueError as e:
            assert "labels must be class indices in [0, 5)" in str(e), e
            print("refused")
        """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "refused"


def test_out_of_range_label_is_refused_on_every_path():
    y = np.zeros((3, 5))
    for check in (True, False):
        with pytest.raises(ValueError, match=r"\[0, 5\)"):
            treeiso.fit_topk(y, [[0], [5], [1]], check_finite=check)
        with pytest.raises(ValueError, match=r"\[0, 5\)"):
            treeiso.fit_topk(torch.zeros(3, 5), torch.tensor([[0], [1], [-3]]),
                             check_finite=check)
        with pytest.raises(ValueError, match=r"\[0, 5\)"):
            treeiso.fit_topk(torch.zeros(3, 5), torch.tensor([[0], [1], [6]]),
                             check_finite=check, threads=2)


def test_label_compaction_memory_is_linear_in_the_labels():
    # (B, k, k) comparisons took 97 MiB for this 0.4 MiB input; O(B k) takes a few MiB.
    rng = np.random.default_rng(0)
    b, k = 50, 1000
    y = rng.normal(size=(b, k))
    lab = rng.integers(-1, k, size=(b, k))
    treeiso.fit_topk(y[:2], lab[:2])  # compile first: tracemalloc counts the compiler too
    tracemalloc.start()
    x = treeiso.fit_topk(y, lab)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * y.nbytes, peak
    # Same answer as the rows fitted one by one on their broom trees (first copy wins).
    for r in (0, 17, 49):
        seen = []
        for v in lab[r]:
            if v >= 0 and v not in seen:
                seen.append(int(v))
        np.testing.assert_allclose(x[r], treeiso.fit(y[r], treeiso.Tree.broom(k, seen),
                                                     method="irt"), rtol=0, atol=1e-12)


def test_torch_label_compaction_keeps_the_first_copy():
    from treeiso._backends.torch_native import compact_labels as _compact_labels

    lab = torch.tensor([[3, -1, 3, 1, 1, 0, 3], [-1, -1, -1, -1, -1, -1, -1],
                        [6, 5, 4, 3, 2, 1, 0]])
    want = [[3, 1, 0, -1, -1, -1, -1], [-1] * 7, [6, 5, 4, 3, 2, 1, 0]]
    assert _compact_labels(lab).tolist() == want


# --------------------------------------------------------------------- threads
def test_concurrent_calls_with_changing_thread_counts_all_succeed():
    # A pool that grew was shut down under a thread still submitting to it.
    rng = np.random.default_rng(1)
    y = rng.normal(size=(64, 600))
    parent = np.concatenate([[-1], rng.integers(0, np.arange(1, 600))])
    tree = treeiso.Tree(parent)
    want = treeiso.fit(y, tree, threads=1)
    errors = []

    def steady():
        try:
            for _ in range(60):
                np.testing.assert_array_equal(treeiso.fit(y, tree, threads=2), want)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def growing():
        try:
            for t in range(3, 120, 4):
                np.testing.assert_array_equal(treeiso.fit(y, tree, threads=t), want)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    workers = [threading.Thread(target=steady) for _ in range(3)]
    workers += [threading.Thread(target=growing)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors[0]


def test_any_thread_count_is_accepted():
    y = torch.tensor([[3.0, 1.0, 2.0]] * 4)
    for threads in (1, 2**31, 2**70, np.int64(3)):
        np.testing.assert_array_equal(treeiso.fit(y, [-1, 0, 0], threads=threads).numpy(),
                                      np.tile([3.0, 1.0, 2.0], (4, 1)))
        treeiso.fit_topk(y, torch.tensor([[0]]), threads=threads)
        treeiso.fit(y.numpy(), [-1, 0, 0], threads=threads)


# --------------------------------------------------------------------- one behaviour
def test_torch_and_numpy_accept_the_same_weights_values_and_bounds():
    y = np.float32([3.0, 1.0, 2.0])
    w = np.float32([1e-26, 1e12, 1.0])
    want = treeiso.fit(y, [-1, 0, 0], w)
    got = treeiso.fit(torch.from_numpy(y), [-1, 0, 0], torch.from_numpy(w))
    np.testing.assert_array_equal(got.numpy(), want)
    # booleans and a scalar weight
    yb = np.array([True, False, True])
    np.testing.assert_array_equal(treeiso.fit(torch.from_numpy(yb), [-1, 0, 0]).numpy(),
                                  treeiso.fit(yb, [-1, 0, 0]))
    np.testing.assert_array_equal(
        treeiso.fit(torch.tensor([0.0, 1.0, 10.0]), [-1, 0, 0], 2.0).numpy(), [5, 1, 5])
    # a bound no float32 can meet is an error on both; one that binds nothing is ignored
    for vals in (y, torch.from_numpy(y)):
        with pytest.raises(ValueError, match="above the largest .*float32"):
            treeiso.fit(vals, [-1, 0, 0], y_min=1e300)
        with pytest.raises(ValueError, match="below the smallest .*float32"):
            treeiso.fit(vals, [-1, 0, 0], y_max=-1e300)
        x = treeiso.fit(vals, [-1, 0, 0], y_max=1e300, y_min=-1e300)
        np.testing.assert_array_equal(np.asarray(x), y)
    with pytest.raises(ValueError, match="above the largest float16"):
        treeiso.fit_topk(np.float16([[1, 2]]), [[0]], y_min=1e5)


def test_weight_gradients_keep_the_weights_dtype():
    y = torch.tensor([[0.0, 1.0, 10.0]], requires_grad=True)
    w = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    treeiso.fit(y, [-1, 0, 0], w).sum().backward()
    assert y.grad.dtype == torch.float32 and w.grad.dtype == torch.float32
    assert torch.isfinite(w.grad).all()


# --------------------------------------------------------------------- clear errors
def test_long_double_beyond_float64_is_refused():
    big = np.array([np.longdouble("1e400"), 1, 2])
    with pytest.raises(ValueError, match="beyond float64's range"):
        treeiso.fit(big, [-1, 0, 0])
    with pytest.raises(ValueError, match="beyond float64's range"):
        treeiso.fit_topk(big[None], [[0]])
    with pytest.raises(ValueError, match="beyond float64's range"):
        treeiso.certify(big, [-1, 0, 1], [1e308, 1, 2])
    ok = np.array([np.longdouble(3), 1, 2])
    assert treeiso.fit(ok, [-1, 0, 0]).dtype == np.longdouble


def test_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="y_min must be a finite number within float64"):
        treeiso.fit([3.0, 1.0, 2.0], [-1, 0, 0], y_min=10**400)
    with pytest.raises(ValueError, match=r"edge \(0, 1\) is repeated"):
        treeiso.Tree.from_edges([(0, 1), (0, 1)])
    with pytest.raises(ValueError, match="more than one parent"):
        treeiso.Tree.from_edges([(0, 1), (2, 1), (0, 2)])


# --------------------------------------------------------------------- the certificate
def random_tree(rng, n):
    return np.concatenate([[-1], rng.integers(0, np.arange(1, n))]) if n > 1 else [-1]


@pytest.mark.parametrize("dtype", ["float16", "float32", "bfloat16", "float64"])
def test_certificate_accepts_fits_in_their_precision_and_rejects_larger_errors(dtype):
    rng = np.random.default_rng(2)
    tdt = getattr(torch, dtype)
    eps = float(torch.finfo(tdt).eps)
    for _ in range(150):
        n = int(rng.integers(2, 30))
        parent = random_tree(rng, n)
        scale = 10 ** rng.uniform(-2, 3)
        y = torch.tensor(rng.normal(size=n) * scale + rng.normal() * scale, dtype=tdt)
        w = torch.tensor(10 ** rng.uniform(-2, 2, size=n), dtype=torch.float64)
        x = treeiso.fit(y, parent, w)
        assert x.dtype == tdt
        assert treeiso.certify(y, parent, x, w).optimal
        if dtype in ("float16", "float32", "float64"):  # NumPy has these dtypes
            yn = y.numpy()
            assert treeiso.certify(yn, parent, treeiso.fit(yn, parent, w.numpy()),
                                   w.numpy()).optimal
        # Move one block of the exact answer by 100 units of the precision: rejected.
        res = treeiso.fit(y.double(), parent, w, return_blocks=True)
        moved = res.x.clone()
        b = res.blocks[int(rng.integers(n))]
        amax = float(y.double().abs().max())
        moved[res.blocks == b] += 100 * eps * amax + 1e-6 * float(y.max() - y.min())
        assert not treeiso.certify(y, parent, moved.to(tdt), w).optimal


def test_certificate_of_a_bounded_problem():
    rng = np.random.default_rng(3)
    y = np.array([0.0, 1.0, 10.0])
    assert treeiso.certify(y, [-1, 0, 0], treeiso.fit(y, [-1, 0, 0], y_max=4.0),
                           y_max=4.0).optimal
    assert not treeiso.certify(y, [-1, 0, 0], [4.0, 1.0, 4.0]).optimal  # unbounded: wrong
    checked = 0
    for t in range(300):
        n = int(rng.integers(1, 30))
        parent = random_tree(rng, n)
        y = rng.normal(size=n)
        w = 10 ** rng.uniform(-3, 3, size=n)
        lo, hi = sorted(rng.normal(size=2) * 0.7)
        kw = {"y_min": lo if t % 3 else None, "y_max": hi if t % 2 else None}
        for orientation in ("root_largest", "root_smallest"):
            x = treeiso.fit(y, parent, w, orientation=orientation, **kw)
            assert treeiso.certify(y, parent, x, w, orientation=orientation, **kw).optimal
            # Wrong answers: the unbounded fit where a bound binds, a clipped-data fit, and
            # the bounded fit moved off a bound.
            free = treeiso.fit(y, parent, w, orientation=orientation)
            clipped_data = treeiso.fit(np.clip(y, kw["y_min"], kw["y_max"]), parent, w,
                                       orientation=orientation)
            for wrong in (free, clipped_data, x + 1e-4):
                if np.abs(wrong - x).max() > 1e-6:
                    checked += 1
                    assert not treeiso.certify(y, parent, wrong, w, orientation=orientation,
                                               **kw).optimal
    assert checked > 300


def test_certificate_gap_bounds_the_distance_at_extreme_weights():
    rng = np.random.default_rng(4)
    for _ in range(200):
        n = int(rng.integers(2, 20))
        parent = random_tree(rng, n)
        y = rng.normal(size=n)
        w = 10 ** rng.uniform(-150, 150, size=n)
        x = treeiso.fit(y, parent, w)
        leaves = np.setdiff1d(np.arange(n), parent)
        for cand in (x + rng.normal() * 1e-3,  # feasible: one shift for all keeps the order
                     x - 0.1 * (np.arange(n) == leaves[np.argmin(w[leaves])])):  # a leaf down
            dist = 0.5 * np.sum(w * (cand - x) ** 2)
            gap = treeiso.certify(y, parent, cand, w).gap
            assert gap >= dist * (1 - 1e-9), (gap, dist)


# --------------------------------------------------------------------- the reference
def test_reference_is_exact_in_its_regime_and_refuses_beyond_it():
    with pytest.raises(ValueError, match="weights spanning up to 1e"):
        treeiso.fit([3.0, 1.0, 2.0], [-1, 0, 0], [1e-40, 1e40, 1.0], backend="scipy")
    with pytest.raises(ValueError, match="weights spanning up to 1e"):
        treeiso.fit([3.0, 1.0, 2.0], [-1, 0, 0], [1e-15, 1e15, 1.0], backend="scipy")
    np.testing.assert_array_equal(
        treeiso.fit([3.0, 1.0, 2.0], [-1, 0, 0], [1e-6, 1e6, 1.0], backend="scipy"),
        [3.0, 1.0, 2.0])
    rng = np.random.default_rng(6)
    for t in range(200):
        n = int(rng.integers(1, 25))
        parent = random_tree(rng, n)
        y = rng.normal(size=n)
        w = 10 ** rng.uniform(0, 12, size=n)
        lo, hi = sorted(rng.normal(size=2) * 0.7)
        kw = {"y_min": lo if t % 3 else None, "y_max": hi if t % 4 else None}
        ref = treeiso.fit(y, parent, w, backend="scipy", return_blocks=True, **kw)
        # feasible values, and the blocks of the unbounded problem, as fit documents them
        assert np.all(ref.x >= (-np.inf if kw["y_min"] is None else kw["y_min"]))
        assert np.all(ref.x <= (np.inf if kw["y_max"] is None else kw["y_max"]))
        assert treeiso.certify(y, parent, ref.x, w, rtol=1e-12, **kw).optimal
        free = treeiso.fit(y, parent, w, backend="scipy", return_blocks=True)
        np.testing.assert_array_equal(ref.blocks, free.blocks)
        # each block of the unbounded reference holds its weighted mean, exactly computed
        for b in np.unique(free.blocks):
            m = free.blocks == b
            np.testing.assert_allclose(free.x[m], np.sum(w[m] * y[m]) / np.sum(w[m]),
                                       rtol=1e-13, atol=1e-15)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_out_of_range_label_on_cuda_with_checks_off_fails_the_stream():
    # No host synchronisation: the device checks, and the error surfaces at the next sync.
    result = run_isolated("""
        import torch, treeiso
        y = torch.zeros(4, 5, device="cuda")
        lab = torch.tensor([[0], [1], [7], [2]], device="cuda")
        try:
            treeiso.fit_topk(y, lab, check_finite=False)
            torch.cuda.synchronize()
        except RuntimeError as e:
            print("refused")
        """)
    assert result.stdout.strip() == "refused", result.stderr[-2000:]
