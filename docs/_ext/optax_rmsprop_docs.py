"""Build-time steps of the docs: run the tour, bring in the notebooks.

``builder-inited`` runs before Sphinx looks for source files, so

- ``python -m optax_rmsprop --out docs/_build/generated/tour`` runs here, its standard output
  saved as ``output.txt`` beside the plots (``getting_started.md`` includes both); a tour
  that fails fails the build;
- each ``colab/*.ipynb`` is copied to ``docs/notebooks/`` (git ignores the copies), with its
  Colab badge, an image from the network, turned into a plain link. myst-nb executes the
  copies when it reads them.

It also writes the type aliases of signatures as the source does (see
``on_process_signature``).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import time

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

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


def on_builder_inited(app: Sphinx) -> None:
    run_tour()
    copy_notebooks()


def on_process_signature(app, what, name, obj, options, signature, return_annotation):
    """``optax.ScalarOrSchedule | None`` as written: Sphinx 9 shows an alias (conf.py's
    ``autodoc_type_aliases``) inside a union as ``TypeAliasForwardRef('...')``."""
    if signature is None:
        return None
    fix = lambda text: text and ALIAS_REF.sub(r"\1", text)  # noqa: E731
    return fix(signature), fix(return_annotation)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", on_builder_inited)
    app.connect("autodoc-process-signature", on_process_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
