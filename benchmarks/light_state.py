"""Light optimizer state: final loss and memory with float32, bfloat16 and 8-bit ``nu``.

    python benchmarks/light_state.py            # about 6 minutes on 2 CPU cores
    python benchmarks/light_state.py --quick    # a smoke run (smaller, fewer seeds; the
                                                # package's 5000 Fashion-MNIST images)

Three problems, each trained from the same seeds (initial parameters, data order, noise)
with ``nu`` stored four ways: float32 (the reference), bfloat16 and 8-bit codes rounded
stochastically (``nu_dtype="int8"``) or to nearest (``Int8(rounding="nearest")``); the
table gives the mean final loss over seeds, its spread, the relative gap of the mean to
float32 state, and the optimizer state's bytes per parameter
(``optax_rmsprop.state_size``). All seeds of one problem train at once (``jax.vmap``).

* **airfoil**: d2l 11.8's linear regression (``presets.d2l``: lr 0.01, γ 0.9, ε 1e-6,
  minibatches of 10, 2 epochs, 1500 rows), 16 seeds; the loss is mean (ŷ − y)²/2 over the
  1500 rows after the last step. Its weight has 5 values, so the 8-bit run uses blocks of
  4 (``Int8(block_size=4, min_size=4)``): with the default ``min_size`` nothing would be
  quantized.
* **fashion_mnist**: an MLP 784-256-128-10 (ReLU) on the 60 000 training images, 3 epochs
  of minibatches of 128, RMSProp (decay 0.9, and PyTorch's 0.99) with the learning rate on
  a cosine from 1e-3 to 0, 3 seeds; the loss is the cross-entropy on the 60 000 images
  after training (test accuracy beside it). Default ``Int8()``: both large weight matrices
  are 8-bit.
* **quadratic**: the noisy quadratic model (Zhang et al., 2019), f(x) = ½ Σ hᵢxᵢ² with
  hᵢ = 1/i for i = 1..65 536 in a random order (so every block of v spans the whole range),
  stochastic gradient hᵢxᵢ + 0.1·√hᵢ·ξ, x₀ ~ N(0, 1), 3000 steps, 4 seeds; default
  ``Int8()``. Run at decay 0.9, 0.99 and 0.999, with a constant learning rate 0.01 and with
  a cosine from 0.01 to 0: the decay sweep shows where low-precision ``v`` starts to
  matter (with rounding to nearest, a leaky average that moves by less than half a code
  per step stays put; stochastic rounding follows it on average).

Writes ``benchmarks/results/light_state.json`` with the machine it ran on; ``render.py`` makes
``light_state.md`` from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from machine import RESULTS, draw, machine_info, write_json
from variants import VARIANTS

import optax_rmsprop
from optax_rmsprop import datasets, presets
from optax_rmsprop.quantize import Int8, QuantizedArray

STATES: dict[str, Any] = {
    "float32": None,
    "bfloat16": jnp.bfloat16,
    "int8": Int8(),  # stochastic rounding
    "int8-nearest": Int8(rounding="nearest"),
}

Problem = dict[str, Any]


# ---------------------------------------------------------------------------
# Training: every seed at once.


def train_all_seeds(problem: Problem, nu_dtype: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Final loss per seed, and the extra metrics and final state of the first seed.

    ``problem["inputs"]`` is (initial params, constants, per-step data), each with a
    leading axis of seeds; gradients are ``problem["grad"](params, constants, data_t)``.
    """
    tx = problem["make_tx"](nu_dtype)

    def train(params, constants, data):
        def step(carry, data_t):
            params, state = carry
            updates, state = tx.update(problem["grad"](params, constants, data_t), state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(step, (params, tx.init(params)), data)
        return problem["loss"](params, constants), problem["metrics"](params), state

    losses, metrics, states = jax.jit(jax.vmap(train))(*problem["inputs"])
    first_state = jax.tree.map(lambda x: x[0], states)
    return np.asarray(losses), {"metrics": jax.tree.map(np.asarray, metrics), "state": first_state}


def n_quantized(state: Any) -> int:
    is_q = lambda x: isinstance(x, QuantizedArray)  # noqa: E731
    return sum(is_q(x) for x in jax.tree.leaves(state.nu, is_leaf=is_q))


def one_seed(inputs: tuple) -> Any:
    return jax.tree.map(lambda x: x[0], inputs[0])


# ---------------------------------------------------------------------------
# The problems.


def airfoil(seeds: int) -> Problem:
    features, target = datasets.load_airfoil()
    steps = 2 * len(features) // 10
    w, b, batch_x, batch_y = [], [], [], []
    for seed in range(seeds):  # as tests/test_d2l.py and d2l's train_ch11
        rng = np.random.default_rng(seed)
        w.append(rng.normal(0.0, 0.01, size=(5, 1)).astype(np.float32))
        b.append(np.zeros(1, np.float32))
        order = np.concatenate([rng.permutation(len(features)) for _ in range(2)])
        batch_x.append(features[order].reshape(steps, 10, 5))
        batch_y.append(target[order].reshape(steps, 10))

    def squared_loss(params, x, y):
        return jnp.mean((x @ params["w"] + params["b"] - y[:, None]) ** 2 / 2)

    return {
        "description": "d2l airfoil, linear, batch 10, lr 0.01, γ 0.9, 2 epochs",
        "make_tx": lambda nu: presets.d2l(lr=0.01, gamma=0.9, nu_dtype=nu),
        "int8": Int8(block_size=4, min_size=4),
        "grad": lambda params, _, batch: jax.grad(squared_loss)(params, *batch),
        "loss": lambda params, _: squared_loss(params, features, target),
        "metrics": lambda params: {},
        "inputs": (
            {"w": np.stack(w), "b": np.stack(b)},
            None,
            (np.stack(batch_x), np.stack(batch_y)),
        ),
        "seeds": seeds,
        "steps": steps,
    }


def load_fashion_mnist(split: str, subset: bool) -> tuple[np.ndarray, np.ndarray]:
    """The full set (``datasets.find_fashion_mnist``), or the package's 5000 + 1000 images."""
    images, labels = datasets.load_fashion_mnist(split, subset=subset)
    return images.reshape(len(labels), 784), labels.astype(np.int32)


def fashion_mnist(
    seeds: int, epochs: int, train_size: int, decay: float = 0.9, batch: int = 128
) -> Problem:
    subset = train_size <= 5000  # the package's copy holds the first 5000 training images
    images, labels = load_fashion_mnist("train", subset)
    test_images, test_labels = load_fashion_mnist("t10k", subset)
    mean, std = images.mean() / 255, images.std() / 255
    prepare = lambda x: jnp.asarray(((x / 255 - mean) / std).astype(np.float32))  # noqa: E731
    x, y = prepare(images[:train_size]), jnp.asarray(labels[:train_size])
    test_x, test_y = prepare(test_images), jnp.asarray(test_labels)
    sizes = [784, 256, 128, 10]
    steps_per_epoch = train_size // batch
    steps = epochs * steps_per_epoch
    params, orders = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        layers = {}
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            scale = math.sqrt((2 if i < len(sizes) - 2 else 1) / fan_in)  # He, then LeCun
            layers[f"w{i}"] = (rng.normal(size=(fan_in, fan_out)) * scale).astype(np.float32)
            layers[f"b{i}"] = np.zeros(fan_out, np.float32)
        params.append(layers)
        order = [rng.permutation(train_size)[: steps_per_epoch * batch] for _ in range(epochs)]
        orders.append(np.concatenate(order).reshape(steps, batch))

    def logits(params, x):
        for i in range(len(sizes) - 1):
            x = x @ params[f"w{i}"] + params[f"b{i}"]
            x = jax.nn.relu(x) if i < len(sizes) - 2 else x
        return x

    def cross_entropy(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()

    schedule = optax.cosine_decay_schedule(1e-3, steps)
    return {
        "description": (
            f"Fashion-MNIST MLP 784-256-128-10, {train_size} images, {epochs} epochs of "
            f"{batch}, cosine lr 1e-3 → 0, decay {decay}"
        ),
        "make_tx": lambda nu: optax_rmsprop.rmsprop(schedule, decay=decay, nu_dtype=nu),
        "int8": Int8(),
        "grad": lambda params, _, idx: jax.grad(cross_entropy)(params, x[idx], y[idx]),
        "loss": lambda params, _: cross_entropy(params, x, y),
        "metrics": lambda params: {
            "test_accuracy": jnp.mean(logits(params, test_x).argmax(-1) == test_y)
        },
        "inputs": (jax.tree.map(lambda *a: np.stack(a), *params), None, np.stack(orders)),
        "seeds": seeds,
        "steps": steps,
    }


def quadratic(seeds: int, dim: int, steps: int, decay: float, schedule: str) -> Problem:
    h, x0 = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        h.append(1.0 / rng.permutation(np.arange(1, dim + 1)))
        x0.append(rng.normal(size=dim))
    keys = jax.vmap(jax.random.key)(jnp.arange(seeds))
    lr = optax.cosine_decay_schedule(0.01, steps) if schedule == "cosine" else 0.01

    def grad(x, constants, t):
        h, key = constants
        xi = jax.random.normal(jax.random.fold_in(key, t), x.shape)
        return h * x + 0.1 * jnp.sqrt(h) * xi

    return {
        "description": (
            f"noisy quadratic, d = {dim}, h_i = 1/i shuffled, {steps} steps, "
            f"{'cosine lr 0.01 → 0' if schedule == 'cosine' else 'lr 0.01'}, decay {decay}"
        ),
        "make_tx": lambda nu: optax_rmsprop.rmsprop(lr, decay=decay, nu_dtype=nu),
        "int8": Int8(),
        "grad": grad,
        "loss": lambda x, constants: 0.5 * jnp.sum(constants[0] * x**2),
        "metrics": lambda x: {},
        "inputs": (
            np.asarray(x0, np.float32),
            (np.asarray(h, np.float32), keys),
            np.broadcast_to(np.arange(steps), (seeds, steps)),
        ),
        "seeds": seeds,
        "steps": steps,
    }


# ---------------------------------------------------------------------------
# Running and reporting.


def run_problem(name: str, problem: Problem) -> dict[str, Any]:
    rows = {}
    params = one_seed(problem["inputs"])
    for state_name, nu_dtype in STATES.items():
        if isinstance(nu_dtype, Int8) and "int8" in problem:  # the problem's own blocks
            nu_dtype = dataclasses.replace(problem["int8"], rounding=nu_dtype.rounding)
        start = time.perf_counter()
        losses, extra = train_all_seeds(problem, nu_dtype)
        seconds = time.perf_counter() - start
        size = optax_rmsprop.state_size(problem["make_tx"](nu_dtype), params)
        rows[state_name] = {
            "nu_dtype": str(nu_dtype) if nu_dtype is not None else "float32 (the params')",
            "losses": [float(x) for x in losses],
            "mean": float(losses.mean()),
            "std": float(losses.std()),
            "metrics": {k: [float(x) for x in v] for k, v in extra["metrics"].items()},
            "metrics_mean": {k: float(np.mean(v)) for k, v in extra["metrics"].items()},
            "quantized_leaves": n_quantized(extra["state"]),
            "state_bytes": size.state_bytes,
            "num_params": size.num_params,
            "bytes_per_param": size.bytes_per_param,
            "seconds": round(seconds, 1),
        }
        print(
            f"  {name:28s} {state_name:9s} loss {losses.mean():.5f} ± {losses.std():.5f}  "
            f"{size.bytes_per_param:.4f} B/param  ({seconds:.0f} s)",
            flush=True,
        )
    reference = rows["float32"]["mean"]
    for row in rows.values():
        row["gap_to_float32"] = row["mean"] / reference - 1
    return {
        "description": problem["description"],
        "seeds": problem["seeds"],
        "steps": problem["steps"],
        "states": rows,
    }


def memory_table() -> dict[str, dict[str, float]]:
    """Bytes of state per parameter for a large model (shapes only), per configuration."""
    params = {  # a 1.3B-parameter transformer's shapes, float32; layer norms stay small
        "embed": jax.ShapeDtypeStruct((50304, 2048), jnp.float32),
        "layers": {
            "qkv": jax.ShapeDtypeStruct((24, 2048, 6144), jnp.float32),
            "out": jax.ShapeDtypeStruct((24, 2048, 2048), jnp.float32),
            "up": jax.ShapeDtypeStruct((24, 2048, 8192), jnp.float32),
            "down": jax.ShapeDtypeStruct((24, 8192, 2048), jnp.float32),
            "norm": jax.ShapeDtypeStruct((24, 2, 2048), jnp.float32),
        },
    }
    table = {}
    for variant in ("plain", "momentum", "centered+momentum"):
        kwargs = VARIANTS[variant]
        table[variant] = {}
        for label, extra in {
            "float32": {},
            "bfloat16 nu": {"nu_dtype": jnp.bfloat16},
            "int8 nu": {"nu_dtype": "int8"},
            "int8 nu, bfloat16 mu": {"nu_dtype": "int8", "mu_dtype": jnp.bfloat16},
        }.items():
            if label == "int8 nu, bfloat16 mu" and not kwargs:
                continue
            size = optax_rmsprop.state_size(optax_rmsprop.rmsprop(1e-3, **kwargs, **extra), params)
            table[variant][label] = round(size.bytes_per_param, 4)
    table["num_params"] = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    problems: dict[str, Callable[[], Problem]] = {
        "airfoil": lambda: airfoil(seeds=4 if args.quick else 16),
    }
    for decay in (0.9, 0.99):
        problems[f"fashion_mnist-{decay}"] = lambda decay=decay: fashion_mnist(
            seeds=2 if args.quick else 3,
            epochs=1 if args.quick else 3,
            train_size=5000 if args.quick else 60000,
            decay=decay,
        )
    for decay in (0.9, 0.99, 0.999):
        for schedule in ("constant", "cosine"):
            problems[f"quadratic-{decay}-{schedule}"] = lambda decay=decay, schedule=schedule: (
                quadratic(
                    seeds=2 if args.quick else 4,
                    dim=4096 if args.quick else 65536,
                    steps=500 if args.quick else 3000,
                    decay=decay,
                    schedule=schedule,
                )
            )
    results: dict[str, Any] = {
        "benchmark": "light_state",
        "quick": args.quick,
        "machine": machine_info(),
        "problems": {},
    }
    for name, make in problems.items():
        print(name, flush=True)
        results["problems"][name] = run_problem(name, make())
    results["memory"] = memory_table()
    results["seconds"] = time.perf_counter() - start

    path = args.out / f"light_state{'_quick' if args.quick else ''}.json"
    write_json(path, results)
    draw(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
