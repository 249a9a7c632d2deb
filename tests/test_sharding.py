"""Scale out: the state lives where its parameters live, on one device or many.

* ``init`` (eager or jitted, automatic or explicit mesh axes) shards every buffer like
  its parameter, the 8-bit ``nu``'s block scales along with its codes, and
  ``optax_rmsprop.sharding.state_shardings`` (and ``jax.eval_shape``) say so up front;
* the compiled step keeps every sharding, holds no collective, and gives the numbers
  of one device;
* ``state_shardings(..., axis="data")`` splits the state over a data-parallel axis
  while the parameters stay replicated (ZeRO-1): the bytes per device fall by the
  axis size and the step still gives the numbers of one device;
* ``jax.vmap`` over an ensemble of parameter sets and over learning rates, sharded;
* an orbax checkpoint saved on one mesh restores onto another and training goes on
  as if uninterrupted;
* two processes joined by ``jax.distributed`` train like one (``examples/multihost.py``).

This pytest process keeps its single CPU device. The checks that need 8 devices run
in one worker process, spawned once for this module with 8 host CPU devices
(``--xla_force_host_platform_device_count=8`` set there before JAX starts): the
``on8_*`` functions below run there, and their assertion errors come back here with
the worker's traceback. Meanwhile this process computes the one-device reference.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib.util
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close, storage, variants, with_lr
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import optax_rmsprop
from optax_rmsprop import quantize
from optax_rmsprop.sharding import device_bytes, state_shardings

ROOT = Path(__file__).resolve().parents[1]
COLLECTIVES = re.compile(
    r"\b(all-gather|all-reduce|reduce-scatter|collective-permute|all-to-all|"
    r"collective-broadcast|ragged-all-to-all)(-start|-done)?\("
)

VARIANTS = variants(
    "plain",
    "centered",
    "momentum",
    "momentum-nesterov-lr_schedule-lr_outside_momentum",
    "bias_correction-eps_outside",
    "maximize-weight_decay_coupled",
    "weight_decay_decoupled-mask_fn",
    "centered-momentum-mu_bfloat16",
    "everything",
    "centered-momentum-nesterov-bias_correction-weight_decay_coupled-initial_scale",
    "momentum-caution",
)
# The variant of the steps compared with one device: every buffer and the params, and
# no schedule and no ε outside the root that would leave the centered variance of a
# bfloat16 v near 0, where one device's last place would move a rounding of v.
ALL_BUFFERS = "centered-momentum-nesterov-bias_correction-weight_decay_coupled-initial_scale"
STORAGE = {**storage("default", "bfloat16", "int8"), "all_int8": storage("int8")["int8"]}
# all_int8: m̄ and b in signed 8-bit codes as well (mu_dtype="int8").

# (shape, sharding on a ("data": 4, "model": 2) mesh). With nu_dtype="int8" the leaves
# of 4096 values or more are 8-bit: blocks of 256 along the last axis, which is whole
# on each device or split into whole blocks.
PARAMS = {
    "dense": {
        "kernel": ((64, 512), P("data", "model")),  # 8-bit, 256 columns per device
        "bias": ((512,), P("model")),  # small: float32 nu
    },
    "head": ((16, 1024), P(None, "model")),  # 8-bit, split along its last axis only
    "scale": ((), P()),
}
# A last axis split into 128 columns per device, inside the 256-value blocks.
SPLIT_INSIDE_BLOCKS = {"w": ((64, 256), P("data", "model")), "b": ((4096,), P(("data", "model")))}


def is_spec(x):
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], P)


def make_params(mesh=None, spec=PARAMS, seed=0):
    """``spec`` filled with normal numbers, sharded on ``mesh`` as it says (or on one
    device)."""
    rng = np.random.default_rng(seed)

    def leaf(shape_spec):
        shape, spec = shape_spec
        value = rng.normal(size=shape).astype(np.float32)
        return jax.device_put(value, NamedSharding(mesh, spec) if mesh else jax.devices()[0])

    return jax.tree.map(leaf, spec, is_leaf=is_spec)


def make_tx(nu_dtype, variant=ALL_BUFFERS, **kwargs):
    if nu_dtype == "all_int8" and "_dtype" not in str(VARIANTS[variant]):
        kwargs = {"mu_dtype": "int8", **kwargs}
    return optax_rmsprop.rmsprop(
        **with_lr(VARIANTS[variant], 0.1), nu_dtype=STORAGE[nu_dtype], **kwargs
    )


def fake_grads(params, i):
    """Deterministic gradients, different at each step, elementwise in the params."""
    return jax.tree.map(lambda p: jnp.sin(3.0 * p + i) + 0.1 * jnp.cos(i * p), params)


def train_step(tx):
    def step(params, state, i):
        updates, state = tx.update(fake_grads(params, i), state, params)
        return optax.apply_updates(params, updates), state, updates

    return step


def train(tx, params, steps=3, step=None):
    """``steps`` steps from ``tx.init(params)``; the final params and state."""
    step = step or jax.jit(train_step(tx))
    state = tx.init(params)
    for i in range(steps):
        params, state, _ = step(params, state, i)
    return params, state


def mesh_of(shape, names, axis_type="auto"):
    types = {"auto": AxisType.Auto, "explicit": AxisType.Explicit}[axis_type]
    return jax.make_mesh(shape, names, axis_types=(types,) * len(names))


def treedef_leaves(prefix, tree):
    """The subtrees of ``tree`` at the leaves of ``prefix``."""
    return jax.tree.structure(prefix).flatten_up_to(tree)


def assert_shardings(tree, expected, what):
    """Each array of ``tree`` is sharded as the array (or the sharding) at its place in
    ``expected``; a QuantizedArray's codes and scales count as two arrays."""
    got = jax.tree.leaves_with_path(tree)
    want = [getattr(x, "sharding", x) for x in jax.tree.leaves(expected)]
    assert len(got) == len(want), f"{what}: {len(got)} arrays, {len(want)} expected"
    for (path, x), sharding in zip(got, want, strict=True):
        assert x.sharding.is_equivalent_to(sharding, x.ndim), (
            f"{what}{jax.tree_util.keystr(path)}: {x.sharding} is not {sharding}"
        )


