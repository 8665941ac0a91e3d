"""A read-only install with a read-only home runs, in fresh processes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import treeiso

CODE = """
import numpy as np, treeiso
from treeiso._kernels.jit import cache_location
print(cache_location()[0])
print(treeiso.fit([0.0, 1.0, 10.0], [-1, 0, 0]).tolist())
"""


def run_installed(tmp_path, tmpdir):
    """Run CODE against a copy of the package that nothing can write into, with HOME a file
    (so no ~/.cache): a file where ``__pycache__`` would go stops even root from writing."""
    site = tmp_path / "site"
    if not site.exists():
        pkg = site / "treeiso"
        shutil.copytree(Path(treeiso.__file__).parent, pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
        dirs = [pkg, *(d for d in pkg.rglob("*") if d.is_dir())]
        for d in dirs:
            (d / "__pycache__").write_text("not a directory")
        for p in sorted(pkg.rglob("*"), reverse=True) + [pkg]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        (tmp_path / "home").write_text("not a directory")
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmpdir), PYTHONPATH=str(site),
               PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    kind, x = out.stdout.split("\n")[:2]
    assert x == "[5.0, 1.0, 5.0]"
    return kind


def test_read_only_install_and_home(tmp_path):
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    tmp1 = tmp_path / "tmp1"
    tmp1.mkdir()
    # Falls back to a per-user folder in the temporary directory, and caches there.
    assert run_installed(tmp_path, tmp1) == "temp"
    cached = list((tmp1 / f"treeiso-numba-{uid}").rglob("*.nbi"))
    assert cached, "no kernel was cached in the temporary directory"
    # Nothing writable at all: no disk cache, and it still runs.
    tmp2 = tmp_path / "tmp2"
    tmp2.mkdir()
    (tmp2 / f"treeiso-numba-{uid}").write_text("not a directory")
    assert run_installed(tmp_path, tmp2) == "none"
