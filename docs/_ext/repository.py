"""The repository's address and its publication switch, for the docs and the notebooks.

Both live in ``pyproject.toml``: the address is ``[project.urls] Source``, the switch
``[tool.optax_rmsprop] published``. While the switch is off nothing links to the address:

- each repository file a page names in code (``tests/test_presets.py``) links to a page of
  the site showing that file (``_repo/tests/test_presets.py.html``); once published, to the
  file in the repository;
- the sidebar links the site's source pages; once published, the repository (and furo's
  "view source" icons, set in ``conf.py``);
- the notebooks of ``colab/`` open with how to run them from a clone, and their install cell
  stops in Colab; once published they carry a Colab badge and install from the address.

``python docs/_ext/repository.py`` rewrites the notebooks' badge line and install cell to
match the switch (run it after changing the switch); ``tests/test_notebooks.py`` checks that
they match.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
_PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SOURCE: str = _PYPROJECT["project"]["urls"]["Source"]
PUBLISHED: bool = _PYPROJECT["tool"]["optax_rmsprop"]["published"]
BRANCH = "main"


# ---------------------------------------------------------------------------
# The notebooks' first two cells.

# Packages a notebook needs in Colab beside the library.
COLAB_EXTRAS = {"flax_nnx_fashion_mnist": ["flax>=0.11"]}
# The first paragraph of a notebook's first cell: its badge, or how to run it locally.
FIRST_LINE = re.compile(r"\A(\[!\[Open In Colab\].*?\n|\*Run it locally:\*.*?\n)\n", re.S)


def colab_url(name: str) -> str:
    address = SOURCE.replace("https://github.com/", "https://colab.research.google.com/github/")
    return f"{address}/blob/{BRANCH}/colab/{name}.ipynb"


def first_line(name: str, published: bool = PUBLISHED) -> str:
    """The badge (published) or the way to run the notebook from a clone (not yet)."""
    if published:
        badge = "https://colab.research.google.com/assets/colab-badge.svg"
        return f"[![Open In Colab]({badge})]({colab_url(name)})\n"
    return (
        '*Run it locally:* in a clone of the repository, `pip install -e ".[docs]"` (the '
        f"library and what the notebooks import), then open `colab/{name}.ipynb` in Jupyter.\n"
    )


def install_cell(name: str, published: bool = PUBLISHED) -> str:
    """A cell that installs the library in Colab (published), or says it cannot (not yet)."""
    if published:
        packages = [f"git+{SOURCE}", *COLAB_EXTRAS.get(name, [])]
        return (
            "# In Colab only: install the library; elsewhere `pip install -e .` in a clone.\n"
            "import sys\n\n"
            'if "google.colab" in sys.modules:\n'
            "    import subprocess\n\n"
            f"    PACKAGES = {json.dumps(packages)}\n"
            '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *PACKAGES], '
            "check=True)"
        )
    return (
        "# In Colab only: the library is not published yet, so Colab cannot install it. Run\n"
        "# this notebook from a clone of the repository (see above); there it does nothing.\n"
        "import sys\n\n"
        'if "google.colab" in sys.modules:\n'
        '    raise RuntimeError("optax_rmsprop is not published yet: run this notebook locally")'
    )


def with_header(nb: dict, name: str, published: bool = PUBLISHED) -> dict:
    """``nb`` (nbformat JSON) with its badge line and install cell as the switch says."""
    first, install = nb["cells"][0], nb["cells"][1]
    text = "".join(first["source"])
    if not FIRST_LINE.match(text):
        raise ValueError(f"colab/{name}.ipynb: the first cell opens with neither line")
    text = FIRST_LINE.sub(lambda _: first_line(name, published) + "\n", text, count=1)
    first["source"] = text.splitlines(keepends=True)  # as nbformat writes it
    install["source"] = install_cell(name, published).splitlines(keepends=True)
    return nb


def rewrite_notebooks() -> None:
    for path in sorted((ROOT / "colab").glob("*.ipynb")):
        nb = with_header(json.loads(path.read_text()), path.stem)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------
# How to install, as the index and getting started say it.

INSTALL = ROOT / "docs" / "_build" / "generated" / "install.md"


def install_text(published: bool = PUBLISHED) -> str:
    """The install section's Markdown: from the address once published, from a clone until."""
    if published:
        where = f"""\
From the repository, with Python 3.11 or newer:

```bash
pip install git+{SOURCE}
```

or from a clone of it, to run the tour, the notebooks and the tests too:

```bash
git clone {SOURCE}
cd {SOURCE.rsplit("/", 1)[1]}
pip install -e .
```
"""
    else:
        where = """\
The repository is not published yet, so there is no address to install from: install from a
clone of the repository (a copy of its folder), with Python 3.11 or newer. In the clone:

```bash
pip install -e .
```
"""
    return (
        where
        + """
This installs the library and its only dependencies, jax, optax and numpy. Extras add what the
rest needs: `pip install -e ".[demo]"` the tour's plots (`python -m optax_rmsprop`),
`".[docs]"` what the notebooks and these pages import (matplotlib, flax, orbax, torch, keras).
"""
    )


