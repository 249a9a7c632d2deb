"""Runs every Colab notebook in ``colab/`` and checks the numbers the texts they follow report.

Each notebook executes in a fresh ``python3`` kernel with ``OPTAX_RMSPROP_FAST=1`` (small runs), its
figures and GIFs written under ``tmp_path`` (``OPTAX_RMSPROP_OUTPUT``), from ``colab/`` as working
directory, with the checkout on ``PYTHONPATH``. The committed files must carry no outputs. The
small mode needs no data beside the checkout: the airfoil file and a Fashion-MNIST subset ship in
the package (``optax_rmsprop/data/``). Each Colab badge and install cell names the repository
that ``pyproject.toml``'s ``[project.urls] Source`` names.
"""

import math
import os
import pathlib
import re
import sys
import tomllib

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLAB = ROOT / "colab"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SOURCE = PYPROJECT["project"]["urls"]["Source"]
PUBLISHED = PYPROJECT["tool"]["optax_rmsprop"]["published"]  # the repository is public at SOURCE
CELL_TIMEOUT_S = 300
SUBSET = "Fashion-MNIST, the package's subset: 5000 training and 1000 test images"


def _floats(pattern: str, text: str) -> list[float]:
    return [float(x) for x in re.findall(pattern, text)]


def check_d2l_rmsprop(text: str, out: pathlib.Path) -> None:
    # d2l 11.8.2: the 2-D trace, from scratch, presets.d2l and rmsprop alike.
    for source in ("from scratch (float64)", "presets.d2l (float32)", "rmsprop (float32)"):
        assert f"{source}: epoch 20, x1: -0.010599, x2: 0.000000" in text, source
    # d2l 11.8.3 (train_ch11 on airfoil): loss 0.243-0.246 for each of the four runs.
    losses = _floats(r"loss: (\d+\.\d+), \d+\.\d+ sec/epoch", text)
    assert len(losses) == 4 and all(0.243 <= loss <= 0.246 for loss in losses), losses
    assert "ValueError: decay=1 with initial_scale=0" in text  # exercise 1
    for name in ("leaky_average_weights", "trace_2d", "airfoil_loss", "trace_rotated"):
        assert (out / f"{name}.png").is_file(), name


def check_adagrad_vs_rmsprop(text: str, out: pathlib.Path) -> None:
    assert "RMSProp: after 20 steps x = (-0.0106, 0.0000)" in text
    for name in ("adagrad_vs_rmsprop_2d", "adagrad_vs_rmsprop_airfoil", "gamma", "eps_placement"):
        assert (out / f"{name}.png").is_file(), name


def check_animation_1d_2d(text: str, out: pathlib.Path) -> None:
    # neuralthreads: x - x**3 from -1, 1000 steps, ends within 0.0051 of -1/sqrt(3).
    (x,) = _floats(r"optax_rmsprop: +x = (-?\d+\.\d+)", text)
    assert abs(x + 1 / math.sqrt(3)) < 0.0051, x
    # 2x² + 2xy + 2y² - 6x from (1, 0) reaches its minimum (2, -1).
    assert "(x, y) = (2.000000, -1.000000)" in text
    for name in ("rmsprop_1d.gif", "rmsprop_2d.gif"):
        with Image.open(out / name) as gif:
            assert gif.format == "GIF" and gif.n_frames > 10, name


def check_porting_from_pytorch(text: str, out: pathlib.Path) -> None:
    gaps = _floats(r"presets\.torch vs torch\.optim\.RMSprop: max relative difference (\S+)", text)
    assert len(gaps) == 2 and max(gaps) < 1e-5, gaps  # equal to float32 rounding
    assert (out / "wrong_ports.png").is_file()


def check_flax_nnx_fashion_mnist(text: str, out: pathlib.Path) -> None:
    # FAST trains 4 epochs on the package's 5000 images (0.837 on its 1000 test images);
    # full size reaches about 0.89.
    (accuracy,) = _floats(r"test accuracy after \d+ epochs: (\d\.\d+)", text)
    assert accuracy >= 0.75, accuracy
    assert (out / "fashion_mnist_nnx.png").is_file()


def check_sweep_with_vmap(text: str, out: pathlib.Path) -> None:
    assert "40 models; nu of w1 has shape (40, 5, 32)" in text
    alone, in_sweep = _floats(r"(?:trained alone|in the sweep): (\d+\.\d+)", text)
    assert math.isclose(alone, in_sweep, rel_tol=1e-3), (alone, in_sweep)
    assert (out / "sweep_heatmap.png").is_file()


