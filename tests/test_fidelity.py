"""Fidelity: how far each float32 trajectory strays from the exact rule.

Two correct float32 implementations of RMSProp drift apart, so comparing them with
each other cannot tell rounding noise from a systematic error. Here every
implementation is measured against the exact rule instead: ``oracle``, a float64
NumPy transcription of the equations in :func:`optax_rmsprop.rmsprop`'s docstring,
run on the same problem from the same start, with gradients in float64. The
distance of a float32 trajectory θ₀ … θ_T to the exact one is
``max_t |θ_t − θ*_t|∞ / max_t |θ*_t|∞`` (the error relative to the path's scale),
and each comparison is between medians over seeds:

* ours against ``optax.rmsprop`` configured the same way (optax's transforms
  chained where it has no argument for a variant), for every variant and decays
  from 0.9 to 0.99999: ours at most 1.5x optax's distance;
* ``presets.torch`` against ``torch.optim.RMSprop`` and ``presets.keras`` against
  ``keras.optimizers.RMSprop``, likewise;
* with ``jax_enable_x64`` and float64 params, ours against the oracle: 1e-12.

The problems are least squares with badly scaled columns, 200 steps of a small
learning rate: the iterates still move, so the distances measure arithmetic, not
the chaos of iterates bouncing around the minimum (at η = 1e-2 and 300 steps half
the seeds end 1e-2 apart whatever the arithmetic). The float32 runs differ from the
oracle by the rounding of their gradients too (the same for every implementation):
about 2e-7 of the path, the floor under every distance here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_rmsprop
from optax_rmsprop import presets

SEEDS = 16
STEPS = 200
DECAYS = [0.9, 0.99, 0.999, 0.9999, 0.99999]
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-2
RATIO = 1.5  # the most ours may be further from exact than the reference


# ---------------------------------------------------------------------------
# The problem and the exact rule.


def problem(seeds=SEEDS, n=64, d=16):
    """Least squares 0.5 |A x − b|² / n for each seed, with columns scaled over e^±2,
    from 3 to 5 away from the minimum in each coordinate: further than 200 steps of
    10η go, so no coordinate reaches the minimum and bounces around it."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(seeds, n, d)) * np.exp(rng.normal(size=(seeds, 1, d)))
    b = rng.normal(size=(seeds, n))
    minimum = np.stack(
        [np.linalg.lstsq(a_, b_, rcond=None)[0] for a_, b_ in zip(a, b, strict=True)]
    )
    x0 = minimum + rng.choice([-1, 1], size=(seeds, d)) * rng.uniform(3, 5, size=(seeds, d))
    return a, b, x0


def gradient(a, b, x, xp=np):
    """∇ of 0.5 |A x − b|² / n for each seed (leading axis), in ``xp`` (NumPy, jnp, torch)."""
    residual = xp.einsum("snd,sd->sn", a, x) - b
    return xp.einsum("snd,sn->sd", a, residual) / a.shape[1]


def oracle(
    a,
    b,
    x0,
    *,
    learning_rate,
    decay,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt=True,
    centered=False,
    momentum=None,
    nesterov=False,
    bias_correction=False,
    weight_decay=None,
    decoupled_weight_decay=False,
    lr_in_momentum=True,
    maximize=False,
):
    """The trajectory θ₀ … θ_T of the docstring's equations, in float64.

    Each line follows the math block of :func:`optax_rmsprop.rmsprop` ("doc").
    With ``maximize`` the objective is −loss, so its gradient −∇loss is what the
    optimizer is given, and the run still descends the loss.
    """
    x = np.array(x0, np.float64)
    v = np.full_like(x, initial_scale)  # doc: v_0 = initial_scale
    m = np.zeros_like(x)  # doc: m̄_0 = 0
    buf = np.zeros_like(x)
    lam = weight_decay or 0.0
    path = [x]
    for t in range(1, STEPS + 1):
        g = gradient(a, b, x)  # the optimizer is given ∇loss, or ∇(−loss) to maximize
        if maximize:
            given = -g
            g = -given  # doc line 1: g ← −g
        if lam and not decoupled_weight_decay:
            g = g + lam * x  # doc line 2: coupled weight decay
        v = (1 - decay) * g**2 + decay * v  # doc line 3
        if centered:
            m = (1 - decay) * g + decay * m  # doc line 4
        v_hat, m_hat = v, m
        if bias_correction:
            v_hat, m_hat = v / (1 - decay**t), m / (1 - decay**t)  # doc line 5
        sigma2 = np.maximum(v_hat - m_hat**2, 0) if centered else v_hat  # doc line 6
        s = g / np.sqrt(sigma2 + eps) if eps_in_sqrt else g / (np.sqrt(sigma2) + eps)  # line 7
        if momentum is None:
            u = -learning_rate * s  # doc line 10
        elif lr_in_momentum:
            buf = -learning_rate * s + momentum * buf  # doc line 8
            u = -learning_rate * s + momentum * buf if nesterov else buf
        else:
            buf = s + momentum * buf  # doc line 9
            u = -learning_rate * (s + momentum * buf if nesterov else buf)
        if lam and decoupled_weight_decay:
            u = u - learning_rate * lam * x  # doc line 11
        x = x + u
        path.append(x)
    return np.stack(path)


