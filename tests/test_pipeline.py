"""Every front end reaches the same answer through the one pipeline: fit on NumPy, fit on CPU
tensors, fit_topk, the torch-native device code (run on the CPU) and certify, across
orientations, bounds, axes, dtypes and scales near the float limits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import treeiso
from strategies import MODERATE_WEIGHT_KINDS, SHAPES, make_parent, make_values, make_weights

torch = pytest.importorskip("torch")
from treeiso._backends.torch_ops import broom_op, chain_op  # noqa: E402

# Powers of two the data is multiplied by: 1 and near either float limit of the dtype.
SCALES = {np.float64: (0, 900, -900), np.float32: (0, 100, -100)}


@st.composite
def calls(draw):
    shape = draw(st.sampled_from(SHAPES))
    n = draw(st.integers(1, 25))
    rows = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    parent = make_parent(shape, n, rng)
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    e = draw(st.sampled_from(SCALES[dtype]))
    y = np.ldexp(make_values(draw(st.sampled_from(("gaussian", "ties", "integers"))),
                             (rows, n), rng), e).astype(dtype)
    w = make_weights(draw(st.sampled_from(MODERATE_WEIGHT_KINDS)), (rows, n), rng)
    orientation = draw(st.sampled_from(("root_largest", "root_smallest")))
    lo = hi = None
    if draw(st.booleans()):
        q = np.quantile(y.astype(np.float64), [0.3, 0.7])
        lo, hi = (float(q[0]) if draw(st.booleans()) else None,
                  float(q[1]) if draw(st.booleans()) else None)
    axis = draw(st.sampled_from((-1, 0)))
    return treeiso.Tree(parent), y, w, orientation, lo, hi, axis


def _layout(a, axis):
    """(rows, n) -> the layout of ``axis`` (nodes along axis 0: (n, rows))."""
    return a if a is None or axis == -1 else np.ascontiguousarray(a.T)


@settings(max_examples=150, deadline=None)
@given(calls())
def test_every_front_end_reaches_the_same_answer(call):
    tree, y, w, orientation, lo, hi, axis = call
    opts = dict(orientation=orientation, y_min=lo, y_max=hi, axis=axis)
    yl, wl = _layout(y, axis), _layout(w, axis)
    x = treeiso.fit(yl, tree, wl, **opts)
    assert x.dtype == y.dtype and x.shape == yl.shape

    # CPU tensors run the same kernels on the tensors' memory: the same bits.
    xt = treeiso.fit(torch.from_numpy(yl), tree, None if wl is None else torch.from_numpy(wl),
                     **opts)
    np.testing.assert_array_equal(xt.numpy(), x)

    # The answer is optimal in its own dtype, whichever orientation and bounds.
    x_rows = _layout(x, axis)
    cert = treeiso.certify(y, tree, x_rows, w, orientation=orientation, y_min=lo, y_max=hi)
    assert cert.optimal, cert

    if tree.kind in ("star", "broom", "chain"):  # a chain is a broom that is all handle
        labels = np.broadcast_to(tree.handle, (y.shape[0], tree.handle.size))
        # fit_topk runs the broom kernel, which fit's auto method may not (long handles go
        # to IRT-BIN): the same bits as that kernel's, through fit.
        xb = treeiso.fit(yl, tree, wl, method="broom", **opts)
        xk = treeiso.fit_topk(yl, labels, wl, **opts)
        np.testing.assert_array_equal(xk, xb)
        xkt = treeiso.fit_topk(torch.from_numpy(yl), torch.from_numpy(labels.copy()),
                               None if wl is None else torch.from_numpy(wl), **opts)
        np.testing.assert_array_equal(xkt.numpy(), xb)

    # The device code (torch operations only), run on the CPU: its own rounding, so within
    # a tolerance of the answer and accepted by the certificate.
    sign = 1.0 if orientation == "root_largest" else -1.0
    yt = torch.from_numpy(sign * y.astype(np.float64) if y.dtype == np.float64
                          else sign * y)
    wt = None if w is None else torch.from_numpy(w)
    if tree.kind == "chain":
        order = torch.as_tensor(tree.handle.astype(np.int64))
        xn = chain_op(yt, wt, order, True)[0]
    elif tree.kind in ("star", "broom"):
        lab = torch.as_tensor(tree.handle.astype(np.int64)).expand(y.shape[0], -1)
        xn = broom_op(yt, wt, lab.contiguous(), True)[0]
    else:
        return
    xn = (sign * xn).numpy()
    if lo is not None or hi is not None:
        xn = np.clip(xn, lo, hi)
    xn = xn.astype(y.dtype)
    cert = treeiso.certify(y, tree, xn, w, orientation=orientation, y_min=lo, y_max=hi)
    assert cert.optimal, cert
    spread = float(np.ptp(y.astype(np.float64))) or 1.0
    eps = float(np.finfo(y.dtype).eps)
    np.testing.assert_allclose(xn.astype(np.float64), x_rows.astype(np.float64), rtol=0,
                               atol=64 * eps * (spread + float(np.abs(y).max())))
