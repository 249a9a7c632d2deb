"""The update rule: ``rmsprop``, ``scale_by_rms`` and ``RMSPropState``.

Against three kinds of reference, from the most to the least independent of our code:
the float64 oracle of ``helpers`` (the equations of :func:`optax_rmsprop.rmsprop`'s
docstring), optax itself (``optax.rmsprop``, ``optax.adam``, ``optax.scale_by_rms``,
``optax.scale_by_stddev``, over every combination of ``optax.rmsprop``'s arguments), and
properties that need no reference: dtypes, shapes, the arithmetic's precision, the clamp.
"""

from __future__ import annotations

import inspect
import itertools
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import (
    MASK,
    MASK_PREFIX,
    assert_trees_close,
    cases,
    decayed_leaves,
    decays_matrices,
    fixed,
    lr_schedule,
    make_tree,
    oracle,
    stack,
    variants,
    with_lr,
)

from optax_rmsprop import Int8, RMSPropState, core, rmsprop, scale_by_rms
from optax_rmsprop.options import OPTIONS

STEPS = 30  # length of the trajectories compared with the oracle
OPTAX_STEPS = 20  # length of the trajectories compared with optax


def gradients(seed, steps, dtype=np.float32, z_dtype=None, first_scale=1.0):
    """``steps`` trees like ``make_tree``'s, of scale 0.5 (the first times ``first_scale``)."""
    rng = np.random.default_rng(seed)
    grads = [make_tree(rng, dtype, 0.5, z_dtype) for _ in range(steps)]
    grads[0] = jax.tree.map(lambda g: (g * first_scale).astype(g.dtype), grads[0])
    return grads


def trajectory(tx, grads, params):
    """Runs ``tx`` on a fixed gradient sequence, applying its updates to the params."""
    state = tx.init(params)
    updates = []
    for g in grads:
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
        updates.append(u)
    return updates, state


def assert_trajectories_close(ours, expected, rtol, what="updates"):
    """Each leaf at each step within ``rtol`` of the largest entry of that leaf over the
    whole trajectory: momentum and maximize make single entries cancel to ~0."""
    assert_trees_close(
        stack(ours), stack(expected), rtol, leaf_scale=True, same_dtypes=False, what=what
    )


# ---------------------------------------------------------------------------
# The oracle. centered + bias_correction + initial_scale=0 is left out: its step-1
# variance is exactly 0 and its computed value pure rounding noise (the optax sweep
# below covers it); with initial_scale=1 the variance is well away from 0.

ORACLE_VARIANTS = variants(
    "plain",
    "eps_outside",
    "eps_zero",
    "initial_scale",
    "decay_zero",
    "decay_one-initial_scale",
    "centered",
    "centered-eps_outside",
    "bias_correction",
    "bias_correction-eps_outside",
    "centered-bias_correction-initial_scale",
    "momentum",
    "momentum_zero",
    "momentum-nesterov",
    "momentum-lr_schedule",
    "momentum-lr_schedule-lr_outside_momentum",
    "momentum-nesterov-lr_schedule-lr_outside_momentum",
    "weight_decay_coupled",
    "weight_decay_coupled-mask",
    "weight_decay_decoupled-mask_prefix",
    "weight_decay_decoupled-mask_fn",
    "maximize",
    "maximize-weight_decay_coupled",
    "schedules-momentum-weight_decay_decoupled",
    "schedules-centered-bias_correction-nesterov-eps_outside-initial_scale",
    "momentum-caution",
    "momentum-caution-lr_schedule-lr_outside_momentum-weight_decay_corrected",
    "everything",
)
COMPLEX_VARIANTS = [
    "plain",
    "eps_outside",
    "centered-bias_correction-initial_scale",
    "momentum-nesterov-lr_schedule-lr_outside_momentum",
    "weight_decay_decoupled-mask_prefix",
    "maximize-weight_decay_coupled",
    "momentum-caution",
    "everything",
]


def oracle_kwargs(variant):
    # eps = 1e-3 is comparable to √v (~0.1), so where ε goes shows in float32 too.
    return with_lr(variant, 0.05, eps=1e-3)


def check_against_oracle(variant, dtype, z_dtype, rtol):
    kwargs = oracle_kwargs(variant)
    grads = gradients(0, STEPS, dtype, z_dtype)
    params = make_tree(1, dtype, z_dtype=z_dtype)
    updates, state = trajectory(rmsprop(**kwargs), grads, params)
    exact = oracle(fixed(grads), params, STEPS, **kwargs)
    assert_trajectories_close(updates, exact.updates, rtol)
    assert int(state.count) == STEPS
    for name in ("nu", "mu", "momentum"):
        if getattr(state, name) is not None:
            assert_trajectories_close([getattr(state, name)], [getattr(exact, name)], rtol, name)


