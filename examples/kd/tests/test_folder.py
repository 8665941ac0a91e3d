"""ImageFolder path: transforms, DataLoader with worker processes, DistributedSampler shards."""

import numpy as np
import pytest
import torch
from PIL import Image

from examples.kd.data import load_data
from examples.kd.folder import (ImageFolderData, eval_transform, make_image_folder, random_resized_crop_box,
                                train_transform)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("jpegs"), num_classes=3, train_per_class=5, val_per_class=2)


def test_generated_folder_layout(folder):
    d = ImageFolderData(folder, size=16, resize=20, workers=0)
    assert d.classes == ["class_00", "class_01", "class_02"]
    assert d.size("train") == 15 and d.size("test") == 6 and d.num_classes == 3
    assert all(p.endswith(".jpg") for p, _ in d.files["train"])


def test_eval_transform_is_resize_then_centre_crop():
    # a 40x20 image whose columns are numbered: resize shorter side 20 -> 10 gives 20x10,
    # the centre 10x10 crop keeps columns 5..14 of the resized image (original 10..29)
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :, 0] = np.arange(40)[None, :] * 6
    x = eval_transform(Image.fromarray(arr), size=10, resize=10)
    assert x.shape == (3, 10, 10) and x.dtype == torch.uint8
    ref = np.asarray(Image.fromarray(arr).resize((20, 10), Image.BILINEAR))[:, 5:15, 0]
    assert torch.equal(x[0], torch.from_numpy(ref.copy()))


def test_random_resized_crop_box_bounds_and_ratio():
    rng = np.random.default_rng(0)
    for _ in range(300):
        w, h = int(rng.integers(8, 80)), int(rng.integers(8, 80))
        x0, y0, cw, ch = random_resized_crop_box(w, h, rng)
        assert 0 <= x0 and 0 <= y0 and x0 + cw <= w and y0 + ch <= h and cw > 0 and ch > 0
    # a 100x1 strip: no try fits, the fallback is a centre crop with the ratio clamped to 4/3
    assert random_resized_crop_box(100, 3, np.random.default_rng(0)) == (48, 0, 4, 3)


def test_train_transform_flips_and_is_seeded():
    arr = np.random.default_rng(1).integers(0, 255, (30, 30, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    a = train_transform(im, 12, np.random.default_rng([5, 0, 3]))
    b = train_transform(im, 12, np.random.default_rng([5, 0, 3]))
    assert a.shape == (3, 12, 12) and torch.equal(a, b)
    # with scale (1, 1) and ratio (1, 1) the crop is the whole image; the output is it, maybe flipped
    outs = set()
    for s in range(20):
        rng = np.random.default_rng(s)
        box = random_resized_crop_box(30, 30, np.random.default_rng(s), scale=(1, 1), ratio=(1, 1))
        assert box == (0, 0, 30, 30)
        x = train_transform(im, 30, rng, scale=(1, 1), ratio=(1, 1))
        full = torch.from_numpy(arr.copy()).permute(2, 0, 1)
        assert torch.equal(x, full) or torch.equal(x, full.flip(2))
        outs.add(torch.equal(x, full.flip(2)))
    assert outs == {True, False}


def test_loader_with_workers_equals_single_process(folder):
    d0 = ImageFolderData(folder, size=16, resize=20, workers=0)
    d2 = ImageFolderData(folder, size=16, resize=20, workers=2)
    a = list(d0.batches("train", 4, "cpu", epoch=1, seed=3))
    b = list(d2.batches("train", 4, "cpu", epoch=1, seed=3))
    assert len(a) == len(b) == 4
    for (ia, xa, ya), (ib, xb, yb) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(xa, xb) and torch.equal(ya, yb)
    # a new epoch reshuffles and redraws the crops
    c = list(d0.batches("train", 4, "cpu", epoch=2, seed=3))
    assert not all(torch.equal(p[0], q[0]) for p, q in zip(a, c))
    # each batch is the dataset's samples of that epoch, normalised with the ImageNet mean/std
    ds = d0.dataset("train", 3)
    ds.set_epoch(1)
    idx, x, y = a[0]
    raw = torch.stack([ds[int(i)][0] for i in idx]).float() / 255
    assert torch.allclose(x, (raw - d0.mean) / d0.std) and y.tolist() == [ds[int(i)][1] for i in idx]


def test_distributed_sampler_shards_cover_the_split(folder):
    d = ImageFolderData(folder, size=16, resize=20, workers=0)
    got = [torch.cat([i for i, _, _ in d.batches("test", 2, "cpu", rank=r, world=2)]) for r in range(2)]
    assert len(got[0]) == len(got[1]) == 3
    assert sorted(torch.cat(got).tolist()) == list(range(6))
    ytrue = torch.tensor([c for _, c in d.files["test"]])
    for r in range(2):
        ys = torch.cat([y for _, _, y in d.batches("test", 2, "cpu", rank=r, world=2)])
        assert torch.equal(ys, ytrue[got[r]])


def test_get_matches_dataset(folder):
    d = ImageFolderData(folder, size=16, resize=20, workers=0)
    x, y = d.get("test", torch.tensor([0, 5]), "cpu")
    raw = torch.stack([d.dataset("test")[i][0] for i in (0, 5)]).float() / 255
    want = (raw - d.mean) / d.std
    assert torch.allclose(x, want) and y.tolist() == [d.files["test"][0][1], d.files["test"][5][1]]


def test_synthetic_imagefolder_source(tmp_path):
    d = load_data({"name": "synthetic_imagefolder", "num_classes": 2, "train_per_class": 2, "test_per_class": 1,
                   "size": 16, "resize": 18, "workers": 0}, tmp_path)
    assert d.num_classes == 2 and d.size("test") == 2 and d.streams
    # one image of each class held out of train/ for validation (the folder's val/ is the test split)
    assert d.size("train") == 2 and d.size("val") == 2 and d.splits == ("train", "val", "test")
    assert {label for _, label in d.files["val"]} == {0, 1} and not set(d.files["val"]) & set(d.files["train"])
    assert d.identity["split"]["val_size"] == 2
