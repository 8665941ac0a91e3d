"""The IDX files of MNIST, Fashion-MNIST and KMNIST (``--dataset idx --data-root DIR``).

The four standard files, gzipped or not, in ``DIR`` or in one of its subfolders::

    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]

(a dot instead of the last dash, ``train-images.idx3-ubyte``, is accepted too). On Debian,
``apt-get install dataset-fashion-mnist`` puts Fashion-MNIST under
``/usr/share/datasets/fashion-mnist/``. Nothing is downloaded.

An IDX file is a 4-byte magic number (two zero bytes, the element type ``0x08`` for unsigned
bytes, the number of dimensions: 3 for images, 1 for labels), one big-endian 32-bit size per
dimension, then the elements. Every problem stops with a one-line ``ValueError`` naming the file:
a wrong magic number, a truncated file (or gzip stream), bytes after the data, a label count that
differs from the image count, training labels that skip a class, test labels outside the
training classes.

Options (the ``data`` section): ``test_per_class`` keeps a class-balanced subset of the test
file (``null``: every image), drawn with ``seed``; ``size`` resizes the images to ``size x size``
by area averaging (``null``: as stored; only downsampling; 14 averages exact 2x2 blocks of a
28x28 image). ``train_per_class`` is applied by :func:`examples.kd.data.load_data` after the
validation split is held out of the whole training file (:func:`class_subset` of the rest).
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

__all__ = ["find_idx", "read_idx", "load_idx", "idx_identity", "class_subset", "IDX_FILES"]

#: where Debian's package dataset-fashion-mnist installs the files
DEBIAN_FMNIST = "/usr/share/datasets/fashion-mnist"
#: the four files of a set, by role, and the number of dimensions each holds
IDX_FILES = {"train-images": 3, "train-labels": 1, "t10k-images": 3, "t10k-labels": 1}
_NAME = re.compile(r"^(train|t10k)-(images|labels)[-.]idx([13])-ubyte(\.gz)?$")


def _role(path: Path) -> str | None:
    m = _NAME.match(path.name)
    if not m or int(m.group(3)) != (3 if m.group(2) == "images" else 1):
        return None
    return f"{m.group(1)}-{m.group(2)}"


def find_idx(root) -> dict[str, Path]:
    """The four IDX files under ``root`` (the folder itself or one of its subfolders), by role.

    All four must lie in one folder; a folder holding a file both plain and gzipped uses the
    plain one (what ``gunzip -k`` leaves). No complete set, or complete sets in several folders,
    raise ``FileNotFoundError`` / ``ValueError`` saying what was found where.
    """
    if not root:
        raise FileNotFoundError("idx: pass --data-root DIR, the folder holding train-images-idx3-ubyte[.gz] "
                                "and the other three IDX files (Fashion-MNIST: apt-get install "
                                f"dataset-fashion-mnist puts them in {DEBIAN_FMNIST})")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"idx: {root} is not a folder; pass --data-root DIR, the folder of "
                                f"train-images-idx3-ubyte[.gz] and the other three IDX files (Fashion-MNIST: "
                                f"apt-get install dataset-fashion-mnist puts them in {DEBIAN_FMNIST})")
    folders: dict[Path, dict[str, Path]] = {}
    for p in sorted(root.rglob("*")):
        role = _role(p)
        if role and p.is_file():
            have = folders.setdefault(p.parent, {})
            if role not in have or have[role].suffix == ".gz":  # the plain file wins over its .gz
                have[role] = p
    complete = [f for f, have in folders.items() if len(have) == len(IDX_FILES)]
    if len(complete) > 1:
        raise ValueError(f"idx: {len(complete)} IDX sets under {root} ({', '.join(map(str, complete))}); "
                         f"pass the folder of one of them as --data-root")
    if not complete:
        found = "; ".join(f"{f}: {', '.join(sorted(h))}" for f, h in folders.items()) or "no IDX file"
        raise FileNotFoundError(f"idx: no folder under {root} holds all four files train-images-idx3-ubyte, "
                                f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
                                f"(.gz or not); found {found}")
    return folders[complete[0]]


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"{path}: not a complete gzip file ({e})") from None


def read_idx(path, ndim: int) -> np.ndarray:
    """The uint8 array of the IDX file ``path``, which must hold ``ndim`` dimensions (3: images,
    1: labels); ``ValueError`` naming the file for a wrong magic number, truncation or extra bytes."""
    path = Path(path)
    raw = _read_bytes(path)
    want = 0x0800 + ndim
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic != want:
        got = f"0x{magic:08x}" if magic is not None else f"only {len(raw)} bytes"
        raise ValueError(f"{path}: wrong magic number {got}, expected 0x{want:08x} "
                         f"({'images' if ndim == 3 else 'labels'} of unsigned bytes)")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(f"{path}: truncated header ({len(raw)} of {head} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    n = int(np.prod(shape))
    if len(raw) - head < n:
        raise ValueError(f"{path}: truncated: the header announces {'x'.join(map(str, shape))} = {n} bytes of "
                         f"data, the file holds {len(raw) - head}")
    if len(raw) - head > n:
        raise ValueError(f"{path}: {len(raw) - head - n} bytes after the {n} bytes of data its header announces")
    return np.frombuffer(raw, np.uint8, count=n, offset=head).reshape(shape)


def _check_labels(files: dict, arrays: dict) -> None:
    for split in ("train", "t10k"):
        n_img, n_lab = len(arrays[f"{split}-images"]), len(arrays[f"{split}-labels"])
        if n_img != n_lab:
            raise ValueError(f"{files[f'{split}-labels']}: {n_lab} labels, but "
                             f"{files[f'{split}-images'].name} holds {n_img} images")
        if n_img == 0:
            raise ValueError(f"{files[f'{split}-images']}: holds no images")
    y = arrays["train-labels"]
    c = int(y.max()) + 1
    missing = sorted(set(range(c)) - set(np.unique(y).tolist()))
    if missing:
        raise ValueError(f"{files['train-labels']}: labels go up to {c - 1} but classes {missing[:10]} have no "
                         f"image (classes must be 0..C-1)")
    bad = np.flatnonzero(arrays["t10k-labels"] >= c)
    if len(bad):
        raise ValueError(f"{files['t10k-labels']}: label {int(arrays['t10k-labels'][bad[0]])} at position "
                         f"{int(bad[0])} is out of range: the training labels are 0..{c - 1}")
    shapes = {arrays[f"{s}-images"].shape[1:] for s in ("train", "t10k")}
    if len(shapes) > 1 or min(arrays["train-images"].shape[1:]) < 4:
        raise ValueError(f"{files['t10k-images']}: images of {arrays['t10k-images'].shape[1:]} pixels; the training "
                         f"images are {arrays['train-images'].shape[1:]} (both at least 4x4)")


def class_subset(y: np.ndarray, per_class: int | None, seed: int, what: str) -> np.ndarray:
    """Sorted indices of ``per_class`` images of every class of ``y``, drawn with ``seed``
    (``None``: all). ``ValueError`` when a class has fewer images (``what`` names the file)."""
    if per_class is None:
        return np.arange(len(y))
    rng = np.random.default_rng([int(seed), 1])
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < per_class:
            raise ValueError(f"{what}: class {int(c)} has {len(idx)} images, fewer than the {per_class} per class "
                             f"asked for")
        out.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(out))


def _resize(x: np.ndarray, size: int | None, what: str) -> np.ndarray:
    """(N, H, W) uint8 images resized to ``size x size`` by area averaging (``None``: unchanged)."""
    if size is None or x.shape[1:] == (size, size):
        return x
    if size > min(x.shape[1:]):
        raise ValueError(f"{what}: data.size = {size} is larger than its {x.shape[1]}x{x.shape[2]} images "
                         f"(idx images are only downsampled)")
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))[:, None].float()
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="area")
    return t[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def load_idx(root, train_per_class=None, test_per_class=None, size=None, seed=0) -> dict:
    """``x_train, y_train, x_test, y_test`` (uint8 images (N, 3, H, W), the grey channel repeated;
    int64 labels) from the IDX files under ``root``, with the optional subsets and resize of the
    module docstring; also ``folder`` (where the files were found) and ``native`` (their H, W).
    ``train_per_class`` here subsets the whole training file (the study subsets what its
    validation split leaves: :func:`examples.kd.data.load_data`)."""
    files = find_idx(root)
    arrays = {role: read_idx(files[role], nd) for role, nd in IDX_FILES.items()}
    _check_labels(files, arrays)
    out = {"folder": str(files["train-images"].parent), "native": list(arrays["train-images"].shape[1:]),
           "train_labels_file": str(files["train-labels"])}
    for split, src, per in (("train", "train", train_per_class), ("test", "t10k", test_per_class)):
        y = arrays[f"{src}-labels"]
        keep = class_subset(y, per, seed, str(files[f"{src}-labels"]))
        x = _resize(arrays[f"{src}-images"][keep], size, str(files[f"{src}-images"]))
        out[f"x_{split}"] = np.repeat(x[:, None], 3, axis=1)
        out[f"y_{split}"] = y[keep].astype(np.int64)
    return out


def idx_identity(root, train_per_class=None, test_per_class=None, size=None, seed=0) -> dict:
    """What determines an IDX set: the files' content (SHA-256), the subset and the size."""
    from .runs import config_digest, file_digest

    files = find_idx(root)
    return {"name": "idx", "files": config_digest({role: file_digest(p) for role, p in sorted(files.items())}),
            "train_per_class": train_per_class, "test_per_class": test_per_class, "size": size,
            "seed": int(seed)}
