"""Torch-side timings: ``fit_topk`` (the Mixup tree per row) and batched chains.

For each B x c and dtype, ``fit_topk`` on a tensor is timed next to peers measured in the same
run: one ``torch.sort`` of the same tensor, the device-native broom path with each of its two
strategies (fixed point, sort), and a per-sample Python loop in the style of the distillation
paper's public code (Algorithm 1 of Cui & Yan 2021, run row by row: sort the row, then pool
the order violations one at a time). Batched chains (``treeiso.fit`` on ``Tree.chain``) are
timed next to ``torchisotonic.isotonic``. On the CPU, ``fit_topk`` on 4096 x 1000 is also
timed with its rows on 1 and on 2 threads. Medians of several runs after a warm-up; the GPU
is synchronized around each run. Results go to ``benchmarks/results/torch.json``, in the
layout of ``benchmarks/_record.py``.

    python benchmarks/bench_torch.py                 # CPU, all sizes
    python benchmarks/bench_torch.py --quick         # fewer repeats, smaller loop peer
    python benchmarks/bench_torch.py --device cuda --out /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

import treeiso
from _record import Results, time_threads
from treeiso._backends import torch_native as tn
from treeiso._backends.torch_ops import chain_op

TOPK_SIZES = [(256, 100), (256, 1000), (4096, 1000)]
CHAIN_SIZES = [(256, 1000), (16, 100_000)]


def timer(fn, device, repeats, warmup=2):
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_sample_loop(y, labels):
    """The paper-style peer: one sample at a time, in Python (Algorithm 1 row by row).

    For labels (a, b): x_a >= x_b >= every other class. Per sample, repeatedly take the
    largest class not yet pooled; while it exceeds the mean of b's block, pool it; when
    that block's mean exceeds y_a, pool a too and go on. Tensor ops per step, as in the
    paper's public code. Same-class rows are stars.
    """
    out = y.clone()
    c = y.shape[1]
    neg_inf = torch.tensor(float("-inf"), dtype=y.dtype, device=y.device)
    for r in range(y.shape[0]):
        row = y[r]
        a, b = int(labels[r, 0]), int(labels[r, 1])
        free = torch.ones(c, dtype=torch.bool, device=y.device)
        free[a] = False
        free[b] = False
        block = torch.zeros(c, dtype=torch.bool, device=y.device)
        block[b] = True
        total, count = row[b].clone(), 1
        merged = a == b
        while True:
            cand = torch.where(free, row, neg_inf)
            j = int(torch.argmax(cand))
            if bool(cand[j] > total / count):  # a violation: pool it
                total = total + row[j]
                count += 1
                free[j] = False
                block[j] = True
                continue
            if not merged and bool(total / count > row[a]):
                total = total + row[a]
                count += 1
                block[a] = True
                merged = True
                continue
            break
        out[r] = torch.where(block, total / count, row)
    return out


def bench_topk(res, device, repeats, quick):
    g = torch.Generator().manual_seed(0)
    for n_rows, c in TOPK_SIZES:
        for dtype in (torch.float32, torch.float64):
            y = (torch.randn(n_rows, c, generator=g) * 3).to(device, dtype)
            lab = torch.stack([torch.randperm(c, generator=g)[:2] for _ in range(n_rows)])
            lab = lab.to(device)
            fam = f"fit_topk, {str(dtype).replace('torch.', '')}, 2 labels"
            t = timer(lambda: treeiso.fit_topk(y, lab), device, repeats)
            res.add(fam, c, "treeiso", t, rows=n_rows)
            t_sort = timer(lambda: torch.sort(y, -1), device, repeats)
            res.add(fam, c, "torch.sort (a floor, not a solver)", t_sort, rows=n_rows)
            labc = tn.compact_labels(lab)
            native = {}
            for strategy in ("fixed_point", "sort"):
                native[strategy] = timer(lambda: tn.broom_native(y, None, labc, strategy),
                                         device, repeats)
                res.add(fam, c, f"treeiso native broom, {strategy.replace('_', ' ')}",
                        native[strategy], rows=n_rows)
            # The per-sample loop, on the same device as the paper's code would run it: on at
            # most 64 rows (then scaled), a few runs.
            n_loop = min(n_rows, 16 if quick else 64)
            yl, ll = y[:n_loop], lab[:n_loop]
            ref = treeiso.fit_topk(yl, ll)
            got = per_sample_loop(yl, ll)
            tol = 1e-4 if dtype == torch.float32 else 1e-10
            assert torch.allclose(got, ref, rtol=tol, atol=tol), "the loop peer disagrees"
            t_loop = timer(lambda: per_sample_loop(yl, ll), device, max(1, repeats // 4),
                           warmup=0) * n_rows / n_loop
            res.add(fam, c, "per-sample loop (paper-style)", t_loop, rows=n_rows,
                    rows_timed=n_loop)
            print(f"{fam} {n_rows}x{c}: {t * 1e3:.3f} ms | sort {t_sort * 1e3:.3f} ms | "
                  f"native fp {native['fixed_point'] * 1e3:.3f} / sort "
                  f"{native['sort'] * 1e3:.3f} ms | loop {t_loop * 1e3:.1f} ms",
                  flush=True)


def bench_threads(res, device, repeats):
    """fit_topk on CPU tensors, rows on 2 threads against 1 (4096 x 1000, float32)."""
    g = torch.Generator().manual_seed(2)
    n_rows, c = 4096, 1000
    y = torch.randn(n_rows, c, generator=g) * 3
    lab = torch.stack([torch.randperm(c, generator=g)[:2] for _ in range(n_rows)])
    fam = "threads: fit_topk on CPU tensors, float32"
    ts = time_threads(res, fam, c, n_rows, lambda k: treeiso.fit_topk(y, lab, threads=k), 2 * repeats + 1)
    print(f"{fam} {n_rows}x{c}: 1 thread {ts[1] * 1e3:.2f} ms, 2 threads "
          f"{ts[2] * 1e3:.2f} ms, speed-up {ts[1] / ts[2]:.2f}", flush=True)


def bench_chains(res, device, repeats, quick):
    try:
        import torchisotonic

        torchisotonic.isotonic(torch.randn(2, 8, device=device))  # builds its extension
        peer_error = None
    except Exception as e:  # noqa: BLE001 - the peer is optional
        torchisotonic, peer_error = None, f"{type(e).__name__}: {e}"
        print(f"torchisotonic unavailable: {peer_error}")
        res.scalar("torchisotonic unavailable", peer_error[:200])
    g = torch.Generator().manual_seed(1)
    sizes = CHAIN_SIZES[:1] if quick else CHAIN_SIZES
    for n_rows, n in sizes:
        tree = treeiso.Tree.chain(n)
        for dtype in (torch.float32, torch.float64):
            y = (torch.randn(n_rows, n, generator=g).cumsum(-1) * -0.1
                 + torch.randn(n_rows, n, generator=g)).to(device, dtype)
            fam = f"chain, {str(dtype).replace('torch.', '')}"
            t = timer(lambda: treeiso.fit(y, tree), device, repeats)
            res.add(fam, n, "treeiso", t, rows=n_rows)
            order = torch.arange(n)
            if device.type != "cpu" or n <= 10_000:  # the CPU uses PAV; native is for GPUs
                res.add(fam, n, "treeiso native chain",
                        timer(lambda: chain_op(y, None, order, True), device, repeats),
                        rows=n_rows)
            peer = "torchisotonic n/a"
            if torchisotonic is not None:
                ref = torchisotonic.isotonic(y, increasing=False)
                assert torch.allclose(treeiso.fit(y, tree), ref, rtol=1e-4, atol=1e-4)
                t_p = timer(lambda: torchisotonic.isotonic(y, increasing=False), device,
                            repeats)
                res.add(fam, n, "torchisotonic", t_p, rows=n_rows)
                peer = f"torchisotonic {t_p * 1e3:.3f} ms (ratio {t / t_p:.2f})"
            print(f"{fam} {n_rows}x{n}: treeiso {t * 1e3:.3f} ms | {peer}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", nargs="+", default=["topk", "threads", "chains"],
                    choices=["topk", "threads", "chains"])
    ap.add_argument("--skip-chains", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "torch.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats = 3 if args.quick and args.repeats == 9 else args.repeats
    res = Results(args.out, "torch", settings={
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch threads": torch.get_num_threads(), "repeats": repeats, "quick": args.quick,
        "native broom strategy": tn.BROOM_STRATEGY})
    if "topk" in args.parts:
        bench_topk(res, device, repeats, args.quick)
    if "threads" in args.parts and device.type == "cpu":
        bench_threads(res, device, repeats)
    if "chains" in args.parts and not args.skip_chains:
        bench_chains(res, device, repeats, args.quick)
    print(f"wrote {args.out}")
    return res.doc


if __name__ == "__main__":
    main()