def check_memory(text: str, out: pathlib.Path) -> None:
    (per_param,) = _floats(r"int8 state: (\d+\.\d+) bytes/param", text)
    assert per_param <= 1.02, per_param
    # One seed each: the airfoil gaps are ~0.01%; the FAST Fashion-MNIST run (4 epochs on the
    # package's 5000 images, cosine schedule) carries run-to-run noise (-0.21% for int8 in one
    # docs build). The 1% claim over several seeds is tests/test_quantize.py's.
    for problem, tolerance in (("airfoil", 1.0), ("fashion-mnist", 2.0)):
        (line,) = re.findall(rf"{problem} final loss: (.*)", text)
        gaps = _floats(r"\(([+-]\d+\.\d+)%\)", line)
        assert len(gaps) == 3 and max(map(abs, gaps)) <= tolerance, (problem, gaps)
    for name in ("int8_round_trip", "memory_airfoil", "memory_fashion_mnist", "memory_bytes"):
        assert (out / f"{name}.png").is_file(), name


CHECKS = {
    "d2l_rmsprop": check_d2l_rmsprop,
    "adagrad_vs_rmsprop": check_adagrad_vs_rmsprop,
    "animation_1d_2d": check_animation_1d_2d,
    "porting_from_pytorch": check_porting_from_pytorch,
    "flax_nnx_fashion_mnist": check_flax_nnx_fashion_mnist,
    "sweep_with_vmap": check_sweep_with_vmap,
    "memory": check_memory,
}
USES_FASHION_MNIST = {"d2l_rmsprop", "flax_nnx_fashion_mnist", "memory"}


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(COLAB / f"{name}.ipynb", as_version=4)


def test_every_notebook_is_checked():
    assert sorted(path.stem for path in COLAB.glob("*.ipynb")) == sorted(CHECKS)


def _colab_links(text: str) -> list[str]:
    return re.findall(r"https://colab\.research\.google\.com/github/[^\s)\"'>]+", text)


def test_the_source_address_is_a_github_repository():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", SOURCE), SOURCE


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_is_committed_clean(name):
    """A Colab-only install cell, form fields, and no outputs. Published, a Colab badge first and
    an install from pyproject.toml's Source address, and no other; not yet, how to run it from
    a clone and no link to the address at all (docs/_ext/repository.py writes both cells)."""
    nb = _read(name)
    nbformat.validate(nb)
    first, install = nb.cells[0], nb.cells[1]
    assert first.cell_type == "markdown"
    text = "".join(cell.source for cell in nb.cells)
    assert install.cell_type == "code" and '"google.colab" in sys.modules' in install.source
    installs = re.findall(r"git\+https://[^\s\"']+", text)
    if PUBLISHED:
        badge = SOURCE.replace("https://github.com/", "https://colab.research.google.com/github/")
        assert "[![Open In Colab]" in first.source
        assert _colab_links(first.source) == [f"{badge}/blob/main/colab/{name}.ipynb"]
        assert _colab_links(text) == _colab_links(first.source)
        assert installs == [f"git+{SOURCE}"], installs
    else:
        assert first.source.startswith("*Run it locally:*"), first.source[:80]
        assert f"`colab/{name}.ipynb`" in first.source.splitlines()[0]
        assert "raise RuntimeError" in install.source
        assert not _colab_links(text) and not installs and SOURCE not in text
    assert "# @param" in text
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_notebook_headers_follow_the_switch():
    """The badge line and install cell are what docs/_ext/repository.py writes for the switch
    in pyproject.toml, published or not, and the two states are distinct."""
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        import repository
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    for name in CHECKS:
        nb = _read(name)
        assert nb.cells[0].source.splitlines()[0] + "\n" == repository.first_line(name), name
        assert nb.cells[1].source == repository.install_cell(name), name
        assert repository.first_line(name, True) != repository.first_line(name, False)
        assert SOURCE in repository.install_cell(name, True)


def test_docs_pages_link_to_colab_only_once_published():
    """Pages and the README link to Colab only once the repository is published, and then to
    the notebooks of that repository."""
    badge = SOURCE.replace("https://github.com/", "https://colab.research.google.com/github/")
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        if "_build" in page.parts:
            continue
        for link in _colab_links(page.read_text()):
            assert PUBLISHED, (page, link)
            assert re.fullmatch(re.escape(badge) + r"/blob/main/colab/\w+\.ipynb", link), (
                page,
                link,
            )
            assert (ROOT / link.removeprefix(f"{badge}/blob/main/")).is_file(), (page, link)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTAX_RMSPROP_FAST", "1")
    monkeypatch.setenv("OPTAX_RMSPROP_OUTPUT", str(tmp_path))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    # ipykernel's kernelspec starts `python`: let that be this interpreter.
    bin_dir = str(pathlib.Path(sys.executable).parent)
    monkeypatch.setenv("PATH", os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
    nb = _read(name)
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(COLAB)}},
    ).execute()
    text = "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream" and output.name == "stdout"
    )
    CHECKS[name](text, tmp_path)
    # The small mode reads the package's Fashion-MNIST subset and says so.
    assert (SUBSET in text) == (name in USES_FASHION_MNIST), name
