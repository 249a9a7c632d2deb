"""The tour, ``python -m optax_rmsprop``: run in-process and once as a command."""

import contextlib
import importlib.util
import inspect
import io
import os
import pathlib
import re
import struct
import subprocess
import sys
import tomllib
import zlib

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_rmsprop
from optax_rmsprop import presets, tour

# d2l 11.8 prints this for its 2-D example (see REFERENCE.md, "The seeds").
D2L_LINE = "epoch 20, x1: -0.010599, x2: 0.000000"
PRESET_CALLS = (
    "presets.torch(",
    "presets.keras(",
    "presets.tf1(",
    "presets.gluon(",
    "presets.d2l(",
    "optax_rmsprop.rmsprop(",
    "optax.rmsprop(",
)
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _preset_rows(text):
    """{call prefix: (loss at step 100, loss at the end)} from the printed table."""
    rows = {}
    for line in text.splitlines():
        for call in PRESET_CALLS:
            if line.startswith(call):
                *_, mid, end = line.split()
                rows[call] = (float(mid), float(end))
    return rows


def _check_png(path):
    """A PNG signature, then an IHDR chunk with a sane size and CRC, and an IEND at the end."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR"), path
    width, height = struct.unpack(">II", data[16:24])
    assert 0 < width < 5000 and 0 < height < 5000, (path, width, height)
    (crc,) = struct.unpack(">I", data[29:33])
    assert crc == zlib.crc32(data[12:29]), path
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xae\x42\x60\x82", path


def _check_tour(text, out):
    assert D2L_LINE in text.splitlines()

    rows = _preset_rows(text)
    assert set(rows) == set(PRESET_CALLS), text
    assert all(np.isfinite(rows[c]).all() for c in rows)
    # gluon without rescaling or clipping is the same rmsprop call as the plain alias
    assert rows["presets.gluon("] == rows["optax_rmsprop.rmsprop("]
    # eps outside the root (torch), larger eps inside (keras, d2l), v0 = 1 (tf1): all differ
    distinct = (
        "presets.torch(",
        "presets.keras(",
        "presets.tf1(",
        "presets.d2l(",
        "presets.gluon(",
    )
    assert len({rows[c][1] for c in distinct}) == len(distinct), rows

    mlp = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].isdigit():
            mlp[int(fields[0])] = (float(fields[1]), float(fields[2]))
    assert sorted(mlp) == list(tour.MLP_REPORT)
    assert mlp[tour.MLP_STEPS][1] < mlp[0][1] / 10  # the test MSE falls tenfold

    lines = text.splitlines()
    assert lines[-1 - (len(tour.PLOTS) + 1) * HAVE_MATPLOTLIB].startswith("done in ")
    if HAVE_MATPLOTLIB:  # the closing lines say where the plots are
        assert lines[-len(tour.PLOTS) - 1] == "the plots are these PNG files:"
        shown = [pathlib.Path(line.strip()) for line in lines[-len(tour.PLOTS) :]]
        assert shown == [(out / name).resolve() for name in tour.PLOTS]
        for path in shown:
            assert path.is_absolute()
            _check_png(path)
    else:
        assert "matplotlib is not installed" in text
        assert not out.exists()


def test_tour_in_process(tmp_path):
    out = tmp_path / "plots"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert tour.main(["--out", out]) == 0
    _check_tour(stdout.getvalue(), out)


def test_python_m_optax_rmsprop(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    result = subprocess.run(
        [sys.executable, "-m", "optax_rmsprop", "--out", "plots"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    _check_tour(result.stdout, tmp_path / "plots")
    assert "\r" not in result.stderr  # no progress bar redrawn into a pipe


def test_the_table_states_each_presets_eps_and_v0():
    defaults = {  # the function and the name of its eps argument, for each row
        "presets.torch(": (presets.torch, "eps"),
        "presets.keras(": (presets.keras, "epsilon"),
        "presets.tf1(": (presets.tf1, "epsilon"),
        "presets.gluon(": (presets.gluon, "epsilon"),
        "presets.d2l(": (presets.d2l, "eps"),
        "optax_rmsprop.rmsprop(": (optax_rmsprop.rmsprop, "eps"),
        "optax.rmsprop(": (optax.rmsprop, "eps"),
    }
    rows = tour._preset_rows(0.01)
    assert [next(k for k in PRESET_CALLS if call.startswith(k)) for call, *_ in rows] == list(
        PRESET_CALLS
    )
    for (call, tx, eps, where, v0), (function, name) in zip(rows, defaults.values(), strict=True):
        assert inspect.signature(function).parameters[name].default == float(eps), call
        assert where == ("outside" if function is presets.torch else "inside"), call
        state = tx.init(jnp.ones(2))
        nu = state.nu if isinstance(state, optax_rmsprop.RMSPropState) else state[0].nu
        assert np.all(np.asarray(nu) == float(v0)), call


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        tour.main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--out" in help_text and "--no-plots" in help_text and "tour_output" in help_text


def test_no_plots_writes_nothing(tmp_path, monkeypatch, capsys):
    losses = np.linspace(1.0, 0.1, tour.QUAD_STEPS + 1)
    monkeypatch.setattr(  # the slow parts are checked above; here only the flag matters
        tour, "compare_presets", lambda: {"presets.d2l(": ("1e-6", "inside", "0", losses)}
    )
    monkeypatch.setattr(tour, "train_mlp", lambda: (losses, {0: (1.0, 1.0)}))
    assert tour.main(["--out", tmp_path / "plots", "--no-plots"]) == 0
    assert not (tmp_path / "plots").exists()
    assert "plots skipped" in capsys.readouterr().out


def test_without_matplotlib_the_plots_are_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    paths = tour.save_plots(tmp_path / "plots", np.zeros((2, 2)), {}, np.ones(3))
    assert paths == []
    assert not (tmp_path / "plots").exists()
    assert capsys.readouterr().out.count("\n") == 1  # a one-line message


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _run_bar(file, total=3):
    bar = tour._progress(total, "steps", file=file)
    for _ in range(total):
        bar.update()
    bar.close()
    return bar


def test_with_tqdm_a_terminal_shows_a_bar():
    tqdm = pytest.importorskip("tqdm")
    terminal = _Terminal()
    bar = _run_bar(terminal)
    assert isinstance(bar, tqdm.tqdm) and bar.n == 3
    assert re.search(r"steps: +0%.*\| 0/3 ", terminal.getvalue()), terminal.getvalue()


def test_with_tqdm_a_pipe_gets_no_bar():
    pytest.importorskip("tqdm")
    pipe = io.StringIO()  # not a terminal
    _run_bar(pipe)
    assert pipe.getvalue() == ""


def test_without_tqdm_no_bar(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import now fails
    terminal = _Terminal()
    bar = _run_bar(terminal, total=1000)
    assert isinstance(bar, tour._NoBar)
    assert terminal.getvalue() == ""
    assert capsys.readouterr() == ("", "")


def test_the_readme_first_command_installs_the_demo_extra():
    """The tour's plots and bar need matplotlib and tqdm: the first command installs them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = readme.split("```bash\n", 1)[1].splitlines()[0]
    assert first == 'pip install -e ".[demo]" && python -m optax_rmsprop'
    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", r).group().lower() for r in extras["demo"]}
    assert {"matplotlib", "tqdm"} <= names
