"""The one layout of ``benchmarks/results/*.json``, written by every benchmark script.

    {
      "schema": "treeiso-bench/1",
      "benchmark": "cpu",                       # the file's stem: cpu, torch, gpu, ...
      "command": "python benchmarks/bench_cpu.py --max-n 1e6",
      "machine": {"platform": "...", "cpus": 2, "python": "3.11.7", ...},
      "settings": {"repeats": 5, ...},          # how the run was made
      "records": [                              # one per (family, size, implementation)
        {"family": "random tree", "n": 1000, "rows": 1, "impl": "treeiso",
         "median_s": 9.5e-05, "extra": {"max_abs_diff": 2.2e-16}},
        ...
      ],
      "scalars": {"import_s": 0.05, ...},       # single numbers (or short strings)
      "skipped": "no CUDA device"               # only when nothing was measured
    }

Within a family the first implementation written is the reference: the docs divide its
time by every other implementation's time at the same size (below 1: the reference is
faster). Implementations whose name does not start with "treeiso" are peers; the docs list
every size at which a peer is faster. ``median_s`` is null for a timing that was skipped.
``docs/_ext/bench_pages.py`` reads this layout and only this one.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

SCHEMA = "treeiso-bench/1"
ROOT = Path(__file__).resolve().parent.parent


def paired_times(fns, repeats):
    """Median seconds of each of ``fns`` (after one warm-up call each), sampled in turn
    (a, b, a, b, ...) so that a change in the machine's load during the run affects all of
    them alike."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [float(statistics.median(ts)) for ts in times]


def time_threads(res, family, n, rows, call, repeats):
    """Time ``call(2)`` and ``call(1)`` (a thread count) in turn with :func:`paired_times`,
    record them in ``res`` as ``"treeiso, 2 threads"`` (the family's reference) and
    ``"treeiso, 1 thread"``, and return ``{2: seconds, 1: seconds}``."""
    ts = dict(zip((2, 1), paired_times([lambda: call(2), lambda: call(1)], repeats)))
    for threads in (2, 1):
        res.add(family, n, f"treeiso, {threads} thread{'s' * (threads > 1)}", ts[threads], rows=rows)
    return ts


def machine():
    import numpy as np

    out = {"platform": platform.platform(), "processor": platform.processor() or
           platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
           "numpy": np.__version__}
    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].__version__
    try:
        out["load_average"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        pass
    return out


class Results:
    """Collects records and rewrites the file after each one (a killed run keeps them)."""

    def __init__(self, path, benchmark, settings=None, argv=None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        argv = sys.argv if argv is None else argv
        self.doc = {
            "schema": SCHEMA, "benchmark": benchmark,
            "command": " ".join(["python", os.path.relpath(os.path.abspath(argv[0]), ROOT)
                                 if argv else "?", *argv[1:]]),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": machine(), "settings": dict(settings or {}),
            "records": [], "scalars": {},
        }

    def add(self, family, n, impl, median_s, rows=1, **extra):
        rec = {"family": family, "n": int(n), "rows": int(rows), "impl": impl,
               "median_s": None if median_s is None else float(median_s)}
        if extra:
            rec["extra"] = extra
        self.doc["records"].append(rec)
        self.save()
        return rec

    def scalar(self, name, value):
        self.doc["scalars"][name] = value
        self.save()

    def skip(self, why):
        self.doc["skipped"] = why
        self.save()

    def save(self):
        self.doc["machine"] = {**self.doc["machine"], **{
            k: v for k, v in machine().items() if k not in self.doc["machine"]}}
        self.path.write_text(json.dumps(self.doc, indent=1))