@pytest.mark.parametrize("variant", ORACLE_VARIANTS.values(), ids=ORACLE_VARIANTS.keys())
def test_matches_oracle_float64(variant):
    """float64 params run the whole rule in float64: within 1e-13 (~1000 ulp) of the
    oracle, where a wrong formula, a schedule read at the wrong step or a misplaced ε is
    off by more than 1e-2 (test_oracle_variants_differ)."""
    with jax.enable_x64(True):
        check_against_oracle(variant, np.float64, np.float64, 1e-13)


@pytest.mark.parametrize("variant", ORACLE_VARIANTS.values(), ids=ORACLE_VARIANTS.keys())
def test_matches_oracle_float32(variant):
    """float32: within 5e-6 (~80 ulp) of the exact rule on the same float32 inputs."""
    check_against_oracle(variant, np.float32, np.float32, 5e-6)


@pytest.mark.parametrize("variant", cases(*COMPLEX_VARIANTS))
def test_matches_oracle_complex128(variant):
    """A complex leaf: v uses |g|², the centered variance |m̂|² (optax's convention)."""
    with jax.enable_x64(True):
        check_against_oracle(variant, np.float64, np.complex128, 1e-13)


@pytest.mark.parametrize("variant", cases(*COMPLEX_VARIANTS))
def test_matches_oracle_complex64(variant):
    check_against_oracle(variant, np.float32, np.complex64, 5e-6)


def test_oracle_variants_differ():
    """The float32 tolerance tells the variants apart: each differs from the plain one by
    far more than 5e-6 of the update's scale (momentum_zero is the plain rule, with a buffer).
    """
    grads = gradients(0, 10)
    params = make_tree(1)
    plain = stack(oracle(fixed(grads), params, 10, **oracle_kwargs({})).updates)
    scale = max(np.max(np.abs(u)) for u in jax.tree.leaves(plain))
    for name, variant in ORACLE_VARIANTS.items():
        other = stack(oracle(fixed(grads), params, 10, **oracle_kwargs(variant)).updates)
        difference = max(
            np.max(np.abs(a - b))
            for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(other), strict=True)
        )
        if name in ("plain", "momentum_zero"):
            assert difference < 1e-12 * scale, name
        else:
            assert difference > 1e-2 * scale, name


def test_the_oracle_reads_masks_as_optax_masked_does():
    """The masks of the variants select the leaves written out here (b, w, scale, z)."""
    tree = make_tree()
    assert decayed_leaves(None, tree) == [True, True, True, True]
    assert decayed_leaves(MASK, tree) == [False, True, True, False]
    assert decayed_leaves(MASK_PREFIX, tree) == [True, True, False, True]
    assert decayed_leaves(decays_matrices, tree) == [False, True, False, False]


def test_lr_in_momentum_differs_only_when_the_learning_rate_changes():
    """Docstring: lr inside or outside the momentum buffer "differ only when η changes"."""
    grads = gradients(0, 10)
    params = make_tree(1)

    def run(**kwargs):
        return trajectory(rmsprop(momentum=0.9, **kwargs), grads, params)[0]

    inside = run(learning_rate=0.05)
    outside = run(learning_rate=0.05, lr_in_momentum=False)
    assert_trees_close(outside, inside, 1e-5, 1e-7)
    inside = run(learning_rate=lr_schedule)
    outside = run(learning_rate=lr_schedule, lr_in_momentum=False)
    assert np.max(np.abs(inside[-1]["dense"]["w"] - outside[-1]["dense"]["w"])) > 1e-3


# ---------------------------------------------------------------------------
# optax.rmsprop, over every combination of its arguments.

MOMENTA = {  # (momentum, nesterov)
    "no_momentum": (None, False),
    "momentum_zero": (0.0, False),
    "momentum_zero-nesterov": (0.0, True),
    "momentum": (0.9, False),
    "momentum-nesterov": (0.9, True),
}
OPTAX_CASES = {}
for (
    eps_in_sqrt,
    centered,
    momentum_name,
    bias_correction,
    initial_scale,
    lr_name,
) in itertools.product(
    [True, False], [False, True], MOMENTA, [False, True], [0.0, 1.0], ["lr", "lr_schedule"]
):
    name = "-".join(
        part
        for part in [
            "centered" if centered else "",
            momentum_name,
            "eps_inside" if eps_in_sqrt else "eps_outside",
            "bias_correction" if bias_correction else "",
            f"initial_scale_{initial_scale:g}",
            lr_name,
        ]
        if part
    )
    momentum, nesterov = MOMENTA[momentum_name]
    OPTAX_CASES[name] = dict(
        learning_rate=lr_schedule if lr_name == "lr_schedule" else 0.05,
        decay=0.9,
        eps=1e-8,
        initial_scale=initial_scale,
        eps_in_sqrt=eps_in_sqrt,
        centered=centered,
        momentum=momentum,
        nesterov=nesterov,
        bias_correction=bias_correction,
    )


