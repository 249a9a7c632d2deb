"""A short offline tour of the package: ``python -m optax_rmsprop``.

Three parts, each printing what it finds:

1. the 2-D trace of *Dive into Deep Learning* 11.8 with :func:`presets.d2l`;
2. every preset of plain RMSProp (all but ``chainer_graves``), and ``optax.rmsprop``,
   on one ill-conditioned quadratic with the same learning rate and decay, so that the
   rows differ only in ε, where ε sits, and the starting mean square v₀;
3. a small MLP trained with a jitted step on data made here from a seed.

With matplotlib installed it also writes ``d2l_trace.png``, ``presets.png`` and
``mlp.png`` to ``--out`` and says where they are at the end. Nothing is downloaded.
With tqdm installed a progress bar shows on a terminal. Both come with the ``demo``
extra, ``pip install "optax_rmsprop[demo]"``; without them the tour runs the same
and prints the same results.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_rmsprop
from optax_rmsprop import presets

__all__ = ["main"]

PLOTS = ("d2l_trace.png", "presets.png", "mlp.png")


# ---------------------------------------------------------------------------
# Progress bar: tqdm's where it is installed (the demo extra), else none.


class _NoBar:
    """What the tour calls on a progress bar, doing nothing: without tqdm it shows none."""

    def update(self, n: int = 1) -> None:
        del n

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, file: Any = None) -> Any:
    """A tqdm bar on ``file`` (stderr) if that is a terminal; a :class:`_NoBar` without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    # disable=None: no bar where the output is not a terminal (a pipe, a log, a test)
    return tqdm(total=total, desc=desc, file=file, leave=False, disable=None)


# ---------------------------------------------------------------------------
# 1. d2l 11.8: f(x) = 0.1 x1² + 2 x2² from (-5, -2), eta 0.4, gamma 0.9, 20 steps.


def _d2l_f(x1: Any, x2: Any) -> Any:
    return 0.1 * x1**2 + 2 * x2**2


def d2l_trace(steps: int = 20) -> np.ndarray:
    """The points :func:`presets.d2l` visits, as d2l's ``train_2d`` records them."""
    tx = presets.d2l(lr=0.4, gamma=0.9)
    x = jnp.array([-5.0, -2.0])
    state = tx.init(x)
    trace = [np.asarray(x)]
    for _ in range(steps):
        grad = jnp.array([0.2 * x[0], 4 * x[1]])
        updates, state = tx.update(grad, state)
        x = optax.apply_updates(x, updates)
        trace.append(np.asarray(x))
    return np.stack(trace)


# ---------------------------------------------------------------------------
# 2. The presets side by side on f(x) = 1/2 sum_i a_i x_i², a_i from 1 down to 1e-4.

# The horizon ends while every curve still falls. Run much longer at this learning rate and the
# curves with ε inside the root jump back up by decades, ε outside by more: near the minimum g²
# falls below ε, the step becomes lr·a·g/√ε (lr·a·g/ε outside), and for lr·a > 2√ε the minimum
# is unstable. That is RMSProp's known behaviour near a minimum with a step that stays large,
# not something a preset does wrong; a tour plot of it would read as a bug.
QUAD_DIM, QUAD_STEPS, QUAD_LR = 8, 160, 0.02
QUAD_CURVATURE = np.logspace(0, -4, QUAD_DIM, dtype=np.float32)
QUAD_FLOOR = 1e-30  # the plot draws a loss below this at this floor, and says so


