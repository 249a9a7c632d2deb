"""Reliability of ``rmsprop``: errors that name the problem, non-finite gradients,
numerical safety, properties over random trees and configurations, exact resume.

**Valid configuration.** The numerical guarantees below hold for every configuration
``rmsprop`` accepts (finite hyperparameters in range; ``decay`` not 1 in float32, where
Python numbers are rounded, unless ``initial_scale > 0`` and no bias correction), with
momentum at most 1, ``eps > 0``, finite gradients, and updates whose exact value fits the
update's dtype. Then the update and the state are finite: ``|g|²`` beyond the largest
value of ``v``'s dtype counts as that value (where it overflows float32 too, ``|g| >
1.8e19``, that step's ``s`` is 0), the centered variance is clamped at 0, and ``v`` decays
back. The last condition matters for ``centered`` only: its variance can be 0 (a constant
gradient, or bias correction at step 1), and then ``s = g/√ε`` is as large as the
mathematics says (``lr·|g|/√ε`` must fit: float16 updates allow ``|g|`` up to a few
hundred at ``lr = 0.01, ε = 1e-8``).

``eps = 0`` is accepted, but divides by ``√v̂``: 0 wherever every gradient so far was 0 (0/0
is NaN, as in optax and PyTorch) or too small to square (``|g| < 1e-19`` in float32: g/0 is
±inf). With ``eps = 0`` the guarantees hold for gradients whose squares are normal floats.

**Non-finite gradients.** ``optax.apply_if_finite(rmsprop(...), n)`` and
``optax.MultiSteps(rmsprop(...), 1, should_skip_update_fn=optax.skip_not_finite)`` skip a
step with a NaN or ±inf anywhere: zero updates, the state untouched, training continues as
if the step never came. ``optax.chain(optax.zero_nans(), rmsprop(...))`` replaces NaN by 0
(but lets ±inf through). Leaves never mix, so a non-finite gradient in one leaf never
reaches another leaf's update or state.

Hypothesis example counts are small (``deadline=None``), since each example compiles.
"""

from __future__ import annotations

import functools
import math
import pickle

import flax.serialization
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import (
    INT8_SMALL,
    assert_trees_close,
    avals,
    cases,
    is_finite,
    pieces,
    variants,
    with_lr,
)

from optax_rmsprop import Int8, RMSPropState, rmsprop
from optax_rmsprop.quantize import QuantizedArray, dequantize

# ---------------------------------------------------------------------------
# Trees, runs and comparisons.


def well_conditioned(kwargs):
    """``kwargs`` where a last-place difference stays a last-place difference: centered
    with bias correction (or decay 0) has a step-1 variance v̂ − m̂² = ρv₀/(1 − ρ) (0 for
    v₀ = 0 or ρ = 0), computed as the difference of g² + ρv₀/(1 − ρ) and g², so rounding
    is amplified by about 1 + g²(1 − ρ)/(ρv₀). There v₀ = 10⁶ (the trees' gradients are
    normal numbers times at most 10², below 10³ in size: at most about 3.3 with ρ ≥ 0.3),
    and ρ = 0.5 where it was 0."""
    if kwargs.get("centered") and (kwargs.get("bias_correction") or kwargs["decay"] == 0):
        return {**kwargs, "decay": kwargs["decay"] or 0.5, "initial_scale": 1e6}
    return kwargs


def rounding_tolerance(kwargs, *trees):
    """A few last places of the coarsest float in ``trees``; a tenth for 8-bit ``v``,
    whose codes are 9 % apart (a last-place difference may move one code)."""
    if isinstance(kwargs.get("nu_dtype"), Int8):
        return 0.1
    floats = [x for x in jax.tree.leaves(trees) if jnp.isdtype(x.dtype, "real floating")]
    return 8 * max(float(jnp.finfo(x.dtype).eps) for x in floats)


def nu_values(state, config):
    """The leaves of ``nu`` as float32 arrays (8-bit blocks decoded)."""
    is_q = lambda x: isinstance(x, QuantizedArray)  # noqa: E731
    return [
        np.asarray(dequantize(v, config) if is_q(v) else v, np.float32)
        for v in jax.tree.leaves(state.nu, is_leaf=is_q)
    ]


def random_leaf(rng, shape, dtype, scale=1.0):
    x = rng.normal(0.0, scale, shape)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        x = x + 1j * rng.normal(0.0, scale, shape)
    return jnp.asarray(x.astype(dtype))  # NumPy casts: no complex128 request to JAX


def run(tx, params, grads_seq, update=None, apply=True):
    """Eager updates of ``tx`` over a gradient sequence: (updates, states) per step."""
    update = update or tx.update
    state = tx.init(params)
    updates, states = [], []
    for grads in grads_seq:
        u, state = update(grads, state, params)
        params = optax.apply_updates(params, u) if apply else params
        updates.append(u)
        states.append(state)
    return updates, states


# ---------------------------------------------------------------------------
# Errors that name the problem: the structure of the gradients.

PARAMS = {"dense": {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}, "scale": jnp.ones(())}


def grads_like(params):
    return jax.tree.map(lambda p: jnp.full(p.shape, 0.5, p.dtype), params)


