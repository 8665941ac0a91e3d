"""Step times: Table 3's interleaved benchmark and the time budget's estimate of an epoch.

Both time the training loop's own :func:`examples.kd.train.train_step` on networks built as a
run builds them (:func:`student_setup`), so they measure the work training does.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from . import methods, runs
from .methods import build_loss
from .train import Batch, Objective, make_optimizer, prepare_student, step_options, train_step

__all__ = ["student_setup", "step_time", "step_times", "training_medians"]


def student_setup(study, arch: str, method: str, teacher=None):
    """``(net, optimiser, objective, step options)`` of a fresh network ``arch`` trained by
    ``method`` (``"teacher"``: cross-entropy) against ``teacher``, as a training run sets it up."""
    model = study.domain.model_fn(arch, study.data.num_classes).to(study.device)
    net, options = prepare_student(model, study.cfg), step_options(study.cfg, study.device)
    opt = make_optimizer(model, study.cfg)
    loss_fn = None if method == "teacher" else build_loss(method, study.cfg.get("loss", {}))
    return net, opt, Objective(loss_fn, teacher), options


def _timed_step(study, setup, idx, aug, rng, gen) -> float:
    net, opt, objective, options = setup
    t0 = time.perf_counter()
    x, y = study.data.get("train", idx, study.device, gen)
    alpha = float(study.cfg.get("aug", {}).get("alpha", 1.0))
    train_step(net, opt, Batch(x, y, None, aug, alpha, rng, gen), objective, options)
    if study.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def step_time(study, arch, method, aug, teacher_arch=None, steps=4) -> float:
    """The median time of ``steps`` training steps (after 2 warm-up steps) of ``method``."""
    teacher = None
    if teacher_arch:
        teacher = study.domain.model_fn(teacher_arch, study.data.num_classes).to(study.device).eval()
    setup = student_setup(study, arch, method, teacher)
    bs = max(1, study.cfg["optim"].get("batch_size", 128) // study.world)
    gen, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    idx = torch.arange(min(bs, study.data.size("train")))
    ts = [_timed_step(study, setup, idx, aug, rng, gen) for _ in range(steps + 2)]
    return float(np.median(ts[2:]))


def step_times(study, teacher) -> dict:
    """Table 3's benchmark: ``(method, aug) -> step times`` of every KD-family method (un-mixed,
    then each method for Mixup and for CutMix), the combinations taking turns on the same batches
    (rotated each round so that none always runs first)."""
    a = study.cfg.get("analysis", {})
    rounds, warm = int(a.get("timing_rounds", 30)), int(a.get("timing_warmup", 3))
    combos = ([(m, "none") for m in methods.names("kd", mixes=False)]
              + [(m, ag) for ag in methods.MIXES for m in methods.names("kd", mixes=True)])
    bs = study.cfg["optim"].get("batch_size", 128)
    setups, gens = {}, {}
    for c in combos:
        torch.manual_seed(0)
        setups[c] = student_setup(study, study.cfg["student"]["arch"], c[0], teacher)
        gens[c] = (torch.Generator().manual_seed(1), np.random.default_rng(1))
    times = {c: [] for c in combos}
    n, k = study.data.size("train"), len(combos)
    for r in range(warm + rounds):
        start = (r * bs) % max(1, n - bs)
        idx = torch.arange(start, start + bs) % n
        for c in combos[r % k:] + combos[:r % k]:
            g, rng = gens[c]
            t = _timed_step(study, setups[c], idx, c[1], rng, g)
            if r >= warm:
                times[c].append(t)
    return times


def training_medians(study) -> dict:
    """``(method, aug) -> the median over seeds of the training runs' median step time``, for
    Table 1's KD-family rows."""
    med = {}
    entries = study.table1_entries()  # trains what is missing first
    recs = {r["run_id"]: r for r in runs.read_records(study.results_path)}
    for e in entries:
        if e["row"] in methods.names("kd"):
            med.setdefault((e["row"], e["aug"]), []).append(recs[e["run_id"]]["step_time_median"])
    return {c: float(np.median(v)) for c, v in med.items()}
