"""The text study's data and mixing step, without transformers: the CSV loader and its errors,
the Debian index parser, Mixup-Transformer's mixing (lambda, shared pair, label order)."""

import json
import zlib

import numpy as np
import pytest
import torch

from examples.kd.augment import draw_mix
from examples.kd.text.data import load_csv, load_text, parse_dumpavail, read_csv_split
from examples.kd.text.mixing import mix_pooled


# ----------------------------------------------------------------------------- the mixing step
def _expected_rows(y, perm, lam):
    rows = []
    for i in range(len(y)):
        a, b = int(y[i]), int(y[perm[i]])
        if a == b:
            rows.append([a, -1])
        else:
            rows.append([a, b] if lam >= 0.5 else [b, a])
    return rows


def test_mix_pooled_lambda_pair_and_label_order():
    y = torch.tensor([0, 1, 1, 2, 3, 3, 4, 0])
    ht, hs = torch.randn(8, 6, dtype=torch.float64), torch.randn(8, 6, dtype=torch.float64)
    seen_big = seen_small = seen_single = False
    for seed in range(12):
        mp = mix_pooled(ht, hs, y, "mixup", 0.7, np.random.default_rng(seed), torch.Generator().manual_seed(seed))
        perm = torch.randperm(8, generator=torch.Generator().manual_seed(seed))  # drawn independently here
        lam = float(np.random.default_rng(seed).beta(0.7, 0.7))
        assert torch.allclose(mp.lam, torch.full((8,), lam, dtype=torch.float32))
        # the same pair and the same lambda for teacher and student
        torch.testing.assert_close(mp.t, lam * ht + (1 - lam) * ht[perm])
        torch.testing.assert_close(mp.s, lam * hs + (1 - lam) * hs[perm])
        assert torch.equal(mp.y_a, y) and torch.equal(mp.y_b, y[perm])
        assert mp.labels.tolist() == _expected_rows(y, perm, lam)
        seen_big |= lam > 0.5
        seen_small |= lam < 0.5
        seen_single |= bool((y == y[perm]).any())
    assert seen_big and seen_small and seen_single


def test_mix_pooled_none_and_errors():
    y = torch.tensor([2, 0])
    h = torch.randn(2, 4)
    mp = mix_pooled(h, h, y, "none", 1.0, np.random.default_rng(0))
    assert mp.labels.tolist() == [[2, -1], [0, -1]] and torch.equal(mp.t, h) and mp.lam.eq(1).all()
    with pytest.raises(ValueError, match="batch sizes"):
        mix_pooled(h, torch.randn(3, 4), y, "mixup", 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="mixup"):
        mix_pooled(h, h, y, "cutmix", 1.0, np.random.default_rng(0))
    # the draw is shared with the image study: same generators, same perm and lambda
    p, lam = draw_mix(2, 1.0, np.random.default_rng(3), torch.Generator().manual_seed(3))
    mp = mix_pooled(h, h, y, "mixup", 1.0, np.random.default_rng(3), torch.Generator().manual_seed(3))
    assert float(mp.lam[0]) == pytest.approx(lam) and torch.equal(mp.y_b, y[p])


# ----------------------------------------------------------------------------- data: CSV and Debian
def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_csv_loader_names_and_integers(tmp_path):
    _write(tmp_path / "train.csv", b'text,label\n"a good film, really",pos\nbad one,neg\nfine,pos\n')
    _write(tmp_path / "test.csv", b"label,text,extra\nneg,awful,1\npos,nice,2\n")
    ts = load_csv(tmp_path)
    assert ts.classes == ["neg", "pos"] and ts.train_text[0] == "a good film, really"
    assert ts.train_y.tolist() == [1, 0, 1] and ts.test_y.tolist() == [0, 1] and ts.test_text == ["awful", "nice"]
    d = tmp_path / "ints"
    d.mkdir()
    _write(d / "train.csv", "text,label\nx,10\ny,2\nz,9\nü,2\n".encode())
    _write(d / "test.csv", b"text,label\nw,9\n")
    ts = load_text({"name": "csv", "root": str(d)}, tmp_path)
    assert ts.classes == ["2", "9", "10"] and ts.train_y.tolist() == [2, 0, 1, 0] and ts.test_y.tolist() == [1]