def _preset_rows(lr: optax.ScalarOrSchedule) -> list[tuple[str, Any, str, str, str]]:
    """(call, transformation, ε, where ε sits, v₀) for every preset of plain RMSProp (not
    ``chainer_graves``: centered, with momentum), same lr and decay, framework defaults else."""
    return [
        ("presets.torch(lr, alpha=0.9)", presets.torch(lr, alpha=0.9), "1e-8", "outside", "0"),
        ("presets.chainer(lr, alpha=0.9)", presets.chainer(lr, alpha=0.9), "1e-8", "outside", "0"),
        ("presets.keras(lr)", presets.keras(lr), "1e-7", "inside", "0"),
        ("presets.tf_keras(lr)", presets.tf_keras(lr), "1e-7", "inside", "0"),
        ("presets.tf1(lr)", presets.tf1(lr), "1e-10", "inside", "1"),
        ("presets.gluon(lr)", presets.gluon(lr), "1e-8", "inside", "0"),
        ("presets.paddle(lr, rho=0.9)", presets.paddle(lr, rho=0.9), "1e-6", "inside", "0"),
        ("presets.d2l(lr, gamma=0.9)", presets.d2l(lr, gamma=0.9), "1e-6", "inside", "0"),
        ("optax_rmsprop.rmsprop(lr)", optax_rmsprop.rmsprop(lr), "1e-8", "inside", "0"),
        ("optax.rmsprop(lr)", optax.rmsprop(lr), "1e-8", "inside", "0"),
    ]


def _quadratic(x: jax.Array) -> jax.Array:
    return 0.5 * jnp.sum(QUAD_CURVATURE * x**2)


def _run_quadratic(tx: optax.GradientTransformation) -> np.ndarray:
    """Loss before each step and after the last: ``QUAD_STEPS + 1`` values."""

    @jax.jit
    def run(x0):
        def step(carry, _):
            x, state = carry
            updates, state = tx.update(jax.grad(_quadratic)(x), state, x)
            x = optax.apply_updates(x, updates)
            return (x, state), _quadratic(x)

        _, losses = jax.lax.scan(step, (x0, tx.init(x0)), length=QUAD_STEPS)
        return jnp.concatenate([_quadratic(x0)[None], losses])

    return np.asarray(run(jnp.ones(QUAD_DIM)))


def compare_presets() -> dict[str, tuple[str, str, str, np.ndarray]]:
    lr = optax.cosine_decay_schedule(QUAD_LR, QUAD_STEPS)
    rows = _preset_rows(lr)
    results = {}
    bar = _progress(len(rows), "presets")
    for call, tx, eps, where, v0 in rows:
        results[call] = (eps, where, v0, _run_quadratic(tx))
        bar.update()
    bar.close()
    return results


# ---------------------------------------------------------------------------
# 3. An MLP 2-64-64-1 on y = sin(2 x1) cos(x2) + noise, full batch, jitted step.

MLP_SIZES, MLP_STEPS, MLP_POINTS, MLP_NOISE = (2, 64, 64, 1), 1000, 1024, 0.05
MLP_REPORT = (0, 100, 250, 500, 1000)


def _mlp_data(rng: np.random.Generator, n: int) -> tuple[jax.Array, jax.Array]:
    x = rng.uniform(-2.0, 2.0, (n, 2)).astype(np.float32)
    y = np.sin(2 * x[:, 0]) * np.cos(x[:, 1]) + MLP_NOISE * rng.standard_normal(n)
    return jnp.asarray(x), jnp.asarray(y, dtype=jnp.float32)


def _mlp_init(key: jax.Array) -> list[dict[str, jax.Array]]:
    keys = jax.random.split(key, len(MLP_SIZES) - 1)
    return [
        {"w": jax.random.normal(k, (m, n)) / np.sqrt(m), "b": jnp.zeros(n)}
        for k, m, n in zip(keys, MLP_SIZES[:-1], MLP_SIZES[1:], strict=True)
    ]


