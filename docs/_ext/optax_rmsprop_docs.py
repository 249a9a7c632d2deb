"""Build-time steps of the docs: run the tour, bring in the notebooks.

``builder-inited`` runs before Sphinx looks for source files, so

- ``python -m optax_rmsprop --out docs/_build/generated/tour`` runs here, its standard output
  saved as ``output.txt`` beside the plots (``getting_started.md`` includes both); a tour
  that fails fails the build;
- each ``colab/*.ipynb`` is copied to ``docs/notebooks/`` (git ignores the copies), with its
  Colab badge, an image from the network, turned into a plain link. myst-nb executes the
  copies when it reads them.

It also writes the API's pages: one per public object (``docs/api/<name>.rst``, which git
ignores), listed by the ``public-api`` directive of ``api.md`` as autosummary tables; and it
writes the type aliases of signatures as the source does (see ``on_process_signature``).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys
import time

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

import optax_rmsprop  # noqa: E402  (conf.py puts the checkout first on sys.path)

logger = logging.getLogger(__name__)

DOCS = pathlib.Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
TOUR = DOCS / "_build" / "generated" / "tour"
NOTEBOOKS = DOCS / "notebooks"
ALIAS_REF = re.compile(r"TypeAliasForwardRef\('([^']*)'\)")
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)]*)\)")


def run_tour() -> None:
    TOUR.mkdir(parents=True, exist_ok=True)
    for stale in TOUR.iterdir():
        stale.unlink()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "optax_rmsprop", "--out", str(TOUR)],
        cwd=ROOT,
        env={**os.environ, "TQDM_DISABLE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ExtensionError(f"the tour failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    # The paths of the plots, relative to the checkout rather than this machine's.
    text = done.stdout.replace(str(TOUR), str(TOUR.relative_to(ROOT)))
    (TOUR / "output.txt").write_text(text)
    logger.info("[optax_rmsprop] tour ran in %.1f s", time.perf_counter() - start)


def copy_notebooks() -> None:
    NOTEBOOKS.mkdir(exist_ok=True)
    sources = sorted((ROOT / "colab").glob("*.ipynb"))
    names = {path.name for path in sources}
    for stale in NOTEBOOKS.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()
    for source in sources:
        nb = json.loads(source.read_text())
        first = nb["cells"][0]
        text = "".join(first["source"])
        first["source"] = BADGE.sub(r"[Open in Colab](\1)", text)
        copy = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        target = NOTEBOOKS / source.name
        if not target.exists() or target.read_text() != copy:  # unchanged: no re-read
            target.write_text(copy)


# ---------------------------------------------------------------------------
# The API: a page per public object.

API = DOCS / "api"  # the pages, written at each build
# The package and its public modules: those it exports, and datasets (imported on its own).
MODULES = [
    "optax_rmsprop",
    *(
        f"optax_rmsprop.{m}"
        for m in optax_rmsprop.__all__
        if inspect.ismodule(getattr(optax_rmsprop, m))
    ),
    "optax_rmsprop.datasets",
]
# What a page adds below its object's docstring: the fields of the NamedTuples.
FIELDS = {
    "optax_rmsprop.RMSPropState": """\
Its fields, in order:

``count``
   int32 number of steps taken, saturating at 2**31 - 1.
``nu``
   the leaky average :math:`v` of :math:`|g|^2`, one leaf per parameter (a
   :class:`~optax_rmsprop.quantize.QuantizedArray` per leaf for ``nu_dtype="int8"``).
``mu``
   the leaky average :math:`\\bar m` of :math:`g` (``centered=True``), else ``None``.
``momentum``
   the momentum buffer :math:`b` (``momentum`` not ``None``), else ``None``.
""",
    "optax_rmsprop.StateSize": """\
``state_bytes`` is the state's size in bytes, ``num_params`` the number of parameter values,
and the property ``bytes_per_param`` their ratio.
""",
}


def public_names(module_name: str) -> list[str]:
    """The public objects of a module (``__all__``, modules left out), each documented once:
    a name that is also the package's (``quantize.Int8``) is documented there."""
    module = importlib.import_module(module_name)
    top = {id(getattr(optax_rmsprop, n)) for n in optax_rmsprop.__all__}
    return [
        name
        for name in module.__all__
        if not inspect.ismodule(getattr(module, name))
        and (module is optax_rmsprop or id(getattr(module, name)) not in top)
    ]


