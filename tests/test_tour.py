"""The tour, ``python -m optax_rmsprop``: run in-process and once as a command."""

import contextlib
import importlib.util
import inspect
import io
import os
import pathlib
import re
import subprocess
import sys
import tomllib

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_rmsprop
from optax_rmsprop import presets, tour

# d2l 11.8 prints this for its 2-D example (d2l.ai, section 11.8, "From Scratch").
D2L_LINE = "epoch 20, x1: -0.010599, x2: 0.000000"
PRESET_CALLS = (
    "presets.torch(",
    "presets.chainer(",
    "presets.keras(",
    "presets.tf_keras(",
    "presets.tf1(",
    "presets.gluon(",
    "presets.paddle(",
    "presets.d2l(",
    "optax_rmsprop.rmsprop(",
    "optax.rmsprop(",
)
# Rows with the same eps, place of eps and v0 at the same lr and decay: one curve each.
COINCIDE = (
    ("presets.torch(", "presets.chainer("),
    ("presets.keras(", "presets.tf_keras("),
    ("presets.gluon(", "optax_rmsprop.rmsprop(", "optax.rmsprop("),
    ("presets.paddle(", "presets.d2l("),
)
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _preset_rows(text):
    """{call prefix: (loss half way, loss at the end)} from the printed table."""
    rows = {}
    for line in text.splitlines():
        for call in PRESET_CALLS:
            if line.startswith(call):
                *_, mid, end = line.split()
                rows[call] = (float(mid), float(end))
    return rows


def _check_png(path):
    """A PNG that Pillow (a matplotlib dependency) reads in full, of a sane size."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG", path
        assert 300 < image.width < 2000 and 200 < image.height < 2000, (path, image.size)
        image.load()  # decodes every pixel: a truncated or corrupt file raises here


def _rise(y):
    """The largest rise of a curve above its running minimum, in decades."""
    log = np.log10(np.asarray(y, dtype=np.float64))
    return float(np.max(log - np.minimum.accumulate(log)))


def _check_on_axes(ax):
    """Every line is finite and inside the axis limits, and each legend entry names one line."""
    lines = ax.get_lines()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for line in lines:
        x, y = (np.asarray(d, dtype=np.float64) for d in line.get_data())
        assert np.isfinite(y).all(), line.get_label()
        assert x0 <= x.min() and x.max() <= x1, (line.get_label(), x.min(), x.max(), x0, x1)
        assert y0 < y.min() and y.max() < y1, (line.get_label(), y.min(), y.max(), y0, y1)
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [line.get_label() for line in lines]
    return {line.get_label(): line.get_ydata() for line in lines}


def _check_figures(figures, text):
    assert list(figures) == list(tour.PLOTS)

    # presets.png: each call named once; curves that coincide share one entry that says so, the
    # others differ visibly; no curve rises back up (a spike) and none leaves the axes
    curves = _check_on_axes(figures["presets.png"].axes[0])
    named = [c for label in curves for c in PRESET_CALLS if c in label]
    assert sorted(named) == sorted(PRESET_CALLS), curves.keys()
    shared = [label for label in curves if label.count("(lr") > 1]
    assert len(shared) == len(COINCIDE), curves.keys()
    for label, group in zip(shared, COINCIDE, strict=True):
        assert [c for c in PRESET_CALLS if c in label] == list(group), label
        assert label.endswith(f"(these {len(group)} coincide)"), label
        calls = label.split("\n(")[0].replace("\n", " ")
        assert f"one curve (within 1% at every step): {calls}" in text.splitlines()
    ys = list(curves.values())
    for i, a in enumerate(ys):
        assert _rise(a) < 0.05, (list(curves)[i], _rise(a))
        for b in ys[i + 1 :]:
            assert np.max(np.abs(np.log10(a) - np.log10(b))) > 0.1  # apart by > 25 % somewhere

    # mlp.png: the train and the test MSE of every step, the printed table's values among them
    mlp = _check_on_axes(figures["mlp.png"].axes[0])
    assert list(mlp) == ["train MSE", "test MSE"]
    table = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].isdigit():
            table[int(fields[0])] = (float(fields[1]), float(fields[2]))
    for i, (train, test) in table.items():
        assert round(float(mlp["train MSE"][i]), 5) == train, i
        assert round(float(mlp["test MSE"][i]), 5) == test, i
    assert len(mlp["test MSE"]) == tour.MLP_STEPS + 1


def _check_tour(text, out):
    assert D2L_LINE in text.splitlines()

    rows = _preset_rows(text)
    assert set(rows) == set(PRESET_CALLS), text
    assert all(np.isfinite(rows[c]).all() for c in rows)
    # gluon without rescaling or clipping is the same rmsprop call as the plain alias, and so on
    for group in COINCIDE:
        assert len({rows[c] for c in group}) == 1, group
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


def test_tour_in_process(tmp_path, monkeypatch):
    figures = {}

    def make_figures(*args):  # keeps the figures the tour saves, to check their artists
        figures.update(make(*args))
        return figures

    make = tour.make_figures
    monkeypatch.setattr(tour, "make_figures", make_figures)
    out = tmp_path / "plots"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert tour.main(["--out", out]) == 0
    _check_tour(stdout.getvalue(), out)
    if HAVE_MATPLOTLIB:
        _check_figures(figures, stdout.getvalue())


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib")
def test_presets_plot_floors_and_merges_curves():
    """A loss of 0 or below the floor is drawn at the floor, and the axis label says so; equal
    curves share an entry; a curve 5 % away from another gets its own."""
    losses = np.logspace(0, -40, tour.QUAD_STEPS + 1)
    losses[-1] = 0.0
    preset_losses = {
        "a(lr)": ("", "", "", losses),
        "b(lr)": ("", "", "", losses.copy()),
        "c(lr)": ("", "", "", losses * 1.05),
    }
    figures = tour.make_figures(np.zeros((2, 2)), preset_losses, np.ones(3), np.ones(3))
    ax = figures["presets.png"].axes[0]
    curves = _check_on_axes(ax)
    assert list(curves) == ["a(lr)\n= b(lr)\n(these 2 coincide)", "c(lr)"]
    assert f"drawn at {tour.QUAD_FLOOR:.0e}" in ax.get_ylabel()
    assert min(curves["c(lr)"]) == tour.QUAD_FLOOR


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
        "presets.chainer(": (presets.chainer, "eps"),
        "presets.keras(": (presets.keras, "epsilon"),
        "presets.tf_keras(": (presets.tf_keras, "epsilon"),
        "presets.tf1(": (presets.tf1, "epsilon"),
        "presets.gluon(": (presets.gluon, "epsilon"),
        "presets.paddle(": (presets.paddle, "epsilon"),
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
        outside = function in (presets.torch, presets.chainer)  # their docstrings say so
        assert where == ("outside" if outside else "inside"), call
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
    monkeypatch.setattr(tour, "train_mlp", lambda: (losses, losses, {0: (1.0, 1.0)}))
    assert tour.main(["--out", tmp_path / "plots", "--no-plots"]) == 0
    assert not (tmp_path / "plots").exists()
    assert "plots skipped" in capsys.readouterr().out


def test_without_matplotlib_the_plots_are_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    paths = tour.save_plots(tmp_path / "plots", np.zeros((2, 2)), {}, np.ones(3), np.ones(3))
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
