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
Distributed: ``torchrun --nproc_per_node=N -m examples.kd.text <command> ...``.
"""

from __future__ import annotations

import sys


def main(argv=None):
    """``python -m examples.kd --domain text`` with ``argv``."""
    from ..__main__ import main as study_main

    study_main(["--domain", "text", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
