"""Time the robust losses (L1, quantile, L-infinity) next to model-diagnostics and HiGHS.

    python benchmarks/bench_robust.py                  # n = 1e2 .. 1e6, every shape and loss
    python benchmarks/bench_robust.py --max-n 1e4 --repeats 3 --out /tmp/robust.json

For each loss and tree shape (chain given in order, random recursive tree, star, broom), at
every n from ``--min-n`` to ``--max-n``: ``treeiso`` is ``treeiso.fit(y, tree, w, loss=...)``
on a prepared Tree (the family's reference); ``treeiso certify`` is ``treeiso.certify`` of
that fit (the same loss); ``treeiso L2`` is the least-squares fit of the same data on the
same tree (IRT-BIN, PAV or the broom kernel, as ``method="auto"`` picks); the peers are
``model-diagnostics`` (its generalized PAV, chains, L1 and quantile only) and ``HiGHS``
(``scipy.optimize.linprog(method="highs")`` on the sparse linear program, the one solve that
finds the optimal objective; up to ``--lp-up-to`` nodes). The peers' ``extra.rel_objective_diff``
compares their objective with treeiso's. Timings are medians of ``--repeats`` samples after a
warm-up (``bench_cpu.median_time``); the file ``benchmarks/results/robust.json`` is rewritten
after every record, and the scalars state the speed targets as measured ratios.
"""

import argparse
from pathlib import Path

import numpy as np

from _record import Results
from bench_cpu import decade_sizes, make_parent, median_time, size_arguments

HERE = Path(__file__).resolve().parent
SHAPES = ("chain", "random", "star", "broom")
SHAPE_NAMES = {"chain": "chain (in order)", "random": "random tree", "star": "star",
               "broom": "broom (8-node handle)"}
LOSSES = ("l1", "quantile", "linf")
QUANTILE = 0.9
BROOM_HANDLE = 8


def loss_name(loss):
    return {"l1": "L1", "quantile": f"quantile {QUANTILE}", "linf": "L-infinity"}[loss]


def make_tree_parent(shape, n, rng):
    """Parent arrays; a broom is a chain of BROOM_HANDLE nodes whose last node holds every
    other node as a leaf (ids shuffled, like the other shapes except the chain)."""
    if shape != "broom":
        return make_parent(shape, n, rng)
    h = min(BROOM_HANDLE, n)
    parent = np.concatenate([np.arange(-1, h - 1), np.full(n - h, h - 1)]).astype(np.int64)
    perm = rng.permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[perm] = np.where(parent >= 0, perm[np.maximum(parent, 0)], -1)
    return out


def objective(loss, y, x, w):
    """The loss of ``x`` (:func:`treeiso.objective`, at this benchmark's quantile level)."""
    import treeiso

    return float(treeiso.objective(y, x, w, loss=loss,
                                   quantile=QUANTILE if loss == "quantile" else None))


def highs_objective(loss, y, w, tree):
    """The optimal objective from one HiGHS solve of the sparse linear program."""
    from treeiso._backends.scipy_ref import linf_lp, quantile_lp

    if loss == "linf":
        return linf_lp(y, w, tree, float(y.min()), float(y.max()))[0]
    if loss == "l1":   # the pinball loss at 1/2 is half the L1 loss
        return 2.0 * quantile_lp(y, w, tree, None, None, 0.5)[1]
    return quantile_lp(y, w, tree, None, None, QUANTILE)[1]


def model_diagnostics_fit():
    """model-diagnostics' generalized PAV (a private module: the package exports no
    isotonic function of its own), or None if it is not installed."""
    try:
        from model_diagnostics._utils.isotonic import isotonic_regression
    except ImportError:
        return None
    return isotonic_regression


