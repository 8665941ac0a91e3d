"""Turn ``benchmarks/results/*.json`` into reST tables and log-log plots.

Used two ways:

* as a Sphinx extension (listed in ``docs/conf.py``): on ``builder-inited`` it
  writes ``docs/generated/bench/<name>.inc`` (plus ``.png`` plots) for every
  known results file, which ``docs/benchmarks.rst`` includes;
* as a script, ``python docs/_ext/bench_pages.py [--out DIR]``, to look at the
  output without building the docs.

A missing or unreadable results file never fails the build: its page then says
"not measured yet" (or why it could not be read).

The reader is deliberately tolerant about the JSON layout.  It accepts a list
of records, or a mapping holding one (under ``rows``, ``results``, ``records``,
``runs`` or ``data``) next to a description of the machine (``machine``,
``meta``, ``env``, ``environment``, ``system`` or ``host``); other top-level
numbers (``import_s``, ``repeats``, ...) are listed under the tables.  Records
come in two layouts:

* wide (``bench_cpu.py``): one record per problem, with the size ``n``, the
  family (``shape``, ``case``, ``tree``, ``kind``, ...) and one time per
  implementation in keys ending in ``_s`` (or ``_ms``/``_us``):
  ``{"shape": "chain", "n": 1000, "treeiso_s": ..., "higra_s": ...}``;
* long: one record per implementation, with ``impl`` (or ``implementation``,
  ``library``, ``method``, ``solver``, ``name``) and a time (``median_s``,
  ``time_s``, ``seconds``, ``median``, ``time``).

``device`` and ``dtype`` become part of the family's title.  With a batch
size (``B``, ``batch``), the x axis is the number of elements per call
(rows x n) and the tables show "rows x n".  ``gpu_check.py``'s report (the
benchmark nested under ``bench``) is read too, and a report with
``skipped`` says why nothing was measured.
Times of ``null`` (skipped, timed out) show as "--".  Ratios are treeiso's
time divided by the peer's, as ``bench_cpu.py`` prints them: below 1 treeiso
is faster, above 1 it loses.
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
    "torch": ("PyTorch: fit_topk and batched chains (bench_torch.py)",
              "python benchmarks/bench_torch.py"),
    "gpu": ("PyTorch on a CUDA device (gpu_check.py)",
            "python benchmarks/gpu_check.py --out benchmarks/results/gpu.json"),
}

_LIST_KEYS = ("rows", "results", "records", "runs", "data", "measurements")
_META_KEYS = ("machine", "meta", "metadata", "env", "environment", "system", "host")
_N_KEYS = ("n", "size", "num_nodes", "nodes", "c", "classes")
_IMPL_KEYS = ("impl", "implementation", "library", "lib", "method", "solver", "name")
_TIME_KEYS = ("median_s", "time_s", "seconds", "median", "time", "t_median")
_CASE_KEYS = ("case", "tree", "shape", "problem", "workload", "family", "task", "kind", "op")
_EXTRA_KEYS = ("device", "dtype", "orientation", "weights")
_BATCH_KEYS = ("B", "batch", "n_rows")
_UNITS = (("_s", 1.0), ("_ms", 1e-3), ("_us", 1e-6))

REFERENCE = "treeiso"
#: pretty names for wide-format columns (key without the unit suffix)
PRETTY = {
    "treeiso": "treeiso",
    "treeiso_with_tree": "treeiso, Tree() included",
    "irt-pairing": "treeiso irt-pairing",
    "irt-leftist": "treeiso irt-leftist",
    "irt-binomial": "treeiso irt-binomial",
    "higra": "Higra",
    "scipy": "SciPy",
    "sklearn": "scikit-learn",
    "torchisotonic": "torchisotonic",
    # bench_torch.py
    "fit_topk": "treeiso fit_topk",
    "native_fixed_point": "treeiso native broom, fixed point",
    "native_sort": "treeiso native broom, sort",
    "treeiso_native": "treeiso native chain",
    "torch_sort": "torch.sort (one sort of the batch)",
    "per_sample_loop": "per-sample loop (paper-style)",
}
#: which treeiso column the peers are compared with, first present wins
REFERENCE_ORDER = ("treeiso", "treeiso fit_topk")


# --------------------------------------------------------------------------- reading
def _first(rec, keys):
    for k in keys:
        if k in rec and rec[k] is not None:
            return k, rec[k]
    return None, None


def _records_and_meta(doc):
    """Return (records, meta, scalars) from a loaded JSON document."""
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)], {}, {}
    if not isinstance(doc, dict):
        raise ValueError("top level is neither a list nor an object")
    if isinstance(doc.get("bench"), dict):  # gpu_check.py nests bench_torch.py's output
        outer = {k: v for k, v in doc.items()
                 if isinstance(v, (str, int, float)) and k in ("device", "torch", "started")}
        doc = {**outer, **doc["bench"]}
    meta = {}
    for k in _META_KEYS:
        if k in doc:
            meta = doc[k] if isinstance(doc[k], dict) else {k: doc[k]}
            break
    scalars = {k: v for k, v in doc.items()
               if k not in _META_KEYS and not isinstance(v, list)}
    if not meta:  # no machine section: the top-level strings describe the run
        meta = {k: v for k, v in scalars.items() if isinstance(v, str)}
        scalars = {k: v for k, v in scalars.items() if k not in meta}
    for k in _LIST_KEYS:
        if isinstance(doc.get(k), list):
            return [r for r in doc[k] if isinstance(r, dict)], meta, scalars
    recs = []  # a mapping of case -> list of records
    for k, v in doc.items():
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            recs.extend({"case": k, **r} for r in v)
    if recs:
        return recs, meta, scalars
    raise ValueError("no list of records found")


def _seconds(value, scale=1.0):
    if isinstance(value, dict):  # {"median": .., ...}
        value = value.get("median", value.get("mean"))
    if isinstance(value, bool):
        return None
    try:
        value = float(value) * scale
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _case_name(rec):
    _, case = _first(rec, _CASE_KEYS)
    case = str(case) if case is not None else "all"
    extras = [f"{k}={rec[k]}" for k in _EXTRA_KEYS if k in rec and rec[k] not in (None, "")
              and not isinstance(rec[k], (dict, list))]
    return f"{case} ({', '.join(extras)})" if extras else case


def _timing_columns(rec):
    """Wide layout: ``{impl: seconds}`` from keys such as ``higra_s``."""
    out = {}
    for key, val in rec.items():
        for suffix, scale in _UNITS:
            if key.endswith(suffix) and (val is None or isinstance(val, (int, float, dict))):
                impl = key[: -len(suffix)]
                if impl and not impl.startswith(("ratio", "max_abs", "peak", "import")):
                    out[PRETTY.get(impl, impl)] = _seconds(val, scale)
                break
    return out


def load(path: Path):
    """Parse one results file into ``(meta, scalars, rows)``.

    ``rows`` is a list of dicts with keys ``case``, ``impl``, ``n`` (int) and
    ``t`` (seconds or None).
    """
    doc = json.loads(path.read_text())
    records, meta, scalars = _records_and_meta(doc)
    rows = []
    for rec in records:
        _, n = _first(rec, _N_KEYS)
        try:
            n = int(n)
        except (TypeError, ValueError):
            continue
        case = _case_name(rec)
        label = str(n)
        _, batch = _first(rec, _BATCH_KEYS)
        if isinstance(batch, int) and not isinstance(batch, bool) and batch > 0:
            label, n = f"{batch} x {n}", batch * n  # x axis: elements per call
        _, impl = _first(rec, _IMPL_KEYS)
        time_key = next((k for k in _TIME_KEYS if k in rec), None)
        if impl is not None and time_key is not None:  # long layout
            rows.append({"case": case, "impl": PRETTY.get(str(impl), str(impl)), "n": n,
                         "label": label, "t": _seconds(rec[time_key])})
            continue
        for name, t in _timing_columns(rec).items():
            rows.append({"case": case, "impl": name, "n": n, "label": label, "t": t})
    if not rows:
        raise ValueError("no record with a size and a time")
    return meta, scalars, rows


# --------------------------------------------------------------------------- writing
def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "case"


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
    """The treeiso implementation ratios are taken against."""
    for name in REFERENCE_ORDER:
        if name in impls:
            return name
    for name in impls:
        if _is_treeiso(name) and "included" not in name:
            return name
    return None


def _ordered(impls):
    ref = _reference_impl(impls)
    mine = sorted(i for i in impls if _is_treeiso(i) and i != ref)
    peers = sorted(i for i in impls if not _is_treeiso(i))
    return ([ref] if ref else []) + mine + peers


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
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=6.5)
    for ax in list(axes.flat)[k:]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.savefig(png, dpi=80)
    plt.close(fig)


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
    for case, by_impl in cases.items():
        impls = _ordered(list(by_impl))
        ref = _reference_impl(impls)
        lines += [f"**{case}**", ""]
        body = []
        for n in sorted({n for d in by_impl.values() for n in d}):
            ref_t = by_impl[ref].get(n) if ref else None
            row = [labels.get(n, str(n))]
            for impl in impls:
                t = by_impl[impl].get(n)
                cell = _fmt_t(t)
                if ref and not _is_treeiso(impl) and t is not None and ref_t is not None:
                    ratio = ref_t / t
                    cell += f" ({ratio:.2g})"
                    if ratio > 1:
                        losses.append((case, n, impl, ratio))
                    else:
                        wins += 1
                row.append(cell)
            body.append(row)
        lines += _table(["rows x n" if batched else "n", *impls], body)

    if losses or wins:
        lines += ["In brackets: treeiso's time divided by the peer's, at the same n and in the "
                  "same run. Below 1 treeiso is faster; above 1 it is slower.", ""]
        if losses:
            lines += [f"**Where treeiso loses** ({len(losses)} of {len(losses) + wins} "
                      "comparisons):", ""]
            for case, n, impl, ratio in sorted(losses, key=lambda x: (x[0], x[2], x[1])):
                size = labels.get(n, str(n))
                lines.append(f"- {case}, {'rows x n' if batched else 'n'} = {size}: "
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
