"""Time treeiso.fit on CPU next to SciPy (chains) and Higra (all trees), same run.

    python benchmarks/bench_cpu.py                 # n = 1e3 .. 1e7, all shapes
    python benchmarks/bench_cpu.py --max-n 1e6 --repeats 5

Every timing is the median of ``--repeats`` runs after one warm-up run. The
script prints a table with ratios (treeiso time / peer time: below 1 means
treeiso is faster), measures peak memory at the largest n and the import time,
and writes everything to ``benchmarks/results/cpu.json`` as it goes (a killed
run keeps what it measured).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHAPES = ("random", "caterpillar", "binary", "chain", "shuffled-chain", "star")


def make_parent(shape, n, rng):
    """A parent array; labels are shuffled (no topological order) except for
    "chain", which is given in order as SciPy's PAVA gets it."""
    if shape == "random":                 # random recursive tree
        parent = (rng.random(n) * np.arange(n)).astype(np.int64)
    elif shape == "caterpillar":          # a spine of n/2 nodes, one leaf each
        spine = n // 2
        parent = np.concatenate([np.arange(-1, spine - 1), np.arange(n - spine)])
    elif shape == "binary":
        parent = (np.arange(n) - 1) // 2
    elif shape in ("chain", "shuffled-chain"):
        parent = np.arange(-1, n - 1)
    elif shape == "star":
        parent = np.zeros(n, dtype=np.int64)
    parent = parent.astype(np.int64)
    parent[0] = -1
    if shape == "chain":
        return parent
    perm = rng.permutation(n)             # node i is called perm[i]
    out = np.empty(n, dtype=np.int64)
    out[perm] = np.where(parent >= 0, perm[np.maximum(parent, 0)], -1)
    return out


def higra_relabel(tree):
    """Higra wants leaves first and every parent after its children."""
    n = tree.n
    n_children = np.bincount(tree.parent[tree.parent >= 0], minlength=n)
    rev = tree.order[::-1]                # children before parents
    leaves = rev[n_children[rev] == 0]
    inner = rev[n_children[rev] > 0]
    new_order = np.concatenate([leaves, inner])
    new_id = np.empty(n, dtype=np.int64)
    new_id[new_order] = np.arange(n)
    par = tree.parent[new_order].astype(np.int64)
    par_h = np.where(par >= 0, new_id[np.maximum(par, 0)], np.arange(n))
    return par_h, new_order


