"""Command line: ``python -m examples.kd [command] [options] [key=value ...]``.

``--domain text`` runs the text study instead (Table 4; ``python -m examples.kd.text`` is the
short form, with its own ``--help``); the commands below are the image study's.

Commands (each regenerates one artefact; missing training runs are trained first, finished ones
are reused):

  run      (default) the profile's whole pipeline, then print the tables
  data     build / load the data set and save a sample grid (analysis/data.png)
  teacher  train the teacher (every pair's teacher: teachers)
  students train every student of Table 1 (methods x Mixup/CutMix x seeds x pairs)
  train    one student: --method kd-i --aug mixup --seed 0
  fig1     Fig. 1a/1b  (teacher order vs hard-label order)
  table1   Table 1 in the paper's layout (pairs as columns + Avg; rows Teacher, Student, KD,
           KD-aug/KD-i/KD-p per augmentation, CRD, CRD-aug/CRD-i/CRD-p; mean ± std over seeds),
           then the main pair's analogue (paired differences vs KD-aug and vs the control)
  table2   Table 2, ImageNet: top-1 / top-5 (--profile imagenet, or imagenet-cpu to try it)
  table3   Table 3 (median step time ratio to KD)
  fig4     Fig. 4 (KD-i accuracy vs calibrated fraction)
  fig5     Fig. 5 (KD-p accuracy vs sigma)
  report   write the generated report (tables .md/.rst/.csv, figures) from the finished runs of the
           current settings, without training: --out DIR (default <run-dir>/report),
           --readme FILE rewrites its <!-- report:NAME --> blocks

Every run is identified by its full settings, the data's content (or generator parameters) with
its validation split, the CPU thread count and, for students, the teacher's weights: a finished
run is reused only under the same identity; each run reports the test accuracy of the epoch that
scores best on the validation split (data.val_fraction of the training set, default 0.1);
--reuse-only never trains and stops, naming what differs, when a run is missing. The
configuration is checked before anything runs (unknown keys, out-of-range values).

Methods (config ``methods``, or ``train --method``):
{methods}

Profiles: quick (default), fmnist (Fashion-MNIST, the IDX files of ``apt-get install
dataset-fashion-mnist``), full, gpu, paper (CIFAR-100, Table 1's eight pairs, both families),
imagenet (Table 2), imagenet-cpu, pairs-cpu (``--profile``), or ``--config FILE.yaml``.
Data: ``--dataset idx --data-root DIR`` reads MNIST, Fashion-MNIST or KMNIST IDX files (``.gz`` or
not) in DIR or its subfolders.
Distributed: ``torchrun --nproc_per_node=N -m examples.kd <command> ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from . import domain as domains
from . import methods
from .steps import Request, run_pipeline, steps_of

__doc__ = __doc__.replace("{methods}", methods.help_lines())

COMMANDS = ("run",) + tuple(steps_of("image"))


def _domain_name(argv) -> str:
    """The ``--domain`` of ``argv`` (default ``image``), read before the parser is built (the
    commands and options depend on it)."""
    for i, t in enumerate(argv):
        if t == "--domain" and i + 1 < len(argv):
            return argv[i + 1]
        if t.startswith("--domain="):
            return t.split("=", 1)[1]
    return "image"


def parse(argv=None, domain=None):
    """Parse the command line of ``domain`` (default: the one ``--domain`` names); its commands are
    ``run`` and the domain's steps (:mod:`examples.kd.steps`); the image study's ``train`` adds
    ``--method``, ``--aug`` and ``--seed``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    name = _domain_name(argv)
    if name not in domains.NAMES:
        sys.exit(f"error: --domain must be one of {', '.join(domains.NAMES)}, got {name!r}")
    d = domain or domains.get(name)
    commands = ("run",) + tuple(steps_of(d.name))
    if not any(t in commands for t in argv) and not any(t in ("-h", "--help") for t in argv):
        argv = ["run"] + argv  # the default command, also before options and key=value overrides
    p = argparse.ArgumentParser(prog=d.prog, description=d.doc(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=commands)
    p.add_argument("--domain", default=d.name, choices=domains.NAMES, help="image (default) | text")
    p.add_argument("--profile", default="quick", help=d.profiles_help)
    p.add_argument("--config", help="a YAML config file (instead of a profile)")
    p.add_argument("--run-dir", help="output folder (default: the profile's run_dir)")
    p.add_argument("--dataset", help=d.datasets_help)
    p.add_argument("--data-root", help="folder/file of local data (never downloaded)")
    p.add_argument("--cache-dir", help="where generated data is cached (default <run-dir>/data)")
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--seeds", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--time-budget", type=float, help="seconds; scales epoch counts to fit")
    p.add_argument("--resume", dest="resume", action="store_true", default=None,
                   help="reuse finished runs and continue interrupted ones from their checkpoint (default)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="retrain every run from scratch (files are overwritten)")
    p.add_argument("--reuse-only", action="store_true",
                   help="never train: reuse finished runs of the current settings, stop naming what differs "
                        "when one is missing")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if d.train_command:
        single = ", ".join(methods.names(mixes=False))
        p.add_argument("--method", default="kd-i", help="train: " + " | ".join(methods.METHODS))
        p.add_argument("--aug", default=None,
                       help=f"train: none ({single}) | mixup | cutmix (default: none for {single}, else mixup)")
        p.add_argument("--seed", default="0", help="train: student seed (an integer >= 0)")
    p.add_argument("--out", help="report: output folder (default <run-dir>/report)")
    p.add_argument("--readme", help="report: a Markdown file whose <!-- report:NAME --> blocks are rewritten")
    a, rest = p.parse_known_args(argv)
    bad = [r for r in rest if "=" not in r or r.startswith("-")]
    if bad:
        p.error(f"unrecognized arguments: {' '.join(bad)} (overrides look like key.sub=value)")
    a.overrides = rest
    return a


def _train_request(a):
    """Check ``train``'s ``--method``, ``--aug`` and ``--seed`` (in place)."""
    from .config import ConfigError
    from .schema import parse_int_list

    if a.method not in methods.METHODS:
        raise ConfigError(f"--method must be one of {', '.join(methods.METHODS)}, got {a.method!r}")
    augs = methods.train_augs(a.method)
    a.aug = a.aug or augs[0]
    if a.aug not in augs:
        raise ConfigError(f"--aug for --method {a.method} must be one of {', '.join(augs)}, got {a.aug!r}")
    seeds = parse_int_list(a.seed, "--seed")
    if len(seeds) != 1:
        raise ConfigError("--seed takes one integer (use --seeds for several)")
    a.seed = seeds[0]


_FLAGS = (("dataset", "data", "name"), ("data_root", "data", "root"), ("cache_dir", "data", "cache_dir"),
          ("device", None, "device"), ("time_budget", None, "time_budget"), ("resume", None, "resume"))


def build_config(a, domain=None):
    """The checked configuration of the parsed arguments ``a`` in ``domain`` (default: ``a.domain``);
    raises ConfigError."""
    from .config import check_config, load_config
    from .schema import parse_int_list

    d = domain or domains.get(a.domain)
    if a.command == "train":
        _train_request(a)
    config_dir, profiles, schema = d.config()
    cfg = load_config(a.profile, a.config, a.overrides, schema=schema, config_dir=config_dir, profiles=profiles)
    if a.run_dir:
        cfg["run_dir"] = a.run_dir
    elif a.config is None and a.profile != cfg.get("profile", a.profile):
        cfg["run_dir"] = f"runs/{d.run_prefix}{a.profile}"
    for flag, section, key in _FLAGS:
        value = getattr(a, flag)
        if value is not None:
            (cfg.setdefault(section, {}) if section else cfg)[key] = value
    if a.seeds is not None:
        cfg["seeds"] = parse_int_list(a.seeds, "--seeds")
    if a.no_progress:
        cfg["progress"] = False
    if a.reuse_only or a.command == "report":
        cfg["reuse_only"] = True
    return check_config(cfg, "command line", schema)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse(argv)
    d = domains.get(a.domain)
    from .config import ConfigError

    try:
        cfg = build_config(a, d)  # every check before anything is trained or written
    except (ConfigError, FileNotFoundError) as e:  # a bad setting or a missing profile: one line
        sys.exit(f"error: {e}")
    import torch

    from .train import setup_determinism

    setup_determinism()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if (cfg.get("device", "auto") != "cpu" and torch.cuda.is_available()) else "gloo"
        torch.distributed.init_process_group(backend)
    from .experiment import Study

    t0 = time.perf_counter()
    load0, utc0 = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    try:
        study = Study(cfg, d)
    except (FileNotFoundError, ImportError, ValueError) as e:  # data problems: one line, no traceback
        sys.exit(f"error: {e}")
    try:
        out = _steps(a, cfg, study)
    except Exception as e:
        from .train import NonFiniteLoss, RunMissing

        if isinstance(e, (NonFiniteLoss, RunMissing)) or (isinstance(e, RuntimeError) and a.command == "report"):
            sys.exit(f"error: {e}")
        raise
    if study.rank == 0 and a.command == "run":  # the wall time of a whole pipeline, for the report
        study.record_wall_time(time.perf_counter() - t0, utc0, load0, os.getloadavg())
    if study.rank == 0:
        if a.command == "run":
            print("\n" + "=" * 78)
            print("\n\n".join(o for o in out if o))
        print(f"\n[{a.command}] done in {time.perf_counter() - t0:.0f}s; outputs in {study.root}/analysis")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _steps(a, cfg, study):
    """Run the command's steps (``run``: the profile's pipeline) and return the tables' Markdown."""
    cmd = a.command
    names = cfg.get("pipeline", list(study.domain.default_pipeline)) if cmd == "run" else [cmd]
    study.plan(names)
    study.echo_tables = cmd != "run"  # `run` prints all tables once at the end
    report = cmd == "report"
    request = Request(method=getattr(a, "method", None), aug=getattr(a, "aug", None), seed=getattr(a, "seed", None),
                      out=a.out if report else None, readme=a.readme if report else None)
    return run_pipeline(study, names, request)


if __name__ == "__main__":
    main()
