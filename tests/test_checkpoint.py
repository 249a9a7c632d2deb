"""The state saved with orbax-checkpoint and restored resumes training bit for bit.

Restored without a target, orbax gives plain dicts, which ``update`` refuses; with the target
``jax.tree.map(ocp.utils.to_shape_dtype_struct, tx.init(params))`` it gives the
``RMSPropState`` back, ``None`` buffers and 8-bit ``nu`` (``QuantizedArray``) included
(docs/checkpointing.md shows it; onto another mesh: tests/test_sharding.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_rmsprop
from optax_rmsprop.quantize import QuantizedArray

ocp = pytest.importorskip("orbax.checkpoint", reason="the test extra: pip install -e '.[test]'")

VARIANTS = {
    "plain": {},
    "centered_momentum": {"centered": True, "momentum": 0.9},
    # w has 8192 values (>= Int8().min_size): 8-bit codes with stochastic rounding, whose
    # random bits come from the step count, so a lost count would change the next steps.
    "nu_int8": {"nu_dtype": "int8", "momentum": 0.9},
    # m̄ and b of w in signed 8-bit codes too, each with its own stream of rounding noise.
    "all_int8": {"nu_dtype": "int8", "mu_dtype": "int8", "centered": True, "momentum": 0.9},
}
STEPS_BEFORE, STEPS_AFTER = 4, 4


def make_problem():
    key_w, key_x, key_y = jax.random.split(jax.random.key(0), 3)
    params = {"w": 0.1 * jax.random.normal(key_w, (64, 128)), "b": jnp.zeros(128)}
    x = jax.random.normal(key_x, (STEPS_BEFORE + STEPS_AFTER, 16, 64))
    y = jax.random.normal(key_y, (STEPS_BEFORE + STEPS_AFTER, 16, 128))
    return params, x, y


def make_step(tx):
    def loss(params, x, y):
        return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)

    @jax.jit
    def step(params, state, x, y):
        updates, state = tx.update(jax.grad(loss)(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    return step


def assert_bitwise_equal(got, expected):
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for (path, a), b in zip(jax.tree.leaves_with_path(got), jax.tree.leaves(expected), strict=True):
        assert a.dtype == b.dtype, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), jax.tree_util.keystr(path))


@pytest.mark.parametrize("variant", VARIANTS)
def test_restored_state_resumes_bit_exactly(variant, tmp_path):
    tx = optax_rmsprop.rmsprop(1e-2, **VARIANTS[variant])
    step = make_step(tx)
    params, x, y = make_problem()
    state = tx.init(params)
    for i in range(STEPS_BEFORE):
        params, state = step(params, state, x[i], y[i])
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "ckpt", {"params": params, "state": state})
    for i in range(STEPS_BEFORE, STEPS_BEFORE + STEPS_AFTER):
        params, state = step(params, state, x[i], y[i])

    fresh_params, _, _ = make_problem()
    target = jax.tree.map(
        ocp.utils.to_shape_dtype_struct, {"params": fresh_params, "state": tx.init(fresh_params)}
    )
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(tmp_path / "ckpt", target)
    resumed_params, resumed_state = restored["params"], restored["state"]
    assert isinstance(resumed_state, optax_rmsprop.RMSPropState)
    assert int(resumed_state.count) == STEPS_BEFORE
    assert (resumed_state.mu is None) == ("centered" not in VARIANTS[variant])
    assert (resumed_state.momentum is None) == ("momentum" not in VARIANTS[variant])
    assert isinstance(resumed_state.nu["w"], QuantizedArray) == ("int8" in variant)
    if variant == "all_int8":
        assert isinstance(resumed_state.mu["w"], QuantizedArray)
        assert isinstance(resumed_state.momentum["w"], QuantizedArray)
    for i in range(STEPS_BEFORE, STEPS_BEFORE + STEPS_AFTER):
        resumed_params, resumed_state = step(resumed_params, resumed_state, x[i], y[i])
    assert_bitwise_equal(resumed_params, params)
    assert_bitwise_equal(resumed_state, state)


def test_restored_without_a_target_is_a_dict_that_update_refuses(tmp_path):
    tx = optax_rmsprop.rmsprop(1e-2, nu_dtype="int8")
    params, x, y = make_problem()
    state = tx.init(params)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "ckpt", {"params": params, "state": state})
        restored = checkpointer.restore(tmp_path / "ckpt")
    assert isinstance(restored["state"], dict)
    assert isinstance(restored["state"]["nu"]["w"], dict)  # codes and scales, as a dict
    with pytest.raises(TypeError, match="RMSPropState"):
        make_step(tx)(restored["params"], restored["state"], x[0], y[0])
