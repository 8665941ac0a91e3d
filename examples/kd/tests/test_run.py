"""Training runs: every method learns, resume == uninterrupted, run identity (reuse only under the
same settings), NaN losses stop, the CLI pipeline and its checks, DDP (gloo)."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from examples.kd import runs
from examples.kd.config import load_config
from examples.kd.data import load_data
from examples.kd.train import (NonFiniteLoss, RunMissing, RunOptions, RunSpec, load_model, run_identity,
                              state_digest, train_run)

ROOT = Path(__file__).resolve().parents[3]
TINY = ["data.num_classes=6", "data.train_per_class=8", "data.test_per_class=2", "data.size=8",
        "teacher.arch=resnet8", "teacher.epochs=1", "student.epochs=1", "optim.batch_size=16",
        "seeds=[0]", "analysis.timing_rounds=2", "analysis.timing_warmup=1", "analysis.fig1_samples=24",
        "progress=false", "threads=1"]
# a tiny easy set a student must learn: 4 very distinct glyph classes, big enough strokes at 12 px
# (53 images per class: 48 to train on, 5 held out for validation)
EASY = ["data.num_classes=4", "data.train_per_class=53", "data.test_per_class=16", "data.size=12",
        "optim.batch_size=16", "optim.lr=0.1", "data.val_fraction=0.1"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A teacher trained on the easy set (6 epochs), and the data."""
    run = tmp_path_factory.mktemp("kd")
    cfg = load_config("quick", overrides=TINY + EASY)
    cfg["run_dir"] = str(run)
    data = load_data(cfg["data"], run)
    torch.set_num_threads(1)
    rec = train_run(RunSpec("teacher", "resnet8", "teacher", "none", 0, 6), data, cfg, run, CPU, options=RunOptions(progress=False))
    teacher = load_model(run / rec["run_id"] / "final.pt", "resnet8", data.num_classes, "cpu")
    return cfg, data, teacher, run, rec


def test_teacher_learns(tiny):
    *_, rec = tiny
    assert rec["best_acc"] >= 60.0, rec  # chance is 25 %


@pytest.mark.parametrize("method, aug, extra", [
    ("kd", "none", {}), ("kd-aug", "mixup", {}), ("kd-aug", "cutmix", {}), ("kd-i", "mixup", {}),
    ("kd-i", "cutmix", {"calibrate_on": "probs", "calibrated_fraction": 0.5}),
    ("kd-p", "mixup", {}), ("kd-p", "cutmix", {"penalty_on": "logits"}),
    ("ce", "none", {}), ("crd", "none", {"crd_k": 16}), ("crd-aug", "mixup", {"crd_k": 16}),
    ("crd-i", "cutmix", {"crd_k": 16}), ("crd-p", "mixup", {"crd_k": 16, "crd_dim": 8}),
])
def test_every_method_learns(tiny, method, aug, extra):
    cfg, data, teacher, run, _ = tiny
    loss = dict(cfg["loss"], **extra)
    # the contrastive term (weight 0.8) dominates the first epochs on 192 images: CRD gets 5 epochs
    epochs = 5 if method.startswith("crd") else 4
    spec = RunSpec(f"{method}_{aug}_{len(extra)}", "resnet8", method, aug, 0, epochs, loss)
    res = train_run(spec, data, cfg, run, CPU, teacher=teacher, options=RunOptions(progress=False))
    assert res["epochs"] == epochs and res["best_acc"] >= 40.0, res["best_acc"]  # chance is 25 %
    folder = run / res["run_id"]
    assert folder.name.startswith(spec.name + "-") and (folder / "final.pt").exists()
    assert (folder / "log.jsonl").exists() and json.loads((folder / "result.json").read_text())["method"] == method
    assert json.loads((folder / "identity.json").read_text()) == res["identity"]


