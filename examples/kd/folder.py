"""ImageNet-layout image folders through a ``torch.utils.data.DataLoader`` (worker processes,
``DistributedSampler``), with the standard ImageNet transforms written with Pillow + torch.

Layout: ``<root>/train/<class>/*.jpg`` and ``<root>/val/<class>/*`` (classes = the sorted
sub-folder names of ``train``; images of other folders in ``val`` are an error).

Transforms (those of the reference ImageNet training recipe, as in torchvision's references):

* training: random-resized crop (area share ``U(0.08, 1)``, aspect ratio log-uniform in
  ``[3/4, 4/3]``, 10 tries, then a centre crop of the largest allowed ratio), bilinear resize to
  ``size x size``, horizontal flip with probability 1/2;
* evaluation: resize the shorter side to ``resize`` (256), centre crop ``size`` (224);
* normalisation with the ImageNet mean and std happens on the device, on uint8 batches (a 4x
  smaller transfer).

Why not torchvision: its PyPI wheel for ``torch==2.13.0`` does not import beside the CPU build of
torch that the README's first command installs (``operator torchvision::nms does not exist``);
these few transforms are written here instead.

Randomness: sample ``i`` of epoch ``e`` draws its crop and flip from a generator seeded by
``(seed, e, i)``, so batches are the same for any number of worker processes and ranks.

:func:`make_image_folder` writes a tiny synthetic folder of JPEGs (each class a coloured shape
on a textured background) for tests, CI and the CPU-scale ``imagenet-cpu`` profile.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .split import split_identity, validation_split

__all__ = ["FolderDataset", "ImageFolderData", "random_resized_crop_box", "train_transform",
           "eval_transform", "make_image_folder", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


# ----------------------------------------------------------------------------- transforms
def random_resized_crop_box(w: int, h: int, rng: np.random.Generator, scale=(0.08, 1.0),
                            ratio=(3 / 4, 4 / 3)):
    """The crop ``(x0, y0, cw, ch)`` of a random-resized crop of a ``w x h`` image."""
    area = w * h
    lr = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        r = math.exp(rng.uniform(*lr))
        cw, ch = int(round(math.sqrt(target * r))), int(round(math.sqrt(target / r)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch
    # fallback: centre crop with the ratio clamped to the allowed range
    r = w / h
    if r < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif r > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def _to_tensor(im) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im, np.uint8).copy()).permute(2, 0, 1).contiguous()


def train_transform(im, size: int, rng: np.random.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Random-resized crop to ``size``, horizontal flip (p = 1/2); uint8 (3, size, size)."""
    from PIL import Image

    x0, y0, cw, ch = random_resized_crop_box(im.size[0], im.size[1], rng, scale, ratio)
    im = im.resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    return _to_tensor(im)


def eval_transform(im, size: int, resize: int) -> torch.Tensor:
    """Resize the shorter side to ``resize``, centre crop ``size``; uint8 (3, size, size)."""
    from PIL import Image

    w, h = im.size
    k = resize / min(w, h)
    nw, nh = max(size, int(round(w * k))), max(size, int(round(h * k)))
    im = im.resize((nw, nh), Image.BILINEAR)
    x0, y0 = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    return _to_tensor(im.crop((x0, y0, x0 + size, y0 + size)))


# ----------------------------------------------------------------------------- dataset
def _scan(root: Path):
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise FileNotFoundError(f"imagefolder: expected {root}/train/<class>/* and {root}/val/<class>/* "
                                f"(ImageNet layout); pass --data-root")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"imagefolder: no class folders under {root / 'train'}")
    index = {c: i for i, c in enumerate(classes)}
    files = {}
    for split in ("train", "val"):
        items = []
        for cdir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            if cdir.name not in index:
                raise FileNotFoundError(f"imagefolder: {cdir} is not a class of {root / 'train'}")
            items += [(str(p), index[cdir.name]) for p in sorted(cdir.iterdir()) if p.suffix.lower() in _EXT]
        if not items:
            raise FileNotFoundError(f"imagefolder: no images under {root / split}/<class>/")
        files[split] = items
    return classes, files


class FolderDataset(torch.utils.data.Dataset):
    """``(uint8 image (3, size, size), label, index)`` for each file of a split.

    Training samples are augmented from a generator seeded by ``(seed, epoch, index)``; call
    :meth:`set_epoch` before creating each epoch's iterator.
    """

    def __init__(self, items, train: bool, size=224, resize=256, seed=0):
        self.items, self.train, self.size, self.resize = list(items), bool(train), int(size), int(resize)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as im:
            im = im.convert("RGB")
            if self.train:
                x = train_transform(im, self.size, np.random.default_rng([self.seed, self.epoch, int(i)]))
            else:
                x = eval_transform(im, self.size, self.resize)
        return x, label, i


