"""Time treeiso.fit on CPU next to SciPy (chains) and Higra (all trees), same run.

    python benchmarks/bench_cpu.py                 # n = 1e2 .. 1e7, all shapes
    python benchmarks/bench_cpu.py --max-n 1e6 --repeats 5
    python benchmarks/bench_cpu.py --parts threads --out benchmarks/results/threads.json

Every timing is the median of ``--repeats`` samples after one warm-up call; a
sample repeats the call until it lasts about a millisecond (so microsecond calls
are timed accurately) and counts the time per call. The script prints a table
with ratios (treeiso time / peer time: below 1 means treeiso is faster),
measures peak memory at the largest n and the import time, times rows on 1 and
2 threads, and writes everything to ``benchmarks/results/cpu.json`` in the
layout of ``benchmarks/_record.py`` as it goes (a killed run keeps what it
measured).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _record import Results, time_threads

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


def median_time(fn, repeats, sample_s=1e-3):
    fn()                                  # warm-up (and JIT load)
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    number = max(1, min(1000, int(sample_s / max(first, 1e-7))))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
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


FAMILY = {"random": "random tree", "caterpillar": "caterpillar", "binary": "binary tree",
          "chain": "chain (in order)", "shuffled-chain": "chain (shuffled ids)",
          "star": "star"}


def bench_sizes(res, args, sizes):
    import treeiso

    try:
        import higra as hg
    except ImportError:
        hg = None
        print("higra is not installed: pip install higra (Higra columns left empty)")
    from scipy.optimize import isotonic_regression

    print(f"{'shape':12s} {'n':>9s} {'treeiso':>9s} {'+Tree':>9s} {'higra':>9s} "
          f"{'scipy':>9s} {'ratio':>7s}")
    rng = np.random.default_rng(0)
    for shape in args.shapes:
        fam = FAMILY[shape]
        for n in sizes:
            parent = make_parent(shape, n, rng)
            y = rng.normal(size=n)
            tree = treeiso.Tree(parent)
            t = median_time(lambda: treeiso.fit(y, tree), args.repeats)
            res.add(fam, n, "treeiso", t, kind=tree.kind)
            t_tree = median_time(lambda: treeiso.fit(y, parent), args.repeats)
            res.add(fam, n, "treeiso, Tree() included", t_tree)
            x = treeiso.fit(y, tree)
            if n <= args.heaps_up_to:
                for heap in ("irt-pairing", "irt-leftist", "irt-binomial"):
                    res.add(fam, n, f"treeiso {heap}", median_time(
                        lambda: treeiso.fit(y, tree, method=heap), args.repeats))
            t_h = t_s = float("nan")
            if hg is not None:
                par_h, new_order = higra_relabel(tree)
                htree = hg.Tree(par_h)
                y_h = np.ascontiguousarray(y[new_order])
                t_h = median_time(
                    lambda: hg.tree_monotonic_regression(htree, y_h, "least_square"),
                    args.repeats)
                x_h = hg.tree_monotonic_regression(htree, y_h, "least_square")
                res.add(fam, n, "Higra", t_h,
                        max_abs_diff=float(np.abs(x_h - x[new_order]).max()))
            if tree.kind == "chain":
                y_chain = np.ascontiguousarray(y[tree.handle])
                t_s = median_time(lambda: isotonic_regression(y_chain, increasing=False),
                                  args.repeats)
                x_s = isotonic_regression(y_chain, increasing=False).x
                res.add(fam, n, "SciPy", t_s,
                        max_abs_diff=float(np.abs(x_s - x[tree.handle]).max()))
            ratio = t / (t_s if tree.kind == "chain" else t_h)
            print(f"{shape:12s} {n:9d} {t * 1e3:8.3f}m {t_tree * 1e3:8.3f}m "
                  f"{t_h * 1e3:8.3f}m {t_s * 1e3:8.3f}m {ratio:7.3f}", flush=True)


def bench_threads(res, args):
    """Rows on 2 threads against 1: fit on 64 rows of a random tree of 1e5 nodes, and
    fit_topk on 4096 x 1000 float32 (two labels per row), NumPy input."""
    import treeiso

    rng = np.random.default_rng(1)
    n = 100_000
    tree = treeiso.Tree(make_parent("random", n, rng))
    y = rng.normal(size=(64, n))
    ts = time_threads(res, "threads: fit, 64 rows of a random tree", n, 64,
                      lambda k: treeiso.fit(y, tree, threads=k), 2 * args.repeats + 1)
    one = median_time(lambda: treeiso.fit(y[0], tree), args.repeats)
    res.add("threads: fit, one row of a random tree", n, "treeiso", one)
    print(f"fit 64 x {n}: 1 thread {ts[1] * 1e3:.1f} ms, 2 threads {ts[2] * 1e3:.1f} ms, "
          f"speed-up {ts[1] / ts[2]:.2f}; one row {one * 1e3:.2f} ms", flush=True)
    c, b = 1000, 4096
    yt = (rng.normal(size=(b, c)) * 3).astype(np.float32)
    lab = np.argsort(rng.random((b, c)), axis=1)[:, :2]
    ts = time_threads(res, "threads: fit_topk, float32 rows, 2 labels", c, b,
                      lambda k: treeiso.fit_topk(yt, lab, threads=k), 4 * args.repeats + 1)
    print(f"fit_topk {b} x {c} float32: 1 thread {ts[1] * 1e3:.2f} ms, 2 threads "
          f"{ts[2] * 1e3:.2f} ms, speed-up {ts[1] / ts[2]:.2f}", flush=True)


def size_arguments(ap, shapes, max_n):
    """The options every size sweep takes: ``--min-n``, ``--max-n``, ``--repeats``,
    ``--shapes``."""
    ap.add_argument("--min-n", type=float, default=1e2)
    ap.add_argument("--max-n", type=float, default=max_n)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shapes", nargs="+", default=list(shapes), choices=shapes)


def decade_sizes(args):
    """The powers of ten from ``args.min_n`` to ``args.max_n``."""
    return [int(10**k) for k in range(int(np.log10(args.min_n)),
                                      int(np.log10(args.max_n)) + 1)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size_arguments(ap, SHAPES, max_n=1e7)
    ap.add_argument("--parts", nargs="+", default=["sizes", "memory"],
                    choices=["sizes", "threads", "memory"],
                    help="threads: the 1- vs 2-thread timings (kept in their own file, "
                    "benchmarks/results/threads.json, so they can be rerun alone)")
    ap.add_argument("--heaps-up-to", type=float, default=1e6,
                    help="also time the three IRT heaps up to this n")
    ap.add_argument("--out", default=str(HERE / "results" / "cpu.json"))
    args = ap.parse_args(argv)

    sizes = decade_sizes(args)
    res = Results(args.out, Path(args.out).stem, settings={
        "repeats": args.repeats, "sizes": sizes, "shapes": args.shapes,
        "values": "standard normal, unit weights", "parts": args.parts})
    if "sizes" in args.parts:
        bench_sizes(res, args, sizes)
    if "threads" in args.parts:
        bench_threads(res, args)
    if "memory" in args.parts:
        n_mem = sizes[-1]
        for shape in ("random", "chain", "star"):
            res.scalar(f"peak memory beyond the inputs, {shape}, n = {n_mem} (bytes/node)",
                       round(peak_memory_child(shape, n_mem), 1))
        res.scalar("import treeiso (s)", round(import_time(), 4))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
