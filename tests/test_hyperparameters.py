"""Hyperparameters (``optax_rmsprop/hyperparameters.py``): their checks, and the values the
rule derives from them (1 − ρ, the leaky average's two ends, the bias correction 1 − ρᵗ).

A bad value raises a ``ValueError`` or ``TypeError`` naming the argument when the
transformation is built (a schedule's value when it is called); tracers pass unchecked, so
``optax.inject_hyperparams`` and ``jax.vmap`` over hyperparameters keep working.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close, is_finite, pieces

from optax_rmsprop import rmsprop, scale_by_rms

HYPERPARAMETERS = ["learning_rate", "decay", "eps", "momentum", "weight_decay", "initial_scale"]
FLAGS = [
    "eps_in_sqrt",
    "centered",
    "nesterov",
    "bias_correction",
    "decoupled_weight_decay",
    "lr_in_momentum",
    "maximize",
    "split_complex",
]

# ---------------------------------------------------------------------------
# Values out of range.


@pytest.mark.parametrize(
    "name, value, bounds",
    [
        ("decay", -0.1, "[0.0, 1.0]"),
        ("decay", 1.5, "[0.0, 1.0]"),
        ("decay", math.nan, "[0.0, 1.0]"),
        ("learning_rate", -0.5, "[0.0, inf]"),
        ("eps", -0.5, "[0.0, inf]"),
        ("momentum", -0.5, "[0.0, 1.0]"),
        ("momentum", 1.5, "[0.0, 1.0]"),  # the buffer would grow without bound
        ("weight_decay", -0.5, "[0.0, inf]"),
        ("initial_scale", -0.5, "[0.0, inf]"),
        ("decay", np.float32(1.5), "[0.0, 1.0]"),
        ("learning_rate", jnp.asarray(-0.5), "[0.0, inf]"),
    ],
    ids=[
        "decay_negative",
        "decay_above_one",
        "decay_nan",
        "learning_rate",
        "eps",
        "momentum",
        "momentum_above_one",
        "weight_decay",
        "initial_scale",
        "numpy_scalar",
        "jax_scalar",
    ],
)
def test_out_of_range_values_raise(name, value, bounds):
    with pytest.raises(ValueError, match=pieces(name, str(float(value)), bounds)):
        rmsprop(**{"learning_rate": 0.1, name: value})


@pytest.mark.parametrize("name", HYPERPARAMETERS)
@pytest.mark.parametrize(
    "value", [math.inf, -math.inf, np.float32("inf")], ids=["inf", "-inf", "f32"]
)
def test_infinite_values_raise(name, value):
    """inf is within [0, inf] but no usable value: ±inf updates, NaN, or updates of 0."""
    with pytest.raises(ValueError, match=pieces(name, "finite", str(float(value)))):
        rmsprop(**{"learning_rate": 0.1, name: value})


@pytest.mark.parametrize(
    "kwargs, texts",
    [
        ({"decay": 1.0}, ["decay=1", "initial_scale", "accumulator"]),
        ({"decay": 1.0, "initial_scale": 1.0, "bias_correction": True}, ["decay=1", "bias_corr"]),
        (
            {"decay": jnp.float32(1 - 1e-9), "initial_scale": 1.0, "bias_correction": True},
            ["decay=1", "bias_correction"],
        ),
        ({"decay": jnp.float32(1 - 1e-9)}, ["decay=1", "initial_scale"]),
        ({"decay": np.float32(1 - 1e-9), "initial_scale": 1.0, "bias_correction": True}, ["decay"]),
    ],
    ids=[
        "one",
        "one-bias_correction",
        "array_rounds_to_one-bias_correction",
        "array_rounds_to_one",
        "numpy_float32",
    ],  # fmt: skip
)
def test_decay_of_one_raises(kwargs, texts):
    """ρ = 1 keeps v at v₀ (steps of lr·g/√ε from v₀ = 0) and makes the bias correction
    divide by 0; a float32 array of 1 − 1e-9 is 1."""
    with pytest.raises(ValueError, match=pieces(*texts)):
        rmsprop(0.1, **kwargs)
    if "bias_correction" not in kwargs and "initial_scale" not in kwargs:
        with pytest.raises(ValueError, match="accumulator"):
            scale_by_rms(decay=kwargs["decay"])


def test_decay_one_with_an_initial_scale_and_decays_just_below_one_are_accepted():
    rmsprop(0.1, decay=1.0, initial_scale=1.0)  # v stays at 1
    below = float(np.nextafter(np.float32(1), np.float32(0)))
    tx = rmsprop(0.1, decay=below, bias_correction=True)
    assert is_finite(tx.update(jnp.ones(2), tx.init(jnp.zeros(2))))


def test_nesterov_without_momentum_raises():
    with pytest.raises(ValueError, match=pieces("nesterov", "momentum")):
        rmsprop(0.1, nesterov=True)
    rmsprop(0.1, momentum=0.0, nesterov=True)  # allowed: a buffer with μ = 0


# ---------------------------------------------------------------------------
# Values of the wrong type or shape.


@pytest.mark.parametrize("name", HYPERPARAMETERS)
@pytest.mark.parametrize(
    "value",
    # A complex array with no imaginary part is accepted: optax.inject_hyperparams makes
    # one of each number for complex params (tests/test_optax_contract.py).
    [
        "0.1",
        "0.0",
        "fast",
        [0.1],
        True,
        0.1 + 0j,
        np.complex64(0.1 + 0.1j),
        np.str_("0.1"),
        b"0.1",
        {"value": 0.1},
        (0.1,),
        {0.1},
    ],
    ids=[
        "str",
        "str_zero",
        "str_word",
        "list",
        "bool",
        "complex",
        "numpy_complex",
        "numpy_str",
        "bytes",
        "dict",
        "tuple",
        "set",
    ],
)
def test_values_of_the_wrong_type_raise(name, value):
    """ "0.0" must not read as "weight decay off", nor "fast" fail in float() unnamed."""
    with pytest.raises(TypeError, match=re.escape(name)):
        rmsprop(**{"learning_rate": 0.1, name: value})


def test_a_complex_value_with_an_imaginary_part_says_it_must_be_real():
    with pytest.raises(TypeError, match="learning_rate must be real"):
        rmsprop(np.complex64(0.1 + 0.1j))


@pytest.mark.parametrize("name", ["learning_rate", "decay", "eps", "initial_scale"])
def test_none_raises_type_error(name):
    """None means "off" for momentum and weight_decay only. For learning_rate it must not
    silently become scale_by_rms (updates of the wrong sign)."""
    with pytest.raises(TypeError, match=re.escape(name)):
        rmsprop(**{"learning_rate": 0.1, name: None})


def test_weight_decay_none_is_off():
    """Docstring: ``None`` (or a plain 0) turns weight decay off, so update needs no params."""
    params, grads = jnp.linspace(-1.0, 1.0, 4), jnp.linspace(0.5, -0.3, 4)
    off = rmsprop(0.1, weight_decay=None)
    zero = rmsprop(0.1, weight_decay=0.0)
    on = rmsprop(0.1, weight_decay=0.5)
    expected, _ = zero.update(grads, zero.init(params))
    np.testing.assert_array_equal(off.update(grads, off.init(params))[0], expected)
    assert np.max(np.abs(on.update(grads, on.init(params), params)[0] - expected)) > 1e-3


@pytest.mark.parametrize("name", FLAGS)
@pytest.mark.parametrize("value", ["False", None, [True]], ids=["str", "none", "list"])
def test_flags_of_the_wrong_type_raise(name, value):
    """centered="False" must not be centered (a non-empty string is true)."""
    kwargs = {"learning_rate": 0.1, "momentum": 0.9, name: value}
    with pytest.raises(TypeError, match=pieces(name, "bool", repr(value))):
        rmsprop(**kwargs)


@pytest.mark.parametrize("name", HYPERPARAMETERS)
def test_non_scalar_arrays_raise(name):
    with pytest.raises(ValueError, match=pieces(name, "scalar", "(2,)")):
        rmsprop(**{"learning_rate": 0.1, name: jnp.full((2,), 0.5)})


def test_initial_scale_cannot_be_a_schedule():
    with pytest.raises(TypeError, match="initial_scale"):
        rmsprop(0.1, initial_scale=lambda count: 1.0)


# ---------------------------------------------------------------------------
# Schedules and tracers.

SCHEDULE_VALUES = {  # what a schedule returns: (the value, the error, what it says)
    "non_scalar": (jnp.full((3,), 0.5), ValueError, ["scalar", "(3,)"]),
    "str": ("0.1", TypeError, ["real scalar"]),
    "none": (None, TypeError, ["real scalar"]),
    "complex": (0.1 + 0.2j, TypeError, ["real scalar"]),
    "bool": (True, TypeError, ["real scalar"]),
    "complex_array": (jnp.asarray(0.1 + 0.0j), TypeError, ["real scalar"]),
    "bool_array": (jnp.asarray(True), TypeError, ["real scalar"]),
}


@pytest.mark.parametrize("name", ["learning_rate", "decay", "eps", "momentum", "weight_decay"])
@pytest.mark.parametrize("case", SCHEDULE_VALUES)
def test_schedule_returning_a_bad_value_raises_at_update(name, case):
    """Named as the schedule for its argument: a string or None failed inside the
    arithmetic, a complex learning rate was dropped to its real part."""
    value, error, texts = SCHEDULE_VALUES[case]
    tx = rmsprop(
        **{"learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.1, name: lambda c: value}
    )
    params = jnp.ones(3)
    state = tx.init(params)  # init does not call schedules
    with pytest.raises(error, match=pieces(f"schedule for {name}", *texts)):
        tx.update(jnp.ones(3), state, params)


@pytest.mark.parametrize("mode", ["jit", "inject_hyperparams"])
def test_schedule_returning_a_non_scalar_raises_when_traced(mode):
    def schedule(count):
        return jnp.full((2,), 0.1) * (count + 1)

    if mode == "jit":
        tx = rmsprop(schedule)
    else:
        tx = optax.inject_hyperparams(rmsprop)(0.1, decay=0.9, eps=schedule)
    with pytest.raises(ValueError, match=pieces("scalar", "(2,)")):
        state = jax.jit(tx.init)(jnp.ones(3))
        jax.jit(tx.update)(jnp.ones(3), state, jnp.ones(3))


def test_tracers_pass_unchecked():
    """Built inside jit, hyperparameters are tracers: no check, and the same updates."""
    params = jnp.linspace(-1.0, 1.0, 4)
    grads = jnp.linspace(0.5, -0.3, 4)

    @jax.jit
    def step(learning_rate, decay, momentum):
        tx = rmsprop(learning_rate, decay=decay, momentum=momentum, centered=True)
        return tx.update(grads, tx.init(params), params)[0]

    concrete = rmsprop(0.1, decay=0.8, momentum=0.9, centered=True)
    expected = concrete.update(grads, concrete.init(params), params)[0]
    np.testing.assert_allclose(step(0.1, 0.8, 0.9), expected, rtol=1e-6)
    step(-0.1, 1.5, -1.0)  # out of range, but unknowable while tracing: no error


# ---------------------------------------------------------------------------
# Derived values: 1 − ρ, the leaky average, the bias correction.

DECAYS = [0.9, 0.99, 0.999, 0.9999, 0.99999]


def lr_warmup(count):  # 0.1 after 100 steps: still 0.1 after 2**31
    return 0.1 * jnp.minimum(1.0, (count + 1) / 100)


def test_one_minus_decay_is_rounded_once():
    """One step from v₀ = 0 with g = 1 leaves v = fl32(1 − ρ), with 1 − ρ taken in
    float64 (optax's ``nu`` is that too); from the float32 ρ it would be 0.10000002."""
    for decay in DECAYS:
        tx = scale_by_rms(decay=decay)
        _, state = tx.update(jnp.ones(1), tx.init(jnp.zeros(1)))
        assert state.nu[0] == np.float32(1 - decay), decay
        reference = optax.scale_by_rms(decay=decay)
        _, optax_state = reference.update(jnp.ones(1), reference.init(jnp.zeros(1)))
        assert state.nu[0] == optax_state.nu[0], decay


DECAY_KINDS = {
    "number": lambda rho: rho,
    "array": lambda rho: jnp.asarray(rho, jnp.float32),
    "schedule": lambda rho: lambda count: rho,
}
# |g|² far from v₀ either way: 9, 1e-6, 1e-30, 4e8 against 1e10 or 1e-10.
ENDS_GRADIENTS = [jnp.asarray([3.0, -1e-3, 1e-15, 2e4]), jnp.asarray([-1e-4, 5.0, 2e-12, 1.0])]


@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
@pytest.mark.parametrize("kind", DECAY_KINDS)
def test_the_leaky_average_is_exact_at_its_ends(kind, centered):
    """ρ = 0 gives v = |g|² (and m̄ = g), ρ = 1 keeps v = v₀ (and m̄ = 0), exactly, also
    where v and |g|² are many orders of magnitude apart: the average is taken from the
    nearer end (``hyperparameters.leaky_average``). ``old + (1 − ρ)(new − old)`` at ρ = 0
    or ``new + ρ(old − new)`` at ρ = 1 loses the smaller of the two."""
    as_kind = DECAY_KINDS[kind]
    for rho, initial_scale in ((0.0, 1e10), (1.0, 1e-10)):
        tx = scale_by_rms(decay=as_kind(rho), initial_scale=initial_scale, centered=centered)
        state = tx.init(jnp.zeros(4))
        for g in ENDS_GRADIENTS:
            _, state = tx.update(g, state)
            g32 = np.asarray(g, np.float32)
            if rho == 0:
                np.testing.assert_array_equal(state.nu, g32 * g32)  # rounded once
            else:
                np.testing.assert_array_equal(state.nu, np.full(4, np.float32(initial_scale)))
            if centered:
                np.testing.assert_array_equal(state.mu, g32 if rho == 0 else np.zeros(4))


@pytest.mark.parametrize("momentum", [0.9, 0.99])
def test_the_momentum_buffer_with_exact_gain_is_unbiased(momentum):
    """b ← x + μb over 1000 steps of x uniform in [0.5, 1.5]: against float64, the float32
    buffer's mean relative error is that of its gain 1/(1 − μ): with ``exact_gain`` (as
    with bias correction) only 1 − μ's one rounding (−1.5e-8 at 0.9, +2.2e-8 at 0.99),
    else the float32 μ's, (μ₃₂ − μ)/(1 − μ): −2.4e-7 at 0.9, +9.5e-7 at 0.99."""
    from optax_rmsprop import hyperparameters as hp

    x = np.random.default_rng(0).uniform(0.5, 1.5, size=(1000, 512)).astype(np.float32)
    exact = np.zeros(512)
    for x_t in x:
        exact = x_t + momentum * exact
    h = hp.derive({"decay": 0.9, "eps": 1e-8, "momentum": momentum})
    one_minus = float(np.float32(1 - momentum))
    for exact_gain, expected in [
        (True, (1 - momentum) / one_minus - 1),
        (False, (float(np.float32(momentum)) - momentum) / (1 - momentum)),
    ]:

        def step(b, x_t, exact_gain=exact_gain):
            return hp.momentum_average(b, x_t, h, exact_gain), None

        b, _ = jax.lax.scan(step, jnp.zeros(512, jnp.float32), x)
        bias = np.mean(np.asarray(b, np.float64) / exact - 1)
        assert abs(bias - expected) < 1e-8, (exact_gain, bias, expected)


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("eps_in_sqrt", [True, False], ids=["eps_inside", "eps_outside"])
@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9, 0.999, 0.99999, 0.9999999, 0.99999994, 1 - 1e-9])
def test_bias_correction_at_step_one_gives_lr_sign_g(decay, eps_in_sqrt, mode):
    """v̂₁ = (1 − ρ)g² / (1 − ρ¹) = g², so with ε = 0 the first step is −lr·sign(g) for every
    ρ, also within 1e-9 of 1 (1 in float32): both 1 − ρ are the same number, and 1 − ρᵗ
    does not cancel."""
    tx = rmsprop(0.1, decay=decay, eps=0.0, bias_correction=True, eps_in_sqrt=eps_in_sqrt)
    update = jax.jit(tx.update) if mode == "jit" else tx.update
    g = jnp.asarray([3.0, -1e-3, 1e10, -7.5e-12])
    updates, state = update(g, tx.init(jnp.zeros(4)))
    np.testing.assert_allclose(updates, -0.1 * np.sign(g), rtol=2e-6)
    np.testing.assert_allclose(state.nu, (1 - decay) * np.asarray(g, np.float64) ** 2, rtol=1e-6)
    assert is_finite(state)


