"""The IDX loader (MNIST / Fashion-MNIST / KMNIST files) on small files written here, its errors,
the validation split, and the idx path of the command line end to end."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from examples.kd.idx import find_idx, load_idx, read_idx
from examples.kd.split import validation_split

ROOT = Path(__file__).resolve().parents[3]
NAMES = {"train-images": "train-images-idx3-ubyte", "train-labels": "train-labels-idx1-ubyte",
         "t10k-images": "t10k-images-idx3-ubyte", "t10k-labels": "t10k-labels-idx1-ubyte"}


def idx_bytes(arr, dtype_code=8) -> bytes:
    """The IDX encoding of ``arr``, written out by hand: magic, big-endian sizes, the bytes."""
    arr = np.asarray(arr, np.uint8)
    return bytes([0, 0, dtype_code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def tiny_set(classes=3, train_per_class=12, test_per_class=4, side=8, seed=0):
    """Images whose class is the bright row (row 2c), with noise; labels cycle through the classes."""
    rng = np.random.default_rng(seed)
    out = {}
    for role, per in (("train", train_per_class), ("t10k", test_per_class)):
        y = np.tile(np.arange(classes), per).astype(np.uint8)
        x = rng.integers(0, 60, (len(y), side, side)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 * c % side] = 250
        out[f"{role}-images"], out[f"{role}-labels"] = x, y
    return out


def write_set(folder: Path, arrays=None, gz=True, **kw) -> dict:
    arrays = arrays or tiny_set(**kw)
    ext = ".gz" if gz else ""
    return {role: write(folder / (NAMES[role] + ext), idx_bytes(a)) for role, a in arrays.items()}


@pytest.mark.parametrize("gz", [True, False])
def test_reads_gz_and_plain_files_from_a_subfolder(tmp_path, gz):
    arrays = tiny_set()
    write_set(tmp_path / "downloads" / "fashion", arrays, gz=gz)
    d = load_idx(tmp_path)  # the parent: the files are found in its subfolder
    assert d["folder"] == str(tmp_path / "downloads" / "fashion") and d["native"] == [8, 8]
    assert d["x_train"].shape == (36, 3, 8, 8) and d["x_train"].dtype == np.uint8
    for c in range(3):  # the grey channel repeated, pixels and labels as written
        assert np.array_equal(d["x_train"][:, c], arrays["train-images"])
    assert np.array_equal(d["y_test"], arrays["t10k-labels"]) and d["y_test"].dtype == np.int64


def test_dot_names_and_plain_file_preferred_over_gz(tmp_path):
    arrays = tiny_set()
    for role, a in arrays.items():
        name = NAMES[role].replace("-idx", ".idx")  # train-images.idx3-ubyte
        write(tmp_path / name, idx_bytes(a))
    write(tmp_path / (NAMES["t10k-labels"].replace("-idx", ".idx") + ".gz"), idx_bytes(arrays["t10k-labels"][::-1]))
    files = find_idx(tmp_path)
    assert files["t10k-labels"].suffix != ".gz"
    assert np.array_equal(load_idx(tmp_path)["y_test"], arrays["t10k-labels"])


def test_subset_and_area_resize(tmp_path):
    arrays = tiny_set(train_per_class=12, test_per_class=4)
    write_set(tmp_path, arrays)
    d = load_idx(tmp_path, train_per_class=5, test_per_class=None, size=4, seed=3)
    assert np.bincount(d["y_train"]).tolist() == [5, 5, 5] and len(d["y_test"]) == 12
    # 8x8 -> 4x4: the mean of each 2x2 block, rounded
    blocks = arrays["t10k-images"].reshape(12, 4, 2, 4, 2).astype(float).mean((2, 4))
    assert np.abs(d["x_test"][:, 0].astype(float) - blocks).max() <= 0.5
    again = load_idx(tmp_path, train_per_class=5, size=4, seed=3)
    other = load_idx(tmp_path, train_per_class=5, size=4, seed=4)
    assert np.array_equal(d["x_train"], again["x_train"]) and not np.array_equal(d["x_train"], other["x_train"])
    with pytest.raises(ValueError, match="class 0 has 12 images, fewer than the 13"):
        load_idx(tmp_path, train_per_class=13)
    with pytest.raises(ValueError, match="larger than its 8x8 images"):
        load_idx(tmp_path, size=9)


def _corrupt(role, how):
    """(role, bytes) of a damaged file."""
    arrays = tiny_set()
    a = arrays[role]
    good = idx_bytes(a)
    return {"magic": idx_bytes(a, dtype_code=9), "ndim": idx_bytes(a.reshape(len(a), -1) if a.ndim == 3 else a[:, None]),
            "truncated": good[:-5], "extra": good + b"\0\0", "empty": b"\0\0"}[how]


@pytest.mark.parametrize("role, how, match", [
    ("train-images", "magic", "wrong magic number 0x00000903, expected 0x00000803"),
    ("train-labels", "ndim", "wrong magic number 0x00000802, expected 0x00000801"),
    ("t10k-images", "truncated", "truncated: the header announces 12x8x8 = 768 bytes of data, the file holds 763"),
    ("t10k-labels", "extra", "2 bytes after the 12 bytes of data"),
    ("train-labels", "empty", "wrong magic number only 2 bytes"),
])
def test_bad_files_name_the_file(tmp_path, role, how, match):
    files = write_set(tmp_path, gz=False)
    files[role].write_bytes(_corrupt(role, how))
    with pytest.raises(ValueError, match=match) as e:
        load_idx(tmp_path)
    assert str(e.value).startswith(str(files[role])) and "\n" not in str(e.value)


def test_truncated_gzip_names_the_file(tmp_path):
    files = write_set(tmp_path, gz=True)
    raw = files["train-images"].read_bytes()
    files["train-images"].write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a complete gzip file") as e:
        load_idx(tmp_path)
    assert str(e.value).startswith(str(files["train-images"]))


@pytest.mark.parametrize("change, role, match", [
    (lambda a: a.update({"train-labels": a["train-labels"][:-1]}), "train-labels",
     "35 labels, but train-images-idx3-ubyte.gz holds 36 images"),
    (lambda a: a.update({"train-labels": np.where(a["train-labels"] == 1, 3, a["train-labels"])}), "train-labels",
     r"labels go up to 3 but classes \[1\] have no image"),
    (lambda a: a["t10k-labels"].__setitem__(5, 7), "t10k-labels",
     "label 7 at position 5 is out of range: the training labels are 0..2"),
])
def test_inconsistent_labels_name_the_file(tmp_path, change, role, match):
    arrays = tiny_set()
    change(arrays)
    files = write_set(tmp_path, arrays)
    with pytest.raises(ValueError, match=match) as e:
        load_idx(tmp_path)
    assert str(e.value).startswith(str(files[role]))


def test_missing_and_ambiguous_sets(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-root"):
        load_idx(None)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_idx(tmp_path / "nowhere")
    files = write_set(tmp_path / "a")
    files["t10k-labels"].unlink()
    with pytest.raises(FileNotFoundError, match=r"found .*a: t10k-images, train-images, train-labels"):
        load_idx(tmp_path)
    write_set(tmp_path / "b")
    write_set(tmp_path / "c")
    with pytest.raises(ValueError, match="2 IDX sets under"):
        load_idx(tmp_path)
    assert load_idx(tmp_path / "b")["x_train"].shape[0] == 36


def test_read_idx_roundtrip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = write(tmp_path / "x.gz", idx_bytes(a))
    assert np.array_equal(read_idx(p, 3), a)


# ----------------------------------------------------------------------------- the validation split
def test_validation_split_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(4), [10, 20, 30, 1])
    tr, va = validation_split(y, 0.1, seed=0)
    assert np.bincount(y[va], minlength=4).tolist() == [1, 2, 3, 0]  # a class of one image stays in training
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(y)
    assert np.array_equal(validation_split(y, 0.1, 0)[1], va) and not np.array_equal(validation_split(y, 0.1, 1)[1], va)
    tr0, va0 = validation_split(y, 0.0, 0)
    assert len(va0) == 0 and np.array_equal(tr0, np.arange(len(y)))
    assert len(validation_split(np.repeat([0, 1], 3), 0.01, 0)[1]) == 2  # at least one per class
    with pytest.raises(ValueError, match="val_fraction"):
        validation_split(y, 1.0)


def test_identity_follows_files_subset_size_and_split(tmp_path):
    from examples.kd.data import load_data

    files = write_set(tmp_path, gz=False)
    cfg = {"name": "idx", "root": str(tmp_path), "train_per_class": 10, "size": 8}
    base = load_data(cfg, tmp_path)
    # the validation split (one image of each class) is held out of the whole file, then 10 of
    # each class's 11 others are drawn for training
    assert base.size("train") == 30 and base.size("val") == 3 and base.size("test") == 12
    val = set(map(tuple, base.x_val[:, 0].reshape(3, -1).tolist()))
    assert not val & set(map(tuple, base.x_train[:, 0].reshape(30, -1).tolist()))
    for k, v in (("train_per_class", 9), ("size", 4), ("seed", 1), ("val_fraction", 0.2), ("test_per_class", 2)):
        assert load_data(dict(cfg, **{k: v}), tmp_path).identity != base.identity, k
    assert load_data(dict(cfg, val_fraction=0.2), tmp_path).identity["split"]["val_size"] == 6
    labels = tiny_set()["train-labels"].copy()
    labels[[0, 1]] = labels[[1, 0]]  # the same images and counts, two labels swapped
    files["train-labels"].write_bytes(idx_bytes(labels))
    assert load_data(cfg, tmp_path).identity["files"] != base.identity["files"]


# ----------------------------------------------------------------------------- the command line
TINY = ["data.train_per_class=8", "data.test_per_class=null", "data.size=null", "teacher.arch=resnet8",
        "teacher.epochs=2", "student.epochs=1", "optim.batch_size=12", "seeds=[0]", "analysis.timing_rounds=2",
        "analysis.timing_warmup=1", "analysis.fig1_samples=12", "progress=false", "threads=1"]


def _cli(args, timeout=300):
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "examples.kd", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_idx_end_to_end(tmp_path):
    """`run --profile fmnist --data-root DIR` on a generated IDX set: teacher, the Table 1 students,
    Fig. 1, Table 1, the report (its setup names the data and the split) and its README blocks
    (``fmnist-*``, the quick profile's left alone); another split is never reused; a damaged file
    stops the command in one line naming it, before anything is written."""
    data = tmp_path / "mnist-like"
    files = write_set(data, classes=3, train_per_class=12, test_per_class=4, side=12)
    run = tmp_path / "run"
    args = ["--profile", "fmnist", "--run-dir", str(run), "--data-root", str(tmp_path), *TINY,
            "pipeline=[teacher,students,fig1,table1,report]"]
    out = _cli(["run", *args])
    assert out.returncode == 0, out.stderr[-3000:]
    readme = tmp_path / "README.md"
    quick_block = "<!-- report:table1 -->\nthe quick profile's\n<!-- /report:table1 -->\n"
    readme.write_text(quick_block + "<!-- report:fmnist-table1 -->\nold\n<!-- /report:fmnist-table1 -->\n")
    rep = _cli(["report", *args, "--readme", str(readme)])
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert readme.read_text().startswith(quick_block) and "val-selected epoch (%)" in readme.read_text()
    setup = (run / "report" / "setup.md").read_text()
    assert f"idx ({data}): 3 classes, 24 train / 3 validation / 12 test images, 12x12" in setup
    assert "validation split: 5 % of each class of the training file (3 images" in setup
    assert "1 torch thread(s)" in setup
    table = (run / "report" / "table1.md").read_text()
    assert "val-selected epoch (%)" in table and "as the paper reports" in table and "KD-i, raw teacher" in table
    assert "| Student alone (CE) | — | 1 |" in table  # the profile trains the student alone too
    recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 1 + 6 and all(r["selected_on"] == "val" for r in recs)
    assert {r["identity"]["data"]["name"] for r in recs} == {"idx"}
    other = _cli(["report", *args, "data.val_fraction=0.25"])
    assert other.returncode == 1 and "data.split.val" in other.stderr and "\n" not in other.stderr.strip()
    files["t10k-images"].write_bytes(files["t10k-images"].read_bytes()[:-3])  # truncated gzip
    bad = _cli(["run", "--profile", "fmnist", "--run-dir", str(tmp_path / "run2"), *args[4:]])
    assert bad.returncode == 1 and bad.stderr.strip().startswith(f"error: {files['t10k-images']}")
    assert bad.stderr.strip().count("\n") == 0 and not (tmp_path / "run2").exists()