def collectives(compiled) -> list[str]:
    return sorted({m.group(1) for m in COLLECTIVES.finditer(compiled.as_text())})


# Equal to float32 rounding: a partitioned program may round a few ulps apart from the
# one-device one (8-bit codes must match exactly).
assert_close = functools.partial(assert_trees_close, rtol=1e-5, atol=2e-6)


# ---------------------------------------------------------------------------
# The worker with 8 devices.


def _start_worker_with_8_devices():
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = " ".join(
        [
            os.environ.get("XLA_FLAGS", ""),
            "--xla_force_host_platform_device_count=8",
            "--xla_backend_optimization_level=0",  # compiles faster; tiny arrays anyway
        ]
    )
    warnings.simplefilter("error")  # as pytest's filterwarnings here
    assert jax.device_count() == 8, jax.devices()


@pytest.fixture(scope="module")
def on8():
    """``on8(fn, *args)`` starts ``fn(*args)`` in the 8-device worker: a future."""
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker_with_8_devices,
    )
    yield lambda fn, *args: pool.submit(fn, *args)
    pool.shutdown(cancel_futures=True)


def result(future):
    return future.result(timeout=300)


# ---------------------------------------------------------------------------
# init: every buffer sharded like its parameter.


def expected_state(tx, params, mesh):
    """``tx.init(params)``'s shapes, each buffer sharded like its parameter (an 8-bit
    nu's codes and block scales alike) and the step count replicated."""
    shapes = jax.eval_shape(tx.init, params)

    def like_params(buffers):
        return jax.tree.map(lambda p, b: jax.tree.map(lambda _: p.sharding, b), params, buffers)

    shardings = shapes._replace(
        count=NamedSharding(mesh, P()),
        **{
            name: like_params(getattr(shapes, name))
            for name in ("nu", "mu", "momentum")
            if getattr(shapes, name) is not None
        },
    )
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, shardings
    )


