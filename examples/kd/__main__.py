"""Command line: ``python -m examples.kd [command] [options] [key=value ...]``.

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

from . import methods

__doc__ = __doc__.replace("{methods}", methods.help_lines())

COMMANDS = ("run", "data", "teacher", "teachers", "students", "train", "fig1", "table1", "table2", "table3", "fig4",
            "fig5", "report")


def parse(argv=None, prog="python -m examples.kd", doc=__doc__, commands=COMMANDS,
          profiles="quick | fmnist | full | gpu | paper | pairs-cpu | imagenet | imagenet-cpu",
          datasets="glyphs | cifar100 | cifar10 | npz | idx | imagefolder | synthetic_imagefolder",
          image_options=True):
    """Parse the command line; the text study (:mod:`examples.kd.text`) passes its own commands,
    profiles and datasets and leaves out the image study's ``train`` options (``--out`` and
    ``--readme`` come with a ``report`` command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(t in commands for t in argv) and not any(t in ("-h", "--help") for t in argv):
        argv = ["run"] + argv  # the default command, also before options and key=value overrides
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=commands)
    p.add_argument("--profile", default="quick", help=profiles)
    p.add_argument("--config", help="a YAML config file (instead of a profile)")
    p.add_argument("--run-dir", help="output folder (default: the profile's run_dir)")
    p.add_argument("--dataset", help=datasets)
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
    if image_options:
        single = ", ".join(methods.names(mixes=False))
        p.add_argument("--method", default="kd-i", help="train: " + " | ".join(methods.METHODS))
        p.add_argument("--aug", default=None,
                       help=f"train: none ({single}) | mixup | cutmix (default: none for {single}, else mixup)")
        p.add_argument("--seed", default="0", help="train: student seed (an integer >= 0)")
    if "report" in commands:
        p.add_argument("--out", help="report: output folder (default <run-dir>/report)")
        p.add_argument("--readme", help="report: a Markdown file whose <!-- report:NAME --> blocks are rewritten")
    a, rest = p.parse_known_args(argv)
    bad = [r for r in rest if "=" not in r or r.startswith("-")]
    if bad:
        p.error(f"unrecognized arguments: {' '.join(bad)} (overrides look like key.sub=value)")
    a.overrides = rest
    return a


def build_config(a, config_dir=None, profiles=None, schema=None):
    """The checked configuration of the parsed arguments ``a``; raises ConfigError.

    ``config_dir``, ``profiles``, ``schema``: the text study's (default: the image study's)."""
    from .config import ConfigError, check_config, load_config
    from .schema import parse_int_list

    if a.command == "train":
        if a.method not in methods.METHODS:
            raise ConfigError(f"--method must be one of {', '.join(methods.METHODS)}, got {a.method!r}")
        augs = methods.train_augs(a.method)
        a.aug = a.aug or augs[0]
        if a.aug not in augs:
            raise ConfigError(f"--aug for --method {a.method} must be one of {', '.join(augs)}, got {a.aug!r}")
        a.seed = parse_int_list(a.seed, "--seed")
        if len(a.seed) != 1:
            raise ConfigError("--seed takes one integer (use --seeds for several)")
        a.seed = a.seed[0]
    where = {k: v for k, v in (("config_dir", config_dir), ("profiles", profiles)) if v is not None}
    cfg = load_config(a.profile, a.config, a.overrides, schema=schema, **where)
    if a.run_dir:
        cfg["run_dir"] = a.run_dir
    elif a.config is None and a.profile != cfg.get("profile", a.profile):
        cfg["run_dir"] = f"runs/{a.profile}"
    data = cfg.setdefault("data", {})
    if a.dataset:
        data["name"] = a.dataset
    if a.data_root:
        data["root"] = a.data_root
    if a.cache_dir:
        data["cache_dir"] = a.cache_dir
    if a.device:
        cfg["device"] = a.device
    if a.seeds is not None:
        cfg["seeds"] = parse_int_list(a.seeds, "--seeds")
    if a.time_budget is not None:
        cfg["time_budget"] = a.time_budget
    if a.resume is not None:
        cfg["resume"] = a.resume
    if a.no_progress:
        cfg["progress"] = False
    if a.reuse_only or a.command == "report":
        cfg["reuse_only"] = True
    return check_config(cfg, "command line", schema)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse(argv)
    from .config import ConfigError

    try:
        cfg = build_config(a)  # every check before anything is trained or written
    except ConfigError as e:
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
        study = Study(cfg)
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
    cmd = a.command
    steps = cfg.get("pipeline", ["teacher", "students", "fig1", "table1", "table3"]) if cmd == "run" else [cmd]
    study.plan(steps)
    study.echo_tables = cmd != "run"  # `run` prints all tables once at the end
    out = []
    for step in steps:
        if step == "data":
            _data_grid(study)
        elif step == "teacher":
            study.teacher()
        elif step == "teachers":
            study.teachers()
        elif step == "students":
            study.students()
        elif step == "train":
            loss = dict(cfg.get("loss", {}))
            row = methods.row_name(a.method, loss, loss)
            study.students([study._student(row, a.method, a.aug, a.seed, loss)])
        elif step == "fig1":
            out.append(study.fig1())
        elif step == "table1":
            out.append(study.table1())
        elif step == "table2":
            out.append(study.table2())
        elif step == "table3":
            out.append(study.table3())
        elif step in ("fig4", "fig5"):
            out.append(study.sweep(step))
        elif step == "report":
            study.report(a.out if cmd == "report" else None, a.readme if cmd == "report" else None)
        else:
            raise ValueError(f"unknown pipeline step {step!r}")
    return out


def _data_grid(study):
    if study.rank != 0 or not hasattr(study.data, "x_train"):
        return
    import numpy as np

    from .report import plt as _plt

    d = study.data
    k = min(20, d.num_classes)
    rows = []
    for c in range(k):
        idx = (d.y_train == c).nonzero()[:6, 0]
        rows.append(np.concatenate([d.x_train[i].permute(1, 2, 0).numpy() for i in idx], axis=1))
    w = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0))) for r in rows], axis=0)
    plt = _plt()
    scale = max(1, 64 // max(1, d.x_train.shape[-1]))  # small images: enlarge (nearest) to be seen
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    plt.imsave(study.out / "data.png", grid)
    study.log(f"sample grid (6 images of each of {k} classes): {study.out / 'data.png'}")


if __name__ == "__main__":
    main()
