"""What a release relies on: one version, true floors, the typing marker.

The wheel itself is built, checked and installed by ``.ci/wheel.sh``; the floors are
installed together and tested by ``.ci/lowest.sh``.
"""

import ast
import pathlib
import re
import shutil
import tomllib

import optax_rmsprop

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = ("jax", "jaxlib", "optax", "numpy")


def _project():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_the_version_has_one_source():
    pyproject = _project()
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    version = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert version == {"attr": "optax_rmsprop.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", optax_rmsprop.__version__)


def test_the_changelog_has_the_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"\n## [{optax_rmsprop.__version__}]" in changelog


def test_the_floors_are_the_versions_ci_tests():
    """Each run-time dependency's ``>=`` floor is the ``==`` pin .ci/lowest.sh installs."""
    floors = {}
    for requirement in _project()["project"]["dependencies"]:
        name, floor = re.fullmatch(r"([\w-]+)>=([\w.]+)", requirement).groups()
        floors[name] = floor
    pins = {}
    for line in (ROOT / ".ci/lowest-constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, pin = re.fullmatch(r"([\w-]+)==([\w.]+)", line).groups()
            pins[name] = pin
    assert sorted(floors) == sorted(CORE)
    assert pins.keys() == floors.keys()
    for name in CORE:  # numpy>=2.0 is pinned as 2.0.0
        assert pins[name] == floors[name] or pins[name] == floors[name] + ".0", name


def test_py_typed_ships():
    assert (ROOT / "optax_rmsprop" / "py.typed").is_file()
    package_data = _project()["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["optax_rmsprop"]


def test_every_file_the_project_names_exists():
    """Docs, notes and commands that name ``tests/…`` or ``benchmarks/…`` name real files."""
    named = re.compile(r"\b(?:tests|benchmarks|colab|\.ci)/[\w/.-]+\.(?:py|sh|ipynb|txt)\b")
    skipped = {".git", "_build", "build", "dist", "__pycache__", "tour_output"}
    missing = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if path.suffix not in {".py", ".md", ".toml", ".ipynb", ".txt", ".sh", ""}:
            continue
        if not path.is_file() or any(p in skipped or p.endswith(".egg-info") for p in parts):
            continue
        if any(part.startswith(".") and part != ".ci" for part in parts):  # venvs, caches
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        missing += [
            f"{path.relative_to(ROOT)} names {name}"
            for name in set(named.findall(text))
            if not (ROOT / name).exists()
        ]
    assert not missing, "\n".join(sorted(missing))


def _import_graph(root):
    """The package under ``root`` as {module: the package's modules it imports}, read with
    ``ast`` from every ``.py`` file: every import statement, also those under
    ``TYPE_CHECKING`` or inside functions. ``from pkg import name`` imports the module
    ``pkg.name`` where there is one, else ``pkg``."""
    files = {}
    for path in sorted((root / "optax_rmsprop").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    imported.add(sub if sub in files else base)
        graph[module] = {m for m in imported if m in files and m != module}
    return graph


def _a_cycle(graph):
    """One cycle of ``graph`` as a list of modules (its first one repeated at the end), or
    None."""
    state = {}  # module: "open" while on the current path, "done" once left

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return path[path.index(target) :] + [module, target]
            if target not in state and (cycle := visit(target, path + [module])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [])):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    """Layers with no circle: no module of the package imports, even for types, a module
    that imports it back, directly or through others."""
    graph = _import_graph(ROOT)
    assert {"optax_rmsprop.core", "optax_rmsprop.options"} <= graph.keys()
    assert "optax_rmsprop.options" in graph["optax_rmsprop.validation"]
    assert _a_cycle(graph) is None, " -> ".join(_a_cycle(graph))


def test_the_import_graph_check_finds_a_planted_cycle(tmp_path):
    """Its negative control: validation importing core (for types only, under
    ``TYPE_CHECKING``), as it once did, is a cycle the check names."""
    shutil.copytree(ROOT / "optax_rmsprop", tmp_path / "optax_rmsprop")
    validation = tmp_path / "optax_rmsprop" / "validation.py"
    validation.write_text(
        validation.read_text(encoding="utf-8")
        + "\nif TYPE_CHECKING:\n    from optax_rmsprop.core import RMSPropState\n",
        encoding="utf-8",
    )
    cycle = _a_cycle(_import_graph(tmp_path))
    assert cycle == ["optax_rmsprop.core", "optax_rmsprop.validation", "optax_rmsprop.core"]
