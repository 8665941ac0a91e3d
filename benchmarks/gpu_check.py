"""One GPU session's worth of checks: the CUDA tests, then the GPU timings, in one call.

    python benchmarks/gpu_check.py --out /path/gpu.json [--budget 280]

Runs ``pytest -m cuda`` on tests/test_torch.py and tests/test_topk.py (every CUDA-parametrized
test: values against the NumPy core, gradcheck, opcheck, mixed devices), then
``bench_torch.py --device cuda --quick`` (fit_topk with both native strategies next to
torch.sort, chains next to torchisotonic), and writes one JSON with the test outcome and
the timings. Stops each step at its share of ``--budget`` seconds (default 280: under five
minutes in all). Without a CUDA device it writes ``{"skipped": ...}`` and exits 0.
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
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        import torch
    except ImportError:
        report["skipped"] = "torch is not installed"
        out.write_text(json.dumps(report, indent=2))
        print(report["skipped"])
        return 0
    if not torch.cuda.is_available():
        report["skipped"] = "no CUDA device"
        out.write_text(json.dumps(report, indent=2))
        print(report["skipped"])
        return 0
    report["device"] = torch.cuda.get_device_name(0)
    report["torch"] = torch.__version__
    t0 = time.perf_counter()
    junit = out.with_suffix(".junit.xml")
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
           f"--junitxml={junit}", "tests/test_torch.py", "tests/test_topk.py"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              timeout=0.45 * args.budget)
        report["tests"] = {"returncode": proc.returncode,
                           "summary": proc.stdout.strip().splitlines()[-1:],
                           "tail": proc.stdout[-4000:] + proc.stderr[-2000:]}
    except subprocess.TimeoutExpired as e:
        report["tests"] = {"returncode": None, "timeout_s": e.timeout}
    report["tests"]["seconds"] = time.perf_counter() - t0
    print("tests:", report["tests"].get("summary"), flush=True)
    out.write_text(json.dumps(report, indent=2))  # keep the test outcome if timing dies

    t1 = time.perf_counter()
    bench_json = out.with_name(out.stem + ".bench.json")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_torch.py"), "--device", "cuda",
           "--quick", "--repeats", "5", "--out", str(bench_json)]
    if args.skip_chains:
        cmd.append("--skip-chains")
    try:
        remaining = args.budget - (time.perf_counter() - t0) - 5
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              timeout=max(remaining, 10))
        report["bench_returncode"] = proc.returncode
        report["bench_log"] = proc.stdout[-6000:] + proc.stderr[-3000:]
        if bench_json.exists():
            report["bench"] = json.loads(bench_json.read_text())
    except subprocess.TimeoutExpired as e:
        report["bench_returncode"] = None
        report["bench_log"] = f"timed out after {e.timeout:.0f} s"
    report["bench_seconds"] = time.perf_counter() - t1
    out.write_text(json.dumps(report, indent=2))
    print(report.get("bench_log", ""))
    print(f"wrote {out}")
    ok = report["tests"].get("returncode") == 0 and report.get("bench_returncode") == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
