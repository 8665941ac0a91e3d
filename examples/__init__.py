"""Runnable examples that use :mod:`treeiso` (see ``examples/kd`` for the distillation study)."""