def write_install_text() -> None:
    INSTALL.parent.mkdir(parents=True, exist_ok=True)
    if not INSTALL.exists() or INSTALL.read_text() != install_text():
        INSTALL.write_text(install_text())


# ---------------------------------------------------------------------------
# Sphinx: a page per repository file, and links to them.

# Files a page may name, with how to highlight them; data, images and JSON get no page.
LEXERS = {".py": "python", ".sh": "bash", ".toml": "toml", ".md": "markdown", ".txt": "text"}
FOLDERS = ("optax_rmsprop/", "tests/", "benchmarks/", "examples/", ".ci/", "colab/")
TOP_LEVEL = ("README.md", "CHANGELOG.md", "pyproject.toml", "LICENSE")
FILE_PAGES = "_repo"  # the site's copies: _repo/<path>.html


def repository_files() -> list[str]:
    """The tracked files that pages may name (every file where this is no git checkout)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]
    return sorted(
        path
        for path in listed
        if path in TOP_LEVEL
        or (path.startswith(FOLDERS) and pathlib.PurePath(path).suffix in {*LEXERS, ".ipynb"})
        or (path.startswith(".ci/") and not pathlib.PurePath(path).suffix)  # .ci/run
    )


FILES = frozenset(repository_files())


def file_target(path: str) -> tuple[str, bool]:
    """Where a link to ``path`` goes: (URL, False) in the repository, or (page name, True)."""
    if PUBLISHED:
        return f"{SOURCE}/blob/{BRANCH}/{path}", False
    if path.startswith("colab/") and path.endswith(".ipynb"):
        return f"notebooks/{pathlib.PurePath(path).stem}", True
    return f"{FILE_PAGES}/{path}", True


def link_repository_files(app, doctree, docname) -> None:
    """Each inline literal that is a repository file's path (``tests/test_core.py`` or
    ``tests/test_core.py::test_x``) becomes a link to that file."""
    from docutils import nodes

    for literal in list(doctree.findall(nodes.literal)):
        if isinstance(literal.parent, nodes.reference):
            continue
        path = literal.astext().split("::")[0]
        if path not in FILES:
            continue
        target, internal = file_target(path)
        uri = app.builder.get_relative_uri(docname, target) if internal else target
        reference = nodes.reference("", "", internal=internal, refuri=uri)
        literal.replace_self(reference)
        reference += literal


def file_pages(app):
    """The site's page of each repository file (none once the repository is published)."""
    if PUBLISHED or app.builder.format != "html":
        return
    for path in sorted(FILES):
        if path.startswith("colab/"):
            continue  # the notebooks have their pages
        suffix = pathlib.PurePath(path).suffix
        lexer = LEXERS.get(suffix, "bash" if path.startswith(".ci/") else "text")  # .ci/run
        code = app.builder.highlighter.highlight_block(
            (ROOT / path).read_text(), lexer, linenos=True
        )
        body = f"<h1>{path}</h1>\n{code}"
        yield f"{FILE_PAGES}/{path}", {"title": path, "body": body}, "page.html"


def setup(app) -> dict:
    app.connect("builder-inited", lambda app: write_install_text())
    app.connect("doctree-resolved", link_repository_files)
    app.connect("html-collect-pages", file_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    rewrite_notebooks()
    print(f"colab/*.ipynb: {'published' if PUBLISHED else 'not published'} ({SOURCE})")