def test_resume_equals_uninterrupted(tiny, tmp_path):
    cfg, data, teacher, _, _ = tiny
    spec = RunSpec("kdi", "resnet8", "kd-i", "cutmix", 3, 2, dict(cfg["loss"], calibrated_fraction=0.5))
    a = train_run(spec, data, cfg, tmp_path / "a", CPU, teacher=teacher, options=RunOptions(progress=False))
    stopped = train_run(spec, data, cfg, tmp_path / "b", CPU, teacher=teacher, options=RunOptions(progress=False, stop_after_epoch=1))
    assert stopped is None
    rid = a["run_id"]
    ck = torch.load(tmp_path / "b" / rid / "checkpoint.pt", weights_only=True)
    assert ck["state"]["epoch"] == 1
    b = train_run(spec, data, cfg, tmp_path / "b", CPU, teacher=teacher, options=RunOptions(progress=False))
    sa = torch.load(tmp_path / "a" / rid / "final.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "b" / rid / "final.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["best_acc"] == b["best_acc"] and a["last_acc"] == b["last_acc"] and b["run_id"] == rid
    assert train_run(spec, data, cfg, tmp_path / "b", CPU, teacher=teacher, options=RunOptions(progress=False)) == b  # reused
    # a finished run keeps final.pt and result.json, not the resume checkpoint
    assert not (tmp_path / "b" / rid / "checkpoint.pt").exists()
    assert not (tmp_path / "a" / rid / "checkpoint.pt").exists()


class _Payload:
    """Pickles to a call of ``os.system``: what a tampered checkpoint could hold."""

    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_tampered_checkpoint_is_refused_not_executed(tiny, tmp_path, monkeypatch):
    cfg, data, teacher, _, _ = tiny
    spec = RunSpec("kd-t", "resnet8", "kd", "none", 0, 2, dict(cfg["loss"]))
    assert train_run(spec, data, cfg, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False, stop_after_epoch=1)) is None
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("kd-t-")]
    ck = torch.load(folder / "checkpoint.pt", weights_only=True)
    ck["state"]["evil"] = _Payload()
    torch.save(ck, folder / "checkpoint.pt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="objects other than tensors"):
        train_run(spec, data, cfg, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False))
    assert not (tmp_path / "pwned.txt").exists()


# ----------------------------------------------------------------------------- mixed precision
STEP_CASES = [("teacher", "none"), ("ce", "mixup"), ("kd", "none"), ("kd-aug", "mixup"), ("kd-i", "cutmix"),
              ("kd-p", "mixup"), ("crd-i", "mixup"), ("crd-p", "cutmix")]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("method, aug", STEP_CASES)
