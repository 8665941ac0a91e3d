"""Slow, independent reference for ``treeiso.fit_topk``: one fit per row on the broom (or star)
tree of the row's label order, solved by the SciPy reference backend (bounded least squares,
none of the fast kernels). Used to cross-check the fast batched path."""

import numpy as np
import torch


def row_tree(c, row):
    import treeiso

    labels = []
    for v in row:
        v = int(v)
        if v >= 0 and v not in labels:
            labels.append(v)
    if len(labels) == 1:
        return treeiso.Tree.star(c, center=labels[0])
    return treeiso.Tree.broom(c, labels)


def fit_topk_ref(values, labels, weights=None):
    import treeiso

    v = values.detach().cpu().double().numpy()
    lab = labels.cpu().numpy()
    out = np.empty_like(v)
    for i in range(v.shape[0]):
        out[i] = treeiso.fit(v[i], row_tree(v.shape[1], lab[i]), backend="scipy")
    return torch.from_numpy(out).to(values.dtype).to(values.device)
