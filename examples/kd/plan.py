"""Which runs a step needs: pure functions of the configuration (nothing is loaded or trained).

Teacher/student pairs: ``pairs: [[teacher, student], ...]`` (default: the one pair
``teacher.arch -> student.arch``, the *main* pair). Students of the main pair are named
``<row>_<aug>_s<seed>``; other pairs' names start with ``<teacher>-<student>_``; the student
alone (``ce``) does not depend on the teacher, so one run per student architecture serves every
pair. Run names read a method's settings through :func:`examples.kd.methods.row_name`.
"""

from __future__ import annotations

from . import methods
from .train import RunSpec

__all__ = ["main_pair", "pairs", "teacher_spec", "student_spec", "student_rows", "student_specs", "sweep_specs",
           "SWEEPS"]

#: Fig. 4 and Fig. 5: the loss setting each sweeps, the method it trains and the config key of
#: its values (under ``analysis``) with their default
SWEEPS = {"fig4": ("calibrated_fraction", "kd-i", "fractions", [0, .5, 1]),
          "fig5": ("sigma", "kd-p", "sigmas", [0.5, 1, 2, 3, 4, 5])}


def main_pair(cfg: dict) -> tuple[str, str]:
    return cfg["teacher"]["arch"], cfg["student"]["arch"]


def pairs(cfg: dict) -> list[tuple[str, str]]:
    """The teacher/student pairs of Table 1 (``pairs``, default the main pair)."""
    return [(str(t), str(s)) for t, s in (cfg.get("pairs") or [list(main_pair(cfg))])]


def teacher_spec(cfg: dict, arch: str | None = None) -> RunSpec:
    """The run of teacher ``arch`` (default ``teacher.arch``)."""
    t = cfg["teacher"]
    arch = arch or t["arch"]
    return RunSpec(f"teacher_{arch}_s{t.get('seed', 0)}", arch, "teacher", "none", t.get("seed", 0), t["epochs"])


def student_spec(cfg: dict, row: str, method: str, aug: str, seed: int, loss: dict, pair=None) -> RunSpec:
    """The run of one student: run name ``row`` (see the module docstring for the pair prefix)."""
    main = main_pair(cfg)
    t, s = pair or main
    prefix = "" if (t, s) == main or method == "ce" else f"{t}-{s}_"
    if method == "ce" and (t, s) != main:
        prefix = f"{s}_" if s != main[1] else ""
    return RunSpec(f"{prefix}{row}_{aug}_s{seed}", s, method, aug, seed, cfg["student"]["epochs"], loss, t)


def student_rows(cfg: dict, seeds=None, pair=None) -> list[tuple[str, RunSpec]]:
    """Table 1's runs of one pair (default the main pair) as ``(row, spec)``, in the order of
    ``methods``: each method once (``none``) or for each augmentation, and after a method with a
    control row (KD-i: its extra beta-weighted term against the raw teacher,
    ``calibrated_fraction = 0``; main pair only) that row too."""
    out = []
    pair = tuple(pair or main_pair(cfg))
    main = dict(cfg.get("loss", {}))
    control = cfg.get("analysis", {}).get("control", True) and pair == main_pair(cfg)
    for seed in seeds if seeds is not None else cfg.get("seeds", [0]):
        for m in cfg.get("methods", ["kd", "kd-aug", "kd-i", "kd-p"]):
            method = methods.get(m)
            for aug in (cfg.get("augs", list(methods.MIXES)) if method.mixes else ["none"]):
                out.append((m, student_spec(cfg, methods.row_name(m, main, main), m, aug, seed, main, pair)))
                if control and method.control is not None:
                    row, _, settings = method.control
                    if any(methods.loss_params(m, main)[k] != v for k, v in settings.items()):
                        out.append((row, student_spec(cfg, row, m, aug, seed, dict(main, **settings), pair)))
    return out


def student_specs(cfg: dict, seeds=None, pair_list=None) -> list[RunSpec]:
    """Every pair's Table 1 runs (``pair_list`` default: all pairs)."""
    return [s for p in (pair_list or pairs(cfg)) for _, s in student_rows(cfg, seeds, p)]


def sweep_specs(cfg: dict, name: str) -> list[RunSpec]:
    """Fig. 4 (KD-i, calibrated fraction) or Fig. 5 (KD-p, sigma) runs over the seeds
    ``analysis.sweep_seeds`` (default: ``seeds``); the points at the main setting (and fraction
    0, the control) are Table 1's runs (same identity, same id)."""
    a = cfg.get("analysis", {})
    aug = a.get("sweep_aug", "mixup")
    key, method, values_key, default = SWEEPS[name]
    specs, main = [], dict(cfg.get("loss", {}))
    for seed in a.get("sweep_seeds") or cfg.get("seeds", [0]):
        for v in a.get(values_key, default):
            loss = dict(main, **{key: float(v)})
            specs.append(student_spec(cfg, methods.row_name(method, loss, main), method, aug, seed, loss))
    return specs