STRUCTURE_CASES = {
    "extra_leaf": (
        lambda g: {**g, "extra": jnp.ones(3)},
        ValueError,
        ["updates['extra']", "not in the state's nu"],
    ),
    "missing_nested_leaf": (
        lambda g: {**g, "dense": {"w": g["dense"]["w"]}},
        ValueError,
        ["['dense']['b']", "not in the updates"],
    ),
    "leaf_where_the_state_has_a_subtree": (
        lambda g: {**g, "dense": jnp.ones(2)},
        ValueError,
        ["updates['dense']", "dict"],
    ),
    "subtree_where_the_state_has_a_leaf": (
        lambda g: {**g, "scale": {"x": jnp.ones(())}},
        ValueError,
        ["['scale']", "nu"],
    ),
    "none_where_the_state_has_a_buffer": (
        lambda g: {**g, "scale": None},
        ValueError,
        ["updates['scale']", "None"],
    ),
    "list_instead_of_dict": (
        lambda g: [g["dense"], g["scale"]],
        ValueError,
        ["tree structure", "nu"],
    ),
}


@pytest.mark.parametrize("variant", cases("plain", "centered-momentum"))
@pytest.mark.parametrize("case", STRUCTURE_CASES, ids=STRUCTURE_CASES)
def test_gradients_of_another_structure_raise_naming_the_path(case, variant):
    change, error, texts = STRUCTURE_CASES[case]
    tx = rmsprop(0.1, **variant)
    state = tx.init(PARAMS)
    with pytest.raises(error, match=pieces(*texts)):
        tx.update(change(grads_like(PARAMS)), state)


def test_an_array_where_the_param_was_none_raises_naming_the_path():
    params = {"w": jnp.ones(2), "frozen": None}
    tx = rmsprop(0.1)
    state = tx.init(params)
    with pytest.raises(ValueError, match=pieces("updates['frozen']", "None")):
        tx.update({"w": jnp.ones(2), "frozen": jnp.ones(3)}, state)


def test_params_of_another_structure_raise_naming_the_path():
    tx = rmsprop(0.1)  # no weight decay: the params only serve the checks
    state = tx.init(PARAMS)
    params = {**PARAMS, "dense": {"w": PARAMS["dense"]["w"]}}
    with pytest.raises(ValueError, match=pieces("params", "['dense']['b']")):
        tx.update(grads_like(PARAMS), state, params)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_gradient_of_another_shape_raises_naming_the_path(jit):
    tx = rmsprop(0.1, centered=True)
    update = jax.jit(tx.update) if jit else tx.update
    grads = grads_like(PARAMS)
    grads["dense"]["w"] = jnp.ones((2, 3))
    with pytest.raises(ValueError, match=pieces("updates['dense']['w']", "(2, 3)", "(3, 2)")):
        update(grads, tx.init(PARAMS), PARAMS)


def test_split_complex_state_of_another_shape_says_what_it_needs():
    params = {"z": jnp.ones(3, jnp.complex64)}
    state = rmsprop(0.1).init(params)  # made without split_complex: nu has shape (3,)
    tx = rmsprop(0.1, split_complex=True)
    with pytest.raises(ValueError, match=pieces("updates['z']", "(3,)", "(3, 2)")):
        tx.update(params, state, params)


# ---------------------------------------------------------------------------
# Errors: the dtypes of gradients and parameters.

KIND_CASES = {
    # name: (param dtype, gradient dtype, error text)
    "int_grads": (jnp.float32, jnp.int32, "int32"),
    "bool_grads": (jnp.float32, jnp.bool_, "bool"),
    "uint8_grads_for_bfloat16": (jnp.bfloat16, jnp.uint8, "uint8"),
    "complex_grads_for_real_params": (jnp.float32, jnp.complex64, "complex64"),
    "real_grads_for_complex_params": (jnp.complex64, jnp.float32, "complex64"),
}


@pytest.mark.parametrize("variant", cases("plain", "centered-momentum", "split_complex", "nu_int8"))
@pytest.mark.parametrize("case", KIND_CASES, ids=KIND_CASES)
def test_gradient_of_another_kind_raises_naming_the_path(case, variant):
    # An integer gradient was silently cast back to int (updates of 0), a complex gradient
    # for a real parameter gave complex updates.
    param_dtype, grad_dtype, text = KIND_CASES[case]
    params = {"a": jnp.ones((3, 3)), "b": {"c": jnp.ones((2, 5), param_dtype)}}
    tx = rmsprop(0.1, **variant)
    state = tx.init(params)
    grads = {"a": jnp.ones((3, 3)), "b": {"c": jnp.ones((2, 5), grad_dtype)}}
    with pytest.raises(TypeError, match=pieces("updates['b']['c']", text)):
        tx.update(grads, state, params)


def test_float64_gradients_for_float32_params_are_fine():
    """Same kind, other precision: accepted (the update takes the gradient's dtype)."""
    with jax.enable_x64(True):
        tx = rmsprop(0.1)
        params = jnp.ones(3, jnp.float32)
        updates, _ = tx.update(jnp.ones(3, jnp.float64), tx.init(params), params)
        assert updates.dtype == jnp.float64