def on8_init_shards_like_params(nu_dtype, axis_type):
    mesh = mesh_of((4, 2), ("data", "model"), axis_type)
    params = make_params(mesh)
    txs = {name: make_tx(nu_dtype, name) for name in VARIANTS}
    jitted = jax.jit(lambda p: {name: tx.init(p) for name, tx in txs.items()})(params)
    for name, tx in txs.items():
        expected = expected_state(tx, params, mesh)
        is_int8 = lambda x: isinstance(x, quantize.QuantizedArray)  # noqa: E731
        n_int8 = sum(map(is_int8, jax.tree.leaves(expected.nu, is_leaf=is_int8)))
        assert n_int8 == (2 if "int8" in nu_dtype else 0), f"{name}: {n_int8} 8-bit leaves"

        planned = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
            expected,
            state_shardings(tx, params, mesh),
        )
        assert_shardings(planned, expected, f"{name}: state_shardings")
        eager = tx.init(params)
        assert eager.count.sharding.is_fully_replicated  # uncommitted, on one device
        assert_shardings(eager._replace(count=None), expected._replace(count=None), name)
        assert_shardings(jitted[name], expected, f"{name}: jitted")
        assert_trees_close(eager, jitted[name], what=f"{name}: eager vs jitted")

        # Abstract initialisation: under explicit axes the shapes carry the shardings.
        if axis_type == "explicit":
            on_mesh = jax.tree.map(  # eval_shape leaves a replicated scalar's sharding out
                lambda x: jax.ShapeDtypeStruct(
                    x.shape,
                    x.dtype,
                    sharding=NamedSharding(mesh, x.sharding.spec if x.sharding else P()),
                ),
                jax.eval_shape(tx.init, params),
            )
            assert_shardings(on_mesh, expected, f"{name}: eval_shape")


@pytest.mark.slow  # a worker process with 8 devices, or two processes
@pytest.mark.parametrize("axis_type", ["auto", "explicit"])
@pytest.mark.parametrize("nu_dtype", STORAGE)
def test_init_shards_state_like_params_in_every_variant(on8, nu_dtype, axis_type):
    """Eager and jitted init, state_shardings and (explicit axes) jax.eval_shape."""
    result(on8(on8_init_shards_like_params, nu_dtype, axis_type))


# ---------------------------------------------------------------------------
# The step: shardings kept, no collective, the numbers of one device.


def on8_steps(nu_dtype, axis_type, spec, variant=ALL_BUFFERS):
    """3 compiled steps on the mesh; the collectives in the step, and each step's inputs
    and outputs (checked to be sharded as at the start)."""
    mesh = mesh_of((4, 2), ("data", "model"), axis_type)
    tx = make_tx(nu_dtype, variant)
    params = make_params(mesh, spec)
    state = initial = tx.init(params)
    compiled = jax.jit(train_step(tx)).lower(params, state, 0).compile()
    history = []
    for i in range(3):
        inputs = jax.device_get((params, state))
        params, state, updates = compiled(params, state, i)
        history.append((inputs, jax.device_get((params, state, updates))))
    assert_shardings(params, make_params(mesh, spec), "params")
    assert_shardings(updates, params, "updates")
    assert_shardings(state._replace(count=None), initial._replace(count=None), "state")
    for (path, p), v in zip(
        jax.tree.leaves_with_path(params), treedef_leaves(params, state.nu), strict=True
    ):
        v = v.codes if isinstance(v, quantize.QuantizedArray) else v
        assert v.sharding.is_equivalent_to(p.sharding, p.ndim), f"nu{jax.tree_util.keystr(path)}"
    return collectives(compiled), history


def assert_steps_match_one_device(tx, history):
    """Each sharded step equals the one-device step from the same inputs, to float32
    rounding; an 8-bit code may be its neighbour, where a value sits within a rounding
    of the boundary between two codes (rare: at most 1 in 1000 here)."""
    step = jax.jit(train_step(tx))
    for i, (inputs, got) in enumerate(history):
        expected = step(*inputs, i)
        assert_close(got, expected, codes=(1, 1e-3), what=f"step {i}")


@pytest.mark.slow  # a worker process with 8 devices, or two processes
@pytest.mark.parametrize(
    "nu_dtype, axis_type",
    [(nu, "auto") for nu in STORAGE]
    + [("default", "explicit"), ("int8", "explicit"), ("all_int8", "explicit")],
)
def test_step_keeps_shardings_without_collectives(on8, nu_dtype, axis_type):
    """The variant with every buffer and feature: 3 steps, each against one device."""
    future = on8(on8_steps, nu_dtype, axis_type, PARAMS)
    found, history = result(future)
    assert not found, f"the compiled step holds {found}"
    assert_steps_match_one_device(make_tx(nu_dtype), history)


CAUTION = "momentum-caution"


@pytest.mark.slow  # a worker process with 8 devices, or two processes
@pytest.mark.parametrize("nu_dtype", ["default", "int8"])
def test_caution_reduces_across_shards_and_equals_one_device(on8, nu_dtype):
    """caution's mask mean is the one place where a leaf's elements mix: a split leaf
    takes an all-reduce of one scalar per step (its only collective), and the steps equal
    one device's."""
    found, history = result(on8(on8_steps, nu_dtype, "auto", PARAMS, CAUTION))
    assert found == ["all-reduce"], found
    assert_steps_match_one_device(make_tx(nu_dtype, CAUTION), history)


