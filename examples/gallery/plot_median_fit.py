"""
A median fit on a tree with outliers
====================================

Least squares pulls a block towards any outlier in it; the L1 (median) fit,
``treeiso.fit(..., loss="l1")``, does not. Here a random tree of 300 nodes
carries a value that falls with depth, plus noise and 8 % gross outliers (+6).
Both fits keep every parent at or above its children; the median fit follows
the bulk of the data, and ``loss="quantile"`` gives ordered bands around it.
"""

import matplotlib.pyplot as plt
import numpy as np

import treeiso

rng = np.random.default_rng(0)
n = 300
parent = np.array([-1] + [int(rng.integers(max(0, i - 12), i)) for i in range(1, n)])
tree = treeiso.Tree(parent)
depth = np.zeros(n)
for v in tree.order:                     # parents before children
    if parent[v] >= 0:
        depth[v] = depth[parent[v]] + 1
clean = 10.0 - 0.5 * depth
y = clean + rng.normal(scale=0.6, size=n)
outlier = rng.random(n) < 0.08
y[outlier] += 6.0

# %%
# The fits. Each is checked by the certificate of its own loss.

fits = {
    "least squares": treeiso.fit(y, tree),
    "L1 (median)": treeiso.fit(y, tree, loss="l1"),
    "quantile 0.25": treeiso.fit(y, tree, loss="quantile", quantile=0.25),
    "quantile 0.75": treeiso.fit(y, tree, loss="quantile", quantile=0.75),
}
print(treeiso.certify(y, tree, fits["least squares"]).optimal,
      treeiso.certify(y, tree, fits["L1 (median)"], loss="l1").optimal,
      treeiso.certify(y, tree, fits["quantile 0.25"], loss="quantile", quantile=0.25).optimal)
for name, x in fits.items():
    err = np.abs(x - clean)[~outlier].mean()
    print(f"{name:14s} mean |x - clean| on the inliers: {err:.3f}")

# %%
# Drawn against depth: every edge of the tree is a segment from a parent to a
# child, so an isotonic fit never rises along one.

edges = [(p, c) for c, p in enumerate(parent) if p >= 0]
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
for ax, names in zip(axes, [["least squares"], ["quantile 0.25", "quantile 0.75", "L1 (median)"]]):
    ax.scatter(depth[~outlier], y[~outlier], s=8, color="0.6", label="data")
    ax.scatter(depth[outlier], y[outlier], s=14, color="tab:red", marker="x", label="outliers")
    for name in names:
        x = fits[name]
        main = not name.startswith("quantile")
        color = "tab:blue" if name == "least squares" else "tab:orange" if main else "tab:cyan"
        for p, c in edges:
            ax.plot(depth[[p, c]], x[[p, c]], color=color, lw=1.4 if main else 0.6,
                    alpha=0.9 if main else 0.5)
        ax.plot([], [], color=color, label=name)
    ax.plot(np.sort(depth), 10.0 - 0.5 * np.sort(depth), "k--", lw=1, label="clean signal")
    ax.set_xlabel("depth of the node")
    ax.legend(fontsize=8, loc="upper right")
axes[0].set_ylabel("value")
axes[0].set_title("treeiso.fit(y, tree)")
axes[1].set_title('loss="l1", and quantiles 0.25 / 0.75')
plt.show()