PARAM_KIND_CASES = {
    # name: (params, the path of the bad leaf, its dtype's name)
    "int32": ({"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)}, "['step']", "int32"),
    "bool": ([jnp.ones(2), jnp.array([True, False])], "[1]", "bool"),
    "nested_uint8": (
        {"layer": {"b": jnp.ones(2), "mask": np.ones(2, np.uint8)}},
        "['layer']['mask']",
        "uint8",
    ),
    "python_int": ({"w": jnp.ones(2), "extra": {"n": 3}}, "['extra']['n']", "int32"),
    "numpy_int64": ({"w": jnp.ones(2), "extra": {"n": np.int64(3)}}, "['extra']['n']", "int"),
    "bool_array": (
        {"w": jnp.ones(2), "extra": {"n": np.array([True, False])}},
        "['extra']['n']",
        "bool",
    ),
}


@pytest.mark.parametrize(
    "variant", cases("plain", "centered-momentum", "nu_int8", "centered-momentum-split_complex")
)
@pytest.mark.parametrize("case", PARAM_KIND_CASES)
def test_integer_and_bool_params_raise_at_init_naming_the_path(case, variant):
    params, path, dtype = PARAM_KIND_CASES[case]
    with pytest.raises(
        TypeError, match=pieces(f"params{path}", dtype, "optax.masked", "optax.partition")
    ):
        rmsprop(0.1, **variant).init(params)


# ---------------------------------------------------------------------------
# Restoring a state made by another configuration.

# w: 4096 values in 8-bit blocks along its last axis (2 of 256 per row, or 4 of 128).
RESTORE_PARAMS = {"w": jnp.ones((8, 512)), "b": jnp.ones(5), "z": jnp.ones(3, jnp.complex64)}

OTHER_CONFIGURATION = {
    # name: (made with, used with, message pieces)
    "centered-into-plain": ({"centered": True}, {}, ["mu", "centered"]),
    "plain-into-centered": ({}, {"centered": True}, ["mu", "centered"]),
    "momentum-into-plain": ({"momentum": 0.9}, {}, ["momentum"]),
    "plain-into-momentum": ({}, {"momentum": 0.9}, ["momentum"]),
    "centered_momentum-into-momentum": (
        {"centered": True, "momentum": 0.9},
        {"momentum": 0.9},
        ["mu", "centered"],
    ),
    "int8-into-float": ({"nu_dtype": "int8"}, {}, ["nu['w']", "8-bit", "nu_dtype"]),
    "float-into-int8": ({}, {"nu_dtype": "int8"}, ["nu['w']", "float32", "nu_dtype"]),
    "int8_blocks_256-into-128": (
        {"nu_dtype": "int8"},
        {"nu_dtype": Int8(block_size=128)},
        ["nu['w']", "blocks", "block_size=128"],
    ),
    "split_complex-into-plain": ({"split_complex": True}, {}, ["updates['z']", "(3, 2)"]),
    # Same shapes, other dtypes: found only with the params (update(g, state, params)).
    "bfloat16-into-float32": (
        {"nu_dtype": jnp.bfloat16},
        {},
        ["nu['b']", "bfloat16", "float32", "nu_dtype"],
    ),
    "float32-into-bfloat16": (
        {},
        {"nu_dtype": jnp.bfloat16},
        ["nu['b']", "bfloat16", "float32", "nu_dtype"],
    ),
    "int8_small_leaf-into-bfloat16": (
        {"nu_dtype": "int8"},
        {"nu_dtype": jnp.bfloat16},
        ["nu['b']", "float32", "bfloat16"],
    ),
    "momentum_bfloat16-into-float32": (
        {"momentum": 0.9, "mu_dtype": jnp.bfloat16},
        {"momentum": 0.9},
        ["momentum['b']", "bfloat16", "mu_dtype"],
    ),
    "centered_float32-into-bfloat16": (
        {"centered": True},
        {"centered": True, "mu_dtype": jnp.bfloat16},
        ["mu['b']", "float32", "bfloat16", "mu_dtype"],
    ),
}


@pytest.mark.parametrize("case", OTHER_CONFIGURATION, ids=OTHER_CONFIGURATION)
def test_state_of_another_configuration_raises(case, tmp_path):
    # It was dropped silently (a centered or momentum state into a plain transformation),
    # kept silently (float into int8) or failed deep inside (int8 into float: "'NoneType'
    # object has no attribute 'block_size'"; other block sizes: a broadcasting error).
    made_with, used_with, texts = OTHER_CONFIGURATION[case]
    maker = rmsprop(0.1, **made_with)
    state = maker.init(RESTORE_PARAMS)
    _, state = maker.update(RESTORE_PARAMS, state, RESTORE_PARAMS)
    path = tmp_path / "state.pickle"
    path.write_bytes(pickle.dumps(jax.device_get(state)))
    restored = pickle.loads(path.read_bytes())
    tx = rmsprop(0.1, **used_with)
    with pytest.raises(ValueError, match=pieces(*texts)):
        tx.update(RESTORE_PARAMS, restored, RESTORE_PARAMS)


# ---------------------------------------------------------------------------
# Exact resume.

RESUME_VARIANTS = variants(
    "plain",
    "everything",
    "schedules-momentum-weight_decay_decoupled",
    "centered-momentum-split_complex",
)
NU_DTYPES = {"nu_default": None, "nu_bfloat16": jnp.bfloat16, "nu_int8": "int8"}
RESUME_STEPS, RESUMED_STEPS = 3, 4


def save_pickle(state, target, tmp_path):
    del target
    path = tmp_path / "state.pickle"
    path.write_bytes(pickle.dumps(jax.device_get(state)))
    return pickle.loads(path.read_bytes())


def save_flax(state, target, tmp_path):
    path = tmp_path / "state.msgpack"
    path.write_bytes(flax.serialization.to_bytes(state))
    return flax.serialization.from_bytes(target, path.read_bytes())


def save_orbax_standard(state, target, tmp_path):
    import orbax.checkpoint as ocp

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "standard", state)
    checkpointer.wait_until_finished()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return checkpointer.restore(tmp_path / "standard", abstract)


SAVERS = {
    "pickle": save_pickle,
    "flax": save_flax,
    "orbax_standard": save_orbax_standard,
}


@functools.cache
def resume_problem(variant, nu_dtype):
    kwargs = with_lr(RESUME_VARIANTS[variant], 0.05, nu_dtype=NU_DTYPES[nu_dtype])
    rng = np.random.default_rng(0)
    params = {
        "w": random_leaf(rng, (64, 64), jnp.float32),  # 4096 values: 8-bit blocks for int8
        "b": random_leaf(rng, (5,), jnp.float32),
        "z": random_leaf(rng, (3,), jnp.complex64),
    }
    steps = RESUME_STEPS + RESUMED_STEPS
    grads = [
        jax.tree.map(lambda p: random_leaf(rng, p.shape, p.dtype), params) for _ in range(steps)
    ]
    return kwargs, params, grads


@pytest.mark.parametrize("saver", SAVERS)
@pytest.mark.parametrize("nu_dtype", NU_DTYPES)
@pytest.mark.parametrize("variant", RESUME_VARIANTS)
def test_resume_is_bit_identical(variant, nu_dtype, saver, tmp_path):
    kwargs, params, grads = resume_problem(variant, nu_dtype)
    tx = rmsprop(**kwargs)
    expected_updates, expected_states = run(tx, params, grads)

    state, p = tx.init(params), params
    for g in grads[:RESUME_STEPS]:
        u, state = tx.update(g, state, p)
        p = optax.apply_updates(p, u)
    # The target is what a new process has: a fresh state of the same configuration.
    restored = SAVERS[saver](state, tx.init(params), tmp_path)
    assert isinstance(restored, RMSPropState)
    assert_trees_close(restored, state, what="restored")
    tx = rmsprop(**kwargs)  # a new process would build it again
    for i, g in enumerate(grads[RESUME_STEPS:], start=RESUME_STEPS):
        u, restored = tx.update(g, restored, p)
        p = optax.apply_updates(p, u)
        assert_trees_close(u, expected_updates[i], what=f"updates of step {i + 1}")
    assert_trees_close(restored, expected_states[-1], what="final state")
    assert int(restored.count) == RESUME_STEPS + RESUMED_STEPS


# ---------------------------------------------------------------------------
# Non-finite gradients.

BAD_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
NONFINITE_VARIANTS = variants(
    "plain",
    "centered-momentum-nesterov-bias_correction-initial_scale",
    "centered-momentum-nu_int8-mu_bfloat16",
    "centered-momentum-nu_int8-mu_int8",
)
SKIPPERS = {
    "apply_if_finite": lambda tx: optax.apply_if_finite(tx, max_consecutive_errors=100),
    "multisteps_skip_not_finite": lambda tx: optax.MultiSteps(
        tx, every_k_schedule=1, should_skip_update_fn=optax.skip_not_finite
    ),
}


def inner_state(wrapper, state):
    return state.inner_state if wrapper == "apply_if_finite" else state.inner_opt_state


def nonfinite_problem(steps=8, bad_steps=(2, 3, 6)):
    """Gradients for {"a", "b"}, and the steps where ``poisoned`` puts a bad value in ``a``."""
    rng = np.random.default_rng(0)
    params = {"a": random_leaf(rng, (4, 4), jnp.float32), "b": random_leaf(rng, (3,), jnp.float32)}
    grads = [
        jax.tree.map(lambda p: random_leaf(rng, p.shape, p.dtype), params) for _ in range(steps)
    ]
    return params, grads, bad_steps


def poisoned(grads, bad_steps, values):
    """``grads`` with ``a[1, 2]`` set to ``values[j]`` at the j-th bad step (cyclically)."""
    out = list(grads)
    for j, i in enumerate(bad_steps):
        out[i] = {**grads[i], "a": grads[i]["a"].at[1, 2].set(values[j % len(values)])}
    return out


@pytest.mark.parametrize("variant", NONFINITE_VARIANTS)
@pytest.mark.parametrize("wrapper", SKIPPERS)
def test_skipped_non_finite_steps_leave_no_trace(wrapper, variant):
    params, grads, bad_steps = nonfinite_problem()  # NaN, then +inf, then -inf
    tx = SKIPPERS[wrapper](rmsprop(0.05, **NONFINITE_VARIANTS[variant]))
    good = [g for i, g in enumerate(grads) if i not in bad_steps]
    expected, _ = run(rmsprop(0.05, **NONFINITE_VARIANTS[variant]), params, good)

    update = jax.jit(tx.update)
    state, p, got = tx.init(params), params, []
    for i, g in enumerate(poisoned(grads, bad_steps, list(BAD_VALUES.values()))):
        u, state = update(g, state, p)
        assert is_finite(u) and is_finite(inner_state(wrapper, state)), f"step {i + 1}"
        if i in bad_steps:
            assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(u)), f"step {i + 1}"
        else:
            got.append(u)
        p = optax.apply_updates(p, u)
    assert int(inner_state(wrapper, state).count) == len(good)
    # Training goes on as if the bad steps never came (to float32 rounding: the wrapper's
    # jitted update is another compilation, with other fusions).
    for i, (u, e) in enumerate(zip(got, expected, strict=True)):
        for k in u:
            np.testing.assert_allclose(u[k], e[k], rtol=1e-5, atol=0, err_msg=f"good step {i}")


