"""Light optimizer state: final loss and memory with every storage of the buffers.

    python benchmarks/light_state.py            # about 15 minutes on 2 busy CPU cores
    python benchmarks/light_state.py --quick    # a smoke run (smaller, fewer seeds; the
                                                # package's 5000 Fashion-MNIST images)
    python benchmarks/light_state.py --merge --only quadratic-0.9   # rerun one problem

Each problem trains from the same seeds (initial parameters, data order, noise) with its
state stored six ways: float32 (the reference), bfloat16 (v, m̄ and b), 8-bit v
(``nu_dtype="int8"``), 8-bit v and 8-bit b/m̄ (``mu_dtype="int8"``, where the problem has
them), and two candidate 4-bit second moments with 8-bit b/m̄: v rounded after every step
through 4-bit codes in blocks of 128 (as torchao's 4-bit state) or through rank-1
normalization and a linear map without zero (Li et al., 2023). The 4-bit candidates are
measured here, not shipped. All seeds of a problem train at once (``jax.vmap``).

For each storage: the mean final loss over seeds and its spread, the gap of the mean to
float32 state's with its standard error (from both runs' spread over the seeds), the
verdict (within noise: within 2 standard errors), the state's bytes per parameter, and
for 4-bit v whether every problem is within noise. These are computed and written here
(``benchmarks/results/light_state.json``, with the machine); ``render.py`` draws them.

* **airfoil**: d2l 11.8's linear regression (``presets.d2l``: lr 0.01, γ 0.9, ε 1e-6,
  minibatches of 10, 2 epochs), 16 seeds. Its weight has 5 values, so the 8-bit runs use
  blocks of 4 (``Int8(block_size=4, min_size=4)``).
* **quadratic-ρ**: the noisy quadratic model (Zhang et al., 2019), f(x) = ½ Σ hᵢxᵢ² with
  hᵢ = 1/i for i = 1..65 536 in a random order, stochastic gradient hᵢxᵢ + 0.1·√hᵢ·ξ,
  RMSProp with momentum 0.9, lr 1e-3, decay ρ = 0.9, 0.99, 0.999; 3000 steps, 4 seeds.
* **fashion_mnist-mlp**: an MLP 784-256-128-10 on the 60 000 training images, 2 epochs of
  128, RMSProp decay 0.9, cosine lr 1e-3 → 0, 3 seeds; loss on the training set, test
  accuracy beside it.
* **fashion_mnist-cnn**: momentum as its users run it, the TF-style recipe of EfficientNet
  and MobileNet: ``presets.tf1`` centered, momentum 0.9, decay 0.9, ε 1e-3, cosine lr
  1e-3 → 0, on a CNN (3x3 convolutions of 16 and 32 channels, stride 2, then dense 64 and
  10), 2 epochs of 128 over 10 000 training images, 3 seeds.

The state-size table: a 1.3B-parameter transformer's shapes (``state_size``), every
storage, beside what bitsandbytes' and torchao's formats take for the same buffers.
"""

from __future__ import annotations

import argparse
import json
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
import render
from common import RESULTS, VARIANTS, machine_info, write_json

import optax_rmsprop
from optax_rmsprop import datasets, presets
from optax_rmsprop.quantize import Int8, QuantizedArray

# Each storage: the options it gives the transformation, and the 4-bit scheme (None, or
# "block128" / "rank1") its v is rounded to after every step (4-bit v is measured here, not
# shipped: see four_bit). Storages of the first-moment buffers run only where there are some.
STORAGES: dict[str, tuple[dict[str, Any], str | None]] = {
    "float32": ({}, None),
    "bfloat16": ({"nu_dtype": jnp.bfloat16, "mu_dtype": jnp.bfloat16}, None),
    "int8 v": ({"nu_dtype": Int8()}, None),
    "int8 v + int8 b/m̄": ({"nu_dtype": Int8(), "mu_dtype": Int8()}, None),
    "4-bit v (blocks of 128) + int8 b/m̄": ({"mu_dtype": Int8()}, "block128"),
    "4-bit v (rank-1, linear) + int8 b/m̄": ({"mu_dtype": Int8()}, "rank1"),
}
FIRST_MOMENT_ONLY = ("int8 v + int8 b/m̄",)  # the same as "int8 v" without b or m̄

