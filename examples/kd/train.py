"""Training loops: the teacher (cross-entropy) and the students (CE, the KD and the CRD families).

A plain loop in the style of RepDistiller's ``train_student.py``: SGD with momentum, the paper's
step schedule scaled to the epoch budget (CIFAR-100: lr 0.1, x0.2 at 30/60/80 % of training),
evaluation on the validation split (held out of the training set, :mod:`examples.kd.split`) and
the test split after each epoch. A run reports the test accuracy at its **selected** epoch (the
best on the validation split), at its last epoch, and at its best test epoch (what the paper
reports, which chooses the epoch on the test set itself).

Reproducibility and restarts:

* every random draw of epoch ``e`` (shuffling, crops, flips, Mixup/CutMix, KD-i's calibrated
  subset) comes from generators seeded by ``(seed, e, rank)``, so an epoch replays exactly;
* a checkpoint (model, optimiser, history) is written atomically after every epoch, and a run
  with ``resume=True`` continues from it; the result equals the uninterrupted run;
* ``torch.use_deterministic_algorithms(True, warn_only=True)`` and cuDNN determinism are set.

Identity: a run lives in ``<run_root>/<name>-<digest>/`` where the digest covers everything that
determines it (:func:`run_identity`: model, method, loss settings in use, optimiser, epochs, seed,
augmentation, the data's identity with its validation split, the teacher's weights, the world
size, and on the CPU the torch thread count), see
:mod:`examples.kd.runs`. A finished run is reused only under the same identity; other settings
train a new run next to it. ``reuse_only=True`` never trains: a missing run raises
:class:`RunMissing` naming what differs from the saved runs of that name.

A loss that becomes NaN or infinite stops the run with :class:`NonFiniteLoss`; nothing is recorded.

GPU training (``train`` section, :data:`TRAIN_DEFAULTS`, all part of a run's identity when not at
their defaults): ``amp`` ``"bf16"`` or ``"fp16"`` runs each step's forward passes and losses
under ``torch.autocast`` (fp16 with a ``torch.amp.GradScaler``, saved in the checkpoint; the
distillation losses compute their soft labels and projections in float32); ``channels_last``
stores the student and its input batches in NHWC; ``compile`` runs the student through
``torch.compile``. Evaluation runs in float32, on the uncompiled network.

The teacher's weights of its selected epoch are kept in ``best.pt`` (students are distilled from
that checkpoint); without a validation split (``data.val_fraction: 0``, or a data set without
one, such as the text study's) the selected epoch is the best test epoch, as in the paper.
``best.pt`` and ``final.pt`` leave out frozen parameters (:func:`saved_weights`; the model's
constructor rebuilds them and :func:`load_model` checks their digest).
Evaluation reports top-1 and top-5 accuracy.

CRD methods (``crd``, ``crd-aug``, ``crd-i``, ``crd-p``) add ``loss.crd_weight`` x the contrastive
term of :mod:`examples.kd.crd` to the KD-family loss of the same suffix. The embedding heads are
optimised with the student; the memory banks are saved in the checkpoint. The memory is updated
with embeddings of the un-mixed batch (a no-gradient forward of student and teacher on the clean
images, the student's batch-norm running statistics left untouched), never with mixed ones.

Image folders (``data.streams``) are read through a ``DataLoader`` with worker processes and a
``DistributedSampler``; in-memory sets are indexed directly.

Distributed: under ``torchrun`` the model is wrapped in ``DistributedDataParallel`` (gloo on CPU,
NCCL on CUDA), each rank draws its share of every epoch with ``DistributedSampler``, evaluation is
sharded and summed, and only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import runs
from .runs import RunMissing, RunStore
from .augment import mix_batch
from .crd import build_crd
from .domain import ImageDomain
from .methods import build_loss, loss_params, names
from .models import build_model

__all__ = ["RunSpec", "RunOptions", "Teacher", "Batch", "Objective", "StepOptions", "train_run", "train_step",
           "image_loss", "make_optimizer", "run_identity", "cpu_threads",
           "has_validation", "state_digest", "train_settings", "TRAIN_DEFAULTS", "autocast_context",
           "step_options", "prepare_student",
           "load_model", "saved_weights", "dist_info", "setup_determinism", "evaluate", "NonFiniteLoss", "RunMissing",
           "OPTIM_DEFAULTS"]

OPTIM_DEFAULTS = dict(lr=0.1, lr_decay=0.2, milestones=[0.3, 0.6, 0.8], momentum=0.9, weight_decay=5e-4,
                      batch_size=128, nesterov=False)
#: the ``train`` section: mixed precision (``"off"``, ``"bf16"``, ``"fp16"``), NHWC memory
#: format, ``torch.compile`` of the student
TRAIN_DEFAULTS = dict(amp="off", channels_last=False, compile=False)
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def train_settings(cfg: dict) -> dict:
    """The config's ``train`` section with :data:`TRAIN_DEFAULTS` filled in (checked).

    Examples
    --------
    >>> train_settings({"train": {"amp": "bf16"}})
    {'amp': 'bf16', 'channels_last': False, 'compile': False}
    """
    t = dict(TRAIN_DEFAULTS, **(cfg.get("train") or {}))
    if t["amp"] not in ("off", *_AMP_DTYPES):
        raise ValueError(f"train.amp must be off, bf16 or fp16, got {t['amp']!r}")
    return t


@dataclass
class StepOptions:
    """How :func:`train_step` runs: ``amp`` (``"off"``, ``"bf16"``, ``"fp16"``) runs the forward
    passes and the loss under :func:`autocast_context`; ``scaler`` (a ``torch.amp.GradScaler``,
    for fp16) scales the backward pass and skips steps with non-finite gradients;
    ``channels_last`` converts image batches (4-D) to NHWC."""

    amp: str = "off"
    scaler: object = None
    channels_last: bool = False


def step_options(cfg: dict, device) -> StepOptions:
    """:class:`StepOptions` for the config's ``train`` section (a fresh ``scaler`` for fp16)."""
    t = train_settings(cfg)
    scaler = torch.amp.GradScaler(torch.device(device).type) if t["amp"] == "fp16" else None
    return StepOptions(amp=t["amp"], scaler=scaler, channels_last=t["channels_last"])