@pytest.mark.parametrize("variant", NONFINITE_VARIANTS)
def test_zero_nans_keeps_the_state_finite(variant):
    params, grads, bad_steps = nonfinite_problem()
    tx = optax.chain(optax.zero_nans(), rmsprop(0.05, **NONFINITE_VARIANTS[variant]))
    zeroed = poisoned(grads, bad_steps, [0.0])
    expected_updates, expected_states = run(
        rmsprop(0.05, **NONFINITE_VARIANTS[variant]), params, zeroed
    )
    updates, states = run(tx, params, poisoned(grads, bad_steps, [math.nan]))
    for i, (u, s) in enumerate(zip(updates, states, strict=True)):
        assert is_finite(u) and is_finite(s[1]), f"step {i + 1}"
        np.testing.assert_allclose(u["a"], expected_updates[i]["a"], rtol=1e-6, atol=0)
        np.testing.assert_allclose(u["b"], expected_updates[i]["b"], rtol=1e-6, atol=0)


@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize("variant", NONFINITE_VARIANTS)
def test_a_non_finite_leaf_never_reaches_another_leaf(variant, bad):
    """No wrapper: the bad leaf's own update and state go bad, leaf ``b`` is untouched."""
    params, grads, bad_steps = nonfinite_problem()
    tx = rmsprop(0.05, **NONFINITE_VARIANTS[variant])
    clean_updates, clean_states = run(tx, params, grads)
    updates, states = run(tx, params, poisoned(grads, bad_steps, [BAD_VALUES[bad]]))
    assert not is_finite([u["a"] for u in updates[bad_steps[0] :]])  # the test does poison
    for i in range(len(grads)):
        assert_trees_close(updates[i]["b"], clean_updates[i]["b"], what=f"step {i + 1} updates")
        for field in ("nu", "mu", "momentum"):
            buffer, clean = getattr(states[i], field), getattr(clean_states[i], field)
            if clean is not None:
                assert_trees_close(buffer["b"], clean["b"], what=f"step {i + 1} {field}")


