"""Data-parallel training with optax_rmsprop, on one process or on many hosts.

The same code runs on a laptop, on several processes of one machine (the test suite
runs it so, on CPU) and on a multi-host TPU or GPU cluster. Each process feeds its
own slice of the global batch; the parameters are replicated, XLA averages the
gradients across processes, and the optimizer state is split over the data axis
(ZeRO-1, ``optax_rmsprop.sharding.state_shardings``), so each device keeps
1/(number of devices) of it::

    # one process, all its local devices
    python examples/multihost.py

    # two processes on this machine (CPU collectives over gloo)
    python examples/multihost.py --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 0 &
    python examples/multihost.py --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 1

    # a cluster: start it on every host (Cloud TPU, SLURM and Open MPI jobs need no
    # flags, jax.distributed.initialize finds its peers; elsewhere pass the three flags)
    python examples/multihost.py --cluster

Process 0 prints the losses; every process ends with the same parameters, equal (to
float32 rounding) to those of a run on a single device (tests/test_sharding.py checks
this with two processes).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import optax_rmsprop
from optax_rmsprop.sharding import device_bytes, state_shardings

GLOBAL_BATCH, FEATURES, HIDDEN = 64, 16, 256


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed regression problem: every process builds the same global batch."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(GLOBAL_BATCH, FEATURES)).astype(np.float32)
    y = np.sin(x @ rng.normal(size=(FEATURES, 1))).astype(np.float32)
    return x, y


def init_params(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w1": (rng.normal(size=(FEATURES, HIDDEN)) / np.sqrt(FEATURES)).astype(np.float32),
        "b1": np.zeros(HIDDEN, np.float32),
        "w2": (rng.normal(size=(HIDDEN, 1)) / np.sqrt(HIDDEN)).astype(np.float32),
        "b2": np.zeros(1, np.float32),
    }


def loss_fn(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    hidden = jax.nn.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)


def train(steps: int = 20, nu_dtype: Any = None, verbose: bool = True) -> dict[str, np.ndarray]:
    """Trains on all devices of all processes; returns the final parameters."""
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated = NamedSharding(mesh, P())
    tx = optax_rmsprop.rmsprop(3e-3, momentum=0.9, centered=True, nu_dtype=nu_dtype)

    # Every process holds the whole (small) parameter tree; arrays span all processes.
    params = {
        name: jax.make_array_from_callback(value.shape, replicated, lambda index, v=value: v[index])
        for name, value in init_params().items()
    }
    state_sharding = state_shardings(tx, params, mesh, axis="data")
    state = jax.jit(tx.init, out_shardings=state_sharding)(params)

    # This process's rows of the global batch.
    x, y = make_data()
    rows = GLOBAL_BATCH // jax.process_count()
    local = slice(jax.process_index() * rows, (jax.process_index() + 1) * rows)
    batch = NamedSharding(mesh, P("data"))
    x = jax.make_array_from_process_local_data(batch, x[local], x.shape)
    y = jax.make_array_from_process_local_data(batch, y[local], y.shape)

    @functools.partial(
        jax.jit,
        out_shardings=(replicated, state_sharding, replicated),
        donate_argnums=(0, 1),
    )
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    if verbose and jax.process_index() == 0:
        print(
            f"{jax.process_count()} process(es), {jax.device_count()} device(s); optimizer "
            f"state: {optax_rmsprop.state_size(tx, params).state_bytes} bytes, "
            f"{device_bytes(state)} per device"
        )
    for i in range(steps):
        params, state, loss = step(params, state, x, y)
        if verbose and jax.process_index() == 0 and (i % 5 == 4 or i == steps - 1):
            print(f"step {i + 1:3d}  loss {float(loss):.6f}")
    # The parameters are replicated: this process's copy is the whole tree.
    return {name: np.asarray(value.addressable_data(0)) for name, value in params.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", help="host:port of process 0, e.g. 127.0.0.1:12355")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--cluster", action="store_true", help="let JAX detect the cluster")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--nu-dtype", default=None, help="e.g. bfloat16 or int8")
    parser.add_argument("--out", type=Path, help="save the final parameters here (.npz)")
    args = parser.parse_args(argv)

    if args.coordinator or args.cluster:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    params = train(args.steps, args.nu_dtype)
    if args.out:
        np.savez(args.out, **params)
    if args.coordinator or args.cluster:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
