"""What a release relies on: one version, true floors, the typing marker.

The wheel itself is built, checked and installed by ``.ci/wheel.sh``; the floors are
installed together and tested by ``.ci/lowest.sh``.
"""

import pathlib
import re
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
