"""The NumPy/Numba backend: runs a resolved kernel over rows, on one thread or several.

The kernels (contract in :mod:`treeiso._dispatch`) are compiled ``nogil``; rows are split
into contiguous chunks, one per thread, and each chunk is one kernel call on views of the
caller's arrays (no copies). The thread pool is created on first use and kept.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

from .. import _dispatch
from .._problem import NUMPY, oriented_level, solve_scaled
from .._scaling import SAFE_HI, SAFE_LO, in_safe_range, scale_rows
from .._validation import empty_rows, oriented_bounds

# A thread is worth starting only for this many elements (rows x n) of work: below it the
# hand-off (tens of microseconds) costs more than it saves.
MIN_WORK_PER_THREAD = 1 << 15

# Up to this many values the chain kernel scans them in the same compiled call as the fit
# (one dispatch, about 0.5 us, saved); above it a separate scan is as fast, and the fit
# compiled on its own measured 0-7 % faster than inside the fused call at n = 1e5.
FUSED_SCAN_MAX = 1 << 14

# More threads than this are never started, whatever ``threads`` asks for: rows are split
# into at most this many chunks (a thread per chunk), which no machine of today outruns.
MAX_THREADS = 256

_pool = None
_pool_size = 0
_pool_pid = None
_pool_lock = threading.Lock()


_cores = None


def available_cores():
    """CPU cores this process may run on (looked up once)."""
    global _cores
    if _cores is None:
        try:
            _cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            _cores = os.cpu_count() or 1
    return _cores


def default_threads():
    """The default thread count: torch's (``torch.get_num_threads()``) when torch is loaded,
    so that a program that has set it (a training loop) is not oversubscribed, else every
    core this process may run on."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return max(1, min(torch.get_num_threads(), available_cores()))
    return available_cores()


def n_threads(threads, n_rows, n, default=None):
    """Threads to use for ``n_rows`` rows of ``n`` nodes: ``threads`` if given, else
    ``default`` (default: :func:`default_threads`), never more than the rows, and with
    ``threads=None`` never more than the work is worth."""
    if threads is None:
        work = (n_rows * n) // MIN_WORK_PER_THREAD
        if work <= 1 or n_rows <= 1:
            return 1
        threads = min(default_threads() if default is None else default, work)
    return max(1, min(int(threads), n_rows, MAX_THREADS))


def _get_pool(size):
    """A pool with at least ``size`` workers, shared by every caller.

    A pool is never shut down while this process runs: another Python thread may be
    submitting to it at this very moment (a web server, DataLoader threads). When a call
    needs more workers, a larger pool replaces it for later calls; the old one finishes the
    work already handed to it and its idle workers exit once nothing refers to it.
    """
    global _pool, _pool_size, _pool_pid
    with _pool_lock:
        # A forked child (a DataLoader worker) inherits the pool object but not its
        # threads: it gets a pool of its own.
        if _pool is None or _pool_size < size or _pool_pid != os.getpid():
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="treeiso")
            _pool_size = size
            _pool_pid = os.getpid()
        return _pool


def run_rows(fn, row_args, shared_args, threads):
    """``fn(*row_args, *shared_args)`` split by rows over ``threads`` threads.

    ``row_args`` are arrays whose first axis indexes rows (sliced per chunk; an array with
    fewer rows than the first, such as shared weights (1, n) or empty blocks (0, n), is
    passed whole); ``shared_args`` are passed whole. Returns the per-chunk results.
    """
    n_rows = row_args[0].shape[0]
    if threads <= 1 or n_rows <= 1:
        return [fn(*row_args, *shared_args)]
    bounds = np.linspace(0, n_rows, threads + 1).astype(np.int64)

    def chunk(i):
        lo, hi = bounds[i], bounds[i + 1]
        args = [a[lo:hi] if a.shape[0] == n_rows else a for a in row_args]
        return fn(*args, *shared_args)

    return list(_get_pool(threads).map(chunk, range(threads)))


def run_kernel(kernel, y, w, tree_args, x, blocks, threads):
    """Run ``kernel`` (a name from :func:`treeiso._dispatch.resolve`) on every row.

    ``tree_args``: from :func:`treeiso._dispatch.tree_arrays` (broom labels (B, k) are
    split by rows like ``y``). Returns the kernel's per-chunk results.
    """
    fn = _dispatch.load(kernel)
    if threads <= 1:
        return [fn(y, w, *tree_args, x, blocks)]
    if kernel == "broom":  # labels come before the outputs
        (labels,) = tree_args
        return run_rows(lambda y_, w_, lab, x_, b_: fn(y_, w_, lab, x_, b_),
                        (y, w, labels, x, blocks), (), threads)
    return run_rows(lambda y_, w_, x_, b_, *tree: fn(y_, w_, *tree, x_, b_),
                    (y, w, x, blocks), tree_args, threads)


