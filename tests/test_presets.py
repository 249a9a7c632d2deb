"""Each preset against the real framework it reproduces, and its defaults against the framework's.

torch and Keras 3 run in this process; TF1 (``tf.compat.v1.train.RMSPropOptimizer``, eager and
graph), tf_keras (new and legacy), Paddle, MXNet and Chainer run in venvs of their own built by
``.ci/frameworks.sh`` (``tests/frameworks/run.py`` drives them), and are skipped, saying so,
where those venvs are absent. The versions used are printed in pytest's summary.

How a case is judged, as ``test_fidelity.py`` judges: the framework runs RMSProp on S
least-squares problems (one parameter array, a row per problem), computing each gradient at its
own parameters; our preset is then fed the same gradient sequence, once in float32 and once in
float64, the float64 run standing for the exact rule the preset claims. Fed a fixed gradient
sequence, nothing chaotic can amplify rounding: the state is a stable linear recurrence and the
parameters a sum of steps. The framework agrees with the preset when its float32 path is no
further from that exact path than ``RATIO`` times ours (median over the problems of the
distance, ``max_t |θ_t − θ*_t|∞ / max_t |θ*_t|∞``): both are then rounding. Each case has a
control, the neighbouring preset or the other ε placement, that must fail the same judgment by
far (``CONTROL_RATIO``): so a formula difference does not pass as rounding. The gradients are
scaled so that what a case names shows: |g| ~ √ε for ε inside the root, |g| ~ ε outside it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import inspect
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import complex_problem, dense_problem, distances, least_squares, timm_optim

from optax_rmsprop import presets, rmsprop

RUNNER = Path(__file__).parent / "frameworks" / "run.py"
VENVS = Path(
    os.environ.get(
        "OPTAX_RMSPROP_FRAMEWORKS", Path(tempfile.gettempdir()) / "optax_rmsprop-frameworks"
    )
)
SEEDS, STEPS = 16, 100
# Two float32 implementations of one formula differ in how much rounding they collect. Measured
# on these cases, the frameworks' distance to the exact path is 0.8-1.7x ours, and up to 3.9x
# where the centered variance n − ḡ² cancels (clipped, nearly constant gradients: MXNet there is
# bit for bit a plain float32 NumPy transcription of its formula, ours is closer to exact). A
# different formula (ε's place, v₀, coupled or decoupled decay, a default off by 10x) measured
# 1.3e4x and more: every control must fail by CONTROL_RATIO, 100 x RATIO.
RATIO = 10.0
CONTROL_RATIO = 1000.0


# ---------------------------------------------------------------------------
# The problems, and the frameworks' runs.


def _load_runner():
    spec = importlib.util.spec_from_file_location("framework_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Where each framework runs: None is this process; otherwise the venv (and the process: TF and
# Paddle each get their own) .ci/frameworks.sh builds.
PLACE = {
    "torch": (None, None),
    "keras": (None, None),
    "tf1_eager": ("tensorflow", "tensorflow"),
    "tf1_graph": ("tensorflow", "tensorflow"),
    "tf_keras": ("tensorflow", "tensorflow"),
    "tf_keras_legacy": ("tensorflow", "tensorflow"),
    "paddle": ("tensorflow", "paddle"),
    "mxnet": ("mxnet", "mxnet"),
    "chainer": ("chainer", "chainer"),
    "chainer_graves": ("chainer", "chainer"),
}


def _python(venv: str) -> Path:
    python = VENVS / venv / "bin" / "python"
    if not python.exists():
        pytest.skip(
            f"no {venv} venv at {VENVS / venv}: build the framework venvs with "
            "`bash .ci/frameworks.sh` (or point OPTAX_RMSPROP_FRAMEWORKS at them)"
        )
    return python


def _subprocess_json(python: Path, *args: str):
    done = subprocess.run(
        [str(python), str(RUNNER), *args], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@functools.cache
def _versions(venv: str | None) -> dict[str, str]:
    if venv is None:
        return _load_runner().versions()
    return json.loads(_subprocess_json(_python(venv), "--versions").stdout)


@functools.cache
def _signatures(venv: str | None, *keys: str) -> dict[str, dict]:
    if venv is None:
        return _load_runner().signatures(keys)
    return json.loads(_subprocess_json(_python(venv), "--signatures", *keys).stdout)


@dataclasses.dataclass(frozen=True)
class Case:
    """The framework's optimizer with ``kwargs``; ours; the control that must fail."""

    id: str
    framework: str
    kwargs: dict
    ours: Callable[[], optax.GradientTransformation]
    control: Callable[[], optax.GradientTransformation]
    scale: float = 0.1  # |g| ~ 0.1 to 1, so an ε of 1e-2 shows, inside or outside the root
    steps: int = STEPS

    def spec(self) -> dict:
        return dict(
            framework=self.framework, kwargs=self.kwargs, steps=self.steps, scale=self.scale
        )


