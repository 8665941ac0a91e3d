"""Analysis: the paper's Fig. 1a/1b, Table 1, Fig. 4, Fig. 5 and Table 3 from saved results.

Every function writes Markdown + reST + CSV (+ JSON) tables and PNG figures (matplotlib, Agg)
into an output folder (via :mod:`examples.kd.report`) and returns the Markdown it wrote. The
functions take plain entries (dicts), not run folders: the caller selects the records of the
current configuration.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import methods
from .report import bar_figure, fmt_ci, mean_ci, paired, write_table
from .report import plt as _plt

__all__ = ["TableText", "order_stats", "table1", "table1_selected", "sweep_figure", "write_table", "fig1_figure", "timing_table", "write_report",
           "write_setup", "saved_analysis", "ROW_LABEL"]



def _analogue_rows() -> dict:
    """The main pair's Table 1 analogue rows, in order: the student alone and the KD family
    (:mod:`examples.kd.methods`), each method's control row after it (``kd-i-raw``: KD-i's extra
    beta-weighted term against the raw teacher, ``calibrated_fraction = 0``, so KD-i minus it is
    the effect of calibration alone)."""
    rows = {}
    for m in methods.METHODS.values():
        if m.family in ("student", "kd"):
            rows[m.name] = m.long_label or m.label
            if m.control is not None:
                rows[m.control[0]] = m.control[1]
    return rows


#: row -> label of the main pair's Table 1 analogue, in order
ROW_LABEL = _analogue_rows()
PANEL_LABEL = {"ce": "CE\n(student alone)", "kd-i-raw": "KD-i\nraw (control)"}  # shorter, for the bars
UNMIXED_ROWS = methods.names(("student", "kd"), mixes=False)  # one row for every augmentation
METHOD_LABEL = {m.name: m.label for m in methods.METHODS.values()}
AUG_LABEL = {"none": "—", "mixup": "Mixup", "cutmix": "CutMix"}
#: what each accuracy of a run's record is (all on the test set): titles and column headings
METRIC_TITLE = {"sel_acc": "test accuracy at the validation-selected epoch", "last_acc": "last-epoch test accuracy",
                "best_acc": "best test accuracy, as the paper reports"}
SEL_AXIS = "student test accuracy (%)\nat the val-selected epoch"
METRIC_HEADER = {"sel_acc": "val-selected epoch (%)", "last_acc": "last epoch (%)",
                 "best_acc": "best test epoch, as the paper reports (%)"}


# ----------------------------------------------------------------------------- Fig. 1
def order_stats(logits: torch.Tensor, labels: torch.Tensor, lam: torch.Tensor) -> dict:
    """Agreement between a teacher's soft-label order and the hard-label order (Fig. 1).

    For a row ``[l0, l1]`` the hard label ranks ``l0 > l1 > every other class`` (the pair
    ``(l0, l1)`` is unknown when ``lam == 0.5``); for ``[l, -1]``, ``l > every other``. Over these
    known pairs, Kendall's tau = (concordant - discordant) / pairs (ties in the logits count 0).

    Returns per-sample arrays: ``tau``; ``top2_any`` (an original label is in the teacher's
    top-2, the paper's Fig. 1b); ``top2`` (every original label is in the top-2); ``holds`` (the
    full order holds: no violation).
    """
    z = logits.double()
    b, c = z.shape
    l0 = labels[:, 0]
    has2 = labels[:, 1] >= 0
    l1 = labels[:, 1].clamp(min=0)
    z0 = z.gather(1, l0[:, None])
    z1 = z.gather(1, l1[:, None])
    other = torch.ones_like(z, dtype=torch.bool)
    other.scatter_(1, l0[:, None], False)
    other[has2] = other[has2].scatter(1, l1[has2][:, None], False)
    s0 = (torch.sign(z0 - z) * other).sum(1)
    s1 = (torch.sign(z1 - z) * other).sum(1)
    n_other = other.sum(1).double()
    known01 = has2 & (lam.double() != 0.5)
    s01 = torch.sign(z0 - z1)[:, 0] * known01
    conc = s0 + torch.where(has2, s1, torch.zeros_like(s1)) + s01
    pairs = n_other * (1 + has2.double()) + known01.double()
    tau = conc / pairs.clamp_min(1)
    top2 = z.topk(min(2, c), dim=1).indices
    in0 = (top2 == l0[:, None]).any(1)
    in1 = (top2 == l1[:, None]).any(1) | ~has2
    from treeiso.distill import order_penalty

    holds = order_penalty(z, labels, on="logits") == 0
    in1_strict = (top2 == l1[:, None]).any(1) & has2
    return dict(tau=tau.numpy(), top2_any=(in0 | in1_strict).numpy(), top2=(in0 & in1).numpy(),
                holds=holds.numpy())


def fig1_figure(stats: dict, out_dir: Path, stamp: dict | None = None) -> str:
    """Fig. 1a (Kendall tau) and Fig. 1b (share with original labels in the top-2) + a table.

    ``stamp`` (what the numbers depend on) is saved in ``fig1.json`` for the report's check."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind, s in stats.items():
        rows.append({"samples": kind, "n": len(s["tau"]),
                     "kendall_tau_mean": f"{np.mean(s['tau']):.3f}",
                     "kendall_tau_median": f"{np.median(s['tau']):.3f}",
                     "a_label_in_top2_%": f"{100 * np.mean(s['top2_any']):.1f}",
                     "all_labels_in_top2_%": f"{100 * np.mean(s['top2']):.1f}",
                     "order_violated_%": f"{100 * (1 - np.mean(s['holds'])):.1f}"})
    md = write_table(rows, out_dir / "fig1", "Fig. 1: teacher soft-label order vs hard-label order")
    (out_dir / "fig1.json").write_text(json.dumps({"stamp": stamp or {}, "rows": rows}, indent=1))
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    kinds = list(stats)
    ax[0].boxplot([stats[k]["tau"] for k in kinds], showfliers=False)
    ax[0].set_xticks(range(1, len(kinds) + 1), kinds)
    ax[0].set_ylabel("Kendall tau (known pairs)")
    ax[0].set_title("(a) soft vs hard label order")
    pos = np.arange(len(kinds))
    ax[1].bar(pos - 0.2, [100 * np.mean(stats[k]["top2_any"]) for k in kinds], 0.4, label="an original label")
    ax[1].bar(pos + 0.2, [100 * np.mean(stats[k]["top2"]) for k in kinds], 0.4, label="all original labels")
    ax[1].set_xticks(pos, kinds)
    ax[1].set_ylabel("% samples")
    ax[1].set_ylim(0, 119)  # room for the legend above the bars
    ax[1].set_yticks(range(0, 101, 20))
    ax[1].set_title("(b) original labels in the teacher's top-2")
    ax[1].legend(fontsize=8, loc="upper center", ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(out_dir / "fig1.png", dpi=120)
    plt.close(fig)
    return md


# ----------------------------------------------------------------------------- Table 1
def _collect(entries, metrics):
    """``acc[metric][(row, aug)][seed]`` and ``viol[(row, aug)]`` from Table 1's entries."""
    acc = {m: defaultdict(dict) for m in metrics}
    viol = defaultdict(list)
    for e in entries:
        key = (e["row"], "none" if e["row"] in UNMIXED_ROWS else e["aug"])
        for m in metrics:
            acc[m][key][e["seed"]] = float(e[m])
        viol[key].append(float(e.get("violation", 0.0)))
    return acc, viol


def _deltas(rk, a, vals, acc, augs):
    """The paired-difference cells of one row: vs KD-aug (of each augmentation, for KD) and, for
    KD-i, vs its control; with the raw pairs."""
    vs_aug = [paired(vals, acc.get(("kd-aug", b), {})) for b in ([a] if a != "none" else augs)]
    d_aug = " / ".join(fmt_ci(p["mean"], p["half"], signed=True) for p in vs_aug) if rk != "kd-aug" else "—"
    ctrl = paired(vals, acc.get(("kd-i-raw", a), {})) if rk == "kd-i" else None
    cells = {"Δ vs KD-aug": d_aug if vs_aug and vs_aug[0]["n"] else "—",
             "Δ vs control": fmt_ci(ctrl["mean"], ctrl["half"], signed=True) if ctrl and ctrl["n"] else "—"}
    return cells, vs_aug, ctrl


@dataclass(frozen=True)
class TableText:
    """The words of a :func:`table1`: its ``title`` (default "Table 1 analogue (<metric>)"), the
    heading of the metric's column (``header``), a sentence added to its note (``note_extra``)
    and the figure's axis label (``ylabel``, default ``student <header>``)."""

    title: str | None = None
    header: str | None = None
    note_extra: str = ""
    ylabel: str | None = None


def table1(entries: list[dict], out_dir: Path, augs=("mixup", "cutmix"), metric="best_acc", name="table1",
           columns=(), figure=True, text: TableText | None = None) -> str:
    """Table 1 analogue from ``entries`` (dicts with ``row`` in :data:`ROW_LABEL`, ``aug``, ``seed``,
    ``metric``, ``violation``): mean with a 95 % t interval over seeds, the paired difference to
    KD-aug of the same augmentation and seed (95 % interval), and for KD-i the paired difference to
    its control. KD uses no mixing; its row appears once. Writes ``<name>.{md,rst,csv,json}`` and,
    with ``figure``, ``<name>.png`` (the text study's Table 4: ``name="table4"`` and its own ``title``).

    ``columns``: ``(header, key)`` pairs of further accuracies shown as mean ± interval (the
    differences use ``metric``); ``text``: the title, headings and labels (:class:`TableText`).
    """
    text = text or TableText()
    title, note_extra, ylabel = text.title, text.note_extra, text.ylabel
    acc, viol = _collect(entries, [metric] + [k for _, k in columns])
    main = acc[metric]
    mname = metric.replace("_", " ")
    header = text.header or f"{mname} (%)"
    rows, raw, panels = [], [], {AUG_LABEL[a]: [] for a in augs}
    for rk in ROW_LABEL:
        for a in (["none"] if rk in UNMIXED_ROWS else augs):
            key = (rk, a)
            if key not in main:
                continue
            vals = main[key]
            m, h = mean_ci(vals.values())
            cells, vs_aug, ctrl = _deltas(rk, a, vals, main, augs)
            rows.append({"method": ROW_LABEL[rk], "aug": AUG_LABEL[a], "seeds": len(vals), header: fmt_ci(m, h),
                         **{hd: fmt_ci(*mean_ci(acc[k][key].values())) for hd, k in columns}, **cells,
                         "teacher order violated (%)": f"{100 * np.mean(viol[key]):.1f}"})
            raw.append(dict(row=rk, aug=a, seeds=list(vals), values=list(vals.values()), mean=m, ci95=h,
                            paired_vs_kd_aug=vs_aug, paired_vs_control=ctrl, violation=float(np.mean(viol[key])),
                            **{k: list(acc[k][key].values()) for _, k in columns}))
            for b in ([a] if a != "none" else augs):
                panels[AUG_LABEL[b]].append((PANEL_LABEL.get(rk, ROW_LABEL[rk]), m, h, list(vals.values())))
    unmixed = "KD's and CE's" if any(r["row"] == "ce" for r in raw) else "KD's"
    note = (f"Mean ± 95 % t-interval half width over seeds; Δ: paired over seeds ({unmixed} Δ: vs KD-aug with "
            f"{' / '.join(AUG_LABEL[a] for a in augs)}).{note_extra}")
    if any(r["row"] == "kd-i-raw" for r in raw):
        note += (" Control: KD-i's extra β-weighted term against the raw teacher (calibrated fraction 0); "
                 "KD-i's Δ vs control is the effect of the calibration alone.")
    else:  # no control row was trained: no column of dashes, no note about it
        for r in rows:
            del r["Δ vs control"]
    md = write_table(rows, out_dir / name, title or f"Table 1 analogue ({METRIC_TITLE.get(metric, mname)})", note)
    (out_dir / f"{name}.json").write_text(json.dumps(raw, indent=1))
    if figure and any(panels.values()):
        bar_figure({k: v for k, v in panels.items() if v}, out_dir / f"{name}.png", ylabel or f"student {header}",
                   "Table 1: mean and 95 % interval over seeds (dots: seeds)" if title is None else
                   f"{title.split(' (')[0]}:\nmean and 95 % interval over seeds (dots: seeds)")
    return md


def table1_selected(entries: list[dict], out_dir: Path, augs) -> tuple[str, str]:
    """The image study's Table 1: the test accuracy at each run's validation-selected epoch (the
    differences use it), at its last epoch, and at its best test epoch labelled as the paper's
    choice (``<out_dir>/table1.*``); the same with differences of the last epoch in
    ``<out_dir>/last/``. Returns both Markdown tables."""
    cols = [(METRIC_HEADER["last_acc"], "last_acc"), (METRIC_HEADER["best_acc"], "best_acc")]
    note = (" Accuracies on the test set: at the epoch selected on the validation split (Δs use it), at the "
            "last epoch, and at the best test epoch, which is what the paper reports (chosen on the test set "
            "itself, so optimistic).")
    md = table1(entries, out_dir, augs, metric="sel_acc", columns=cols,
                text=TableText(header=METRIC_HEADER["sel_acc"], note_extra=note, ylabel=SEL_AXIS))
    md_last = table1(entries, out_dir / "last", augs, metric="last_acc", figure=False,
                     text=TableText(header=METRIC_HEADER["last_acc"]))
    return md, md_last


# ----------------------------------------------------------------------------- Figs. 4 and 5
def sweep_figure(entries: list[dict], out_dir: Path, name: str, xlabel: str, title: str) -> str:
    """Accuracy (mean with a 95 % t interval over seeds) against a swept loss setting (Fig. 4, 5).

    ``entries``: dicts with ``x`` (the setting), ``seed`` and ``sel_acc`` (the test accuracy at
    the run's validation-selected epoch).
    """
    by = defaultdict(dict)
    for e in entries:
        by[float(e["x"])][e["seed"]] = float(e["sel_acc"])
    xs = sorted(by)
    cis = [mean_ci(by[x].values()) for x in xs]
    col = f"test acc, {METRIC_HEADER['sel_acc']}"
    rows = [{xlabel: f"{x:g}", "seeds": len(by[x]), col: fmt_ci(m, h)} for x, (m, h) in zip(xs, cis)]
    md = write_table(rows, out_dir / name, title.replace("\n", " "), "Mean ± 95 % t-interval half width over seeds.")
    (out_dir / f"{name}.json").write_text(json.dumps({f"{x:g}": by[x] for x in xs}, indent=1))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    ax.errorbar(xs, [m for m, _ in cis], yerr=[h if math.isfinite(h) else 0 for _, h in cis], marker="o",
                capsize=3)
    for x in xs:
        ax.scatter([x] * len(by[x]), list(by[x].values()), s=8, color="grey", alpha=0.6, zorder=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(SEL_AXIS)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}.png", dpi=120)
    plt.close(fig)
    return md


# ----------------------------------------------------------------------------- Table 3
def timing_table(times: dict, train_medians: dict, out_dir: Path, stamp: dict | None = None) -> str:
    """Table 3: median training-step time per (method, augmentation) as a ratio to KD.

    ``times``: (method, aug) -> step times from the interleaved benchmark; ``train_medians``:
    (method, aug) -> median step time of the training runs. ``stamp`` is saved in ``table3.json``.
    """
    ref = float(np.median(times[("kd", "none")]))
    trk = train_medians.get(("kd", "none"))
    rows = []
    for (m, a), ts in times.items():
        tr = train_medians.get((m, a))
        rows.append({"method": METHOD_LABEL.get(m, m), "aug": AUG_LABEL.get(a, a),
                     "median step (ms)": f"{1e3 * np.median(ts):.1f}", "ratio to KD": f"{np.median(ts) / ref:.3f}",
                     "ratio to KD (training runs)": f"{tr / trk:.3f}" if tr and trk else "—"})
    augs = sorted({a for _, a in times if a != "none"}, key=["mixup", "cutmix"].index)
    ratios = {a: float(np.median(times[("kd-i", a)]) / np.median(times[("kd-aug", a)])) for a in augs
              if ("kd-i", a) in times and ("kd-aug", a) in times}
    note = ("KD-i / KD-aug = " + ", ".join(f"{r:.3f} ({AUG_LABEL[a]})" for a, r in ratios.items()) +
            " (the paper's per-sample loop: 3.33 / 1.02). Interleaved benchmark: the combinations take turns "
            "on the same batches, each step the training loop's own `train_step`.")
    md = write_table(rows, out_dir / "table3", "Table 3: training-step time relative to KD", note)
    (out_dir / "table3.json").write_text(json.dumps(
        {"stamp": stamp or {}, "rows": rows, "kd_i_over_kd_aug": ratios, "note": note,
         "times": {f"{m}/{a}": list(map(float, t)) for (m, a), t in times.items()}}, indent=1))
    return md


# ----------------------------------------------------------------------------- the report
def saved_analysis(path: Path, stamp: dict, command: str, prog: str = "python -m examples.kd") -> dict:
    """The rows an analysis step saved in ``path`` (``fig1.json``, ``table3.json``), checked to
    carry ``stamp`` (the teacher and analysis settings they were computed with); otherwise a
    ``RuntimeError`` naming the command ``prog command`` that recomputes them."""
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `{prog} {command}` (same options) first")
    d = json.loads(path.read_text())
    if not isinstance(d, dict) or d.get("stamp", {}).get("digest") != stamp["digest"]:
        raise RuntimeError(f"{path} was made with other settings (teacher or analysis options): run "
                           f"`{prog} {command}` (same options) first")
    return d


_SELECTED_ON = {"val": "selected on the validation split", "test": "the best test epoch; no validation split",
                "given weights": "given weights, not trained"}


def _selected_text(rec: dict) -> str:
    """``test accuracy 84.10 % at epoch 27 (selected on the validation split)`` of a run's record."""
    on = rec.get("selected_on", "test")
    return f"test accuracy {rec['sel_acc']:.2f} % at epoch {rec['sel_epoch']} ({_SELECTED_ON.get(on, on)})"


def image_setup_rows(study) -> list[tuple[str, str]]:
    """The image study's setup rows beyond :func:`write_setup`'s: the data, the validation split
    and the thread count (the last two are part of every run's identity)."""
    d, data = study.cfg.get("data", {}), study.data
    name = d.get("name", "glyphs")
    where = f" ({data.source['folder']})" if getattr(data, "source", {}).get("folder") else ""
    val = data.size("val") if "val" in data.splits else 0
    shape = tuple(data.x_train.shape[-2:]) if hasattr(data, "x_train") else None
    native = getattr(data, "source", {}).get("native")
    px = f", {shape[0]}x{shape[1]}" if shape else ""
    if native and shape and tuple(native) != shape:
        px += f" (stored {native[0]}x{native[1]}, area-averaged)"
    split = data.identity.get("split", {})
    threads = study.teacher_record.get("identity", {}).get("threads")
    rows = [("data", f"{name}{where}: {data.num_classes} classes, {data.size('train')} train / {val} validation / "
                     f"{data.size('test')} test images{px}"),
            ("model selection", f"validation split: {100 * split.get('val_fraction', 0):g} % of each class of the "
                                f"training {'file' if name == 'idx' else 'set'} ({val} images, never trained on; "
                                f"data.seed {split.get('seed', 0)}); every run, the teacher included, reports the test "
                                f"accuracy of its best validation epoch" if val else
                                "no validation split (data.val_fraction 0): the best test epoch, as the paper")]
    if threads is not None:
        rows.append(("threads", f"{threads} torch thread(s) on the CPU (part of every run's identity)"))
    return rows


def write_setup(study, out: Path, data: str, extra: Sequence[tuple[str, str]] = ()) -> str:
    """The report's ``setup`` table of ``study`` (the data as described by ``data``, teacher,
    students, the ``(name, value)`` rows ``extra``, the loss settings the reported methods use,
    the teacher's run) as ``setup.md`` and ``setup.rst`` in ``out``; returns the Markdown."""
    from .methods import loss_params
    from .report import md_table, rst_table

    cfg = study.cfg
    # only the loss settings some reported method uses (a KD-family run has no CRD settings)
    loss = cfg.get("loss", {})
    used = set().union(*(loss_params(m, loss) for m in cfg.get("methods", [])))
    setup = [{"": "data", "value": data},
             {"": "teacher", "value": f"{cfg['teacher']['arch']}, {cfg['teacher']['epochs']} epochs, "
                                      f"{_selected_text(study.teacher_record)}"},
             {"": "students", "value": f"{cfg['student']['arch']}, {cfg['student']['epochs']} epochs, seeds "
                                       f"{', '.join(map(str, cfg.get('seeds', [0])))}"},
             *({"": name, "value": value} for name, value in extra),
             {"": "loss", "value": ", ".join(f"{k} {v}" for k, v in loss.items() if k in used)},
             {"": "teacher run", "value": study.teacher_record["run_id"]}]
    md = md_table(setup)
    (out / "setup.md").write_text(md)
    (out / "setup.rst").write_text(rst_table(setup, title="Setup"))
    return md


def sweep_labels(name: str, aug: str) -> tuple[str, str]:
    """``(x-axis label, title)`` of Fig. 4 (``name="fig4"``) or Fig. 5 swept with ``aug``."""
    label = {"mixup": "Mixup", "cutmix": "CutMix"}[aug]
    if name == "fig4":
        return "calibrated fraction", f"Fig. 4: KD-i ({label}) accuracy\nvs fraction of calibrated samples"
    return "sigma", f"Fig. 5: KD-p ({label}) accuracy vs sigma"


def write_report(study, out: Path, entries: list, sweeps: dict, stamps: dict) -> dict:
    """The generated report of ``study`` in ``out`` from records only: ``setup``, ``table1``
    (``entries``: the main pair's Table 1 entries), ``fig1`` and ``table3`` (read from
    ``analysis/``, checked against ``stamps``) and the sweeps (``sweeps``: name -> entries) as
    .md/.rst (+ .csv, .png). Returns name -> Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    cfg, md = study.cfg, {}
    (_, data), *extra = image_setup_rows(study)
    md["setup"] = write_setup(study, out, data, extra)
    md["table1"], _ = table1_selected(entries, out, cfg.get("augs", ["mixup", "cutmix"]))
    for name, cmd in (("fig1", "fig1"), ("table3", "table3")):
        if name not in cfg.get("pipeline", []):
            continue
        saved = saved_analysis(study.out / f"{name}.json", stamps[name], cmd)
        title = ("Fig. 1: teacher soft-label order vs hard-label order" if name == "fig1"
                 else "Table 3: training-step time relative to KD")
        md[name] = write_table(saved["rows"], out / name, title, saved.get("note", ""))
        if name == "fig1":
            shutil.copyfile(study.out / "fig1.png", out / "fig1.png")
    aug = cfg.get("analysis", {}).get("sweep_aug", "mixup")
    for name, sweep in sweeps.items():
        md[name] = sweep_figure(sweep, out, name, *sweep_labels(name, aug))
    return md


def write_run_facts(study, out: Path, prog: str = "python -m examples.kd", extra: Sequence[str] = (),
                    name: str = "measured", convergence: Sequence[dict] = ()) -> dict:
    """``measured``: the last recorded wall time of ``prog run`` with the current settings, KD's
    convergence check (``convergence``: :meth:`~examples.kd.experiment.Study.convergence_entries`,
    accuracy at the configured epochs vs 3x as many) when measured, then the sentences ``extra``. Writes ``measured.md`` / ``.rst`` in ``out``; returns ``{name: md}``."""
    from .report import md_table, rst_table
    from .runs import read_records

    lines, rows = [], []
    t = [r for r in read_records(study.root / "timing.jsonl") if r.get("settings") == study.settings_digest()]
    if t:
        r = t[-1]
        lines.append(f"Wall time of `{prog} run` with these settings: {r['seconds'] / 60:.1f} min "
                     f"({r['seconds']:.0f} s, started {r['utc_start']}, {r['threads']} thread(s) on {r['cpus']} "
                     f"cores, load average {r['load_start'][0]:.2f} at start and {r['load_end'][0]:.2f} at the end).")
    conv = list(convergence)
    if conv:
        e0, e1 = conv[0]["epochs"]
        p = paired({c["seed"]: c["long"] for c in conv}, {c["seed"]: c["short"] for c in conv})
        rows = [{"seed": c["seed"], f"KD, {e0} epochs (%)": f"{c['short']:.2f}",
                 f"KD, {e1} epochs (%)": f"{c['long']:.2f}",
                 "difference": f"{c['long'] - c['short']:+.2f}"} for c in conv]
        lines.append(f"Convergence check: the same KD student trained {e1} instead of {e0} epochs gains "
                     f"{fmt_ci(p['mean'], p['half'], signed=True)} points of test accuracy at its validation-selected "
                     f"epoch (paired over {p['n']} seed(s), 95 % "
                     f"interval), largest gain {max(c['long'] - c['short'] for c in conv):+.2f}.")
    lines += list(extra)
    if not lines:
        return {}
    md = "\n\n".join(lines) + "\n" + ("\n" + md_table(rows) if rows else "")
    rst = "\n\n".join(lines).replace("`", "``") + "\n" + ("\n" + rst_table(rows) if rows else "")
    (out / "measured.md").write_text(md)
    (out / "measured.rst").write_text(rst)
    return {name: md}