Problem = dict[str, Any]


# ---------------------------------------------------------------------------
# Candidate 4-bit second moments: v rounded to 4-bit codes after each step (what a run
# storing those codes would read back), in float32, so any scheme can be measured before
# one is built into the library.


def four_bit_round_trip(v: jax.Array, scheme: str, u: jax.Array) -> jax.Array:
    """``v >= 0`` through 4-bit codes, rounded stochastically (``u`` uniform in [0, 1)).

    * ``block128`` (block-wise, as torchao's 4-bit state): blocks of 128 along the
      flattened leaf, each scaled by its maximum; codes 0..15 stand for 2**(c - 15) of it
      (octaves, no zero: 0.53 B/value with the float32 scales).
    * ``rank1`` (Li et al., 2023): each value scaled by the smaller of its row's and its
      column's maximum (the leaf as (rows, last axis); a vector as rows of 128), a linear
      map without zero: code c stands for (c + 1) / 16 of the scale (0.5 B/value and the
      row and column maxima).
    Values below the smallest code come back as it, never as 0; exact zeros stay zero.
    """
    shape = v.shape
    if scheme == "block128":
        flat = v.reshape(-1)
        pad = -flat.size % 128
        blocks = jnp.pad(flat, (0, pad)).reshape(-1, 128)
        scale = jnp.max(blocks, axis=1, keepdims=True)
        ratio = blocks / jnp.where(scale > 0, scale, 1)
        low = jnp.exp2(jnp.clip(jnp.floor(jnp.log2(jnp.maximum(ratio, 2.0**-15))), -15, 0))
        up = jnp.pad(u.reshape(-1), (0, pad)).reshape(-1, 128) < (ratio - low) / low
        back = jnp.where(up & (low < 1), 2 * low, low) * scale
        back = back.reshape(-1)[: flat.size].reshape(shape)
    else:
        rows, columns = _rank1_matrix(shape)
        matrix = jnp.pad(v.reshape(-1), (0, rows * columns - v.size)).reshape(rows, columns)
        noise = jnp.pad(u.reshape(-1), (0, rows * columns - v.size)).reshape(rows, columns)
        scale = jnp.minimum(matrix.max(axis=1, keepdims=True), matrix.max(axis=0, keepdims=True))
        x = matrix / jnp.where(scale > 0, scale, 1) * 16 - 1  # code units
        low = jnp.clip(jnp.floor(x), 0, 15)
        code = jnp.clip(low + (noise < x - low), 0, 15)
        back = ((code + 1) / 16 * scale).reshape(-1)[: v.size].reshape(shape)
    return jnp.where(v > 0, back, 0.0)