# ---------------------------------------------------------------------------
# Numerical safety: finite updates and state whenever the gradients are finite.

MAGNITUDES = {
    # dtype: gradient magnitudes from the smallest subnormal to the largest finite value
    "float32": [1e-45, 1e-38, 1e-30, 1e-20, 1e-10, 1.0, 1e10, 1e18, 1e20, 1e30, 3e38],
    "bfloat16": [1e-40, 1e-30, 1e-10, 1.0, 1e10, 1e20, 1e30, 3e38],
    "float16": [6e-8, 1e-5, 1e-2, 1.0, 100.0, 300.0, 1e3, 3e4, 6e4],
    "complex64": [1e-45, 1e-30, 1e-10, 1.0, 1e10, 1e20, 1e30, 2e38],
}
SAFETY_VARIANTS = variants(
    "plain",
    "eps_outside",
    "centered",
    "centered-eps_outside",
    "bias_correction",
    "bias_correction-eps_outside",
    "centered-bias_correction-initial_scale",
    "momentum-nesterov-decay_0.999",
    "centered-momentum",
    "nu_int8",
    "nu_bfloat16",
    "centered-split_complex",
    "centered-momentum-nu_int8-mu_int8",
)
LR, EPS = 0.01, 1e-8


def representable(variant, dtype, magnitude):
    """Whether the worst exact update, lr·|g|/√ε (centered, variance 0), with momentum's
    10x and a margin, fits ``dtype``: the valid configurations of the module docstring."""
    if not variant.get("centered"):
        return True
    return LR * 1.5 * magnitude / math.sqrt(EPS) * 40 < float(jnp.finfo(dtype).max)


@pytest.mark.parametrize("variant", SAFETY_VARIANTS)
def test_finite_gradients_give_finite_updates_and_state(variant):
    """Four steps of random-sign gradients at each magnitude of each dtype, one leaf per
    (dtype, magnitude): leaves never mix, so this is one run per leaf. |g|² beyond v's
    range (float32 |g| > 1.8e19) must neither store v = inf nor give inf - inf = NaN.
    """
    kwargs = SAFETY_VARIANTS[variant]
    rng = np.random.default_rng(0)

    def gradient(dtype, magnitude):  # random signs, magnitudes within 0.5x-1x
        def part():
            x = np.minimum(magnitude * rng.uniform(0.5, 1.0, (4, 8)), float(jnp.finfo(dtype).max))
            return x * rng.choice([-1.0, 1.0], (4, 8))

        x = part() + 1j * part() if dtype == "complex64" else part()
        return jnp.asarray(x.astype(jnp.dtype(dtype)))

    params = {
        dtype: {f"{m:g}": jnp.zeros((4, 8), dtype) for m in ms if representable(kwargs, dtype, m)}
        for dtype, ms in MAGNITUDES.items()
    }
    tx = rmsprop(LR, eps=EPS, **kwargs)
    state = tx.init(params)
    for step in range(4):
        grads = {d: {m: gradient(d, float(m)) for m in leaves} for d, leaves in params.items()}
        assert is_finite(grads)
        updates, state = tx.update(grads, state, params)
        for d, leaves in params.items():
            for m in leaves:
                where = f"{d} gradients of |g| ~ {m}, step {step + 1}"
                assert is_finite(updates[d][m]), f"updates: {where}"
                for field in ("nu", "mu", "momentum"):
                    buffer = getattr(state, field)
                    assert buffer is None or is_finite(buffer[d][m]), f"{field}: {where}"


SPIKES = {"float32": 1e30, "bfloat16": 1e30, "float16": 6e4}