@pytest.mark.slow  # a worker process with 8 devices, or two processes
def test_8bit_leaf_split_inside_its_blocks_still_steps(on8):
    """Cut blocks are gathered: the step communicates, but it runs (explicit axes too),
    keeps the codes sharded like their leaf, and matches one device."""
    future = on8(on8_steps, "int8", "explicit", SPLIT_INSIDE_BLOCKS)
    found, history = result(future)
    assert found, "the cut blocks should be gathered"
    assert_steps_match_one_device(make_tx("int8"), history)


# ---------------------------------------------------------------------------
# ZeRO-1: replicated parameters, the state split over the data axis.


def on8_zero1(nu_dtype):
    mesh = mesh_of((8,), ("data",))
    replicated = NamedSharding(mesh, P())
    tx = make_tx(nu_dtype)
    params = jax.device_put(jax.device_get(make_params()), replicated)

    whole = state_shardings(tx, params, mesh)
    split = state_shardings(tx, params, mesh, axis="data")
    shapes = jax.eval_shape(tx.init, params)
    unsplit = 0  # bytes that no dimension lets 8 devices share: the count, "scale"'s
    for (path, s), w, shape in zip(
        jax.tree.leaves_with_path(split),
        jax.tree.leaves(whole),
        jax.tree.leaves(shapes),
        strict=True,
    ):
        where = jax.tree_util.keystr(path)
        assert all(e is None for e in w.spec), where  # replicated, like the params
        if shape.shape and shape.shape[0] % 8 == 0:
            assert s.spec[0] == "data", f"{where}: {s.spec}"
        else:
            assert all(e is None for e in s.spec), f"{where}: {s.spec}"
            unsplit += shape.size * shape.dtype.itemsize

    state = jax.jit(tx.init, out_shardings=split)(params)
    full_state = jax.jit(tx.init, out_shardings=whole)(params)
    assert_shardings(state, split, "ZeRO state")
    assert device_bytes(full_state) - unsplit == 8 * (device_bytes(state) - unsplit)

    # The gradients arrive replicated (as after a data-parallel mean); each device
    # updates its part of the state, and the updates are gathered into the parameters.
    step = jax.jit(train_step(tx), out_shardings=(replicated, split, replicated))
    history = []
    for i in range(3):
        inputs = jax.device_get((params, state))
        params, state, updates = step(params, state, i)
        history.append((inputs, jax.device_get((params, state, updates))))
    assert_shardings(state, split, "ZeRO state after steps")
    assert_shardings(params, jax.tree.map(lambda _: replicated, params), "params")
    return device_bytes(full_state), device_bytes(state), history


@pytest.mark.slow  # a worker process with 8 devices, or two processes
@pytest.mark.parametrize("nu_dtype", ["default", "int8", "all_int8"])
def test_zero1_divides_state_bytes_per_device_by_axis_size(on8, nu_dtype):
    future = on8(on8_zero1, nu_dtype)
    whole, split, history = result(future)
    assert split < whole / 7.9, (whole, split)
    assert_steps_match_one_device(make_tx(nu_dtype), history)


# ---------------------------------------------------------------------------
# vmap: ensembles and sweeps, sharded.


def ensemble(members=8, seed=1):
    rng = np.random.default_rng(seed)
    return {
        "w": rng.normal(size=(members, 64, 128)).astype(np.float32),
        "b": rng.normal(size=(members, 128)).astype(np.float32),
    }


def on8_vmap_over_ensemble(nu_dtype):
    mesh = mesh_of((8,), ("data",))
    members = NamedSharding(mesh, P("data"))  # one member per device
    tx = make_tx(nu_dtype)
    params = jax.device_put(ensemble(), members)
    state = jax.vmap(tx.init)(params)
    for tree, what in [(state, "eager"), (jax.jit(jax.vmap(tx.init))(params), "jitted")]:
        for path, x in jax.tree.leaves_with_path(tree._replace(count=None)):
            assert x.sharding.is_equivalent_to(members, x.ndim), f"{what}{path}: {x.sharding}"

    step = jax.jit(jax.vmap(train_step(tx), in_axes=(0, 0, None)))
    compiled = step.lower(params, state, 0).compile()
    assert not collectives(compiled), collectives(compiled)
    for i in range(3):
        params, state, _ = compiled(params, state, i)
    return jax.device_get(params)


