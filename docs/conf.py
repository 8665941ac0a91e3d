"""Sphinx configuration for the treeiso documentation.

Build (warnings are errors)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

Generated material (never committed): ``docs/generated/`` (the benchmark tables and plots
written by ``_ext/bench_pages.py``),
``docs/auto_examples/`` (sphinx-gallery output) and ``docs/_build/``.
Set ``TREEISO_DOCS_NO_GALLERY=1`` to skip running the gallery examples.
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
# Prefer the source tree, so the docs describe the code next to them even
# when the package is not installed (editable installs point here anyway).
sys.path.insert(0, str(ROOT / "src"))

import treeiso  # noqa: E402

project = "treeiso"
author = "treeiso developers"
copyright = "2025, treeiso developers"
version = release = getattr(treeiso, "__version__", "0.1.0")

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "bench_pages",
]

# docs/kd/: the generated report of the KD study (python -m examples.kd report --out docs/kd/quick),
# committed and included by distillation.rst, not pages of its own
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "kd"]
root_doc = "index"
default_role = "code"
nitpicky = False

# -- autodoc / numpydoc -------------------------------------------------------
# The API page uses autofunction/autoclass directly (one page, no generated
# stubs): autosummary's one-line summaries cut sentences at "..".
autodoc_typehints = "none"  # numpydoc's "Parameters" sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- sphinx-gallery ----------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples" / "gallery"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "download_all_examples": False,
    "abort_on_example_error": True,
    "plot_gallery": "False" if os.environ.get("TREEISO_DOCS_NO_GALLERY") else "True",
    "remove_config_comments": True,
    "min_reported_time": 1,
    "show_memory": False,
    "show_signature": False,
    "reset_modules": ("matplotlib",),
    "capture_repr": ("_repr_html_",),
    "doc_module": (),
    "backreferences_dir": None,
}

# -- HTML --------------------------------------------------------------------
html_theme = "furo"
html_title = f"treeiso {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "sidebar_hide_name": False,
    "navigation_with_keys": True,
}

# -- math --------------------------------------------------------------------
mathjax3_config = {
    "tex": {
        "macros": {
            "R": r"\mathbb{R}",
            "argmin": r"\operatorname*{arg\,min}",
        }
    }
}
