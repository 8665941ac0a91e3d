"""Data loaders on small generated files (CIFAR pickle, ImageFolder, npz) and their errors."""

import pickle

import numpy as np
import pytest
import torch

from examples.kd.data import ImageFolderData, load_cifar, load_data, load_npz, make_glyphs


def _write_cifar(root, name):
    rng = np.random.default_rng(0)
    if name == "cifar100":
        d = root / "cifar-100-python"
        d.mkdir()
        for fn, n in (("train", 6), ("test", 4)):
            with open(d / fn, "wb") as f:
                pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                             b"fine_labels": list(range(n))}, f)
    else:
        d = root / "cifar-10-batches-py"
        d.mkdir()
        for fn in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            with open(d / fn, "wb") as f:
                pickle.dump({b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [0, 1]}, f)
    return d


@pytest.mark.parametrize("name", ["cifar100", "cifar10"])
def test_cifar_pickle(tmp_path, name):
    d = _write_cifar(tmp_path, name)
    for root in (tmp_path, d):  # parent folder or the folder itself
        out = load_cifar(root, name)
        assert out["x_train"].shape[1:] == (3, 32, 32) and out["x_train"].dtype == np.uint8
    data = load_data({"name": name, "root": str(tmp_path)}, tmp_path)
    x, y = data.get("train", torch.arange(2), "cpu", torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32


def test_npz_layouts(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.uniform(0, 1, (5, 8, 8, 3)).astype(np.float32)
    p = tmp_path / "d.npz"
    np.savez(p, x_train=nhwc, y_train=np.arange(5), x_test=(nhwc[:2] * 255).astype(np.uint8).transpose(0, 3, 1, 2),
             y_test=np.array([0, 1]))
    out = load_npz(p)
    assert out["x_train"].shape == (5, 3, 8, 8) and out["x_test"].shape == (2, 3, 8, 8)
    assert out["x_train"].dtype == np.uint8
    np.testing.assert_allclose(out["x_train"][:2], out["x_test"], atol=1)
    gray = tmp_path / "g.npz"
    np.savez(gray, x_train=np.zeros((3, 8, 8), np.uint8), y_train=[0, 1, 2], x_test=np.zeros((1, 8, 8), np.uint8),
             y_test=[0])
    assert load_npz(gray)["x_train"].shape == (3, 3, 8, 8)


def test_imagefolder(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / split / c / f"{i}.png")
    d = ImageFolderData(tmp_path, size=16, resize=18)
    assert d.num_classes == 2 and d.size("train") == 4 and d.size("test") == 4
    x, y = d.get("train", torch.arange(4), "cpu", torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 16, 16) and y.tolist() == [0, 0, 1, 1]
    x, _ = d.get("test", torch.arange(2), "cpu")
    assert x.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("cfg, err, match", [
    ({"name": "cifar100", "root": "MISSING"}, FileNotFoundError, "cifar-100-python"),
    ({"name": "cifar10", "root": "MISSING"}, FileNotFoundError, "cifar-10-batches-py"),
    ({"name": "cifar100"}, FileNotFoundError, "--data-root"),
    ({"name": "npz", "root": "MISSING.npz"}, FileNotFoundError, "x_train, y_train, x_test, y_test"),
    ({"name": "npz"}, FileNotFoundError, "--data-root"),
    ({"name": "imagefolder", "root": "MISSING"}, FileNotFoundError, "train/<class>"),
    ({"name": "mnist"}, ValueError, "unknown data.name"),
    ({"name": "glyphs", "num_classes": 1}, ValueError, "num_classes"),
])
def test_missing_files_and_bad_names(tmp_path, cfg, err, match):
    cfg = dict(cfg)
    if cfg.get("root"):
        cfg["root"] = str(tmp_path / cfg["root"])
    with pytest.raises(err, match=match):
        load_data(cfg, tmp_path)


def test_npz_missing_keys(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, x_train=np.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="lacks"):
        load_npz(p)


def test_glyphs_deterministic_and_cached(tmp_path):
    a = make_glyphs(10, 3, 1, 16, seed=0, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("glyphs_*.npz"))) == 1
    b = make_glyphs(10, 3, 1, 16, seed=0, cache_dir=tmp_path)   # from the cache
    c = make_glyphs(10, 3, 1, 16, seed=0)                       # regenerated
    for k in a:
        assert np.array_equal(a[k], b[k]) and np.array_equal(a[k], c[k])
    assert a["x_train"].shape == (30, 3, 16, 16) and sorted(set(a["y_train"])) == list(range(10))
    d = make_glyphs(10, 3, 1, 16, seed=1)
    assert not np.array_equal(a["x_train"], d["x_train"])


def test_data_identity_follows_content_and_generator(tmp_path):
    from examples.kd.data import data_identity

    p = tmp_path / "d.npz"
    arrays = dict(x_train=np.zeros((3, 8, 8, 3), np.uint8), y_train=np.array([0, 1, 2]),
                  x_test=np.zeros((1, 8, 8, 3), np.uint8), y_test=np.array([0]))
    np.savez(p, **arrays)
    a = data_identity({"name": "npz", "root": str(p)})
    np.savez(p, **dict(arrays, y_train=np.array([0, 2, 1])))  # same shapes, other labels
    b = data_identity({"name": "npz", "root": str(p)})
    assert a["file"] != b["file"]
    g = dict(name="glyphs", num_classes=10, train_per_class=3, test_per_class=1, size=16, seed=0)
    assert data_identity(g) == data_identity(dict(g))
    for k, v in (("num_classes", 11), ("train_per_class", 4), ("size", 12), ("seed", 1)):
        assert data_identity(dict(g, **{k: v})) != data_identity(g), k
    # the transform is part of a loaded set's identity
    d1 = load_data(dict(g, flip=False), tmp_path)
    d2 = load_data(dict(g, flip=True), tmp_path)
    assert d1.identity != d2.identity and d1.identity["generator"] == d2.identity["generator"]
