"""A saved and restored state resumes training bit for bit.

Saved with pickle, flax's msgpack or orbax-checkpoint, for every kind of state (``None``
buffers, bfloat16 and 8-bit ``nu`` as ``QuantizedArray``, complex leaves), the state restored
against the target a new process has (a fresh ``tx.init(params)``) is an ``RMSPropState`` of
the same bits, and the steps after it equal those of a run never interrupted. Restored by
orbax without a target, the state is a dict, which ``update`` refuses with a ``TypeError``
whose advice, followed, restores it (docs/checkpointing.md shows it; onto another mesh:
tests/test_sharding.py).
"""

import functools
import pickle
import re

import flax.serialization
import jax
import numpy as np
import optax
import pytest
from helpers import assert_trees_close, run, storage, variants, with_lr

import optax_rmsprop
from optax_rmsprop import RMSPropState
from optax_rmsprop.quantize import QuantizedArray

ocp = pytest.importorskip("orbax.checkpoint", reason="the test extra: pip install -e '.[test]'")

VARIANTS = variants(
    "plain",
    "everything",
    "schedules-momentum-weight_decay_decoupled",
    "centered-momentum-split_complex",
)
# the default storage, bfloat16, and 8-bit codes with stochastic rounding, whose random bits
# come from the step count, so that a lost count would change the steps after the restore
# all_int8: m̄ and b of w in signed 8-bit codes too, each with its own stream of rounding noise
STORAGE = {**storage("default", "bfloat16", "int8"), "all_int8": storage("int8")["int8"]}
STEPS_BEFORE, STEPS_AFTER = 3, 4


def save_pickle(params, state, target, path):
    del target
    path.write_bytes(pickle.dumps(jax.device_get((params, state))))
    return pickle.loads(path.read_bytes())


def save_flax(params, state, target, path):
    path.write_bytes(flax.serialization.to_bytes((params, state)))
    return flax.serialization.from_bytes(target, path.read_bytes())


def save_orbax(params, state, target, path):
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, {"params": params, "state": state})
    with ocp.StandardCheckpointer() as checkpointer:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = checkpointer.restore(path, {"params": abstract[0], "state": abstract[1]})
    return restored["params"], restored["state"]


SAVERS = {"pickle": save_pickle, "flax": save_flax, "orbax": save_orbax}


@functools.cache
def problem(variant, nu):
    """``rmsprop``'s arguments, params with a leaf of 4096 values (8-bit blocks with
    ``"int8"``), a small one and a complex one, and the gradients of every step."""
    mu = {"mu_dtype": "int8"} if nu == "all_int8" else {}
    kwargs = with_lr(VARIANTS[variant], 0.05, nu_dtype=STORAGE[nu], **mu)
    rng = np.random.default_rng(0)

    def tree():
        return {
            "w": rng.normal(size=(64, 64)).astype(np.float32),
            "b": rng.normal(size=5).astype(np.float32),
            "z": (rng.normal(size=3) + 1j * rng.normal(size=3)).astype(np.complex64),
        }

    params = tree()
    return kwargs, params, [tree() for _ in range(STEPS_BEFORE + STEPS_AFTER)]


@pytest.mark.parametrize("saver", SAVERS)
@pytest.mark.parametrize("nu", STORAGE)
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_restored_state_resumes_bit_for_bit(variant, nu, saver, tmp_path):
    kwargs, params, grads = problem(variant, nu)
    tx = optax_rmsprop.rmsprop(**kwargs)
    uninterrupted = run(tx, params, grads)
    before = run(tx, params, grads[:STEPS_BEFORE])

    # The target is what a new process has: a fresh state of the same configuration.
    target = (params, tx.init(params))
    p, state = SAVERS[saver](before.params[-1], before.state, target, tmp_path / "checkpoint")
    assert isinstance(state, RMSPropState)
    assert isinstance(state.nu["w"], QuantizedArray) == ("int8" in nu)
    assert_trees_close(state, before.state, what="restored state ")
    assert_trees_close(p, before.params[-1], what="restored params ")

    tx = optax_rmsprop.rmsprop(**kwargs)  # a new process builds it again
    for i, g in enumerate(grads[STEPS_BEFORE:], start=STEPS_BEFORE):
        u, state = tx.update(g, state, p)
        p = optax.apply_updates(p, u)
        assert_trees_close(u, uninterrupted.updates[i], what=f"updates of step {i + 1} ")
    assert_trees_close(state, uninterrupted.state, what="final state ")
    assert int(state.count) == STEPS_BEFORE + STEPS_AFTER


def test_a_state_restored_without_a_target_is_refused_with_advice_that_works(tmp_path):
    """The promise of the ``TypeError``: its advice, run as written, restores the state."""
    kwargs, params, grads = problem("plain", "int8")
    tx = optax_rmsprop.rmsprop(**kwargs)
    state = run(tx, params, grads[:STEPS_BEFORE]).state
    path = tmp_path / "checkpoint"
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, state)
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(path)
    assert isinstance(restored, dict)
    assert isinstance(restored["nu"]["w"], dict)  # codes and scales, as a dict

    with pytest.raises(TypeError, match="RMSPropState") as refusal:
        tx.update(grads[0], restored, params)
    advice = re.search(r"e\.g\. (.+)\.$", str(refusal.value))
    assert advice, f"the message no longer shows how to restore: {refusal.value}"
    names = {"ocp": ocp, "jax": jax, "path": path, "tx": tx, "params": params}
    followed = eval(advice[1], names)  # the call the message shows, as written
    assert isinstance(followed, RMSPropState)
    assert_trees_close(followed, state)
    tx.update(grads[0], followed, params)  # accepted