def test_autocast_step_every_method(tiny, method, aug, amp):
    """One step of every method under CPU autocast (fp16 with a gradient scaler), NHWC batches:
    a finite float32 loss, finite gradients on every parameter, weights that move."""
    from examples.kd.crd import build_crd
    from examples.kd.methods import build_loss, names
    from examples.kd.models import build_model
    from examples.kd.train import Batch, Objective, make_optimizer, prepare_student, step_options, train_step

    CRD_METHODS = names("crd")

    cfg, data, teacher, _, _ = tiny
    cfg = dict(cfg, train={"amp": amp, "channels_last": True})
    torch.manual_seed(0)
    model = build_model("resnet8", data.num_classes)
    net, kw = prepare_student(model, cfg), step_options(cfg, CPU)
    assert (kw.scaler is not None) == (amp == "fp16")
    assert next(p for p in model.parameters() if p.ndim == 4).is_contiguous(memory_format=torch.channels_last)
    crd = build_crd(dict(cfg["loss"], crd_k=16), model.feat_dim, teacher.feat_dim, data.size("train")) \
        if method in CRD_METHODS else None
    opt = make_optimizer(model, cfg, crd.parameters() if crd is not None else ())
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    idx = torch.arange(16)
    x, y = data.get("train", idx, CPU, torch.Generator().manual_seed(0))
    loss_fn = None if method == "teacher" else build_loss(method, dict(cfg["loss"], crd_k=16))
    for _ in range(30):  # fp16: the scaler skips steps whose scaled gradients overflow, then shrinks
        scale = kw.scaler.get_scale() if kw.scaler is not None else None
        batch = Batch(x, y, idx, aug, 1.0, np.random.default_rng(0), torch.Generator().manual_seed(0))
        loss, stats = train_step(net, opt, batch, Objective(loss_fn, teacher, crd=crd), kw)
        if scale is None or kw.scaler.get_scale() >= scale:
            break
    else:
        raise AssertionError("the gradient scaler skipped 30 steps")
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    if kw.scaler is not None:
        kw.scaler.unscale_(opt)
    bad = [k for k, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad, bad
    assert any(not torch.equal(before[k], p) for k, p in model.named_parameters())
    if method not in ("teacher", "ce"):
        assert 0.0 <= float(stats["violation"]) <= 1.0


def test_fp16_resume_restores_the_scaler_and_equals_uninterrupted(tiny, tmp_path):
    cfg, data, teacher, _, _ = tiny
    cfg = dict(cfg, train={"amp": "fp16", "channels_last": True})
    spec = RunSpec("kdp16", "resnet8", "kd-p", "mixup", 0, 2, dict(cfg["loss"]))
    a = train_run(spec, data, cfg, tmp_path / "a", CPU, teacher=teacher, options=RunOptions(progress=False))
    assert a["identity"]["train"] == {"amp": "fp16", "channels_last": True}
    assert train_run(spec, data, cfg, tmp_path / "b", CPU, teacher=teacher, options=RunOptions(progress=False,
                     stop_after_epoch=1)) is None
    ck = torch.load(tmp_path / "b" / a["run_id"] / "checkpoint.pt", weights_only=True)
    assert ck["scaler"]["scale"] > 0
    b = train_run(spec, data, cfg, tmp_path / "b", CPU, teacher=teacher, options=RunOptions(progress=False))
    sa = torch.load(tmp_path / "a" / a["run_id"] / "final.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "b" / a["run_id"] / "final.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["last_acc"] == b["last_acc"]


# ----------------------------------------------------------------------------- run identity
def _changes(cfg, data, teacher, tmp_path):
    """(what, spec, cfg, data, teacher) variations of a base run, each of which must retrain."""
    spec = RunSpec("kdi", "resnet8", "kd-i", "mixup", 0, 1, dict(cfg["loss"]))
    other_data = load_data(dict(cfg["data"], seed=1), tmp_path)
    fewer_classes = load_data(dict(cfg["data"], num_classes=3), tmp_path)
    other_split = load_data(dict(cfg["data"], val_fraction=0.2), tmp_path)
    other_teacher = copy.deepcopy(teacher)
    with torch.no_grad():
        next(other_teacher.parameters()).add_(0.01)
    return spec, [
        ("epochs", RunSpec(**dict(vars(spec), epochs=2)), cfg, data, teacher),
        ("seed", RunSpec(**dict(vars(spec), seed=1)), cfg, data, teacher),
        ("loss.beta", RunSpec(**dict(vars(spec), loss=dict(spec.loss, beta=1.0))), cfg, data, teacher),
        ("loss.tau", RunSpec(**dict(vars(spec), loss=dict(spec.loss, tau=2.0))), cfg, data, teacher),
        ("optim.lr", spec, dict(cfg, optim=dict(cfg["optim"], lr=0.01)), data, teacher),
        ("optim.weight_decay", spec, dict(cfg, optim=dict(cfg["optim"], weight_decay=0.0)), data, teacher),
        ("aug_alpha", spec, dict(cfg, aug={"alpha": 0.4}), data, teacher),
        ("data.generator.seed", spec, cfg, other_data, teacher),
        ("data.generator.c", spec, cfg, fewer_classes, teacher),
        ("data.split.val_fraction", spec, cfg, other_split, teacher),
        ("teacher", spec, cfg, data, other_teacher),
        ("train.amp", spec, dict(cfg, train={"amp": "bf16"}), data, teacher),
        ("train.channels_last", spec, dict(cfg, train={"channels_last": True}), data, teacher),
    ]


def test_identity_covers_every_setting(tiny, tmp_path):
    cfg, data, teacher, _, _ = tiny
    spec, changes = _changes(cfg, data, teacher, tmp_path)
    base = train_run(spec, data, cfg, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False))
    ids = {base["run_id"]}
    for what, s, c, d, t in changes:
        # reuse_only: never trains, names what differs from the saved run
        with pytest.raises(RunMissing, match=what.replace(".", r"\.")):
            train_run(s, d, c, tmp_path, CPU, teacher=t, options=RunOptions(progress=False, reuse_only=True))
        ident = run_identity(s, c, d.identity, state_digest(t), 1, 1)
        ids.add(runs.run_id(s.name, ident))
    assert len(ids) == 1 + len(changes)  # every change gives a new run (retrained, not reused)
    # the same settings are reused (the record comes back unchanged, nothing is retrained)
    again = train_run(spec, data, cfg, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False, reuse_only=True))
    assert again == base
    # the train section at its defaults is the run trained before the section existed
    defaults = dict(cfg, train={"amp": "off", "channels_last": False, "compile": False})
    assert train_run(spec, data, defaults, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False, reuse_only=True)) == base
    # a setting the method does not use does not change the run (sigma is KD-p's)
    s2 = RunSpec(**dict(vars(spec), loss=dict(spec.loss, sigma=5.0)))
    assert train_run(s2, data, cfg, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False, reuse_only=True)) == base


