"""Report writing: tables (Markdown, reST, CSV), intervals, bar figures and generated README blocks.

Data-independent (NumPy, SciPy and matplotlib only), shared by the image study and the text
study. The study's ``report`` command turns the records of its current configuration into rows
and hands them to these functions, so that every table quoted in the README and the docs is
written by code from a run directory, never pasted.

API
---
``mean_ci(values, level=0.95) -> (mean, half_width)``   Student-t interval (half width NaN for n < 2)
``paired(a, b, level=0.95) -> dict``                    ``a - b`` over the keys both share (seeds)
``fmt_ci(mean, half, signed=False, digits=2) -> str``   ``"+1.23 ± 0.45"`` (± is the 95 % half width)
``write_table(rows, out_base, title="") -> str``        ``<out_base>.md``, ``.csv`` and ``.rst``; returns the Markdown
``bar_figure(panels, path, ylabel, title)``             bars with error bars, one panel per key of ``panels``
``replace_block(path, name, text) -> bool``             rewrite ``<!-- report:name -->...<!-- /report:name -->``
``block_names(path) -> list[str]``                      the names of the blocks a Markdown file holds
``update_readme(path, md, owns) -> list[str]``          rewrite the blocks ``owns`` selects from ``md``
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["mean_ci", "paired", "fmt_ci", "write_table", "rst_table", "md_table", "bar_figure",
           "replace_block", "block_names", "update_readme", "plt"]


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half width of its two-sided Student-t interval at ``level``.

    >>> m, h = mean_ci([1.0, 2.0, 3.0]); round(m, 3), round(h, 3)   # t_{0.975, 2} = 4.303
    (2.0, 2.484)
    """
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    if v.size < 2:
        return float(v.mean()), math.nan
    from scipy import stats

    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean()), float(half)


def paired(a: Mapping, b: Mapping, level: float = 0.95) -> dict:
    """Paired differences ``a[k] - b[k]`` over the keys (seeds) both hold, with a t interval.

    Returns ``dict(n, keys, diffs, mean, half, lo, hi)``.

    >>> p = paired({0: 71.0, 1: 73.0, 2: 72.0}, {0: 70.0, 1: 71.0, 2: 71.5})
    >>> p["n"], p["diffs"], round(p["mean"], 3)
    (3, [1.0, 2.0, 0.5], 1.167)
    """
    keys = [k for k in a if k in b]
    d = [float(a[k]) - float(b[k]) for k in keys]
    m, h = mean_ci(d, level)
    return dict(n=len(d), keys=keys, diffs=d, mean=m, half=h,
                lo=m - h if math.isfinite(h) else math.nan, hi=m + h if math.isfinite(h) else math.nan)


def fmt_ci(mean: float, half: float, signed: bool = False, digits: int = 2) -> str:
    """``"72.10 ± 0.84"`` (or ``"+1.20 ± 0.50"``); a missing half width prints as ``± n/a``."""
    if not math.isfinite(mean):
        return "—"
    s = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return s + (f" ± {half:.{digits}f}" if math.isfinite(half) else " ± n/a")


def md_table(rows: Sequence[Mapping], cols: Sequence[str] | None = None) -> str:
    cols = list(cols or (rows[0] if rows else []))
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _rst_cell(v) -> str:
    s = str(v).replace("|", "\\|").replace("*", "\\*")
    return s if s.strip() else r"\ "


def rst_table(rows: Sequence[Mapping], cols: Sequence[str] | None = None, title: str = "") -> str:
    """A reST ``list-table`` (robust to any cell width)."""
    cols = list(cols or (rows[0] if rows else []))
    out = [f".. list-table:: {title}".rstrip(), "   :header-rows: 1", ""]
    for r in [dict(zip(cols, cols))] + list(rows):
        for j, c in enumerate(cols):
            out.append(("   * - " if j == 0 else "     - ") + _rst_cell(r.get(c, "")))
    return "\n".join(out) + "\n"


