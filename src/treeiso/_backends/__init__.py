"""The backends: each runs a resolved kernel over the rows of a normalized problem
(:mod:`treeiso._problem`): Numba on threads, torch (the same kernels on tensors' memory, or
torch-only device code, behind custom ops), and the slow SciPy reference."""