@pytest.mark.parametrize("kwargs", OPTAX_CASES.values(), ids=OPTAX_CASES.keys())
def test_matches_optax_rmsprop(kwargs):
    first_scale = 1.0
    if kwargs["centered"] and kwargs["bias_correction"] and kwargs["initial_scale"] == 0:
        # The degenerate case: at step 1, v̂ = g² and m̂ = g, so the variance is exactly 0
        # and its computed value is rounding noise of size ~ulp(g²), different in every
        # implementation (optax eager and optax jitted disagree with each other by orders of
        # magnitude; optax can even go NaN, see test_centered_variance_is_clamped). The step
        # is g / √(noise + ε) or, with ε outside, g / (√noise + ε): there √noise ~ 3e-4 |g|
        # is not negligible next to any usable ε. So ε = 1e-2 and a first gradient 1e4x
        # smaller (|g₁| ~ 5e-5): √noise ~ 2e-8 << ε, and what is compared is arithmetic, not
        # noise. From step 2 on the variance of two different gradients is well away from 0.
        kwargs = {**kwargs, "eps": 1e-2}
        first_scale = 1e-4
    grads = gradients(2, OPTAX_STEPS, first_scale=first_scale)
    params = make_tree(3)
    ours, _ = trajectory(rmsprop(**kwargs), grads, params)
    expected, _ = trajectory(optax.rmsprop(**kwargs), grads, params)
    # The same formulas in another order: float32 rounding only (~80 ulp allowed).
    assert_trajectories_close(ours, expected, 5e-6)


def test_optax_sweep_is_complete():
    """Every combination of optax.rmsprop's arguments is in the sweep: 2*2*5*2*2*2."""
    assert len(OPTAX_CASES) == 160
    assert (
        len({tuple(sorted((k, repr(v)) for k, v in c.items())) for c in OPTAX_CASES.values()})
        == 160
    )


# ---------------------------------------------------------------------------
# Equivalences stated in the docstrings.


@pytest.mark.parametrize(
    "learning_rate, b2, eps",
    [(0.05, 0.999, 1e-8), (0.05, 0.9, 1e-3), (lr_schedule, 0.95, 1e-6)],
    ids=["b2_0.999", "b2_0.9-eps_1e-3", "lr_schedule"],
)
def test_equals_adam_with_b1_zero(learning_rate, b2, eps):
    grads = gradients(4, OPTAX_STEPS)
    params = make_tree(5)
    ours, _ = trajectory(
        rmsprop(learning_rate, decay=b2, eps=eps, eps_in_sqrt=False, bias_correction=True),
        grads,
        params,
    )
    adam, _ = trajectory(optax.adam(learning_rate, b1=0.0, b2=b2, eps=eps), grads, params)
    assert_trajectories_close(ours, adam, 5e-6)  # float32 rounding, as for optax.rmsprop


SCALE_CASES = cases(
    "plain",
    "bias_correction-eps_outside",
    "initial_scale",
    "centered",
    "centered-bias_correction-eps_outside-initial_scale",
    "decay_schedule-eps_schedule",
    "maximize",
)


@pytest.mark.parametrize("kwargs", SCALE_CASES)
@pytest.mark.parametrize("learning_rate", [0.05, lr_schedule], ids=["lr", "lr_schedule"])
def test_scale_by_rms_then_learning_rate_is_rmsprop(kwargs, learning_rate):
    grads = gradients(6, 10)
    params = make_tree(7)
    chained, _ = trajectory(
        optax.chain(scale_by_rms(**kwargs), optax.scale_by_learning_rate(learning_rate)),
        grads,
        params,
    )
    alias, _ = trajectory(rmsprop(learning_rate, **kwargs), grads, params)
    assert_trajectories_close(chained, alias, 1e-6)  # same arithmetic, one extra rounding