def test_changed_settings_retrain_next_to_the_old_run(tiny, tmp_path):
    cfg, data, teacher, _, _ = tiny
    spec = RunSpec("kd", "resnet8", "kd", "none", 0, 1, dict(cfg["loss"]))
    a = train_run(spec, data, cfg, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False))
    msgs = []
    b = train_run(RunSpec(**dict(vars(spec), loss=dict(spec.loss, tau=2.0))), data, cfg, tmp_path, CPU,
                  teacher=teacher, options=RunOptions(progress=False, log=msgs.append))
    assert a["run_id"] != b["run_id"] and (tmp_path / a["run_id"] / "final.pt").exists()
    assert b["identity"]["loss"]["tau"] == 2.0 and any("loss.tau: 4.5 -> 2.0" in m for m in msgs)


@pytest.mark.parametrize("change", [dict(epochs=0), dict(aug="mosaic"), dict(method="kd-x")])
def test_bad_spec_fails_before_training(tiny, tmp_path, change):
    cfg, data, teacher, _, _ = tiny
    spec = RunSpec(**dict(dict(name="x", arch="resnet8", method="kd-aug", aug="mixup", seed=0, epochs=1,
                               loss=dict(cfg["loss"])), **change))
    with pytest.raises(ValueError):
        train_run(spec, data, cfg, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False))
    assert not any(tmp_path.iterdir())


def test_crd_resume_restores_memory_and_equals_uninterrupted(tiny, tmp_path):
    """A CRD-aug run stopped after one epoch and resumed gives the uninterrupted run's weights
    and memory banks (the banks and Z are in the checkpoint)."""
    cfg, data, teacher, _, _ = tiny
    spec = RunSpec("crdaug", "resnet8", "crd-aug", "mixup", 1, 2, dict(cfg["loss"], crd_k=16), "resnet8")
    a = train_run(spec, data, cfg, tmp_path / "a", CPU, teacher=teacher, options=RunOptions(progress=False))
    assert train_run(spec, data, cfg, tmp_path / "b", CPU, teacher=teacher, options=RunOptions(progress=False,
                     stop_after_epoch=1)) is None
    train_run(spec, data, cfg, tmp_path / "b", CPU, teacher=teacher, options=RunOptions(progress=False))
    ca = torch.load(tmp_path / "a" / a["run_id"] / "final.pt", weights_only=False)
    cb = torch.load(tmp_path / "b" / a["run_id"] / "final.pt", weights_only=False)
    for k in ("memory_s", "memory_t", "z_s", "z_t", "embed_s.linear.weight"):
        assert torch.equal(ca["crd"][k], cb["crd"][k]), k
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    # the memory moved away from its random initialisation: rows are unit vectors now
    norms = ca["crd"]["memory_s"].norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert a["identity"]["loss"]["crd_k"] == 16 and a["teacher_arch"] == "resnet8"


