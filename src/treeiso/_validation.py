"""Input checks shared by the public functions. One place, clear messages."""

import math

import numpy as np

from ._dispatch import BACKENDS

ORIENTATIONS = ("root_largest", "root_smallest")


def is_torch_tensor(obj):
    """True for a ``torch.Tensor``, without importing torch."""
    cls = type(obj)
    return cls is not np.ndarray and cls.__module__.split(".")[0] == "torch"


_FLOAT_MAX = float(np.finfo(np.float64).max)
_abs_max = None  # treeiso._kernels.finite.abs_max, imported on first use (it loads numba)


def check_orientation(orientation):
    if orientation not in ORIENTATIONS:
        raise ValueError(
            f"orientation must be one of {ORIENTATIONS}, got {orientation!r}"
        )


def reject_masked(obj, what):
    """Masked arrays are refused: ``np.asarray`` would drop the mask and fit the hidden data."""
    cls = type(obj)
    if cls is np.ndarray or obj is None:  # the common cases, first: this runs on every call
        return
    if cls.__module__.startswith("numpy.ma"):
        raise TypeError(
            f"{what} is a masked array; treeiso does not honour masks. Pass "
            f"{what}.filled(...) or drop the masked nodes from the tree (a weight cannot be "
            "zero)")


def as_real_array(obj, what):
    """``obj`` as a NumPy array of real numbers (no copy when possible)."""
    if obj.__class__ is np.ndarray:
        arr = obj
    else:
        reject_masked(obj, what)
        arr = np.asarray(obj)
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{what} must be real, got complex dtype {arr.dtype}")
    if kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
    if kind == "f" and arr.dtype.itemsize > 8 and arr.size:
        # numpy.longdouble: computed in float64, so its values must fit there (1e400 would
        # become inf). NaN and inf themselves are left to the finiteness checks.
        with np.errstate(invalid="ignore"):
            big = np.abs(arr[np.isfinite(arr)]).max(initial=0)
        if big > _FLOAT_MAX:
            raise ValueError(f"{what} has entries beyond float64's range (up to {str(big)}): "
                             f"treeiso computes {arr.dtype} in float64; rescale the data")
    return arr


_LARGEST = {}


def largest_value(dtype):
    """The largest finite value of a NumPy float ``dtype``, as a Python float (cached)."""
    v = _LARGEST.get(dtype)
    if v is None:
        v = _LARGEST[dtype] = float(np.finfo(dtype).max)
    return v


_FLOAT64 = np.dtype(np.float64)


def as_rows(arr, dtype=_FLOAT64):
    """View (or copy) ``arr`` of shape (..., n) as C-contiguous (rows, n) of ``dtype``."""
    shape = arr.shape
    out = arr.reshape(1 if len(shape) == 1 else math.prod(shape[:-1]), shape[-1])
    # (an identity test first: comparing a dtype with a type costs 0.3 us)
    if not ((out.dtype is dtype or out.dtype == dtype) and out.flags.c_contiguous):
        out = np.ascontiguousarray(out, dtype=dtype)
    return out


def first_bad(mask):
    """Index tuple of the first True in ``mask``, as a readable string."""
    idx = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(mask.ravel())[0]),
                                                 mask.shape))
    return idx[0] if len(idx) == 1 else idx


def finite_abs_max(arr, what):
    """Raise ValueError naming the first NaN or infinite entry of ``arr``, if any.

    Returns ``max|arr|`` when the scan computed it (float32/float64 C-contiguous arrays), else
    None: the range scaling (:mod:`treeiso._scaling`) reuses it instead of reading the data
    again."""
    global _abs_max
    dt = arr.dtype
    if dt.kind != "f":
        return None
    if _abs_max is None:  # one compiled pass, no temporaries; numba loaded on first use
        from ._kernels.finite import abs_max as _abs_max
    # (dtype.char and isnative: cheaper than comparing with np.float32 and np.float64, which
    # cost 0.35 us, more than this scan of 1e3 values)
    if dt.char in "fd" and dt.isnative and arr.flags.c_contiguous:
        amax = _abs_max(arr if arr.ndim == 1 else arr.reshape(-1))
        if amax <= _FLOAT_MAX:  # False for NaN and inf
            return amax
    else:
        # One summation pass: NaN and inf propagate into the sum, so a finite sum
        # proves every entry finite. Only then (or on overflow) look closer.
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(np.add.reduce(arr, axis=None))
        if math.isfinite(total):
            return None
    bad = ~np.isfinite(arr)
    if bad.any():
        i = first_bad(bad)
        kind = "a NaN" if np.isnan(arr[i]) else "an infinite"
        raise ValueError(f"{what} contains {kind} value at index {i}")