def _trajectories(cases: list[Case]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(gradients, parameter path) of each case, the cases of one place run together."""
    venv, process = PLACE[cases[0].framework]
    # one problem per row, columns scaled over e^±1, x₀ 3 to 5 from the minimum in every
    # coordinate (``STEPS`` steps do not reach it), in float32 as the frameworks take it
    a, b, x0 = (x.astype(np.float32) for x in least_squares(SEEDS, 32, 8, spread=0.5))
    specs = [c.spec() for c in cases]
    if venv is None:
        out = _load_runner().trajectories(a, b, x0, specs)
    else:
        python = _python(venv)
        with tempfile.TemporaryDirectory() as tmp:
            source, target = Path(tmp, "in.npz"), Path(tmp, "out.npz")
            np.savez(source, a=a, b=b, x0=x0, cases=json.dumps(specs))
            _subprocess_json(python, str(source), str(target))
            with np.load(target) as data:
                out = dict(data)
    return {c.id: (out[f"{i}/grads"], out[f"{i}/params"]) for i, c in enumerate(cases)}


def _feed(tx: optax.GradientTransformation, x0, grads, wide: bool = False):
    """θ₀ … θ_T of ``tx`` given the gradient sequence ``grads`` (a leading time axis on each
    leaf), in the leaves' dtypes or, with ``wide``, in float64/complex128."""

    def cast(z):
        z = np.asarray(z)
        return jnp.asarray(z.astype(np.result_type(z.dtype, np.float64)) if wide else z)

    def step(carry, g):
        x, state = carry
        updates, state = tx.update(g, state, x)
        x = optax.apply_updates(x, updates)
        return (x, state), x

    x0, grads = jax.tree.map(cast, x0), jax.tree.map(cast, grads)
    _, xs = jax.lax.scan(step, (x0, tx.init(x0)), grads)
    return jax.tree.map(lambda a, b: np.asarray(jnp.concatenate([a[None], b])), x0, xs)


def _ratio(make_tx, grads, theirs) -> tuple[float, float, float]:
    """(their distance / our distance, ours, theirs) to the exact path of ``make_tx()``."""
    x0 = jax.tree.map(lambda v: v[0], theirs)
    ours = _feed(make_tx(), x0, grads)
    with jax.enable_x64(True):
        exact = _feed(make_tx(), x0, grads, wide=True)
    d_ours = float(np.median(distances(ours, exact)))  # the median over the problems
    d_theirs = float(np.median(distances(theirs, exact)))
    return d_theirs / d_ours, d_ours, d_theirs


def _judge(case_id: str, ours, control, grads, theirs) -> None:
    ratio, d_ours, d_theirs = _ratio(ours, grads, theirs)
    assert ratio <= RATIO, f"{case_id}: framework {d_theirs:.3g} from exact, ours {d_ours:.3g}"
    c_ratio, c_ours, c_theirs = _ratio(control, grads, theirs)
    assert c_ratio > CONTROL_RATIO, (
        f"{case_id}: the control passes too: framework {c_theirs:.3g}, control {c_ours:.3g}"
    )


# ---------------------------------------------------------------------------
# The cases. Learning rates are such that 100 steps move the parameters by about 1.

P = presets
CASES = [
    # torch.optim.RMSprop: ε outside the root, lr applied to the whole momentum buffer.
    Case("torch-eps_1e-2", "torch", dict(lr=0.01, alpha=0.9, eps=1e-2),
         lambda: P.torch(lr=0.01, alpha=0.9, eps=1e-2),
         lambda: P.chainer(lr=0.01, alpha=0.9, eps=1e-2, eps_inside_sqrt=True)),
    Case("torch-centered-momentum-weight_decay", "torch",
         dict(lr=0.01, alpha=0.9, eps=1e-2, centered=True, momentum=0.9, weight_decay=0.1),
         lambda: P.torch(0.01, 0.9, 1e-2, weight_decay=0.1, momentum=0.9, centered=True),
         lambda: P.paddle(0.01, 0.9, 1e-2, 0.9, centered=True, weight_decay=0.1)),
    Case("torch-maximize-momentum", "torch",
         dict(lr=0.01, alpha=0.9, eps=1e-2, momentum=0.9, maximize=True),
         lambda: P.torch(lr=0.01, alpha=0.9, eps=1e-2, momentum=0.9, maximize=True),
         lambda: P.torch(lr=0.01, alpha=0.9, eps=1e-2, momentum=0.9), scale=-0.1),
    Case("torch-defaults", "torch", {}, P.torch, lambda: P.torch(eps=1e-7), scale=1e-8),
    # keras.optimizers.RMSprop: ε inside, lr inside the buffer, decoupled weight decay.
    Case("keras-eps_1e-2", "keras", dict(learning_rate=0.01, rho=0.9, epsilon=1e-2),
         lambda: P.keras(0.01, 0.9, epsilon=1e-2),
         lambda: P.torch(0.01, 0.9, eps=1e-2)),
    Case("keras-centered-momentum-weight_decay", "keras",
         dict(learning_rate=0.01, rho=0.9, epsilon=1e-2, momentum=0.9, centered=True,
              weight_decay=0.1),
         lambda: P.keras(0.01, 0.9, 0.9, 1e-2, True, 0.1),
         lambda: P.paddle(0.01, 0.9, 1e-2, 0.9, True, 0.1)),
    Case("keras-defaults", "keras", {}, P.keras, lambda: P.keras(epsilon=1e-6), scale=3e-4),
    # TF1 RMSPropOptimizer (ApplyRMSProp kernels): v₀ = 1, ε inside, lr inside the buffer.
    *[
        c
        for mode in ("eager", "graph")
        for c in (
            Case(f"tf1_{mode}-decay_0.8-eps_1e-2", f"tf1_{mode}",
                 dict(learning_rate=0.01, decay=0.8, epsilon=1e-2),
                 lambda: P.tf1(0.01, 0.8, epsilon=1e-2),
                 lambda: P.keras(0.01, 0.8, epsilon=1e-2)),
            Case(f"tf1_{mode}-centered-momentum", f"tf1_{mode}",
                 dict(learning_rate=0.01, momentum=0.9, epsilon=1e-2, centered=True),
                 lambda: P.tf1(0.01, momentum=0.9, epsilon=1e-2, centered=True),
                 lambda: P.keras(0.01, momentum=0.9, epsilon=1e-2, centered=True)),
            Case(f"tf1_{mode}-dopamine_dqn", f"tf1_{mode}",
                 dict(learning_rate=2.5e-4, decay=0.95, momentum=0.0, epsilon=1e-5,
                      centered=True),
                 lambda: P.tf1(2.5e-4, 0.95, 0.0, 1e-5, centered=True),
                 lambda: P.chainer_graves(2.5e-4, 0.95, 0.0, 1e-5), scale=1.0),
            # v₀ = 1 hides ε until ρᵗ < ε: 300 steps of ρ 0.9 reach 2e-14.
            Case(f"tf1_{mode}-defaults", f"tf1_{mode}", dict(learning_rate=0.01),
                 lambda: P.tf1(0.01), lambda: P.tf1(0.01, epsilon=1e-9), scale=1e-5, steps=300),
        )
    ],
    # tf_keras: the new optimizer is Keras 3's rule; the legacy one has ε outside without
    # momentum and TF1's kernels with v₀ = 0 with momentum.
    Case("tf_keras-eps_1e-2", "tf_keras", dict(learning_rate=0.01, rho=0.9, epsilon=1e-2),
         lambda: P.tf_keras(0.01, 0.9, epsilon=1e-2),
         lambda: P.tf_keras(0.01, 0.9, epsilon=1e-2, legacy=True)),
    Case("tf_keras-centered-momentum-weight_decay", "tf_keras",
         dict(learning_rate=0.01, rho=0.9, momentum=0.9, epsilon=1e-2, centered=True,
              weight_decay=0.1),
         lambda: P.tf_keras(0.01, 0.9, 0.9, 1e-2, True, 0.1),
         lambda: P.paddle(0.01, 0.9, 1e-2, 0.9, True, 0.1)),
    Case("tf_keras-defaults", "tf_keras", {}, P.tf_keras, lambda: P.tf_keras(epsilon=1e-6),
         scale=3e-4),
    Case("tf_keras_legacy-eps_1e-2", "tf_keras_legacy",
         dict(learning_rate=0.01, rho=0.9, epsilon=1e-2),
         lambda: P.tf_keras(0.01, 0.9, epsilon=1e-2, legacy=True),
         lambda: P.tf_keras(0.01, 0.9, epsilon=1e-2)),
    Case("tf_keras_legacy-centered-eps_1e-2", "tf_keras_legacy",
         dict(learning_rate=0.01, rho=0.9, epsilon=1e-2, centered=True),
         lambda: P.tf_keras(0.01, 0.9, epsilon=1e-2, centered=True, legacy=True),
         lambda: P.tf_keras(0.01, 0.9, epsilon=1e-2, centered=True)),
    Case("tf_keras_legacy-momentum-eps_1e-2", "tf_keras_legacy",
         dict(learning_rate=0.01, rho=0.9, momentum=0.9, epsilon=1e-2),
         lambda: P.tf_keras(0.01, 0.9, 0.9, 1e-2, legacy=True),
         lambda: P.tf1(0.01, 0.9, 0.9, 1e-2)),
    Case("tf_keras_legacy-centered-momentum-eps_1e-2", "tf_keras_legacy",
         dict(learning_rate=0.01, rho=0.9, momentum=0.9, epsilon=1e-2, centered=True),
         lambda: P.tf_keras(0.01, 0.9, 0.9, 1e-2, True, legacy=True),
         lambda: P.tf1(0.01, 0.9, 0.9, 1e-2, True)),
    Case("tf_keras_legacy-defaults", "tf_keras_legacy", {},
         lambda: P.tf_keras(legacy=True), lambda: P.tf_keras(epsilon=1e-6, legacy=True),
         scale=1e-7),
    Case("tf_keras_legacy-epsilon_None", "tf_keras_legacy", dict(epsilon=None),
         lambda: P.tf_keras(epsilon=None, legacy=True),
         lambda: P.tf_keras(epsilon=1e-8, legacy=True), scale=1e-7),
    # paddle.optimizer.RMSProp: ε inside, lr inside the buffer, coupled weight decay.
    Case("paddle-momentum-weight_decay-eps_1e-2", "paddle",
         dict(learning_rate=0.01, rho=0.9, epsilon=1e-2, momentum=0.9, weight_decay=0.1),
         lambda: P.paddle(0.01, 0.9, 1e-2, 0.9, weight_decay=0.1),
         lambda: P.keras(0.01, 0.9, 0.9, 1e-2, weight_decay=0.1)),
    Case("paddle-centered-momentum-eps_1e-2", "paddle",
         dict(learning_rate=0.01, rho=0.9, epsilon=1e-2, momentum=0.9, centered=True),
         lambda: P.paddle(0.01, 0.9, 1e-2, 0.9, True),
         lambda: P.torch(0.01, 0.9, 1e-2, momentum=0.9, centered=True)),
    Case("paddle-defaults", "paddle", dict(learning_rate=0.01),
         lambda: P.paddle(0.01), lambda: P.paddle(0.01, epsilon=1e-5), scale=1e-3),
    # MXNet 1.9 mx.optimizer.RMSProp (gluon.Trainer's updater).
    Case("mxnet-gamma1_0.8-eps_1e-2", "mxnet",
         dict(learning_rate=0.01, gamma1=0.8, epsilon=1e-2),
         lambda: P.gluon(0.01, 0.8, epsilon=1e-2),
         lambda: P.chainer(0.01, 0.8, 1e-2)),
    Case("mxnet-centered-gamma2_0.5-eps_1e-2", "mxnet",
         dict(learning_rate=0.01, gamma2=0.5, epsilon=1e-2, centered=True),
         lambda: P.gluon(0.01, gamma2=0.5, epsilon=1e-2, centered=True),
         lambda: P.torch(0.01, 0.9, 1e-2, momentum=0.5, centered=True)),
    Case("mxnet-wd-rescale_grad", "mxnet",
         dict(learning_rate=0.01, epsilon=1e-2, wd=0.1, rescale_grad=0.5),
         lambda: P.gluon(0.01, epsilon=1e-2, wd=0.1, rescale_grad=0.5),
         lambda: P.keras(0.01, epsilon=1e-2, weight_decay=0.1)),
    Case("mxnet-clip_gradient", "mxnet",
         dict(learning_rate=0.01, epsilon=1e-2, clip_gradient=0.05),
         lambda: P.gluon(0.01, epsilon=1e-2, clip_gradient=0.05),
         lambda: P.gluon(0.01, epsilon=1e-2)),
    Case("mxnet-clip_weights", "mxnet",
         dict(learning_rate=0.01, epsilon=1e-2, clip_weights=2.0),
         lambda: P.gluon(0.01, epsilon=1e-2, clip_weights=2.0),
         lambda: P.gluon(0.01, epsilon=1e-2)),
    *[
        Case(f"mxnet-{what}_{value}", "mxnet",
             {"learning_rate": 0.01, "epsilon": 1e-2, what: value},
             functools.partial(P.gluon, 0.01, epsilon=1e-2, **{what: value}),
             # the control clips at a small positive value: 0 read as a bound, not as "off"
             functools.partial(P.gluon, 0.01, epsilon=1e-2, **{what: 1e-3}))
        for what in ("clip_gradient", "clip_weights")
        for value in (0, -1.0)
    ],
    Case("mxnet-everything", "mxnet",
         dict(learning_rate=0.01, gamma1=0.8, gamma2=0.5, epsilon=1e-3, centered=True,
              wd=0.1, rescale_grad=0.5, clip_gradient=0.1, clip_weights=4.0),
         lambda: P.gluon(0.01, 0.8, 0.5, 1e-3, True, 4.0, 0.1, 0.5, 0.1),
         lambda: P.gluon(0.01, 0.8, 0.5, 1e-3, True, 4.0, 0.1, 0.5, None)),
    Case("mxnet-defaults", "mxnet", {}, P.gluon, lambda: P.gluon(epsilon=1e-7), scale=1e-4),
    # Chainer 7: RMSprop (ε outside unless eps_inside_sqrt) and RMSpropGraves.
    Case("chainer-eps_1e-2", "chainer", dict(lr=0.01, alpha=0.9, eps=1e-2),
         lambda: P.chainer(0.01, 0.9, 1e-2),
         lambda: P.chainer(0.01, 0.9, 1e-2, eps_inside_sqrt=True)),
    Case("chainer-eps_inside_sqrt-eps_1e-2", "chainer",
         dict(lr=0.01, alpha=0.9, eps=1e-2, eps_inside_sqrt=True),
         lambda: P.chainer(0.01, 0.9, 1e-2, eps_inside_sqrt=True),
         lambda: P.chainer(0.01, 0.9, 1e-2)),
    Case("chainer-weight_decay_hook", "chainer",
         dict(lr=0.01, alpha=0.9, eps=1e-2, weight_decay_hook=0.1),
         lambda: optax.chain(optax.add_decayed_weights(0.1), P.chainer(0.01, 0.9, 1e-2)),
         lambda: P.chainer(0.01, 0.9, 1e-2)),
    Case("chainer-defaults", "chainer", {}, P.chainer, lambda: P.chainer(eps=1e-7), scale=1e-8),
    Case("chainer_graves-chainerrl_dqn", "chainer_graves",
         dict(lr=2.5e-4, alpha=0.95, momentum=0.0, eps=1e-2),
         lambda: P.chainer_graves(2.5e-4, 0.95, 0.0, 1e-2),
         lambda: P.tf1(2.5e-4, 0.95, 0.0, 1e-2, centered=True)),
    Case("chainer_graves-momentum-eps_1e-2", "chainer_graves",
         dict(lr=0.01, alpha=0.9, momentum=0.9, eps=1e-2),
         lambda: P.chainer_graves(0.01, 0.9, 0.9, 1e-2),
         lambda: P.torch(0.01, 0.9, 1e-2, momentum=0.9, centered=True)),
    Case("chainer_graves-defaults", "chainer_graves", {}, P.chainer_graves,
         lambda: P.chainer_graves(eps=1e-3), scale=1e-2),
]  # fmt: skip


# ---------------------------------------------------------------------------
# The tests.


class _VersionsReport:
    """Prints, at the end of the run, the versions the presets were proven against."""

    def __init__(self):
        self.lines: dict[str, str] = {}

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.section("presets proven against")
        for place, line in sorted(self.lines.items()):
            terminalreporter.write_line(f"{place}: {line}")


@pytest.fixture(scope="session")
def versions_report(request):
    report = _VersionsReport()
    request.config.pluginmanager.register(report, "optax_rmsprop_presets_versions")
    return report


def _record(report: _VersionsReport, venv: str | None) -> None:
    found = _versions(venv)
    place = "this process" if venv is None else f"venv {venv}"
    report.lines[place] = ", ".join(f"{k} {v}" for k, v in found.items())


@functools.cache
def _results(process: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return _trajectories([c for c in CASES if PLACE[c.framework][1] == process])


def _case_param(case: Case):
    marks = [] if PLACE[case.framework][0] is None else [pytest.mark.slow]
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_case_param(c) for c in CASES])
def test_preset_matches_the_framework(case, versions_report):
    """Fed the framework's gradients, the preset's path and the framework's differ by
    rounding only, and the control's by far more."""
    venv, process = PLACE[case.framework]
    if venv is not None:
        _python(venv)  # skips, saying how to build it, where the venv is absent
    _record(versions_report, venv)
    grads, theirs = _results(process)[case.id]
    _judge(case.id, case.ours, case.control, grads, theirs)