def prepare_student(model, cfg: dict):
    """``model`` in the config's memory format (NHWC with ``train.channels_last``; in place) and
    the network to train: ``torch.compile(model)`` with ``train.compile``, else ``model``."""
    t = train_settings(cfg)
    if t["channels_last"]:
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if t["compile"] else model


def autocast_context(device, amp: str):
    """``torch.autocast`` for ``amp`` in {"bf16", "fp16"} on ``device``'s type; a null context
    for ``"off"``."""
    import contextlib

    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_AMP_DTYPES[amp])


@dataclass
class RunSpec:
    """One training run. ``name`` is readable (``kd-i_mixup_s0``), the folder adds the identity's
    digest; ``method`` is ``"teacher"`` or a student method; ``aug`` in {"none", "mixup", "cutmix"};
    ``loss`` the config's loss section (only the keys the method uses enter the identity);
    ``teacher_arch`` names a student's teacher (Table 1's pair; the teacher's weights are in the
    identity through their digest)."""

    name: str
    arch: str
    method: str
    aug: str = "none"
    seed: int = 0
    epochs: int = 10
    loss: dict = field(default_factory=dict)
    teacher_arch: str = ""


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite; the run is stopped and not recorded."""


def effective_optim(cfg: dict) -> dict:
    o = dict(OPTIM_DEFAULTS, **cfg.get("optim", {}))
    return {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "batch_size"
                else [float(m) for m in v] if k == "milestones" else v) for k, v in o.items()}


def cpu_threads(device) -> int | None:
    """The torch thread count when ``device`` is the CPU (it changes the rounding of every
    reduction, hence the numbers: part of a CPU run's identity); ``None`` on an accelerator."""
    return torch.get_num_threads() if torch.device(device).type == "cpu" else None


def run_identity(spec: RunSpec, cfg: dict, data_identity: dict, teacher_digest: str | None = None,
                 world: int = 1, threads: int | None = None) -> dict:
    """Everything that determines a run's result (see module docstring); JSON-able. ``threads``
    (:func:`cpu_threads`): the CPU thread count, left out of the identity when ``None``."""
    if int(spec.epochs) < 1 or spec.aug not in ("none", "mixup", "cutmix"):
        raise ValueError(f"{spec.name}: epochs must be >= 1 and aug one of none, mixup, cutmix "
                         f"(got {spec.epochs}, {spec.aug!r})")
    ident = dict(arch=spec.arch, method=spec.method, seed=int(spec.seed), epochs=int(spec.epochs),
                 optim=effective_optim(cfg), data=data_identity, world_size=int(world))
    if threads is not None:
        ident["threads"] = int(threads)
    if spec.method != "teacher":
        if teacher_digest is None and spec.method != "ce":
            raise ValueError("a student's identity needs the teacher's digest")
        ident.update(aug=spec.aug, loss=loss_params(spec.method, spec.loss))
        if spec.method != "ce":  # the student alone does not see the teacher
            ident["teacher"] = teacher_digest
        if spec.aug != "none":
            ident["aug_alpha"] = float(cfg.get("aug", {}).get("alpha", 1.0))
    # only settings away from their defaults: runs trained before the section existed keep their ids
    train = {k: v for k, v in train_settings(cfg).items() if v != TRAIN_DEFAULTS[k]}
    if train:
        ident["train"] = train
    return ident


def _tensors_digest(tensors: dict) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(tensors.items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


def state_digest(model) -> str:
    """SHA-256 (16 hex digits) of a network's weights and buffers (names, dtypes, shapes, bytes)."""
    return _tensors_digest(model.state_dict())


def _frozen_names(model) -> list[str]:
    return sorted(n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad)


def saved_weights(model) -> dict:
    """What a run's ``best.pt`` / ``final.pt`` keeps of ``model``: ``model`` (its state) without the
    frozen parameters, which the model's constructor rebuilds identically (the text study's
    pretrained word embeddings: 47 MB of every run's file), with their names (``frozen``) and
    digest (``frozen_digest``) so that :func:`load_model` can check the rebuilt ones."""
    sd = model.state_dict()
    frozen = [k for k in _frozen_names(model) if k in sd]
    if not frozen:
        return dict(model=sd)
    return dict(model={k: v for k, v in sd.items() if k not in frozen}, frozen=frozen,
                frozen_digest=_tensors_digest({k: sd[k] for k in frozen}))


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


def _atomic_save(obj, path: Path):
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class _FrozenBNStats:
    """Train-mode batch norm that leaves its running statistics unchanged (momentum 0)."""

    def __init__(self, model):
        self.bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def __enter__(self):
        self.saved = [m.momentum for m in self.bns]
        for m in self.bns:
            m.momentum = 0.0

    def __exit__(self, *exc):
        for m, mom in zip(self.bns, self.saved):
            m.momentum = mom


def _train_batches(ctx: dict, order, gen, epoch):
    """``(idx, x, y)`` of one epoch of the run ``ctx``: in-memory sets by index, image folders
    through a DataLoader."""
    data, bs, device = ctx["data"], ctx["bs"], ctx["device"]
    if getattr(data, "streams", False):
        yield from data.batches("train", bs, device, epoch=epoch, seed=ctx["spec"].seed, rank=ctx["rank"],
                                world=ctx["world"])
        return
    for i in range(0, len(order), bs):
        idx = order[i:i + bs]
        x, y = data.get("train", idx, device, gen)
        yield idx, x, y


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model, data, device, batch_size=512, top5=False, split="test"):
    """Top-1 accuracy in percent on ``split`` (``test``, or ``val``: the validation split), sharded
    over ranks and summed; with ``top5=True`` the pair ``(top-1, top-5)`` (k = min(5, classes))."""
    rank, world, on = dist_info()
    model.eval()
    n = data.size(split)
    k = min(5, data.num_classes)
    correct = torch.zeros(3, dtype=torch.float64, device=device)
    if getattr(data, "streams", False):
        batches = ((x, y) for _, x, y in data.batches(split, batch_size, device, rank=rank, world=world))
    else:
        idx = torch.arange(rank, n, world)
        batches = (data.get(split, idx[i:i + batch_size], device) for i in range(0, len(idx), batch_size))
    for x, y in batches:
        out = model(x)
        correct[0] += (out.argmax(1) == y).sum()
        correct[1] += (out.topk(k, 1).indices == y[:, None]).any(1).sum()
        correct[2] += len(y)
    if on:
        torch.distributed.all_reduce(correct)
    acc = 100.0 * correct[:2] / correct[2].clamp_min(1)
    return (float(acc[0]), float(acc[1])) if top5 else float(acc[0])


def load_model(path, arch, num_classes, device, model_fn=build_model):
    """A trained network from a run folder's ``final.pt`` or ``best.pt`` (or a checkpoint), in eval
    mode. ``model_fn(arch, num_classes)`` builds it (the text study passes its own)."""
    m = model_fn(arch, num_classes).to(device)
    state = torch.load(path, map_location=device, weights_only=True)
    if "model" not in state:  # a plain state dict (``teacher.checkpoint``): every tensor given
        m.load_state_dict(state)
        return m.eval()
    frozen = list(state.get("frozen", []))
    missing, unexpected = m.load_state_dict(state["model"], strict=False)
    if unexpected or sorted(missing) != sorted(frozen):
        extra = sorted(set(missing) - set(frozen))
        raise RuntimeError(f"{path} does not fit {arch} with {num_classes} classes: "
                           f"missing {extra[:3] or 'nothing'}, unexpected {sorted(unexpected)[:3] or 'nothing'}")
    if frozen:
        sd = m.state_dict()
        if _tensors_digest({k: sd[k] for k in frozen}) != state.get("frozen_digest"):
            raise RuntimeError(f"{path}: the {len(frozen)} frozen tensors that {arch} rebuilt (e.g. {frozen[0]}) "
                               f"differ from those the run was trained with (another version of the "
                               f"pretrained weights?)")
    return m.eval()


# ----------------------------------------------------------------------------- one step
@dataclass
class Batch:
    """One training batch: inputs ``x``, labels ``y``, the training-set ids ``idx`` (CRD's memory
    and the text study's cached teacher features look them up), the augmentation ``aug``
    (``none``, ``mixup``, ``cutmix``) with its Beta parameter ``aug_alpha``, and the generators of
    the batch's random draws (``rng`` NumPy, ``gen`` torch)."""

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor | None = None
    aug: str = "none"
    aug_alpha: float = 1.0
    rng: np.random.Generator | None = None
    gen: torch.Generator | None = None


def image_loss(net, batch: Batch, teacher, loss_fn):
    """A batch's ``(loss, stats)`` in the image study: cross-entropy (teacher, ``loss_fn=None``)
    or a distillation loss on the images mixed by ``batch.aug``
    (:func:`examples.kd.augment.mix_batch`). The teacher is not run for losses that do not use it
    (``ce``: ``loss_fn.uses_teacher``)."""
    if loss_fn is None:
        return F.cross_entropy(net(batch.x), batch.y), {}
    mb = mix_batch(batch.x, batch.y, batch.aug, batch.aug_alpha, batch.rng, batch.gen)
    t = None
    if getattr(loss_fn, "uses_teacher", True):
        with torch.no_grad():
            t = teacher(mb.x)
    return loss_fn(net(mb.x), t, mb.y_a, mb.y_b, mb.lam, mb.labels, batch.gen)


def _crd_loss(net, batch: Batch, teacher, loss_fn, crd):
    """:func:`image_loss` plus ``crd.weight`` x the CRD term; returns ``(loss, stats, (idx, u, v))``
    with the embeddings of the un-mixed batch for the memory update."""
    x = batch.x
    mb = mix_batch(x, batch.y, batch.aug, batch.aug_alpha, batch.rng, batch.gen)
    with torch.no_grad():
        ft, t = teacher(mb.x, return_features=True)
    fs, s = net(mb.x, return_features=True)
    loss, stats = loss_fn(s, t, mb.y_a, mb.y_b, mb.lam, mb.labels, batch.gen)
    idx = batch.idx.to(x.device)
    idx_b = idx[mb.perm] if mb.perm is not None else None
    lc, (u, v) = crd(fs, ft, idx, idx_b, mb.lam, gen=batch.gen)
    if mb.perm is not None:  # the memory learns un-mixed embeddings only
        model = net.module if hasattr(net, "module") else net
        with torch.no_grad(), _FrozenBNStats(model):
            u, v = crd.embed(model(x, return_features=True)[0], teacher(x, return_features=True)[0])
    return loss + crd.weight * lc, dict(stats, crd=lc.detach()), (idx, u, v)


@dataclass
class Objective:
    """What a training step minimises: cross-entropy (a teacher: ``loss_fn`` None) or the
    distillation loss ``loss_fn`` (:func:`examples.kd.methods.build_loss`) against ``teacher``,
    computed by the domain's ``batch_loss`` (default :func:`image_loss`; the text study's is
    :func:`examples.kd.text.mixing.text_loss`); ``crd`` (a :class:`~examples.kd.crd.CRDLoss`,
    CRD methods) adds ``crd.weight`` x the contrastive term and updates its memory after the
    step."""

    loss_fn: object = None
    teacher: object = None
    batch_loss: object = None
    crd: object = None

    def __call__(self, net, batch: Batch):
        """``(loss, stats, memory)``: ``memory`` the CRD memory update, or None."""
        if self.crd is not None:
            return _crd_loss(net, batch, self.teacher, self.loss_fn, self.crd)
        loss, stats = (self.batch_loss or image_loss)(net, batch, self.teacher, self.loss_fn)
        return loss, stats, None


def _average_crd_grads(crd):
    """The embedding heads are outside DDP: average their gradients over the ranks."""
    world = dist_info()[1]
    for p in crd.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= world


def train_step(net, opt, batch: Batch, objective: Objective, options: StepOptions | None = None):
    """One optimiser step of ``net`` on ``batch`` minimising ``objective``; returns
    ``(loss, stats)`` (detached). ``options``: mixed precision, gradient scaler, memory format
    (:class:`StepOptions`).

    The training loop and the Table 3 benchmark both call this, so they time the same work.
    """
    o = options or StepOptions()
    net.train()
    if o.channels_last and batch.x.ndim == 4:
        batch = dataclasses.replace(batch, x=batch.x.contiguous(memory_format=torch.channels_last))
    with autocast_context(batch.x.device, o.amp):
        loss, stats, memory = objective(net, batch)
    loss = loss.float()
    opt.zero_grad(set_to_none=True)
    (o.scaler.scale(loss) if o.scaler is not None else loss).backward()
    if objective.crd is not None and dist_info()[2]:
        _average_crd_grads(objective.crd)
    if o.scaler is not None:
        o.scaler.step(opt)
        o.scaler.update()
    else:
        opt.step()
    if memory is not None:
        objective.crd.update(*memory)
    return loss.detach(), stats


def make_optimizer(model, cfg, extra=()):
    """``optim.name``: ``"sgd"`` (default; momentum, weight decay, Nesterov) or ``"adamw"`` (the
    usual optimiser for fine-tuning transformers; lr and weight decay). Frozen parameters
    (``requires_grad=False``) are left out; ``extra`` parameters (CRD's embedding heads) are added."""
    o = effective_optim(cfg)
    params = [p for p in model.parameters() if p.requires_grad] + list(extra)
    name = o.get("name", "sgd")
    if name == "adamw":
        return torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"])
    if name != "sgd":
        raise ValueError(f"optim.name must be 'sgd' or 'adamw', got {name!r}")
    return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"],
                           weight_decay=o["weight_decay"], nesterov=o["nesterov"])


