"""The text study's own steps: Table 4 and its report (the shared steps are
:mod:`examples.kd.steps`'). Importing this module does not import torch."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..steps import Request, step

__all__ = ["table4", "report"]


def _table4(study, entries, out):
    """Table 4 (best and, in ``out/last``, last-epoch accuracy) from ``entries``; its Markdown."""
    from .. import analysis

    title = f"Table 4 analogue ({study.cfg['data'].get('name', 'debian')}, Mixup-Transformer; {{}})"
    md = analysis.table1(entries, out, ["mixup"], name="table4",
                         text=analysis.TableText(title=title.format("best test accuracy")))
    md_last = analysis.table1(entries, out / "last", ["mixup"], metric="last_acc", name="table4", figure=False,
                              text=analysis.TableText(title=title.format("last-epoch test accuracy")))
    return md, md_last


@step("table4", domains=("text",), summary="Table 4 analogue (mean and 95 % interval over seeds, paired "
                                           "differences vs KD-aug)")
def table4(study, request=None):
    """Table 4 analogue: student accuracy per method (mean with a 95 % interval over seeds,
    paired differences to KD-aug), from the runs of the current configuration only."""
    entries = study.table1_entries()
    if study.rank != 0:
        return ""
    cfg = study.cfg
    md, md_last = _table4(study, entries, study.out)
    head = (f"Teacher {cfg['teacher']['arch']}: {study.teacher_acc:.2f}% -> student {cfg['student']['arch']} "
            f"({cfg['student']['epochs']} epochs); {study.data.num_classes} classes, "
            f"{study.data.size('train')} train / {study.data.size('test')} test sentences, "
            f"{len(cfg.get('seeds', [0]))} seed(s)\n\n")
    study.log(head + md + "\n" + md_last, echo=study.echo_tables)
    return head + md


def _setup(study, out):
    from .. import analysis

    d, m, o = study.cfg.get("data", {}), study.cfg.get("model", {}), study.cfg.get("optim", {})
    data = (f"{d.get('name', 'debian')}: {study.data.num_classes} classes, {study.data.size('train')} "
            f"train / {study.data.size('test')} test sentences, {m.get('max_len', 32)} tokens")
    optimiser = (f"{o.get('name', 'sgd')}, lr {o.get('lr')}, batch {o.get('batch_size')}, word "
                 f"embeddings {'frozen' if m.get('freeze_embeddings', True) else 'trained'}")
    return analysis.write_setup(study, out, data, extra=[("optimiser", optimiser)])


def _size(folders) -> str:
    size = sum(f.stat().st_size for p in folders for f in p.rglob("*") if f.is_file())
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.3g} MB"


@step("report", domains=("text",), summary="write the generated report from the finished runs, without training")
def report(study, request=None):
    """Write the generated report from the finished runs of the current settings, without
    training: ``text-setup``, ``text-table4``, ``text-fig1`` and ``text-measured`` as .md/.rst
    (+ .csv, .png) in ``request.out`` (default ``<run-dir>/report``); with ``request.readme``,
    rewrite that Markdown file's ``<!-- report:text-* -->`` blocks (the image study's are left
    alone).

    A missing run stops with :class:`~examples.kd.runs.RunMissing` naming what differs; Fig. 1
    is read from ``analysis/fig1.json`` and must carry the current teacher and settings.
    """
    from .. import analysis
    from .. import report as rep

    if study.rank != 0:
        return None
    request = request or Request()
    study.teacher(reuse_only=True)
    entries = study.table1_entries(reuse_only=True)
    md = {}
    out = Path(request.out) if request.out else study.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    md["text-setup"] = _setup(study, out)
    md["text-table4"], _ = _table4(study, entries, out)
    if "fig1" in study.cfg.get("pipeline", []):
        fig1 = analysis.saved_analysis(study.out / "fig1.json", study.stamp("fig1"), "fig1",
                                       prog="python -m examples.kd.text")
        md["text-fig1"] = rep.write_table(fig1["rows"], out / "fig1",
                                          "Fig. 1: teacher soft-label order vs hard-label order")
        shutil.copyfile(study.out / "fig1.png", out / "fig1.png")
    folders = [study.root / study.teacher_record["run_id"]] + [study.root / e["run_id"] for e in entries]
    md.update(analysis.write_run_facts(
        study, out, prog="python -m examples.kd.text", name="text-measured",
        extra=[f"The {len(folders)} run folders of this report (teacher and students) hold {_size(folders)}."]))
    if request.readme:  # only the text-* blocks: the image study's share the README
        rep.update_readme(request.readme, md, owns=lambda name: name.startswith("text-"))
    study.log(f"report written to {out}" + (f"; README blocks updated in {request.readme}" if request.readme else ""))
    return None
