"""The paper's Table 1 layout (teacher/student pairs as columns, plus Avg) and Table 2 (ImageNet
top-1 / top-5), from saved results.

Table 1 rows, as in the paper: **Teacher** (the test accuracy of the teacher's selected epoch, the
checkpoint the students are distilled from), **Student** (method ``ce``: the student alone, cross-entropy),
**KD**, then per augmentation **KD-aug, KD-i, KD-p**, then **CRD** and per augmentation
**CRD-aug, CRD-i, CRD-p**. Cells are mean ± std over seeds (sample std); **Avg** is the mean over
pairs of the per-pair means, shown only when every pair has the row. Accuracies are those of each
run's selected epoch (the best on the validation split; ``metric="best_acc"``: the best test epoch,
as the paper reports).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from .analysis import METRIC_TITLE, write_table
from . import methods

__all__ = ["table1_pairs", "table2", "pair_label", "row_specs"]

AUG_LABEL = {"mixup": "Mixup", "cutmix": "CutMix", "none": ""}
LABEL = {m.name: m.label for m in methods.METHODS.values()}
SINGLE_VIEW = methods.names(mixes=False)  # trained on un-mixed images: one row, no augmentation


def _row_groups():
    """Table 1's row groups: runs of consecutive methods (in :data:`examples.kd.methods.METHODS`'
    order) of one family that mix alike (Student; KD; KD-aug, KD-i, KD-p; CRD; ...)."""
    groups = []
    for m in methods.METHODS.values():
        if groups and (groups[-1][0].family, groups[-1][0].mixes) == (m.family, m.mixes):
            groups[-1].append(m)
        else:
            groups.append([m])
    return tuple(tuple(m.name for m in g) for g in groups)


_ORDER = _row_groups()


def pair_label(teacher: str, student: str) -> str:
    return f"{teacher} → {student}"


def row_specs(methods, augs):
    """``[(method, aug, label)]`` in the paper's row order, for the methods that were run."""
    rows = []
    for group in _ORDER:
        ms = [m for m in group if m in methods]
        if not ms:
            continue
        if ms[0] in SINGLE_VIEW:
            rows += [(m, "none", LABEL[m]) for m in ms]
        else:
            rows += [(m, a, f"{LABEL[m]} ({AUG_LABEL[a]})") for a in augs for m in ms]
    return rows


def _ms(v):
    v = np.asarray(v, float)
    return f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2f}"


def _student_runs(results, metric):
    acc = defaultdict(dict)  # (teacher, student, method, aug) -> seed -> value
    for r in results:
        if r.get("method") in LABEL and not r.get("tag"):
            aug = "none" if r["method"] in SINGLE_VIEW else r["aug"]
            t = "*" if r["method"] == "ce" else r.get("teacher_arch", "")  # the student alone: any pair
            acc[(t, r["arch"], r["method"], aug)][r["seed"]] = r.get(metric, float("nan"))
    return acc


def table1_pairs(results: list[dict], pairs, methods, augs, teacher_acc: dict, out_dir: Path,
                 metric="sel_acc") -> str:
    """Table 1 in the paper's layout; writes ``table1_pairs.{md,csv,json}``.

    ``pairs`` is a list of ``(teacher_arch, student_arch)``; ``teacher_acc`` maps a teacher arch to
    its accuracy (the Teacher row). Results whose ``teacher_arch`` is empty (older runs) count for
    the first pair.
    """
    acc = _student_runs(results, metric)
    first = tuple(pairs[0])
    cols = [pair_label(t, s) for t, s in pairs]
    table, raw = [], []
    trow = {"": "Teacher"}
    tvals = [teacher_acc.get(t) for t, _ in pairs]
    for c, v in zip(cols, tvals):
        trow[c] = f"{v:.2f}" if v is not None else "—"
    trow["Avg"] = f"{np.mean(tvals):.2f}" if all(v is not None for v in tvals) else "—"
    table.append(trow)
    raw.append(dict(row="Teacher", values=dict(zip(cols, tvals))))
    for m, a, label in row_specs(methods, augs):
        row, means, vals = {"": label}, [], {}
        for (t, s), c in zip(pairs, cols):
            tk = "*" if m == "ce" else t
            runs = acc.get((tk, s, m, a)) or ((t, s) == first and acc.get(("", s, m, a))) or {}
            if runs:
                v = [runs[k] for k in sorted(runs)]
                row[c] = _ms(v)
                means.append(float(np.mean(v)))
                vals[c] = v
            else:
                row[c] = "—"
        row["Avg"] = f"{np.mean(means):.2f}" if len(means) == len(pairs) else "—"
        table.append(row)
        raw.append(dict(row=label, method=m, aug=a, values=vals))
    md = write_table(table, out_dir / "table1_pairs",
                     f"Table 1 ({METRIC_TITLE.get(metric, metric)} %, mean ± std over seeds)")
    (out_dir / "table1_pairs.json").write_text(json.dumps(raw, indent=1))
    return md


def table2(results: list[dict], pair, methods, augs, teacher: dict | None, out_dir: Path) -> str:
    """Table 2 (ImageNet): top-1 and top-5 accuracy of the selected epoch (the best on the
    validation split), mean ± std over seeds; writes ``table2.{md,csv,json}``. ``teacher`` is the
    teacher's result record (or None)."""
    t_arch, s_arch = pair
    top1 = _student_runs(results, "sel_acc")
    top5 = _student_runs(results, "sel_acc5")
    rows, raw = [], []
    if teacher:
        rows.append({"": f"Teacher ({t_arch})", "top-1 (%)": f"{teacher['sel_acc']:.2f}",
                     "top-5 (%)": f"{teacher.get('sel_acc5', float('nan')):.2f}", "seeds": 1})
        raw.append(dict(row="Teacher", top1=[teacher["sel_acc"]], top5=[teacher.get("sel_acc5")]))
    for m, a, label in row_specs([m for m in methods if not m.startswith("crd")], augs):
        key = ("*" if m == "ce" else t_arch, s_arch, m, a)
        r1 = top1.get(key) or top1.get(("", s_arch, m, a)) or {}
        r5 = top5.get(key) or top5.get(("", s_arch, m, a)) or {}
        if not r1:
            continue
        v1, v5 = [r1[k] for k in sorted(r1)], [r5[k] for k in sorted(r5)]
        rows.append({"": label if m != "ce" else f"Student ({s_arch})", "top-1 (%)": _ms(v1),
                     "top-5 (%)": _ms(v5), "seeds": len(v1)})
        raw.append(dict(row=label, method=m, aug=a, top1=v1, top5=v5))
    md = write_table(rows, out_dir / "table2", f"Table 2: {pair_label(t_arch, s_arch)}, top-1 / top-5 accuracy "
                                               f"at the validation-selected epoch")
    (out_dir / "table2.json").write_text(json.dumps(raw, indent=1))
    return md