@pytest.mark.parametrize("dtype", SPIKES)
@pytest.mark.parametrize(
    "variant", ["plain", "centered", "bias_correction-eps_outside", "centered-momentum", "nu_int8"]
)
def test_training_recovers_from_a_huge_gradient(variant, dtype):
    """One gradient of 1e30 (6e4 in float16), then ±1: the step returns to ±lr·1 (a v of
    inf would stay inf, and the coordinate's updates 0)."""
    kwargs = SAFETY_VARIANTS[variant]
    tx = rmsprop(LR, eps=EPS, **kwargs)
    params = jnp.zeros(16, dtype)
    state = tx.init(params)
    spike = jnp.full(16, SPIKES[dtype], dtype).at[::2].set(-SPIKES[dtype])
    updates, state = tx.update(spike, state, params)
    assert is_finite((updates, state))

    @jax.jit
    def steps(state):
        def body(t, carry):
            state, finite = carry
            grads = jnp.where(t % 2 == 0, 1.0, -1.0).astype(dtype) * jnp.ones(16, dtype)
            updates, state = tx.update(grads, state, params)
            return state, finite & jnp.all(jnp.isfinite(updates.astype(jnp.float32)))

        return jax.lax.fori_loop(0, 2000, body, (state, jnp.asarray(True)))

    state, finite = steps(state)
    assert bool(finite) and is_finite(state)
    updates, _ = tx.update(jnp.ones(16, dtype), state, params)
    # Steady state of ±1 gradients: v̂ -> 1 (centered: m̄ -> ∓0.05, σ² ~ 1), so |s| ~ 1;
    # momentum sums an alternating series (|b| between lr/1.9 and lr).
    low, high = (0.3, 1.1) if kwargs.get("momentum") else (0.9, 1.1)
    magnitude = np.abs(np.asarray(updates, np.float32)) / LR
    assert np.all((low < magnitude) & (magnitude < high)), magnitude


@pytest.mark.parametrize("decay", [0.999, 0.99999, 0.9999999, 0.99999994])
@pytest.mark.parametrize("variant", cases("plain", "eps_outside", "centered", "momentum-nesterov"))
def test_decays_close_to_one_stay_finite_and_bounded(variant, decay):
    """First step |s| <= 1/√(1 - ρ) (1 - ρ taken in float64, as the rule does); centered:
    1/√(ρ(1 - ρ)). Then 50 steps: finite."""
    tx = rmsprop(1.0, decay=decay, eps=1e-8, **variant)
    rng = np.random.default_rng(0)
    params = jnp.zeros(64)
    g = jnp.asarray(rng.normal(size=64) * 10.0 ** rng.uniform(-5, 5, 64), jnp.float32)
    updates, state = tx.update(g, tx.init(params), params)
    one_minus_rho = float(np.float32(1 - decay))
    bound = 1 / math.sqrt(one_minus_rho) / (math.sqrt(decay) if variant.get("centered") else 1)
    bound *= 1.9 if variant.get("nesterov") else 1  # u = -η s + μ b with b = -η s
    assert np.all(np.abs(np.asarray(updates)) <= bound * (1 + 1e-5))
    for _ in range(50):
        g = jnp.asarray(rng.normal(size=64) * 10.0 ** rng.uniform(-5, 5, 64), jnp.float32)
        updates, state = tx.update(g, state, params)
        assert is_finite((updates, state))


def test_eps_zero_is_safe_for_nonzero_gradients_and_nan_for_zero_ones():
    """The documented edge of ε = 0: finite for gradients whose squares are normal floats,
    0/0 = NaN for a coordinate whose gradients were all 0 (as optax and PyTorch)."""
    for variant in variants("plain", "eps_outside", "bias_correction", "momentum").values():
        tx = rmsprop(0.1, eps=0.0, **variant)
        params = jnp.zeros(4)
        state = tx.init(params)
        for scale in (1e-18, 1.0, 1e18):
            updates, state = tx.update(jnp.asarray([1.0, -2.0, 0.5, -3.0]) * scale, state, params)
            assert is_finite((updates, state)), (variant, scale)
        updates, _ = tx.update(jnp.zeros(2), tx.init(jnp.zeros(2)))
        assert np.all(np.isnan(updates)), variant


def test_float16_params_follow_the_float32_arithmetic_across_their_range():
    """Float16 gradients up to 6e4: the updates equal those of the same run in float32
    (to float16 rounding). A float16 ``v`` cannot hold |g|² beyond 6.5e4 (|g| > 810 at
    ρ = 0.9): it saturated to inf (updates 0 forever), so ``v`` needs float32 range."""
    rng = np.random.default_rng(0)
    grads = [jnp.asarray(rng.uniform(-6e4, 6e4, 32), jnp.float16) for _ in range(10)]
    params = jnp.zeros(32, jnp.float16)
    for variant in variants("plain", "momentum", "bias_correction-eps_outside").values():
        half, _ = run(rmsprop(0.01, **variant), params, grads)
        single, _ = run(
            rmsprop(0.01, **variant),
            params.astype(jnp.float32),
            [g.astype(jnp.float32) for g in grads],
        )
        for i, (h, s) in enumerate(zip(half, single, strict=True)):
            # float16 rounding of the update and (momentum) of its buffer: 1e-3 of the
            # leaf's scale; a saturated v is off by a factor (2.5 here), a dead one by 1.
            assert h.dtype == jnp.float16
            h, s = np.asarray(h, np.float32), np.asarray(s)
            np.testing.assert_allclose(
                h, s, rtol=0, atol=3e-3 * np.max(np.abs(s)), err_msg=f"{variant} step {i + 1}"
            )