# ----------------------------------------------------------------------------- the loop
def has_validation(data) -> bool:
    """Whether ``data`` holds a validation split (then each run selects its epoch on it)."""
    return "val" in getattr(data, "splits", ("train", "test"))


def _epoch_accuracies(model, data, device) -> dict:
    """Test top-1/top-5 and, when there is a validation split, validation top-1 of one epoch."""
    acc, acc5 = evaluate(model, data, device, top5=True)
    out = dict(test_acc=acc, test_acc5=acc5)
    if has_validation(data):
        out["val_acc"] = evaluate(model, data, device, split="val")
    return out


def _update_selection(state: dict, rec: dict) -> bool:
    """Track the best test epoch (what the paper reports) and the selected epoch (the best on the
    validation split, or on the test split when there is none); whether the selected one moved."""
    epoch, acc = rec["epoch"], rec["test_acc"]
    if acc > state["best"] or state["best_epoch"] == 0:
        state["best"], state["best_epoch"] = acc, epoch
    score = rec.get("val_acc", acc)
    if score > state["sel_score"] or state["sel_epoch"] == 0:
        state["sel_score"], state["sel_epoch"] = score, epoch
        return True
    return False


def _new_state() -> dict:
    return dict(epoch=0, history=[], best=0.0, best_epoch=0, sel_score=0.0, sel_epoch=0, step_times=[])