@pytest.mark.parametrize(
    "variant",
    [
        dict(bias_correction=True),
        dict(bias_correction=True, decay=0.99999994, eps_in_sqrt=False),
        dict(
            bias_correction=True,
            centered=True,
            momentum=jnp.asarray(0.9, jnp.float32),
            learning_rate=lr_warmup,
        ),
    ],
    ids=["decay_0.9", "decay_0.99999994-eps_outside", "centered-momentum_array-lr_warmup"],
)
def test_counter_saturates_and_bias_correction_vanishes_after_2_31_steps(variant):
    """A state whose count is near int32's maximum: the count stops at 2**31 - 1 (never
    wraps to negative, which would make ρ^t huge), and 1 - ρ^t is exactly 1, so the
    updates equal those without bias correction bit for bit. (The momentum is an array:
    with bias correction a Python-number momentum also steps its buffer in another form.)"""
    kwargs = {"learning_rate": 0.1, **variant}
    tx = rmsprop(**kwargs)
    plain = rmsprop(**{**kwargs, "bias_correction": False})
    params = jnp.zeros(3)
    state = tx.init(params)
    for g in ([1.0, -2.0, 0.5], [0.5, 1.0, -3.0]):
        _, state = tx.update(jnp.asarray(g), state, params)
    state = state._replace(count=jnp.asarray(2**31 - 3, jnp.int32))
    plain_state = state
    counts = []
    for g in ([1.0, -2.0, 0.5], [0.5, 1.0, -3.0], [2.0, 2.0, 2.0], [-1.0, 0.1, 1.0]):
        updates, state = tx.update(jnp.asarray(g), state, params)
        expected, plain_state = plain.update(jnp.asarray(g), plain_state, params)
        assert_trees_close(updates, expected)  # the same bits
        assert is_finite((updates, state))
        counts.append(int(state.count))
    assert counts == [2**31 - 2, 2**31 - 1, 2**31 - 1, 2**31 - 1]
    assert state.count.dtype == jnp.int32
