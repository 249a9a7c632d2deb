#!/usr/bin/env bash
# The release artefacts: build the sdist and the wheel, check them with twine, check what the
# wheel holds, then install the wheel (not editable) in a clean venv with only its own
# dependencies and run the tour and the package's doctests from outside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d "${TMPDIR:-/tmp}/optax_rmsprop-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT

python -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet build twine
"$work/tools/bin/python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; exit 1; }
"$work/tools/bin/python" -m twine check --strict "$work"/dist/*

"$work/tools/bin/python" - "$work"/dist/*.whl <<'PY'
import pathlib
import sys
import zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
modules = {p.as_posix() for p in pathlib.Path("optax_rmsprop").rglob("*.py")}  # subpackages too
data = {f"optax_rmsprop/{name}" for name in ("py.typed", "data/README.md", "data/airfoil_self_noise.dat")}
data |= {p.as_posix() for p in pathlib.Path("optax_rmsprop/data/fashion-mnist-subset").glob("*.gz")}
assert len(data) == 7, sorted(data)  # datasets.py reads them: the four subset files
missing = (modules | data) - names
assert not missing, f"the wheel lacks {sorted(missing)}"
strays = sorted(n for n in names if not n.startswith(("optax_rmsprop/", "optax_rmsprop-")))
assert not strays, f"the wheel holds more than the package: {strays}"
assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "the wheel lacks LICENSE"
print(f"{pathlib.Path(sys.argv[1]).name}: {len(names)} files, py.typed and the data among them")
PY

python -m venv "$work/clean"
"$work/clean/bin/python" -m pip install --quiet "$work"/dist/*.whl "pytest>=8"
cd "$work"  # away from the checkout: what is imported is the installed copy
"$work/clean/bin/python" - <<'PY'
import importlib.metadata
import pathlib
import sys

import optax_rmsprop

where = pathlib.Path(optax_rmsprop.__file__).resolve()
assert where.is_relative_to(pathlib.Path(sys.prefix).resolve()), where
assert importlib.metadata.version("optax_rmsprop") == optax_rmsprop.__version__
print(f"installed optax_rmsprop {optax_rmsprop.__version__} at {where.parent}")
PY
"$work/clean/bin/python" -W error -m optax_rmsprop --no-plots
# interop's examples import torch and keras, which the wheel does not depend on
"$work/clean/bin/python" -m pytest -q -p no:cacheprovider -W error \
  --doctest-modules --pyargs optax_rmsprop -k "not interop"
