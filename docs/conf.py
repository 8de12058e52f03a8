"""Sphinx configuration of the scifact-pipeline documentation.

Build from the repository root (warnings are errors)::

    python -m sphinx -W -q -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))

# Importing the tasks must never reach the network (same as ``src/pipeline.py``).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import luigi  # noqa: E402

import scifact_pipeline  # noqa: E402

# -- Project ------------------------------------------------------------------------------------

project = "scifact-pipeline"
author = "scifact-pipeline contributors"
copyright = "scifact-pipeline contributors, Apache-2.0"  # noqa: A001 - Sphinx setting name
release = scifact_pipeline.__version__
version = ".".join(release.split(".")[:2])

# -- General ------------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []
language = "en"

# -- autodoc ------------------------------------------------------------------------------------

autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Methods such as ``run``/``requires``/``output`` would otherwise inherit luigi.Task's own
# docstrings, which describe luigi, not this package (and cross-reference luigi's manual).
autodoc_inherit_docstrings = False

napoleon_google_docstring = True
napoleon_numpy_docstring = False

# -- HTML ---------------------------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"scifact-pipeline {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Luigi + Dask pipeline that trains SciFact claim-verification models",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}

# -- Luigi parameters ---------------------------------------------------------------------------
# Luigi parameters are class attributes holding ``luigi.Parameter`` objects. autodoc would show
# them as ``<luigi.parameter.Parameter object at 0x...>``; instead each task's (or config
# class's) docstring gets a generated table of its parameters, read from the code, and the raw
# attributes are left out of the member list.


def _default_text(param: luigi.Parameter) -> str:
    default = getattr(param, "_default", None)
    if default is None or type(default).__name__ == "_NoValueType" or repr(default).startswith("<luigi"):
        return "(required)"
    return f"``{default!r}``"


def _param_lines(cls: type) -> list[str]:
    params = cls.get_params()
    if not params:
        return []
    family = cls.get_task_family()
    who = "" if issubclass(cls, luigi.Config) else "Unless a requiring task passes the value, "
    lines = [
        "",
        ".. rubric:: Luigi parameters",
        "",
        f"Defaults from the code. {who}``luigi.cfg`` section ``[{family}]`` or "
        f"``--{family}-<name>`` on the command line overrides them.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 22 18 18 42",
        "",
        "   * - name",
        "     - type",
        "     - default",
        "     - description",
    ]
    for name, param in params:
        kind = type(param).__name__
        if not getattr(param, "significant", True):
            kind += " (not in the output hash)"
        description = " ".join((param.description or "").split()) or "—"
        lines += [
            f"   * - ``{name}``",
            f"     - {kind}",
            f"     - {_default_text(param)}",
            f"     - {description}",
        ]
    lines.append("")
    return lines


def _is_luigi_class(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, luigi.Task)


def add_luigi_parameters(app, what, name, obj, options, lines):  # noqa: ANN001 - Sphinx hook
    if what == "class" and _is_luigi_class(obj):
        lines.extend(_param_lines(obj))


def skip_luigi_parameters(app, what, name, obj, skip, options):  # noqa: ANN001 - Sphinx hook
    if isinstance(obj, luigi.Parameter):
        return True
    return None


def luigi_signature(app, what, name, obj, options, signature, return_annotation):  # noqa: ANN001
    # Luigi tasks are built from their parameters (keyword arguments, listed in the table);
    # the metaclass's ``(*args, **kwargs)`` says nothing, so no signature is shown.
    if what == "class" and _is_luigi_class(obj):
        return "", None
    return None


def setup(app):  # noqa: ANN001 - Sphinx hook
    app.connect("autodoc-process-signature", luigi_signature)
    app.connect("autodoc-process-docstring", add_luigi_parameters)
    app.connect("autodoc-skip-member", skip_luigi_parameters)
    return {"parallel_read_safe": True}