@pytest.mark.parametrize("centered", [False, True], ids=["scale_by_rms", "scale_by_stddev"])
@pytest.mark.parametrize("eps_in_sqrt", [True, False], ids=["eps_inside", "eps_outside"])
@pytest.mark.parametrize(
    "bias_correction", [False, True], ids=["no_bias_correction", "bias_correction"]
)
def test_scale_by_rms_matches_optax(centered, eps_in_sqrt, bias_correction):
    kwargs = dict(
        decay=0.9,
        eps=1e-8,
        initial_scale=1.0,
        eps_in_sqrt=eps_in_sqrt,
        bias_correction=bias_correction,
    )
    reference = optax.scale_by_stddev if centered else optax.scale_by_rms
    grads = gradients(8, OPTAX_STEPS)
    params = make_tree(9)
    ours, _ = trajectory(scale_by_rms(centered=centered, **kwargs), grads, params)
    expected, _ = trajectory(reference(**kwargs), grads, params)
    assert_trajectories_close(ours, expected, 5e-6)  # float32 rounding, as for optax.rmsprop


# ---------------------------------------------------------------------------
# The clamp.


@pytest.mark.parametrize("eps_in_sqrt", [False, True], ids=["eps_outside", "eps_inside"])
def test_centered_variance_is_clamped(eps_in_sqrt):
    # A constant gradient with bias correction: v̂_t = g² and m̂_t = g at every step, so the
    # variance v̂ - |m̂|² is exactly 0 and rounding makes it negative for many entries. With
    # decay 0.99 optax's rounding is negative for these: sqrt gives NaN.
    g = jnp.asarray(np.random.default_rng(0).uniform(0.1, 1.0, 64), jnp.float32)
    kwargs = dict(decay=0.99, eps=1e-8, centered=True, bias_correction=True)
    reference = optax.rmsprop(0.01, eps_in_sqrt=False, **kwargs)
    state = reference.init(g)
    nan = []
    for _ in range(5):
        u, state = reference.update(g, state)
        nan.append(np.isnan(u).any())
    assert all(nan), "optax no longer goes NaN here: the test does not test the clamp"

    tx = rmsprop(0.01, eps_in_sqrt=eps_in_sqrt, **kwargs)
    state = tx.init(g)
    # With the variance σ² >= 0, |u| = η|g| / √(σ² + ε) <= η|g| / √ε, or η|g| / (σ + ε) <= η|g| / ε.
    bound = 0.01 * np.asarray(g) / (np.sqrt(1e-8) if eps_in_sqrt else 1e-8)
    for _ in range(5):
        u, state = tx.update(g, state)
        u = np.asarray(u)
        assert np.all(np.isfinite(u))
        assert np.all(u < 0)  # a descent step
        assert np.all(-u <= bound * (1 + 1e-6))
        assert np.all(np.isfinite(state.nu)) and np.all(np.isfinite(state.mu))


# ---------------------------------------------------------------------------
# dtypes, shapes, None leaves, empty trees, extra arguments.

# Between them, every branch of the rule: eps inside and outside, centered or not, bias
# correction, each momentum form, coupled and decoupled weight decay, schedules, maximize.
DTYPE_VARIANTS = cases(
    "plain",
    "bias_correction-eps_outside",
    "everything",
    "centered-momentum-weight_decay_decoupled",
    "split_complex",
    "centered-momentum-split_complex",
)


def kwargs_for_any_tree(variant):
    """``rmsprop``'s arguments for a variant, without a mask written for the oracle's tree."""
    kwargs = oracle_kwargs(variant)
    if not callable(kwargs.get("weight_decay_mask")):
        kwargs.pop("weight_decay_mask", None)
    return kwargs


def real_dtype(dtype):
    return jnp.finfo(dtype).dtype


def mixed_tree(rng, dtypes, scale=1.0):
    return {
        jnp.dtype(d).name: jnp.asarray(
            rng.normal(0, scale, (2, 3))
            + (1j * rng.normal(0, scale, (2, 3)) if jnp.issubdtype(d, jnp.complexfloating) else 0),
            d,
        )
        for d in dtypes
    }