# ---------------------------------------------------------------------------
# Defaults: each preset's arguments are the framework's, in its order, with its defaults.

SIGNATURES = {  # preset: (the framework in PLACE, its key in run.py --signatures, our extras)
    "torch": ("torch", "torch", ()),
    "keras": ("keras", "keras", ()),
    "tf1": ("tf1_eager", "tf1", ()),
    "tf_keras": ("tf_keras", "tf_keras", ()),
    "tf_keras-legacy": ("tf_keras", "tf_keras_legacy", ("weight_decay",)),  # ValueError
    "paddle": ("paddle", "paddle", ()),
    "gluon": ("mxnet", "gluon", ()),
    "chainer": ("chainer", "chainer", ()),
    "chainer_graves": ("chainer", "chainer_graves", ()),
}


def _our_defaults(name: str, extras) -> dict:
    fn = getattr(presets, name.split("-")[0])
    return {
        n: "<required>" if p.default is p.empty else p.default
        for n, p in inspect.signature(fn).parameters.items()
        if p.kind is p.POSITIONAL_OR_KEYWORD and n not in extras
    }


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[] if PLACE[f][0] is None else [pytest.mark.slow])
        for n, (f, _, _) in SIGNATURES.items()
    ],
)
def test_defaults_are_the_frameworks(name, versions_report):
    """Names, order and defaults read from the framework's own ``__init__`` signature (the
    ``*-defaults`` cases above run them where ε shows)."""
    framework, key, extras = SIGNATURES[name]
    venv, process = PLACE[framework]
    if venv is not None:
        _python(venv)
    _record(versions_report, venv)
    # one process reads the signatures of all the frameworks it runs (TF and Paddle apart)
    keys = [k for f, k, _ in SIGNATURES.values() if PLACE[f][1] == process]
    found = _signatures(venv, *keys, *(["gluon/kwargs"] if "gluon" in keys else []))
    own, passed_on = found[key], found.get(f"{key}/kwargs", {})
    theirs = {**passed_on, **own}
    ours = _our_defaults(name, extras)
    assert set(ours) <= set(theirs), set(ours) - set(theirs)
    assert [n for n in ours if n in own] == [n for n in own if n in ours]  # positional order
    assert ours == {n: theirs[n] for n in ours}


