"""A chain given in order: treeiso.fit against SciPy's isotonic_regression, sampled in turn
(treeiso, SciPy, treeiso, SciPy, ...; each sample a loop of about 2 ms) so that both see the
same machine. Writes ``results/chain_vs_scipy.json``.

    python benchmarks/chain_vs_scipy.py --max-n 1e6
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


if __name__ == "__main__":
    main()