def no_blocks(n):
    """The (0, n) int64 array that asks a kernel for no blocks."""
    return empty_rows(n, np.int64)


def solve(p, kernel, tree_args, threads=None, want_blocks=False, level=None):
    """Run ``kernel`` on the rows of :class:`treeiso._problem.Problem` ``p`` (NumPy), scaled by
    powers of two when the data nears the float limits. ``tree_args``: from
    :func:`treeiso._dispatch.tree_arrays`; ``level``: the quantile level (quantile kernel).

    Returns ``(x, blocks, finite)``: the fitted rows (``p.y``'s dtype, still multiplied by
    ``p.sign``), the blocks ((0, n) unless ``want_blocks``) and the kernel's per-chunk results
    (the broom kernel's: whether every value it read was finite)."""
    y, w = p.y, p.w
    n_rows, n = y.shape
    x = np.empty(y.shape, y.dtype)
    blocks = np.empty((n_rows, n), dtype=np.int64) if want_blocks else no_blocks(n)
    if not (n_rows and n):
        return x, blocks, [True]
    nt = 1 if threads is None and n_rows * n <= MIN_WORK_PER_THREAD else n_threads(
        threads, n_rows, n)
    if kernel == "linf":  # the bounds enter the kernel, and its scaling
        y, w, ey, bnd = linf_inputs(y, w, p.amax, p.bounds, p.sign)
        finite = run_kernel(kernel, y, w, (bnd,) + tree_args, x, blocks, nt)
        if ey:
            np.ldexp(x, ey, out=x)
        return x, blocks, finite
    if kernel == "quantile":
        tree_args = (np.array(oriented_level(level, p.sign)),) + tree_args
    amax = p.amax
    if (amax is None and kernel == "pav" and nt == 1 and y.size <= FUSED_SCAN_MAX
            and y.dtype.char == "d" and NUMPY.weight_exponent(w) == 0):
        # The scan and, when the data needs no scaling, the fit in one compiled call.
        amax = _dispatch.load("pav-scanned")(y, w, *tree_args, x, blocks, SAFE_LO, SAFE_HI)
        if in_safe_range(amax):
            return x, blocks, [True]
    elif amax is None and p.check_values and kernel != "broom":
        amax = NUMPY.abs_max(y)
    if p.check_values and amax is not None and not math.isfinite(amax):
        _name_bad_value(p)
    if amax is not None and in_safe_range(amax) and w.shape[0] == 0:
        # in range, unit weights: nothing to scale (the common case, without the detour)
        return x, blocks, run_kernel(kernel, y, w, tree_args, x, blocks, nt)

    def run(ys, ws):
        return x, run_kernel(kernel, ys, ws, tree_args, x, blocks, nt)

    x, finite = solve_scaled(NUMPY, run, y, w, amax)
    if p.check_values and kernel == "broom" and not all(finite):  # (checked as it read)
        _name_bad_value(p)
    return x, blocks, finite


def _name_bad_value(p):
    """Raise the ValueError that names the first NaN or infinite value of ``p``'s rows."""
    from .._validation import finite_abs_max

    finite_abs_max(p.y.reshape(p.shape), "values")
    raise AssertionError("a kernel reported a non-finite value the scan did not find")


def linf_inputs(y, w, amax, bounds, sign):
    """``(y, w, ey, bnd)`` for the L-infinity kernels of :mod:`treeiso._kernels.linf`: rows
    ``y`` (the orientation's ``sign`` already applied) and weights ``w`` scaled by powers of
    two (:func:`treeiso._scaling.scale_rows`; ``amax`` is max|y| or None) together with the
    bounds ``(lo, hi)`` (None: none), which enter the kernels (they change the optimal
    error), as their ``bnd`` argument, with the kernels' pass budget."""
    from .._kernels import linf

    if bounds != (None, None):
        amax = max(float(np.abs(y).max()) if amax is None else amax,
                   *(abs(v) for v in bounds if v is not None))
    y, w, ey = scale_rows(y, w, amax)
    lo, hi = oriented_bounds(bounds, sign)
    bnd = np.array([0.0 if lo is None else math.ldexp(lo, -ey),
                    0.0 if hi is None else math.ldexp(hi, -ey),
                    float(lo is not None), float(hi is not None),
                    float(linf.DINKELBACH_PASSES)])
    return y, w, ey, bnd