LOSSES = ("l2", "l1", "quantile", "linf")


def check_loss(loss, quantile):
    """The quantile level of ``loss`` (0.5 for L1, whose minimisers are the median's), or
    None for least squares and L-infinity; raises for an unknown loss or a misplaced or bad
    ``quantile``."""
    if loss == "l2" and quantile is None:   # the common case first (per-call overhead)
        return None
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if loss != "quantile":
        if quantile is not None:
            raise ValueError(f"quantile is the level of loss='quantile'; it was given with "
                             f"loss={loss!r}")
        return 0.5 if loss == "l1" else None
    if quantile is None:
        return 0.5
    if isinstance(quantile, (bool, np.bool_)) or not isinstance(quantile, (int, float, np.integer,
                                                                          np.floating)):
        raise TypeError(f"quantile must be a real number in (0, 1), got {quantile!r}")
    q = float(quantile)
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
    return q


def oriented_bounds(bounds, sign):
    """The bounds ``(lo, hi)`` (None: none) of the problem solved with the data multiplied by
    ``sign``: ``y_min <= x <= y_max`` is ``-y_max <= -x <= -y_min``."""
    lo, hi = bounds
    if sign < 0:
        return (None if hi is None else -hi), (None if lo is None else -lo)
    return lo, hi


_NO_BOUNDS = (None, None)


