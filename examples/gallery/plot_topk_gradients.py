"""
Gradients through ``fit_topk`` (PyTorch)
========================================

With PyTorch tensors, :func:`treeiso.fit_topk` is differentiable. Its Jacobian
is block diagonal: inside each block :math:`B` of the solution,
:math:`\\partial \\hat x_i / \\partial y_j = w_j / W_B`, and it is zero across
blocks (see :ref:`the theory page <theory-gradients>`). This example looks at
that Jacobian, checks it against finite differences, and shows what it
implies when you optimise through the calibration.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch

import treeiso

torch.manual_seed(0)

# %%
# The Jacobian of one row
# -----------------------
# Eight classes, ordered ``x[2] >= x[5] >= every other class``.

y = torch.tensor([[0.3, 1.9, 0.4, -0.5, 1.2, 1.0, -1.0, 0.1]], dtype=torch.float64)
labels = torch.tensor([[2, 5]])
x = treeiso.fit_topk(y, labels)
print(x)

J = torch.autograd.functional.jacobian(lambda v: treeiso.fit_topk(v, labels), y)[0, :, 0, :]

fig, ax = plt.subplots(figsize=(4.6, 4), layout="constrained")
im = ax.imshow(J.numpy(), cmap="Blues", vmin=0, vmax=1)
ax.set_xlabel("input j")
ax.set_ylabel("output i")
ax.set_title(r"$\partial \hat x_i / \partial y_j$")
ax.set_xticks(range(8))
ax.set_yticks(range(8))
fig.colorbar(im, ax=ax, shrink=0.8)
plt.show()

# %%
# Classes 1, 2, 4 and 5 form one block (1/4 everywhere inside it); the others
# are their own blocks (Jacobian 1 on the diagonal). The rows of a block sum
# to one: adding a constant to the data adds it to the fit.

print(J.sum(1))

# %%
# Against finite differences
# --------------------------
# ``torch.autograd.gradcheck`` compares the analytic vector-Jacobian products
# with central differences, in float64, for both the values and the weights.

yb = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
wb = torch.rand(4, 8, dtype=torch.float64).add(0.5).requires_grad_()
lb = torch.tensor([[0, 1], [3, 2], [7, 0], [5, 6]])
print(torch.autograd.gradcheck(lambda a, b: treeiso.fit_topk(a, lb, b), (yb, wb)))

# %%
# What the gradient can and cannot do
# ------------------------------------
# Because the Jacobian is constant on each block, a gradient step moves the
# entries of a pooled block together: optimising *through* the calibration
# can shift a block but never separate it. Below, free logits are fitted to a
# target distribution that respects the order, once directly and once through
# ``fit_topk``. Rows that start out of order stay pooled in the second case, and
# the loss levels off above zero. In distillation the calibration is applied
# to the teacher's logits, which get no gradient, so this is no limitation
# there; it matters if you place ``fit_topk`` inside a model.

C, B = 10, 64
start = torch.randn(B, C)
lab = torch.stack([torch.randint(0, C, (B,)), torch.randint(0, C, (B,))], 1)
lab[:, 1] = torch.where(lab[:, 1] == lab[:, 0], (lab[:, 0] + 1) % C, lab[:, 1])
target = torch.full((B, C), 0.02)
target[torch.arange(B), lab[:, 0]] = 0.6
target[torch.arange(B), lab[:, 1]] = 0.24


def train(through_calibration, steps=80):
    z = start.clone().requires_grad_()
    opt = torch.optim.Adam([z], lr=0.2)
    losses = []
    for _ in range(steps):
        out = treeiso.fit_topk(z, lab) if through_calibration else z
        loss = torch.nn.functional.kl_div(out.log_softmax(-1), target, reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


direct, calibrated = train(False), train(True)
print(f"final loss: direct {direct[-1]:.4f}, through fit_topk {calibrated[-1]:.4f}")

fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
ax.semilogy(direct, label="loss on z")
ax.semilogy(calibrated, label="loss on fit_topk(z)")
ax.set_xlabel("Adam step")
ax.set_ylabel("KL(target || softmax)")
ax.legend(fontsize=8)
plt.show()
