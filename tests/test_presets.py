"""Parity of the presets with the frameworks they reproduce.

``presets.torch`` and ``presets.keras`` run against the real ``torch.optim.RMSprop`` and
``keras.optimizers.RMSprop`` (JAX backend, set in conftest.py); ``presets.tf1`` and
``presets.gluon`` against NumPy oracles written line by line from ../shared/REFERENCE.md.

Every comparison is a whole trajectory: both sides start from the same parameters and, at
every step, get the gradient of the same NumPy float32 function evaluated at their *own*
current parameters, so nothing but the optimizers differs; the parameters are compared after
every step.
"""

from collections.abc import Callable

import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest
import torch

from optax_rmsprop import presets, rmsprop

STEPS = 60

# Tolerance for float32 trajectories. Each step evaluates the same formula with the
# operations in a different order (g * (1/d) vs g / d, lerp vs a*x + b*y, where the
# learning rate is multiplied in), so one step's results differ by a few ulp (float32 ulp
# ≈ 1.2e-7 relative). The parameters are O(1) and the trajectories do not hover near the
# solution (see _least_squares), so the differences add up about linearly: 60 steps × a
# few ulp × |θ| ≲ 1e-5 at the very worst; measured, they stay below 3.4e-6. A wrong
# option (eps inside or outside the root, a dropped weight decay, lr inside or outside the
# momentum buffer, v₀) moves the parameters by 1e-3 to 1 within these steps; the tests
# that say so below check a difference of more than 100 × ATOL.
RTOL, ATOL = 1e-5, 1e-5

Params = dict[str, np.ndarray]
GradFn = Callable[[Params], Params]


# ---------------------------------------------------------------------------
# The problem: least squares with two parameter leaves, in float32 NumPy.