def check_dtypes(variant, dtypes):
    tx = rmsprop(**kwargs_for_any_tree(variant))
    rng = np.random.default_rng(0)
    params = mixed_tree(rng, dtypes)
    split = variant.get("split_complex", False)

    def expected_shape(p):
        return (*p.shape, 2) if split and jnp.iscomplexobj(p) else p.shape

    def describe(state):
        return jax.tree.map(lambda x: (x.dtype, x.shape), state)

    state = tx.init(params)
    initial = describe(state)
    assert state.count.dtype == jnp.int32 and state.count.shape == ()
    for k, p in params.items():
        # float16 parameters get a float32 nu: |g|² overflows float16 for |g| >= 256.
        nu_dtype = jnp.float32 if p.dtype == jnp.float16 else real_dtype(p.dtype)
        assert state.nu[k].dtype == nu_dtype, k
        assert state.nu[k].shape == expected_shape(p), k
        for buffer in (state.mu, state.momentum):
            if buffer is not None:
                # split_complex keeps (real, imaginary) pairs: a real buffer, like nu
                want = real_dtype(p.dtype) if split else p.dtype
                assert buffer[k].dtype == want, k
                assert buffer[k].shape == expected_shape(p), k
    for _ in range(3):
        grads = mixed_tree(rng, dtypes, scale=0.5)
        updates, state = tx.update(grads, state, params)
        for k, p in params.items():
            assert updates[k].dtype == p.dtype, k
            assert updates[k].shape == p.shape, k
            assert np.all(np.isfinite(np.asarray(updates[k], np.complex128))), k
        assert describe(state) == initial
        params = optax.apply_updates(params, updates)
    assert int(state.count) == 3


@pytest.mark.parametrize("variant", DTYPE_VARIANTS)
def test_dtypes_and_shapes(variant):
    check_dtypes(variant, [jnp.bfloat16, jnp.float16, jnp.float32, jnp.complex64])


@pytest.mark.parametrize("variant", DTYPE_VARIANTS)
def test_dtypes_and_shapes_x64(variant):
    with jax.enable_x64(True):
        check_dtypes(variant, [jnp.float32, jnp.float64, jnp.complex64, jnp.complex128])