def write_table(rows: Sequence[Mapping], out_base, title: str = "", note: str = "") -> str:
    """Write ``rows`` as ``<out_base>.md``, ``.csv`` and ``.rst`` (``note``, if any, below the
    table in the .md and .rst); returns the Markdown text."""
    out_base = Path(out_base)
    out_base.parent.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0]) if rows else []
    md = (f"### {title}\n\n" if title else "") + md_table(rows, cols) + (f"\n{note}\n" if note else "")
    out_base.with_suffix(".md").write_text(md)
    rst = rst_table(rows, cols, title) + (f"\n{note}\n" if note else "")
    out_base.with_suffix(".rst").write_text(rst)
    with open(out_base.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return md


def plt():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def bar_figure(panels: Mapping[str, Sequence[tuple]], path, ylabel: str, title: str = "",
               ylim: tuple | None = None) -> None:
    """Bars with error bars, one panel per key of ``panels``.

    ``panels[name]`` is a list of ``(label, mean, half_width)`` or ``(label, mean, half_width,
    values)``; the values (e.g. one per seed) are drawn as dots. A NaN half width draws no bar
    end. The y range is fitted to the bars, error bars and dots (bars of accuracies near 90 %
    would otherwise all look the same; the axis label then says where it starts) unless
    ``ylim`` is given.
    """
    p = plt()
    names = list(panels)
    width = max(3.2, 0.75 * max((len(v) for v in panels.values()), default=1) + 1.2)
    fig, axes = p.subplots(1, len(names), figsize=(width * len(names), 3.6), squeeze=False, sharey=True)
    lo, hi = math.inf, -math.inf
    for v in panels.values():
        for it in v:
            m, h = it[1], (it[2] if math.isfinite(it[2]) else 0.0)
            pts = list(it[3]) if len(it) > 3 else []
            lo, hi = min([lo, m - h] + pts), max([hi, m + h] + pts)
    for ax, name in zip(axes[0], names):
        items = panels[name]
        x = np.arange(len(items))
        means = [it[1] for it in items]
        errs = [it[2] if math.isfinite(it[2]) else 0.0 for it in items]
        ax.bar(x, means, yerr=errs, capsize=4, color=[f"C{i}" for i in range(len(items))], alpha=0.85)
        for i, it in enumerate(items):
            if len(it) > 3:
                ax.scatter([i] * len(it[3]), list(it[3]), s=10, color="black", zorder=3)
        ax.set_xticks(x, [it[0] for it in items], rotation=20, ha="right", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    if ylim is None and math.isfinite(lo):
        pad = max(1.0, 0.15 * (hi - lo))
        ylim = (max(0.0, math.floor(lo - pad)), min(100.0, hi + pad) if hi <= 100 else hi + pad)
    if ylim is not None:
        axes[0][0].set_ylim(*ylim)
        if ylim[0] > 0:
            ylabel += f"\n(axis starts at {ylim[0]:g})"
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    p.close(fig)


def replace_block(path, name: str, text: str) -> bool:
    """Replace what lies between ``<!-- report:NAME -->`` and ``<!-- /report:NAME -->`` in a
    Markdown file by ``text``; returns whether the file changed. A missing marker pair raises
    ``ValueError`` (a README that stopped quoting a table should be noticed)."""
    p = Path(path)
    src = p.read_text()
    pat = re.compile(rf"(<!-- report:{re.escape(name)} -->\n)(.*?)(<!-- /report:{re.escape(name)} -->)", re.S)
    if not pat.search(src):
        raise ValueError(f"{p}: no block <!-- report:{name} --> ... <!-- /report:{name} -->")
    new = pat.sub(lambda m: m.group(1) + text.rstrip("\n") + "\n" + m.group(3), src, count=1)
    if new != src:
        p.write_text(new)
    return new != src


def block_names(path) -> list[str]:
    """The ``NAME`` of every ``<!-- report:NAME -->`` ... ``<!-- /report:NAME -->`` block in a
    Markdown file, in order (an opening marker without its closing one, e.g. quoted in prose, is
    not a block)."""
    text = Path(path).read_text()
    return [n for n in re.findall(r"<!-- report:([\w.-]+) -->", text) if f"<!-- /report:{n} -->" in text]


def update_readme(path, md: Mapping[str, str], owns=lambda name: True) -> list[str]:
    """Rewrite every block of the Markdown file ``path`` whose name ``owns(name)`` accepts with
    ``md[name]``; returns their names. Two studies share one README (the image study's blocks
    and the text study's ``text-*`` ones), so each rewrites only its own. Raises ``RuntimeError``
    when the file holds none of its blocks, or one the report does not write (nothing is
    changed then)."""
    names = [n for n in block_names(path) if owns(n)]
    unknown = [n for n in names if n not in md]
    if not names or unknown:
        raise RuntimeError(f"{path}: blocks {unknown or '(none)'} are not in the report "
                           f"(it writes {', '.join(md)})")
    for name in names:
        replace_block(path, name, md[name])
    return names