@pytest.mark.parametrize("train, test, match", [
    (b"text,lab\nx,1\n", b"text,label\nx,1\n", r"train\.csv, line 1: the header has no 'label' column"),
    (b"label\n1\n", b"text,label\nx,1\n", r"train\.csv, line 1: the header has no 'text' column"),
    (b"text,label\nx,1\n  ,2\n", b"text,label\nx,1\n", r"train\.csv, line 3: empty text"),
    (b"text,label\nx,1\ny\n", b"text,label\nx,1\n", r"train\.csv, line 3: empty label"),
    (b"text,label\nx,a\ny,b\n", b"text,label\nx,a\n\"two\nlines\",c\n", r"test\.csv, line 4: label 'c' does not occur"),
    (b"text,label\nx,1\ny,1\n", b"text,label\nok,1\ncaf\xe9,1\n", r"test\.csv, line 3: byte 0xe9 at column 4 is not UTF-8"),
    (b"text,label\n", b"text,label\nx,1\n", r"train\.csv: no examples"),
])
def test_csv_errors_name_file_and_line(tmp_path, train, test, match):
    _write(tmp_path / "train.csv", train)
    _write(tmp_path / "test.csv", test)
    with pytest.raises(ValueError, match=match):
        load_csv(tmp_path)


def test_csv_missing_file_and_cli_one_line(tmp_path, capsys):
    _write(tmp_path / "train.csv", b"text,label\nx,1\n")
    with pytest.raises(FileNotFoundError, match=r"test\.csv \(CSV with header text,label\)"):
        load_csv(tmp_path)
    from examples.kd.text.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["--dataset", "csv", "--data-root", str(tmp_path), "--run-dir", str(tmp_path / "run"),
              "teacher.arch=tiny"])
    msg = str(e.value)
    assert msg.startswith("error: expected ") and "test.csv" in msg and "\n" not in msg
    _write(tmp_path / "test.csv", b"text,label\nx,1\n\xff,1\n")
    with pytest.raises(SystemExit, match=r"test\.csv, line 3: byte 0xff"):
        main(["--dataset", "csv", "--data-root", str(tmp_path), "--run-dir", str(tmp_path / "run"),
              "teacher.arch=tiny"])


def test_read_csv_split_lines(tmp_path):
    p = _write(tmp_path / "t.csv", b'text,label\n"multi\nline",a\nb,c\n')
    texts, labels, lines = read_csv_split(p)
    assert texts == ["multi\nline", "b"] and labels == ["a", "c"] and lines == [3, 4]


def test_parse_dumpavail_and_missing_index(tmp_path, monkeypatch):
    raw = ("Package: p1\nSection: contrib/games\nDescription: Space shooter\n long\n\n"
           "Package: p2\nSection: net\nDescription: IRC client\n\n"
           "Package: p1\nSection: net\nDescription: newer\n\n"
           "Package: p3\nSection: net\n\n")
    assert parse_dumpavail(raw) == [("p1", "games", "Space shooter"), ("p2", "net", "IRC client")]
    import examples.kd.text.data as tdata

    monkeypatch.setattr(tdata.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-cache.*--dataset csv"):
        tdata.load_debian(tmp_path / "empty")
    recs = [(f"a{i}", "games", f"game {i}") for i in range(20)] + [("dup1", "net", "same"), ("dup2", "games", "same"),
                                                                  ("r1", "net", "twice"), ("r2", "net", "Twice")]
    assert tdata._dedupe(recs) == recs[:20] + [("r1", "net", "twice")]
    (tmp_path / "c").mkdir()
    recs = sorted(recs, key=lambda r: zlib.crc32(r[0].encode()))
    (tmp_path / "c" / "debian.json").write_text(json.dumps({"records": recs}))
    ts = tdata.load_debian(tmp_path / "c", min_per_class=5)
    assert ts.classes == ["games"]
    test_pkgs = {r[0] for r in recs if zlib.crc32(r[0].encode()) % 5 == 0 and r[1] == "games"}
    assert len(ts.test_text) == len(test_pkgs) and len(ts.train_text) + len(ts.test_text) == 21