def median_time(fn, repeats):
    fn()                                  # warm-up (and JIT load)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def peak_memory_child(shape, n):
    """Bytes per node of peak RSS that ``fit(y, parent)`` adds beyond its inputs.

    The inputs are written to disk and loaded in a fresh process, so that no
    temporaries of their construction inflate the baseline peak.
    """
    import tempfile

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/parent.npy", make_parent(shape, n, rng))
        np.save(f"{tmp}/y.npy", rng.normal(size=n))
        # VmHWM (peak RSS of this address space), not ru_maxrss, which Linux
        # carries over from the (large) benchmarking parent through fork.
        code = f"""
import numpy as np, treeiso
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
treeiso.fit(np.zeros(8), np.array({make_parent(shape, 8, rng).tolist()}))  # load kernels
parent = np.load({tmp + '/parent.npy'!r}); y = np.load({tmp + '/y.npy'!r})
before = peak()
x = treeiso.fit(y, parent)
print((peak() - before) / {n})
"""
        out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                             text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def import_time(repeats=5):
    code = ("import time; t = time.perf_counter(); import treeiso; "
            "print(time.perf_counter() - t)")
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        times.append(float(out.stdout))
    return float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-n", type=float, default=1e3)
    ap.add_argument("--max-n", type=float, default=1e7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    ap.add_argument("--heaps-up-to", type=float, default=1e6,
                    help="also time both IRT heaps up to this n")
    ap.add_argument("--out", default=str(HERE / "results" / "cpu.json"))
    args = ap.parse_args(argv)

    import treeiso

    try:
        import higra as hg
    except ImportError:
        hg = None
        print("higra is not installed: pip install higra (Higra columns left empty)")
    from scipy.optimize import isotonic_regression

    sizes = [int(10**k) for k in range(int(np.log10(args.min_n)),
                                       int(np.log10(args.max_n)) + 1)]
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__},
        "repeats": args.repeats,
        "rows": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        out.write_text(json.dumps(result, indent=1))

    header = (f"{'shape':12s} {'n':>9s} {'treeiso':>9s} {'+Tree':>9s} {'higra':>9s} "
              f"{'scipy':>9s} {'ratio':>7s}  notes")
    print(header)
    rng = np.random.default_rng(0)
    for shape in args.shapes:
        for n in sizes:
            parent = make_parent(shape, n, rng)
            y = rng.normal(size=n)
            tree = treeiso.Tree(parent)
            row = {"shape": shape, "n": n, "kind": tree.kind}
            row["treeiso_s"] = median_time(lambda: treeiso.fit(y, tree), args.repeats)
            row["treeiso_with_tree_s"] = median_time(lambda: treeiso.fit(y, parent),
                                                     args.repeats)
            x = treeiso.fit(y, tree)
            if n <= args.heaps_up_to:
                for heap in ("irt-pairing", "irt-leftist", "irt-binomial"):
                    row[f"{heap}_s"] = median_time(
                        lambda: treeiso.fit(y, tree, method=heap), args.repeats)
            notes = []
            if hg is not None:
                par_h, new_order = higra_relabel(tree)
                htree = hg.Tree(par_h)
                y_h = np.ascontiguousarray(y[new_order])
                row["higra_s"] = median_time(
                    lambda: hg.tree_monotonic_regression(htree, y_h, "least_square"),
                    args.repeats)
                x_h = hg.tree_monotonic_regression(htree, y_h, "least_square")
                row["max_abs_diff_higra"] = float(np.abs(x_h - x[new_order]).max())
                row["ratio_higra"] = row["treeiso_s"] / row["higra_s"]
            if tree.kind == "chain":
                y_chain = np.ascontiguousarray(y[tree.handle])
                row["scipy_s"] = median_time(
                    lambda: isotonic_regression(y_chain, increasing=False), args.repeats)
                x_s = isotonic_regression(y_chain, increasing=False).x
                row["max_abs_diff_scipy"] = float(np.abs(x_s - x[tree.handle]).max())
                row["ratio_scipy"] = row["treeiso_s"] / row["scipy_s"]
            if n <= args.heaps_up_to:
                notes.append(f"IRT heaps: pairing {row['irt-pairing_s'] * 1e3:.1f} ms, "
                             f"leftist {row['irt-leftist_s'] * 1e3:.1f} ms, "
                             f"binomial {row['irt-binomial_s'] * 1e3:.1f} ms")
            ratio = row.get("ratio_scipy", row.get("ratio_higra", float("nan")))
            print(f"{shape:12s} {n:9d} {row['treeiso_s'] * 1e3:8.2f}m "
                  f"{row['treeiso_with_tree_s'] * 1e3:8.2f}m "
                  f"{row.get('higra_s', float('nan')) * 1e3:8.2f}m "
                  f"{row.get('scipy_s', float('nan')) * 1e3:8.2f}m {ratio:7.3f}  "
                  + "; ".join(notes), flush=True)
            result["rows"].append(row)
            save()
    n_mem = sizes[-1]
    result["peak_memory_bytes_per_node"] = {
        shape: peak_memory_child(shape, n_mem) for shape in ("random", "chain", "star")}
    result["peak_memory_n"] = n_mem
    result["import_s"] = import_time()
    save()
    print(f"peak memory beyond inputs at n={n_mem}: "
          + ", ".join(f"{k} {v:.1f} B/node"
                      for k, v in result["peak_memory_bytes_per_node"].items()))
    print(f"import treeiso: {result['import_s'] * 1e3:.1f} ms")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
