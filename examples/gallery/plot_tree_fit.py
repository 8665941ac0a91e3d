"""
Fitting a small tree
====================

Isotonic regression on a tree replaces each value by the closest assignment
(in weighted least squares) that never increases from a parent to its child.
Here a tree of 14 nodes is drawn before and after :func:`treeiso.fit`, with the
nodes coloured by value and the blocks of the solution (connected pieces that
share one value, the mean of their data) outlined.
"""

import matplotlib.pyplot as plt
import numpy as np

import treeiso

# %%
# The tree and its data
# ---------------------
# ``parent[i]`` is the parent of node ``i``; ``-1`` marks the root.

parent = np.array([-1, 0, 0, 0, 1, 1, 2, 3, 3, 4, 4, 6, 8, 8])
y = np.array([2.0, 1.0, 3.5, 0.5, 2.5, -1.0, 4.0, 0.0, 1.5, 3.0, 0.2, 1.0, 2.0, -0.5])
tree = treeiso.Tree.from_parents(parent)
print(tree.n, "nodes, kind:", tree.kind)

# %%
# Fit, asking for the blocks too. ``blocks[i]`` is the top (root-most) node of
# the block that contains ``i``.

res = treeiso.fit(y, tree, return_blocks=True)
x, blocks = res.x, res.blocks
for i in range(tree.n):
    print(f"node {i:2d}: y = {y[i]:5.2f}  ->  x = {x[i]:5.2f}   (block of node {blocks[i]})")

# %%
# Every edge now goes downhill (or stays level), and the certificate agrees
# that this is the optimum.

assert np.all(x[parent[1:]] >= x[1:] - 1e-12)
print(treeiso.certify(y, tree, x).optimal)

# %%
# Draw both
# ---------
# A simple layered layout: depth downwards, leaves spread left to right, each
# inner node centred over its children.

children = [[] for _ in range(tree.n)]
for c, p in enumerate(parent):
    if p >= 0:
        children[p].append(c)

pos = {}
next_leaf = [0.0]


def place(v, depth):
    """Iterative post-order placement (no recursion)."""
    stack = [(v, depth, False)]
    while stack:
        node, d, done = stack.pop()
        if done or not children[node]:
            if children[node]:
                xs = [pos[c][0] for c in children[node]]
                pos[node] = (0.5 * (min(xs) + max(xs)), -d)
            else:
                pos[node] = (next_leaf[0], -d)
                next_leaf[0] += 1.0
            continue
        stack.append((node, d, True))
        for c in reversed(children[node]):
            stack.append((c, d + 1, False))


place(0, 0)

vmin, vmax = min(y.min(), x.min()), max(y.max(), x.max())
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
for ax, vals, title in [(axes[0], y, "data y"), (axes[1], x, "treeiso.fit(y, tree)")]:
    for c, p in enumerate(parent):
        if p < 0:
            continue
        same = title != "data y" and blocks[c] == blocks[p]
        ax.plot(*zip(pos[p], pos[c]), color="k" if same else "0.7",
                lw=4 if same else 1, zorder=1)
    pts = np.array([pos[i] for i in range(tree.n)])
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=vals, cmap="viridis", vmin=vmin, vmax=vmax,
                    s=520, edgecolors="k", zorder=2)
    for i in range(tree.n):
        ax.annotate(f"{vals[i]:.2g}", pos[i], ha="center", va="center", fontsize=8,
                    color="w" if vals[i] < 0.5 * (vmin + vmax) else "k", zorder=3)
    ax.set_title(title)
    ax.set_axis_off()
fig.colorbar(sc, ax=axes, shrink=0.8, label="value")
axes[1].text(0.0, -0.05, "thick edges join nodes of one block", transform=axes[1].transAxes,
             fontsize=8)
plt.show()

# %%
# The reverse order
# -----------------
# ``orientation="root_smallest"`` asks for parents *below* their children; it is
# the same problem on ``-y``.

x_up = treeiso.fit(y, tree, orientation="root_smallest")
print(np.allclose(x_up, -treeiso.fit(-y, tree)))