def distances(path, exact):
    """Per seed: max over steps and coordinates of |θ − θ*|, relative to max |θ*|."""
    path, exact = np.asarray(path, np.float64), np.asarray(exact, np.float64)
    return np.max(np.abs(path - exact), axis=(0, 2)) / np.max(np.abs(exact), axis=(0, 2))


def median_distance(path, exact):
    return float(np.median(distances(path, exact)))


# ---------------------------------------------------------------------------
# Float32 trajectories.


@functools.partial(jax.jit, static_argnames=("tx", "maximize"))
def _optax_path(tx, a, b, x0, maximize=False):
    def step(carry, _):
        x, state = carry
        g = gradient(a, b, x, jnp)
        updates, state = tx.update(-g if maximize else g, state, x)
        x = optax.apply_updates(x, updates)
        return (x, state), x

    _, xs = jax.lax.scan(step, (x0, tx.init(x0)), length=STEPS)
    return jnp.concatenate([x0[None], xs])


def jax_path(tx, a, b, x0, dtype=np.float32, maximize=False):
    """θ₀ … θ_T of ``tx`` on the problem in ``dtype`` (one compiled scan)."""
    a, b, x0 = (jnp.asarray(z, dtype) for z in (a, b, x0))
    return np.asarray(_optax_path(tx, a, b, x0, maximize=maximize))


def optax_equivalent(
    learning_rate,
    decay,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt=True,
    centered=False,
    momentum=None,
    nesterov=False,
    bias_correction=False,
    *,
    weight_decay=None,
    decoupled_weight_decay=False,
    lr_in_momentum=True,
    maximize=False,
):
    """The same rule from optax's own transforms, for the variants ``optax.rmsprop``
    has no argument for: the sign flip and coupled decay chained before it, decoupled
    decay after it (u − ηλθ), and the learning rate after the momentum (PyTorch's form).
    """
    before, after = [], []
    if maximize:
        before.append(optax.scale(-1.0))
    if weight_decay and not decoupled_weight_decay:
        before.append(optax.add_decayed_weights(weight_decay))
    if weight_decay and decoupled_weight_decay:
        after.append(optax.add_decayed_weights(-learning_rate * weight_decay))
    if lr_in_momentum:
        rule = optax.rmsprop(
            learning_rate, decay, eps, initial_scale, eps_in_sqrt, centered, momentum, nesterov,
            bias_correction,
        )  # fmt: skip
    else:
        scale = optax.scale_by_stddev if centered else optax.scale_by_rms
        rule = optax.chain(
            scale(decay, eps, initial_scale, eps_in_sqrt, bias_correction),
            optax.trace(momentum, nesterov),
            optax.scale(-learning_rate),
        )
    return optax.chain(*before, rule, *after)


VARIANTS = {
    "plain": {},
    "eps_outside": dict(eps_in_sqrt=False),
    "initial_scale_1": dict(initial_scale=1.0),
    "momentum": dict(momentum=0.9),
    "momentum-nesterov": dict(momentum=0.9, nesterov=True),
    "momentum-lr_outside_momentum": dict(momentum=0.9, lr_in_momentum=False),
    "centered": dict(centered=True),
    "centered-momentum-eps_outside": dict(centered=True, momentum=0.9, eps_in_sqrt=False),
    "bias_correction": dict(bias_correction=True),
    "bias_correction-eps_outside": dict(bias_correction=True, eps_in_sqrt=False),
    "centered-bias_correction-initial_scale_1": dict(
        centered=True, bias_correction=True, initial_scale=1.0
    ),
    "weight_decay_coupled": dict(weight_decay=WEIGHT_DECAY),
    "weight_decay_decoupled-momentum": dict(
        weight_decay=WEIGHT_DECAY, decoupled_weight_decay=True, momentum=0.9
    ),
    "maximize-weight_decay_coupled": dict(maximize=True, weight_decay=WEIGHT_DECAY),
}
CASES = [
    pytest.param(variant, decay, id=f"{name}-decay_{decay}")
    for name, variant in VARIANTS.items()
    for decay in DECAYS
]


