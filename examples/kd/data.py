"""Data for the distillation study. Nothing is ever downloaded.

Sources (``data.name``):

* ``glyphs`` (default): a **synthetic**, deterministic image set built here. Each class is a
  procedural glyph: a distinct set of 3-4 pen strokes (segments and quadratic curves) from a
  shared pool, so classes that share strokes look alike; each image draws that glyph under
  class-preserving jitter (rotation, scale, shift, stroke width, a smooth warp, random colours,
  pixel noise, sometimes a fainter distractor stroke). 100 classes by default (10..1000), 32x32. It exists so
  the study runs anywhere in minutes with no data files, while keeping what matters for the paper:
  many classes, so a mixed sample's two labels compete with many others in the teacher's soft
  labels. Accuracies on it are **not** comparable with CIFAR/ImageNet numbers. Generated in seconds
  and cached as ``.npz`` under ``data.cache_dir`` (default ``<run_dir>/data``).
* ``cifar100`` / ``cifar10``: the standard python pickle folders under ``--data-root``:
  ``cifar-100-python/{train,test}`` or ``cifar-10-batches-py/{data_batch_1..5,test_batch}``
  (``--data-root`` may be the folder itself or its parent).
* ``npz``: one file (``--data-root``) with ``x_train, y_train, x_test, y_test``; images uint8
  (0..255) or float (0..1), NHWC or NCHW, 1 or 3 channels.
* ``idx``: the IDX files of MNIST, Fashion-MNIST or KMNIST (``train-images-idx3-ubyte[.gz]`` and
  the other three) in ``--data-root`` or one of its subfolders, with an optional class-balanced
  subset and downsampling (see :mod:`examples.kd.idx`).
* ``imagefolder``: an ImageNet-layout tree ``<root>/train/<class>/*.JPEG`` and
  ``<root>/val/<class>/*`` (class = sub-folder name, sorted), streamed through a
  ``torch.utils.data.DataLoader`` with ``data.workers`` worker processes and a
  ``DistributedSampler`` (see :mod:`examples.kd.folder`).
* ``synthetic_imagefolder``: a tiny generated folder of JPEGs (``data.num_classes``,
  ``data.train_per_class``, ``data.test_per_class``) written under ``data.cache_dir`` and then
  read exactly as ``imagefolder`` (tests, CI, the ``imagenet-cpu`` profile).

In-memory sets (all but ``imagefolder``) are uint8 NCHW tensors; batches are cropped (padding
``size // 8``), optionally flipped and normalised on the fly with a per-epoch generator.

Every source holds out a validation split of its training set (``data.val_fraction``, default
0.1, class-stratified, drawn with ``data.seed``; :mod:`examples.kd.split`) on which each run
selects its reported epoch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .folder import ImageFolderData, make_image_folder
from .idx import class_subset, idx_identity, load_idx
from .split import VAL_FRACTION, split_identity, validation_split

__all__ = ["ImageData", "load_data", "data_identity", "make_glyphs", "load_cifar", "load_npz", "load_idx",
           "check_arrays", "ImageFolderData", "make_image_folder", "SOURCES"]

#: the values of ``data.name``
SOURCES = ("glyphs", "cifar100", "cifar10", "npz", "idx", "imagefolder", "synthetic_imagefolder")


# ----------------------------------------------------------------------------- synthetic glyphs
def _stroke(rng) -> np.ndarray:
    """One pen stroke: a straight segment or a quadratic Bezier in 6 pieces; (S, 2, 2) segments."""
    p0, p1 = rng.uniform(-0.75, 0.75, (2, 2))
    if rng.random() < 0.5:
        pts = np.stack([p0, p1])
    else:
        c = rng.uniform(-0.9, 0.9, 2)
        tt = np.linspace(0, 1, 7)[:, None]
        pts = (1 - tt) ** 2 * p0 + 2 * (1 - tt) * tt * c + tt ** 2 * p1
    return np.stack([pts[:-1], pts[1:]], axis=1).astype(np.float32)


def _class_strokes(num_classes: int, seed: int):
    """A shared pool of strokes, and per class a distinct set of 3-4 of them.

    Classes share strokes, so some classes resemble each other (the teacher's soft labels then
    carry real similarity structure, as on natural images); the pool also supplies the
    class-independent distractor stroke drawn into some images.
    """
    rng = np.random.default_rng([seed, 7919])
    pool = [_stroke(rng) for _ in range(max(10, round(2 * math.sqrt(num_classes))))]
    seen, classes = set(), []
    while len(classes) < num_classes:
        k = int(rng.integers(3, 5))
        combo = tuple(sorted(rng.choice(len(pool), size=k, replace=False).tolist()))
        if combo not in seen:
            seen.add(combo)
            classes.append(np.concatenate([pool[i] for i in combo]))
    return classes, pool


def _templates(strokes, res=64, extent=1.3):
    """Distance fields (C, 1, res, res) of each class glyph over [-extent, extent]^2."""
    g = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 * extent - extent
    gy, gx = torch.meshgrid(g, g, indexing="ij")
    pix = torch.stack([gx, gy], -1).reshape(-1, 1, 2)                  # (P, 1, 2)
    out = []
    for s in strokes:
        seg = torch.from_numpy(s)
        a, b = seg[None, :, 0], seg[None, :, 1]                          # (1, S, 2)
        ab = b - a
        t = (((pix - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-8)).clamp(0, 1)
        d = (pix - (a + t[..., None] * ab)).norm(dim=-1).amin(-1)
        out.append(d.reshape(1, res, res))
    return torch.stack(out), extent


def _render(templates, distract, extent, labels, size, gen):
    """Draw one image per label with class-preserving jitter; returns uint8 (N, 3, size, size).

    Jitter: rotation +-25 deg, scale 0.75..1.15, shift +-0.15, stroke half-width 0.05..0.11 (image
    spans [-1, 1]), a smooth random warp (wobble), random colours, Gaussian pixel noise, and with
    probability 1/2 one distractor stroke from the pool (fainter, placed independently).
    """
    n = len(labels)
    lab = torch.as_tensor(labels)
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    theta = (u(n) - 0.5) * math.radians(50)
    scale = 0.75 + 0.4 * u(n)
    shift = (u(n, 2) - 0.5) * 0.3
    width = 0.05 + 0.06 * u(n)
    fg = 0.55 + 0.45 * u(n, 3)
    bg = 0.35 * u(n, 3)
    noise = 0.06 + 0.08 * u(n)
    which = torch.randint(0, len(distract), (n,), generator=gen)
    has_d = u(n) < 0.5
    d_shift = (u(n, 2) - 0.5) * 0.8
    d_theta = u(n) * 2 * math.pi
    wob = torch.randn(n, 2, 4, 4, generator=gen) * 0.05
    c, s_ = torch.cos(theta), torch.sin(theta)
    # output point p -> glyph point q = R(-theta) (p - shift) / scale (+ wobble)
    inv = torch.stack([torch.stack([c, s_], -1), torch.stack([-s_, c], -1)], -2) / scale[:, None, None]
    g = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    gy, gx = torch.meshgrid(g, g, indexing="ij")
    p = torch.stack([gx, gy], -1)[None] - shift[:, None, None, :]          # (n, H, W, 2)
    q = torch.einsum("nij,nhwj->nhwi", inv, p)
    q = q + torch.nn.functional.interpolate(wob, size=(size, size), mode="bilinear",
                                            align_corners=False).permute(0, 2, 3, 1)
    d = torch.nn.functional.grid_sample(templates[lab], q / extent, mode="bilinear",
                                        padding_mode="border", align_corners=False)
    d = d * scale[:, None, None, None]                                     # back to image units
    ink = torch.sigmoid((width[:, None, None, None] - d) * size * 0.9)
    # distractor: another pool stroke, own rotation and shift, drawn at 60 % contrast
    cd, sd = torch.cos(d_theta), torch.sin(d_theta)
    rd = torch.stack([torch.stack([cd, sd], -1), torch.stack([-sd, cd], -1)], -2)
    qd = torch.einsum("nij,nhwj->nhwi", rd, torch.stack([gx, gy], -1)[None] - d_shift[:, None, None, :])
    dd = torch.nn.functional.grid_sample(distract[which], qd / extent, mode="bilinear",
                                         padding_mode="border", align_corners=False)
    ink_d = torch.sigmoid((width[:, None, None, None] - dd) * size * 0.9) * has_d[:, None, None, None]
    ink = torch.maximum(ink, 0.6 * ink_d)
    img = bg[:, :, None, None] + (fg - bg)[:, :, None, None] * ink
    img = img + noise[:, None, None, None] * torch.randn(n, 3, size, size, generator=gen)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _glyph_key(num_classes, train_per_class, test_per_class, size, seed) -> dict:
    """The generator's parameters (``v``: the generator's version; bump it when _render changes)."""
    return dict(v=2, c=int(num_classes), tr=int(train_per_class), te=int(test_per_class), s=int(size),
                seed=int(seed))


def make_glyphs(num_classes=100, train_per_class=500, test_per_class=100, size=32, seed=0,
                cache_dir=None) -> dict:
    """Generate (or load from cache) the synthetic glyph set; returns a dict of uint8/int64 arrays.

    Examples
    --------
    >>> d = make_glyphs(num_classes=10, train_per_class=2, test_per_class=1, size=16)
    >>> d["x_train"].shape, d["y_test"].tolist()
    ((20, 3, 16, 16), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    if not 2 <= num_classes <= 1000:
        raise ValueError(f"glyphs: num_classes must be in 2..1000, got {num_classes}")
    key = _glyph_key(num_classes, train_per_class, test_per_class, size, seed)
    path = None
    if cache_dir is not None:
        tag = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
        path = Path(cache_dir) / f"glyphs_c{num_classes}_s{size}_{tag}.npz"
        if path.exists():
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
    classes, pool = _class_strokes(num_classes, seed)
    templates, extent = _templates(classes)
    distract, _ = _templates(pool)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for split, per in (("train", train_per_class), ("test", test_per_class)):
        y = np.tile(np.arange(num_classes), per)
        xs = [_render(templates, distract, extent, y[i:i + 4096], size, gen) for i in range(0, len(y), 4096)]
        out[f"x_{split}"] = torch.cat(xs).numpy() if xs else np.zeros((0, 3, size, size), np.uint8)
        out[f"y_{split}"] = y.astype(np.int64)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
        np.savez(tmp, **out)
        os.replace(tmp, path)
    return out


# ----------------------------------------------------------------------------- files on disk
def _unpickle(path: Path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


_CIFAR_FILES = {"cifar100": (["train"], ["test"]),
                "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])}
_CIFAR_SUB = {"cifar100": "cifar-100-python", "cifar10": "cifar-10-batches-py"}


def _cifar_folder(root, name) -> Path:
    sub, files = _CIFAR_SUB[name], _CIFAR_FILES[name]
    if not root:
        raise FileNotFoundError(f"{name}: pass --data-root pointing at the '{sub}' folder "
                                f"(or its parent); nothing is downloaded")
    root = Path(root)
    folder = root / sub if (root / sub).is_dir() else root
    for fn in files[0] + files[1]:
        if not (folder / fn).is_file():
            raise FileNotFoundError(f"{name}: expected the python pickle file {folder / fn} "
                                    f"(folder '{sub}' with {', '.join(files[0] + files[1])}); "
                                    f"nothing is downloaded")
    return folder


def load_cifar(root, name="cifar100") -> dict:
    """Load CIFAR-10/100 from the standard python pickle folder (no download)."""
    files = _CIFAR_FILES[name]
    folder = _cifar_folder(root, name)
    key = b"fine_labels" if name == "cifar100" else b"labels"
    out = {}
    for split, names in zip(("train", "test"), files):
        xs, ys = [], []
        for fn in names:
            d = _unpickle(folder / fn)
            xs.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[key], np.int64))
        out[f"x_{split}"], out[f"y_{split}"] = np.concatenate(xs), np.concatenate(ys)
    check_arrays(out, name)
    return out


def _to_nchw_uint8(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"npz: {what} must be (N, H, W, C) or (N, C, H, W), got shape {x.shape}")
    if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"npz: {what} needs 1 or 3 channels, got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"npz: {what} holds no images")
    if min(x.shape[2:]) < 4:
        raise ValueError(f"npz: {what} images must be at least 4x4 pixels, got shape {x.shape}")
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind != "f":
        raise ValueError(f"npz: {what} must be uint8 (0..255) or float (0..1), got dtype {x.dtype}")
    x = np.asarray(x, np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"npz: {what} holds NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"npz: float {what} must lie in [0, 1], got [{x.min():.3g}, {x.max():.3g}] "
                         f"(store 0..255 images as uint8)")
    return np.ascontiguousarray(np.round(x * 255).astype(np.uint8))


def _labels(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"npz: {what} must be a vector of class indices, got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"npz: {what} must hold integers (class indices 0..C-1), got dtype {y.dtype}")
    if len(y) and y.min() < 0:
        raise ValueError(f"npz: {what} holds negative labels (min {y.min()}); classes are 0..C-1")
    return y.astype(np.int64)


def check_arrays(d: dict, source: str = "npz") -> None:
    """Check an in-memory set: lengths agree, labels are 0..C-1 with every class seen in training,
    test labels within the training classes, train and test images of one shape."""
    for split in ("train", "test"):
        nx, ny = len(d[f"x_{split}"]), len(d[f"y_{split}"])
        if nx != ny:
            raise ValueError(f"{source}: x_{split} has {nx} images but y_{split} has {ny} labels")
        if nx == 0:
            raise ValueError(f"{source}: the {split} split is empty")
    if d["x_train"].shape[1:] != d["x_test"].shape[1:]:
        raise ValueError(f"{source}: train images {d['x_train'].shape[1:]} and test images "
                         f"{d['x_test'].shape[1:]} differ in shape")
    classes = np.unique(d["y_train"])
    c = int(classes[-1]) + 1
    if len(classes) != c:
        missing = sorted(set(range(c)) - set(classes.tolist()))
        raise ValueError(f"{source}: training labels must cover 0..{c - 1}; classes {missing[:10]} have no "
                         f"training image")
    extra = sorted(set(np.unique(d["y_test"]).tolist()) - set(classes.tolist()))
    if extra:
        raise ValueError(f"{source}: test labels {extra[:10]} are not training classes (0..{c - 1})")


def load_npz(path) -> dict:
    """Load ``x_train, y_train, x_test, y_test`` from an ``.npz`` (uint8 or float, NHWC or NCHW).

    Checked: shapes (1 or 3 channels, at least 4x4), dtypes (uint8, or float in [0, 1]), one
    label per image, integer labels 0..C-1 with every class in training, test labels among the
    training classes. Each problem raises ``ValueError`` naming the array.
    """
    if not path:
        raise FileNotFoundError("npz: pass --data-root pointing at a .npz file with "
                                "x_train, y_train, x_test, y_test")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"npz: expected a file {p} with arrays x_train, y_train, x_test, y_test")
    with np.load(p) as z:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
        if missing:
            raise ValueError(f"npz: {p} lacks {missing}; it has {z.files}")
        out = {k: _to_nchw_uint8(z[k], k) for k in ("x_train", "x_test")}
        out.update({k: _labels(z[k], k) for k in ("y_train", "y_test")})
    check_arrays(out, f"npz {p.name}")
    return out


# ----------------------------------------------------------------------------- in-memory batches
@dataclass
class ImageData:
    """An in-memory image set: uint8 NCHW ``x_*``, int64 ``y_*`` of the splits ``train``, ``val``
    (held out of the training set for model selection; may be empty) and ``test``, and the
    train-time transform. Images are normalised with the training split's channel statistics."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    flip: bool = True
    pad: int = 4
    name: str = "glyphs"
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    def __post_init__(self):
        x = self.x_train.float() / 255
        self.mean = x.mean((0, 2, 3)).view(1, 3, 1, 1)
        self.std = x.std((0, 2, 3)).clamp_min(1e-3).view(1, 3, 1, 1)
        if self.x_val is None:
            self.x_val, self.y_val = self.x_train[:0], self.y_train[:0]

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits that hold images (``val`` only when a validation split was held out)."""
        return ("train", "val", "test") if len(self.y_val) else ("train", "test")

    def _split(self, split):
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; choose train, val or test")
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def size(self, split):
        return len(self._split(split)[1])

    def get(self, split, idx, device, gen=None):
        """Batch ``idx`` of ``split`` as normalised float images on ``device`` (train: crop+flip)."""
        xs, ys = self._split(split)
        x, y = xs[idx], ys[idx]
        if split == "train" and gen is not None:
            x = _crop_flip(x, self.pad, self.flip, gen)
        x = x.to(device, non_blocking=True).float().div_(255)
        return (x - self.mean.to(device)) / self.std.to(device), y.to(device, non_blocking=True)


def _crop_flip(x: torch.Tensor, pad: int, flip: bool, gen) -> torch.Tensor:
    n, c, h, w = x.shape
    if pad > 0:
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        iy = oy[:, None] + torch.arange(h)
        ix = ox[:, None] + torch.arange(w)
        x = xp[torch.arange(n)[:, None, None], :, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        f = torch.rand(n, generator=gen) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def _glyph_args(cfg: dict) -> dict:
    """The glyph generator's arguments from a ``data`` section (defaults of :func:`make_glyphs`)."""
    args = {k: cfg.get(k, d) for k, d in (("num_classes", 100), ("train_per_class", 500), ("test_per_class", 100),
                                          ("size", 32), ("seed", 0))}
    nulls = [k for k, v in args.items() if v is None]
    if nulls:
        raise ValueError(f"glyphs: data.{nulls[0]} must be an integer (null, 'every image' or 'as stored', "
                         f"is for idx data)")
    return args


def _idx_args(cfg: dict) -> dict:
    return dict(train_per_class=cfg.get("train_per_class"), test_per_class=cfg.get("test_per_class"),
                size=cfg.get("size"), seed=cfg.get("seed", 0))


def _split(d: dict, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` indices into ``d["y_train"]``: the validation split, then, for idx data with
    ``train_per_class``, a class-balanced subset of what it leaves (so a small training subset
    still gets a validation split of the whole file's share)."""
    frac, seed = float(cfg.get("val_fraction", VAL_FRACTION)), int(cfg.get("seed", 0))
    tr, va = validation_split(d["y_train"], frac, seed)
    if cfg.get("name") == "idx" and cfg.get("train_per_class") is not None:
        tr = tr[class_subset(d["y_train"][tr], cfg["train_per_class"], seed, d["train_labels_file"] +
                             " (after the validation split)")]
    return tr, va


def data_identity(cfg: dict) -> dict:
    """What determines the data a config loads: the generator's parameters (glyphs) or a content
    hash of the file(s) (cifar, npz, idx; for idx also its subset and size), plus the train-time
    transform. Part of every run's identity, with the validation split (added by :func:`load_data`).

    ``imagefolder`` trees are identified by their listing (relative paths and sizes), not by
    hashing every image.
    """
    from .runs import config_digest, file_digest

    name = cfg.get("name", "glyphs")
    root = cfg.get("root")
    if name == "glyphs":
        return {"name": name, "generator": _glyph_key(**_glyph_args(cfg))}
    if name in ("cifar100", "cifar10"):
        folder = _cifar_folder(root, name)
        files = _CIFAR_FILES[name][0] + _CIFAR_FILES[name][1]
        return {"name": name, "files": config_digest({f: file_digest(folder / f) for f in files})}
    if name == "npz":
        load_npz(root)  # checks the file before anything is trained
        return {"name": name, "file": file_digest(root)}
    if name == "idx":
        return idx_identity(root, **_idx_args(cfg))
    if name == "synthetic_imagefolder":
        return {"name": name, "generator": _folder_key(cfg)}
    if name == "imagefolder":
        if not root or not Path(root).is_dir():
            raise FileNotFoundError(f"imagefolder: expected {root}/train/<class>/* and {root}/val/<class>/* "
                                    f"(ImageNet layout); pass --data-root")
        r = Path(root)
        listing = sorted((f.relative_to(r).as_posix(), f.stat().st_size) for f in r.rglob("*") if f.is_file())
        return {"name": name, "listing": config_digest({"files": listing})}
    raise ValueError(f"unknown data.name {name!r}; choose {', '.join(SOURCES)}")


def _folder_key(cfg) -> dict:
    """The generated JPEG folder's parameters (``v``: version of :func:`make_image_folder`)."""
    return dict(v=1, c=int(cfg.get("num_classes", 4)), tr=int(cfg.get("train_per_class", 8)),
                te=int(cfg.get("test_per_class", 4)), seed=int(cfg.get("seed", 0)))


def _arrays(cfg: dict, run_dir) -> tuple[dict, bool]:
    """The arrays of an in-memory source and its default for horizontal flips."""
    name = cfg.get("name", "glyphs")
    root = cfg.get("root")
    if name == "glyphs":
        return make_glyphs(**_glyph_args(cfg), cache_dir=cfg.get("cache_dir") or str(Path(run_dir) / "data")), False
    if name in ("cifar100", "cifar10"):
        return load_cifar(root, name), True
    if name == "npz":
        return load_npz(root), True
    if name == "idx":  # digits and characters are not mirror-symmetric: no flips unless asked
        return load_idx(root, **dict(_idx_args(cfg), train_per_class=None)), False
    raise ValueError(f"unknown data.name {name!r}; choose {', '.join(SOURCES)}")


def _folder_data(cfg: dict, run_dir) -> ImageFolderData:
    root = cfg.get("root")
    if cfg.get("name") == "synthetic_imagefolder":
        key = _folder_key(cfg)
        tag = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
        root = make_image_folder(Path(cfg.get("cache_dir") or Path(run_dir) / "data") / f"folder_{tag}",
                                 key["c"], key["tr"], key["te"], seed=key["seed"])
        cfg = dict(cfg, root=str(root))
    out = ImageFolderData(root, cfg.get("size", 224), cfg.get("resize", 256), cfg.get("workers", 4),
                          val_fraction=cfg.get("val_fraction", VAL_FRACTION), seed=cfg.get("seed", 0))
    out.identity = dict(data_identity(cfg), size=out.size_px, resize=out.resize, split=out.split)
    return out


def load_data(cfg: dict, run_dir) -> "ImageData | ImageFolderData":
    """Build the data set described by a config's ``data`` section (see module docstring), with
    the validation split of :mod:`examples.kd.split` (``data.val_fraction``) held out of the
    training set.

    The result carries ``identity``: :func:`data_identity` plus the effective transform and the split.
    """
    if cfg.get("name", "glyphs") in ("imagefolder", "synthetic_imagefolder"):
        return _folder_data(cfg, run_dir)
    d, flip = _arrays(cfg, run_dir)
    flip = cfg.get("flip", flip)
    tr, va = _split(d, cfg)
    t = {k: torch.from_numpy(np.ascontiguousarray(d[k])) for k in ("x_train", "y_train", "x_test", "y_test")}
    nc = int(max(t["y_train"].max(), t["y_test"].max())) + 1
    pad = cfg.get("pad", max(1, t["x_train"].shape[-1] // 8))
    tr, va = torch.from_numpy(tr), torch.from_numpy(va)
    out = ImageData(t["x_train"][tr], t["y_train"][tr], t["x_test"], t["y_test"], nc, flip, pad,
                    cfg.get("name", "glyphs"), x_val=t["x_train"][va], y_val=t["y_train"][va])
    out.identity = dict(data_identity(cfg), flip=bool(flip), pad=int(pad),
                        split=split_identity(float(cfg.get("val_fraction", VAL_FRACTION)), int(cfg.get("seed", 0)),
                                             va.numpy()))
    out.source = {k: d[k] for k in ("folder", "native") if k in d}
    return out