def _mlp_predict(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return (x @ params[-1]["w"] + params[-1]["b"])[:, 0]


def _mse(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((_mlp_predict(params, x) - y) ** 2)


def train_mlp(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[float, float]]]:
    """Train and test MSE before each step and after the last (``MLP_STEPS + 1`` values each),
    and the (train, test) pairs at the steps in ``MLP_REPORT``."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _mlp_data(rng, MLP_POINTS)
    x_test, y_test = _mlp_data(rng, MLP_POINTS)
    tx = optax_rmsprop.rmsprop(1e-3, centered=True, momentum=0.9)
    params = _mlp_init(jax.random.key(seed))
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(_mse)(params, x_train, y_train)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss, _mse(params, x_test, y_test)

    train, test = [], []
    bar = _progress(MLP_STEPS, "MLP")
    for _ in range(MLP_STEPS):
        params, state, train_loss, test_loss = step(params, state)
        train.append(train_loss)
        test.append(test_loss)
        bar.update()
    bar.close()
    train.append(_mse(params, x_train, y_train))
    test.append(_mse(params, x_test, y_test))
    train_mse, test_mse = (np.asarray(jax.device_get(x), dtype=np.float64) for x in (train, test))
    table = {i: (float(train_mse[i]), float(test_mse[i])) for i in MLP_REPORT}
    return train_mse, test_mse, table


# ---------------------------------------------------------------------------
# Plots (matplotlib is optional) and the command line.


def coinciding(
    preset_losses: dict[str, tuple[str, str, str, np.ndarray]], rtol: float = 0.01
) -> list[tuple[list[str], np.ndarray]]:
    """The loss curves as drawn: calls whose curves agree within ``rtol`` at every step (above
    ``QUAD_FLOOR``) share one line, so a line hidden under another still has its name shown."""
    groups: list[tuple[list[str], np.ndarray]] = []
    for call, (_, _, _, losses) in preset_losses.items():
        drawn = np.maximum(losses, QUAD_FLOOR)
        for calls, first in groups:
            if np.all(np.abs(drawn - first) <= rtol * first):
                calls.append(call)
                break
        else:
            groups.append(([call], drawn))
    return groups


def make_figures(
    trace: np.ndarray,
    preset_losses: dict[str, tuple[str, str, str, np.ndarray]],
    mlp_train: np.ndarray,
    mlp_test: np.ndarray,
) -> dict[str, Any]:
    """The three matplotlib figures, by file name; raises ImportError without matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def figure(draw: Callable[[Any], None], size=(6.0, 4.0)) -> Any:
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig.add_subplot())
        return fig

    def draw_trace(ax):  # as d2l's show_trace_2d
        x1, x2 = np.meshgrid(np.arange(-5.5, 1.0, 0.1), np.arange(-3.0, 1.0, 0.1))
        ax.contour(x1, x2, _d2l_f(x1, x2), colors="#1f77b4")
        ax.plot(trace[:, 0], trace[:, 1], "-o", color="#ff7f0e")
        ax.set(xlabel="x1", ylabel="x2", title="presets.d2l(lr=0.4, gamma=0.9), 20 steps")

    def draw_presets(ax):
        floored = False
        for calls, drawn in coinciding(preset_losses):
            floored |= bool(np.any(drawn <= QUAD_FLOOR))
            label = "\n= ".join(calls) + (f"\n(these {len(calls)} coincide)" if calls[1:] else "")
            ax.semilogy(drawn, label=label)
        ax.set(
            xlabel="step",
            ylabel="loss" + (f" (below {QUAD_FLOOR:.0e} drawn at {QUAD_FLOOR:.0e})" * floored),
            xlim=(0, QUAD_STEPS),
            ylim=(QUAD_FLOOR / 10, 2.0),
            title=f"{QUAD_DIM}-D quadratic, curvatures 1 ... 1e-4, lr cosine {QUAD_LR} -> 0",
        )
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2)  # below: readable

    def draw_mlp(ax):
        ax.semilogy(mlp_train, lw=1.0, label="train MSE")
        ax.semilogy(mlp_test, lw=1.0, ls="--", label="test MSE")
        ax.set(
            xlabel="step",
            ylabel="MSE",
            xlim=(0, len(mlp_train) - 1),
            title="MLP, rmsprop(1e-3, centered, momentum)",
        )
        ax.legend()

    return {
        PLOTS[0]: figure(draw_trace),
        PLOTS[1]: figure(draw_presets, size=(7.0, 7.0)),
        PLOTS[2]: figure(draw_mlp),
    }