# ---------------------------------------------------------------------------
# What the table above cannot say: schedules, complex parameters, masks. In this process, with
# two parameter leaves (a matrix and a bias), judged the same way.


def _stack(steps):
    return {k: np.stack([s[k] for s in steps]) for k in steps[0]}


def _run_torch(make_optimizer, params0, grad, steps=STEPS, make_scheduler=None):
    """(gradients, path) of torch.optim.RMSprop; a scheduler steps once per optimizer step."""
    import torch

    params = {k: torch.tensor(v, requires_grad=True) for k, v in params0.items()}
    optimizer = make_optimizer(list(params.values()))
    scheduler = make_scheduler(optimizer) if make_scheduler else None
    grads, path = [], [params0]
    for _ in range(steps):
        g = grad({k: v.detach().numpy().copy() for k, v in params.items()})
        for k, p in params.items():
            p.grad = torch.from_numpy(g[k])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        grads.append(g)
        path.append({k: v.detach().numpy().copy() for k, v in params.items()})
    return _stack(grads), _stack(path)


def _run_keras(optimizer, params0, grad, steps=STEPS):
    import keras

    variables = {k: keras.Variable(v, name=k) for k, v in params0.items()}
    grads, path = [], [params0]
    for _ in range(steps):
        g = grad({k: np.asarray(v.value) for k, v in variables.items()})
        optimizer.apply_gradients([(jnp.asarray(g[k]), v) for k, v in variables.items()])
        grads.append(g)
        path.append({k: np.array(v.value) for k, v in variables.items()})
    return _stack(grads), _stack(path)


