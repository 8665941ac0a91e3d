"""A chain given in order: treeiso.fit against SciPy's isotonic_regression, sampled in turn
(treeiso, SciPy, treeiso, SciPy, ...; each sample a loop of about 2 ms) so that both see the
same machine. Writes ``results/chain_vs_scipy.json``.

    python benchmarks/chain_vs_scipy.py --max-n 1e6

From ``--kernels-from`` on (1e5 by default) it also times the two compiled loops alone, on
preallocated arrays: treeiso's PAV kernel against SciPy's (the private
``scipy.optimize._pava_pybind.pava``, which works in place, so its sample includes copying
the data and unit weights in; a third function times that copy alone and is subtracted). Two
kinds of data: standard normal values (many short blocks: the branches are unpredictable)
and a random walk (long blocks: the loop's arithmetic decides). Below 1e5 a loop over the
same input lets the branch predictor learn it, so small sizes are not measured this way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(argv=None):
    import treeiso
    from _record import Results
    from bench_cpu import decade_sizes
    from compare_revisions import paired_medians
    from scipy.optimize import isotonic_regression

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min-n", type=float, default=1e2)
    ap.add_argument("--max-n", type=float, default=1e6)
    ap.add_argument("--repeats", type=int, default=21, help="samples per side and size")
    ap.add_argument("--kernels-from", type=float, default=1e5,
                    help="smallest n at which the compiled loops are timed alone")
    ap.add_argument("--out", default=str(HERE / "results" / "chain_vs_scipy.json"))
    args = ap.parse_args(argv)
    res = Results(args.out, Path(args.out).stem, settings={
        "repeats": args.repeats, "values": "standard normal, unit weights, sampled in turn"})
    rng = np.random.default_rng(0)
    for n in decade_sizes(args):
        y = rng.normal(size=n)
        tree = treeiso.Tree.chain(n)
        ours, scipy = paired_medians([lambda: treeiso.fit(y, tree),
                                      lambda: isotonic_regression(y, increasing=False)],
                                     args.repeats)
        res.add("chain (in order)", n, "treeiso", ours)
        res.add("chain (in order)", n, "SciPy", scipy)
        print(f"n={n:>8d}  treeiso {ours * 1e6:10.2f} us  SciPy {scipy * 1e6:10.2f} us  "
              f"treeiso/SciPy {ours / scipy:.3f}", flush=True)
        if n >= args.kernels_from:
            kernel_rows(res, n, rng, args.repeats)


def kernel_rows(res, n, rng, repeats):
    """Time treeiso's PAV kernel and SciPy's in-place loop on normal values and on a
    random walk of ``n`` values (unit weights, decreasing fit)."""
    from compare_revisions import paired_medians
    from scipy.optimize import _pava_pybind
    from treeiso._kernels.pav import pav_rows

    for kind, y in (("normal values", rng.normal(size=n)),
                    ("random walk", np.cumsum(rng.normal(size=n)))):
        rows, no_w = y[None].copy(), np.empty((0, n))
        x, no_blocks = np.empty((1, n)), np.empty((0, n), np.int64)
        y_up = np.ascontiguousarray(y[::-1])  # SciPy's loop fits increasing values
        x_s, w_s, r_s = np.empty(n), np.empty(n), np.empty(n + 1, np.intp)

        def copy_in():
            x_s[:] = y_up
            w_s[:] = 1.0

        def scipy_loop():
            copy_in()
            _pava_pybind.pava(x_s, w_s, r_s)

        ours, theirs, copy = paired_medians(
            [lambda: pav_rows(rows, no_w, None, x, no_blocks), scipy_loop, copy_in], repeats)
        fam = f"PAV kernel alone, {kind}"
        res.add(fam, n, "treeiso", ours)
        res.add(fam, n, "SciPy", theirs - copy, copy_subtracted_s=copy)
        print(f"  kernel alone, {kind:13s} treeiso {ours * 1e3:8.3f} ms  SciPy "
              f"{(theirs - copy) * 1e3:8.3f} ms  treeiso/SciPy {ours / (theirs - copy):.3f}",
              flush=True)


if __name__ == "__main__":
    main()