class ImageFolderData:
    """An image folder for the training loop: batches from a ``DataLoader`` with ``workers``
    processes and a ``DistributedSampler`` (rank and world size of the default process group).
    Splits: ``train`` and ``val`` (``val_fraction`` of ``train/``, class-stratified, drawn with
    ``seed``) and ``test`` (the folder's ``val/``).

    ``get(split, idx, device, gen)`` decodes given indices in the main process (analysis steps);
    :meth:`batches` streams an epoch through the loader (training and evaluation).
    """

    streams = True

    def __init__(self, root, size=224, resize=256, workers=4, val_fraction=0.0, seed=0):
        try:
            from PIL import Image  # noqa: F401
        except ImportError as e:  # pragma: no cover - Pillow ships with matplotlib
            raise ImportError("imagefolder data needs Pillow (pip install pillow)") from e
        if not root:
            raise FileNotFoundError("imagefolder: pass --data-root DIR with DIR/train/<class>/* and DIR/val/<class>/*")
        self.root = Path(root)
        self.classes, files = _scan(self.root)
        # the folder's val/ images are the test split; the validation split is held out of train/
        tr, va = validation_split([label for _, label in files["train"]], float(val_fraction), int(seed))
        self.files = {"train": [files["train"][i] for i in tr], "val": [files["train"][i] for i in va],
                      "test": files["val"]}
        self.split = split_identity(val_fraction, seed, va)
        self.num_classes, self.size_px, self.resize, self.workers = len(self.classes), int(size), int(resize), int(workers)
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.name = "imagefolder"

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits that hold images (``val`` only when a validation split was held out)."""
        return ("train", "val", "test") if self.files["val"] else ("train", "test")

    def size(self, split):
        return len(self.files[split])

    def normalise(self, x: torch.Tensor, device) -> torch.Tensor:
        x = x.to(device, non_blocking=True).float().div_(255)
        return (x - self.mean.to(device)) / self.std.to(device)

    def dataset(self, split, seed=0) -> FolderDataset:
        return FolderDataset(self.files[split], split == "train", self.size_px, self.resize, seed)

    def batches(self, split, batch_size, device, epoch=0, seed=0, rank=0, world=1, shuffle=None):
        """Yield ``(idx, x, y)`` for this rank's share of one epoch of ``split``.

        ``x`` is normalised on ``device``; ``shuffle`` defaults to ``split == "train"``. The
        sampler pads the split to a multiple of ``world`` (as ``DistributedSampler`` does), so
        every rank runs the same number of steps.
        """
        ds = self.dataset(split, seed)
        ds.set_epoch(epoch)
        shuffle = split == "train" if shuffle is None else shuffle
        sampler = torch.utils.data.DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=shuffle,
                                                      seed=seed, drop_last=False)
        sampler.set_epoch(epoch)
        pin = torch.device(device).type == "cuda"
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler,
                                             num_workers=self.workers, pin_memory=pin,
                                             persistent_workers=False, drop_last=False)
        for x, y, idx in loader:
            yield idx, self.normalise(x, device), y.to(device, non_blocking=True)

    def get(self, split, idx, device, gen=None):
        """Given indices of ``split`` decoded in this process (training crops seeded from ``gen``)."""
        seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=gen)) if gen is not None else 0
        ds = self.dataset(split, seed)
        ds.train = split == "train" and gen is not None
        xs, ys = zip(*[ds[int(i)][:2] for i in idx])
        return self.normalise(torch.stack(xs), device), torch.tensor(ys, dtype=torch.int64).to(device)


# ----------------------------------------------------------------------------- synthetic folder
def make_image_folder(root, num_classes=4, train_per_class=8, val_per_class=4, size=(48, 40), seed=0) -> Path:
    """Write a tiny ImageNet-layout folder of JPEGs; returns ``root``. Existing files are kept.

    Class ``c`` is a filled shape (disc, square, triangle, ring, ... cycling) in a class colour,
    at a random position and scale over a noisy background of random colour; image sizes vary
    around ``size`` (w, h) so that the resize and crop paths are exercised.

    Examples
    --------
    >>> import tempfile
    >>> root = make_image_folder(tempfile.mkdtemp(), num_classes=2, train_per_class=1, val_per_class=1)
    >>> sorted(p.name for p in (root / "train").iterdir())
    ['class_00', 'class_01']
    """
    from PIL import Image, ImageDraw

    root = Path(root)
    rng = np.random.default_rng(seed)
    hues = rng.permutation(num_classes) / max(1, num_classes)
    for split, per in (("train", train_per_class), ("val", val_per_class)):
        for c in range(num_classes):
            d = root / split / f"class_{c:02d}"
            d.mkdir(parents=True, exist_ok=True)
            for j in range(per):
                path = d / f"img_{j:04d}.jpg"
                if path.exists():
                    continue
                w = int(size[0] * rng.uniform(0.8, 1.25))
                h = int(size[1] * rng.uniform(0.8, 1.25))
                bg = rng.integers(0, 120, 3)
                arr = np.clip(bg + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
                im = Image.fromarray(arr)
                draw = ImageDraw.Draw(im)
                col = tuple(int(255 * v) for v in _hue(hues[c]))
                r = min(w, h) * rng.uniform(0.25, 0.4)
                cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
                box = [cx - r, cy - r, cx + r, cy + r]
                shape = c % 4
                if shape == 0:
                    draw.ellipse(box, fill=col)
                elif shape == 1:
                    draw.rectangle(box, fill=col)
                elif shape == 2:
                    draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=col)
                else:
                    draw.ellipse(box, outline=col, width=max(2, int(r / 3)))
                im.save(path, quality=90)
    return root


def _hue(h):
    import colorsys

    return colorsys.hsv_to_rgb(float(h), 0.9, 1.0)