def test_torch_lr_schedule_with_momentum():
    """A LambdaLR stepped once per step is a schedule of the step count; torch applies the
    current lr to the whole momentum buffer, which the default ``lr_in_momentum`` does not."""
    torch = pytest.importorskip("torch")
    base_lr, factor = 0.05, lambda k: 0.9375**k
    kwargs = dict(alpha=0.9, eps=1e-2, momentum=0.9, centered=True)
    params0, grad = dense_problem()
    grads, theirs = _run_torch(
        lambda ps: torch.optim.RMSprop(ps, lr=base_lr, **kwargs),
        params0,
        grad,
        make_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factor),
    )

    def schedule(count):
        return base_lr * factor(count)

    _judge(
        "torch-lr_schedule",
        lambda: presets.torch(lr=schedule, **kwargs),
        lambda: rmsprop(schedule, 0.9, 1e-2, eps_in_sqrt=False, centered=True, momentum=0.9),
        grads,
        theirs,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param(dict(lr=0.02, alpha=0.9, eps=1e-2), id="plain"),
        pytest.param(
            dict(lr=0.02, alpha=0.9, eps=1e-2, centered=True, momentum=0.9, weight_decay=0.1),
            id="centered-momentum-weight_decay",
        ),
    ],
)
def test_torch_complex_params_are_real_pairs(kwargs):
    """torch updates a complex parameter as (re, im) pairs; optax's |g|² for the whole
    number (``split_complex=False``) is the control."""
    torch = pytest.importorskip("torch")
    params0, grad = complex_problem()
    grads, theirs = _run_torch(lambda ps: torch.optim.RMSprop(ps, **kwargs), params0, grad)
    whole = dict(
        decay=kwargs["alpha"], eps=kwargs["eps"], eps_in_sqrt=False, lr_in_momentum=False,
        centered=kwargs.get("centered", False), momentum=kwargs.get("momentum"),
        weight_decay=kwargs.get("weight_decay"),
    )  # fmt: skip
    _judge(
        "torch-complex",
        lambda: presets.torch(**kwargs),
        lambda: rmsprop(kwargs["lr"], **whole),
        grads,
        theirs,
    )