def test_selected_teacher_epoch_is_kept_and_used(tiny):
    """best.pt holds the weights of the teacher's best validation epoch; its record reports the test
    accuracy of that epoch, of the last one and of the best test epoch; Study.teacher loads best.pt."""
    from examples.kd.experiment import Study
    from examples.kd.train import evaluate

    cfg, data, _, run, rec = tiny
    best = torch.load(run / rec["run_id"] / "best.pt", weights_only=True)
    hist = [json.loads(line) for line in (run / rec["run_id"] / "log.jsonl").read_text().splitlines()]
    vals, tests = [h["val_acc"] for h in hist], [h["test_acc"] for h in hist]
    sel = 1 + vals.index(max(vals))
    assert rec["selected_on"] == "val" and best["epoch"] == rec["sel_epoch"] == sel
    assert rec["sel_acc"] == tests[sel - 1] == best["test_acc"] and best["val_acc"] == max(vals)
    assert rec["best_acc"] == max(tests) and rec["best_epoch"] == 1 + tests.index(max(tests))
    assert rec["last_acc"] == tests[-1]
    m = load_model(run / rec["run_id"] / "best.pt", "resnet8", data.num_classes, "cpu")
    assert evaluate(m, data, CPU) == pytest.approx(rec["sel_acc"])
    assert evaluate(m, data, CPU, split="val") == pytest.approx(max(vals))
    study = Study(dict(copy.deepcopy(cfg), teacher=dict(cfg["teacher"], epochs=6, arch="resnet8")))
    assert state_digest(study.teacher()) == state_digest(m) and study.teacher_acc == rec["sel_acc"]


def test_selection_follows_validation_not_test():
    """The selected epoch is the best validation epoch even where the test set would pick another;
    without a validation split it is the best test epoch."""
    from examples.kd.train import _new_state, _update_selection

    state = _new_state()
    moved = [_update_selection(state, dict(epoch=e, test_acc=t, val_acc=v))
             for e, (t, v) in enumerate([(50, 40), (70, 45), (60, 60), (65, 55)], 1)]
    assert moved == [True, True, True, False]
    assert (state["sel_epoch"], state["best_epoch"], state["best"]) == (3, 2, 70)
    state = _new_state()
    for e, t in enumerate([50, 70, 60], 1):
        _update_selection(state, dict(epoch=e, test_acc=t))
    assert state["sel_epoch"] == state["best_epoch"] == 2


def test_no_validation_split_selects_on_test(tiny, tmp_path):
    cfg, _, teacher, _, _ = tiny
    data = load_data(dict(cfg["data"], val_fraction=0.0), tmp_path)
    assert data.splits == ("train", "test") and data.size("train") == 4 * 53
    spec = RunSpec("kd", "resnet8", "kd", "none", 0, 2, dict(cfg["loss"]))
    rec = train_run(spec, data, cfg, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False))
    assert rec["selected_on"] == "test" and rec["sel_acc"] == rec["best_acc"] and rec["val_acc"] is None


def test_thread_count_is_part_of_the_identity(tiny, tmp_path):
    cfg, data, teacher, _, _ = tiny
    spec = RunSpec("kd", "resnet8", "kd", "none", 0, 1, dict(cfg["loss"]))
    rec = train_run(spec, data, cfg, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False))
    assert rec["identity"]["threads"] == torch.get_num_threads() == 1
    torch.set_num_threads(2)
    try:
        with pytest.raises(RunMissing, match="threads: 1 -> 2"):
            train_run(spec, data, cfg, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False, reuse_only=True))
    finally:
        torch.set_num_threads(1)


def test_given_teacher_checkpoint_is_evaluated_not_trained(tiny, tmp_path):
    from examples.kd.experiment import Study
    from examples.kd.train import evaluate

    cfg, data, teacher, run, rec = tiny
    cfg = dict(copy.deepcopy(cfg), run_dir=str(tmp_path),
               teacher=dict(cfg["teacher"], arch="resnet8", checkpoint=str(run / rec["run_id"] / "final.pt")))
    study = Study(cfg)
    t = study.teacher()
    assert not list(tmp_path.glob("teacher_*"))  # nothing trained
    want = evaluate(teacher, data, CPU)
    assert study.teacher_acc == pytest.approx(want) and evaluate(t, data, CPU) == want
    recs = [r for r in runs.read_records(tmp_path / "results.jsonl") if r["method"] == "teacher"]
    assert len(recs) == 1 and recs[0]["checkpoint"].endswith("final.pt")