def _least_squares(sign: float = 1.0, seed: int = 0) -> tuple[Params, GradFn]:
    """Initial params and the gradient of ``sign * ½ mean ‖X w + b − Y‖²``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    w_true = rng.normal(size=(4, 3))
    y = (x @ w_true + 1.0 + 0.1 * rng.normal(size=(16, 3))).astype(np.float32)
    # Start 3 away from the solution in every coordinate, so the steps head for it
    # (without momentum, 60 steps do not reach it) instead of hovering around it for long:
    # there g/√v amplifies rounding, and with eps = 1e-8 even a float32 run and a float64
    # run of one formula part ways by 1e-4 within 40 steps.
    params0 = {
        "w": (w_true + 3 * rng.choice([-1.0, 1.0], size=(4, 3))).astype(np.float32),
        "b": np.full(3, -2.0, np.float32),
    }

    def grad(params: Params) -> Params:
        r = x @ params["w"] + params["b"] - y
        return {
            "w": np.float32(sign) * (x.T @ r) / np.float32(len(x)),
            "b": np.float32(sign) * r.mean(axis=0),
        }

    return params0, grad


def _complex_least_squares(seed: int = 1) -> tuple[Params, GradFn]:
    """Complex least squares ``mean |A z − y|²``; its gradient as PyTorch defines it.

    PyTorch's gradient of a real loss is ``2 ∂L/∂z̄ = 2 Aᴴ(A z − y) / n``. Both sides are
    fed this same array, so JAX's convention (the conjugate) does not enter.
    """
    rng = np.random.default_rng(seed)

    def cnormal(*shape):
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)

    a, z_true = cnormal(8, 4), cnormal(4)
    y = a @ z_true + np.complex64(0.1) * cnormal(8)
    # Far from the solution, as in _least_squares.
    signs = rng.choice([-1.0, 1.0], size=(2, 4))
    params0 = {"z": (z_true + 3 * (signs[0] + 1j * signs[1])).astype(np.complex64)}

    def grad(params: Params) -> Params:
        r = a @ params["z"] - y
        return {"z": np.complex64(2 / len(a)) * (a.conj().T @ r)}

    return params0, grad


# ---------------------------------------------------------------------------
# Drivers: each returns the parameters after every step, as NumPy arrays.


def _run_optax(tx: optax.GradientTransformation, params0: Params, grad: GradFn, steps=STEPS):
    params = {k: jnp.asarray(v) for k, v in params0.items()}
    state = tx.init(params)
    trajectory = []
    for _ in range(steps):
        g = grad({k: np.asarray(v) for k, v in params.items()})
        updates, state = tx.update({k: jnp.asarray(v) for k, v in g.items()}, state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append({k: np.asarray(v) for k, v in params.items()})
    return trajectory


def _run_torch(make_optimizer, params0: Params, grad: GradFn, steps=STEPS, make_scheduler=None):
    params = {k: torch.tensor(v, requires_grad=True) for k, v in params0.items()}
    optimizer = make_optimizer(list(params.values()))
    scheduler = make_scheduler(optimizer) if make_scheduler else None
    trajectory = []
    for _ in range(steps):
        g = grad({k: v.detach().numpy().copy() for k, v in params.items()})
        for k, p in params.items():
            p.grad = torch.from_numpy(g[k])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()  # once per optimizer step: the lr is a function of the step count
        trajectory.append({k: v.detach().numpy().copy() for k, v in params.items()})
    return trajectory


def _run_keras(optimizer, params0: Params, grad: GradFn, steps=STEPS):
    variables = {k: keras.Variable(v, name=k) for k, v in params0.items()}
    trajectory = []
    for _ in range(steps):
        g = grad({k: np.asarray(v.value) for k, v in variables.items()})
        optimizer.apply_gradients([(jnp.asarray(g[k]), v) for k, v in variables.items()])
        trajectory.append({k: np.array(v.value) for k, v in variables.items()})
    return trajectory


def _assert_same_trajectory(ours, theirs, rtol=RTOL, atol=ATOL):
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True), start=1):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(
                a[k], b[k], rtol=rtol, atol=atol, err_msg=f"params[{k!r}] after step {step}"
            )


def _max_difference(ours, theirs) -> float:
    return max(
        float(np.max(np.abs(a[k] - b[k]))) for a, b in zip(ours, theirs, strict=True) for k in a
    )


def _ids(cases):
    return ["-".join(k for k, v in case.items() if v) or "plain" for case in cases]


# ---------------------------------------------------------------------------
# PyTorch: torch.optim.RMSprop (REFERENCE.md line 26).

# Non-default lr, alpha and eps throughout, so that a preset that dropped one of them or put
# eps inside the root would fail: with eps = 1e-2 and |g| ~ 1, where eps goes changes each
# step by about a percent.
TORCH_BASE = dict(lr=0.02, alpha=0.9, eps=1e-2)
TORCH_CASES = [
    dict(centered=c, momentum=m, wd=wd, maximize=mx)
    for c in (False, True)
    for m in (False, True)
    for wd in (False, True)
    for mx in (False, True)
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=_ids(TORCH_CASES))
def test_torch_matches_torch_optim_rmsprop(case):
    kwargs = dict(
        TORCH_BASE,
        centered=case["centered"],
        momentum=0.9 if case["momentum"] else 0,
        weight_decay=0.1 if case["wd"] else 0,
        maximize=case["maximize"],
    )
    # Maximizing −L descends L: the trajectory stays bounded whether or not maximize is on.
    params0, grad = _least_squares(sign=-1.0 if case["maximize"] else 1.0)
    theirs = _run_torch(lambda ps: torch.optim.RMSprop(ps, **kwargs), params0, grad)
    ours = _run_optax(presets.torch(**kwargs), params0, grad)
    _assert_same_trajectory(ours, theirs)


def test_torch_defaults_match():
    params0, grad = _least_squares()
    theirs = _run_torch(torch.optim.RMSprop, params0, grad)  # lr 0.01, alpha 0.99, eps 1e-8
    _assert_same_trajectory(_run_optax(presets.torch(), params0, grad), theirs)


def test_torch_lr_schedule_with_momentum():
    """A LambdaLR stepped once per step equals a schedule of the step count.

    torch applies the *current* lr to the whole momentum buffer (θ ← θ − η_t b), which our
    preset gets with ``lr_in_momentum=False``; the default ``rmsprop`` keeps each step's lr
    inside the buffer (b ← −η_t s + μ b), which differs as soon as η changes.
    """
    params0, grad = _least_squares()
    base_lr, factor = 0.05, lambda k: 0.9375**k  # LambdaLR: lr at step k (from 0) = base·factor(k)
    kwargs = dict(alpha=0.9, eps=1e-8, momentum=0.9, centered=True)
    theirs = _run_torch(
        lambda ps: torch.optim.RMSprop(ps, lr=base_lr, **kwargs),
        params0,
        grad,
        make_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factor),
    )

    def schedule(count):  # optax calls it with the number of steps already taken
        return base_lr * factor(count)

    ours = _run_optax(presets.torch(lr=schedule, **kwargs), params0, grad)
    _assert_same_trajectory(ours, theirs)

    lr_in_buffer = rmsprop(
        schedule, decay=0.9, eps=1e-8, eps_in_sqrt=False, centered=True, momentum=0.9
    )
    assert _max_difference(_run_optax(lr_in_buffer, params0, grad), theirs) > 100 * ATOL


TORCH_COMPLEX_CASES = {
    "plain": dict(lr=0.02, alpha=0.9),
    "centered-momentum-wd": dict(lr=0.02, alpha=0.9, centered=True, momentum=0.9, weight_decay=0.1),
}


@pytest.mark.parametrize("kwargs", TORCH_COMPLEX_CASES.values(), ids=TORCH_COMPLEX_CASES.keys())
def test_torch_complex_params_are_real_pairs(kwargs):
    params0, grad = _complex_least_squares()
    theirs = _run_torch(lambda ps: torch.optim.RMSprop(ps, **kwargs), params0, grad)
    ours = _run_optax(presets.torch(**kwargs), params0, grad)
    assert ours[-1]["z"].dtype == np.complex64
    _assert_same_trajectory(ours, theirs)


@pytest.mark.parametrize("kwargs", TORCH_COMPLEX_CASES.values(), ids=TORCH_COMPLEX_CASES.keys())
def test_torch_complex_whole_numbers_differ(kwargs):
    """The same rule with optax's |g|² for the whole complex number (``split_complex=False``,
    the default of ``rmsprop``) is a different trajectory: the test above can fail."""
    params0, grad = _complex_least_squares()
    theirs = _run_torch(lambda ps: torch.optim.RMSprop(ps, **kwargs), params0, grad)
    whole_numbers = rmsprop(
        kwargs["lr"],
        decay=kwargs["alpha"],
        eps=1e-8,
        eps_in_sqrt=False,
        centered=kwargs.get("centered", False),
        momentum=kwargs.get("momentum"),
        weight_decay=kwargs.get("weight_decay", 0.0),
        lr_in_momentum=False,
    )
    whole = _run_optax(whole_numbers, params0, grad)
    assert whole[-1]["z"].dtype == np.complex64
    assert _max_difference(whole, theirs) > 100 * ATOL


# ---------------------------------------------------------------------------
# Keras 3: keras.optimizers.RMSprop on the JAX backend (REFERENCE.md line 27).

KERAS_BASE = dict(learning_rate=0.02, rho=0.8, epsilon=1e-2)
KERAS_CASES = [
    dict(centered=c, momentum=m, wd=wd)
    for c in (False, True)
    for m in (False, True)
    for wd in (False, True)
]


def _keras_kwargs(case):
    return dict(
        KERAS_BASE,
        centered=case["centered"],
        momentum=0.9 if case["momentum"] else 0.0,
        weight_decay=0.1 if case["wd"] else None,
    )


@pytest.mark.parametrize("case", KERAS_CASES, ids=_ids(KERAS_CASES))
def test_keras_matches_keras_optimizers_rmsprop(case):
    kwargs = _keras_kwargs(case)
    params0, grad = _least_squares()
    theirs = _run_keras(keras.optimizers.RMSprop(**kwargs), params0, grad)
    _assert_same_trajectory(_run_optax(presets.keras(**kwargs), params0, grad), theirs)


def test_keras_defaults_match():
    params0, grad = _least_squares()
    theirs = _run_keras(keras.optimizers.RMSprop(), params0, grad)  # lr 1e-3, rho 0.9, eps 1e-7
    _assert_same_trajectory(_run_optax(presets.keras(), params0, grad), theirs)


def test_keras_weight_decay_is_decoupled_and_maskable():
    """θ ← θ − ηλθ before the step, skipped for excluded variables.

    Also checks that the torch-style coupled decay (λθ added to the gradient) is a
    different trajectory, so the test tells the two apart.
    """
    kwargs = dict(KERAS_BASE, momentum=0.9, weight_decay=0.1)
    params0, grad = _least_squares()
    optimizer = keras.optimizers.RMSprop(**kwargs)
    optimizer.exclude_from_weight_decay(var_names=["b"])
    theirs = _run_keras(optimizer, params0, grad)
    masked = presets.keras(**kwargs, weight_decay_mask={"w": True, "b": False})
    _assert_same_trajectory(_run_optax(masked, params0, grad), theirs)

    coupled = rmsprop(0.02, decay=0.8, eps=1e-2, momentum=0.9, weight_decay=0.1)
    unmasked = _run_keras(keras.optimizers.RMSprop(**kwargs), params0, grad)
    assert _max_difference(_run_optax(coupled, params0, grad), unmasked) > 100 * ATOL


def test_keras_lr_schedule_with_momentum_and_weight_decay():
    """Keras calls its schedule with the iterations done so far, as optax does; the lr
    stays inside the momentum buffer (so presets.torch, which rescales the whole buffer,
    differs), and the decoupled decay uses the current lr too."""
    keras_schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 1, 0.9375)
    kwargs = dict(rho=0.9, momentum=0.9, epsilon=1e-7, weight_decay=0.05)
    params0, grad = _least_squares()
    theirs = _run_keras(keras.optimizers.RMSprop(keras_schedule, **kwargs), params0, grad)
    schedule = optax.exponential_decay(0.05, transition_steps=1, decay_rate=0.9375)
    _assert_same_trajectory(_run_optax(presets.keras(schedule, **kwargs), params0, grad), theirs)

    buffer_rescaled = rmsprop(
        schedule,
        decay=0.9,
        eps=1e-7,
        momentum=0.9,
        weight_decay=0.05,
        decoupled_weight_decay=True,
        lr_in_momentum=False,
    )
    assert _max_difference(_run_optax(buffer_rescaled, params0, grad), theirs) > 100 * ATOL


# ---------------------------------------------------------------------------
# TF1: tf.compat.v1.train.RMSPropOptimizer, the ApplyRMSProp kernels (REFERENCE.md line 28).


def _tf1_oracle(
    params0,
    grad,
    learning_rate,
    decay=0.9,
    momentum=0.0,
    epsilon=1e-10,
    centered=False,
    steps=STEPS,
):
    f32 = np.float32
    lr, rho, mu, eps = f32(learning_rate), f32(decay), f32(momentum), f32(epsilon)
    theta = {k: v.copy() for k, v in params0.items()}
    ms = {k: np.ones_like(v) for k, v in theta.items()}  # "state at start: ms = 1"
    mg = {k: np.zeros_like(v) for k, v in theta.items()}
    mom = {k: np.zeros_like(v) for k, v in theta.items()}
    trajectory = []
    for _ in range(steps):
        g = grad(theta)
        for k in theta:
            ms[k] = ms[k] + (g[k] * g[k] - ms[k]) * (1 - rho)  # ms ← ms + (g² − ms)(1−ρ)
            if centered:
                mg[k] = mg[k] + (g[k] - mg[k]) * (1 - rho)  # mg ← mg + (g − mg)(1−ρ)
                den = ms[k] - mg[k] * mg[k] + eps  # den = ms − mg² + ε
            else:
                den = ms[k] + eps  # den = ms + ε
            mom[k] = mu * mom[k] + lr * g[k] / np.sqrt(den)  # mom ← μ·mom + η·g/√den
            theta[k] = theta[k] - mom[k]  # θ ← θ − mom
        trajectory.append({k: v.copy() for k, v in theta.items()})
    return trajectory


TF1_CASES = [
    dict(centered=c, momentum=m, decay_epsilon=de)
    for c in (False, True)
    for m in (False, True)
    for de in (False, True)
]


@pytest.mark.parametrize("case", TF1_CASES, ids=_ids(TF1_CASES))
def test_tf1_matches_oracle(case):
    kwargs = dict(learning_rate=0.02, centered=case["centered"])
    if case["momentum"]:
        kwargs["momentum"] = 0.9
    if case["decay_epsilon"]:
        kwargs.update(decay=0.8, epsilon=1e-2)
    params0, grad = _least_squares()
    expected = _tf1_oracle(params0, grad, **kwargs)
    _assert_same_trajectory(_run_optax(presets.tf1(**kwargs), params0, grad), expected)


def test_tf1_mean_square_starts_at_one():
    """The oracle is sensitive to v₀: with v₀ = 0 (every other framework) it differs."""
    params0, grad = _least_squares()
    expected = _tf1_oracle(params0, grad, learning_rate=0.02, momentum=0.9)
    v0_zero = rmsprop(0.02, decay=0.9, eps=1e-10, momentum=0.9)
    assert _max_difference(_run_optax(v0_zero, params0, grad), expected) > 100 * ATOL


# ---------------------------------------------------------------------------
# MXNet 1.9 / Gluon: mx.optimizer.RMSProp (REFERENCE.md line 29).


def _gluon_oracle(
    params0,
    grad,
    learning_rate=0.001,
    gamma1=0.9,
    gamma2=0.9,
    epsilon=1e-8,
    centered=False,
    clip_weights=None,
    wd=0.0,
    rescale_grad=1.0,
    clip_gradient=None,
    steps=STEPS,
):
    """Returns the trajectory and how many times each clip changed something."""
    f32 = np.float32
    lr, g1, g2, eps = f32(learning_rate), f32(gamma1), f32(gamma2), f32(epsilon)
    theta = {k: v.copy() for k, v in params0.items()}
    n = {k: np.zeros_like(v) for k, v in theta.items()}
    gbar = {k: np.zeros_like(v) for k, v in theta.items()}
    delta = {k: np.zeros_like(v) for k, v in theta.items()}
    clipped = {"gradient": 0, "weights": 0}
    trajectory = []
    for _ in range(steps):
        grads = grad(theta)
        for k in theta:
            g = f32(rescale_grad) * grads[k] + f32(wd) * theta[k]  # g ← rescale_grad·g + wd·θ
            if clip_gradient is not None:  # then clip to ±clip_gradient
                clipped["gradient"] += int(np.any(np.abs(g) > clip_gradient))
                g = np.clip(g, -f32(clip_gradient), f32(clip_gradient))
            n[k] = (1 - g1) * g * g + g1 * n[k]  # n ← (1−γ₁)g² + γ₁n
            if centered:  # Graves
                gbar[k] = (1 - g1) * g + g1 * gbar[k]  # ḡ ← (1−γ₁)g + γ₁ḡ
                delta[k] = g2 * delta[k] - lr * g / np.sqrt(n[k] - gbar[k] * gbar[k] + eps)
                theta[k] = theta[k] + delta[k]  # Δ ← γ₂Δ − η·g/√(n − ḡ² + ε); θ ← θ + Δ
            else:
                theta[k] = theta[k] - lr * g / np.sqrt(n[k] + eps)  # θ ← θ − η·g/√(n + ε)
            if clip_weights is not None:  # then θ clipped to ±clip_weights
                clipped["weights"] += int(np.any(np.abs(theta[k]) > clip_weights))
                theta[k] = np.clip(theta[k], -f32(clip_weights), f32(clip_weights))
        trajectory.append({k: v.copy() for k, v in theta.items()})
    return trajectory, clipped


# Each case changes arguments from their defaults in a way the trajectory shows (checked
# below against the oracle at the defaults); lr is 0.02 throughout.
GLUON_CASES = {
    "defaults": {},
    "gamma1-epsilon-gamma2_unused": dict(gamma1=0.8, epsilon=1e-2, gamma2=0.5),
    "centered": dict(centered=True),
    "centered-gamma1-gamma2-epsilon": dict(centered=True, gamma1=0.8, gamma2=0.5, epsilon=1e-2),
    "wd": dict(wd=0.1),
    "rescale_grad-epsilon": dict(rescale_grad=1 / 16, epsilon=1e-2),
    "clip_gradient": dict(clip_gradient=0.5),
    "clip_weights": dict(clip_weights=1.0),
    "everything": dict(
        centered=True,
        gamma1=0.8,
        gamma2=0.5,
        epsilon=1e-3,
        wd=0.1,
        rescale_grad=0.5,
        clip_gradient=0.5,
        clip_weights=1.0,
    ),
}


@pytest.mark.parametrize("kwargs", GLUON_CASES.values(), ids=GLUON_CASES.keys())
def test_gluon_matches_oracle(kwargs):
    params0, grad = _least_squares()
    expected, clipped = _gluon_oracle(params0, grad, learning_rate=0.02, **kwargs)
    ours = _run_optax(presets.gluon(learning_rate=0.02, **kwargs), params0, grad)
    _assert_same_trajectory(ours, expected)

    # The case exercises what it names: clips that bite, and arguments that matter.
    for what in ("gradient", "weights"):
        if f"clip_{what}" in kwargs:
            assert clipped[what] > 0
    changes_defaults = set(kwargs) - {"gamma2"} if not kwargs.get("centered") else set(kwargs)
    if changes_defaults:
        at_defaults, _ = _gluon_oracle(params0, grad, learning_rate=0.02)
        assert _max_difference(at_defaults, expected) > 100 * ATOL
