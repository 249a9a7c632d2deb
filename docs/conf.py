"""Sphinx configuration of the optax_rmsprop documentation.

Build: ``sphinx-build -E -W --keep-going -j auto docs docs/_build/html`` (the README's command;
``tests/test_docs.py`` runs it). It needs nothing beside the checkout and no network: the data
the notebooks train on in their small mode ships in the package (``optax_rmsprop/data/``).
Everything a page shows that a program computes is computed here, at build time, and nothing of
it is committed:

- the tour (``python -m optax_rmsprop --out ...``) runs once, before the pages are read; its
  printed output and plots land in ``docs/_build/generated/tour/``;
- the notebooks of ``colab/`` are copied into ``docs/notebooks/`` and executed by myst-nb in
  their small mode (``OPTAX_RMSPROP_FAST=1``), as ``tests/test_notebooks.py`` runs them;
- the guides' ``{code-cell}`` blocks execute the same way (each guide is a MyST notebook), so
  a snippet that raises, or an ``assert`` in one that fails, fails the build.

Execution is forced on every read (``nb_execution_mode = "force"``): a cache keyed on the
notebook's text would keep outputs computed by an older version of the library. And every build
reads every page again (``docs/_ext/reread_every_page.py``, as ``-E`` does), so a page that
failed once is executed again rather than kept. For quick local rebuilds pass
``-D nb_execution_mode=off`` (or ``cache``).

The repository's address and whether it is published come from ``pyproject.toml``
(``docs/_ext/repository.py``); the API has a page per public object with ``[source]`` links to
the site's copy of the code (``sphinx.ext.viewcode``); optax, jax and numpy names link to
their documentation through inventories written at build time
(``docs/_ext/offline_inventories.py``).

Maths renders with the MathJax 3 copy that the ``sphinx-mathjax-offline`` package ships: the
site loads no script from the network.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
GENERATED = DOCS / "_build" / "generated"  # build-time outputs that pages include

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

from offline_inventories import write_inventories  # noqa: E402
from repository import PUBLISHED, SOURCE  # noqa: E402

import optax_rmsprop  # noqa: E402

# The kernels that execute the notebooks inherit this environment.
os.environ["OPTAX_RMSPROP_FAST"] = "1"
os.environ["OPTAX_RMSPROP_OUTPUT"] = str(GENERATED / "notebook_files")
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ["TQDM_DISABLE"] = "1"  # no progress bars in the rendered notebooks
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
# ipykernel's kernelspec starts `python`: let that be this interpreter.
os.environ["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ["PATH"]])

project = "optax_rmsprop"
author = "optax_rmsprop authors"
copyright = "the optax_rmsprop authors"  # noqa: A001
release = version = optax_rmsprop.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",  # the API's tables; docs/_ext writes the pages they link
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",  # [source]: the site's own copy of each module, no network
    "sphinx_copybutton",
    "myst_nb",  # Markdown (MyST) pages, notebooks, and executed {code-cell}s
    "optax_rmsprop_docs",  # docs/_ext: runs the tour, copies the notebooks
    "reread_every_page",  # docs/_ext: no page survives a rebuild unread
    "repository",  # docs/_ext: links to repository files, the publication switch
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_ext", "_templates", "**.ipynb_checkpoints", "README.md"]
templates_path = ["_templates"]
root_doc = "index"

# Every cross-reference must resolve. Names of other packages cannot without their
# inventories, which are not available offline: those (and Python's own) are ignored
# by pattern; a broken reference to one of ours still fails the build.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(optax|jax|jnp|np|numpy|jaxlib|flax|torch|keras)(\..*)?"),
    (r"py:.*", r"(typing|collections\.abc|os|pathlib)\..*"),
    (
        r"py:class",
        r"(Any|Callable|NamedTuple|Sequence|int|float|bool|str|bytes|tuple|list|dict|"
        r"None|object|type|complex|Mesh|NamedSharding|PartitionSpec|AxisType|MaskOrFn|StateDtype)",
    ),
    (r"py:class", r"(PyTree|ArrayTree|ArrayLike|ScalarOrSchedule|Updates|Params|DTypeLike)"),
]

# optax, jax and numpy: inventories written from the installed packages (no download).
intersphinx_mapping = write_inventories(GENERATED / "inventories")
# autosummary only draws the tables: docs/_ext/optax_rmsprop_docs.py writes the pages.
autosummary_generate = False

# autodoc + napoleon: the docstrings are Google style.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Show the aliases by name: expanded, optax.ScalarOrSchedule fills lines of every signature.
autodoc_type_aliases = {
    name: name
    for name in (
        "optax.ScalarOrSchedule",
        "optax.Updates",
        "optax.Params",
        "optax.Schedule",
        "jax.typing.ArrayLike",
        "jax.typing.DTypeLike",
        "MaskOrFn",
        "StateDtype",
    )
}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# MyST and myst-nb.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "force"
nb_execution_timeout = 600  # per cell; the notebooks in fast mode take seconds per cell
# A cell that raises is a warning naming the page, with its traceback in the log; -W makes it
# an error, and --keep-going reports every failing page of one build.
nb_execution_raise_on_error = False
nb_execution_allow_errors = False
nb_execution_show_tb = True
nb_execution_in_temp = False  # run from the notebook's folder, as in colab/
nb_merge_streams = True
nb_mime_priority_overrides = [("html", "image/gif", 15)]  # the animation notebook's GIFs

html_theme = "furo"
html_title = f"optax_rmsprop {release}"
# The sidebar links the code: the repository once published, the site's copy until then.
html_sidebars = {
    "**": [
        "sidebar/brand.html",
        "sidebar/search.html",
        "sidebar/repository.html",  # docs/_templates
        "sidebar/scroll-start.html",
        "sidebar/navigation.html",
        "sidebar/scroll-end.html",
    ]
}
html_context = {"repository_url": SOURCE, "repository_published": PUBLISHED}
html_theme_options = {}
if PUBLISHED:  # furo's "view source" and "edit" icons, and the repository in the footer
    html_theme_options = {
        "source_repository": f"{SOURCE}/",
        "source_branch": "main",
        "source_directory": "docs/",
        "footer_icons": [{"name": "Repository", "url": SOURCE, "html": "Repository"}],
    }
# MathJax 3 as the sphinx-mathjax-offline package ships it, copied into _static/mathjax. (Its
# own extension does the same but does not declare itself safe for parallel reads.)
_MATHJAX = importlib.util.find_spec("sphinx-mathjax-offline")
if _MATHJAX is None or _MATHJAX.origin is None:
    raise ImportError("the docs need sphinx-mathjax-offline: pip install -e '.[docs]'")
html_static_path = [str(pathlib.Path(_MATHJAX.origin).parent / "static"), "_static"]
# docs/_static: no scrollbar beside multi-line formulas; wide content scrolls; the sidebar link
html_css_files = ["maths.css", "site.css"]
mathjax_path = "mathjax/tex-chtml.js"
# textmacros: \_ and friends inside \text{}, as LaTeX takes them (the docstrings use them).
mathjax3_config = {
    "loader": {"load": ["[tex]/textmacros"]},
    "tex": {"packages": {"[+]": ["textmacros"]}},
}
html_last_updated_fmt = None
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