def test_keras_weight_decay_mask():
    """``exclude_from_weight_decay`` is ``weight_decay_mask``; the control decays every leaf."""
    keras = pytest.importorskip("keras")
    kwargs = dict(learning_rate=0.02, rho=0.8, epsilon=1e-2, momentum=0.9, weight_decay=0.1)
    params0, grad = dense_problem()
    optimizer = keras.optimizers.RMSprop(**kwargs)
    optimizer.exclude_from_weight_decay(var_names=["b"])
    grads, theirs = _run_keras(optimizer, params0, grad)
    _judge(
        "keras-weight_decay_mask",
        lambda: presets.keras(**kwargs, weight_decay_mask={"w": True, "b": False}),
        lambda: presets.keras(**kwargs),
        grads,
        theirs,
    )


def test_keras_lr_schedule_with_momentum_and_weight_decay():
    """Keras calls its schedule with the iterations done, as optax does, and keeps each step's
    lr inside the momentum buffer: rescaling the whole buffer (torch's way) is the control."""
    keras = pytest.importorskip("keras")
    kwargs = dict(rho=0.9, momentum=0.9, epsilon=1e-2, weight_decay=0.05)
    params0, grad = dense_problem()
    keras_schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 1, 0.9375)
    grads, theirs = _run_keras(keras.optimizers.RMSprop(keras_schedule, **kwargs), params0, grad)
    schedule = optax.exponential_decay(0.05, transition_steps=1, decay_rate=0.9375)
    _judge(
        "keras-lr_schedule",
        lambda: presets.keras(schedule, **kwargs),
        lambda: rmsprop(
            schedule,
            0.9,
            1e-2,
            momentum=0.9,
            weight_decay=0.05,
            decoupled_weight_decay=True,
            lr_in_momentum=False,
        ),  # fmt: skip
        grads,
        theirs,
    )


# ---------------------------------------------------------------------------
# Arguments a framework reads in its own way.


@pytest.mark.parametrize("what", ["clip_gradient", "clip_weights"])
def test_gluon_clip_values_of_zero_or_less_mean_no_clipping(what):
    """As MXNet (the ``mxnet-clip_*`` cases run it): the same updates as no clipping."""
    params, grads = jnp.array([3.0, -2.0]), jnp.array([5.0, -7.0])
    plain = presets.gluon(0.5)
    expected, _ = plain.update(grads, plain.init(params), params)
    for value in (0, 0.0, -1.0):
        tx = presets.gluon(0.5, **{what: value})
        updates, _ = tx.update(grads, tx.init(params), params)
        np.testing.assert_array_equal(updates, expected)
    with pytest.raises(ValueError, match=what):
        presets.gluon(**{what: [1.0, 2.0]})


def test_tf_keras_legacy_refuses_weight_decay_and_new_refuses_epsilon_none():
    with pytest.raises(ValueError, match="weight_decay"):
        presets.tf_keras(weight_decay=0.1, legacy=True)
    with pytest.raises(ValueError, match="epsilon"):
        presets.tf_keras(epsilon=None)


# ---------------------------------------------------------------------------
# timm.optim.RMSpropTF (loaded by helpers.timm_optim, without torchvision), in this process:
# fed timm's gradients (the judgment above) and closed loop, each case with its controls.


