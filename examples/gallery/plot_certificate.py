"""
Checking a solution with the certificate
========================================

:func:`treeiso.certify` decides in :math:`O(n)` whether a candidate is *the*
solution of a tree isotonic regression. For each non-root node :math:`c` it
computes the weighted residual of its subtree,
:math:`R(c) = \\sum_{j \\in \\text{subtree}(c)} w_j (y_j - x_j)`, which is the
Lagrange multiplier of the edge above :math:`c`, and checks feasibility, the
sign of the multipliers, complementary slackness and stationarity at the roots
(see :ref:`the theory page <theory-certificate>`). It works for any candidate,
here treeiso's own answer, the slow SciPy reference, and perturbed copies.
"""

import matplotlib.pyplot as plt
import numpy as np

import treeiso

rng = np.random.default_rng(42)
n = 300
parent = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n)])
tree = treeiso.Tree.from_parents(parent)
y = rng.normal(size=n) + 0.02 * np.arange(n)  # values tend to grow away from the root
w = rng.uniform(0.5, 2.0, n)

x = treeiso.fit(y, tree, w)
cert = treeiso.certify(y, tree, x, w)
print(cert)

# %%
# The dense SciPy reference (bounded least squares; fine for a few hundred
# nodes) is accepted too, and agrees with the compiled solver.

x_ref = treeiso.fit(y, tree, w, backend="scipy")
print("SciPy reference accepted:", bool(treeiso.certify(y, tree, x_ref, w).optimal))
print("max |x - x_ref| =", np.abs(x - x_ref).max())

# %%
# Perturbed candidates
# --------------------
# Add noise of relative size :math:`\varepsilon` to the solution and look at
# each condition's worst violation divided by its tolerance (a value above 1
# fails). Past about ``rtol`` (here ``1e-9``) every perturbation is rejected.

fields = ["feasibility", "dual_sign", "complementary_slackness", "stationarity"]
eps = np.logspace(-14, -2, 25)
ratios = {f: [] for f in fields}
accepted = []
for e in eps:
    xp = x + e * np.abs(y).max() * rng.standard_normal(n)
    c = treeiso.certify(y, tree, xp, w)
    accepted.append(bool(c.optimal))
    for f in fields:
        ratios[f].append(float(getattr(c, f)))

fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
for f in fields:
    ax.loglog(eps, np.maximum(ratios[f], 1e-6), "-o", ms=3, label=f)
ax.axhline(1.0, color="k", lw=1, ls="--")
ax.axvline(1e-9, color="0.5", lw=1, ls=":")
ax.set_xlabel(r"relative perturbation $\varepsilon$")
ax.set_ylabel("violation / tolerance (floored at 1e-6)")
ax.set_title("certify(y, tree, x + noise)")
ax.legend(fontsize=8)
plt.show()

print("largest accepted perturbation:", f"{eps[np.array(accepted)].max():.1e}")
print("smallest rejected perturbation:", f"{eps[~np.array(accepted)].min():.1e}")

# %%
# The duality gap
# ---------------
# For a feasible candidate, ``gap`` bounds the squared weighted distance to the
# optimum: :math:`\tfrac12\|x - \hat x\|_w^2 \le \text{gap}`. The feasible set
# is a convex cone that contains the constants, so shrinking the solution
# towards a constant stays feasible but is no longer optimal:

for shrink in [1e-6, 1e-4, 1e-2, 0.1]:
    x_bad = (1 - shrink) * x + shrink * np.average(y, weights=w)
    c_bad = treeiso.certify(y, tree, x_bad, w)
    dist = 0.5 * np.sum(w * (x_bad - x) ** 2)
    print(f"shrink {shrink:g}: optimal={bool(c_bad.optimal)}, "
          f"0.5*||x_bad - x||_w^2 = {dist:.2e} <= gap = {float(c_bad.gap):.2e}")
