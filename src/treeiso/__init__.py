"""treeiso: exact weighted isotonic regression on trees and forests.

Minimize ``sum_i w_i (x_i - y_i)**2`` subject to ``x[parent[i]] >= x[i]``
(or the reverse orientation), exactly: pool-adjacent-violators for chains,
IRT-BIN for general trees, closed forms for stars and the label-order trees
of knowledge distillation. NumPy input runs on Numba kernels, torch tensors on
their own device (differentiable); SciPy provides a slow reference solver.

Importing treeiso is cheap: Numba, SciPy and torch load on first use.
:mod:`treeiso.distill` (the distillation losses; it imports torch) loads on first access.
"""

__version__ = "0.1.0"

# Public name -> defining submodule; resolved on first attribute access.
_EXPORTS = {
    "Tree": "_tree",
    "as_tree": "_tree",
    "fit": "_api",
    "FitResult": "_result",
    "certify": "_certify",
    "Certificate": "_certify",
    "fit_topk": "_topk",
    "objective": "_objective",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


# Submodules reachable as attributes, imported on first access.
_SUBMODULES = ("distill",)


def __getattr__(name):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'treeiso' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