def save_plots(
    out: pathlib.Path,
    trace: np.ndarray,
    preset_losses: dict[str, tuple[str, str, str, np.ndarray]],
    mlp_train: np.ndarray,
    mlp_test: np.ndarray,
) -> list[pathlib.Path]:
    """Writes the three PNGs with matplotlib's Agg canvas; skips them without matplotlib."""
    try:
        figures = make_figures(trace, preset_losses, mlp_train, mlp_test)
    except ImportError:
        print(
            "matplotlib is not installed: no plots "
            '(pip install "optax_rmsprop[demo]", or matplotlib).'
        )
        return []
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=100)
        paths.append(out / name)
    return paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m optax_rmsprop",
        description="A short offline tour of optax_rmsprop: the d2l 11.8 trace, the "
        "presets side by side, and a small MLP. Writes PNG plots when matplotlib is "
        "installed.",
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=pathlib.Path("tour_output"),
        help="folder for the PNG plots (default: ./tour_output)",
    )
    parser.add_argument("--no-plots", action="store_true", help="do not write the plots")
    return parser


def main(argv: Sequence[str | os.PathLike[str]] | None = None) -> int:
    """Runs the tour; ``argv`` as on the command line (paths may be path objects)."""
    args = _parser().parse_args(None if argv is None else [os.fspath(a) for a in argv])
    start = time.perf_counter()
    print(
        f"optax_rmsprop {optax_rmsprop.__version__} (jax {jax.__version__}, "
        f"optax {optax.__version__}, {jax.default_backend()})"
    )

    print("\n1. d2l 11.8: f = 0.1 x1^2 + 2 x2^2 from (-5, -2), presets.d2l(lr=0.4, gamma=0.9)")
    trace = d2l_trace()
    print(f"epoch {len(trace) - 1}, x1: {trace[-1, 0]:f}, x2: {trace[-1, 1]:f}")

    print(
        f"\n2. Presets on f = 1/2 sum a_i x_i^2, a_i = 1 ... 1e-4 ({QUAD_DIM} coordinates), "
        f"x0 = 1,\n   lr cosine {QUAD_LR} -> 0 over {QUAD_STEPS} steps, decay 0.9 for all, "
        "so the rows differ\n   only in eps, where eps sits (inside or outside the root) and "
        "v0; chainer_graves\n   (centered, with momentum) is another rule, not shown"
    )
    preset_losses = compare_presets()
    mid = QUAD_STEPS // 2
    print(
        f"{'preset':<30} {'eps':>6} {'eps at':>8} {'v0':>3} {'loss@' + str(mid):>10} "
        f"{'loss@' + str(QUAD_STEPS):>10}"
    )
    for call, (eps, where, v0, losses) in preset_losses.items():
        print(f"{call:<30} {eps:>6} {where:>8} {v0:>3} {losses[mid]:>10.3e} {losses[-1]:>10.3e}")
    for calls, _ in coinciding(preset_losses):
        if calls[1:]:
            print(f"one curve (within 1% at every step): {' = '.join(calls)}")

    print(
        f"\n3. MLP {'-'.join(map(str, MLP_SIZES))} (tanh) on y = sin(2 x1) cos(x2) + "
        f"{MLP_NOISE} noise, {MLP_POINTS} train / {MLP_POINTS} test points,\n"
        "   optax_rmsprop.rmsprop(1e-3, centered=True, momentum=0.9), full batch, jitted step"
    )
    mlp_train, mlp_test, table = train_mlp()
    print(f"{'step':>5} {'train MSE':>10} {'test MSE':>10}")
    for i, (train, test) in table.items():
        print(f"{i:>5} {train:>10.5f} {test:>10.5f}")

    print()
    paths = [] if args.no_plots else save_plots(args.out, trace, preset_losses, mlp_train, mlp_test)
    print(f"done in {time.perf_counter() - start:.1f} s")
    if args.no_plots:
        print("plots skipped (--no-plots)")
    elif paths:
        print("the plots are these PNG files:")
        for path in paths:
            print(f"  {path.resolve()}")
    return 0
