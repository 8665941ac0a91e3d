"""Turn ``benchmarks/results/*.json`` into reST tables and log-log plots.

Used two ways:

* as a Sphinx extension (listed in ``docs/conf.py``): on ``builder-inited`` it
  writes ``docs/generated/bench/<name>.inc`` (plus ``.png`` plots) for every
  known results file, which ``docs/benchmarks.rst`` includes;
* as a script, ``python docs/_ext/bench_pages.py [--out DIR]``, to look at the
  output without building the docs.

A missing or unreadable results file never fails the build: its page then says
"not measured yet" (or why it could not be read).

Every results file has one layout, ``treeiso-bench/1``, written by
``benchmarks/_record.py`` (its docstring is the reference): a ``machine`` and
``settings`` mapping, ``records`` (``family``, ``n``, ``rows``, ``impl``,
``median_s``) and ``scalars``; ``skipped`` says why nothing was measured. A
file in any other layout is reported as unreadable. One table (and one plot
panel) per family; the first implementation of a family is its reference, and
the number in brackets after another implementation's time is the reference's
time divided by that one's: below 1 the reference (treeiso) is faster.
Implementations whose name does not start with "treeiso" are peers; every size
at which a peer is faster is listed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections import defaultdict
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = DOCS / "generated" / "bench"

#: results file stem -> (title, who produces it, how)
SOURCES = {
    "cpu": ("CPU: treeiso (NumPy/Numba) against Higra and SciPy",
            "python benchmarks/bench_cpu.py"),
    "threads": ("CPU: rows on 1 and 2 threads (bench_cpu.py --parts threads)",
                "python benchmarks/bench_cpu.py --parts threads --out "
                "benchmarks/results/threads.json"),
    "torch": ("PyTorch: fit_topk and batched chains (bench_torch.py)",
              "python benchmarks/bench_torch.py"),
    "torch_threads": ("PyTorch: fit_topk on CPU tensors, rows on 1 and 2 threads",
                      "python benchmarks/bench_torch.py --threads 2 --parts threads --out "
                      "benchmarks/results/torch_threads.json"),
    "robust": ("CPU: L1, quantile and L-infinity against model-diagnostics and HiGHS",
               "python benchmarks/bench_robust.py"),
    "chain_vs_scipy": ("CPU: a chain in order against SciPy, sampled in turn",
                       "python benchmarks/chain_vs_scipy.py"),
    "compare": ("Before and after: a base revision against the working tree, same sitting",
                "python benchmarks/compare_revisions.py --base REV"),
    "gpu": ("PyTorch on a CUDA device (gpu_check.py)",
            "python benchmarks/gpu_check.py --out benchmarks/results/gpu.json"),
}

SCHEMA = "treeiso-bench/1"
REFERENCE = "treeiso"


# --------------------------------------------------------------------------- reading
def load(path: Path):
    """Parse one results file into ``(meta, scalars, rows)``.

    ``meta`` merges the file's ``machine`` and ``settings``; ``rows`` is a list of
    dicts with keys ``case`` (the family), ``impl``, ``n`` (elements per call, rows x n),
    ``label`` ("n" or "rows x n") and ``t`` (seconds or None).
    """
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"expected schema {SCHEMA!r}, got {got!r} "
                         "(rerun the benchmark to rewrite it)")
    meta = {**doc.get("machine", {}), **doc.get("settings", {})}
    if doc.get("command"):
        meta = {"command": doc["command"], **meta}
    rows = []
    for rec in doc["records"]:
        n, b = int(rec["n"]), int(rec.get("rows", 1))
        t = rec.get("median_s")
        t = float(t) if isinstance(t, (int, float)) and t > 0 else None
        rows.append({"case": str(rec["family"]), "impl": str(rec["impl"]), "n": n * b,
                     "label": f"{b} x {n}" if b > 1 else str(n), "t": t})
    if not rows:
        raise ValueError("no records")
    return meta, doc.get("scalars", {}), rows


# --------------------------------------------------------------------------- writing
def _fmt_t(t):
    if t is None:
        return "--"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.1f} µs"


def _table(header, body):
    """A reST list-table."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *body]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    lines.append("")
    return lines


def _plain(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_plain(x)}" for k, x in v.items())
    return str(v)


def _machine_lines(meta):
    if not meta:
        return ["The results file does not describe the machine.", ""]
    lines = ["Measured on:", ""]
    for k, v in meta.items():
        text = _plain(v).strip()
        if text:  # an empty value (e.g. no processor name) would be broken reST
            lines.append(f"- {k}: ``{text}``")
    lines.append("")
    return lines


def _is_treeiso(impl):
    return impl.lower().startswith(REFERENCE)


def _reference_impl(impls):
    """The family's reference: its first implementation (as written)."""
    return impls[0] if impls else None


def _ordered(impls):
    """As written, the reference first, then treeiso's variants, then the peers."""
    return ([impls[0]] + [i for i in impls[1:] if _is_treeiso(i)]
            + [i for i in impls[1:] if not _is_treeiso(i)]) if impls else []


def _plot(cases, png, title, xlabel):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(cases)
    cols = min(3, k)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False,
                             layout="constrained")
    for ax, (case, by_impl) in zip(axes.flat, cases.items()):
        for impl in _ordered(list(by_impl)):
            pts = sorted((n, t) for n, t in by_impl[impl].items() if t is not None)
            if not pts:
                continue
            ns, ts = zip(*pts)
            ref = impl == _reference_impl(list(by_impl))
            ax.loglog(ns, ts, "-o" if _is_treeiso(impl) else "--s", ms=3.5,
                      lw=2.2 if ref else 1.2, label=impl)
        ax.set_title(case, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("median time (s)", fontsize=8)
        ax.tick_params(labelsize=7)
        _short_log_axes(ax)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=6.5)
    for ax in list(axes.flat)[k:]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.savefig(png, dpi=80)
    plt.close(fig)