def _result(spec: RunSpec, state: dict, ident: dict, world: int, selected_on: str) -> dict:
    """A finished run's result fields: the test accuracy at the selected epoch (``sel_*``), at the
    last epoch (``last_*``) and at the best test epoch (``best_*``, as the paper reports)."""
    hist = state["history"]
    best, sel = hist[state["best_epoch"] - 1], hist[state["sel_epoch"] - 1]
    return dict(arch=spec.arch, method=spec.method, aug=spec.aug, seed=spec.seed, teacher_arch=spec.teacher_arch,
                epochs=spec.epochs, sel_acc=sel["test_acc"], sel_acc5=sel["test_acc5"], sel_epoch=state["sel_epoch"],
                val_acc=sel.get("val_acc"), selected_on=selected_on,
                best_acc=state["best"], best_epoch=state["best_epoch"], best_acc5=best["test_acc5"],
                last_acc=hist[-1]["test_acc"], last_acc5=hist[-1]["test_acc5"],
                step_time_median=float(np.median(state["step_times"])) if state["step_times"] else 0.0,
                train_time=sum(h["epoch_time"] for h in hist),
                violation=float(np.mean([h["violation"] for h in hist])),
                loss_cfg=ident.get("loss", {}), world_size=world)


def _restore(ckpt: Path, rid: str, device, model, opt, crd, scaler=None):
    """The loop state of an interrupted run (weights, optimiser and gradient scaler loaded), or a
    fresh state."""
    if ckpt.exists():
        # weights_only: a checkpoint holds tensors, numbers, strings, lists and dicts only, so a
        # tampered run folder cannot run code on loading
        try:
            saved = torch.load(ckpt, map_location=device, weights_only=True)
        except pickle.UnpicklingError as e:
            raise RuntimeError(f"{ckpt}: holds objects other than tensors and plain values, which are "
                               f"not loaded (delete it to restart the run): {str(e).splitlines()[0]}") from None
        if saved.get("run_id") == rid:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            if crd is not None:
                crd.load_state_dict(saved["crd"])
            if scaler is not None and saved.get("scaler"):
                scaler.load_state_dict(saved["scaler"])
            return saved["state"]
    return _new_state()


