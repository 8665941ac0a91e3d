"""
Calibrating a teacher's soft labels on a Mixup sample
=====================================================

In knowledge distillation with Mixup, a sample mixes two images with weights
:math:`\\gamma > 1/2` and :math:`1 - \\gamma`. A sensible teacher should then
score the dominant class first, the other original class second, and every
other class below both. Teachers often break that order on mixed images.
Cui & Yan (IJCAI 2021) replace the teacher's logits :math:`t` by the closest
logits that respect it,

.. math::

   \\hat m = \\arg\\min_m \\|t - m\\|^2 \\quad\\text{s.t.}\\quad
   m_{\\ell_1} \\ge m_{\\ell_2} \\ge m_j \\text{ for every other class } j,

an isotonic regression on a tree (a star under :math:`\\ell_2` plus the edge
:math:`\\ell_1 \\to \\ell_2`). :func:`treeiso.fit_topk` solves it exactly for
every row of a batch at once.
"""

import matplotlib.pyplot as plt
import numpy as np

import treeiso

classes = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
cat, dog = classes.index("cat"), classes.index("dog")

# %%
# One mixed sample: 70 % cat, 30 % dog. The teacher prefers "dog" to "cat" and
# ranks "deer" above "dog".

gamma = 0.7
t = np.array([[-1.0, -2.0, 0.5, 2.1, 2.8, 2.4, 0.3, 1.0, -1.5, -2.0]])
labels = np.array([[cat, dog]])  # dominant label first
m = treeiso.fit_topk(t, labels)
print(np.round(m, 3))

# %%
# The calibrated logits pool "cat", "dog" and "deer" at their mean (the
# smallest change that puts cat >= dog >= every other class), leave the other
# classes alone, and keep the total: the fit preserves the sum of each block.

print("sum before / after:", t.sum().round(6), m.sum().round(6))


def softmax(z, tau):
    e = np.exp((z - z.max(-1, keepdims=True)) / tau)
    return e / e.sum(-1, keepdims=True)


tau = 1.0  # the paper uses 4.5 on CIFAR-100, which flattens these bars
mixed_label = np.zeros(len(classes))
mixed_label[cat], mixed_label[dog] = gamma, 1 - gamma

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
pos = np.arange(len(classes))
axes[0].bar(pos - 0.2, t[0], 0.4, label="teacher logits")
axes[0].bar(pos + 0.2, m[0], 0.4, label="calibrated (fit_topk)")
axes[0].set_ylabel("logit")
axes[1].bar(pos - 0.27, softmax(t, tau)[0], 0.27, label="teacher")
axes[1].bar(pos, softmax(m, tau)[0], 0.27, label="calibrated")
axes[1].bar(pos + 0.27, mixed_label, 0.27, label="Mixup label", color="0.6")
axes[1].set_ylabel(f"softmax(z / {tau})")
for ax in axes:
    ax.set_xticks(pos, classes, rotation=45)
    ax.legend(fontsize=8)
    for k in (cat, dog):
        ax.get_xticklabels()[k].set_fontweight("bold")
fig.suptitle("A 70 % cat / 30 % dog Mixup sample")
plt.show()

# %%
# A whole batch
# -------------
# For a batch, pass one row of labels per sample. Here a noisy "teacher" scores
# 512 random mixes of 100 classes; we count how many rows break the order
# before and after.

rng = np.random.default_rng(0)
B, C = 512, 100
a = rng.integers(0, C, B)
b = (a + rng.integers(1, C, B)) % C  # a different class
g = rng.uniform(0.5, 1.0, B)
logits = rng.normal(0.0, 1.5, (B, C))
logits[np.arange(B), a] += 4 * g
logits[np.arange(B), b] += 4 * (1 - g)
lab = np.stack([a, b], axis=1)
cal = treeiso.fit_topk(logits, lab)


def broken(z):
    za, zb = z[np.arange(B), a], z[np.arange(B), b]
    rest = z.copy()
    rest[np.arange(B), a] = -np.inf
    rest[np.arange(B), b] = -np.inf
    return (za < zb - 1e-9) | (zb < rest.max(1) - 1e-9)


print(f"rows breaking the order: before {broken(logits).mean():.1%}, after {broken(cal).mean():.1%}")
print(f"mean squared change per row: {((cal - logits) ** 2).sum(1).mean():.3f}")