def _short_log_axes(ax):
    """On a log axis spanning less than about a decade and a half matplotlib labels every minor
    tick (3x, 4x, 6x ...), and the labels run into each other: keep only the 2x and 5x ones."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator

    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if lo > 0 and hi > lo and math.log10(hi / lo) < 1.5:
            axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            axis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False,
                                                             minor_thresholds=(math.inf, math.inf)))


def render(name, path: Path, out: Path, plots=True):
    """reST text for one results file (the plot is written next to it)."""
    title, command = SOURCES.get(name, (name, ""))
    lines = [title, "-" * len(title), ""]
    lines += [f"Source: ``benchmarks/results/{name}.json``"
              + (f", written by ``{command}``." if command else "."), ""]
    if not path.exists():
        return lines + [f"*Not measured yet*: ``benchmarks/results/{name}.json`` is absent.", ""]
    try:
        skipped = json.loads(path.read_text()).get("skipped")
    except (OSError, ValueError, AttributeError):
        skipped = None
    if skipped:
        return lines + [f"*Not measured*: the run was skipped ({skipped}).", ""]
    try:
        meta, scalars, rows = load(path)
    except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        return lines + [f"*Not measured yet*: ``{path.name}`` could not be read ({err}).", ""]

    lines += _machine_lines(meta)
    cases = defaultdict(lambda: defaultdict(dict))
    labels = {}
    batched = any(r["label"] != str(r["n"]) for r in rows)
    for r in rows:
        labels[r["n"]] = r["label"]
        prev = cases[r["case"]][r["impl"]].get(r["n"])
        if prev is None or (r["t"] is not None and r["t"] < prev):
            cases[r["case"]][r["impl"]][r["n"]] = r["t"]

    if plots:
        png = out / f"{name}.png"
        _plot(cases, png, title, "elements per call (rows x n)" if batched
              else "n (nodes per problem)")
        lines += [f".. image:: /generated/bench/{png.name}",
                  f"   :alt: median time against n, {name} benchmark", ""]

    losses, wins = [], 0
    case_batched = {r["case"] for r in rows if r["label"] != str(r["n"])}
    for case, by_impl in cases.items():
        impls = _ordered(list(by_impl))
        ref = _reference_impl(impls)
        lines += [f"**{case}** (reference: {ref})", ""]
        body = []
        for n in sorted({n for d in by_impl.values() for n in d}):
            ref_t = by_impl[ref].get(n) if ref else None
            row = [labels.get(n, str(n))]
            for impl in impls:
                t = by_impl[impl].get(n)
                cell = _fmt_t(t)
                if ref and impl != ref and t is not None and ref_t is not None:
                    ratio = ref_t / t
                    cell += f" ({ratio:.2g})"
                    if not _is_treeiso(impl) and _is_treeiso(ref):
                        if ratio > 1:
                            losses.append((case, n, impl, ratio))
                        else:
                            wins += 1
                row.append(cell)
            body.append(row)
        lines += _table(["rows x n" if case in case_batched else "n", *impls], body)

    if losses or wins:
        lines += ["In brackets: the reference's time divided by this column's, at the same "
                  "size and in the same run. Below 1 the reference is faster; above 1 it is "
                  "slower.", ""]
        if losses:
            lines += [f"**Where treeiso loses** ({len(losses)} of {len(losses) + wins} "
                      "comparisons):", ""]
            for case, n, impl, ratio in sorted(losses, key=lambda x: (x[0], x[2], x[1])):
                size = labels.get(n, str(n))
                lines.append(f"- {case}, {'rows x n' if case in case_batched else 'n'} = {size}: "
                             f"{impl} is {ratio:.3g}x faster.")
            lines.append("")
        else:
            lines += [f"treeiso was the fastest in all {wins} comparisons with a peer.", ""]
    other = {k: v for k, v in scalars.items() if not isinstance(v, str) or len(v) < 80}
    if other:
        lines += ["Other numbers in the file:", ""]
        lines += [f"- {k}: ``{_plain(v)}``" for k, v in other.items()]
        lines.append("")
    return lines


def generate(out: Path = OUT, results: Path = RESULTS, plots=True):
    """Write ``<out>/<name>.inc`` for every known and every present results file."""
    out.mkdir(parents=True, exist_ok=True)
    names = list(SOURCES)
    if results.is_dir():
        stems = {p.stem for p in results.glob("*.json")}
        # gpu_check.py --out X.json also leaves X.bench.json, already inside X.json
        names += sorted(st for st in stems if st not in SOURCES
                        and not (st.endswith(".bench") and st[: -len(".bench")] in stems))
    written = []
    for name in names:
        text = "\n".join(render(name, results / f"{name}.json", out, plots=plots)) + "\n"
        target = out / f"{name}.inc"
        if not target.exists() or target.read_text() != text:  # keep mtimes stable
            target.write_text(text)
        written.append(target)
    # every file the benchmark page includes, present or not
    extra = [n for n in names if n not in SOURCES]
    index = out / "others.inc"
    body = "".join(f".. include:: /generated/bench/{n}.inc\n\n" for n in extra)
    body = body or ".. no other results files\n"
    if not index.exists() or index.read_text() != body:
        index.write_text(body)
    return written


def _on_builder_inited(app):
    # TREEISO_BENCH_RESULTS points the docs at another results folder (for trying a run out)
    results = Path(os.environ.get("TREEISO_BENCH_RESULTS", RESULTS))
    generate(Path(app.srcdir) / "generated" / "bench", results)


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()
    for p in generate(args.out, args.results, plots=not args.no_plots):
        print(p)