@pytest.mark.parametrize(
    "nu_dtype, mu_dtype",
    [(jnp.bfloat16, jnp.bfloat16), (jnp.float32, jnp.float32)],
    ids=["bfloat16", "float32"],
)
def test_nu_dtype_and_mu_dtype(nu_dtype, mu_dtype):
    """The buffers take the requested dtypes, keep them, and a complex leaf keeps its
    imaginary part: m̄ and b of a complex parameter are complex whatever mu_dtype says."""
    kwargs = dict(learning_rate=0.05, eps=1e-3, centered=True, momentum=0.9)
    tx = rmsprop(**kwargs, nu_dtype=nu_dtype, mu_dtype=mu_dtype)
    rng = np.random.default_rng(0)
    params = mixed_tree(rng, [jnp.bfloat16, jnp.float16, jnp.float32, jnp.complex64])
    grads = [mixed_tree(rng, list(map(jnp.dtype, params)), scale=0.5) for _ in range(3)]
    updates, state = trajectory(tx, grads, params)
    for k, p in params.items():
        assert state.nu[k].dtype == nu_dtype, k
        for buffer in (state.mu, state.momentum):
            if jnp.iscomplexobj(p):
                assert jnp.iscomplexobj(buffer[k]), k
            else:
                assert buffer[k].dtype == mu_dtype, k
    for u in updates:
        assert {k: x.dtype for k, x in u.items()} == {k: p.dtype for k, p in params.items()}
    # float32 buffers for a complex64 leaf: the same numbers as the default buffers.
    if mu_dtype == jnp.float32:
        default, _ = trajectory(rmsprop(**kwargs), grads, params)
        for u, d in zip(updates, default, strict=True):
            np.testing.assert_allclose(u["complex64"], d["complex64"], rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------
# The arithmetic: at least float32, on the state as stored.

FLOAT16_VARIANTS = [
    "plain",
    "eps_outside",
    "centered",
    "centered-eps_outside",
    "momentum",
    "momentum-nesterov",
    "bias_correction",
    "bias_correction-eps_outside",
    "centered-momentum-nesterov-bias_correction",
]
NU_OPTIONS = {
    "nu_default": None,
    "nu_float32": jnp.float32,
    "nu_bfloat16": jnp.bfloat16,
    "nu_int8": Int8(block_size=8, min_size=16),
}
SMALL_GRADIENTS = {
    "zero": 0.0,
    "tiny": 1e-7,  # a float16 subnormal (1e-8 rounds to 0 in float16); g² underflows
    "small": 1e-4,  # float16's g² underflows
}


def float16_case(grad):
    params = jnp.linspace(-1, 1, 32, dtype=jnp.float16)
    grads = jnp.full_like(params, grad).at[::3].multiply(-1)
    assert (grad == 0) == bool(jnp.all(grads == 0))  # the value is representable
    return params, grads


@pytest.mark.parametrize("nu_dtype", NU_OPTIONS.values(), ids=NU_OPTIONS.keys())
@pytest.mark.parametrize(
    "variant",
    cases(*FLOAT16_VARIANTS, "centered-momentum-weight_decay_decoupled", "everything"),
)
def test_float16_params_with_zero_or_tiny_gradients_give_finite_updates(variant, nu_dtype):
    """ε = 1e-8 and g² underflow float16; in float32 arithmetic the updates stay finite,
    keep the params' dtype and the state its types, and are 0 for zero gradients."""
    tx = rmsprop(**{**with_lr(variant, 1e-3), "eps": 1e-8, "nu_dtype": nu_dtype})
    for name, grad in SMALL_GRADIENTS.items():
        params, grads = float16_case(grad)
        state = tx.init(params)
        types = jax.tree.map(jax.typeof, state)
        for _ in range(3):
            updates, state = tx.update(grads, state, params)
            assert updates.dtype == jnp.float16
            assert bool(jnp.all(jnp.isfinite(updates))), (name, updates)
            assert jax.tree.map(jax.typeof, state) == types
            params = optax.apply_updates(params, updates)
        if grad == 0 and "weight_decay" not in variant:
            np.testing.assert_array_equal(updates, 0)


@pytest.mark.parametrize("variant", cases(*FLOAT16_VARIANTS))
def test_optax_rmsprop_is_not_finite_there(variant):
    """The control: optax computes in float16, where ε = 1e-8 and g² both round to 0, so
    its first step is 0/0 = NaN or g/0 = inf."""
    tx = optax.rmsprop(1e-3, **variant)
    for name, grad in SMALL_GRADIENTS.items():
        params, grads = float16_case(grad)
        updates, _ = tx.update(grads, tx.init(params), params)
        updates = np.asarray(updates, np.float32)
        assert not np.any(np.isfinite(updates)), name
        if grad == 0:
            assert np.all(np.isnan(updates))


def exact(x):
    return np.asarray(x, np.float64)


def as_bfloat16(x):
    """``x`` rounded once to bfloat16, as float64."""
    return np.asarray(x, np.float64).astype(jnp.bfloat16).astype(np.float64)


def assert_rounded_once(x, value, scale, what):
    """``x`` is the exact ``value`` rounded once to bfloat16, give or take float32 rounding:
    within the bfloat16 roundings of ``value ± 2⁻¹⁸·scale`` (``scale``, the size of the
    terms it sums), which differ for a small fraction of the entries only."""
    x = exact(x)
    low, high = as_bfloat16(value - 2**-18 * scale), as_bfloat16(value + 2**-18 * scale)
    assert (low != high).mean() < 0.05, what  # the leeway stays an exception
    ok = (low <= x) & (x <= high)
    assert ok.all(), f"{what}: {(~ok).mean():.2%} of the entries are not rounded once"


@pytest.mark.parametrize("variant", cases("plain", "centered-momentum"))
def test_bfloat16_params_and_state_are_computed_in_float32(variant):
    """The arithmetic runs in at least float32 also where the params and every buffer are
    bfloat16: each step's new buffers and update are the exact step from the stored state,
    rounded once to bfloat16. bfloat16 arithmetic rounds each operation to 8 bits."""
    lr, rho, mu, eps, n = 0.01, 0.9, 0.9, 1e-8, 4096
    tx = rmsprop(lr, decay=rho, eps=eps, **variant)
    rng = np.random.default_rng(0)
    params = jnp.asarray(rng.normal(size=n), jnp.bfloat16)
    state = tx.init(params)
    for buffer in (state.nu, state.mu, state.momentum):
        assert buffer is None or buffer.dtype == jnp.bfloat16
    for step in range(5):
        g = jnp.asarray(rng.normal(size=n) * 10.0 ** rng.uniform(-3, 3, n), jnp.bfloat16)
        u, new = tx.update(g, state, params)
        assert u.dtype == jnp.bfloat16
        g = exact(g)
        # name: (exact value, size of the terms it sums)
        v = (1 - rho) * g**2 + rho * exact(state.nu)
        want = {"nu": (v, v)}  # doc line 3
        sigma2 = exact(new.nu)
        if variant.get("centered"):
            m = (1 - rho) * g + rho * exact(state.mu)  # doc line 4
            want["mu"] = (m, np.abs((1 - rho) * g) + rho * np.abs(exact(state.mu)))
            sigma2 = np.maximum(sigma2 - exact(new.mu) ** 2, 0)  # doc line 6
        s = g / np.sqrt(sigma2 + eps)  # doc line 7
        # the error of s: its own roundings, and the cancellation in v - m²
        s_size = np.abs(s) * (1 + exact(new.nu) / (sigma2 + eps))
        if variant.get("momentum") is not None:
            b = -lr * s + mu * exact(state.momentum)  # doc line 8
            want["momentum"] = (b, lr * s_size + mu * np.abs(exact(state.momentum)))
            np.testing.assert_array_equal(exact(u), exact(new.momentum))  # u = b
        else:
            assert_rounded_once(u, -lr * s, lr * s_size, f"step {step + 1} u")  # doc line 10
        for name, (value, size) in want.items():
            assert getattr(new, name).dtype == jnp.bfloat16, name
            assert_rounded_once(getattr(new, name), value, size, f"step {step + 1} {name}")
        state = new


@pytest.mark.parametrize("variant", cases("nu_bfloat16", "centered-nu_bfloat16-mu_bfloat16"))
def test_the_update_uses_the_state_as_stored(variant):
    """float32 params, bfloat16 buffers: the step divides by the v (and subtracts the m̄)
    that is stored, what a resumed run reads, not by its float32 value before rounding."""
    lr, rho, eps, n = 0.01, 0.9, 1e-8, 4096
    tx = rmsprop(lr, decay=rho, eps=eps, **variant)
    rng = np.random.default_rng(0)
    params = jnp.asarray(rng.normal(size=n), jnp.float32)
    state = tx.init(params)
    for _ in range(3):
        g = jnp.asarray(rng.normal(size=n) * 10.0 ** rng.uniform(-3, 3, n), jnp.float32)
        u, new = tx.update(g, state, params)
        g = exact(g)
        unrounded = {"nu": (1 - rho) * g**2 + rho * exact(state.nu)}
        stored = {"nu": exact(new.nu)}
        if variant.get("centered"):
            unrounded["mu"] = (1 - rho) * g + rho * exact(state.mu)
            stored["mu"] = exact(new.mu)

        def step(buffers, g=g):
            sigma2 = buffers["nu"] - buffers.get("mu", 0) ** 2
            return -lr * g / np.sqrt(np.maximum(sigma2, 0) + eps)

        np.testing.assert_allclose(exact(u), step(stored), rtol=1e-5, atol=0)
        # The control: the unrounded buffers give steps far outside that tolerance.
        assert np.max(np.abs(step(unrounded) / step(stored) - 1)) > 1e-3
        state = new


@pytest.mark.parametrize("variant", cases("plain", "everything"))
def test_none_leaves(variant):
    tx = rmsprop(**kwargs_for_any_tree(variant))
    rng = np.random.default_rng(0)
    params = {"a": jnp.asarray(rng.normal(size=3), jnp.float32), "frozen": None}
    grads = [{"a": jnp.asarray(rng.normal(size=3), jnp.float32), "frozen": None} for _ in range(3)]
    with_none, state = trajectory(tx, grads, params)
    without, _ = trajectory(tx, [{"a": g["a"]} for g in grads], {"a": params["a"]})
    for u, w in zip(with_none, without, strict=True):
        assert u["frozen"] is None
        np.testing.assert_array_equal(u["a"], w["a"])
    for buffer in (state.nu, state.mu, state.momentum):
        assert buffer is None or buffer["frozen"] is None


@pytest.mark.parametrize("variant", cases("plain", "everything"))
def test_empty_tree(variant):
    tx = rmsprop(**kwargs_for_any_tree(variant))
    state = tx.init({})
    updates, state = tx.update({}, state, {})
    updates, state = tx.update({}, state, {})
    assert updates == {}
    assert isinstance(state, RMSPropState) and int(state.count) == 2


def test_extra_keyword_arguments_are_accepted():
    tx = rmsprop(0.1, momentum=0.9)
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    params = jnp.ones(3)
    state = tx.init(params)
    plain, _ = tx.update(jnp.ones(3), state, params)
    extra, _ = tx.update(jnp.ones(3), state, params, value=jnp.asarray(2.0), key=None)
    np.testing.assert_array_equal(plain, extra)


SPLIT_CASES = cases(
    "plain",
    "maximize-weight_decay_coupled",
    "weight_decay_decoupled-momentum",
    "centered",
    "momentum",
    "centered-momentum-eps_outside",
    "momentum-lr_outside_momentum",
)


@pytest.mark.parametrize("variant", SPLIT_CASES)
def test_split_complex_equals_real_pairs(variant):
    rng = np.random.default_rng(0)

    def pairs(z):
        return jnp.stack([z.real, z.imag], axis=-1)

    params = jnp.asarray(rng.normal(size=3) + 1j * rng.normal(size=3), jnp.complex64)
    grads = [
        jnp.asarray(rng.normal(size=3) + 1j * rng.normal(size=3), jnp.complex64) for _ in range(5)
    ]
    complex_updates, complex_state = trajectory(
        rmsprop(0.05, split_complex=True, **variant), grads, params
    )
    real_updates, real_state = trajectory(
        rmsprop(0.05, **variant), [pairs(g) for g in grads], pairs(params)
    )
    for u, r in zip(complex_updates, real_updates, strict=True):
        assert u.dtype == jnp.complex64
        np.testing.assert_allclose(pairs(u), r, rtol=1e-6, atol=1e-7)
    for name in ("nu", "mu", "momentum"):
        ours, expected = getattr(complex_state, name), getattr(real_state, name)
        if expected is None:
            assert ours is None
        else:
            assert ours.dtype == expected.dtype and ours.shape == expected.shape, name
            np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-7)


