"""Run configuration: a YAML profile (``configs/<name>.yaml``, or any file) plus overrides.

A profile may name a ``base`` profile; sections are merged key by key. Overrides are
``dotted.key=value`` pairs (values parsed as YAML: ``student.epochs=3``, ``seeds=[0,1,2]``,
``loss.calibrate_on=probs``) or the named command-line flags of :mod:`examples.kd.__main__`.
"""

from __future__ import annotations

import copy
from pathlib import Path

from . import methods, steps
from .schema import AnyOf, Bool, Choice, ConfigError, Float, Int, ListOf, Str, validate

__all__ = ["load_config", "apply_override", "PROFILES", "SCHEMA", "STEPS", "check_config", "ConfigError"]

CONFIG_DIR = Path(__file__).parent / "configs"
SOURCES = ("glyphs", "cifar100", "cifar10", "npz", "idx", "imagefolder", "synthetic_imagefolder")  # = data.SOURCES
PROFILES = ("quick", "fmnist", "full", "gpu", "paper", "pairs-cpu", "imagenet", "imagenet-cpu")
STEPS = steps.pipeline_steps("image")
METHODS = tuple(methods.METHODS)
MODEL_NAMES = ("densenet121", "googlenet", "resnet101", "resnet110", "resnet14", "resnet18", "resnet20",
               "resnet32", "resnet32x4", "resnet34", "resnet44", "resnet50", "resnet56", "resnet8",
               "resnet8x4", "resnext50", "seresnet101", "seresnet18",
               "imagenet_resnet18", "imagenet_resnet34")  # = models.MODEL_NAMES (tested)
_pos = dict(min=0, min_open=True)
_unit = dict(min=0, max=1)
_arch = Choice(*MODEL_NAMES)
#: Every key the image study reads, with its type and range (checked before anything runs).
SCHEMA = {
    "profile": Str(), "run_dir": Str(), "device": Str(), "threads": AnyOf(Choice("auto"), Int(min=0)),
    "seeds": ListOf(Int(min=0), min_len=1, unique=True),
    # train_per_class, test_per_class, size: null (every image, as stored) is for idx data only
    "data": {"name": Choice(*SOURCES), "workers": Int(min=0),
             "num_classes": Int(min=2, max=1000), "train_per_class": Int(min=1, none=True),
             "test_per_class": Int(min=1, none=True), "size": Int(min=4, none=True), "seed": Int(min=0),
             "root": Str(none=True), "cache_dir": Str(none=True), "flip": Bool(), "pad": Int(min=0),
             "resize": Int(min=1), "val_fraction": Float(min=0, max=0.5)},
    "teacher": {"arch": _arch, "epochs": Int(min=1), "seed": Int(min=0), "checkpoint": Str(none=True)},
    "student": {"arch": _arch, "epochs": Int(min=1)},
    "optim": {"lr": Float(**_pos), "lr_decay": Float(min=0, max=1, min_open=True),
              "milestones": ListOf(Float(**_unit)), "momentum": Float(min=0, max=1, max_open=True),
              "weight_decay": Float(min=0), "batch_size": Int(min=1), "nesterov": Bool()},
    "loss": {"alpha": Float(**_unit), "tau": Float(**_pos), "beta": Float(min=0), "sigma": Float(min=0),
             "calibrate_on": Choice("logits", "probs"), "penalty_on": Choice("probs", "logits"),
             "calibrated_fraction": Float(**_unit),
             "crd_weight": Float(min=0), "crd_dim": Int(min=1), "crd_k": Int(min=1), "crd_t": Float(**_pos),
             "crd_momentum": Float(min=0, max=1, max_open=True)},
    "aug": {"alpha": Float(**_pos)},
    "train": {"amp": Choice("off", "bf16", "fp16", aliases={False: "off"}), "channels_last": Bool(), "compile": Bool()},
    "methods": ListOf(Choice(*METHODS), min_len=1, unique=True),
    "augs": ListOf(Choice("mixup", "cutmix"), min_len=1, unique=True),
    "pairs": ListOf(ListOf(_arch, min_len=2, max_len=2), min_len=1, unique=True, none=True),
    "analysis": {"fig1_samples": Int(min=1), "timing_rounds": Int(min=1), "timing_warmup": Int(min=0),
                 "fractions": ListOf(Float(**_unit), min_len=1, unique=True),
                 "sigmas": ListOf(Float(min=0), min_len=1, unique=True),
                 "sweep_aug": Choice("mixup", "cutmix"), "timing_aug": Choice("mixup", "cutmix"),
                 "sweep_seeds": ListOf(Int(min=0), min_len=1, unique=True, none=True),
                 "control": Bool()},
    "pipeline": ListOf(Choice(*STEPS), min_len=1),
    "time_budget": Float(none=True, **_pos), "resume": Bool(), "reuse_only": Bool(), "progress": Bool(),
}


def check_config(cfg: dict, where: str = "config", schema=None) -> dict:
    """``cfg`` checked against ``schema`` (default :data:`SCHEMA`; the text study passes its own),
    a normalised copy; raises :class:`ConfigError`."""
    return validate(cfg, SCHEMA if schema is None else schema, where)


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read(name_or_path, config_dir=CONFIG_DIR, profiles=PROFILES) -> dict:
    import yaml

    p = Path(name_or_path)
    if not p.suffix:
        p = Path(config_dir) / f"{name_or_path}.yaml"
    if not p.is_file():
        raise FileNotFoundError(f"config {name_or_path!r} not found (profiles: {', '.join(profiles)}; "
                                f"or a path to a YAML file)")
    cfg = yaml.safe_load(p.read_text()) or {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"config {p} must be a mapping")
    base = cfg.pop("base", None)
    return _merge(_read(base, config_dir, profiles), cfg) if base else cfg


def apply_override(cfg: dict, item: str) -> dict:
    """Set ``a.b.c=value`` (value parsed as YAML) in a copy of ``cfg``.

    Examples
    --------
    >>> apply_override({"loss": {"tau": 4.5}}, "loss.tau=2")["loss"]["tau"]
    2
    """
    import yaml

    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, val = item.split("=", 1)
    if not key.strip() or any(not p for p in key.strip().split(".")):
        raise ConfigError(f"override {item!r}: empty key")
    out = copy.deepcopy(cfg)
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p!r} is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(val)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
    return out


def load_config(profile="quick", config=None, overrides=(), check=True, config_dir=CONFIG_DIR,
                profiles=PROFILES, schema=None) -> dict:
    """The merged config: ``profile`` (or file ``config``), then each ``overrides`` item, checked
    against :data:`SCHEMA` (unknown keys and out-of-range values raise :class:`ConfigError`).

    ``config_dir``, ``profiles`` and ``schema``: where the profiles live, their names and the
    schema to check against (the text study, :mod:`examples.kd.text`, passes its own).
    """
    cfg = _read(config or profile, config_dir, profiles)
    if check:
        cfg = check_config(cfg, f"profile {config or profile!r}", schema)
    for o in overrides:
        cfg = apply_override(cfg, o)
        if check:  # check each override on its own, so the message names it
            cfg = check_config(cfg, f"override {o!r}", schema)
    return cfg