def test_nan_loss_stops_and_records_nothing(tiny, tmp_path):
    cfg, data, teacher, _, _ = tiny
    spec = RunSpec("kd", "resnet8", "kd", "none", 0, 2, dict(cfg["loss"]))
    bad = dict(cfg, optim=dict(cfg["optim"], lr=1e30))
    with pytest.raises(NonFiniteLoss, match="not recorded"):
        train_run(spec, data, bad, tmp_path, CPU, teacher=teacher, options=RunOptions(progress=False))
    assert not list(tmp_path.glob("*/result.json")) and not list(tmp_path.glob("*/final.pt"))


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def _cli(args, timeout=300):
    return subprocess.run([sys.executable, "-m", "examples.kd", *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def test_cli_pipeline_with_sweeps_and_report(tmp_path):
    args = ["--run-dir", str(tmp_path), "--no-progress", *TINY, "augs=[mixup]", "analysis.fractions=[0,1]",
            "analysis.sigmas=[1,2]", "pipeline=[teacher,students,fig1,table1,table3,fig4,fig5,report]"]
    out = _cli(["run", "--time-budget", "60", *args])
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("table1.md", "table1.rst", "table1.csv", "table1.png", "fig1.png", "fig1.md", "table3.md",
                 "fig4.png", "fig5.png"):
        assert (tmp_path / "analysis" / name).exists(), name
    for name in ("setup.md", "table1.rst", "table1.png", "fig1.rst", "fig1.png", "table3.rst", "fig4.png"):
        assert (tmp_path / "report" / name).exists(), name
    assert "Table 1 analogue" in out.stdout and "KD-i / KD-aug" in out.stdout and "time budget" in out.stdout
    setup = (tmp_path / "report" / "setup.md").read_text()  # the loss settings the methods use, no others
    assert "sigma" in setup and "calibrated_fraction" in setup and "crd_" not in setup
    assert "raw teacher (control)" in out.stdout and "Δ vs control" in out.stdout
    t3 = (tmp_path / "analysis" / "table3.md").read_text()
    assert "| KD-i | Mixup |" in t3 and "KD-i / KD-aug" in t3
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    # teacher, CE, KD, KD-aug, KD-i, control, KD-p, and sigma 1 (fractions 0 and 1 and sigma 2 are Table 1 runs)
    assert len(lines) == 1 + 6 + 1
    assert "| Student alone (CE) |" in (tmp_path / "report" / "table1.md").read_text()
    assert set(json.loads((tmp_path / "analysis" / "fig4.json").read_text())) == {"0", "1"}
    assert set(json.loads((tmp_path / "analysis" / "fig5.json").read_text())) == {"1", "2"}
    # the later commands in-process (fast): a second call reuses every finished run
    from examples.kd.__main__ import main

    main(["table1", *args[:-1]])
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(lines)
    readme = tmp_path / "README.md"
    text_block = "<!-- report:text-table4 -->\nthe text study's\n<!-- /report:text-table4 -->\n"
    readme.write_text("<!-- report:table1 -->\nold\n<!-- /report:table1 -->\n" + text_block)
    main(["report", "--out", str(tmp_path / "rep"), "--readme", str(readme), *args[:-1]])
    assert "raw teacher (control)" in readme.read_text() and (tmp_path / "rep" / "table1.png").exists()
    assert readme.read_text().endswith(text_block)  # the text study's block is left to it
    # a record of other settings (another seed, another beta) never enters Table 1 or Fig. 4
    main(["train", "--method", "kd-i", "--seed", "7", "loss.beta=1", *args[:-1]])
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(lines) + 1
    main(["report", "--out", str(tmp_path / "rep2"), *args[:-1]])
    for f in ("table1.md", "table1.csv", "fig4.json"):
        assert (tmp_path / "rep" / f).read_text() == (tmp_path / "rep2" / f).read_text(), f
    # the report with other settings stops, naming what differs, and trains nothing
    with pytest.raises(SystemExit) as e:
        main(["report", *args[:-1], "student.epochs=2"])
    assert "epochs: 1 -> 2" in str(e.value.code) and "\n" not in str(e.value.code)
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(lines) + 1


@pytest.mark.parametrize("args, match", [
    (["student.epoch=3"], "unknown key 'student.epoch'.*student.epochs"),
    (["loss.betta=1"], "unknown key 'loss.betta'.*loss.beta"),
    (["loss.tau=0"], "loss.tau must be > 0, got 0"),
    (["student.epochs=-1"], "student.epochs must be >= 1, got -1"),
    (["loss.calibrated_fraction=2"], "loss.calibrated_fraction must be >= 0 and <= 1"),
    (["optim.lr=0"], "optim.lr must be > 0"),
    (["seeds=[]"], "seeds must be a list of at least 1"),
    (["--seeds", "0,a"], "--seeds: 'a' is not an integer"),
    (["--seeds", "1.5"], "--seeds: '1.5' is not an integer"),
    (["--seeds", "-1"], "--seeds: -1 is below 0"),
    (["--seeds", ""], "--seeds: empty"),
    (["methods=[kd,kd-x]"], r"methods\[1\] must be one of ce, kd, kd-aug, kd-i, kd-p, crd, crd-aug, crd-i, crd-p"),
    (["augs=[mixup,mosaic]"], r"augs\[1\] must be one of mixup, cutmix"),
    (["student.arch=resnet9"], "student.arch must be one of .*did you mean"),
    (["teacher.arch=vgg"], "teacher.arch must be one of"),
    (["pipeline=[teacher,tabel1]"], "did you mean table1"),
    (["--dataset", "mnist"], "data.name must be one of"),
    (["train", "--method", "kd-x"], "--method must be one of"),
    (["train", "--method", "kd", "--aug", "mixup"], "--aug for --method kd must be one of none"),
    (["train", "--method", "kd-i", "--aug", "none"], "--aug for --method kd-i must be one of mixup, cutmix"),
    (["train", "--seed", "x"], "--seed: 'x' is not an integer"),
    (["student.epochs=[1"], "not valid YAML"),
])
def test_cli_rejects_bad_input_before_writing(tmp_path, args, match):
    """In-process (fast): every check fails before the run folder exists, with one line."""
    import re

    from examples.kd.__main__ import main

    run = tmp_path / "run"
    argv = ([args[0], "--run-dir", str(run), *TINY, *args[1:]] if args[0] == "train"
            else ["--run-dir", str(run), *TINY, *args])
    with pytest.raises(SystemExit) as e:
        main(argv)
    msg = str(e.value.code)
    assert msg.startswith("error: ") and "\n" not in msg and re.search(match, msg), msg
    assert not run.exists()  # nothing written


def test_cli_error_is_one_line_on_stderr(tmp_path):
    run = tmp_path / "run"
    out = _cli(["--run-dir", str(run), *TINY, "loss.betta=1"], timeout=60)
    assert out.returncode == 1 and out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "unknown key 'loss.betta'" in out.stderr and "loss.beta" in out.stderr and not run.exists()


@pytest.mark.parametrize("arrays, match", [
    (dict(y_train=[0, 1, -1, 2]), "negative labels"),
    (dict(y_train=[0, 1, 2]), "x_train has 4 images but y_train has 3 labels"),
    (dict(y_train=[0.0, 1.0, 2.0, 0.0]), "must hold integers"),
    (dict(y_train=[0, 2, 2, 0]), r"classes \[1\] have no training image"),
    (dict(y_test=[0, 5]), r"test labels \[5\] are not training classes"),
    (dict(x_test=np.zeros((2, 3, 9, 8), np.uint8)), "differ in shape"),
    (dict(x_train=np.full((4, 8, 8, 3), 2.0)), r"must lie in \[0, 1\]"),
    (dict(x_train=np.zeros((4, 8, 8, 3), np.int32)), "must be uint8"),
    (dict(x_train=np.zeros((4, 8, 8, 2), np.uint8)), "1 or 3 channels"),
    (dict(y_train=np.zeros((4, 2), np.int64)), "vector of class indices"),
])
def test_bad_npz_rejected_before_writing(tmp_path, arrays, match):
    from examples.kd.__main__ import build_config, parse
    from examples.kd.experiment import Study

    base = dict(x_train=np.zeros((4, 8, 8, 3), np.uint8), y_train=np.array([0, 1, 2, 0]),
                x_test=np.zeros((2, 8, 8, 3), np.uint8), y_test=np.array([0, 1]))
    base.update({k: np.asarray(v) for k, v in arrays.items()})
    p = tmp_path / "bad.npz"
    np.savez(p, **base)
    run = tmp_path / "run"
    cfg = build_config(parse(["--run-dir", str(run), "--dataset", "npz", "--data-root", str(p), *TINY]))
    with pytest.raises(ValueError, match=match):
        Study(cfg)
    assert not run.exists()


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_gloo(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}",
           "-m", "examples.kd", "train", "--method", "kd-i", "--aug", "mixup", "--run-dir", str(tmp_path),
           "--device", "cpu", "--no-progress", *TINY]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    (res_file,) = tmp_path.glob("kd-i_mixup_s0-*/result.json")
    res = json.loads(res_file.read_text())
    assert res["world_size"] == 2 and res["identity"]["world_size"] == 2 and 0 <= res["best_acc"] <= 100


def test_cli_table1_pairs_with_crd_and_student_row(tmp_path):
    cmd = [sys.executable, "-m", "examples.kd", "table1", "--run-dir", str(tmp_path), "--no-progress", *TINY,
           "pairs=[[resnet8,resnet8],[resnet14,resnet8]]", "methods=[ce,kd,kd-p,crd,crd-aug]", "augs=[mixup]",
           "loss.crd_k=16"]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    md = (tmp_path / "analysis" / "table1_pairs.md").read_text()
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ") and "→" not in line]
    assert rows == ["Teacher", "Student", "KD", "KD-p (Mixup)", "CRD", "CRD-aug (Mixup)"]
    assert "resnet8 → resnet8" in md and "resnet14 → resnet8" in md and "Avg" in md
    raw = json.loads((tmp_path / "analysis" / "table1_pairs.json").read_text())
    assert all(len(r["values"]) == 2 for r in raw)  # every row has both pairs
    recs = runs.read_records(tmp_path / "results.jsonl")
    assert {r["teacher_arch"] for r in recs if r["method"] not in ("teacher", "ce")} == {"resnet8", "resnet14"}
    assert sum(r["method"] == "ce" for r in recs) == 1  # the student alone is trained once for both pairs
    assert list(tmp_path.glob("resnet14-resnet8_crd-aug_mixup_s0-*/result.json"))


def test_cli_table2_imagenet_cpu_end_to_end(tmp_path):
    """The ImageNet path on a generated folder of JPEGs: DataLoader workers, ResNet-34 -> ResNet-18,
    top-1 and top-5, Table 2."""
    cmd = [sys.executable, "-m", "examples.kd", "table2", "--profile", "imagenet-cpu", "--run-dir", str(tmp_path),
           "--no-progress", "threads=1", "methods=[ce,kd,kd-i]", "augs=[cutmix]"]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Table 2" in out.stdout and "top-5" in out.stdout
    raw = json.loads((tmp_path / "analysis" / "table2.json").read_text())
    assert [r["row"] for r in raw] == ["Teacher", "Student", "KD", "KD-i (CutMix)"]
    assert all(0 <= r["top1"][0] <= r["top5"][0] <= 100 for r in raw)
    jpgs = list((tmp_path / "data").rglob("*.jpg"))
    assert len(jpgs) == 6 * (8 + 4)
    teacher = [r for r in runs.read_records(tmp_path / "results.jsonl") if r["method"] == "teacher"]
    assert teacher[0]["arch"] == "imagenet_resnet34" and teacher[0]["epochs"] == 1


def test_ddp_imagefolder_crd_two_processes_gloo(tmp_path):
    """torchrun, 2 ranks: the image folder through DistributedSampler + DataLoader workers, and a
    CRD method (memory updates gathered over ranks, embedding-head gradients averaged)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "examples.kd", "train", "--profile", "imagenet-cpu",
           "--method", "crd-i", "--aug", "cutmix", "--run-dir", str(tmp_path), "--device", "cpu", "--no-progress",
           "threads=1", "loss.crd_k=16"]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    res = json.loads(next(tmp_path.glob("crd-i_cutmix_s0-*/result.json")).read_text())
    assert res["world_size"] == 2 and res["method"] == "crd-i" and 0 <= res["best_acc"] <= res["best_acc5"] <= 100