def _run_timm(kwargs, scale=1.0, factor=None, steps=STEPS):
    """(gradients, path) of RMSpropTF on the dense problem, the gradient scaled by
    ``scale``; a LambdaLR of ``factor`` steps once per optimizer step."""
    torch = pytest.importorskip("torch")
    params0, grad = dense_problem()
    scheduler = None if factor is None else lambda o: torch.optim.lr_scheduler.LambdaLR(o, factor)
    return _run_torch(
        lambda ps: timm_optim().RMSpropTF(ps, **kwargs),
        params0,
        lambda p: {k: np.float32(scale) * v for k, v in grad(p).items()},
        steps,
        scheduler,
    )


def _closed_loop(make_tx, scale, steps):
    """θ₀ … θ_T of ``make_tx()`` computing each gradient at its own float32 parameters."""
    params0, grad = dense_problem()
    tx = make_tx()
    x = jax.tree.map(jnp.asarray, params0)
    state, path = tx.init(x), [params0]
    update = jax.jit(tx.update)
    for _ in range(steps):
        g = {k: np.float32(scale) * v for k, v in grad(jax.tree.map(np.asarray, x)).items()}
        updates, state = update(jax.tree.map(jnp.asarray, g), state, x)
        x = optax.apply_updates(x, updates)
        path.append(jax.tree.map(np.asarray, x))
    return _stack(path)


def _closed_loop_distance(make_tx, theirs, scale, steps) -> float:
    return float(np.median(distances(_closed_loop(make_tx, scale, steps), theirs)))


# A closed loop feeds each step's rounding back through the problem. Measured over these
# cases (median distance to timm's path, relative to its size): 5e-8 to 2.8e-7, and 5.5e-5
# and 2.8e-4 with caution, whose mask flips where rounding moves u·g across 0; every
# control is 2.4e-2 or more away. Bounds at 3.5x the largest measured, controls 100x out.
CLOSED_LOOP, CLOSED_LOOP_CAUTION = 1e-6, 1e-3


def _decaying(count):  # a per-step decay, so that the lr inside or outside the buffer shows
    return 0.9375**count