def _rank1_matrix(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, columns) of the matrix a leaf is normalized as: (leading, last axis), or a
    vector in rows of 128 (zero-padded)."""
    if len(shape) > 1:
        return math.prod(shape[:-1]), shape[-1]
    return -(-math.prod(shape) // 128), 128


def four_bit_bytes(shape: tuple[int, ...], scheme: str) -> float:
    """Bytes a leaf's 4-bit v takes: half a byte a value, and the float32 scales."""
    n = math.prod(shape)
    if scheme == "block128":
        return n / 2 + 4 * -(-n // 128)
    return n / 2 + 4 * sum(_rank1_matrix(shape))


def with_four_bit_nu(
    tx: optax.GradientTransformation, scheme: str, min_size: int
) -> optax.GradientTransformation:
    """``tx`` (float32 v) with each leaf's v of ``min_size`` values or more rounded to 4-bit
    codes after every step; the step itself uses the unrounded v, as the 8-bit v does."""

    def update(grads, state, params=None):
        updates, state = tx.update(grads, state, params)
        leaves, treedef = jax.tree.flatten(state.nu)
        key = jax.random.fold_in(jax.random.key(0), state.count)
        rounded = [
            four_bit_round_trip(v, scheme, jax.random.uniform(jax.random.fold_in(key, i), v.shape))
            if v.size >= min_size
            else v
            for i, v in enumerate(leaves)
        ]
        return updates, state._replace(nu=jax.tree.unflatten(treedef, rounded))

    return optax.GradientTransformation(tx.init, update)


def make_tx(problem: Problem, storage: str) -> optax.GradientTransformation:
    options, scheme = STORAGES[storage]
    int8 = problem.get("int8", Int8())  # the problem's own blocks
    options = {k: int8 if isinstance(x, Int8) else x for k, x in options.items()}
    tx = problem["make_tx"](**options)
    return tx if scheme is None else with_four_bit_nu(tx, scheme, int8.min_size)


# ---------------------------------------------------------------------------
# Training: every seed at once.


def train_all_seeds(problem: Problem, storage: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Final loss per seed, and the extra metrics and final state of the first seed.

    ``problem["inputs"]`` is (initial params, constants, per-step data), each with a
    leading axis of seeds; gradients are ``problem["grad"](params, constants, data_t)``.
    """
    tx = make_tx(problem, storage)

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
    """8-bit leaves of the state, all buffers together."""
    is_q = lambda x: isinstance(x, QuantizedArray)  # noqa: E731
    return sum(is_q(x) for x in jax.tree.leaves(state, is_leaf=is_q))


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
        "make_tx": lambda **storage: presets.d2l(lr=0.01, gamma=0.9, **storage),
        "first_moment": False,
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
    seeds: int, epochs: int, train_size: int, model: str = "mlp", batch: int = 128
) -> Problem:
    """An MLP 784-256-128-10 with RMSProp (decay 0.9, cosine lr 1e-3 → 0), or a small CNN
    trained with the TF-style recipe: ``presets.tf1`` centered, momentum 0.9, decay 0.9,
    ε 1e-3 (as EfficientNet's), the learning rate on a cosine from 1e-3 to 0."""
    subset = train_size <= 5000  # the package's copy holds the first 5000 training images
    images, labels = load_fashion_mnist("train", subset)
    test_images, test_labels = load_fashion_mnist("t10k", subset)
    mean, std = images.mean() / 255, images.std() / 255
    prepare = lambda x: jnp.asarray(((x / 255 - mean) / std).astype(np.float32))  # noqa: E731
    x, y = prepare(images[:train_size]), jnp.asarray(labels[:train_size])
    test_x, test_y = prepare(test_images), jnp.asarray(test_labels)
    steps_per_epoch = train_size // batch
    steps = epochs * steps_per_epoch
    # (name, shape, fan in, gain): He initialization, LeCun for the last layer
    if model == "mlp":
        shapes = [("w0", (784, 256), 784, 2), ("w1", (256, 128), 256, 2), ("w2", (128, 10), 128, 1)]
    else:  # conv 3x3 16, conv 3x3/2 32, dense 64, dense 10
        shapes = [
            ("c0", (3, 3, 1, 16), 9, 2),
            ("c1", (3, 3, 16, 32), 144, 2),
            ("w0", (14 * 14 * 32 // 4, 64), 14 * 14 * 32 // 4, 2),
            ("w1", (64, 10), 64, 1),
        ]
    params, orders = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        layers = {}
        for name, shape, fan_in, gain in shapes:
            layers[name] = (rng.normal(size=shape) * math.sqrt(gain / fan_in)).astype(np.float32)
            layers["b" + name] = np.zeros(shape[-1], np.float32)
        params.append(layers)
        order = [rng.permutation(train_size)[: steps_per_epoch * batch] for _ in range(epochs)]
        orders.append(np.concatenate(order).reshape(steps, batch))

    def conv(x, w, stride):
        return jax.lax.conv_general_dilated(
            x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def logits(params, x):
        if model == "mlp":
            for i in range(3):
                x = x @ params[f"w{i}"] + params[f"bw{i}"]
                x = jax.nn.relu(x) if i < 2 else x
            return x
        x = x.reshape(-1, 28, 28, 1)
        x = jax.nn.relu(conv(x, params["c0"], 2) + params["bc0"])  # 14 x 14 x 16
        x = jax.nn.relu(conv(x, params["c1"], 2) + params["bc1"])  # 7 x 7 x 32
        x = jax.nn.relu(x.reshape(len(x), -1) @ params["w0"] + params["bw0"])
        return x @ params["w1"] + params["bw1"]

    def cross_entropy(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()

    schedule = optax.cosine_decay_schedule(1e-3, steps)
    if model == "mlp":
        description = "MLP 784-256-128-10, RMSProp decay 0.9"
        make = lambda **storage: optax_rmsprop.rmsprop(schedule, decay=0.9, **storage)  # noqa: E731
    else:
        description = (
            "CNN conv16-conv32/2-64-10 (stride 2), TF-style: tf1 centered, momentum 0.9, "
            "decay 0.9, ε 1e-3"
        )
        make = lambda **storage: presets.tf1(  # noqa: E731
            schedule, decay=0.9, momentum=0.9, epsilon=1e-3, centered=True, **storage
        )
    return {
        "description": (
            f"Fashion-MNIST {description}, {train_size} images, {epochs} epochs of {batch}, "
            "cosine lr 1e-3 → 0"
        ),
        "make_tx": make,
        "first_moment": model != "mlp",
        "grad": lambda params, _, idx: jax.grad(cross_entropy)(params, x[idx], y[idx]),
        "loss": lambda params, _: cross_entropy(params, x, y),
        "metrics": lambda params: {
            "test_accuracy": jnp.mean(logits(params, test_x).argmax(-1) == test_y)
        },
        "inputs": (jax.tree.map(lambda *a: np.stack(a), *params), None, np.stack(orders)),
        "seeds": seeds,
        "steps": steps,
    }


def quadratic(seeds: int, dim: int, steps: int, decay: float) -> Problem:
    """RMSProp with momentum 0.9 and a constant learning rate 1e-3 (a step of 1e-2 in the
    steady state, as the plain 0.01 of earlier runs)."""
    h, x0 = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        h.append(1.0 / rng.permutation(np.arange(1, dim + 1)))
        x0.append(rng.normal(size=dim))
    keys = jax.vmap(jax.random.key)(jnp.arange(seeds))

    def grad(x, constants, t):
        h, key = constants
        xi = jax.random.normal(jax.random.fold_in(key, t), x.shape)
        return h * x + 0.1 * jnp.sqrt(h) * xi

    return {
        "description": (
            f"noisy quadratic, d = {dim}, h_i = 1/i shuffled, {steps} steps, "
            f"lr 1e-3, momentum 0.9, decay {decay}"
        ),
        "make_tx": lambda **storage: optax_rmsprop.rmsprop(
            1e-3, decay=decay, momentum=0.9, **storage
        ),
        "first_moment": True,
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


def state_bytes(problem: Problem, storage: str, params: Any) -> tuple[int, int]:
    """(state bytes, parameters): ``state_size``, with a 4-bit v's bytes counted in."""
    options, scheme = STORAGES[storage]
    size = optax_rmsprop.state_size(make_tx(problem, storage), params)
    total = size.state_bytes
    if scheme is not None:
        min_size = problem.get("int8", Int8()).min_size
        for p in jax.tree.leaves(params):
            if p.size >= min_size:  # float32 v out, 4-bit codes in
                total += four_bit_bytes(p.shape, scheme) - 4 * p.size
    return int(math.ceil(total)), size.num_params


def gap_verdict(losses: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """The gap of the mean loss to float32 state's, and whether it lies within the seeds'
    noise: 2 standard errors of the difference of the two means, from the spread of each
    over its seeds. (The same seeds train both, so the differences paired by seed have a
    smaller spread; their standard error is kept too, as a finer measure.)"""
    n = len(reference)
    gap = float(losses.mean() - reference.mean())
    se = math.sqrt((losses.var(ddof=1) + reference.var(ddof=1)) / n)
    paired = float((losses - reference).std(ddof=1) / math.sqrt(n))
    return {
        "gap_to_float32": gap / float(reference.mean()),
        "gap_to_float32_se": se / float(reference.mean()),
        "gap": gap,
        "gap_standard_error": se,
        "paired_standard_error": paired,
        "within_noise": bool(abs(gap) <= 2 * se),
    }


def run_problem(name: str, problem: Problem) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    params = one_seed(problem["inputs"])
    for storage in STORAGES:
        if storage in FIRST_MOMENT_ONLY and not problem["first_moment"]:
            continue
        start = time.perf_counter()
        losses, extra = train_all_seeds(problem, storage)
        seconds = time.perf_counter() - start
        total, num_params = state_bytes(problem, storage, params)
        rows[storage] = {
            "options": {k: str(x) for k, x in STORAGES[storage][0].items()},
            "four_bit": STORAGES[storage][1],
            "losses": [float(x) for x in losses],
            "mean": float(losses.mean()),
            "std": float(losses.std(ddof=1)),
            "metrics": {k: [float(x) for x in v] for k, v in extra["metrics"].items()},
            "quantized_leaves": n_quantized(extra["state"]),
            "state_bytes": total,
            "num_params": num_params,
            "bytes_per_param": total / num_params,
            "seconds": round(seconds, 1),
        }
        print(
            f"  {name:18s} {storage:38s} loss {losses.mean():.5f} ± {losses.std(ddof=1):.5f}"
            f"  {total / num_params:.4f} B/param  ({seconds:.0f} s)",
            flush=True,
        )
    reference = np.asarray(rows["float32"]["losses"])
    for storage, row in rows.items():
        if storage != "float32":
            row.update(gap_verdict(np.asarray(row["losses"]), reference))
    return {
        "description": problem["description"],
        "seeds": problem["seeds"],
        "steps": problem["steps"],
        "first_moment": problem["first_moment"],
        "states": rows,
    }


TRANSFORMER_1_3B = {  # a 1.3B-parameter transformer's shapes, float32; layer norms stay small
    "embed": (50304, 2048),
    "layers": {
        "qkv": (24, 2048, 6144),
        "out": (24, 2048, 2048),
        "up": (24, 2048, 8192),
        "down": (24, 8192, 2048),
        "norm": (24, 2, 2048),
    },
}
MEMORY_COLUMNS = {  # label: (options, 4-bit scheme of v)
    "float32": ({}, None),
    "bfloat16 v, b/m̄": ({"nu_dtype": jnp.bfloat16, "mu_dtype": jnp.bfloat16}, None),
    "int8 v": ({"nu_dtype": "int8"}, None),
    "int8 v, bfloat16 b/m̄": ({"nu_dtype": "int8", "mu_dtype": jnp.bfloat16}, None),
    "int8 v, int8 b/m̄": ({"nu_dtype": "int8", "mu_dtype": "int8"}, None),
    "4-bit v (blocks of 128), int8 b/m̄": ({"mu_dtype": "int8"}, "block128"),
}
# Per buffer, from the block sizes they publish: a code per value and a float32 scale per
# block (bitsandbytes: blocks of 256 in 8 bits, no centered RMSProp; torchao: blocks of 256
# in 8 bits, of 128 in 4 bits).
PUBLISHED = {
    "bitsandbytes 8-bit": {"buffer": 1 + 4 / 256, "centered": False},
    "torchao 8-bit": {"buffer": 1 + 4 / 256, "centered": True},
    "torchao 4-bit": {"buffer": 0.5 + 4 / 128, "centered": True},
}


def memory_table() -> dict[str, Any]:
    """Bytes of state per parameter for a 1.3B-parameter model (shapes only), per variant and
    storage, beside what bitsandbytes' and torchao's formats would take for the same buffers."""
    params = jax.tree.map(
        lambda shape: jax.ShapeDtypeStruct(shape, jnp.float32),
        TRANSFORMER_1_3B,
        is_leaf=lambda x: isinstance(x, tuple),
    )
    num_params = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
    buffers = {"plain": 1, "momentum": 2, "centered+momentum": 3}
    table: dict[str, Any] = {"num_params": num_params, "ours": {}, "published": {}}
    for variant, n_buffers in buffers.items():
        kwargs = VARIANTS[variant]
        table["ours"][variant] = {}
        for label, (options, scheme) in MEMORY_COLUMNS.items():
            if label.startswith("int8 v, ") and variant == "plain":
                table["ours"][variant][label] = None  # the same as without b/m̄
                continue
            tx = optax_rmsprop.rmsprop(1e-3, **kwargs, **options)
            total = optax_rmsprop.state_size(tx, params).state_bytes
            if scheme is not None:
                for p in jax.tree.leaves(params):
                    if p.size >= Int8().min_size:
                        total += four_bit_bytes(p.shape, scheme) - 4 * p.size
            table["ours"][variant][label] = round(total / num_params, 4)
        table["published"][variant] = {
            name: (
                round(n_buffers * f["buffer"], 4)
                if f["centered"] or variant != "centered+momentum"
                else None
            )
            for name, f in PUBLISHED.items()
        }
    return table


def four_bit_verdict(problems: dict[str, Any]) -> dict[str, Any]:
    """Per 4-bit scheme: the problems where its gap to float32 lies beyond the seeds' noise;
    a scheme ships only where there is none."""
    verdict = {}
    for storage, (_, scheme) in STORAGES.items():
        if scheme is None:
            continue
        beyond = [
            name
            for name, problem in problems.items()
            if not problem["states"][storage]["within_noise"]
        ]
        verdict[scheme] = {"storage": storage, "beyond_noise": beyond, "ships": not beyond}
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    parser.add_argument("--only", nargs="*", help="run these problems only")
    parser.add_argument(
        "--merge", action="store_true", help="add to (or replace in) the problems already written"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    quick = args.quick

    problems: dict[str, Callable[[], Problem]] = {
        "airfoil": lambda: airfoil(seeds=4 if quick else 16),
    }
    for decay in (0.9, 0.99, 0.999):
        problems[f"quadratic-{decay}"] = lambda decay=decay: quadratic(
            seeds=3 if quick else 4,
            dim=4096 if quick else 65536,
            steps=500 if quick else 3000,
            decay=decay,
        )
    # (model, epochs, training images): the CNN on 10000 images, so that it trains in
    # minutes on a CPU with all seeds at once
    for model, epochs, size in (("mlp", 2, 60000), ("cnn", 2, 10000)):
        problems[f"fashion_mnist-{model}"] = lambda model=model, epochs=epochs, size=size: (
            fashion_mnist(
                seeds=3,
                epochs=1 if quick else epochs,
                train_size=5000 if quick else size,
                model=model,
            )
        )
    if args.only is not None:  # --merge --only with no names: finish an earlier partial run
        problems = {name: problems[name] for name in args.only}
    path = args.out / f"light_state{'_quick' if quick else ''}.json"
    results: dict[str, Any] = {
        "benchmark": "light_state",
        "quick": quick,
        "machine": machine_info(),
        "problems": {},
        "seconds": 0.0,
    }
    if args.merge and path.exists():  # the same machine's earlier runs of other problems
        results["problems"] = json.loads(path.read_text())["problems"]
        results["seconds"] = json.loads(path.read_text())["seconds"]
    for name, make in problems.items():
        print(name, flush=True)
        results["problems"][name] = run_problem(name, make())
        write_json(path, results)  # after every problem, so a run cut short keeps them
    results["four_bit"] = four_bit_verdict(results["problems"])
    results["memory"] = memory_table()
    results["seconds"] += time.perf_counter() - start
    write_json(path, results)
    for written in render.render(path):
        print(written.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