@pytest.mark.slow  # a worker process with 8 devices, or two processes
@pytest.mark.parametrize("nu_dtype", ["default", "int8", "all_int8"])
def test_vmap_over_an_ensemble_keeps_each_member_on_its_device(on8, nu_dtype):
    future = on8(on8_vmap_over_ensemble, nu_dtype)
    tx = make_tx(nu_dtype)
    step = jax.jit(train_step(tx))
    expected = [
        train(tx, jax.tree.map(lambda x, k=k: jnp.asarray(x[k]), ensemble()), step=step)[0]
        for k in range(8)
    ]
    got = result(future)
    for k in range(8):
        member = jax.tree.map(lambda x, k=k: x[k], got)
        if nu_dtype != "all_int8":
            assert_close(member, expected[k], what=f"member {k}")
            continue
        # 8-bit b: where the two compilations round a value differently by a last place
        # at a code's edge, b takes the next code (1/8 of it), and the parameter moves by
        # the learning rate (0.1) times that: as rare as in the steps' codes (at most 1e-3
        # of the values), and then by at most 0.1 / 8 here (3e-5 seen).
        for (path, a), e in zip(
            jax.tree.leaves_with_path(member), jax.tree.leaves(expected[k]), strict=True
        ):
            a, e = np.asarray(a), np.asarray(e)
            off = np.abs(a - e) > 2e-6 + 1e-5 * np.abs(e)
            assert off.mean() <= 1e-3 and np.all(np.abs(a - e) <= 0.1 / 8), (k, path)


LEARNING_RATES = np.geomspace(1e-3, 1e-1, 8).astype(np.float32)


def sweep_run(params, learning_rate):
    # float32 nu: an 8-bit code flipped by one ulp between the batched and the unbatched
    # program moves v by 9 % and the trajectories apart; int8 sharding is tested above.
    return train(optax_rmsprop.rmsprop(learning_rate, momentum=0.9), params)[0]


def on8_vmap_over_learning_rates():
    mesh = mesh_of((8,), ("data",))
    lrs = jax.device_put(LEARNING_RATES, NamedSharding(mesh, P("data")))
    params = jax.device_put(jax.device_get(make_params()), NamedSharding(mesh, P()))
    swept = jax.jit(jax.vmap(sweep_run, in_axes=(None, 0)))(params, lrs)
    for path, x in jax.tree.leaves_with_path(swept):
        assert x.sharding.spec[0] == "data", f"{path}: {x.sharding}"  # one rate per device
    return jax.device_get(swept)


@pytest.mark.slow  # a worker process with 8 devices, or two processes
def test_vmap_over_learning_rates_runs_one_per_device(on8):
    future = on8(on8_vmap_over_learning_rates)
    run = jax.jit(sweep_run)
    expected = [run(make_params(), lr) for lr in LEARNING_RATES]
    got = result(future)
    for k, lr in enumerate(LEARNING_RATES):
        assert_close(jax.tree.map(lambda x, k=k: x[k], got), expected[k], what=f"lr {lr}")


# ---------------------------------------------------------------------------
# Checkpoints: save on one mesh, restore onto another, train on.


def on8_checkpoint_resharded(directory):
    import orbax.checkpoint as ocp

    tx = make_tx("int8")
    step = jax.jit(train_step(tx))
    # Saved from ("data": 4, "model": 2), restored onto ("data": 2, "model": 4).
    before, after = mesh_of((4, 2), ("data", "model")), mesh_of((2, 4), ("data", "model"))
    params = make_params(before)
    state = tx.init(params)
    for i in range(6):
        if i == 3:
            with ocp.StandardCheckpointer() as checkpointer:
                checkpointer.save(Path(directory) / "step3", {"params": params, "state": state})
        params, state, _ = step(params, state, i)

    target_params = jax.tree.map(
        lambda x, ss: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(after, ss[1])),
        make_params(before),
        PARAMS,
        is_leaf=is_spec,
    )
    state_target = state_shardings(tx, target_params, after)
    target_state = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        jax.eval_shape(tx.init, target_params),
        state_target,
    )
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(
            Path(directory) / "step3", {"params": target_params, "state": target_state}
        )
    resumed_params, resumed_state = restored["params"], restored["state"]
    assert_shardings(resumed_state, state_target, "restored")
    for i in range(3, 6):
        resumed_params, resumed_state, _ = step(resumed_params, resumed_state, i)
    assert_shardings(resumed_params, target_params, "resumed params")
    assert_shardings(resumed_state, state_target, "resumed state")
    assert_close(resumed_params, params, what="params")
    assert_close(resumed_state, state, what="state")