def _epochs(count):  # EfficientNet's lr: 0.97 every 2.4 epochs, here every 3 steps
    return 0.97 ** (count // 3)


T = presets.timm
TIMM_CASES = {  # id: (RMSpropTF's kwargs, LambdaLR factor, gradient scale, ours, controls)
    "eps_inside-v0_1": (
        dict(lr=0.01, alpha=0.9, eps=1e-2), None, 0.1,
        lambda: T(0.01, 0.9, 1e-2),
        [lambda: rmsprop(0.01, 0.9, 1e-2),  # v₀ = 0
         lambda: rmsprop(0.01, 0.9, 1e-2, initial_scale=1.0, eps_in_sqrt=False)],  # ε outside
    ),
    "lr_in_momentum-scheduled": (
        dict(lr=0.05, eps=1e-2, momentum=0.9), _decaying, 1.0,
        lambda: T(lambda c: 0.05 * _decaying(c), eps=1e-2, momentum=0.9),
        [lambda: T(lambda c: 0.05 * _decaying(c), eps=1e-2, momentum=0.9, lr_in_momentum=False)],
    ),
    "lr_outside_momentum-scheduled": (
        dict(lr=0.05, eps=1e-2, momentum=0.9, lr_in_momentum=False), _decaying, 1.0,
        lambda: T(lambda c: 0.05 * _decaying(c), eps=1e-2, momentum=0.9, lr_in_momentum=False),
        [lambda: T(lambda c: 0.05 * _decaying(c), eps=1e-2, momentum=0.9)],
    ),
    "coupled_decay": (
        dict(lr=0.02, eps=1e-2, momentum=0.9, weight_decay=0.1), None, 1.0,
        lambda: T(0.02, eps=1e-2, momentum=0.9, weight_decay=0.1),
        [lambda: T(0.02, eps=1e-2, momentum=0.9, weight_decay=0.1, decoupled_decay=True)],
    ),
    "decoupled_decay": (
        dict(lr=0.02, eps=1e-2, momentum=0.9, weight_decay=0.5, decoupled_decay=True), None, 1.0,
        lambda: T(0.02, eps=1e-2, momentum=0.9, weight_decay=0.5, decoupled_decay=True),
        [lambda: T(0.02, eps=1e-2, momentum=0.9, weight_decay=0.5)],
    ),
    "corrected_decay-scheduled": (
        dict(lr=0.05, eps=1e-2, momentum=0.9, weight_decay=2.0, decoupled_decay=True,
             corrected_weight_decay=True), _decaying, 1.0,
        lambda: T(lambda c: 0.05 * _decaying(c), eps=1e-2, momentum=0.9, weight_decay=2.0,
                  decoupled_decay=True, corrected_weight_decay=0.05),
        [lambda: T(lambda c: 0.05 * _decaying(c), eps=1e-2, momentum=0.9, weight_decay=2.0,
                   decoupled_decay=True)],
    ),
    "centered": (
        dict(lr=0.01, alpha=0.9, eps=1e-2, centered=True, momentum=0.5), None, 1.0,
        lambda: T(0.01, 0.9, 1e-2, momentum=0.5, centered=True),
        [lambda: T(0.01, 0.9, 1e-2, momentum=0.5)],
    ),
    "caution": (
        dict(lr=0.05, eps=1e-2, momentum=0.9, caution=True), None, 1.0,
        lambda: T(0.05, eps=1e-2, momentum=0.9, caution=True),
        [lambda: T(0.05, eps=1e-2, momentum=0.9)],
    ),
    "caution-lr_outside-centered": (
        dict(lr=0.05, eps=1e-2, momentum=0.9, caution=True, lr_in_momentum=False, centered=True),
        None, 1.0,
        lambda: T(0.05, eps=1e-2, momentum=0.9, caution=True, lr_in_momentum=False,
                  centered=True),
        [lambda: T(0.05, eps=1e-2, momentum=0.9, lr_in_momentum=False, centered=True)],
    ),
    "efficientnet": (  # --opt rmsproptf --opt-eps .001 --momentum 0.9 --weight-decay 1e-5
        dict(lr=0.016, eps=1e-3, momentum=0.9, weight_decay=1e-5), _epochs, 1.0,
        lambda: T(lambda c: 0.016 * _epochs(c), eps=1e-3, momentum=0.9, weight_decay=1e-5),
        [lambda: presets.torch(lambda c: 0.016 * _epochs(c), 0.9, 1e-3, 1e-5, 0.9)],
    ),
    "defaults": (  # v₀ = 1 hides ε = 1e-10 until 0.9ᵗ ~ 1e-10: 300 steps of |g| ~ 1e-5
        {}, None, 1e-5, T, [lambda: T(eps=1e-9)],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(TIMM_CASES))
def test_timm_rmsproptf(case, versions_report):
    """Fed RMSpropTF's gradients, the preset's path and timm's differ by rounding only,
    and each control's by far more; run closed loop, the preset stays on timm's path and
    the controls leave it."""
    versions_report.lines["timm (this process)"] = f"timm {timm_optim().version}"
    kwargs, factor, scale, ours, controls = TIMM_CASES[case]
    steps = 300 if case == "defaults" else STEPS
    grads, theirs = _run_timm(kwargs, scale, factor, steps)
    for control in controls:
        _judge(f"timm-{case}", ours, control, grads, theirs)
    bound = CLOSED_LOOP_CAUTION if kwargs.get("caution") else CLOSED_LOOP
    assert _closed_loop_distance(ours, theirs, scale, steps) <= bound
    for control in controls:
        assert _closed_loop_distance(control, theirs, scale, steps) > 100 * bound


def test_timm_defaults_are_rmsproptfs():
    """presets.timm's names, order and defaults are RMSpropTF.__init__'s (foreach aside)."""
    theirs = {
        n: p.default
        for n, p in inspect.signature(timm_optim().RMSpropTF.__init__).parameters.items()
        if n not in ("self", "params", "foreach")
    }
    assert _our_defaults("timm", ()) == theirs


def test_timm_caution_without_momentum_is_off_as_in_timm():
    """timm applies caution only to the momentum buffer: with momentum 0 it is no-op."""
    grads, theirs = _run_timm(dict(lr=0.02, eps=1e-2, caution=True))
    _judge(
        "timm-caution-no_momentum",
        lambda: presets.timm(0.02, eps=1e-2, caution=True),
        lambda: presets.tf1(0.02, epsilon=1e-2, momentum=0.9),
        grads,
        theirs,
    )


@pytest.mark.parametrize(
    "preset, kwargs, name",
    [
        (presets.torch, dict(alpha=1.5), "alpha"),
        (presets.torch, dict(lr=-1.0), "lr"),
        (presets.keras, dict(rho=2.0), "rho"),
        (presets.keras, dict(epsilon=-1.0), "epsilon"),
        (presets.gluon, dict(gamma1=2.0), "gamma1"),
        (presets.gluon, dict(wd=-1.0), "wd"),
        (presets.gluon, dict(wd=-1.0, rescale_grad=2.0), "wd"),  # optax.chain around rmsprop
        (presets.d2l, dict(lr=0.1, gamma=1.5), "gamma"),
        (presets.timm, dict(alpha=-0.5), "alpha"),
        (presets.paddle, dict(learning_rate=0.1, rho=3.0), "rho"),
    ],
)
def test_errors_name_the_frameworks_argument(preset, kwargs, name):
    """What the user typed, not our name for it (``alpha``, not ``decay``)."""
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        preset(**kwargs)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_timm_refuses_a_caution_that_is_not_a_bool(momentum):
    """caution reaches rmsprop's check only with momentum: the preset checks it itself."""
    with pytest.raises(TypeError, match="^caution must be a bool"):
        presets.timm(momentum=momentum, caution="yes")


def test_inject_hyperparams_needs_static_momentum_for_no_buffer():
    """optax.inject_hyperparams turns every number into an array, torch's momentum=0 too:
    the preset can no longer tell "no momentum" and keeps a buffer (4 bytes per parameter
    in float32). static_args=("momentum",) keeps it a number, and no buffer (the guides
    say so)."""
    params = jnp.zeros(1000)
    for preset in (presets.torch, presets.timm):
        injected = optax.inject_hyperparams(preset)(lr=0.1)
        assert injected.init(params).inner_state.momentum.nbytes == 4000
        static = optax.inject_hyperparams(preset, static_args=("momentum",))(lr=0.1)
        assert static.init(params).inner_state.momentum is None
