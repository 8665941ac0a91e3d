"""Command line: ``python -m examples.kd.text [command] [--profile P] [options] [key=value ...]``.

The paper's Table 4 analogue: a fine-tuned all-MiniLM-L6-v2 teacher (6 layers) distilled into a
3-layer student initialised from its pretrained layers 0, 2, 4 (the BERT -> DistilBERT recipe),
with Mixup-Transformer's mixing of sentence representations. Nothing is downloaded.

Commands (finished training runs are reused, missing ones trained first):

  run      (default) the profile's whole pipeline, then print the tables
  teacher  fine-tune the teacher
  students train every student (KD, KD-aug, KD-i, KD-p x seeds)
  fig1     Fig. 1a/1b on text (teacher order vs hard-label order, original vs mixed)
  table4   Table 4 analogue (mean and 95 % interval over seeds, paired differences vs KD-aug)
  report   write the generated report (setup, Table 4, Fig. 1, wall time; .md/.rst/.csv/.png) from
           the finished runs of the current settings, without training: --out DIR (default
           <run-dir>/report), --readme FILE rewrites its <!-- report:text-NAME --> blocks

Profiles: quick (default), paper (``--profile``), or ``--config FILE.yaml``.
Data: ``--dataset debian`` (default; this machine's package index), ``--dataset csv
--data-root DIR`` (DIR/train.csv, DIR/test.csv with header text,label), ``--dataset tiny``.
"""

from __future__ import annotations

import os
import sys
import time

COMMANDS = ("run", "teacher", "students", "fig1", "table4", "report")


def main(argv=None):
    from ..__main__ import build_config, parse
    from .config import CONFIG_DIR, PROFILES, SCHEMA

    a = parse(argv, prog="python -m examples.kd.text", doc=__doc__, commands=COMMANDS,
              profiles="quick | paper", datasets="debian | csv | tiny", image_options=False)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.exit("error: the text study runs in one process (torchrun is not supported); use --device cuda for a GPU")
    try:
        cfg = build_config(a, config_dir=CONFIG_DIR, profiles=PROFILES, schema=SCHEMA)
        if a.config is None and not a.run_dir and a.profile != cfg.get("profile", a.profile):
            cfg["run_dir"] = f"runs/text-{a.profile}"
        from ..train import setup_determinism
        from .experiment import TextStudy

        setup_determinism()
        t0 = time.perf_counter()
        load0, utc0 = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        study = TextStudy(cfg)
    except (FileNotFoundError, ImportError, ValueError) as e:  # config, package, data, bad CSV: one line
        sys.exit(f"error: {e}")
    from ..train import NonFiniteLoss, RunMissing

    cmd = a.command
    steps = cfg.get("pipeline", ["teacher", "students", "fig1", "table4"]) if cmd == "run" else [cmd]
    study.echo_tables = cmd != "run"
    out = []
    try:
        for step in steps:
            if step == "teacher":
                study.teacher()
            elif step == "students":
                study.students()
            elif step == "fig1":
                out.append(study.fig1())
            elif step == "table4":
                out.append(study.table4())
            elif step == "report":
                study.report(a.out, a.readme)
    except (NonFiniteLoss, RunMissing) as e:
        sys.exit(f"error: {e}")
    except RuntimeError as e:
        if cmd != "report":
            raise
        sys.exit(f"error: {e}")  # a missing/stale analysis file or README block: one line
    if cmd == "run":  # the wall time of a whole pipeline, for the report, then the tables
        study.record_wall_time(time.perf_counter() - t0, utc0, load0, os.getloadavg())
        print("\n" + "=" * 78)
        print("\n\n".join(o for o in out if o))
    print(f"\n[{cmd}] done in {time.perf_counter() - t0:.0f}s; outputs in {study.root}/analysis")


if __name__ == "__main__":
    main()
