"""Torch-side timings: ``fit_topk`` (the Mixup tree per row) and batched chains.

For each B x c and dtype, ``fit_topk`` on a tensor is timed next to peers measured in the same
run: one ``torch.sort`` of the same tensor, the device-native broom path with each of its two
strategies (fixed point, sort), and a per-sample Python loop in the style of the distillation
paper's public code (Algorithm 1 of Cui & Yan 2021, run row by row: sort the row, then pool
the order violations one at a time). Batched chains (``treeiso.fit`` on ``Tree.chain``) are
timed next to ``torchisotonic.isotonic``. Medians of several runs after a warm-up; the GPU is
synchronized around each run. Results go to ``benchmarks/results/torch.json``.

    python benchmarks/bench_torch.py                 # CPU, all sizes
    python benchmarks/bench_torch.py --quick         # fewer repeats, smaller loop peer
    python benchmarks/bench_torch.py --device cuda --out /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import treeiso
from treeiso import _torch_backend as tb

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


def bench_topk(device, repeats, quick):
    rows = []
    g = torch.Generator().manual_seed(0)
    for n_rows, c in TOPK_SIZES:
        for dtype in (torch.float32, torch.float64):
            y = (torch.randn(n_rows, c, generator=g) * 3).to(device, dtype)
            lab = torch.stack([torch.randperm(c, generator=g)[:2] for _ in range(n_rows)])
            lab = lab.to(device)
            res = {"B": n_rows, "c": c, "dtype": str(dtype).replace("torch.", "")}
            res["fit_topk_s"] = timer(lambda: treeiso.fit_topk(y, lab), device, repeats)
            res["torch_sort_s"] = timer(lambda: torch.sort(y, -1), device, repeats)
            labc = tb._compact_labels(lab)
            for strategy in ("fixed_point", "sort"):
                res[f"native_{strategy}_s"] = timer(
                    lambda: tb._broom_native(y, None, labc, strategy), device, repeats)
            # The per-sample loop, on the same device as the paper's code would run it: on at
            # most 64 rows (then scaled), a few runs.
            n_loop = min(n_rows, 16 if quick else 64)
            yl, ll = y[:n_loop], lab[:n_loop]
            ref = treeiso.fit_topk(yl, ll)
            got = per_sample_loop(yl, ll)
            tol = 1e-4 if dtype == torch.float32 else 1e-10
            assert torch.allclose(got, ref, rtol=tol, atol=tol), "the loop peer disagrees"
            res["per_sample_loop_s"] = timer(lambda: per_sample_loop(yl, ll), device,
                                             max(1, repeats // 4), warmup=0) * n_rows / n_loop
            res["loop_rows_timed"] = n_loop
            res["ratio_vs_sort"] = res["fit_topk_s"] / res["torch_sort_s"]
            res["speedup_vs_loop"] = res["per_sample_loop_s"] / res["fit_topk_s"]
            rows.append(res)
            print(f"fit_topk {n_rows}x{c} {res['dtype']}: {res['fit_topk_s'] * 1e3:.3f} ms | "
                  f"sort {res['torch_sort_s'] * 1e3:.3f} ms (ratio {res['ratio_vs_sort']:.2f}) | "
                  f"native fp {res['native_fixed_point_s'] * 1e3:.3f} / sort "
                  f"{res['native_sort_s'] * 1e3:.3f} ms | loop "
                  f"{res['per_sample_loop_s'] * 1e3:.1f} ms (x{res['speedup_vs_loop']:.0f})",
                  flush=True)
    return rows


def bench_chains(device, repeats, quick):
    rows = []
    try:
        import torchisotonic

        torchisotonic.isotonic(torch.randn(2, 8, device=device))  # builds its extension
        peer_error = None
    except Exception as e:  # noqa: BLE001 - the peer is optional
        torchisotonic, peer_error = None, f"{type(e).__name__}: {e}"
        print(f"torchisotonic unavailable: {peer_error}")
    g = torch.Generator().manual_seed(1)
    sizes = CHAIN_SIZES[:1] if quick else CHAIN_SIZES
    for n_rows, n in sizes:
        tree = treeiso.Tree.chain(n)
        for dtype in (torch.float32, torch.float64):
            y = (torch.randn(n_rows, n, generator=g).cumsum(-1) * -0.1
                 + torch.randn(n_rows, n, generator=g)).to(device, dtype)
            res = {"B": n_rows, "n": n, "dtype": str(dtype).replace("torch.", "")}
            res["treeiso_s"] = timer(lambda: treeiso.fit(y, tree), device, repeats)
            order = torch.arange(n)
            if device.type != "cpu" or n <= 10_000:  # the CPU uses PAV; native is for GPUs
                res["treeiso_native_s"] = timer(lambda: tb._chain_op(y, None, order, True),
                                                device, repeats)
            if torchisotonic is not None:
                ref = torchisotonic.isotonic(y, increasing=False)
                assert torch.allclose(treeiso.fit(y, tree), ref, rtol=1e-4, atol=1e-4)
                res["torchisotonic_s"] = timer(
                    lambda: torchisotonic.isotonic(y, increasing=False), device, repeats)
                res["ratio_vs_torchisotonic"] = res["treeiso_s"] / res["torchisotonic_s"]
            else:
                res["torchisotonic_error"] = peer_error
            rows.append(res)
            peer = (f"torchisotonic {res['torchisotonic_s'] * 1e3:.3f} ms (ratio "
                    f"{res['ratio_vs_torchisotonic']:.2f})" if "torchisotonic_s" in res
                    else "torchisotonic n/a")
            print(f"chain {n_rows}x{n} {res['dtype']}: treeiso {res['treeiso_s'] * 1e3:.3f} ms | "
                  f"native {res.get('treeiso_native_s', float('nan')) * 1e3:.3f} ms | {peer}",
                  flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-chains", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "torch.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats = 3 if args.quick and args.repeats == 9 else args.repeats
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__, "python": sys.version.split()[0],
        "threads": torch.get_num_threads(), "repeats": repeats, "quick": args.quick,
        "broom_strategy_default": tb._BROOM_STRATEGY,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result["topk"] = bench_topk(device, repeats, args.quick)
    out.write_text(json.dumps(result, indent=2))  # kept if the chain part is cut short
    result["chains"] = [] if args.skip_chains else bench_chains(device, repeats, args.quick)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