def _run_epoch(ctx: dict, epoch: int, bar) -> dict:
    """One epoch's steps; returns the loss, violation and step-time totals."""
    spec, rank = ctx["spec"], ctx["rank"]
    gen, rng = _gens(spec.seed, epoch, rank)
    ctx["sampler"].set_epoch(epoch)
    order = torch.tensor(list(ctx["sampler"]))
    tot = dict(loss=0.0, violation=0.0, n=0, times=[])
    batches = _train_batches(ctx, order, gen, epoch)
    for i in range(ctx["steps"]):
        t0 = time.perf_counter()
        try:
            idx, x, y = next(batches)
        except StopIteration:
            break
        batch = Batch(x, y, idx, spec.aug, ctx["aug_alpha"], rng, gen)
        loss, stats = train_step(ctx["net"], ctx["opt"], batch, ctx["objective"], ctx["step"])
        _sync(ctx["device"])
        tot["times"].append(time.perf_counter() - t0)
        lv = loss.float().reshape(1)
        if ctx["dist_on"]:  # every rank stops together
            torch.distributed.all_reduce(lv)
        if not torch.isfinite(lv).all():
            if bar is not None:
                bar.close()
            raise NonFiniteLoss(f"{spec.name}: the training loss became {float(lv[0])} at epoch {epoch + 1}, "
                                f"step {i + 1}; the run is stopped and not recorded (check loss.* and optim.lr)")
        tot["loss"] += float(loss)
        tot["violation"] += float(stats.get("violation", 0.0))
        tot["n"] += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{tot['loss'] / tot['n']:.3f}")
    return tot