@pytest.mark.slow  # a worker process with 8 devices, or two processes
def test_checkpoint_saved_on_one_mesh_resumes_on_another(on8, tmp_path):
    result(on8(on8_checkpoint_resharded, str(tmp_path)))


# ---------------------------------------------------------------------------
# Two processes, as on two hosts.


def load_example():
    spec = importlib.util.spec_from_file_location("multihost", ROOT / "examples" / "multihost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a worker process with 8 devices, or two processes
def test_two_processes_train_like_one(tmp_path):
    """examples/multihost.py on 2 processes (1 CPU device each) joined by
    jax.distributed: both end with the same parameters, those of a 1-device run."""
    port, steps = free_port(), 10
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, str(ROOT / "examples" / "multihost.py"), f"--steps={steps}"]
    command += [f"--coordinator=127.0.0.1:{port}", "--num-processes=2"]
    processes = [
        subprocess.Popen(
            [*command, f"--process-id={i}", f"--out={tmp_path / f'params{i}.npz'}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        expected = load_example().train(steps, verbose=False)  # here: one device
        outputs = [p.communicate(timeout=120)[0] for p in processes]
    finally:
        for p in processes:
            p.kill()
    for i, (p, out) in enumerate(zip(processes, outputs, strict=True)):
        assert p.returncode == 0, f"process {i} failed:\n{out}"
    assert "2 process(es), 2 device(s)" in outputs[0], outputs[0]

    finals = [dict(np.load(tmp_path / f"params{i}.npz")) for i in range(2)]
    for name in expected:
        np.testing.assert_array_equal(finals[0][name], finals[1][name], err_msg=name)
        np.testing.assert_allclose(finals[0][name], expected[name], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# state_shardings and device_bytes on this process's one device.


def test_state_shardings_of_a_chain_on_one_device():
    mesh = mesh_of((1,), ("data",))
    params = {"w": jnp.zeros((4, 6)), "b": jnp.zeros(5), "frozen": None}
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax_rmsprop.rmsprop(0.1, momentum=0.9))
    whole = state_shardings(tx, params, mesh)
    split = state_shardings(tx, params, mesh, axis="data")
    assert jax.tree.structure(whole) == jax.tree.structure(jax.eval_shape(tx.init, params))
    assert all(all(e is None for e in s.spec) for s in jax.tree.leaves(whole))
    assert split[1].nu["w"].spec == P("data", None)
    assert split[1].momentum["b"].spec == P("data")
    assert split[1].count.spec == P()
    state = jax.jit(tx.init, out_shardings=split)(params)
    assert device_bytes(state) == 4 * (24 + 5) * 2 + 4


def test_state_shardings_keeps_an_axis_already_used_and_skips_odd_sizes():
    mesh = mesh_of((1, 1), ("data", "model"))
    params = {
        "w": jax.ShapeDtypeStruct((4, 6), jnp.float32, sharding=NamedSharding(mesh, P("data"))),
        "scalar": jax.ShapeDtypeStruct((), jnp.float32),
    }
    split = state_shardings(optax_rmsprop.rmsprop(0.1), params, mesh, axis=("data", "model"))
    assert split.nu["w"].spec == P("data", None)  # already split over "data"
    assert split.nu["scalar"].spec == P()
    split = state_shardings(optax_rmsprop.rmsprop(0.1), params, mesh, axis="model")
    assert split.nu["w"].spec == P("data", "model")


def test_state_shardings_rejects_an_axis_the_mesh_lacks():
    mesh = mesh_of((1,), ("data",))
    other = mesh_of((1,), ("model",))
    params = {"w": jax.device_put(jnp.zeros((4, 6)), NamedSharding(other, P("model")))}
    with pytest.raises(ValueError, match="'model'"):
        state_shardings(optax_rmsprop.rmsprop(0.1), params, mesh)
    with pytest.raises(ValueError, match="axis: .* has no axis 'model'"):
        state_shardings(optax_rmsprop.rmsprop(0.1), {"w": jnp.zeros(4)}, mesh, axis="model")


def test_device_bytes_needs_placed_arrays():
    placed = NamedSharding(mesh_of((1,), ("x",)), P())
    assert device_bytes(jax.ShapeDtypeStruct((3, 4), jnp.bfloat16, sharding=placed)) == 24
    with pytest.raises(ValueError, match="no sharding"):
        device_bytes(jax.ShapeDtypeStruct((3, 4), jnp.float32))