# ---------------------------------------------------------------------------
# Properties over random trees, dtypes and hyperparameters.

LEAF_SHAPES = [(), (3,), (2, 5), (4, 4)]
LEAF_DTYPES = ["float32", "bfloat16", "float16", "complex64"]
# The same examples on every run, so that CI is reproducible (run with more examples and
# derandomize=False to explore: the jit and vmap properties passed 120-200 random ones).
SETTINGS = hypothesis.settings(
    # The explain phase imports libcst, whose import warns (an error under
    # filterwarnings = error) when it reports a failing example.
    phases=[p for p in hypothesis.Phase if p.name != "explain"],
    deadline=None,
    max_examples=25,
    database=None,
    derandomize=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)


@st.composite
def trees(draw, dtypes=tuple(LEAF_DTYPES)):
    """(params, gradients): a random tree, and a function of (step, low, high) giving
    gradients like it: normal values times 10**U(low, high), never exactly 0 before the
    cast, within a quarter of the dtype's largest value."""
    leaves = draw(
        st.lists(
            st.tuples(st.sampled_from(LEAF_SHAPES), st.sampled_from(dtypes)),
            min_size=1,
            max_size=3,
        )
    )
    nested = draw(st.booleans())
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    arrays = [random_leaf(rng, shape, dtype) for shape, dtype in leaves]
    if nested:
        params = {"block": tuple(arrays[:-1]), "last": {"w": arrays[-1]}}
    else:
        params = {f"leaf{i}": a for i, a in enumerate(arrays)}

    def gradients(step, low=-2.0, high=2.0):
        rng = np.random.default_rng([seed, step])

        def part(p):
            x = rng.normal(size=p.shape)
            x = np.where(x == 0, 1.0, x) * 10.0 ** rng.uniform(low, high, p.shape)
            limit = float(jnp.finfo(p.dtype).max) / 4
            return np.clip(x, -limit, limit)

        def leaf(p):
            x = part(p) + 1j * part(p) if jnp.iscomplexobj(p) else part(p)
            return jnp.asarray(x.astype(p.dtype))

        return jax.tree.map(leaf, params)

    return params, gradients


@st.composite
def configs(draw, *, eps_zero=False, weight_decay=True, momentum=True, centered=True, storage=True):
    """Keyword arguments of ``rmsprop``. ``eps_zero``: ε = 0 and v₀ = 0; ``storage``:
    ``nu_dtype`` and ``mu_dtype`` too."""
    kwargs = dict(
        learning_rate=draw(st.sampled_from([1e-3, 0.01, 0.1, 0.3, 1.0])),
        decay=draw(st.sampled_from([0.0, 0.3, 0.5, 0.9, 0.99, 0.999])),
        eps=0.0 if eps_zero else draw(st.sampled_from([1e-10, 1e-8, 1e-6, 1e-3])),
        initial_scale=0.0 if eps_zero else draw(st.sampled_from([0.0, 0.1, 1.0])),
        eps_in_sqrt=draw(st.booleans()),
        centered=centered and draw(st.booleans()),
        bias_correction=draw(st.booleans()),
        maximize=draw(st.booleans()),
        split_complex=draw(st.booleans()),
        nu_dtype=draw(st.sampled_from([None, jnp.bfloat16, INT8_SMALL] if storage else [None])),
        mu_dtype=draw(st.sampled_from([None, jnp.float32, jnp.bfloat16] if storage else [None])),
    )
    if momentum and draw(st.booleans()):
        kwargs["momentum"] = draw(st.sampled_from([0.0, 0.3, 0.5, 0.9]))
        kwargs["nesterov"] = draw(st.booleans())
        kwargs["lr_in_momentum"] = draw(st.booleans())
        kwargs["caution"] = draw(st.booleans())
    if weight_decay and draw(st.booleans()):
        kwargs["weight_decay"] = draw(st.sampled_from([1e-4, 0.1]))
        kwargs["decoupled_weight_decay"] = draw(st.booleans())
        if kwargs["decoupled_weight_decay"] and draw(st.booleans()):
            kwargs["corrected_weight_decay"] = draw(st.sampled_from([0.05, 1.0]))
    return kwargs


@SETTINGS
@hypothesis.given(tree=trees(), kwargs=configs())
def test_property_jit_equals_eager(tree, kwargs):
    """``jax.jit(tx.update)`` gives the eager updates and states bit for bit, for every
    dtype and storage of the state: Python-number hyperparameters are the same constants,
    rounded the same way, in both programs.
    """
    params, gradients = tree
    tx = rmsprop(**kwargs)
    grads = [gradients(step) for step in range(3)]
    eager_updates, eager_states = run(tx, params, grads)
    jit_updates, jit_states = run(tx, params, grads, update=jax.jit(tx.update))
    assert_trees_close(jit_updates, eager_updates, what="updates")
    assert_trees_close(jit_states, eager_states, what="states")