@pytest.mark.parametrize("variant, decay", CASES)
def test_as_close_to_the_exact_rule_as_optax(variant, decay):
    a, b, x0 = problem()
    kwargs = dict(learning_rate=LEARNING_RATE, decay=decay, **variant)
    exact = oracle(a, b, x0, **kwargs)
    maximize = variant.get("maximize", False)
    ours = jax_path(optax_rmsprop.rmsprop(**kwargs), a, b, x0, maximize=maximize)
    theirs = jax_path(optax_equivalent(**kwargs), a, b, x0, maximize=maximize)
    d_ours, d_theirs = median_distance(ours, exact), median_distance(theirs, exact)
    assert d_ours <= RATIO * d_theirs, f"ours {d_ours:.3g}, optax {d_theirs:.3g}"


def test_the_measure_tells_a_float32_one_minus_decay_apart():
    """A rule computing 1 − ρ from the float32-rounded decay (what this package did
    before) is far further from exact than optax at ρ = 0.9999: the comparison above
    can fail."""
    a, b, x0 = problem()
    decay = 0.9999
    exact = oracle(a, b, x0, learning_rate=LEARNING_RATE, decay=decay, momentum=0.9)
    rounded = float(np.float32(decay))  # 1 - rounded, in float64, is 1 - ρ32
    ours = jax_path(optax_rmsprop.rmsprop(LEARNING_RATE, rounded, momentum=0.9), a, b, x0)
    theirs = jax_path(optax.rmsprop(LEARNING_RATE, decay, momentum=0.9), a, b, x0)
    assert median_distance(ours, exact) > 20 * median_distance(theirs, exact)


@pytest.mark.parametrize("variant, decay", CASES)
def test_float64_params_run_the_whole_step_in_float64(variant, decay):
    a, b, x0 = problem()
    kwargs = dict(learning_rate=LEARNING_RATE, decay=decay, **variant)
    exact = oracle(a, b, x0, **kwargs)
    maximize = variant.get("maximize", False)
    with jax.enable_x64(True):
        ours = jax_path(optax_rmsprop.rmsprop(**kwargs), a, b, x0, np.float64, maximize)
    # float64 rounding is 1.1e-16; the gradients' rounding, carried along the path,
    # makes ~1e-15 of it. A float32 step anywhere would show as > 1e-8.
    assert median_distance(ours, exact) < 1e-12
    assert np.max(distances(ours, exact)) < 1e-12


def test_decays_within_1e_7_of_1_work_and_the_first_corrected_step_sees_g():
    """Bias correction 1 − ρᵗ without cancellation: at ρ = 1 − 1e-9 (1 in float32) the
    first step's v̂₁ is |g₁|², so with ε = 0 the step is −η·sign(g)."""
    g = jnp.array([3.0, -0.5, 1e-3])
    for decay in [1 - 1e-7, 1 - 1e-9]:
        tx = optax_rmsprop.rmsprop(0.1, decay=decay, eps=0.0, bias_correction=True)
        updates, state = tx.update(g, tx.init(jnp.zeros(3)))
        np.testing.assert_allclose(updates, -0.1 * jnp.sign(g), rtol=1e-6)
        np.testing.assert_allclose(state.nu, (1 - decay) * g**2, rtol=1e-6)


def test_one_minus_decay_is_rounded_once():
    """One step from v₀ = 0 with g = 1 leaves v = fl32(1 − ρ), with 1 − ρ taken in
    float64 (optax's ``nu`` is that too); from the float32 ρ it would be 0.10000002."""
    for decay in DECAYS:
        tx = optax_rmsprop.scale_by_rms(decay=decay)
        _, state = tx.update(jnp.ones(1), tx.init(jnp.zeros(1)))
        assert state.nu[0] == np.float32(1 - decay), decay
        reference = optax.scale_by_rms(decay=decay)
        _, optax_state = reference.update(jnp.ones(1), reference.init(jnp.zeros(1)))
        assert state.nu[0] == optax_state.nu[0], decay


# ---------------------------------------------------------------------------
# The presets against the real packages.

