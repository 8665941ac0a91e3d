"""Before and after, in one sitting: the same calls timed on a base revision and on the
working tree, sample by sample, so that both see the same machine.

    python benchmarks/compare_revisions.py --base HEAD~1

The base revision's ``src/treeiso`` is exported with ``git archive`` into a temporary folder
and copied there as the package ``treeiso_base``, which is and imported next to ``treeiso`` (the working tree). For each
NumPy row the two calls are sampled in turn (base, new, base, new, ...; each sample a loop of
about 2 ms), and the row reports the median sample of each side and their ratio (new / base:
below 1, the working tree is faster). Rows: ``fit`` on the shapes of ``bench_cpu`` from
10^2 to ``--max-n`` (with SciPy's ``isotonic_regression`` on the chain), the robust losses,
``certify`` and ``fit_topk``. The torch rows (``fit_topk`` on CPU tensors next to
``torch.sort``, a batched chain) cannot share a process (both revisions register the same
custom ops): they run in child processes that alternate base, new, base, new, ``--runs``
times. Results go to ``results/compare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def _numpy_rows(max_n):
    """{row: (call on the base package, call on the working tree)} for the NumPy rows."""
    import treeiso
    import treeiso_base
    from bench_cpu import decade_sizes, make_parent
    from scipy.optimize import isotonic_regression

    rows = {}
    rng = np.random.default_rng(0)
    sizes = decade_sizes(argparse.Namespace(min_n=1e2, max_n=max_n))
    for shape in ("chain", "shuffled-chain", "star", "binary", "random"):
        for n in sizes:
            parent = make_parent(shape, n, rng)
            y = rng.normal(size=n)
            trees = (treeiso_base.Tree(parent), treeiso.Tree(parent))
            mods = (treeiso_base, treeiso)
            rows[f"fit {shape} n={n}"] = tuple(
                (lambda m=m, t=t, y=y: m.fit(y, t)) for m, t in zip(mods, trees))
            if shape == "chain":
                scipy = lambda y=y: isotonic_regression(y, increasing=False)  # noqa: E731
                rows[f"SciPy chain n={n}"] = (scipy, scipy)
            if shape in ("chain", "random") and n <= 10**5:
                x = treeiso.fit(y, trees[1])
                rows[f"certify {shape} n={n}"] = tuple(
                    (lambda m=m, t=t, y=y, x=x: m.certify(y, t, x)) for m, t in zip(mods, trees))
                for loss in ("l1", "linf"):
                    rows[f"fit {loss} {shape} n={n}"] = tuple(
                        (lambda m=m, t=t, y=y, loss=loss: m.fit(y, t, loss=loss))
                        for m, t in zip(mods, trees))
    y = rng.normal(size=(256, 1000)).astype(np.float32)
    lab = rng.integers(0, 1000, size=(256, 2))
    # one thread: the two packages' thread pools would compete for the cores
    rows["fit_topk numpy 256x1000 f32, 1 thread"] = (
        lambda: treeiso_base.fit_topk(y, lab, threads=1),
        lambda: treeiso.fit_topk(y, lab, threads=1))
    return rows


def paired_medians(fns, repeats, sample_s=2e-3):
    """Median seconds per call of each of ``fns``, sampled in turn (a loop of about
    ``sample_s`` each), so that the machine's load reaches them alike."""
    for fn in fns:
        fn()
    t0 = time.perf_counter()
    fns[0]()
    number = max(1, min(2000, int(sample_s / max(time.perf_counter() - t0, 1e-7))))
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, samples):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            ts.append((time.perf_counter() - t0) / number)
    return [statistics.median(ts) for ts in samples]


def _torch_rows(repeats):
    """{row: seconds} of the torch rows, timed in this process (a child)."""
    import torch
    import treeiso
    from bench_cpu import median_time

    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.normal(size=(256, 1000)).astype(np.float32))
    lab = torch.from_numpy(rng.integers(0, 1000, size=(256, 2)))
    y64 = torch.from_numpy(rng.normal(size=(256, 1000)))
    chain = treeiso.Tree.chain(1000)
    return {"fit_topk torch 256x1000 f32": median_time(lambda: treeiso.fit_topk(y, lab),
                                                       repeats),
            "torch.sort 256x1000 f32": median_time(lambda: torch.sort(y, dim=-1), repeats),
            "fit torch chain 256x1000": median_time(lambda: treeiso.fit(y64, chain), repeats),
            "__file__": treeiso.__file__}


def _child(src, repeats):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(HERE)]))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--repeats",
           str(repeats)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"the child for {src} failed:\n{res.stderr[-3000:]}")
    times = json.loads(res.stdout.strip().splitlines()[-1])
    where = times.pop("__file__")
    assert where.startswith(str(src)), where
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD", help="the revision to compare with")
    ap.add_argument("--runs", type=int, default=3, help="child processes per side (torch)")
    ap.add_argument("--max-n", type=float, default=1e6)
    ap.add_argument("--repeats", type=int, default=9, help="samples per side and row")
    ap.add_argument("--out", default=str(HERE / "results" / "compare.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_torch_rows(args.repeats)))
        return
    from _record import Results

    base_rev = subprocess.run(["git", "rev-parse", args.base], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    res = Results(args.out, Path(args.out).stem, settings={
        "base": base_rev, "runs": args.runs, "repeats": args.repeats, "max_n": args.max_n,
        "new": "the working tree, uncommitted changes included"})
    print(f"{'row':42s} {'base':>10s} {'new':>10s} {'new/base':>9s}", flush=True)

    def report(row, base, new):
        family, _, size = row.rpartition(" n=")
        n_rows, n = 1, int(size) if size.isdigit() else 0
        if not n:  # "... 256x1000 ...": a batch of rows
            family = row
            batch = re.search(r"(\d+)x(\d+)", row)
            n_rows, n = (int(batch[1]), int(batch[2])) if batch else (1, 1)
        res.add(family, n, "base", base, rows=n_rows)
        res.add(family, n, "new", new, rows=n_rows, ratio=new / base)
        print(f"{row:42s} {base * 1e6:9.1f}u {new * 1e6:9.1f}u {new / base:9.3f}",
              flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", base_rev, "src"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        pkg = Path(tmp) / "pkg"
        pkg.mkdir()
        # a copy of its own: numba's cache files name the package they were compiled in
        shutil.copytree(Path(tmp) / "src" / "treeiso", pkg / "treeiso_base",
                        ignore=shutil.ignore_patterns("__pycache__"))
        sys.path.insert(0, str(pkg))
        for row, fns in _numpy_rows(args.max_n).items():
            report(row, *paired_medians(fns, args.repeats))
        runs = {"base": [], "new": []}
        sources = {"base": Path(tmp) / "src", "new": ROOT / "src"}
        try:
            import torch  # noqa: F401
        except ImportError:
            args.runs = 0
        for _ in range(args.runs):
            for side in ("base", "new"):
                runs[side].append(_child(sources[side], args.repeats))
        for row in (runs["new"][0] if args.runs else ()):
            report(row, statistics.median(r[row] for r in runs["base"]),
                   statistics.median(r[row] for r in runs["new"]))


if __name__ == "__main__":
    main()
