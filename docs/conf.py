"""Sphinx configuration: numpydoc docstrings, the PyData theme, an autosummary API reference and a gallery.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (``-D plot_gallery=0`` skips running
the examples; ``tests/test_examples.py`` runs them instead).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import kernel_recovery

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # gallery_order.py

project = "kernel_recovery"
author = "kernel_recovery developers"
copyright = "kernel_recovery developers"
release = kernel_recovery.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # a local copy of MathJax: the maths render without internet access too
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "auto_examples/*.md5",
]
templates_path = ["_templates"]
default_role = "code"  # `x` is inline code, as in the docstrings; cross-references use explicit roles

# -- API reference ---------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types; signatures stay readable
numpydoc_show_class_members = False  # the autosummary class template lists members itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()  # structure errors still fail the build through -W

myst_heading_anchors = 3

# -- Gallery ---------------------------------------------------------------------------------------
# No interactive windows while the examples run.
os.environ.setdefault("MPLBACKEND", "Agg")

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # by name (a string, so that Sphinx can cache the configuration): docs/gallery_order.py
    "within_subsection_order": "gallery_order.ExampleOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "backreferences_dir": "generated/backreferences",
    "doc_module": ("kernel_recovery",),
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "show_memory": False,
}

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"kernel_recovery {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 5,
    # API pages (generated/) are one object each: an "on this page" box there would only repeat the title.
    "secondary_sidebar_items": {
        page: ["page-toc"] for page in ("index", "api", "scaling", "guide/*", "auto_examples/*")
    },
    "footer_start": ["copyright"],
    "footer_end": ["theme-version"],
}
# Example pages without the left navigation: their code gets the width (the gallery index links them all).
html_sidebars = {"auto_examples/*": []}
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_js_files = ["wrap-names.js"]  # break opportunities after the dots of long API names
html_show_sourcelink = False
