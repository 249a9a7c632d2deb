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

    python benchmarks/eager_step.py     # eager_step.json, then render.py: eager_step.md

Exits with status 1 if a variant's speed-up is below ``--min-ratio`` (5).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
from machine import RESULTS, draw, machine_info, write_json
from timing import interleave, median, stepper
from variants import VARIANTS, transformations
from workloads import make_tree, mlp

EAGER_VARIANTS = ("plain", "momentum", "centered+momentum")
LEARNING_RATE = 1e-3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=20, help="dense layers (2 leaves each)")
    parser.add_argument("--width", type=int, default=64, help="units per layer")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=5, help="updates per round and contender")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates per contender")
    parser.add_argument("--min-ratio", type=float, default=5.0, help="exit 1 below this")
    parser.add_argument("--out", type=Path, default=RESULTS / "eager_step.json", help="JSON file")
    args = parser.parse_args(argv)

    params = make_tree(mlp(args.layers, args.width), 0, 0.1)
    grads = jax.tree.map(lambda p: 0.1 * p + 0.01, params)
    n_leaves = len(jax.tree.leaves(params))
    n_params = sum(p.size for p in jax.tree.leaves(params))

    results = {}
    for name in EAGER_VARIANTS:
        ours, theirs = transformations(name, LEARNING_RATE).values()
        contenders = {
            "optax_rmsprop eager": stepper(ours.update, grads, params, ours.init(params)),
            "optax eager": stepper(theirs.update, grads, params, theirs.init(params)),
            "optax jit": stepper(jax.jit(theirs.update), grads, params, theirs.init(params)),
        }
        for run in contenders.values():  # compile everything (also optax's op-by-op kernels)
            run(args.warmup)
        times = interleave(contenders, args.rounds, args.calls)
        medians = {label: median(ts) for label, ts in times.items()}
        results[name] = {
            "median_s": medians,
            "rounds_s": times,
            "speedup": medians["optax eager"] / medians["optax_rmsprop eager"],
        }

    worst = min(result["speedup"] for result in results.values())
    passed = worst >= args.min_ratio
    print(f"slowest speed-up {worst:.1f}x: {'at least' if passed else 'BELOW'} {args.min_ratio}x")

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
        "variants": {name: VARIANTS[name] for name in EAGER_VARIANTS},
        "protocol": {
            "rounds": args.rounds,
            "calls_per_round": args.calls,
            "warmup_calls": args.warmup,
            "statistic": "median over rounds of the mean seconds per call",
            "interleaved": True,
        },
        "machine": machine_info(),
        "results": results,
        "min_ratio": args.min_ratio,
        "passed": passed,
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")
    draw(args.out)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
