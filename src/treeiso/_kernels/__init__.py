"""The compiled kernels: flat Numba loops, one module per algorithm, that trust their input
(the contract is in :mod:`treeiso._dispatch`). Nothing here knows the public arguments."""
