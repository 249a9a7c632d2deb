"""Intersphinx inventories of optax, jax and numpy, written at build time without network.

intersphinx links a name such as ``optax.rmsprop`` to another project's page through that
project's ``objects.inv``. The docs build offline, so instead of downloading those files this
writes them (Sphinx's inventory format, version 2) from the public names of the installed
packages, each with the address its project's documentation gives it:

- optax: ``https://optax.readthedocs.io/en/latest/api/<page>.html#optax.<name>``, where
  ``<page>`` is the page of optax's API reference that documents the module the name is
  defined in (``optimizers`` for ``optax.rmsprop``, ``transformations`` for
  ``optax.GradientTransformation``, ``combining_optimizers`` for ``optax.chain``, ...);
- jax: ``https://docs.jax.dev/en/latest/_autosummary/<name>.html`` for the functions and
  classes of ``jax``, ``jax.numpy``, ``jax.lax``, ``jax.random``, ``jax.nn``, ``jax.tree``
  and ``jax.tree_util`` (one page each), and ``<module>.html#<name>`` for ``jax.sharding``
  and ``jax.typing``, whose pages document their members in place;
- numpy: ``https://numpy.org/doc/stable/reference/generated/numpy.<name>.html``, and
  ``arrays.scalars.html#numpy.<name>`` for the scalar types.

The patterns follow each site's layout as of optax 0.2.8, jax 0.8-0.10 and numpy 2.x; a name
that a rule places on the wrong page would link to a page without its anchor, and the build,
offline, cannot tell. ``tests/test_docs.py`` checks that the pages link the names they use
most to the addresses these rules give.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import warnings
import zlib

OPTAX_URL = "https://optax.readthedocs.io/en/latest/"
JAX_URL = "https://docs.jax.dev/en/latest/"
NUMPY_URL = "https://numpy.org/doc/stable/"

# optax's API pages by the module a name is defined in (a prefix of it); first match wins.
OPTAX_PAGES = [
    ("optax._src.alias", "optimizers"),
    ("optax._src.update", "apply_updates"),
    ("optax._src.lookahead", "optimizer_wrappers"),
    ("optax._src.numerics", "utilities"),
    ("optax._src.utils", "utilities"),
    ("optax._src.linear_algebra", "utilities"),
    ("optax.tree_utils", "utilities"),
    ("optax.transforms._combining", "combining_optimizers"),
    ("optax.transforms._conditionality", "optimizer_wrappers"),
    ("optax.transforms._layouts", "optimizer_wrappers"),
    ("optax.transforms._masking", "optimizer_wrappers"),
    ("optax.transforms._freezing", "optimizer_wrappers"),
    ("optax.schedules", "optimizer_schedules"),
    ("optax.losses", "losses"),
    ("optax", "transformations"),  # base types, transform, clipping, adding, ...
]
OPTAX_NAMES = {  # documented apart from the rest of their module
    "MultiSteps": "optimizer_wrappers",
    "MultiStepsState": "optimizer_wrappers",
    "skip_large_updates": "optimizer_wrappers",
    "skip_not_finite": "optimizer_wrappers",
}
JAX_AUTOSUMMARY = [
    "jax",
    "jax.numpy",
    "jax.lax",
    "jax.random",
    "jax.nn",
    "jax.tree",
    "jax.tree_util",
]
JAX_IN_PLACE = ["jax.sharding", "jax.typing"]


def _public(module) -> list[tuple[str, object]]:
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    found = []
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a deprecated name warns: it gets no entry
            try:
                found.append((name, getattr(module, name)))
            except (AttributeError, Warning):
                continue
    return [(n, o) for n, o in found if not inspect.ismodule(o)]


def _roles(obj) -> list[str]:
    """The roles a cross-reference to ``obj`` may come as. An alias (``optax.Params``) is
    data, but a signature's annotation asks for a class: it gets both."""
    if inspect.isclass(obj):
        return ["py:class"]
    if callable(obj) and not hasattr(obj, "__origin__"):
        return ["py:function"]
    return ["py:data", "py:class"]