def bench(res, args, sizes):
    import treeiso

    md = model_diagnostics_fit()
    if md is None:
        print("model-diagnostics is not installed: pip install model-diagnostics "
              "(its columns left empty)")
        res.scalar("model-diagnostics", "not installed")
    rng = np.random.default_rng(0)
    print(f"{'family':34s} {'n':>8s} {'fit':>9s} {'certify':>9s} {'L2':>9s} {'peer':>9s}")
    for shape in args.shapes:
        for n in sizes:
            tree = treeiso.Tree(make_tree_parent(shape, n, rng))
            y = rng.normal(size=n)
            w = np.ones(n)   # model-diagnostics has no weighted quantiles
            for loss in args.losses:
                fam = f"{loss_name(loss)}, {SHAPE_NAMES[shape]}"
                kw = {"loss": loss, "quantile": QUANTILE if loss == "quantile" else None}
                t = median_time(lambda: treeiso.fit(y, tree, w, **kw), args.repeats)
                x = treeiso.fit(y, tree, w, **kw)
                res.add(fam, n, "treeiso", t, objective=objective(loss, y, x, w))
                cert = treeiso.certify(y, tree, x, w, **kw)
                t_c = median_time(lambda: treeiso.certify(y, tree, x, w, **kw), args.repeats)
                res.add(fam, n, "treeiso certify", t_c, optimal=bool(cert.optimal))
                t_l2 = median_time(lambda: treeiso.fit(y, tree, w), args.repeats)
                res.add(fam, n, "treeiso L2", t_l2)
                peer = float("nan")
                best = objective(loss, y, x, w)
                if md is not None and shape == "chain" and loss != "linf":
                    level = 0.5 if loss == "l1" else QUANTILE

                    def call():
                        return md(y, None, increasing=False, functional="quantile", level=level)

                    peer = median_time(call, args.repeats if n < 1e5 else 3)  # seconds a call
                    x_md = call()[0]
                    res.add(fam, n, "model-diagnostics", peer, rel_objective_diff=float(
                        (objective(loss, y, x_md, w) - best) / max(abs(best), 1e-300)))
                if n <= args.lp_up_to:
                    lp_reps = max(1, min(args.repeats, 3))
                    t_lp = median_time(lambda: highs_objective(loss, y, w, tree), lp_reps,
                                       sample_s=0.0)
                    res.add(fam, n, "HiGHS", t_lp, rel_objective_diff=float(
                        (highs_objective(loss, y, w, tree) - best) / max(abs(best), 1e-300)))
                    peer = t_lp if np.isnan(peer) else peer
                print(f"{fam:34s} {n:8d} {t * 1e3:8.3f}m {t_c * 1e3:8.3f}m "
                      f"{t_l2 * 1e3:8.3f}m {peer * 1e3:8.3f}m", flush=True)


def targets(res):
    """The speed targets, as ratios of the records just written."""
    times = {(r["family"], r["n"], r["impl"]): r["median_s"] for r in res.doc["records"]}
    n_max = max((r["n"] for r in res.doc["records"]), default=0)
    l1_tree = f"{loss_name('l1')}, {SHAPE_NAMES['random']}"
    if (l1_tree, n_max, "treeiso") in times:
        res.scalar(f"L1 fit / L2 fit, random tree, n = {n_max} (target <= 3)", round(
            times[(l1_tree, n_max, "treeiso")] / times[(l1_tree, n_max, "treeiso L2")], 3))
    worst = max(((times[(f, n, "treeiso certify")] / times[(f, n, "treeiso")], f, n)
                 for f, n, i in times if i == "treeiso" and n == n_max), default=None)
    if worst:
        res.scalar(f"largest certify / fit at n = {n_max} (target <= 0.5)",
                   f"{worst[0]:.3f} ({worst[1]})")
    for loss in ("l1", "quantile"):
        fam = f"{loss_name(loss)}, {SHAPE_NAMES['chain']}"
        ratios = [times[(f, n, "treeiso")] / times[(f, n, "model-diagnostics")]
                  for f, n, i in times if f == fam and i == "model-diagnostics" and n >= 1000]
        if ratios:
            res.scalar(f"{fam}: largest treeiso / model-diagnostics, n >= 1e3 (target < 1)",
                       round(max(ratios), 3))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size_arguments(ap, SHAPES, max_n=1e6)
    ap.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    ap.add_argument("--lp-up-to", type=float, default=1e4,
                    help="time HiGHS up to this n (a solve of 1e4 nodes takes seconds)")
    ap.add_argument("--out", default=str(HERE / "results" / "robust.json"))
    args = ap.parse_args(argv)
    sizes = decade_sizes(args)
    res = Results(args.out, Path(args.out).stem, settings={
        "repeats": args.repeats, "sizes": sizes, "shapes": args.shapes,
        "losses": args.losses, "quantile": QUANTILE, "lp_up_to": int(args.lp_up_to),
        "values": "standard normal, unit weights (passed as an array)"})
    bench(res, args, sizes)
    targets(res)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
