"""Eager (un-jitted) ``update``: optax_rmsprop against ``optax.rmsprop``.

Outside ``jax.jit`` an optax transformation runs op by op: ``optax.rmsprop``
dispatches a handful of small XLA computations per leaf, so on a tree with many
leaves the Python and dispatch overhead dominates. ``optax_rmsprop``'s eager
``update`` calls one cached, compiled step for the whole tree instead.

The tree is MLP-shaped: ``--layers`` dense layers (a ``width x width`` weight and
a ``width`` bias each: 40 leaves by default), small enough that compute does not
dominate. Both updates run in the same process, interleaved in rounds (which one
goes first alternates), each call ending in ``jax.block_until_ready``; the table
gives the median over rounds of the mean time per call, and the ratio. A jitted
``optax.rmsprop`` update is timed too, as the floor.

    python benchmarks/eager_step.py            # table on stdout, JSON in benchmarks/results/

Exits with status 1 if a variant's speed-up is below ``--min-ratio`` (5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import machine_info, stepper  # benchmarks/common.py: run this file as a script

import optax_rmsprop

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "centered+momentum": {"centered": True, "momentum": 0.9},
}
LEARNING_RATE = 1e-3
RESULTS = Path(__file__).resolve().parent / "results" / "eager_step.json"


def mlp_tree(layers: int, width: int, seed: int = 0) -> dict[str, dict[str, jax.Array]]:
    rng = np.random.default_rng(seed)
    return {
        f"dense_{i:02d}": {
            "kernel": jnp.asarray(rng.normal(size=(width, width)) / np.sqrt(width), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=(width,)) * 0.01, jnp.float32),
        }
        for i in range(layers)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=20, help="dense layers (2 leaves each)")
    parser.add_argument("--width", type=int, default=64, help="units per layer")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=5, help="updates per round and contender")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates per contender")
    parser.add_argument("--min-ratio", type=float, default=5.0, help="exit 1 below this")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)

    params = mlp_tree(args.layers, args.width)
    grads = jax.tree.map(lambda p: 0.1 * p + 0.01, params)
    n_leaves = len(jax.tree.leaves(params))
    n_params = sum(p.size for p in jax.tree.leaves(params))

    results = {}
    for name, kwargs in VARIANTS.items():
        ours = optax_rmsprop.rmsprop(LEARNING_RATE, **kwargs)
        theirs = optax.rmsprop(LEARNING_RATE, **kwargs)
        contenders = {
            "optax_rmsprop eager": stepper(ours.update, grads, params, ours.init(params)),
            "optax eager": stepper(theirs.update, grads, params, theirs.init(params)),
            "optax jit": stepper(jax.jit(theirs.update), grads, params, theirs.init(params)),
        }
        for run in contenders.values():  # compile everything (also optax's op-by-op kernels)
            run(args.warmup)
        times: dict[str, list[float]] = {label: [] for label in contenders}
        order = list(contenders)
        for r in range(args.rounds):
            for label in order if r % 2 == 0 else reversed(order):
                times[label].append(contenders[label](args.calls))
        medians = {label: statistics.median(ts) for label, ts in times.items()}
        results[name] = {
            "median_s": medians,
            "rounds_s": times,
            "speedup": medians["optax eager"] / medians["optax_rmsprop eager"],
        }

    header = (
        "| variant | optax_rmsprop eager (µs) | optax.rmsprop eager (µs) | speed-up "
        "| optax.rmsprop under jit (µs) |"
    )
    lines = [header, "|---|---:|---:|---:|---:|"]
    for name, result in results.items():
        m = result["median_s"]
        lines.append(
            f"| {name} | {m['optax_rmsprop eager'] * 1e6:.0f} | {m['optax eager'] * 1e6:.0f} "
            f"| {result['speedup']:.1f}x | {m['optax jit'] * 1e6:.0f} |"
        )
    info = machine_info()
    print(
        f"Eager update on an MLP tree: {args.layers} dense layers of width {args.width}, "
        f"{n_leaves} leaves, {n_params} float32 parameters; median of {args.rounds} "
        f"interleaved rounds of {args.calls} calls.\n"
        f"Machine: {info['platform']}, {info['cpu_count']} CPUs, {info['device']}, "
        f"jax {info['jax']}, optax {info['optax']}.\n"
    )
    print("\n".join(lines))

    worst = min(result["speedup"] for result in results.values())
    passed = worst >= args.min_ratio
    print(f"\nslowest speed-up {worst:.1f}x: {'at least' if passed else 'BELOW'} {args.min_ratio}x")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "eager_step",
        "tree": {
            "layers": args.layers,
            "width": args.width,
            "leaves": n_leaves,
            "parameters": int(n_params),
            "dtype": "float32",
        },
        "learning_rate": LEARNING_RATE,
        "variants": {name: kwargs for name, kwargs in VARIANTS.items()},
        "protocol": {
            "rounds": args.rounds,
            "calls_per_round": args.calls,
            "warmup_calls": args.warmup,
            "statistic": "median over rounds of the mean seconds per call",
            "interleaved": True,
        },
        "machine": info,
        "results": results,
        "min_ratio": args.min_ratio,
        "passed": passed,
        "markdown": "\n".join(lines),
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
