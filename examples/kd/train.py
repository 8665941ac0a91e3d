"""Training loops: the teacher (cross-entropy) and the students (KD, KD-aug, KD-i, KD-p).

A plain loop in the style of RepDistiller's ``train_student.py``: SGD with momentum, the paper's
step schedule scaled to the epoch budget (CIFAR-100: lr 0.1, x0.2 at 30/60/80 % of training),
evaluation on the test split after each epoch, best and last accuracy.

Reproducibility and restarts:

* every random draw of epoch ``e`` (shuffling, crops, flips, Mixup/CutMix, KD-i's calibrated
  subset) comes from generators seeded by ``(seed, e, rank)``, so an epoch replays exactly;
* a checkpoint (model, optimiser, history) is written atomically after every epoch, and a run
  with ``resume=True`` continues from it; the result equals the uninterrupted run;
* ``torch.use_deterministic_algorithms(True, warn_only=True)`` and cuDNN determinism are set.

Distributed: under ``torchrun`` the model is wrapped in ``DistributedDataParallel`` (gloo on CPU,
NCCL on CUDA), each rank draws its share of every epoch with ``DistributedSampler``, evaluation is
sharded and summed, and only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .augment import mix_batch
from .losses import build_loss
from .models import build_model

__all__ = ["RunSpec", "train_run", "load_model", "dist_info", "setup_determinism", "evaluate"]


@dataclass
class RunSpec:
    """One training run. ``method`` is ``"teacher"`` or a student method; ``aug`` in
    {"none", "mixup", "cutmix"}."""

    run_id: str
    arch: str
    method: str
    aug: str = "none"
    seed: int = 0
    epochs: int = 10
    loss: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- environment
def dist_info():
    """``(rank, world, initialized)`` of the default process group (``(0, 1, False)`` without one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size(), True
    return 0, 1, False


def setup_determinism():
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _gens(seed, epoch, rank, salt=0):
    s = (int(seed) * 1_000_003 + int(epoch) * 9176 + int(rank) * 131 + salt) % (2 ** 62)
    return torch.Generator().manual_seed(s), np.random.default_rng([int(seed), int(epoch), int(rank), salt])


def _lr(epoch, epochs, optim):
    ms = [int(round(f * epochs)) for f in optim.get("milestones", [0.3, 0.6, 0.8])]
    return optim.get("lr", 0.1) * optim.get("lr_decay", 0.2) ** sum(epoch >= m for m in ms if m > 0)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _same(result: dict, spec: RunSpec) -> bool:
    """Does a saved result come from these settings (arch, method, aug, seed, epochs, loss)?"""
    return all(result.get(k) == v for k, v in (("arch", spec.arch), ("method", spec.method),
                                                ("aug", spec.aug), ("seed", spec.seed),
                                                ("epochs", spec.epochs), ("loss_cfg", spec.loss)))


def _atomic_save(obj, path: Path):
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model, data, device, batch_size=512):
    """Top-1 test accuracy in percent (sharded over ranks and summed)."""
    rank, world, on = dist_info()
    model.eval()
    n = data.size("test")
    idx = torch.arange(rank, n, world)
    correct = torch.zeros(2, dtype=torch.float64, device=device)
    for i in range(0, len(idx), batch_size):
        x, y = data.get("test", idx[i:i + batch_size], device)
        correct[0] += (model(x).argmax(1) == y).sum()
        correct[1] += len(y)
    if on:
        torch.distributed.all_reduce(correct)
    return float(100.0 * correct[0] / correct[1].clamp_min(1))


def load_model(path, arch, num_classes, device):
    """A trained network from a run folder's ``final.pt`` (or a checkpoint), in eval mode."""
    m = build_model(arch, num_classes).to(device)
    state = torch.load(path, map_location=device, weights_only=True)
    m.load_state_dict(state["model"] if "model" in state else state)
    return m.eval()