def check_bounds(y_min, y_max):
    """Validate the bounds: None or real finite scalars with ``y_min <= y_max``."""
    if y_min is None and y_max is None:  # the common case first (per-call overhead)
        return _NO_BOUNDS
    out = []
    for name, b in (("y_min", y_min), ("y_max", y_max)):
        if b is None:
            out.append(None)
            continue
        if is_torch_tensor(b) or np.ndim(b) != 0 or isinstance(b, (bool, np.bool_)):
            raise TypeError(f"{name} must be None or a real number, got {b!r}")
        if not isinstance(b, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be None or a real number, got {type(b).__name__}")
        try:
            fb = float(b)
        except OverflowError:  # a Python int beyond float64's range
            fb = math.inf
        if not math.isfinite(fb):
            text = str(b)
            raise ValueError(f"{name} must be a finite number within float64's range, "
                             f"got {text if len(text) <= 40 else text[:12] + '...'}")
        out.append(fb)
    if out[0] is not None and out[1] is not None and out[0] > out[1]:
        raise ValueError(f"y_min must be <= y_max, got y_min={y_min} > y_max={y_max}")
    return tuple(out)


def bounds_in_range(bounds, largest, dtype):
    """``bounds`` for results of ``dtype`` (largest finite value ``largest``): a bound that
    no value of that dtype can meet is an error (``y_min=1e300`` for float32 would make
    every value infinite); one beyond the range on the other side binds nothing and is
    dropped (so that clipping in that dtype cannot overflow)."""
    lo, hi = bounds
    if lo is not None and lo > largest:
        raise ValueError(f"y_min={lo} is above the largest {dtype} value ({largest}): "
                         "the bounded fit cannot be represented")
    if hi is not None and hi < -largest:
        raise ValueError(f"y_max={hi} is below the smallest {dtype} value ({-largest}): "
                         "the bounded fit cannot be represented")
    return (None if lo is None or lo < -largest else lo,
            None if hi is None or hi > largest else hi)


def check_axis(axis, ndim):
    """``axis`` as a non-negative index into ``ndim`` axes (``ndim >= 1``)."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of bounds for values with {ndim} dimensions")
    return int(axis) % ndim


def check_ndim(shape):
    if len(shape) == 0:
        raise ValueError("values must have at least one dimension, got a scalar")


def move_weights(weights, shape, axis):
    """Weights broadcastable to values of ``shape`` (axis ``axis`` indexing nodes),
    moved like the values, so that nodes are the last axis. ``weights`` is a NumPy array
    or a tensor (the caller's library)."""
    nd = len(shape)
    if weights.ndim > nd:
        raise ValueError(f"weights of shape {tuple(weights.shape)} have more dimensions "
                         f"than values {tuple(shape)}")
    try:
        np.broadcast_shapes(tuple(weights.shape), tuple(shape))
    except ValueError:
        raise ValueError(f"weights of shape {tuple(weights.shape)} do not broadcast to "
                         f"values of shape {tuple(shape)}") from None
    weights = weights.reshape((1,) * (nd - weights.ndim) + tuple(weights.shape))
    if is_torch_tensor(weights):
        return weights.movedim(axis, -1)
    return np.moveaxis(weights, axis, -1)


def nodes_last(arr, weights, axis):
    """``(arr, weights, ax)``: NumPy ``arr`` and ``weights`` with the nodes axis ``axis``
    (checked; ``ax`` is it as a non-negative index, to move results back) moved last, as
    views. The default ``axis=-1`` costs one comparison (per-call overhead)."""
    check_ndim(arr.shape)
    if axis.__class__ is int and axis == -1:
        return arr, weights, arr.ndim - 1
    ax = check_axis(axis, arr.ndim)
    if ax != arr.ndim - 1:
        if weights is not None:
            weights = move_weights(np.asarray(weights), arr.shape, ax)
        arr = np.moveaxis(arr, ax, -1)
    return arr, weights, ax


def check_node_count(count, n, axis):
    """Raise ValueError unless the values' ``count`` entries along ``axis`` match the tree's
    ``n`` nodes."""
    if count != n:
        where = "in its last axis" if axis == -1 else f"along axis {axis}"
        raise ValueError(f"values has {count} entries {where} but the tree has {n} nodes")


_EMPTY = {}


def empty_rows(n, dtype=np.float64):
    """A shared (0, n) array of ``dtype``: the kernels' "no rows" arguments (unit weights,
    no blocks wanted). It holds nothing, so every call may share it (not read-only: Numba
    would compile the kernels anew for read-only arrays)."""
    key = (n, dtype)
    a = _EMPTY.get(key)
    if a is None:
        if len(_EMPTY) > 128:
            _EMPTY.clear()
        a = _EMPTY[key] = np.empty((0, n), dtype)
    return a


def unit_weights(n):
    """The (0, n) float64 array that stands for unit weights."""
    return empty_rows(n)


def prepare_weights(weights, shape, check=True):
    """Validate ``weights`` and bring them to (Bw, n) float64, Bw in {0, 1, B}.

    ``Bw = 0`` stands for unit weights, ``1`` for one row shared by every row.
    ``check=False`` skips the scans for NaN, infinity and non-positive weights.
    """
    n = shape[-1]
    if weights is None:
        return unit_weights(n)
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
    if check:
        finite_abs_max(w, "weights")
    if check and w.size and not (w > 0).all():
        i = first_bad(~(w > 0))
        raise ValueError(f"weights must be > 0, got {w[i]} at index {i}")
    if all(s == 1 for s in w.shape[:-1]):
        row = np.broadcast_to(w.reshape(w.shape[-1:] if w.ndim else ()), (n,))
        return np.ascontiguousarray(row, dtype=np.float64).reshape(1, n)
    return as_rows(np.broadcast_to(w, shape))


def check_label_range(lo, hi, c):
    """Raise ValueError unless the smallest and largest labels, ``lo`` and ``hi``, are class
    indices of ``c`` classes or -1 (padding): the kernels index rows by label."""
    if lo < -1 or hi >= c:
        raise ValueError(f"labels must be class indices in [0, {c}) or -1 (padding), "
                         f"got {lo if lo < -1 else hi}")


def check_threads(threads):
    """Validate the public ``threads`` argument (None or a positive int)."""
    if threads is None or threads.__class__ is int and threads >= 1:
        return
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be None or a positive integer, got {threads!r}")


def check_fit_options(orientation, loss, quantile, method, backend, y_min, y_max, threads):
    """Check the options of :func:`treeiso.fit` that need no data; returns the quantile
    level of ``loss`` (None for least squares and L-infinity) and the checked bounds."""
    check_orientation(orientation)
    level = check_loss(loss, quantile)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "scipy" and method != "auto":
        raise ValueError("backend='scipy' takes method='auto' only")
    bounds = check_bounds(y_min, y_max)
    check_threads(threads)
    return level, bounds