TORCH_VARIANTS = {
    "plain": {},
    "momentum": dict(momentum=0.9),
    "centered-momentum": dict(centered=True, momentum=0.9),
    "weight_decay": dict(weight_decay=WEIGHT_DECAY),
    "maximize-weight_decay-momentum": dict(maximize=True, weight_decay=WEIGHT_DECAY, momentum=0.9),
}
TORCH_CASES = [
    pytest.param(variant, alpha, id=f"{name}-alpha_{alpha}")
    for name, variant in TORCH_VARIANTS.items()
    for alpha in [0.9, 0.99, 0.999, 0.9999]
]


def torch_oracle(a, b, x0, lr, alpha, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 maximize=False):  # fmt: skip
    """PyTorch's rule (REFERENCE.md) in the docstring's terms: ε outside the root,
    the learning rate outside the momentum buffer, coupled weight decay."""
    return oracle(
        a, b, x0, learning_rate=lr, decay=alpha, eps=eps, eps_in_sqrt=False, centered=centered,
        momentum=momentum or None, lr_in_momentum=False, weight_decay=weight_decay or None,
        maximize=maximize,
    )  # fmt: skip


def torch_path(a, b, x0, maximize=False, **kwargs):
    torch = pytest.importorskip("torch")
    a32, b32 = (torch.tensor(np.float32(z)) for z in (a, b))
    x = torch.tensor(np.float32(x0), requires_grad=True)
    optimizer = torch.optim.RMSprop([x], maximize=maximize, **kwargs)
    path = [x.detach().numpy().copy()]
    for _ in range(STEPS):
        with torch.no_grad():
            g = gradient(a32, b32, x, torch)
        x.grad = -g if maximize else g
        optimizer.step()
        path.append(x.detach().numpy().copy())
    return np.stack(path)


@pytest.mark.parametrize("variant, alpha", TORCH_CASES)
def test_torch_preset_as_close_to_the_exact_rule_as_torch(variant, alpha):
    a, b, x0 = problem()
    kwargs = dict(lr=LEARNING_RATE, alpha=alpha, **variant)
    exact = torch_oracle(a, b, x0, **kwargs)
    theirs = torch_path(a, b, x0, **kwargs)
    ours = jax_path(presets.torch(**kwargs), a, b, x0, maximize=variant.get("maximize", False))
    d_ours, d_theirs = median_distance(ours, exact), median_distance(theirs, exact)
    assert d_ours <= RATIO * d_theirs, f"ours {d_ours:.3g}, torch {d_theirs:.3g}"


KERAS_VARIANTS = {
    "plain": {},
    "momentum": dict(momentum=0.9),
    "centered-momentum": dict(centered=True, momentum=0.9),
    "weight_decay": dict(weight_decay=WEIGHT_DECAY),
}
KERAS_CASES = [
    pytest.param(variant, rho, id=f"{name}-rho_{rho}")
    for name, variant in KERAS_VARIANTS.items()
    for rho in [0.9, 0.99, 0.999]
]


def keras_path(a, b, x0, **kwargs):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("needs KERAS_BACKEND=jax")
    a32, b32 = (jnp.asarray(z, jnp.float32) for z in (a, b))
    x = keras.Variable(np.float32(x0))
    optimizer = keras.optimizers.RMSprop(**kwargs)
    path = [np.asarray(x.value)]
    for _ in range(STEPS):
        optimizer.apply_gradients([(gradient(a32, b32, x.value, jnp), x)])
        path.append(np.asarray(x.value))
    return np.stack(path)


@pytest.mark.parametrize("variant, rho", KERAS_CASES)
def test_keras_preset_as_close_to_the_exact_rule_as_keras(variant, rho):
    a, b, x0 = problem()
    kwargs = dict(learning_rate=LEARNING_RATE, rho=rho, epsilon=1e-7, **variant)
    exact = oracle(
        a, b, x0, learning_rate=LEARNING_RATE, decay=rho, eps=1e-7,
        centered=variant.get("centered", False), momentum=variant.get("momentum"),
        weight_decay=variant.get("weight_decay"), decoupled_weight_decay=True,
    )  # fmt: skip
    theirs = keras_path(a, b, x0, **kwargs)
    ours = jax_path(presets.keras(**kwargs), a, b, x0)
    d_ours, d_theirs = median_distance(ours, exact), median_distance(theirs, exact)
    assert d_ours <= RATIO * d_theirs, f"ours {d_ours:.3g}, keras {d_theirs:.3g}"
