"""One GPU session's worth of checks: the CUDA tests, then the GPU timings, in one call.

    python benchmarks/gpu_check.py --out /path/gpu.json [--budget 280]

Runs ``pytest -m cuda`` on the test files that have CUDA cases (every CUDA-parametrized
test: values against the NumPy core, gradcheck, opcheck, mixed devices), then
``bench_torch.py --device cuda --quick`` (fit_topk with both native strategies next to
torch.sort, chains next to torchisotonic), and writes one JSON with the test outcome and
the timings in the layout of ``benchmarks/_record.py`` (the test outcome among the scalars,
the timings as records), then ``bench_kd_step.py --device cuda`` (a KD-aug and a KD-i
training step of the KD example in float32, bfloat16 and float16 autocast, with and without
channels-last). Stops each step at its share of ``--budget`` seconds (default 280: under five
minutes in all). Without a CUDA device it writes a report with ``"skipped"`` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=280.0, help="seconds for everything")
    ap.add_argument("--skip-chains", action="store_true",
                    help="no chain timings (torchisotonic builds its CUDA kernels first)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _record import Results

    res = Results(out, "gpu", settings={"budget_s": args.budget,
                                        "skip_chains": args.skip_chains})
    try:
        import torch
    except ImportError:
        res.skip("torch is not installed")
        print("torch is not installed")
        return 0
    if not torch.cuda.is_available():
        res.skip("no CUDA device")
        print("no CUDA device")
        return 0
    res.doc["machine"]["device"] = torch.cuda.get_device_name(0)
    res.doc["machine"]["torch"] = torch.__version__
    t0 = time.perf_counter()
    junit = out.with_suffix(".junit.xml")
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
           f"--junitxml={junit}", "tests/test_torch.py", "tests/test_topk.py",
           "tests/test_backends.py", "tests/test_adversarial.py", "tests/test_distill.py"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              timeout=0.45 * args.budget)
        summary = (proc.stdout.strip().splitlines() or [""])[-1]
        res.scalar("cuda tests: exit code", proc.returncode)
        res.scalar("cuda tests: summary", summary[:200])
        tests_ok = proc.returncode == 0
        log = proc.stdout[-4000:] + proc.stderr[-2000:]
    except subprocess.TimeoutExpired as e:
        res.scalar("cuda tests: timed out after (s)", e.timeout)
        tests_ok, log, summary = False, "", "timed out"
    res.scalar("cuda tests: seconds", round(time.perf_counter() - t0, 1))
    print("tests:", summary, flush=True)
    print(log[-3000:])

    t1 = time.perf_counter()
    bench_json = out.with_name(out.stem + ".bench.json")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_torch.py"), "--device", "cuda",
           "--quick", "--repeats", "5", "--out", str(bench_json)]
    if args.skip_chains:
        cmd.append("--skip-chains")
    bench_ok = False
    try:
        remaining = 0.8 * args.budget - (time.perf_counter() - t0)  # the rest: the KD step
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              timeout=max(remaining, 10))
        bench_ok = proc.returncode == 0
        print(proc.stdout[-6000:] + proc.stderr[-3000:])
    except subprocess.TimeoutExpired as e:
        print(f"bench_torch.py timed out after {e.timeout:.0f} s")
    if bench_json.exists():  # whatever it measured, even when cut short
        bench = json.loads(bench_json.read_text())
        res.doc["records"].extend(bench.get("records", []))
        res.doc["settings"].update(bench.get("settings", {}))
        bench_json.unlink()
    res.scalar("bench: seconds", round(time.perf_counter() - t1, 1))

    # A distillation training step of the KD example with and without AMP and channels-last.
    t2 = time.perf_counter()
    step_json = out.with_name(out.stem + ".kd_step.json")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_kd_step.py"), "--device", "cuda",
           "--repeats", "10", "--out", str(step_json)]
    step_ok = False
    try:
        remaining = args.budget - (time.perf_counter() - t0) - 5
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(remaining, 10))
        step_ok = proc.returncode == 0
        print(proc.stdout[-3000:] + proc.stderr[-3000:])
    except subprocess.TimeoutExpired as e:
        print(f"bench_kd_step.py timed out after {e.timeout:.0f} s")
    if step_json.exists():
        res.doc["records"].extend(json.loads(step_json.read_text()).get("records", []))
        step_json.unlink()
    res.scalar("kd step bench: seconds", round(time.perf_counter() - t2, 1))
    print(f"wrote {out}")
    return 0 if tests_ok and bench_ok and step_ok else 1


if __name__ == "__main__":
    sys.exit(main())
