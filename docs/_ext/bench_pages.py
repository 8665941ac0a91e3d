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
of records, or a mapping holding one (under ``results``, ``records``, ``rows``,
``runs`` or ``data``) next to a description of the machine (``machine``,
``meta``, ``env``, ``environment``, ``system`` or ``host``).  In a record it
looks for the problem size (``n``), the implementation (``impl``,
``implementation``, ``library``, ``method``, ``solver``, ``name``), a time in
seconds (``median_s``, ``time_s``, ``seconds``, ``median``, ``time``,
``t_median``) and, optionally, the problem family (``case``, ``tree``,
``shape``, ``kind``, ``problem``, ``workload``), ``batch``/``B``, ``device``
and ``dtype``.  Records with a time of ``null`` (skipped or timed out) are
shown as "--".
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import defaultdict
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = DOCS / "generated" / "bench"

#: results file stem -> (title, who produces it, how)
SOURCES = {
    "cpu": ("CPU: treeiso (NumPy/Numba) against SciPy, Higra and torchisotonic",
            "python benchmarks/bench_cpu.py"),
    "torch": ("Torch: CPU and CUDA",
              "python benchmarks/bench_torch.py"),
}

_LIST_KEYS = ("results", "records", "rows", "runs", "data", "measurements")
_META_KEYS = ("machine", "meta", "metadata", "env", "environment", "system", "host")
_N_KEYS = ("n", "size", "num_nodes", "nodes", "c", "classes")
_IMPL_KEYS = ("impl", "implementation", "library", "lib", "method", "solver", "name", "backend")
_TIME_KEYS = ("median_s", "time_s", "seconds", "median", "time", "t_median", "t", "sec")
_CASE_KEYS = ("case", "tree", "shape", "kind", "problem", "workload", "family", "task")
_EXTRA_KEYS = ("batch", "B", "device", "dtype", "orientation", "weights")

REFERENCE = "treeiso"


# --------------------------------------------------------------------------- reading
def _first(rec, keys):
    for k in keys:
        if k in rec:
            return k, rec[k]
    return None, None


def _records_and_meta(doc):
    """Return (records, meta) from a loaded JSON document."""
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)], {}
    if not isinstance(doc, dict):
        raise ValueError("top level is neither a list nor an object")
    meta = {}
    for k in _META_KEYS:
        if k in doc:
            meta = doc[k] if isinstance(doc[k], dict) else {k: doc[k]}
            break
    for k in _LIST_KEYS:
        if isinstance(doc.get(k), list):
            return [r for r in doc[k] if isinstance(r, dict)], meta
    # a mapping of case -> list of records
    recs = []
    for k, v in doc.items():
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            for r in v:
                recs.append({"case": k, **r})
    if recs:
        return recs, meta
    raise ValueError("no list of records found")


def _impl_name(rec, impl_key):
    """Implementation label: impl plus distinguishing device/backend fields."""
    _, impl = _first(rec, _IMPL_KEYS)
    label = str(impl)
    for extra in ("backend", "device", "method"):
        if extra != impl_key and extra in rec and rec[extra] not in (None, ""):
            if str(rec[extra]) not in label:
                label += f" [{rec[extra]}]"
    return label


def _as_seconds(rec):
    k, v = _first(rec, _TIME_KEYS)
    if v is None:
        for key, val in rec.items():  # e.g. "median_ms"
            if key.endswith("_ms") and isinstance(val, (int, float)):
                return val / 1e3
            if key.endswith("_us") and isinstance(val, (int, float)):
                return val / 1e6
        return None
    if isinstance(v, dict):  # {"median": ..}
        v = v.get("median", v.get("mean"))
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v) or v <= 0:
        return None
    if k and k.endswith("_ms"):
        v /= 1e3
    return v


def load(path: Path):
    """Parse one results file into ``(meta, rows)``.

    ``rows`` is a list of dicts with keys ``case``, ``impl``, ``n`` (int) and
    ``t`` (seconds or None), plus ``extra`` (a short string).
    """
    doc = json.loads(path.read_text())
    records, meta = _records_and_meta(doc)
    rows = []
    for rec in records:
        _, n = _first(rec, _N_KEYS)
        impl_key, impl = _first(rec, _IMPL_KEYS)
        if n is None or impl is None:
            continue
        try:
            n = int(n)
        except (TypeError, ValueError):
            continue
        _, case = _first(rec, _CASE_KEYS)
        extras = [f"{k}={rec[k]}" for k in _EXTRA_KEYS
                  if k in rec and k not in ("device",) and rec[k] not in (None, "")]
        case = str(case) if case is not None else "all"
        if extras:
            case = f"{case} ({', '.join(extras)})"
        rows.append({"case": case, "impl": _impl_name(rec, impl_key), "n": n,
                     "t": _as_seconds(rec)})
    if not rows:
        raise ValueError("no record with a size and an implementation")
    return meta, rows


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
    return f"{t * 1e6:.1f} us"