# ----------------------------------------------------------------------------- the loop
def train_run(spec: RunSpec, data, cfg: dict, run_root, device, teacher=None, resume=True,
              progress=True, stop_after_epoch=None):
    """Train one network; returns its result dict (also written to ``<run>/result.json``).

    ``cfg`` is the whole config (``optim`` section used). ``teacher`` (students only) is an
    eval-mode network. ``stop_after_epoch`` ends the run early after that many epochs (tests of
    ``resume``).
    """
    rank, world, dist_on = dist_info()
    out = Path(run_root) / spec.run_id
    done = out / "result.json"
    if resume and done.exists():
        prev = json.loads(done.read_text())
        if _same(prev, spec):
            return prev
        resume = False  # the folder holds a run with other settings: retrain it
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    optim_cfg = cfg.get("optim", {})
    torch.manual_seed(spec.seed)
    model = build_model(spec.arch, data.num_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=optim_cfg.get("lr", 0.1),
                          momentum=optim_cfg.get("momentum", 0.9),
                          weight_decay=optim_cfg.get("weight_decay", 5e-4),
                          nesterov=optim_cfg.get("nesterov", False))
    state = dict(epoch=0, history=[], best=0.0, step_times=[])
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        if saved.get("spec") == asdict(spec):
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            state = saved["state"]
    if state["epoch"] == 0 and rank == 0 and (out / "log.jsonl").exists():
        (out / "log.jsonl").unlink()  # a fresh start: do not mix logs of two runs
    net = model
    if dist_on:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = None if spec.method == "teacher" else build_loss(spec.method, spec.loss)
    bs = max(1, optim_cfg.get("batch_size", 128) // world)
    n = data.size("train")
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=world, rank=rank,
                                                  shuffle=True, seed=spec.seed, drop_last=False)
    aug_alpha = cfg.get("aug", {}).get("alpha", 1.0)
    log_path = out / "log.jsonl"
    steps = math.ceil(len(sampler) / bs)
    for epoch in range(state["epoch"], spec.epochs):
        lr = _lr(epoch, spec.epochs, optim_cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        gen, rng = _gens(spec.seed, epoch, rank)
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        net.train()
        t_epoch = time.perf_counter()
        tot = dict(loss=0.0, violation=0.0, n=0)
        times = []
        bar = None
        if progress and rank == 0:
            from tqdm.auto import tqdm
            bar = tqdm(total=steps, desc=f"{spec.run_id} {epoch + 1}/{spec.epochs}", leave=False,
                       dynamic_ncols=True)
        for i in range(0, len(order), bs):
            t0 = time.perf_counter()
            x, y = data.get("train", order[i:i + bs], device, gen)
            if loss_fn is None:
                loss, stats = F.cross_entropy(net(x), y), {}
            else:
                mb = mix_batch(x, y, spec.aug, aug_alpha, rng, gen)
                with torch.no_grad():
                    t = teacher(mb.x)
                s = net(mb.x)
                loss, stats = loss_fn(s, t, mb.y_a, mb.y_b, mb.lam, mb.labels, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _sync(device)
            times.append(time.perf_counter() - t0)
            tot["loss"] += float(loss.detach())
            tot["violation"] += float(stats.get("violation", 0.0))
            tot["n"] += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{tot['loss'] / tot['n']:.3f}")
        if bar is not None:
            bar.close()
        acc = evaluate(net.module if dist_on else net, data, device)
        rec = dict(epoch=epoch + 1, lr=lr, loss=tot["loss"] / max(1, tot["n"]),
                   violation=tot["violation"] / max(1, tot["n"]), test_acc=acc,
                   epoch_time=time.perf_counter() - t_epoch,
                   step_time_median=float(np.median(times)) if times else 0.0)
        state["history"].append(rec)
        state["best"] = max(state["best"], acc)
        state["step_times"] += times
        state["epoch"] = epoch + 1
        if rank == 0:
            _atomic_save(dict(model=model.state_dict(), optimizer=opt.state_dict(), state=state,
                              spec=asdict(spec)), ckpt)
            with open(log_path, "a") as f:
                f.write(json.dumps(dict(run_id=spec.run_id, **rec)) + "\n")
            if progress:
                from tqdm.auto import tqdm
                tqdm.write(f"[{spec.run_id}] epoch {epoch + 1}/{spec.epochs} loss {rec['loss']:.3f} "
                           f"test {acc:.2f}% (best {state['best']:.2f}%) {rec['epoch_time']:.1f}s")
        if dist_on:
            torch.distributed.barrier()
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < spec.epochs:
            return None
    hist = state["history"]
    result = dict(run_id=spec.run_id, arch=spec.arch, method=spec.method, aug=spec.aug, seed=spec.seed,
                  epochs=spec.epochs, best_acc=state["best"], last_acc=hist[-1]["test_acc"] if hist else 0.0,
                  step_time_median=float(np.median(state["step_times"])) if state["step_times"] else 0.0,
                  train_time=sum(h["epoch_time"] for h in hist),
                  violation=float(np.mean([h["violation"] for h in hist])) if hist else 0.0,
                  loss_cfg=spec.loss, world_size=world)
    if rank == 0:
        _atomic_save(dict(model=model.state_dict(), spec=asdict(spec)), out / "final.pt")
        done.write_text(json.dumps(result, indent=1))
    if dist_on:
        torch.distributed.barrier()
    return result