def _save_epoch(ctx: dict, state: dict, rec: dict, selected: bool) -> None:
    """Rank 0: the teacher's selected weights (``best.pt``), the resume checkpoint, the log line."""
    spec, out, model, crd = ctx["spec"], ctx["out"], ctx["model"], ctx["crd"]
    if selected and spec.method == "teacher":  # the teacher students are distilled from
        _atomic_save(dict(saved_weights(model), spec=asdict(spec), run_id=ctx["rid"], epoch=rec["epoch"],
                          test_acc=rec["test_acc"], val_acc=rec.get("val_acc")), out / "best.pt")
    _atomic_save(dict(model=model.state_dict(), optimizer=ctx["opt"].state_dict(), state=state,
                      spec=asdict(spec), run_id=ctx["rid"], crd=crd.state_dict() if crd is not None else None,
                      scaler=ctx["scaler"].state_dict() if ctx["scaler"] is not None else None),
                 out / "checkpoint.pt")
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(dict(run_id=ctx["rid"], **rec)) + "\n")
    if ctx["progress"]:
        from tqdm.auto import tqdm
        val = f" val {rec['val_acc']:.2f}%" if "val_acc" in rec else ""
        tqdm.write(f"[{spec.name}] epoch {rec['epoch']}/{spec.epochs} loss {rec['loss']:.3f}{val} "
                   f"test {rec['test_acc']:.2f}% (selected epoch {state['sel_epoch']}) {rec['epoch_time']:.1f}s")


