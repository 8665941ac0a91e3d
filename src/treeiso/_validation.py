"""Input checks shared by the public functions. One place, clear messages."""

import numpy as np

ORIENTATIONS = ("root_largest", "root_smallest")


def is_torch_tensor(obj):
    """True for a ``torch.Tensor``, without importing torch."""
    return type(obj).__module__.split(".")[0] == "torch"


def check_orientation(orientation):
    if orientation not in ORIENTATIONS:
        raise ValueError(
            f"orientation must be one of {ORIENTATIONS}, got {orientation!r}"
        )


def as_real_array(obj, what):
    """``obj`` as a NumPy array of real numbers (no copy when possible)."""
    arr = np.asarray(obj)
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{what} must be real, got complex dtype {arr.dtype}")
    if kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr


def result_dtype(arr):
    """Floating inputs keep their dtype; integers and booleans give float64."""
    return arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)


def as_rows(arr, dtype=np.float64):
    """View (or copy) ``arr`` of shape (..., n) as C-contiguous (rows, n)."""
    rows = int(np.prod(arr.shape[:-1], dtype=np.int64))
    return np.ascontiguousarray(arr.reshape(rows, arr.shape[-1]), dtype=dtype)


def first_bad(mask):
    """Index tuple of the first True in ``mask``, as a readable string."""
    idx = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(mask.ravel())[0]),
                                                 mask.shape))
    return idx[0] if len(idx) == 1 else idx


def check_finite(arr, what):
    # One summation pass: NaN and inf propagate into the sum, so a finite sum
    # proves every entry finite. Only then (or on overflow) look closer.
    if arr.dtype.kind != "f":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(arr, axis=None)
    if not np.isfinite(total):
        bad = ~np.isfinite(arr)
        if bad.any():
            i = first_bad(bad)
            kind = "a NaN" if np.isnan(arr[i]) else "an infinite"
            raise ValueError(f"{what} contains {kind} value at index {i}")


def prepare_values(values, n):
    """Validate ``values`` of shape (..., n). Returns (array, output dtype)."""
    y = as_real_array(values, "values")
    if y.ndim == 0:
        raise ValueError("values must have at least one dimension, got a scalar")
    if y.shape[-1] != n:
        raise ValueError(
            f"values has {y.shape[-1]} entries in its last axis but the tree has "
            f"{n} nodes"
        )
    check_finite(y, "values")
    return y, result_dtype(y)


def prepare_weights(weights, shape):
    """Validate ``weights`` and bring them to (Bw, n) float64, Bw in {0, 1, B}.

    ``Bw = 0`` stands for unit weights, ``1`` for one row shared by every row.
    """
    n = shape[-1]
    if weights is None:
        return np.empty((0, n))
    w = as_real_array(weights, "weights")
    try:
        np.broadcast_shapes(w.shape, shape)
    except ValueError:
        raise ValueError(
            f"weights of shape {w.shape} do not broadcast to values of shape {shape}"
        ) from None
    if w.ndim > len(shape):
        raise ValueError(
            f"weights of shape {w.shape} have more dimensions than values {shape}"
        )
    check_finite(w, "weights")
    if w.size and not (w > 0).all():
        i = first_bad(~(w > 0))
        raise ValueError(f"weights must be > 0, got {w[i]} at index {i}")
    if all(s == 1 for s in w.shape[:-1]):
        row = np.broadcast_to(w.reshape(w.shape[-1:] if w.ndim else ()), (n,))
        return np.ascontiguousarray(row, dtype=np.float64).reshape(1, n)
    return as_rows(np.broadcast_to(w, shape))
