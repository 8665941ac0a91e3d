"""``njit`` for treeiso's kernels, with a cache location that works on read-only installs.

Numba caches compiled kernels next to the source (``__pycache__``) or, when that is not
writable, in the user's cache directory (``~/.cache/numba``). A read-only install used with a
read-only (or missing) home has neither, and ``@njit(cache=True)`` raised ``RuntimeError:
cannot cache function ...: no locator available`` on import. Here the choice is
made once, in this order:

1. ``NUMBA_CACHE_DIR`` when it is set (numba's own rule, for every cached function);
2. the package's ``__pycache__``, then the user's cache directory (numba's defaults);
3. ``<tempdir>/treeiso-numba-<uid>``, for treeiso's kernels only (no global setting
   changes: other libraries' numba functions keep numba's rules);
4. no disk cache: every process compiles the kernels it uses again (a few seconds).

``cache_location()`` says which one is in use.
"""

from __future__ import annotations

import os
import tempfile
import threading

import numba
import numpy as np
from numba import config

_LOCATION = None  # (kind, path), decided on first use


def _writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _temp_dir():
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"treeiso-numba-{uid}")


def cache_location():
    """``(kind, path)`` of the kernels' disk cache: kind is "NUMBA_CACHE_DIR", "package",
    "user", "temp" or "none" (then path is None)."""
    global _LOCATION
    if _LOCATION is None:
        from numba.misc.appdirs import AppDirs

        user = AppDirs(appname="numba", appauthor=False).user_cache_dir
        candidates = [("NUMBA_CACHE_DIR", config.CACHE_DIR or None),
                      ("package", os.path.join(os.path.dirname(__file__), "__pycache__")),
                      ("user", user),
                      ("temp", _temp_dir())]
        _LOCATION = ("none", None)
        for kind, path in candidates:
            if path and _writable(path):
                _LOCATION = (kind, path)
                break
    return _LOCATION


def _temp_cache(py_func, path):
    """A numba FunctionCache for ``py_func`` that stores under ``path`` (numba internals:
    any failure leaves the function uncached rather than unusable)."""
    from numba.core import caching

    base = getattr(caching, "UserProvidedCacheLocator", None) or getattr(
        caching, "_UserProvidedCacheLocator")

    class _Locator(base):
        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(path, self.get_suitable_cache_subpath(py_file))

        @classmethod
        def from_function(cls, py_func, py_file):
            return cls(py_func, py_file)

    class _Impl(caching.CompileResultCacheImpl):
        _locator_classes = [_Locator]

    class _Cache(caching.FunctionCache):
        _impl_class = _Impl

    return _Cache(py_func)


def njit(*args, **kwargs):
    """``numba.njit`` with ``cache=True`` made safe: see the module docstring."""
    if args and callable(args[0]):  # used bare: @njit
        return njit(**kwargs)(args[0])
    want_cache = kwargs.pop("cache", False)
    kind, path = cache_location() if want_cache else ("none", None)

    def decorate(func):
        if kind in ("NUMBA_CACHE_DIR", "package", "user"):
            return numba.njit(*args, cache=True, **kwargs)(func)
        disp = numba.njit(*args, **kwargs)(func)
        if kind == "temp":
            try:
                disp._cache = _temp_cache(disp.py_func, path)
            except Exception:  # numba internals changed: compile per process instead
                pass
        return disp

    return decorate


#: the dtype of a scratch group of :func:`scratch_caller` that follows an index argument
INDEX = "index"

# Scratch up to this many bytes per group is reused from a per-thread buffer: below NumPy's
# huge-page threshold (4 MiB) a fresh array would cost a page fault per 4 KiB again.
_REUSE_BYTES = 4 << 20
_buffers = threading.local()
_MAX_VIEWS = 64


def _scratch(slot, rows, n, dtype):
    """A ``rows x n`` array of ``dtype`` (a NumPy dtype): a view of this thread's buffer
    ``slot`` when small, else a new NumPy array (huge pages)."""
    try:
        views = _buffers.views
    except AttributeError:
        views = _buffers.views = {}
        _buffers.bufs = {}
    key = (slot, rows, n, dtype)
    view = views.get(key)
    if view is not None:
        return view
    size = rows * n
    if size * dtype.itemsize > _REUSE_BYTES:
        return np.empty((rows, n), dtype)
    bufs = _buffers.bufs
    buf = bufs.get((slot, dtype))
    if buf is None or buf.size < size:
        buf = bufs[(slot, dtype)] = np.empty(max(size, 4096), dtype)
        views.clear()                    # views of the old buffers would keep them alive
    if len(views) >= _MAX_VIEWS:
        views.clear()
    view = views[key] = buf[:size].reshape(rows, n)
    return view


def scratch_caller(kernel, *groups, index_arg=None):
    """A function taking ``kernel``'s arguments but its last ``len(groups)``, which it
    allocates: for each group ``(rows, dtype)`` one ``rows x n`` array of that dtype
    (:data:`INDEX`: the dtype of argument number ``index_arg``, else int64), ``n`` being
    ``args[0].shape[1]``.

    Arrays that a compiled function allocates itself come from the C heap, a page fault per
    4 KiB touched: at n = 1e6 that took as long as the kernel's own work. NumPy asks the
    operating system for huge pages for large arrays, so large scratch allocated here is
    nearly free; small scratch (up to 4 MiB a group) is reused from a buffer per thread (calls
    on several threads share nothing; kernels never call back into Python, so a thread runs
    one kernel at a time).
    """
    groups = [(slot, k, None if dt is INDEX else np.dtype(dt))
              for slot, (k, dt) in enumerate(groups)]

    def call(*args):
        n = args[0].shape[1]
        idx = np.dtype(np.int64) if index_arg is None else args[index_arg].dtype
        return kernel(*args, *[_scratch(slot, k, n, idx if dt is None else dt)
                               for slot, k, dt in groups])

    call.__name__ = call.__qualname__ = kernel.__name__.lstrip("_")
    call.__doc__ = kernel.__doc__
    return call
