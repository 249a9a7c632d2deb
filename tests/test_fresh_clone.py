"""A fresh clone, alone in an empty folder, builds its docs and passes its data-dependent tests.

As a new user would have it: ``git clone`` of this checkout's committed HEAD (uncommitted
changes are not in it) into an empty temporary folder, with no ``../shared`` beside it,
``OPTAX_RMSPROP_FASHION_MNIST`` pointing at an empty folder and ``OPTAX_RMSPROP_AIRFOIL``
unset. The "fresh venv" is ``python -m venv --without-pip`` from the base interpreter, whose
``.pth`` file puts this test environment's site-packages (``site.getsitepackages()`` of the
running interpreter: a venv's or the base interpreter's, wherever the tests run) after its
own, so it sees the packages the tests were installed with and nothing is downloaded. The
clone is installed editable into it by this environment's pip, built by the setuptools of
the test extra (``setuptools>=77``, which ``[build-system]`` asks for) without a download;
CI's install in a fresh venv checks the build with isolation, as a user's pip runs it.
``optax_rmsprop`` is then imported from the clone. There

(a) the README's docs command (taken from the README, ``-W`` included) builds, and no page
    holds a traceback;
(b) the data-dependent tests (d2l, the notebooks, the tour, the data, the light-state MLP)
    pass, or skip with a reason.

Both run at the same time (two processes) to halve the wall time where there are cores.
"""

import os
import pathlib
import re
import shutil
import site
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT_S = 1800
DATA_TESTS = [
    "tests/test_d2l.py",
    "tests/test_notebooks.py",
    "tests/test_tour.py",
    "tests/test_datasets.py",
    "tests/test_quantize.py::test_fashion_mnist_mlp_light_state_within_one_percent",
]

pytestmark = pytest.mark.slow


def readme_docs_command() -> list[str]:
    """The docs command the README gives, as arguments after ``sphinx-build``."""
    (command,) = set(
        re.findall(r"sphinx-build ([^`\n]*docs/_build/html)", (ROOT / "README.md").read_text())
    )
    return command.split()


def test_the_readme_docs_command_builds_with_warnings_as_errors():
    arguments = readme_docs_command()
    assert "-W" in arguments and "-E" in arguments, arguments
    assert arguments[-2:] == ["docs", "docs/_build/html"], arguments


def test_fresh_clone_builds_docs_and_passes_data_tests(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("needs git and a git checkout")
    home = tmp_path / "empty"  # the clone's parent: nothing else in it
    home.mkdir()
    clone = home / "optax_rmsprop"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    assert sorted(p.name for p in home.iterdir()) == ["optax_rmsprop"]
    no_data = tmp_path / "no-fashion-mnist"
    no_data.mkdir()

    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)  # a venv's own interpreter's
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    inner = subprocess.run(
        [python, "-c", "import site; print(site.getsitepackages()[0])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    ours = [p for p in site.getsitepackages() if pathlib.Path(p).is_dir()]
    pathlib.Path(inner, "test-environment.pth").write_text("".join(f"{p}\n" for p in ours))
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
    install += ["--no-deps", "--no-build-isolation", "--no-index", "-e", str(clone)]
    subprocess.run(install, check=True, timeout=600, cwd=tmp_path)

    env = {
        key: value
        for key, value in os.environ.items()
        # A user has none of these: not PYTHONDONTWRITEBYTECODE either (bytecode is written)
        if not key.startswith(("OPTAX_RMSPROP_", "PYTEST_", "VIRTUAL_ENV", "PYTHON"))
        and key != "XLA_FLAGS"
    }
    env |= {
        "OPTAX_RMSPROP_FASHION_MNIST": str(no_data),
        "PATH": os.pathsep.join([str(venv / "bin"), os.environ["PATH"]]),
        "KERAS_BACKEND": "jax",
        "PIP_NO_INDEX": "1",  # offline: nothing may be downloaded
    }
    where = subprocess.run(
        [python, "-c", "import optax_rmsprop; print(optax_rmsprop.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert pathlib.Path(where).is_relative_to(clone), where

    logs = tmp_path / "logs"
    logs.mkdir()
    with (logs / "docs.log").open("w") as docs_out, (logs / "tests.log").open("w") as tests_out:
        docs = subprocess.Popen(
            [python, "-m", "sphinx", *readme_docs_command()],
            cwd=clone,
            env=env,
            stdout=docs_out,
            stderr=subprocess.STDOUT,
        )
        tests = subprocess.Popen(
            [python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *DATA_TESTS]
            + ["--basetemp", str(tmp_path / "basetemp")],  # pytest prunes those beside ours
            cwd=clone,
            env=env,
            stdout=tests_out,
            stderr=subprocess.STDOUT,
        )
        try:
            docs.wait(timeout=TIMEOUT_S)
            tests.wait(timeout=TIMEOUT_S)
        finally:
            docs.kill()
            tests.kill()
    docs_log, tests_log = (logs / "docs.log").read_text(), (logs / "tests.log").read_text()

    assert docs.returncode == 0, "docs build failed:\n" + docs_log[-15000:]
    html = clone / "docs" / "_build" / "html"
    pages = sorted(html.rglob("*.html"))
    assert len(pages) > 20, pages
    # _modules/ and _repo/ are the sources as they are (a doctest's "Traceback" included)
    built = [p for p in pages if not str(p.relative_to(html)).startswith(("_modules/", "_repo/"))]
    for page in built:
        text = page.read_text()
        assert "Traceback" not in text and "output traceback" not in text, page

    assert tests.returncode == 0, "tests failed in the fresh clone:\n" + tests_log[-15000:]
    assert re.search(r"\d+ passed", tests_log), tests_log[-3000:]
    for line in tests_log.splitlines():
        if line.startswith("SKIPPED"):  # pytest -rs: "SKIPPED [n] file:line: reason"
            reason = line.split(": ", 1)[1] if ": " in line else ""
            assert reason.strip(), f"a skip without a reason: {line}"