@SETTINGS
@hypothesis.given(tree=trees(), kwargs=configs(), batch=st.integers(1, 3))
def test_property_vmap_equals_a_loop(tree, kwargs, batch):
    params, gradients = tree
    tx = rmsprop(**well_conditioned(kwargs))
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
    # Member b's parameters are the tree times b + 1; each member has its own gradients.
    members = [jax.tree.map(lambda p, b=b: p * (b + 1), params) for b in range(batch)]
    grads = [[gradients(10 * b + step) for step in range(2)] for b in range(batch)]

    @jax.jit
    def batched(params, grads_seq):
        state = jax.vmap(tx.init)(params)
        updates = []
        for g in grads_seq:
            u, state = jax.vmap(tx.update)(g, state, params)
            updates.append(u)
        return updates, state

    updates, state = batched(stack(members), [stack([g[i] for g in grads]) for i in range(2)])
    # Not bit for bit: batched code may contract a*b + c into one FMA where the unbatched
    # code does not, a last-place difference (which storage may round to one of its own).
    rtol = rounding_tolerance(kwargs, params, tx.init(params))
    for b in range(batch):
        want_updates, want_states = run(tx, members[b], grads[b], apply=False)
        take = functools.partial(jax.tree.map, lambda x, b=b: x[b])
        assert_trees_close(
            take(updates),
            want_updates,
            rtol,
            leaf_scale=True,
            codes=(2, 1.0),
            what=f"member {b} updates",
        )
        assert_trees_close(
            take(state),
            want_states[-1],
            rtol,
            leaf_scale=True,
            codes=(2, 1.0),
            what=f"member {b} state",
        )


@SETTINGS
@hypothesis.given(tree=trees(), kwargs=configs(), low=st.sampled_from([-30.0, -10.0, -2.0]))
def test_property_state_keeps_dtypes_and_shapes_and_nu_stays_non_negative(tree, kwargs, low):
    params, gradients = tree
    tx = rmsprop(**kwargs)
    state = tx.init(params)
    initial = avals(state)
    config = kwargs["nu_dtype"] if isinstance(kwargs["nu_dtype"], Int8) else None
    for step in range(4):
        updates, state = tx.update(gradients(step, low, 2.0), state, params)
        assert avals(state) == initial
        assert avals(updates) == avals(params)
        assert int(state.count) == step + 1
        for v in nu_values(state, config):
            assert np.all(v >= 0)  # also false for NaN


@SETTINGS
@hypothesis.given(
    tree=trees(dtypes=("float32", "bfloat16", "complex64")),
    kwargs=configs(eps_zero=True, weight_decay=False),
    power=st.integers(-12, 12),
    factor=st.floats(1e-3, 1e3),
)
def test_property_with_eps_zero_the_update_ignores_the_gradients_scale(tree, kwargs, power, factor):
    """ε = 0, v₀ = 0, no weight decay: s = g/√v̂ is homogeneous of degree 0 in g. Scaling
    by a power of two is exact in floating point (and in the 8-bit codes), so the updates
    are equal bit for bit; by any other c > 0 up to rounding (bfloat16 storage: 2⁻⁸ per
    step). Centered is left out of the second: its variance may cancel to rounding noise."""
    params, gradients = tree
    tx = rmsprop(**kwargs)
    grads = [gradients(step, -1.0, 1.0) for step in range(3)]
    reference, _ = run(tx, params, grads)
    c = 2.0**power
    scaled, _ = run(tx, params, [jax.tree.map(lambda g: g * c, g) for g in grads])
    assert_trees_close(scaled, reference, what=f"scaled by 2**{power}")
    if kwargs["centered"]:
        return
    scaled, _ = run(tx, params, [jax.tree.map(lambda g: g * factor, g) for g in grads])
    for s, r in zip(jax.tree.leaves(scaled), jax.tree.leaves(reference), strict=True):
        s, r = np.asarray(s, np.complex128), np.asarray(r, np.complex128)
        tolerance = 3e-2 * np.max(np.abs(r))
        np.testing.assert_allclose(s, r, rtol=3e-2, atol=tolerance, err_msg=f"scaled by {factor}")


@SETTINGS
@hypothesis.given(
    tree=trees(),
    kwargs=configs(momentum=False, centered=False, weight_decay=False),
    low=st.sampled_from([-30.0, -5.0, 0.0]),
    high=st.sampled_from([0.0, 5.0, 30.0]),
)
def test_property_first_step_is_bounded(tree, kwargs, low, high):
    """|u₁| <= η/√(1 - ρ) per coordinate (v₀ = 0, no momentum, not centered): v₁ holds
    (1 - ρ)|g|², so |s₁| = |g|/√((1 - ρ)|g|² + ε) <= 1/√(1 - ρ) (with bias correction
    |s₁| <= 1), per real coordinate with split_complex, else per complex modulus."""
    params, gradients = tree
    kwargs = {**kwargs, "initial_scale": 0.0}
    tx = rmsprop(**kwargs)
    updates, _ = tx.update(gradients(0, low, high), tx.init(params), params)
    rho = float(np.float32(kwargs["decay"]))  # the value the float32 arithmetic sees
    bound = kwargs["learning_rate"] / math.sqrt(1 - rho)
    # The update divides by v as stored in nu_dtype (rounded by up to half its eps, so
    # 1/sqrt(v) grows by up to a quarter of it) and is cast to the update's dtype.
    nu_dtype = kwargs["nu_dtype"]
    narrow = nu_dtype is not None and not isinstance(nu_dtype, Int8)  # int8 steps on f32 v
    nu_rounding = float(jnp.finfo(nu_dtype).eps) / 4 if narrow else 0.0
    for u in jax.tree.leaves(updates):
        rounding = float(jnp.finfo(u.dtype).eps) + nu_rounding
        u = np.asarray(u, np.complex128 if jnp.iscomplexobj(u) else np.float64)
        parts = [u.real, u.imag] if kwargs["split_complex"] else [np.abs(u)]
        for part in parts:
            assert np.all(np.abs(part) <= bound * (1 + 1e-5 + rounding)), np.max(np.abs(part))