class _UnhashableSchedule:
    """A schedule object that cannot key jit's cache (a dataclass with eq=True, say)."""

    __hash__ = None

    def __call__(self, count):
        return 0.1 / (1.0 + count)


def test_an_unhashable_schedule_runs_op_by_op_and_gives_the_same_updates():
    params = {"w": jnp.linspace(-1.0, 1.0, 6), "b": jnp.ones(3)}
    grads = jax.tree.map(lambda p: jnp.cos(3.0 * p) + 0.5, params)
    expected_tx = rmsprop(lambda count: 0.1 / (1.0 + count), momentum=0.9)
    tx = rmsprop(_UnhashableSchedule(), momentum=0.9)
    for update in (tx.update, jax.jit(tx.update)):
        state, expected_state = tx.init(params), expected_tx.init(params)
        for _ in range(3):
            updates, state = update(grads, state, params)
            expected, expected_state = expected_tx.update(grads, expected_state, params)
            for k in params:
                np.testing.assert_allclose(updates[k], expected[k], rtol=1e-6)


# ---------------------------------------------------------------------------
# One declaration of the options, one source of the equations.


@pytest.mark.parametrize("function", [rmsprop, scale_by_rms], ids=lambda f: f.__name__)
def test_the_signatures_are_the_declared_options(function):
    """``rmsprop``'s and ``scale_by_rms``'s arguments are those of ``options.OPTIONS``: the
    same names, order, defaults, types and positional/keyword-only split."""
    kinds = {
        "positional": inspect.Parameter.POSITIONAL_OR_KEYWORD,
        "keyword": inspect.Parameter.KEYWORD_ONLY,
    }
    declared = [
        (o.name, o.default, o.annotation, kinds[getattr(o, function.__name__)])
        for place in kinds
        for o in OPTIONS
        if getattr(o, function.__name__) == place
    ]
    signature = inspect.signature(function).parameters.values()
    assert [(p.name, p.default, p.annotation, p.kind) for p in signature] == declared