def _epochs(ctx: dict, state: dict, stop_after_epoch) -> bool:
    """Train the remaining epochs of a run; False when stopped early by ``stop_after_epoch``."""
    spec, rank, optim_cfg = ctx["spec"], ctx["rank"], ctx["optim"]
    for epoch in range(state["epoch"], spec.epochs):
        lr = _lr(epoch, spec.epochs, optim_cfg)
        for g in ctx["opt"].param_groups:
            g["lr"] = lr
        t_epoch = time.perf_counter()
        bar = None
        if ctx["progress"] and rank == 0:
            from tqdm.auto import tqdm
            bar = tqdm(total=ctx["steps"], desc=f"{spec.name} {epoch + 1}/{spec.epochs}", leave=False,
                       dynamic_ncols=True)
        tot = _run_epoch(ctx, epoch, bar)
        if bar is not None:
            bar.close()
        times = tot["times"]
        rec = dict(epoch=epoch + 1, lr=lr, loss=tot["loss"] / max(1, tot["n"]),
                   violation=tot["violation"] / max(1, tot["n"]),
                   **_epoch_accuracies(ctx["model"], ctx["data"], ctx["device"]),
                   epoch_time=time.perf_counter() - t_epoch,
                   step_time_median=float(np.median(times)) if times else 0.0)
        state["history"].append(rec)
        selected = _update_selection(state, rec)
        state["step_times"] += times
        state["epoch"] = epoch + 1
        if rank == 0:
            _save_epoch(ctx, state, rec, selected)
        if ctx["dist_on"]:
            torch.distributed.barrier()
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < spec.epochs:
            return False
    return True


@dataclass
class RunOptions:
    """How :func:`train_run` carries a run out (none of it is part of the run's identity):
    ``resume`` reuses a finished run of the same identity and continues an interrupted one;
    ``reuse_only`` never trains (:class:`RunMissing`); ``progress`` shows bars and epoch lines;
    ``stop_after_epoch`` ends the run early after that many epochs (tests of ``resume``);
    ``log`` takes one-line messages (default ``print``)."""

    resume: bool = True
    reuse_only: bool = False
    progress: bool = True
    stop_after_epoch: int | None = None
    log: object = None


@dataclass
class Teacher:
    """A student's teacher: the eval-mode network the loss runs (``net``; the text study's caches
    its sentence representations) and the digest of its weights (``digest``, the identity)."""

    net: object
    digest: str


