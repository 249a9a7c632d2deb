"""Soak: a million RMSProp steps on a small model, checked as they go.

A two-layer tanh MLP (4 -> 32 -> 1, 193 parameters) fits ``sin(x·a) + x₀x₁/2`` from a
fresh minibatch of 64 points per step, drawn from the step number (so a run is
reproducible). The optimizer has every moving part: a warmup-cosine learning-rate
schedule over the whole run, centered, Nesterov momentum, bias correction and decoupled
weight decay (``--nu-dtype`` picks the storage of ``v``). The steps run as jitted
``lax.scan`` chunks of ``--chunk`` steps; after every chunk the script checks

* that the state's ``count`` equals the number of steps taken, exactly (no drift);
* that every loss and update of the chunk, the parameters and the state are finite
  (the scan carries a flag, so one bad step anywhere is caught).

The schedule and bias correction read ``count``, so an exact count is what keeps them on
time. The script prints a line per tenth of the run and writes
``benchmarks/results/soak.json``: the mean training loss per chunk, the loss on 4096
held-out points before and after, the time and the machine. Exits with status 1 if a
check failed.

    python benchmarks/soak.py                    # 1e6 steps
    python benchmarks/soak.py --steps 100000     # a shorter run
    python benchmarks/soak.py --nu-dtype int8    # v in 8-bit blocks (for leaves >= 8 values)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
from machine import RESULTS, machine_info, write_json
from variants import STORAGE

import optax_rmsprop


def storage(name: str) -> Any:
    """``STORAGE[name]``, 8-bit on this model's small leaves too (``min_size`` 8)."""
    nu = STORAGE[name]
    return dataclasses.replace(nu, min_size=8) if isinstance(nu, optax_rmsprop.Int8) else nu


def init_params(key: jax.Array) -> dict[str, jax.Array]:
    k1, k2 = jax.random.split(key)
    return {
        "hidden": {"w": jax.random.normal(k1, (4, 32)) / 2.0, "b": jnp.zeros(32)},
        "out": {"w": jax.random.normal(k2, (32, 1)) / math.sqrt(32), "b": jnp.zeros(1)},
    }


def loss_fn(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    h = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
    return jnp.mean((h @ params["out"]["w"] + params["out"]["b"] - y) ** 2)


def batch(key: jax.Array, step: jax.Array, size: int = 64) -> tuple[jax.Array, jax.Array]:
    x = jax.random.normal(jax.random.fold_in(key, step), (size, 4))
    y = jnp.sin(x @ jnp.asarray([1.0, -0.5, 0.25, 2.0])) + x[:, 0] * x[:, 1] / 2
    return x, y[:, None]


def all_finite(tree: Any) -> jax.Array:
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.isdtype(x.dtype, "real floating")
    ]
    return jnp.all(jnp.asarray(leaves))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="optimizer steps")
    parser.add_argument("--chunk", type=int, default=10_000, help="steps per jitted scan")
    parser.add_argument("--nu-dtype", choices=STORAGE, default="default", help="storage of v")
    parser.add_argument("--output", type=Path, default=RESULTS / "soak.json", help="JSON file")
    args = parser.parse_args(argv)
    if args.steps % args.chunk:
        parser.error("--steps must be a multiple of --chunk")

    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=3e-3, warmup_steps=args.steps // 100, decay_steps=args.steps
    )
    config = dict(
        decay=0.99,
        eps=1e-8,
        centered=True,
        momentum=0.9,
        nesterov=True,
        bias_correction=True,
        weight_decay=1e-4,
        decoupled_weight_decay=True,
        nu_dtype=storage(args.nu_dtype),
    )
    tx = optax_rmsprop.rmsprop(schedule, **config)
    key = jax.random.key(0)
    params = init_params(key)
    state = tx.init(params)

    @jax.jit
    def run_chunk(params, state):
        def step(carry, _):
            params, state, finite = carry
            x, y = batch(key, state.count)
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            finite = finite & jnp.isfinite(loss) & all_finite(updates)
            return (params, state, finite), loss

        (params, state, finite), losses = jax.lax.scan(
            step, (params, state, jnp.asarray(True)), length=args.chunk
        )
        return params, state, finite & all_finite((params, state)), jnp.mean(losses)

    held_out = batch(jax.random.key(1), 0, size=4096)
    initial_loss = float(loss_fn(params, *held_out))
    failures: list[str] = []
    losses: list[float] = []
    start = time.perf_counter()
    for done in range(args.chunk, args.steps + 1, args.chunk):
        params, state, finite, loss = run_chunk(params, state)
        count = int(state.count)
        if count != done:
            failures.append(f"after {done} steps the count is {count}")
        if not bool(finite):
            failures.append(f"a non-finite loss, update, parameter or state by step {done}")
        losses.append(float(loss))
        if done % max(args.steps // 10, args.chunk) == 0:
            rate = done / (time.perf_counter() - start)
            print(
                f"step {done:>9,}  count {count:>9,}  loss {float(loss):.5f}  {rate:,.0f} steps/s"
            )
        if failures:
            break
    seconds = time.perf_counter() - start
    final_loss = float(loss_fn(params, *held_out))

    result = {
        "benchmark": "soak",
        "steps": args.steps,
        "chunk": args.chunk,
        "model": "MLP 4-32-1 (tanh), 193 parameters, minibatches of 64",
        "optimizer": {
            "learning_rate": "warmup_cosine_decay_schedule(0 -> 3e-3 -> 0)",
            **{k: str(v) if k == "nu_dtype" else v for k, v in config.items()},
        },
        "final_count": int(state.count),
        "held_out_loss": {"initial": initial_loss, "final": final_loss},
        "train_loss_per_chunk": losses,
        "seconds": seconds,
        "steps_per_second": int(state.count) / seconds,
        "failures": failures,
        "machine": machine_info(),
    }
    write_json(args.output, result)
    print(
        f"{int(state.count):,} steps in {seconds:.1f} s ({result['steps_per_second']:,.0f}/s); "
        f"held-out loss {initial_loss:.4f} -> {final_loss:.5f}; "
        + (
            "OK: count exact, everything finite"
            if not failures
            else "FAILED: " + "; ".join(failures)
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