def _table(header, body):
    """A reST list-table."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *body]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    lines.append("")
    return lines


def _machine_lines(meta):
    if not meta:
        return ["The results file does not describe the machine.", ""]
    lines = ["Measured on:", ""]
    for k, v in meta.items():
        if isinstance(v, (dict, list)):
            v = json.dumps(v)
        lines.append(f"- **{k}**: ``{v}``" if str(v) else f"- **{k}**")
    lines.append("")
    return lines


def _reference_impl(impls):
    """The treeiso implementation ratios are taken against."""
    for name in impls:
        if name.split()[0].lower() == REFERENCE:
            return name
    for name in impls:
        if REFERENCE in name.lower():
            return name
    return None


def _plot(case, by_impl, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0), layout="constrained")
    for impl in sorted(by_impl):
        pts = sorted((n, t) for n, t in by_impl[impl].items() if t is not None)
        if not pts:
            continue
        ns, ts = zip(*pts)
        style = "-o" if REFERENCE in impl.lower() else "--s"
        ax.loglog(ns, ts, style, ms=4, label=impl)
    ax.set_xlabel("n (nodes per problem)")
    ax.set_ylabel("median time (s)")
    ax.set_title(case, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def render(name, path: Path, out: Path, plots=True):
    """reST text for one results file (plots written next to it)."""
    title, command = SOURCES.get(name, (name, ""))
    lines = [title, "-" * len(title), ""]
    if command:
        lines += [f"Regenerate with ``{command}`` (writes ``benchmarks/results/{name}.json``).", ""]
    if not path.exists():
        return lines + ["*Not measured yet*: ``benchmarks/results/"
                        f"{name}.json`` is absent.", ""]
    try:
        meta, rows = load(path)
    except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        return lines + [f"*Not measured yet*: ``{path.name}`` could not be read ({err}).", ""]

    lines += _machine_lines(meta)
    cases = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        prev = cases[r["case"]][r["impl"]].get(r["n"])
        if prev is None or (r["t"] is not None and r["t"] < prev):
            cases[r["case"]][r["impl"]][r["n"]] = r["t"]

    losses = []
    for case, by_impl in cases.items():
        impls = sorted(by_impl)
        ref = _reference_impl(impls)
        lines += [f"**{case}**", ""]
        if plots:
            png = out / f"{name}-{_slug(case)}.png"
            _plot(case, by_impl, png)
            lines += [f".. image:: /generated/bench/{png.name}",
                      f"   :alt: median time against n, {case}", ""]
        ns = sorted({n for d in by_impl.values() for n in d})
        header = ["n", *impls]
        body = []
        for n in ns:
            ref_t = by_impl[ref].get(n) if ref else None
            row = [str(n)]
            for impl in impls:
                t = by_impl[impl].get(n)
                cell = _fmt_t(t)
                if ref and impl != ref and t is not None and ref_t is not None:
                    ratio = t / ref_t
                    cell += f" ({ratio:.2g}x)"
                    if ratio < 1:
                        losses.append((case, n, impl, ratio))
                row.append(cell)
            body.append(row)
        lines += _table(header, body)

    if any(_reference_impl(sorted(b)) for b in cases.values()):
        lines += ["The number in brackets is the time of that implementation divided "
                  "by treeiso's at the same n: above 1, treeiso is faster.", ""]
        if losses:
            lines += ["Where treeiso loses (a peer is faster):", ""]
            for case, n, impl, ratio in sorted(losses):
                lines.append(f"- {case}, n = {n}: {impl} takes {ratio:.2g}x treeiso's time.")
            lines.append("")
        else:
            lines += ["In these measurements no peer was faster than treeiso.", ""]
    return lines


def generate(out: Path = OUT, results: Path = RESULTS, plots=True):
    """Write ``<out>/<name>.inc`` for every known and every present results file."""
    out.mkdir(parents=True, exist_ok=True)
    names = list(SOURCES)
    if results.is_dir():
        names += sorted(p.stem for p in results.glob("*.json") if p.stem not in SOURCES)
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
    generate(Path(app.srcdir) / "generated" / "bench")


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