def train_run(spec: RunSpec, data, cfg: dict, store, device, teacher=None, domain=None, options=None):
    """Train one network, or reuse its finished run; returns its record
    (:func:`examples.kd.runs.make_record`, also written to ``<run>/result.json``), or None when
    ``options.stop_after_epoch`` stopped it.

    After every epoch the network is evaluated on the test split and, when ``data`` holds one, on
    the validation split. The record reports the test accuracy at the **selected** epoch
    (``sel_acc``: the best validation epoch; without a validation split the best test epoch), at
    the last epoch (``last_acc``) and at the best test epoch (``best_acc``, what the paper
    reports); a teacher's ``best.pt`` holds the weights of its selected epoch.

    ``cfg`` is the whole config (``optim``, ``aug`` and ``train`` sections used). ``store``: a
    :class:`~examples.kd.runs.RunStore` or the folder of one. ``teacher`` (students only): a
    :class:`Teacher`, or an eval-mode network (its digest is then :func:`state_digest` of it).
    ``domain`` supplies ``model_fn(arch, num_classes)``, ``batch_loss`` (:class:`Objective`) and
    ``extra_identity(cfg)`` (default: the image study's). ``options``: :class:`RunOptions`.
    """
    opts = options or RunOptions()
    domain = domain or ImageDomain()
    rank, world, _ = dist_info()
    if not isinstance(store, RunStore):
        store = RunStore(store, rank, opts.log)
    if teacher is None and spec.method not in ("teacher", "ce"):
        raise ValueError(f"{spec.name}: a student run needs a teacher")
    if teacher is not None and not isinstance(teacher, Teacher):
        teacher = Teacher(teacher, state_digest(teacher))
    ident = run_identity(spec, cfg, data.identity, teacher.digest if teacher is not None else None, world,
                         cpu_threads(device))
    ident.update(domain.extra_identity(cfg))
    job = dict(spec=spec, data=data, cfg=cfg, device=device, domain=domain, options=opts, ident=ident,
               teacher=teacher.net if teacher is not None else None)
    record = store.train_or_reuse(spec.name, ident, lambda out, rid: _fit(job, out, rid),
                                  reuse_only=opts.reuse_only, resume=opts.resume)
    if dist_info()[2]:
        torch.distributed.barrier()
    return record


def _new_network(job: dict, tr: dict):
    """The run's network, CRD heads (CRD methods) and optimiser, seeded by the run's seed."""
    spec, data, device = job["spec"], job["data"], job["device"]
    torch.manual_seed(spec.seed)
    model = job["domain"].model_fn(spec.arch, data.num_classes).to(device)
    if tr["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    crd = None
    if spec.method in names("crd"):
        crd = build_crd(spec.loss, model.feat_dim, job["teacher"].feat_dim, data.size("train")).to(device)
    opt = make_optimizer(model, job["cfg"], crd.parameters() if crd is not None else ())
    return model, crd, opt


def _fit(job: dict, out: Path, rid: str):
    """Train run ``rid`` in folder ``out`` (resuming its checkpoint); its record, or None when
    stopped early. Writes ``final.pt``; the store writes ``result.json``."""
    spec, data, cfg, device, opts = job["spec"], job["data"], job["cfg"], job["device"], job["options"]
    rank, world, dist_on = dist_info()
    tr = train_settings(cfg)
    model, crd, opt = _new_network(job, tr)
    scaler = torch.amp.GradScaler(torch.device(device).type) if tr["amp"] == "fp16" else None
    state = _restore(out / "checkpoint.pt", rid, device, model, opt, crd, scaler) if opts.resume else _new_state()
    if state["epoch"] == 0 and rank == 0 and (out / "log.jsonl").exists():
        (out / "log.jsonl").unlink()  # a fresh start: do not mix logs of two runs
    net = model
    if dist_on:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if tr["compile"]:
        net = torch.compile(net)
    optim_cfg = effective_optim(cfg)
    bs = max(1, optim_cfg["batch_size"] // world)
    sampler = torch.utils.data.DistributedSampler(range(data.size("train")), num_replicas=world, rank=rank,
                                                  shuffle=True, seed=spec.seed, drop_last=False)
    loss_fn = None if spec.method == "teacher" else build_loss(spec.method, spec.loss)
    ctx = dict(spec=spec, rank=rank, world=world, dist_on=dist_on, data=data, device=device, net=net, model=model,
               opt=opt, crd=crd, sampler=sampler, bs=bs, steps=math.ceil(len(sampler) / bs), optim=optim_cfg,
               out=out, rid=rid, progress=opts.progress, scaler=scaler,
               objective=Objective(loss_fn, job["teacher"], job["domain"].batch_loss, crd),
               step=StepOptions(tr["amp"], scaler, tr["channels_last"]),
               aug_alpha=float(cfg.get("aug", {}).get("alpha", 1.0)))
    if not _epochs(ctx, state, opts.stop_after_epoch):
        return None
    result = _result(spec, state, job["ident"], world, "val" if has_validation(data) else "test")
    if rank == 0:
        _atomic_save(dict(saved_weights(model), spec=asdict(spec), run_id=rid,
                          crd=crd.state_dict() if crd is not None else None), out / "final.pt")
    return runs.make_record(spec.name, job["ident"], result)
