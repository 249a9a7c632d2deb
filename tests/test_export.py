"""The jitted step lowers for GPUs and TPUs with nothing that ties it to the CPU.

No accelerator runs in CI, so ``jax.export`` lowers ``tx.update`` (under ``jax.jit``, with
params) for the platforms ``cuda``, ``rocm`` and ``tpu`` from this CPU, for every variant of
the rule and every state dtype, and for each preset, and the StableHLO it produces is searched
for what would only run on (or call back into) the host: a custom call other than a sharding
annotation, a Python callback, host memory or host compute, a side-effect token. The negative
controls show that the search finds a host callback and a CPU-only (LAPACK) custom call.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import STORAGE, preset_makers, variants, with_lr
from jax import export
from jax.experimental import io_callback

import optax_rmsprop
from optax_rmsprop import quantize

PLATFORMS = ("cuda", "rocm", "tpu")

# Custom calls that only annotate sharding: every backend's SPMD partitioner handles them.
PORTABLE_CUSTOM_CALLS = {"Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape"}
CUSTOM_CALL = re.compile(r"custom_call\s*@\"?([\w.$-]+)|call_target_name\s*=\s*\"([^\"]+)\"")
HOST = re.compile(r"callback|pinned_host|unpinned_host|_xla_compute_type|_xla_stream_annotation")
TOKEN = re.compile(r"!stablehlo\.token|!mhlo\.token")


def cpu_ties(module: str) -> list[str]:
    """What in a StableHLO module would keep it from running on an accelerator alone."""
    targets = {a or b for a, b in CUSTOM_CALL.findall(module)}
    found = [f"custom_call {t}" for t in sorted(targets - PORTABLE_CUSTOM_CALLS)]
    found += sorted({f"host: {m}" for m in HOST.findall(module)})
    found += sorted({f"token: {m}" for m in TOKEN.findall(module)})
    return found


# The variants that change the compiled step's shape (the others only change constants);
# "everything" has every flag and every hyperparameter a schedule.
VARIANTS = variants(
    "plain",
    "eps_outside",
    "initial_scale",
    "centered",
    "bias_correction",
    "momentum",
    "momentum-nesterov",
    "momentum-lr_outside_momentum",
    "momentum-nesterov-lr_schedule-lr_outside_momentum",
    "weight_decay_coupled",
    "weight_decay_decoupled-mask_fn",
    "maximize",
    "split_complex",
    "schedules-momentum-weight_decay_decoupled",
    "everything",
)
STATE_DTYPES = {
    "float32": {},
    "bfloat16": dict(nu_dtype=jnp.bfloat16, mu_dtype=jnp.bfloat16),
    "int8": dict(nu_dtype=STORAGE["int8"]),  # stochastic rounding
    "int8_nearest": dict(nu_dtype=STORAGE["int8-nearest"]),
}
# every variant with every state dtype; int8 with rounding to nearest once, with everything on
CASES = {
    f"{v}-{d}": (VARIANTS[v], STATE_DTYPES[d])
    for v in VARIANTS
    for d in STATE_DTYPES
    if d != "int8_nearest" or v == "everything"
}


def make_params():
    """A 64 x 64 float32 matrix (int8 quantizes it: 4096 values), a bfloat16 vector, a complex
    vector (split into (re, im) pairs by split_complex) and a float32 scalar."""
    rng = np.random.default_rng(0)
    return {
        "w": jnp.asarray(rng.normal(size=(64, 64)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=64), jnp.bfloat16),
        "z": jnp.asarray(rng.normal(size=8) + 1j * rng.normal(size=8), jnp.complex64),
        "s": jnp.float32(0.5),
    }


@pytest.mark.parametrize("variant, dtype", CASES.values(), ids=CASES.keys())
def test_the_jitted_step_lowers_for_accelerators_without_cpu_ties(variant, dtype):
    tx = optax_rmsprop.rmsprop(**with_lr(variant, 0.01, **dtype))
    params = make_params()
    state = tx.init(params)
    if dtype.get("nu_dtype") is not None and dtype["nu_dtype"] != jnp.bfloat16:
        assert isinstance(state.nu["w"], quantize.QuantizedArray)  # the 8-bit path is exported

    exported = export.export(jax.jit(tx.update), platforms=PLATFORMS)(params, state, params)

    assert exported.platforms == PLATFORMS
    assert exported.ordered_effects == () and exported.unordered_effects == ()
    # it is the step: the inputs and outputs of tx.update, leaf for leaf
    expected_out = jax.eval_shape(tx.update, params, state, params)
    assert exported.in_tree == jax.tree.structure(((params, state, params), {}))
    assert exported.out_tree == jax.tree.structure(expected_out)
    assert [(a.shape, a.dtype) for a in exported.out_avals] == [
        (a.shape, a.dtype) for a in jax.tree.leaves(expected_out)
    ]
    module = exported.mlir_module()
    assert "stablehlo.rsqrt" in module or "stablehlo.sqrt" in module  # the rule is in it
    assert cpu_ties(module) == []


# The presets add optax's own transformations (gluon's clipping, for one) around the rule.
PRESETS = preset_makers()


@pytest.mark.parametrize("make", PRESETS.values(), ids=PRESETS.keys())
def test_the_presets_lower_for_accelerators_without_cpu_ties(make):
    tx = make()
    params = make_params()
    del params["z"]  # MXNet, Keras, Paddle, Chainer have no complex parameters
    exported = export.export(jax.jit(tx.update), platforms=PLATFORMS)(
        params, tx.init(params), params
    )
    assert exported.ordered_effects == () and exported.unordered_effects == ()
    assert cpu_ties(exported.mlir_module()) == []


def _pure_callback(x):
    return jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x)


def _debug_callback(x):
    jax.debug.callback(print, x)
    return x + 1


def _io_callback(x):
    return io_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x)


def _lapack(x):  # on the CPU, eigh is a custom call into LAPACK
    return jnp.linalg.eigh(jnp.outer(x, x))[0]


@pytest.mark.parametrize(
    "function, found",
    [
        (_pure_callback, "callback"),
        (_debug_callback, "callback"),
        (_io_callback, "callback"),
        (_lapack, "custom_call lapack"),
    ],
    ids=["pure_callback", "debug_callback", "io_callback", "lapack"],
)
def test_the_search_finds_host_callbacks_and_cpu_custom_calls(function, found):
    """Negative controls: each of these is CPU-bound, and the search says so."""
    x = jnp.arange(4.0)
    module = jax.jit(function).lower(x).as_text()  # lowered for this CPU
    ties = cpu_ties(module)
    assert any(found in tie for tie in ties), ties
    # export itself refuses a host callback for an accelerator (or, should it ever accept
    # one, the search above would flag its module)
    if found == "callback":
        try:
            exported = export.export(jax.jit(function), platforms=("cuda",))(x)
        except (NotImplementedError, ValueError):
            pass
        else:
            assert cpu_ties(exported.mlir_module()) != []


def test_the_search_passes_sharding_annotations():
    """A sharding constraint lowers to a custom call that every backend handles."""
    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))

    def constrained(x):
        return jax.lax.with_sharding_constraint(x * 2, sharding)

    module = export.export(jax.jit(constrained), platforms=PLATFORMS)(jnp.arange(4.0))
    text = module.mlir_module()
    assert "sharding_constraint" in text or "custom_call @Sharding" in text
    assert cpu_ties(text) == []
