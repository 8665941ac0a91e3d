"""The benchmark results layout: what benchmarks/_record.py writes, docs/_ext/bench_pages.py
reads (and nothing else)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(path, name):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def mods():
    return _module("benchmarks/_record.py", "_record"), _module("docs/_ext/bench_pages.py",
                                                                "bench_pages")


def test_written_file_renders_with_ratios_and_losses(mods, tmp_path):
    record, pages = mods
    res = record.Results(tmp_path / "cpu.json", "cpu", settings={"repeats": 3},
                         argv=["benchmarks/bench_cpu.py", "--max-n", "1e3"])
    res.add("chain", 100, "treeiso", 2e-6)
    res.add("chain", 100, "SciPy", 1e-6, max_abs_diff=0.0)       # treeiso loses here
    res.add("chain", 1000, "treeiso", 4e-6)
    res.add("chain", 1000, "SciPy", 8e-6)
    res.add("threads", 1000, "treeiso, 2 threads", 1.0, rows=64)
    res.add("threads", 1000, "treeiso, 1 thread", 2.0, rows=64)
    res.scalar("import treeiso (s)", 0.05)
    doc = json.loads((tmp_path / "cpu.json").read_text())
    assert doc["schema"] == record.SCHEMA and doc["records"][1]["extra"] == {"max_abs_diff": 0.0}
    text = "\n".join(pages.render("cpu", tmp_path / "cpu.json", tmp_path, plots=False))
    assert "2.0 µs" in text and "1.0 µs (2)" in text and "8.0 µs (0.5)" in text
    assert "**Where treeiso loses** (1 of 2 comparisons)" in text
    assert "chain, n = 100: SciPy is 2x faster" in text
    assert "64 x 1000" in text and "2.00 s (0.5)" in text   # reference: 2 threads
    assert "import treeiso (s): ``0.05``" in text


def test_other_layouts_are_reported_not_guessed(mods, tmp_path):
    _, pages = mods
    old = tmp_path / "torch.json"
    old.write_text(json.dumps({"device": "x", "topk": [{"B": 1, "c": 2, "fit_topk_s": 1.0}]}))
    text = "\n".join(pages.render("torch", old, tmp_path, plots=False))
    assert "could not be read" in text and "treeiso-bench/1" in text
    skipped = tmp_path / "gpu.json"
    skipped.write_text(json.dumps({"schema": "treeiso-bench/1", "skipped": "no CUDA device"}))
    assert "skipped (no CUDA device)" in "\n".join(pages.render("gpu", skipped, tmp_path))


def test_committed_results_are_in_the_layout(mods):
    _, pages = mods
    files = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    assert files
    for path in files:
        meta, scalars, rows = pages.load(path)
        assert rows and ("cpus" in meta or "device" in meta), path