def _optax() -> list[tuple[str, str, str]]:
    import optax

    entries = [("optax", "py:module", "api/optimizers.html")]
    for name, obj in _public(optax):
        module = getattr(obj, "__module__", "") or ""
        if not module.startswith("optax"):
            module = "optax"  # an alias of a typing construct: a base type
        page = OPTAX_NAMES.get(name) or next(p for m, p in OPTAX_PAGES if module.startswith(m))
        entries += [(f"optax.{name}", r, f"api/{page}.html#$") for r in _roles(obj)]
    return entries


def _jax() -> list[tuple[str, str, str]]:
    entries = []
    for module_name in JAX_AUTOSUMMARY:
        module = importlib.import_module(module_name)
        entries.append((module_name, "py:module", f"{module_name}.html"))
        for name, obj in _public(module):
            full = f"{module_name}.{name}"
            entries += [(full, r, "_autosummary/$.html") for r in _roles(obj)]
    for module_name in JAX_IN_PLACE:
        module = importlib.import_module(module_name)
        entries.append((module_name, "py:module", f"{module_name}.html"))
        for name, obj in _public(module):
            entries += [(f"{module_name}.{name}", r, f"{module_name}.html#$") for r in _roles(obj)]
    return entries


def _numpy() -> list[tuple[str, str, str]]:
    import numpy as np

    entries = [("numpy", "py:module", "reference/index.html")]
    for name, obj in _public(np):
        if inspect.isclass(obj) and issubclass(obj, np.generic):
            entries.append((f"numpy.{name}", "py:class", "reference/arrays.scalars.html#$"))
        elif inspect.isclass(obj) or callable(obj):
            entries += [(f"numpy.{name}", r, "reference/generated/$.html") for r in _roles(obj)]
    return entries


def _with_defining_names(entries, namespace: dict) -> list[tuple[str, str, str]]:
    """Each entry with its address written out, plus, for a class whose annotations name it
    where it is defined (``jax.Array`` is ``jax.jaxlib._jax.Array`` to autodoc), that name."""
    out, named = [], set()
    for name, role, uri in entries:
        uri = uri.replace("$", name)
        out.append((name, role, uri))
        obj = namespace.get(name)
        if role == "py:class" and inspect.isclass(obj):
            defined = f"{obj.__module__}.{obj.__qualname__}"
            if defined != name and defined not in named:  # the first public name wins
                named.add(defined)
                out.append((defined, role, uri))
    return out


def _objects(module_names: list[str]) -> dict:
    """{full public name: object} for the public names of these modules."""
    found = {}
    for module_name in module_names:
        module = importlib.import_module(module_name)
        found.update({f"{module_name}.{n}": o for n, o in _public(module)})
    return found


def _write(path: pathlib.Path, project: str, version: str, entries) -> None:
    lines = sorted({f"{name} {role} 1 {uri} -\n" for name, role, uri in entries})
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    path.write_bytes(header.encode() + zlib.compress("".join(lines).encode()))


def write_inventories(folder: pathlib.Path) -> dict[str, tuple[str, str]]:
    """Writes the three inventories into ``folder``; returns Sphinx's intersphinx_mapping."""
    import jax
    import numpy as np
    import optax

    folder.mkdir(parents=True, exist_ok=True)
    projects = {
        "optax": (OPTAX_URL, optax.__version__, _optax),
        "jax": (JAX_URL, jax.__version__, _jax),
        "numpy": (NUMPY_URL, np.__version__, _numpy),
    }
    mapping = {}
    modules = {"optax": ["optax"], "jax": JAX_AUTOSUMMARY + JAX_IN_PLACE, "numpy": ["numpy"]}
    for project, (url, version, entries) in projects.items():
        path = folder / f"{project}.inv"
        _write(path, project, version, _with_defining_names(entries(), _objects(modules[project])))
        mapping[project] = (url, str(path))
    return mapping
