"""Training smoke runs: every method, resume == uninterrupted, the CLI pipeline, DDP (gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from examples.kd.config import load_config
from examples.kd.data import load_data
from examples.kd.train import RunSpec, load_model, train_run

ROOT = Path(__file__).resolve().parents[3]
TINY = ["data.num_classes=6", "data.train_per_class=8", "data.test_per_class=2", "data.size=8",
        "teacher.arch=resnet8", "teacher.epochs=1", "student.epochs=1", "optim.batch_size=16",
        "seeds=[0]", "analysis.timing_rounds=2", "analysis.timing_warmup=1", "analysis.fig1_samples=24",
        "progress=false", "threads=1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    run = tmp_path_factory.mktemp("kd")
    cfg = load_config("quick", overrides=TINY)
    cfg["run_dir"] = str(run)
    data = load_data(cfg["data"], run)
    teacher_spec = RunSpec("teacher", "resnet8", "teacher", "none", 0, 1)
    train_run(teacher_spec, data, cfg, run, torch.device("cpu"), progress=False)
    teacher = load_model(run / "teacher" / "final.pt", "resnet8", data.num_classes, "cpu")
    return cfg, data, teacher, run


@pytest.mark.parametrize("method, aug, extra", [
    ("kd", "none", {}), ("kd-aug", "mixup", {}), ("kd-aug", "cutmix", {}), ("kd-i", "mixup", {}),
    ("kd-i", "cutmix", {"calibrate_on": "probs", "calibrated_fraction": 0.5}),
    ("kd-p", "mixup", {}), ("kd-p", "cutmix", {"penalty_on": "logits"}),
])
def test_every_method_trains(tiny, method, aug, extra):
    cfg, data, teacher, run = tiny
    loss = dict(cfg["loss"], **extra)
    spec = RunSpec(f"{method}_{aug}_{len(extra)}", "resnet8", method, aug, 0, 1, loss)
    res = train_run(spec, data, cfg, run, torch.device("cpu"), teacher=teacher, progress=False)
    assert 0.0 <= res["best_acc"] <= 100.0 and res["epochs"] == 1
    assert (run / spec.run_id / "final.pt").exists() and (run / spec.run_id / "log.jsonl").exists()
    assert json.loads((run / spec.run_id / "result.json").read_text())["method"] == method


def test_resume_equals_uninterrupted(tiny, tmp_path):
    cfg, data, teacher, _ = tiny
    spec = RunSpec("kdi", "resnet8", "kd-i", "cutmix", 3, 3, dict(cfg["loss"], calibrated_fraction=0.5))
    a = train_run(spec, data, cfg, tmp_path / "a", torch.device("cpu"), teacher=teacher, progress=False)
    stopped = train_run(spec, data, cfg, tmp_path / "b", torch.device("cpu"), teacher=teacher, progress=False,
                        stop_after_epoch=1)
    assert stopped is None
    ck = torch.load(tmp_path / "b" / "kdi" / "checkpoint.pt", weights_only=False)
    assert ck["state"]["epoch"] == 1
    b = train_run(spec, data, cfg, tmp_path / "b", torch.device("cpu"), teacher=teacher, progress=False)
    sa = torch.load(tmp_path / "a" / "kdi" / "final.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "b" / "kdi" / "final.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["best_acc"] == b["best_acc"] and a["last_acc"] == b["last_acc"]
    # a finished run is reused only for the same settings; other settings retrain it
    assert train_run(spec, data, cfg, tmp_path / "b", torch.device("cpu"), teacher=teacher, progress=False) == b
    spec2 = RunSpec("kdi", "resnet8", "kd-i", "cutmix", 3, 1, dict(cfg["loss"]))
    c = train_run(spec2, data, cfg, tmp_path / "b", torch.device("cpu"), teacher=teacher, progress=False)
    assert c["epochs"] == 1 and len((tmp_path / "b" / "kdi" / "log.jsonl").read_text().splitlines()) == 1


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def test_cli_pipeline_with_sweeps(tmp_path):
    cmd = [sys.executable, "-m", "examples.kd", "run", "--run-dir", str(tmp_path), "--no-progress", "--time-budget", "60",
           *TINY, "pipeline=[teacher,students,fig1,table1,table3,fig4,fig5]", "augs=[mixup]",
           "analysis.fractions=[0,1]", "analysis.sigmas=[1,2]"]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("table1.md", "table1.csv", "fig1.png", "fig1.md", "table3.md", "fig4.png", "fig5.png"):
        assert (tmp_path / "analysis" / name).exists(), name
    assert "Table 1 analogue" in out.stdout and "KD-i / KD-aug" in out.stdout and "time budget" in out.stdout
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    # teacher, 4 students, fraction 0 and sigma 1 (fraction 1 and sigma 2 are the Table 1 runs)
    assert len(lines) == 1 + 4 + 1 + 1
    assert set(json.loads((tmp_path / "analysis" / "fig4.json").read_text())) == {"0.0", "1.0"}
    assert set(json.loads((tmp_path / "analysis" / "fig5.json").read_text())) == {"1.0", "2.0"}
    # a second call reuses every finished run
    out2 = subprocess.run(cmd[:3] + ["table1"] + cmd[4:], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert out2.returncode == 0 and len((tmp_path / "results.jsonl").read_text().splitlines()) == len(lines)


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
    res = json.loads((tmp_path / "kd-i_mixup_s0" / "result.json").read_text())
    assert res["world_size"] == 2 and 0 <= res["best_acc"] <= 100