def api_page(module_name: str, name: str) -> str:
    """The reStructuredText of one object's page."""
    full = f"{module_name}.{name}"
    obj = getattr(importlib.import_module(module_name), name)
    lines = [full, "=" * len(full), "", f".. currentmodule:: {module_name}", ""]
    if inspect.isclass(obj):
        lines.append(f".. autoclass:: {name}")
        fields = getattr(obj, "_fields", ())
        lines += ["   :members:"] + ([f"   :exclude-members: {', '.join(fields)}"] * bool(fields))
    elif callable(obj) and not hasattr(obj, "__origin__"):  # a type alias is data
        lines.append(f".. autofunction:: {name}")
    else:
        lines.append(f".. autodata:: {name}")
        if len(repr(obj)) > 60:  # a value too long for one line: the docstring says it
            lines.append("   :no-value:")
    if full in FIELDS:
        lines += ["", *("   " + line if line else "" for line in FIELDS[full].splitlines())]
    return "\n".join(lines) + "\n"


def write_api_pages() -> None:
    API.mkdir(exist_ok=True)
    pages = {
        f"{module}.{name}.rst": api_page(module, name)
        for module in MODULES
        for name in public_names(module)
    }
    for stale in API.glob("*.rst"):
        if stale.name not in pages:
            stale.unlink()
    for name, text in pages.items():
        target = API / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)


class PublicApi(SphinxDirective):
    """``.. public-api:: module``: an autosummary table, linking each object's page, of the
    module's public objects (``:names:`` picks some, in order; ``:exclude:`` drops some)."""

    required_arguments = 1
    option_spec = {"names": directives.unchanged, "exclude": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        module = self.arguments[0]
        names = self.options.get("names", "").split() or public_names(module)
        names = [n for n in names if n not in self.options.get("exclude", "").split()]
        text = [f".. currentmodule:: {module}", "", ".. autosummary::", "   :toctree: api", ""]
        text += [f"   {name}" for name in names]
        container = nodes.container()
        self.state.nested_parse(StringList(text, source=self.get_source_info()[0]), 0, container)
        return container.children


def on_builder_inited(app: Sphinx) -> None:
    run_tour()
    copy_notebooks()
    write_api_pages()


# The type aliases a signature names, as the source writes them. optax reads the real
# annotations of the package's functions, so the source keeps them objects, not strings, and
# autodoc_type_aliases (which only maps strings) cannot shorten them: autodoc writes each out
# in full, and optax.ScalarOrSchedule fills some fifteen lines of rmsprop's signature.
# on_process_signature puts the names back. optax.Updates and optax.Params are one object;
# an argument called params shows the second name.
def _aliases() -> list[tuple[str, str]]:
    """(expansion, name) pairs, longest expansion first, in each of autodoc's modes."""
    import jax
    import optax
    from sphinx.util.typing import stringify_annotation

    import optax_rmsprop

    aliases = {
        "MaskOrFn": optax_rmsprop.MaskOrFn,
        "StateDtype": optax_rmsprop.StateDtype,
        "optax.ScalarOrSchedule": optax.ScalarOrSchedule,
        "optax.Schedule": optax.Schedule,
        "optax.Updates": optax.Updates,
        "jax.typing.ArrayLike": jax.typing.ArrayLike,
        "jax.typing.DTypeLike": jax.typing.DTypeLike,
    }
    pairs = {
        stringify_annotation(alias, mode): name
        for name, alias in aliases.items()
        for mode in ("smart", "fully-qualified-except-typing", "fully-qualified")
    }
    return sorted(pairs.items(), key=lambda pair: -len(pair[0]))


def name_aliases(text: str) -> str:
    """A signature with each written-out alias replaced by its name."""
    text = ALIAS_REF.sub(r"\1", text)  # Sphinx 9: a string alias inside a union
    for expansion, name in _ALIASES:
        if name == "optax.Updates":
            text = text.replace(f"params: {expansion}", "params: optax.Params")
        text = text.replace(expansion, name)
    return text


_ALIASES = _aliases()


def on_process_signature(app, what, name, obj, options, signature, return_annotation):
    del app, what, name, obj, options
    if signature is None:
        return None
    return name_aliases(signature), return_annotation and name_aliases(return_annotation)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", on_builder_inited)
    app.add_directive("public-api", PublicApi)
    app.connect("autodoc-process-signature", on_process_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