@pytest.mark.parametrize(
    "ours, theirs", [(rmsprop, optax.rmsprop), (scale_by_rms, optax.scale_by_rms)]
)
def test_the_positional_arguments_are_optax_s(ours, theirs):
    """Drop-in: the positional arguments have optax's names, order and defaults."""
    positional = [
        (p.name, p.default)
        for p in inspect.signature(ours).parameters.values()
        if p.kind == p.POSITIONAL_OR_KEYWORD
    ]
    optax_ = [(p.name, p.default) for p in inspect.signature(theirs).parameters.values()]
    assert positional == optax_[: len(positional)]


def test_each_equation_is_labelled_in_the_rule_and_numbered_in_the_readme():
    """The equations have one source, ``core.EQUATIONS``: numbered 1, 2, ... in order, each
    computed by a labelled line of the rule, and the README's copy is the same, line by line."""
    numbers = [e.number for e in core.EQUATIONS]
    assert numbers == list(range(1, len(numbers) + 1))
    source = inspect.getsource(core._rule)
    labels = {int(n) for n in re.findall(r"# \((\d+)\)", source)}
    assert labels == set(numbers)
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(\(1\) .*?)```\n", readme, re.S)
    assert block, "no numbered equations in the README"
    assert block.group(1).rstrip("\n") == core.equations_text()
    for function in (rmsprop, core._rule):
        assert core.equations_tex().splitlines()[1].strip() in function.__doc__
        assert "{equations}" not in function.__doc__
