"""The validation split: a class-stratified share of the training set held out for model selection.

Every training run of the image study evaluates its network on this split after each epoch and
reports the test accuracy of the epoch that scores best on it (the paper reports the best test
epoch, which picks the epoch on the test set itself). ``data.val_fraction`` sets the share
(default 0.1; 0: no split), ``data.seed`` the draw. The split's indices enter every run's
identity (:func:`split_identity`), so a run made on another split is never reused.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["validation_split", "split_identity", "VAL_FRACTION"]

#: the default share of the training set held out for validation
VAL_FRACTION = 0.1


def validation_split(labels, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)``: sorted indices into ``labels``. From every class of ``n`` images,
    ``round(fraction * n)`` go to validation, at least one when ``fraction > 0`` and never all of
    them; the draw is a permutation seeded by ``seed``.

    >>> tr, va = validation_split([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 0.25, seed=0)
    >>> len(tr), len(va), int((va < 4).sum())   # one image of class 0, two of class 1
    (7, 3, 1)
    """
    y = np.asarray(labels)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng([int(seed), 2])
    val = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = min(len(idx) - 1, max(1, int(round(fraction * len(idx))))) if fraction > 0 else 0
        val.append(rng.permutation(idx)[:k])
    val = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


def split_identity(fraction: float, seed: int, val: np.ndarray) -> dict:
    """The split's part of a run's identity: its settings and a digest of the held-out indices."""
    digest = hashlib.sha256(np.asarray(val, np.int64).tobytes()).hexdigest()[:16]
    return {"val_fraction": float(fraction), "seed": int(seed), "val": digest, "val_size": int(len(val))}
