"""Run configuration: a YAML profile (``configs/<name>.yaml``, or any file) plus overrides.

A profile may name a ``base`` profile; sections are merged key by key. Overrides are
``dotted.key=value`` pairs (values parsed as YAML: ``student.epochs=3``, ``seeds=[0,1,2]``,
``loss.calibrate_on=probs``) or the named command-line flags of :mod:`examples.kd.__main__`.
"""

from __future__ import annotations

import copy
from pathlib import Path

__all__ = ["load_config", "apply_override", "PROFILES"]

CONFIG_DIR = Path(__file__).parent / "configs"
PROFILES = ("quick", "full", "gpu", "paper")


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read(name_or_path) -> dict:
    import yaml

    p = Path(name_or_path)
    if not p.suffix:
        p = CONFIG_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        raise FileNotFoundError(f"config {name_or_path!r} not found (profiles: {', '.join(PROFILES)}; "
                                f"or a path to a YAML file)")
    cfg = yaml.safe_load(p.read_text()) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"config {p} must be a mapping")
    base = cfg.pop("base", None)
    return _merge(_read(base), cfg) if base else cfg


def apply_override(cfg: dict, item: str) -> dict:
    """Set ``a.b.c=value`` (value parsed as YAML) in a copy of ``cfg``.

    Examples
    --------
    >>> apply_override({"loss": {"tau": 4.5}}, "loss.tau=2")["loss"]["tau"]
    2
    """
    import yaml

    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key.sub=value")
    key, val = item.split("=", 1)
    out = copy.deepcopy(cfg)
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {item!r}: {p!r} is not a section")
    node[parts[-1]] = yaml.safe_load(val)
    return out


def load_config(profile="quick", config=None, overrides=()) -> dict:
    """The merged config: ``profile`` (or file ``config``), then each ``overrides`` item."""
    cfg = _read(config or profile)
    for o in overrides:
        cfg = apply_override(cfg, o)
    return cfg
