"""Light optimizer state (``optax_rmsprop/quantize.py``, ``nu_dtype``, ``mu_dtype``): storage,
the 8-bit code, its steps, and convergence with light state.

* Storage: the dtype of every buffer and the bytes per parameter for each option (the
  parameter's dtype, float32, bfloat16, 8-bit blocks), small leaves left in float32, the
  ``Int8`` knobs honoured, ``state_size`` from shapes only.
* The 8-bit code: every code stands for the value the docstring of
  :mod:`optax_rmsprop.quantize` gives it; a round trip keeps the relative error of ``v``
  within ``quantize.relative_error_bound`` over the whole span a block can hold, zeros stay
  zero; stochastic rounding is right on average over seeds; blocks run along the trailing
  axes, at most 1.02 bytes per value; steps against a NumPy model written from that
  docstring, and the stored scales bound each block's new ``v``. With decays close to 1,
  stochastic rounding follows a slowly falling ``v`` that rounding to nearest cannot.
* The 8-bit state under ``optax.inject_hyperparams``; bad ``nu_dtype``/``mu_dtype`` raise,
  naming the argument. (``jit``, ``lax.cond``/``scan`` and ``vmap``: the contract suite's
  8-bit variant, tests/test_optax_contract.py.)
* Convergence on three small problems, each trained over several seeds at once with
  ``jax.vmap``: the d2l airfoil regression, a Fashion-MNIST MLP and a noisy ill-conditioned
  quadratic. The mean final loss with bfloat16 or 8-bit ``nu`` (either rounding) is
  within 1% of float32 ``nu``.
"""

from __future__ import annotations

import math
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import (
    INT8_SMALL,
    VARIANTS,
    assert_trees_close,
    make_tree,
    stack,
    with_lr,
)
from helpers import storage as storage_choices

import optax_rmsprop
from optax_rmsprop import datasets, presets, quantize
from optax_rmsprop.quantize import Int8, QuantizedArray

BIG = (1024, 1024)  # a leaf large enough that the per-block scales and the count are small


def is_quantized(x: Any) -> bool:
    return isinstance(x, QuantizedArray)


def quantized_leaves(tree: Any) -> list[QuantizedArray]:
    return [x for x in jax.tree.leaves(tree, is_leaf=is_quantized) if is_quantized(x)]


# ---------------------------------------------------------------------------
# Storage: dtypes and bytes per parameter.

# id: (param dtype, nu_dtype, expected nu dtype, bytes of nu per parameter)
STORAGE = {
    "default-float32": (jnp.float32, None, jnp.float32, 4),
    "default-bfloat16": (jnp.bfloat16, None, jnp.bfloat16, 2),
    "default-float16": (jnp.float16, None, jnp.float32, 4),  # |g|² overflows float16
    "float32-for-bfloat16": (jnp.bfloat16, jnp.float32, jnp.float32, 4),
    "float32-for-float16": (jnp.float16, "float32", jnp.float32, 4),
    "bfloat16-for-float32": (jnp.float32, jnp.bfloat16, jnp.bfloat16, 2),
    "int8-for-float32": (jnp.float32, "int8", jnp.uint8, 1 + 4 / 256),
    "int8-for-bfloat16": (jnp.bfloat16, Int8(), jnp.uint8, 1 + 4 / 256),
}


@pytest.mark.parametrize("case", STORAGE.values(), ids=STORAGE.keys())
def test_nu_dtype_and_bytes_per_parameter(case):
    param_dtype, nu_dtype, expected, nu_bytes = case
    params = {"w": jnp.ones(BIG, param_dtype)}
    tx = optax_rmsprop.rmsprop(1e-3, nu_dtype=nu_dtype)
    state = tx.init(params)
    nu = state.nu["w"]
    stored = nu.codes if is_quantized(nu) else nu
    assert stored.dtype == expected and stored.shape == BIG
    if is_quantized(nu):
        assert nu.scales.dtype == jnp.float32 and nu.scales.shape == (BIG[0], BIG[1] // 256)
    # The count (4 bytes) is the only other state.
    size = optax_rmsprop.state_size(tx, params)
    assert size.num_params == math.prod(BIG)
    assert size.state_bytes == nu_bytes * math.prod(BIG) + 4
    if nu_dtype in ("int8", Int8()):
        assert size.bytes_per_param <= 1.02
    # The update keeps the parameter's dtype, and the state its types.
    updates, new_state = tx.update(jax.tree.map(lambda p: 0.5 * p, params), state, params)
    assert updates["w"].dtype == param_dtype
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)


@pytest.mark.parametrize(
    "mu_dtype",
    [None, jnp.bfloat16, jnp.float32, "int8"],
    ids=["mu_default", "mu_bfloat16", "mu_float32", "mu_int8"],
)
@pytest.mark.parametrize(
    "nu_dtype", [None, jnp.bfloat16, "int8"], ids=["nu_default", "nu_bfloat16", "nu_int8"]
)
def test_centered_and_momentum_buffers(nu_dtype, mu_dtype):
    """``mu_dtype`` sets the centered mean and the momentum buffer (signed 8-bit codes for
    "int8", at most 1.02 bytes per value each); ``nu_dtype`` only ``v``."""
    params = {"w": jnp.ones(BIG, jnp.float32)}
    tx = optax_rmsprop.rmsprop(
        1e-3, centered=True, momentum=0.9, nu_dtype=nu_dtype, mu_dtype=mu_dtype
    )
    state = tx.init(params)
    for buffer in (state.mu["w"], state.momentum["w"]):
        if mu_dtype == "int8":
            assert buffer.codes.dtype == jnp.int8 and buffer.codes.shape == BIG
            assert buffer.scales.dtype == jnp.float32 and buffer.scales.shape == (BIG[0], 4)
        else:
            assert buffer.dtype == (mu_dtype or jnp.float32)
    nu_bytes = {None: 4, jnp.bfloat16: 2, "int8": 1 + 4 / 256}[nu_dtype]
    mu_bytes = 2 * (1 + 4 / 256 if mu_dtype == "int8" else jnp.dtype(mu_dtype or "f4").itemsize)
    size = optax_rmsprop.state_size(tx, params)
    assert size.state_bytes == (nu_bytes + mu_bytes) * math.prod(BIG) + 4
    if mu_dtype == "int8":
        assert mu_bytes / 2 <= 1.02
    # The update keeps the state's types.
    _, new_state = tx.update(jax.tree.map(lambda p: 0.5 * p, params), state, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)


def test_small_leaves_stay_float32():
    """Leaves under ``min_size`` (4096) keep a float32 ``v``, whatever the parameter dtype."""
    params = {
        "kernel": jnp.ones((64, 64), jnp.bfloat16),  # 4096 values: 8-bit
        "almost": jnp.ones((4095,), jnp.bfloat16),  # one short: float32
        "bias": jnp.ones((64,), jnp.float32),
        "scalar": jnp.ones((), jnp.float16),
    }
    state = optax_rmsprop.rmsprop(1e-3, nu_dtype="int8").init(params)
    assert is_quantized(state.nu["kernel"])
    for name in ("almost", "bias", "scalar"):
        assert state.nu[name].dtype == jnp.float32 and state.nu[name].shape == params[name].shape
    size = optax_rmsprop.state_size(optax_rmsprop.rmsprop(1e-3, nu_dtype="int8"), params)
    # The kernel's blocks run along both of its axes (rows of 64 would pad to 256): 16.
    assert state.nu["kernel"].scales.shape == (16,)
    assert size.state_bytes == (4096 + 4 * 16) + 4 * (4095 + 64 + 1) + 4


@pytest.mark.parametrize("block_size, min_size", [(64, 100), (1000, 1), (7, 7)])
def test_block_size_and_min_size_are_honoured(block_size, min_size):
    config = Int8(block_size=block_size, min_size=min_size)
    sizes = [min_size - 1, min_size, 1000, 4096]
    params = {f"n{n}": jnp.ones((n,)) for n in sizes if n > 0}
    tx = optax_rmsprop.scale_by_rms(nu_dtype=config)
    state = tx.init(params)
    expected_bytes = 4  # the count
    for name, p in params.items():
        nu = state.nu[name]
        if p.size >= min_size:
            assert is_quantized(nu) and nu.codes.shape == p.shape, name
            assert nu.scales.shape == (-(-p.size // block_size),), name
            expected_bytes += p.size + 4 * nu.scales.size
        else:
            assert nu.dtype == jnp.float32, name
            expected_bytes += 4 * p.size
    assert optax_rmsprop.state_size(tx, params).state_bytes == expected_bytes
    # A step on a leaf whose size is not a multiple of the block size (padding) is fine.
    grads = jax.tree.map(lambda p: jnp.linspace(0.1, 3.0, p.size).reshape(p.shape), params)
    updates, new_state = tx.update(grads, state)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


def test_state_size_from_shapes_allocates_nothing():
    """2³² bfloat16 parameters (8 GiB) and their state, described without any memory."""
    params = {
        "embed": jax.ShapeDtypeStruct((1 << 20, 4096), jnp.bfloat16),
        "norm": jax.ShapeDtypeStruct((1024,), jnp.bfloat16),  # < min_size: float32
    }
    before = len(jax.live_arrays())
    n = (1 << 20) * 4096
    cases = {
        None: 2 * (n + 1024),
        jnp.float32: 4 * (n + 1024),
        "int8": n + 4 * n // 256 + 4 * 1024,
    }
    for nu_dtype, nu_bytes in cases.items():
        size = optax_rmsprop.state_size(optax_rmsprop.rmsprop(1e-3, nu_dtype=nu_dtype), params)
        assert size.num_params == n + 1024
        assert size.state_bytes == nu_bytes + 4, nu_dtype
    assert optax_rmsprop.state_size(
        optax_rmsprop.rmsprop(1e-3, nu_dtype="int8"), params
    ).bytes_per_param == pytest.approx(1.0156, abs=1e-4)
    assert len(jax.live_arrays()) == before


def test_state_size_agrees_with_init():
    params = {"w": jnp.ones((128, 64)), "b": jnp.ones((64,), jnp.bfloat16)}
    tx = optax_rmsprop.rmsprop(
        1e-3, centered=True, momentum=0.9, nu_dtype=Int8(block_size=32, min_size=128)
    )
    state = tx.init(params)
    assert optax_rmsprop.state_size(tx, params).state_bytes == sum(
        x.nbytes for x in jax.tree.leaves(state)
    )


# ---------------------------------------------------------------------------
# The 8-bit code and its blocks in NumPy, written from the docstring of
# optax_rmsprop.quantize (a table of code values and a search, not its bit arithmetic).


def code_table(codes: int = 256, top_exponent: int = 31) -> np.ndarray:
    """The value of each code (each magnitude, for signed codes) as a fraction of its
    block's maximum m (float64, exact): 0 -> 0; c >= 1 -> 2^(e - top_exponent)·(1 + k/8)
    where c - 7 = 8e + k, 0 <= k < 8."""
    table = np.zeros(codes)
    for c in range(1, codes):
        e, k = divmod(c - 7, 8)
        table[c] = 2.0 ** (e - top_exponent) * (1 + k / 8)
    return table


CODE_TABLE = code_table()


def np_layout(shape: tuple[int, ...], block_size: int) -> tuple[int, int]:
    """(k, n): the fewest trailing axes k whose flattened size T splits into whole
    blocks of n values, n the largest in [4/5 block_size, block_size] that divides T;
    where none do, n = block_size and the fewest k whose T pads to whole blocks with
    at most T/4 of padding (all the axes when none does)."""
    shape = shape or (1,)
    for k in range(1, len(shape) + 1):
        size = math.prod(shape[-k:])
        fits = [n for n in range(1, block_size + 1) if 5 * n >= 4 * block_size and size % n == 0]
        if fits:
            return k, max(fits)
    for k in range(1, len(shape) + 1):
        size = math.prod(shape[-k:])
        padded = math.ceil(size / block_size) * block_size
        if 4 * (padded - size) <= size:
            return k, block_size
    return len(shape), block_size


def np_scales_shape(shape: tuple[int, ...], block_size: int) -> tuple[int, ...]:
    shape = shape or (1,)
    k, n = np_layout(shape, block_size)
    return (*shape[:-k], math.ceil(math.prod(shape[-k:]) / n))


def np_blocks(x: np.ndarray, block_size: int) -> np.ndarray:
    """(*leading axes, blocks, n): the blocked trailing axes, flattened, in (zero-padded)
    blocks."""
    shape = x.shape or (1,)
    k, n = np_layout(shape, block_size)
    flat = x.reshape(*shape[: len(shape) - k], math.prod(shape[-k:]))
    padded = math.ceil(flat.shape[-1] / n) * n
    flat = np.pad(flat, [(0, 0)] * (flat.ndim - 1) + [(0, padded - flat.shape[-1])])
    return flat.reshape(*flat.shape[:-1], -1, n)


def np_unblock(blocks: np.ndarray, shape: tuple[int, ...], block_size: int) -> np.ndarray:
    k, _ = np_layout(shape or (1,), block_size)
    flat = blocks.reshape(*blocks.shape[:-2], -1)
    return flat[..., : math.prod((shape or (1,))[-k:])].reshape(shape)


def np_neighbour_codes(blocks: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each positive value, the codes in [1, 255] just below and just above v/m (the
    same code where v/m is one; code 1 for both below the range); 0 for zeros."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(blocks > 0, blocks.astype(np.float64) / m[..., None], 0.0)
    low = np.clip(np.searchsorted(CODE_TABLE, ratio, side="right") - 1, 1, 255)
    high = np.clip(np.searchsorted(CODE_TABLE, ratio, side="left"), 1, 255)
    positive = blocks > 0
    return np.where(positive, low, 0), np.where(positive, high, 0)


def np_quantize_blocks(
    blocks: np.ndarray, m: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Per block the scale m (its maximum unless given); each positive value the code
    whose value m·table[c] is the nearest (a value below the range: code 1); zeros code
    0. Returns the nearest codes, the codes on either side, and m."""
    m = blocks.max(axis=-1) if m is None else m
    low, high = np_neighbour_codes(blocks, m)
    ratio = blocks.astype(np.float64) / np.where(m > 0, m, 1)[..., None]
    nearest = np.where(CODE_TABLE[high] - ratio < ratio - CODE_TABLE[low], high, low)
    return nearest, (low, high), m


def np_quantize(v: np.ndarray, config: Int8) -> tuple[np.ndarray, np.ndarray]:
    codes, _, m = np_quantize_blocks(np_blocks(v.astype(np.float32), config.block_size))
    return np_unblock(codes.astype(np.uint8), v.shape, config.block_size), m


def np_dequantize(codes: np.ndarray, m: np.ndarray, config: Int8) -> np.ndarray:
    values = CODE_TABLE[np_blocks(codes, config.block_size)] * m[..., None]
    return np_unblock(values.astype(np.float32), codes.shape, config.block_size)


# ---------------------------------------------------------------------------
# The 8-bit code: round trips.

CONFIGS = {
    "default": Int8(),  # stochastic rounding
    "nearest": Int8(rounding="nearest"),
    "nearest-block16": Int8(block_size=16, min_size=1, rounding="nearest"),
    "nearest-block100": Int8(block_size=100, min_size=1, rounding="nearest"),
    "stochastic-block64": Int8(block_size=64, min_size=1, rounding="stochastic"),
}


def in_range_blocks(config: Int8, n_values: int = 1 << 15, seed: int = 0) -> np.ndarray:
    """Blocks whose values cover their whole in-range span [m·smallest_code_value(), m],
    both ends included, densely on a log scale; the maxima m span from 1e3 down to the
    smallest that keeps the span above float32's smallest normal (XLA on CPU flushes
    subnormals to 0)."""
    rng = np.random.default_rng(seed)
    n_blocks = max(n_values // config.block_size, 64)
    smallest = quantize.smallest_code_value()
    lowest = math.log10(np.finfo(np.float32).tiny / smallest)
    maxima = 10.0 ** rng.uniform(lowest, 3, n_blocks)
    maxima[:2] = 10.0 ** math.ceil(lowest), 1e3
    exponents = np.linspace(math.log2(smallest), 0, config.block_size)  # log2(v / m)
    spacing = exponents[1] - exponents[0]
    exponents = np.tile(exponents, (n_blocks, 1))  # the ends exact, the others jittered
    exponents[:, 1:-1] += rng.uniform(-0.45, 0.45, (n_blocks, config.block_size - 2)) * spacing
    fractions = 2.0 ** rng.permuted(exponents, axis=1)
    return maxima.astype(np.float32)[:, None] * fractions.astype(np.float32)


@jax.jit(static_argnames="config")
def quantize_dequantize(v: jax.Array, config: Int8, seed: jax.Array) -> tuple[jax.Array, ...]:
    q = quantize.quantize(v, config, seed)
    return q.codes, q.scales, quantize.dequantize(q, config)


def round_trip(v: np.ndarray, config: Int8, seed: int = 0) -> np.ndarray:
    codes, scales, back = quantize_dequantize(v, config=config, seed=jnp.uint32(seed))
    assert codes.dtype == jnp.uint8 and codes.shape == v.shape
    assert scales.dtype == jnp.float32
    assert scales.shape == quantize.scales_shape(v.shape, config)
    return np.asarray(back)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_round_trip_error_within_the_stated_bound(config):
    v = in_range_blocks(config)
    back = round_trip(v, config)
    error = np.abs(back.astype(np.float64) / v - 1)
    bound = quantize.relative_error_bound(config)
    assert bound == (1 / 16 if config.rounding == "nearest" else 1 / 8)
    # The bound holds in exact arithmetic; v·(1/m) in float32 adds a few ulp.
    assert error.max() <= bound + 1e-6, (error.max(), bound)
    # The grid is dense enough to come close (nearest: at most 1/17 = 0.94 of the bound).
    assert error.max() > 0.9 * bound, (error.max(), bound)
    # Each block's maximum comes back exactly: it is the stored scale.
    np.testing.assert_array_equal(back.max(axis=1), v.max(axis=1))


def test_default_bound_is_the_documented_one():
    assert Int8() == Int8(rounding="stochastic")  # the default (quantize's docstring)
    assert quantize.relative_error_bound(Int8()) == 0.125  # one code's width
    nearest = Int8(rounding="nearest")
    assert quantize.relative_error_bound(nearest) == 0.0625  # 6.25 % of v, ~3 % of sqrt(v)
    assert quantize.smallest_code_value() == 1.25 * 2.0**-32


@pytest.mark.parametrize("m", [1.0, 3.0e-20, 7.5, 1e30])
def test_every_code_is_the_documented_value(m):
    """The 255 values m·table[c] encode as c and decode to exactly themselves, whatever
    the rounding; the midpoints between neighbouring codes sit at the documented 1/16."""
    v = np.float32(m) * CODE_TABLE.astype(np.float32)  # exact: 4 significant bits
    for rounding in ("nearest", "stochastic"):
        config = Int8(block_size=256, min_size=1, rounding=rounding)
        codes, scales, back = quantize_dequantize(v, config=config, seed=jnp.uint32(7))
        np.testing.assert_array_equal(np.asarray(codes), np.arange(256))
        np.testing.assert_array_equal(np.asarray(scales), [np.float32(m)])
        np.testing.assert_array_equal(np.asarray(back), v)
    gaps = np.diff(CODE_TABLE[1:]) / CODE_TABLE[1:-1]
    assert gaps.max() == 1 / 8 and gaps.min() == pytest.approx(1 / 15)


def test_stochastic_rounding_needs_a_seed():
    with pytest.raises(ValueError, match="seed"):
        quantize.quantize(jnp.ones(64), Int8(rounding="stochastic"))


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_values_from_1e_30_to_1e3_in_one_block(config):
    """In range: within the bound. Below it: back larger (the smallest code), never 0.
    Zeros: 0."""
    rng = np.random.default_rng(1)
    shape = (128, config.block_size)
    v = 10.0 ** rng.uniform(-30, 3, shape)
    v[:, 0] = 10.0 ** rng.uniform(0, 3, shape[0])  # each block's maximum near the top
    v = np.where(rng.random(shape) < 0.2, 0.0, v).astype(np.float32)
    back = round_trip(v, config)
    floor = v.max(axis=1, keepdims=True) * np.float32(quantize.smallest_code_value())
    in_range, below = v >= floor, (v > 0) & (v < floor)
    assert in_range.sum() > 100 and below.sum() > 100
    error = np.abs(back[in_range].astype(np.float64) / v[in_range] - 1)
    assert error.max() <= quantize.relative_error_bound(config) + 1e-6
    assert np.all(back[below] > 0) and np.all(back[below] >= v[below])
    np.testing.assert_array_equal(back[below], np.broadcast_to(floor, v.shape)[below])
    np.testing.assert_array_equal(back[v == 0], 0.0)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_zero_blocks(config):
    """An all-zero block (and one with a single positive value) does not divide by zero."""
    z = np.zeros((3, config.block_size), np.float32)
    z[1, 0] = 5.0
    np.testing.assert_array_equal(round_trip(z, config), z)


def test_blocks_with_a_maximum_near_float32_max():
    """|g|² is saturated at float32's maximum, so v reaches any float32 value; the stated
    bound holds for every block maximum, up to float32's largest (where 1/m is subnormal,
    and flushed to 0)."""
    config = Int8(block_size=4, min_size=1)
    m = np.array([1e37, 2.0**126, 1e38, 3.0e38], np.float32)
    v = m[:, None] * np.float32([1, 0.5, 0.3, 1e-6])
    error = np.abs(round_trip(v, config).astype(np.float64) / v - 1)
    assert error.max() <= quantize.relative_error_bound(config) + 1e-6, error


# ---------------------------------------------------------------------------
# The signed code of the first-moment buffers (mu_dtype="int8").


SIGNED_TABLE = code_table(128, 15)  # magnitudes 0..127, relative to the block's largest |x|


def signed_blocks(config: Int8, seed: int = 0) -> np.ndarray:
    """Blocks of both signs whose magnitudes span [m·smallest, m] on a log scale, some
    below the range and some exact zeros; maxima from 1e-20 to 1e3."""
    rng = np.random.default_rng(seed)
    n_blocks = max((1 << 14) // config.block_size, 64)
    maxima = 10.0 ** rng.uniform(-20, 3, (n_blocks, 1))
    smallest = quantize.smallest_code_value(signed=True)
    exponents = rng.uniform(math.log2(smallest) - 3, 0, (n_blocks, config.block_size))
    exponents[:, 0] = 0  # each block's maximum
    x = maxima * 2.0**exponents * rng.choice([-1.0, 1.0], exponents.shape)
    x[:, 1] = 0.0
    return x.astype(np.float32)


@jax.jit(static_argnames="config")
def signed_round_trip(x: jax.Array, config: Int8, seed: jax.Array) -> tuple[jax.Array, ...]:
    q = quantize.quantize_signed(x, config, seed)
    return q.codes, q.scales, quantize.dequantize(q, config)


def test_every_signed_code_is_the_documented_value():
    """Codes ±c stand for ±m·SIGNED_TABLE[c] (the docstring of quantize_signed)."""
    codes = jnp.arange(-127, 128, dtype=jnp.int32).astype(jnp.int8)
    m = np.float32(3.0)
    q = QuantizedArray(codes=codes, scales=jnp.full((1,), m))
    config = Int8(block_size=255, min_size=1)
    expected = np.sign(np.arange(-127, 128)) * SIGNED_TABLE[np.abs(np.arange(-127, 128))] * m
    np.testing.assert_array_equal(np.asarray(quantize.dequantize(q, config)), expected)
    assert quantize.smallest_code_value(signed=True) == SIGNED_TABLE[1]


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_signed_round_trip_within_the_stated_bound(rounding):
    """In range, the relative error is within relative_error_bound; below it, within
    one smallest code (stochastic) or half of it (nearest) of the block's maximum; signs
    and zeros are kept, and each block's scale is its largest |x|."""
    config = Int8(block_size=64, min_size=1, rounding=rounding)
    x = signed_blocks(config)
    codes, scales, back = signed_round_trip(x, config=config, seed=jnp.uint32(5))
    assert codes.dtype == jnp.int8 and codes.shape == x.shape
    m = np.abs(x).max(axis=1)
    np.testing.assert_array_equal(np.asarray(scales), m[:, None])
    x64, back = x.astype(np.float64), np.asarray(back, np.float64)
    assert np.all(np.sign(back) * np.sign(x64) >= 0) and np.all(back[x64 == 0] == 0)
    smallest = quantize.smallest_code_value(signed=True) * m[:, None].astype(np.float64)
    in_range = np.abs(x64) >= smallest
    error = np.abs(back - x64)
    assert np.max(error[in_range] / np.abs(x64[in_range])) <= (
        quantize.relative_error_bound(config) + 1e-6
    )
    below = (error / smallest)[~in_range]
    assert below.size > 0 and below.max() <= (0.5 if rounding == "nearest" else 1) + 1e-6


def test_signed_stochastic_rounding_is_unbiased():
    """The mean of 200 round trips with different seeds is x, within 6 standard errors
    of the choice between the two codes around it (below the range: 0 and the smallest)."""
    config = Int8(block_size=64, min_size=1)
    x = signed_blocks(config, seed=1)
    backs = jax.jit(
        jax.vmap(
            lambda seed: quantize.dequantize(quantize.quantize_signed(x, config, seed), config)
        )
    )(jnp.arange(SEEDS, dtype=jnp.uint32))
    backs = np.asarray(backs, np.float64)
    m = np.abs(x).max(axis=1, keepdims=True).astype(np.float64)
    ratio = np.abs(x.astype(np.float64)) / np.where(m > 0, m, 1)
    high = np.clip(np.searchsorted(SIGNED_TABLE, ratio, side="left"), 0, 127)
    low = np.clip(np.searchsorted(SIGNED_TABLE, ratio, side="right") - 1, 0, 127)
    low, high = SIGNED_TABLE[low] * m, SIGNED_TABLE[high] * m
    magnitude = np.abs(x.astype(np.float64))
    standard_error = np.sqrt(np.maximum((high - magnitude) * (magnitude - low), 0) / SEEDS)
    mean = backs.mean(axis=0)
    tolerance = 6 * standard_error + (high - low) / SEEDS
    assert np.all(np.abs(mean - x) <= tolerance * (1 + 1e-6) + 1e-30)
    between = standard_error > 1e-6 * magnitude
    z = ((mean - x) * np.sign(x))[between] / standard_error[between]
    assert abs(z.mean()) < 6 / math.sqrt(z.size), z.mean()
    assert 0.9 < np.mean(z**2) < 1.1, np.mean(z**2)


# ---------------------------------------------------------------------------
# Stochastic rounding: right on average, each time within one code.

SEEDS = 200


@pytest.mark.parametrize("block_size", [64, 256])
def test_stochastic_rounding_is_unbiased(block_size):
    """The mean of 200 round trips with different seeds is v, within a few standard
    errors of a choice between the two codes around v; each is within one code of v."""
    config = Int8(block_size=block_size, min_size=1, rounding="stochastic")
    v = in_range_blocks(config, n_values=4096, seed=2)
    backs = jax.jit(
        jax.vmap(lambda seed: quantize.dequantize(quantize.quantize(v, config, seed), config))
    )(jnp.arange(SEEDS, dtype=jnp.uint32))
    backs = np.asarray(backs, np.float64)
    error = np.abs(backs / v - 1)
    assert error.max() <= quantize.relative_error_bound(config) + 1e-6
    _, (low, high), m = np_quantize_blocks(v)
    low, high = CODE_TABLE[low] * m[:, None], CODE_TABLE[high] * m[:, None]
    # On one of the two codes around v, but for rare float32 roundings of v·(1/m) (a
    # block's maximum m becomes code 254 with probability 2**-20 where m·(1/m) < 1).
    outside = (backs < low * (1 - 1e-6)) | (backs > high * (1 + 1e-6))
    assert outside.mean() < 1e-5, np.argwhere(outside)
    # The mean: a value between two codes comes back as the upper one with probability
    # p = (v - low) / (high - low), so the mean of n round trips has the standard error
    # sqrt((high - v)(v - low) / n). Each mean within 6 of them, plus one draw of a code
    # width (v/8) for the heavy tail of a rare event (p or 1 - p ~ 1/n).
    mean = backs.mean(axis=0)
    standard_error = np.sqrt(np.maximum((high - v) * (v - low), 0) / SEEDS)
    assert np.all(np.abs(mean - v) <= 6 * standard_error + v / (8 * SEEDS))
    between = standard_error > 1e-6 * v  # v not on a code
    z = (mean - v)[between] / standard_error[between]
    assert z.size > 0.9 * v.size
    assert abs(z.mean()) < 6 / math.sqrt(z.size), z.mean()  # no bias overall
    assert 0.9 < np.mean(z**2) < 1.1, np.mean(z**2)  # independent from seed to seed
    up = (backs > v * (1 + 1e-6)).mean(axis=0)[between]  # both ways, as often as due
    assert 0.45 < up.mean() < 0.55, up.mean()


def test_stochastic_codes_depend_on_the_seed_only():
    config = Int8(block_size=64, min_size=1, rounding="stochastic")
    v = jnp.asarray(in_range_blocks(config, n_values=4096, seed=3))
    codes = [np.asarray(quantize.quantize(v, config, jnp.uint32(s)).codes) for s in (5, 5, 6)]
    np.testing.assert_array_equal(codes[0], codes[1])
    assert (codes[0] != codes[2]).mean() > 0.1
    # jit and eager draw the same noise.
    jitted = jax.jit(quantize.quantize, static_argnames="config")(v, config, jnp.uint32(5))
    np.testing.assert_array_equal(np.asarray(jitted.codes), codes[0])
    # Nearest rounding ignores the seed.
    nearest = Int8(block_size=64, min_size=1, rounding="nearest")
    np.testing.assert_array_equal(
        quantize.quantize(v, nearest, jnp.uint32(5)).codes,
        quantize.quantize(v, nearest, jnp.uint32(6)).codes,
    )


# ---------------------------------------------------------------------------
# The layout of the blocks: trailing axes, at most 1.02 bytes per value.

LAYOUTS = {  # shape, block size: the shape of the scales
    "64x64": ((64, 64), 256, (16,)),
    "conv3x3x64x64": ((3, 3, 64, 64), 256, (3, 3, 16)),
    "1000x384": ((1000, 384), 256, (1500,)),
    "64x512": ((64, 512), 256, (64, 2)),
    "1024x1024": (BIG, 256, (1024, 4)),
    "40x100-block64": ((40, 100), 64, (63,)),
    "4097": ((4097,), 256, (17,)),  # 17 blocks of 241: no padding
    "960x960": ((960, 960), 256, (960, 4)),  # blocks of 240 along the rows: no padding
    "17x300": ((17, 300), 256, (20,)),  # 20 blocks of 255 over both axes
    "4099": ((4099,), 256, (17,)),  # a prime: 17 zero-padded blocks of 256
    "scalar": ((), 256, (1,)),
}


@pytest.mark.parametrize("shape, block_size, expected", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_scales_shape(shape, block_size, expected):
    config = Int8(block_size=block_size, min_size=1)
    assert quantize.scales_shape(shape, config) == expected
    assert np_scales_shape(shape, block_size) == expected
    if shape:  # and the arrays quantize makes
        q = jax.eval_shape(lambda v: quantize.quantize(v, config, 0), jnp.zeros(shape))
        assert q.codes.shape == shape and q.scales.shape == expected


REALISTIC_LEAVES = [
    (7, 7, 3, 64),  # ResNet-50 conv kernels, HWIO
    (1, 1, 64, 256),
    (3, 3, 64, 64),
    (1, 1, 256, 64),
    (3, 3, 128, 128),
    (1, 1, 1024, 2048),
    (3, 3, 512, 512),
    (2048, 1000),  # dense
    (768, 3072),
    (3072, 768),
    (50257, 768),  # GPT-2 embedding
    (12, 64, 768),  # attention heads
    (17, 300),
    (4097,),
    (4096,),
    (65, 65),
    (5, 5, 3, 96),
]


@pytest.mark.parametrize("shape", REALISTIC_LEAVES, ids=str)
def test_quantized_leaves_cost_at_most_1_02_bytes_per_value(shape):
    params = {"w": jax.ShapeDtypeStruct(shape, jnp.float32)}
    tx = optax_rmsprop.rmsprop(1e-3, nu_dtype="int8")
    nu = jax.eval_shape(tx.init, params).nu["w"]
    assert is_quantized(nu) and nu.codes.shape == shape
    assert nu.scales.shape == np_scales_shape(shape, 256)
    size = optax_rmsprop.state_size(tx, params)
    assert size.state_bytes == math.prod(shape) + 4 * math.prod(nu.scales.shape) + 4
    assert (size.state_bytes - 4) / size.num_params <= 1.02, size


def test_every_shape_the_default_quantizes_costs_at_most_1_02_bytes_per_value():
    """The rule (at most a quarter of a block of padding per block) bounds the scales at
    1.25·4/256 bytes per value, for any shape of at least 4096 values."""
    rng = np.random.default_rng(4)
    config, checked = Int8(), 0
    while checked < 3000:
        shape = tuple(int(n) for n in rng.integers(1, 700, rng.integers(1, 5)))
        if not config.applies_to(shape):
            continue
        scales = quantize.scales_shape(shape, config)
        assert scales == np_scales_shape(shape, 256), shape
        assert 1 + 4 * math.prod(scales) / math.prod(shape) <= 1.02, (shape, scales)
        checked += 1


# ---------------------------------------------------------------------------
# 8-bit steps against NumPy.

F32_BIG = np.finfo(np.float32).max * (1 - 4 * np.finfo(np.float32).eps)  # |g|² saturates


def np_leaky(old, new, rho):
    """(1 − ρ)·new + ρ·old in float32 as optax_rmsprop.hyperparameters.leaky_average
    documents it: one weight, 1 − ρ taken in float64 and rounded once, from the nearer end."""
    f32 = np.float32
    if 1 - rho <= 0.5:
        return old + f32(1 - rho) * (new - old)
    return new + f32(rho) * (old - new)


def np_step(g, codes, m, config, lr, rho, eps, p=None, weight_decay=0.0):
    """d2l / optax's rule in float32 on the dequantized v, then v quantized again:
    v ← ρv + (1 − ρ)·min(g², big); u = −η g / √(v + ε) (optax/_src/transform.py, scale_by_rms), with
    the unquantized new v and g + λθ for coupled weight decay.

    The new scales: rounded to nearest (or with coupled weight decay), the blocks' maxima
    of the new v. Rounded stochastically, the same update applied to the blocks' maxima,
    (1 − ρ)·min(G², big) + ρ·(the largest old code's value), G = max |g|, times
    1 + 2⁻²⁰ (core._requantize: a margin for the roundings). Returns u, the new v, its
    codes and scales."""
    f32 = np.float32
    bs = config.block_size
    old_v = np_dequantize(codes, m, config)
    g_eff = g if p is None else g + f32(weight_decay) * p
    v = np_leaky(old_v, np.minimum(g_eff * g_eff, F32_BIG), rho)
    u = -f32(lr) * g_eff / np.sqrt(v + f32(eps))
    if config.rounding == "nearest" or p is not None:
        scales = None
    else:
        g_max = np.abs(np_blocks(g, bs)).max(axis=-1)
        old_max = (CODE_TABLE[np_blocks(codes, bs).max(axis=-1)] * m).astype(f32)
        scales = np_leaky(old_max, np.minimum(g_max * g_max, F32_BIG), rho)
        scales = scales * f32(1 + 2.0**-20)
    new_codes, _, scales = np_quantize_blocks(np_blocks(v, bs), scales)
    return u, v, np_unblock(new_codes.astype(np.uint8), v.shape, bs), scales


ORACLE_CASES = {  # config, shape
    "nearest-block64-40x100": (Int8(64, 1, "nearest"), (40, 100)),  # flat: 63 blocks
    "nearest-conv3x3x16x64": (Int8(256, 1, "nearest"), (3, 3, 16, 64)),  # last two axes
    "nearest-5x300": (Int8(256, 1, "nearest"), (5, 300)),  # flat: 1500 values, 6 blocks
    "nearest-block100-7x2x50": (Int8(100, 1, "nearest"), (7, 2, 50)),
    "stochastic-block64-40x100": (Int8(64, 1, "stochastic"), (40, 100)),
    "stochastic-conv3x3x16x64": (Int8(256, 1, "stochastic"), (3, 3, 16, 64)),
    "stochastic-block100-7x2x50": (Int8(100, 1, "stochastic"), (7, 2, 50)),
}


@pytest.mark.parametrize("weight_decay", [None, 0.5], ids=["plain", "coupled_wd"])
@pytest.mark.parametrize("config, shape", ORACLE_CASES.values(), ids=ORACLE_CASES.keys())
def test_one_int8_step_matches_numpy(config, shape, weight_decay):
    lr, rho, eps = 0.01, 0.9, 1e-8
    tx = optax_rmsprop.rmsprop(lr, decay=rho, eps=eps, weight_decay=weight_decay, nu_dtype=config)
    rng = np.random.default_rng(0)
    params = rng.normal(size=shape).astype(np.float32)
    # Gradients over 8 orders of magnitude, some exactly zero.
    scale = 10.0 ** rng.uniform(-6, 2, shape)
    g1, g2 = (np.where(rng.random(shape) < 0.05, 0, scale * rng.normal(size=shape)) for _ in "12")
    g1, g2 = g1.astype(np.float32), g2.astype(np.float32)
    state = tx.init(jnp.asarray(params))
    _, state = tx.update(jnp.asarray(g1), state, jnp.asarray(params))  # a non-trivial v
    nu = state.nu
    assert nu.scales.shape == np_scales_shape(shape, config.block_size)
    u, state = tx.update(jnp.asarray(g2), state, jnp.asarray(params))

    expected_u, new_v, codes, scales = np_step(
        g2,
        np.asarray(nu.codes),
        np.asarray(nu.scales),
        config,
        lr,
        rho,
        eps,
        params if weight_decay else None,
        weight_decay or 0.0,
    )
    np.testing.assert_allclose(np.asarray(u), expected_u, rtol=2e-6, atol=0)
    np.testing.assert_allclose(np.asarray(state.nu.scales), scales, rtol=1e-6)
    actual = np.asarray(state.nu.codes, np.int32)
    if config.rounding == "nearest":
        # Equal, except where a value sits within float32 rounding of a midpoint.
        diff = np.abs(actual - codes.astype(np.int32))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, np.argwhere(diff)
    else:
        # One of the two codes around the new v (give or take float32 rounding at a code).
        _, (low, high), _ = np_quantize_blocks(np_blocks(new_v, config.block_size), scales)
        low, high = (np_unblock(c, shape, config.block_size) for c in (low, high))
        assert np.all((actual >= low - 1) & (actual <= high + 1))
        assert ((actual < low) | (actual > high)).mean() < 1e-3
        assert (actual == high).mean() > 0.05 and (actual == low).mean() > 0.05


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
@pytest.mark.parametrize("weight_decay", [None, 0.1], ids=["plain", "coupled_wd"])
def test_updated_scales_bound_the_new_v(weight_decay, rounding):
    """Over steps with gradients from 1e-20 to 1e15 (and later ones smaller, so that v
    falls), each block's stored scale is at least its largest new v and at most twice
    it, so every block with a positive value has a code of at least 247 (m/2)."""
    config = Int8(block_size=64, min_size=256, rounding=rounding)
    rho = 0.9
    tx = optax_rmsprop.rmsprop(0.01, decay=rho, weight_decay=weight_decay, nu_dtype=config)
    rng = np.random.default_rng(5)
    shapes = {"w": (40, 100), "k": (3, 3, 8, 32)}
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    params["w"].reshape(-1)[:128] = 0  # two blocks that stay zero
    state = tx.init(jax.tree.map(jnp.asarray, params))
    update = jax.jit(tx.update)
    for step in range(6):
        grads = {}
        for name, shape in shapes.items():
            magnitude = 10.0 ** rng.uniform(-20, 15 if step < 3 else 9, shape)
            grads[name] = (magnitude * rng.normal(size=shape)).astype(np.float32)
        grads["w"].reshape(-1)[:128] = 0
        old = state.nu
        _, state = update(grads, state, params)
        for name in shapes:
            before, after = old[name], state.nu[name]
            _, new_v, _, _ = np_step(
                grads[name],
                np.asarray(before.codes),
                np.asarray(before.scales),
                config,
                0.01,
                rho,
                1e-8,
                params[name] if weight_decay else None,
                weight_decay or 0.0,
            )
            largest = np_blocks(new_v, config.block_size).max(axis=-1)
            scales = np.asarray(after.scales)
            assert np.all(scales >= largest * (1 - 1e-6)), (step, name)
            assert np.all(scales <= 2 * largest * (1 + 1e-6)), (step, name)
            codes = np_blocks(np.asarray(after.codes), config.block_size)
            top = codes.max(axis=-1)
            assert np.all((top >= 247) == (largest > 0)), (step, name)
            assert np.all(top[largest == 0] == 0) and np.all(scales[largest == 0] == 0)
            back = np_blocks(np.asarray(quantize.dequantize(after, config)), config.block_size)
            assert np.all(back <= scales[..., None]), (step, name)
        np.testing.assert_array_equal(np.asarray(state.nu["w"].scales)[:2], 0)


def test_coupled_weight_decay_scale_within_twice_the_maximum():
    """With coupled weight decay the scale is the block's maximum of |g + λθ| (within
    twice of it), not max|g| + λ·max|θ|, which is twice too much where the two peak at
    different places."""
    config = Int8(block_size=256, min_size=256, rounding="stochastic")
    tx = optax_rmsprop.rmsprop(0.1, decay=0.9, weight_decay=1.0, nu_dtype=config)
    params = jnp.zeros(256).at[1].set(1.0)  # λθ = 1 at 1
    grads = jnp.zeros(256).at[0].set(1.0)  # g = 1 at 0: g + λθ = 1 at 0 and 1
    _, state = tx.update(grads, tx.init(params), params)
    largest = float(jnp.max(quantize.dequantize(state.nu, config)))  # 0.1 = (1 - ρ)·1²
    assert largest == pytest.approx(0.1, rel=1 / 8)
    assert float(state.nu.scales[0]) <= 2 * 0.1 * (1 + 1e-6)  # is 0.4
    assert int(jnp.max(state.nu.codes)) >= 247  # is 239


# ---------------------------------------------------------------------------
# The 8-bit state under optax.inject_hyperparams.

SMALL_INT8 = Int8(block_size=64, min_size=256)


def int8_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.normal(size=(16, 40)), jnp.float32),  # 640: 10 blocks
        "b": jnp.asarray(rng.normal(size=(40,)), jnp.bfloat16),  # small: float32 v
    }


def int8_grads(params, seed=1):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(
            10.0 ** rng.uniform(-4, 1, p.shape) * rng.normal(size=p.shape), p.dtype
        ),
        params,
    )


def test_int8_state_under_inject_hyperparams():
    tx = optax.inject_hyperparams(optax_rmsprop.rmsprop)(
        learning_rate=0.01, decay=0.9, centered=True, momentum=0.9, nu_dtype=SMALL_INT8
    )
    params = int8_params()
    grads = int8_grads(params)
    state = tx.init(params)
    assert len(quantized_leaves(state.inner_state)) == 1
    update = jax.jit(tx.update)
    _, state1 = update(grads, state, params)
    state1.hyperparams["learning_rate"] = jnp.asarray(0.003, jnp.float32)
    updates, state2 = update(grads, state1, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(state2, state1, state)
    # The same two steps without injection, the learning rate changed in between. The
    # decay as the float32 array injection makes of it: a number's 1 - decay is taken in
    # float64, an array's in float32 (hyperparameters.derive), 2e-7 apart at 0.9.
    decay = jnp.asarray(0.9, jnp.float32)
    direct = [
        optax_rmsprop.rmsprop(lr, decay, centered=True, momentum=0.9, nu_dtype=SMALL_INT8)
        for lr in (0.01, 0.003)
    ]
    _, state = direct[0].update(grads, direct[0].init(params), params)
    expected = direct[1].update(grads, state, params)
    # Another compilation: floats to 1e-6, and a code where a value sits at a rounding tie.
    assert_trees_close((updates, state2.inner_state), expected, 1e-6, codes=(1, 0.01))


# ---------------------------------------------------------------------------
# A leaky average that falls slowly: what rounding to the nearest code cannot follow,
# and what stochastic rounding follows on average.

STALLS = pytest.mark.xfail(
    strict=True,
    reason="round-to-nearest storage of v: an entry that moves by less than half a code (int8, "
    "relative to its block's maximum) or half an ulp (bfloat16) per step keeps its old value",
)
NOISY = pytest.mark.xfail(
    strict=True,
    reason="stochastic rounding: the mean of v follows (test below), but the rounding noise of "
    "the last ~1/(1 - decay) steps adds up (std of v 28% at 0.99, 54% at 0.999), so the median "
    "v is ~10% low and the median step 5.6% (0.99) / 6.0% (0.999) high",
)
NEAREST, STOCHASTIC = (
    Int8(min_size=256, rounding="nearest"),
    Int8(min_size=256, rounding="stochastic"),
)
FALLING = {  # storage of v, decay
    "int8-decay0.9": pytest.param(NEAREST, 0.9, marks=STALLS),  # -21%
    "int8-decay0.99": pytest.param(NEAREST, 0.99, marks=STALLS),  # -99%
    "bfloat16-decay0.999": pytest.param(jnp.bfloat16, 0.999, marks=STALLS),  # -40%
    "int8_stochastic-decay0.9": pytest.param(STOCHASTIC, 0.9),  # +0.4%
    "int8_stochastic-decay0.99": pytest.param(STOCHASTIC, 0.99, marks=NOISY),
    "int8_stochastic-decay0.999": pytest.param(STOCHASTIC, 0.999, marks=NOISY),
}


def falling_average(nu_dtype, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """16 blocks of 256: the first value of each block keeps |g| = 1 (the block's maximum);
    the others see |g| = 1 for 100 steps, then 0.01 for 1000. The last step and v of
    those others (eps = 0: the step is g/√v)."""
    n = 4096
    falling = np.arange(n) % 256 != 0
    tx = optax_rmsprop.scale_by_rms(decay=decay, eps=0.0, nu_dtype=nu_dtype)

    def step(state, t):
        g = jnp.where(falling & (t >= 100), 0.01, 1.0)
        updates, state = tx.update(g, state)
        return state, updates

    state, updates = jax.jit(lambda s: jax.lax.scan(step, s, jnp.arange(1100)))(
        tx.init(jnp.zeros(n))
    )
    v = state.nu
    if is_quantized(v):
        v = quantize.dequantize(v, nu_dtype)
    return np.asarray(updates[-1])[falling], np.asarray(v, np.float32)[falling]


@pytest.mark.parametrize("nu_dtype, decay", FALLING.values(), ids=FALLING.keys())
def test_v_follows_a_falling_average(nu_dtype, decay):
    """With float32 state v decays towards 1e-4 and the step g/√v grows back; the median
    step with light state should stay within 5% of it."""
    reference, _ = falling_average(None, decay)
    light, _ = falling_average(nu_dtype, decay)
    assert np.median(light) == pytest.approx(np.median(reference), rel=0.05)


@pytest.mark.parametrize("decay", [0.9, 0.99, 0.999])
def test_stochastic_rounding_follows_a_falling_average_on_average(decay):
    """The mean of the 4080 falling entries of v (all equal with float32 state) stays
    within 2% of float32's."""
    _, reference = falling_average(None, decay)
    _, light = falling_average(STOCHASTIC, decay)
    assert np.ptp(reference) == 0
    assert light.mean() == pytest.approx(reference[0], rel=0.02)


# ---------------------------------------------------------------------------
# The per-step protocol of bitsandbytes: from the same state, the light step against the
# float32 one, every variant. (Save and load, bit for bit: tests/test_checkpoint.py.)

# storage: (options, bound on the update's relative error, bound on the new state's)
# * From the same state an 8-bit update is the float32 one, up to a few float32 roundings
#   that two compilations may place differently: the rule steps from v, m̄ and b as
#   stored, in float32, and rounds only what it stores. (bfloat16 storage rounds v, m̄
#   and b before the update uses them, by design, so it is not part of this protocol.)
# * A new 8-bit state is within one code of the float32 one: 1/8 of the value with
#   stochastic rounding, 1/16 to nearest; below the codes' range, within the smallest
#   code of its block.
PROTOCOL_STORAGES = {
    "nu_int8": ({"nu_dtype": INT8_SMALL}, 2**-20, 2**-3),
    "nu_int8_nearest": (
        {"nu_dtype": Int8(block_size=4, min_size=8, rounding="nearest")},
        2**-20,
        2**-4,
    ),
    "mu_int8": ({"mu_dtype": INT8_SMALL}, 2**-20, 2**-3),
    "all_int8": ({"nu_dtype": INT8_SMALL, "mu_dtype": INT8_SMALL}, 2**-20, 2**-3),
}
# Variants run by default; the others are slow tests.
PROTOCOL_QUICK = (
    "plain",
    "centered-momentum-nesterov-bias_correction-weight_decay_coupled-initial_scale",
    "momentum-lr_outside_momentum",
    "everything",
)


def as_float32(state: Any) -> Any:
    """The state as float32 buffers: 8-bit blocks decoded, bfloat16 widened."""

    def widen(x):
        if is_quantized(x):
            return quantize.dequantize(x, INT8_SMALL)
        return x.astype(jnp.float32) if x.dtype == jnp.bfloat16 else x

    return jax.tree.map(widen, state, is_leaf=is_quantized)


def state_floor(state: Any) -> Any:
    """Per value of each buffer, the absolute error its storage allows below the codes'
    range: the smallest code of its block (0 for float buffers)."""

    def floor(x):
        if not is_quantized(x):
            return jnp.zeros(jnp.shape(x), jnp.float32)
        signed = x.codes.dtype == jnp.int8
        smallest = quantize.smallest_code_value(signed=signed)
        ones = QuantizedArray(
            jnp.full(x.codes.shape, 127 if signed else 255, x.codes.dtype), x.scales
        )
        return smallest * quantize.dequantize(ones, INT8_SMALL)

    return jax.tree.map(floor, state, is_leaf=is_quantized)


def protocol_cases():
    for storage, (options, *_) in PROTOCOL_STORAGES.items():
        for name, kwargs in VARIANTS.items():
            first_moment = kwargs.get("centered") or kwargs.get("momentum") is not None
            if "mu_dtype" in options and not first_moment or "_dtype" in str(kwargs.keys()):
                continue  # no m̄ or b to store; or a variant that is itself a storage
            marks = () if name in PROTOCOL_QUICK or storage == "all_int8" else pytest.mark.slow
            yield pytest.param(storage, name, id=f"{storage}-{name}", marks=marks)


@pytest.mark.parametrize("storage, variant", list(protocol_cases()))
def test_light_step_against_float32_from_the_same_state(storage, variant):
    """Six steps: at each, the float32 transformation starts from the light state decoded,
    and both take the same gradient. The updates agree within the storage's bound, and
    the new light state, decoded, within its bound of the float32 one."""
    options, update_bound, state_bound = PROTOCOL_STORAGES[storage]
    kwargs = with_lr(VARIANTS[variant], 0.05)
    light = optax_rmsprop.rmsprop(**kwargs, **options)
    full = optax_rmsprop.rmsprop(**kwargs)
    rng = np.random.default_rng(0)
    params = make_tree(rng)
    state = light.init(params)
    for step in range(6):
        grads = make_tree(rng)
        start = as_float32(state)
        u_light, state = light.update(grads, state, params)
        u_full, new_full = full.update(grads, start, params)
        for (path, a), e in zip(
            jax.tree.leaves_with_path(u_light), jax.tree.leaves(u_full), strict=True
        ):
            a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
            scale = np.abs(e).max(initial=0.0)  # where entries cancel, relative to the leaf
            assert np.all(np.abs(a - e) <= update_bound * (np.abs(e) + scale) + 1e-30), (
                f"step {step}, update{jax.tree_util.keystr(path)}: {a} vs {e}"
            )
        decoded, floor = as_float32(state), state_floor(state)
        buffers = zip(
            jax.tree.leaves_with_path(decoded),
            jax.tree.leaves(new_full),
            jax.tree.leaves(floor),
            strict=True,
        )
        for (path, a), e, f in buffers:
            if np.ndim(a) == 0 and np.asarray(a).dtype == np.int32:
                assert a == e  # the count
                continue
            a, e, f = (np.asarray(x, np.float64) for x in (a, e, f))
            assert np.all(np.abs(a - e) <= state_bound * np.abs(e) + f * (1 + 1e-6)), (
                f"step {step}, state{jax.tree_util.keystr(path)}: {a} vs {e}"
            )
        params = optax.apply_updates(params, u_light)


# ---------------------------------------------------------------------------
# Every preset with momentum keeps it in 8 bits; the frameworks' formats refuse it.

MOMENTUM_PRESETS = {  # each with momentum (and centered where it has it)
    "torch": lambda **kw: presets.torch(lr=0.01, momentum=0.9, centered=True, **kw),
    "keras": lambda **kw: presets.keras(learning_rate=0.01, momentum=0.9, centered=True, **kw),
    "tf_keras": lambda **kw: presets.tf_keras(
        learning_rate=0.01, momentum=0.9, centered=True, **kw
    ),
    "tf1": lambda **kw: presets.tf1(0.01, momentum=0.9, centered=True, **kw),
    "gluon": lambda **kw: presets.gluon(0.01, centered=True, **kw),
    "paddle": lambda **kw: presets.paddle(0.01, momentum=0.9, centered=True, **kw),
    "chainer_graves": lambda **kw: presets.chainer_graves(lr=0.01, momentum=0.9, **kw),
}


@pytest.mark.parametrize("preset", MOMENTUM_PRESETS.values(), ids=MOMENTUM_PRESETS.keys())
def test_every_preset_with_momentum_keeps_it_in_8_bits(preset):
    """``mu_dtype="int8"`` in a preset: its b (and m̄) in signed codes; from the same
    (initial) state the first update is the float32 preset's, and the state keeps its
    types."""
    params = {"w": jnp.linspace(-1.0, 1.0, 8192).reshape(64, 128)}
    grads = {"w": jnp.cos(params["w"] * 7)}
    light, full = preset(mu_dtype="int8"), preset()
    state = light.init(params)
    assert any(x.codes.dtype == jnp.int8 for x in quantized_leaves(state)), "no 8-bit buffer"
    u, new_state = light.update(grads, state, params)
    u_full, _ = full.update(grads, full.init(params), params)
    np.testing.assert_allclose(u["w"], u_full["w"], rtol=2**-20)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)


def test_frameworks_refuse_8_bit_momentum_by_name():
    pytest.importorskip("torch")
    from optax_rmsprop import interop

    params = {"w": jnp.ones((64, 128))}
    tx = presets.torch(lr=0.01, momentum=0.9, mu_dtype="int8")
    group = {
        "params": ["w"],
        "lr": 0.01,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0,
        "momentum": 0.9,
        "centered": False,
    }
    with pytest.raises(ValueError, match=r"momentum in 8-bit blocks \(mu_dtype='int8'\)"):
        interop.to_torch(tx.init(params), tx, params, param_groups=[group])


# ---------------------------------------------------------------------------
# Invalid arguments.


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"nu_dtype": "int4"}, ValueError, ["nu_dtype", "int4"]),
        ({"nu_dtype": jnp.int32}, ValueError, ["nu_dtype", "int32"]),
        ({"nu_dtype": "uint8"}, ValueError, ["nu_dtype", "uint8"]),
        ({"nu_dtype": "eight bits"}, TypeError, ["nu_dtype", "eight bits"]),
        ({"mu_dtype": "int4"}, ValueError, ["mu_dtype", "int4"]),
        ({"mu_dtype": jnp.uint8}, ValueError, ["mu_dtype", "uint8"]),
        ({"mu_dtype": jnp.int8}, ValueError, ["mu_dtype", "int8"]),  # the dtype, not "int8"
    ],
    ids=["nu-int4", "nu-int32", "nu-uint8", "nu-junk", "mu-int4", "mu-uint8", "mu-jnp_int8"],
)
def test_invalid_state_dtypes_raise_naming_the_argument(kwargs, error, words):
    for make in (
        lambda: optax_rmsprop.rmsprop(1e-3, **kwargs),
        lambda: optax_rmsprop.scale_by_rms(**kwargs),
        lambda: presets.torch(**kwargs),
    ):
        with pytest.raises(error) as info:
            make()
        for word in words:
            assert word in str(info.value)


def test_int8_mu_keeps_complex_buffers_as_pairs():
    """Signed codes are real: a complex buffer is kept as (re, im) pairs of codes, with or
    without split_complex, and steps like the float32 one within the codes' rounding."""
    params = {"z": jnp.full((64, 64), 1 + 2j, jnp.complex64)}
    grads = {"z": jnp.full((64, 64), 0.5 - 1j, jnp.complex64)}
    for split in (False, True):
        light = optax_rmsprop.rmsprop(0.1, momentum=0.9, mu_dtype="int8", split_complex=split)
        full = optax_rmsprop.rmsprop(0.1, momentum=0.9, split_complex=split)
        state = light.init(params)
        assert state.momentum["z"].codes.shape == (64, 64, 2)
        state_f = full.init(params)
        for _ in range(3):
            u, state = light.update(grads, state, params)
            u_f, state_f = full.update(grads, state_f, params)
        assert u["z"].dtype == jnp.complex64
        np.testing.assert_allclose(u["z"], u_f["z"], rtol=2**-4)


@pytest.mark.parametrize("dtype", [jnp.float8_e4m3fn, jnp.float8_e5m2], ids=["e4m3fn", "e5m2"])
def test_float8_nu_dtype_is_refused_up_front(dtype):
    with pytest.raises(ValueError, match="nu_dtype"):
        optax_rmsprop.rmsprop(1e-3, nu_dtype=dtype)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"block_size": 0},
        {"min_size": -1},
        {"block_size": 2.5},
        {"min_size": True},
        {"rounding": "up"},
        {"rounding": "Nearest"},
        {"rounding": None},
    ],
    ids=lambda kwargs: "-".join(f"{k}={v}" for k, v in kwargs.items()),
)
def test_invalid_int8_config_raises(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"Int8.{name}"):
        Int8(**kwargs)


# ---------------------------------------------------------------------------
# Convergence: the mean final loss over seeds with light state, against float32 state.
# Each problem trains all its seeds at once (jax.vmap over the seeds' data and initial
# parameters), one compilation per storage option.

# float32 state, bfloat16, and 8-bit with stochastic rounding (the problems' own blocks below)
STATE_OPTIONS = storage_choices("float32", "bfloat16", "int8")
TOLERANCE = 0.01  # relative gap of the mean final loss to float32 state


def int8_options(block_size: int, min_size: int) -> dict[str, Int8]:
    """8-bit ``v`` with small blocks, rounded stochastically (the default) and to nearest."""
    return {
        f"int8{suffix}": Int8(block_size, min_size, rounding)
        for suffix, rounding in (("", "stochastic"), ("-nearest", "nearest"))
    }


def final_losses(problem, nu_dtype) -> tuple[np.ndarray, Any]:
    """Final loss per seed, and the final state of the first seed.

    ``problem["inputs"]`` is (initial params, constants, per-step data), each with a leading
    axis of seeds; the gradient is ``problem["grad"](params, constants, batch)``.
    """
    tx = problem["make_tx"](nu_dtype)

    def train(params, constants, data):
        def step(carry, batch):
            params, state = carry
            grads = problem["grad"](params, constants, batch)
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(step, (params, tx.init(params)), data)
        return problem["loss"](params, constants), state

    losses, states = jax.jit(jax.vmap(train))(*problem["inputs"])
    return np.asarray(losses), jax.tree.map(lambda x: x[0], states)


def gaps_to_float32(problem, expected_quantized: int) -> dict[str, float]:
    """The relative gap of each option's mean final loss to float32 state's."""
    losses = {}
    for name, nu_dtype in problem["options"].items():
        losses[name], state = final_losses(problem, nu_dtype)
        if name.startswith("int8"):  # the 8-bit path was taken: these leaves of v are codes
            assert len(quantized_leaves(state.nu)) == expected_quantized
    reference = losses["float32"].mean()
    gaps = {name: float(loss.mean() / reference - 1) for name, loss in losses.items()}
    print({name: np.round(loss, 5).tolist() for name, loss in losses.items()}, gaps)
    return gaps


# The d2l airfoil regression (d2l.ai, section 12.8 "RMSProp"): linear model, minibatches of 10,
# lr 0.01, γ 0.9, 2 epochs, ε = 1e-6 as in the book. w is (5, 1): 8-bit blocks of 4.
AIRFOIL_SEEDS = 6


def airfoil_problem(features, target):
    runs = [datasets.airfoil_regression(seed) for seed in range(AIRFOIL_SEEDS)]
    loss = datasets.airfoil_loss
    return {
        "make_tx": lambda nu: presets.d2l(lr=0.01, gamma=0.9, nu_dtype=nu),
        "grad": lambda params, _, batch: jax.grad(loss)(params, *batch),
        "loss": lambda params, _: loss(params, features, target),
        "inputs": (
            stack([run.params for run in runs]),
            None,
            (np.stack([run.batches_x for run in runs]), np.stack([run.batches_y for run in runs])),
        ),
        "options": {**STATE_OPTIONS, **int8_options(block_size=4, min_size=4)},
    }


def test_airfoil_light_state_within_one_percent(airfoil):
    gaps = gaps_to_float32(airfoil_problem(*airfoil), expected_quantized=1)
    assert max(map(abs, gaps.values())) <= TOLERANCE, gaps


# A one-hidden-layer MLP (784-32-10) on 5000 Fashion-MNIST training images: 200 steps of
# 128 (5 epochs), decay 0.9, the learning rate on a cosine from 2e-3 to 0; the loss is the
# cross-entropy on those 5000 images. Both weight matrices are 8-bit (blocks of 64), the
# biases float32. (At a constant learning rate the final loss of one run carries the noise
# of its last steps, 1.5-2% from seed to seed, as large as the gaps to measure.)
MLP_SEEDS, MLP_STEPS, MLP_TRAIN, MLP_HIDDEN, MLP_BATCH = 6, 200, 5000, 32, 128


def load_fashion_mnist(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` training images (standardized, flat float32) and labels (int32), from
    the package's subset (the first 5000 of the full set's, tests/test_datasets.py checks)."""
    images, labels = datasets.load_fashion_mnist("train", subset=True)
    assert n <= len(labels), n
    x = images.reshape(len(labels), 784)[:n] / 255.0
    return ((x - x.mean()) / x.std()).astype(np.float32), labels[:n].astype(np.int32)


def mlp_problem():
    x, y = load_fashion_mnist(MLP_TRAIN)
    params, batches = [], []
    for seed in range(MLP_SEEDS):
        rng = np.random.default_rng(seed)
        params.append(
            {
                "w1": (rng.normal(size=(784, MLP_HIDDEN)) * math.sqrt(2 / 784)).astype(np.float32),
                "b1": np.zeros(MLP_HIDDEN, np.float32),
                "w2": (rng.normal(size=(MLP_HIDDEN, 10)) * math.sqrt(1 / MLP_HIDDEN)).astype(
                    np.float32
                ),
                "b2": np.zeros(10, np.float32),
            }
        )
        order = np.concatenate(
            [rng.permutation(MLP_TRAIN) for _ in range(-(-MLP_STEPS * MLP_BATCH // MLP_TRAIN))]
        )
        batches.append(order[: MLP_STEPS * MLP_BATCH].reshape(MLP_STEPS, MLP_BATCH))
    x, y = jnp.asarray(x), jnp.asarray(y)
    schedule = optax.cosine_decay_schedule(2e-3, MLP_STEPS)

    def cross_entropy(params, x, y):
        hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
        logits = hidden @ params["w2"] + params["b2"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return {
        "make_tx": lambda nu: optax_rmsprop.rmsprop(schedule, decay=0.9, nu_dtype=nu),
        "grad": lambda params, _, batch: jax.grad(cross_entropy)(params, x[batch], y[batch]),
        "loss": lambda params, _: cross_entropy(params, x, y),
        "inputs": (
            jax.tree.map(lambda *leaves: np.stack(leaves), *params),
            None,
            np.stack(batches),
        ),
        "options": {**STATE_OPTIONS, **int8_options(block_size=64, min_size=256)},
    }


def test_fashion_mnist_mlp_light_state_within_one_percent():
    gaps = gaps_to_float32(mlp_problem(), expected_quantized=2)
    assert max(map(abs, gaps.values())) <= TOLERANCE, gaps


# A noisy ill-conditioned quadratic (the noisy quadratic model of Zhang et al., 2019):
# f(x) = ½ Σ hᵢ xᵢ², hᵢ = 1/i for i = 1..1024 (condition number 1024) in a random order,
# so every 8-bit block of v spans the whole range; the gradient hᵢxᵢ + 0.1·√hᵢ·ξ;
# 500 steps with a cosine schedule from 0.01, decay 0.9.
QUADRATIC_SEEDS, QUADRATIC_DIM, QUADRATIC_STEPS = 4, 1024, 500


def quadratic_problem():
    h, x0, noise = [], [], []
    for seed in range(QUADRATIC_SEEDS):
        rng = np.random.default_rng(seed)
        h.append(1.0 / rng.permutation(np.arange(1, QUADRATIC_DIM + 1)))
        x0.append(rng.normal(size=QUADRATIC_DIM))
        noise.append(rng.normal(size=(QUADRATIC_STEPS, QUADRATIC_DIM)))
    h, x0, noise = (np.asarray(a, np.float32) for a in (h, x0, noise))
    schedule = optax.cosine_decay_schedule(0.01, QUADRATIC_STEPS)

    return {
        "make_tx": lambda nu: optax_rmsprop.rmsprop(schedule, decay=0.9, nu_dtype=nu),
        "grad": lambda x, h, xi: h * x + 0.1 * jnp.sqrt(h) * xi,
        "loss": lambda x, h: 0.5 * jnp.sum(h * x**2),
        "inputs": (x0, h, noise),
        "options": {**STATE_OPTIONS, **int8_options(block_size=64, min_size=256)},
    }


def test_ill_conditioned_quadratic_light_state_within_one_percent():
    gaps = gaps_to_float32(quadratic_problem(), expected_quantized=1)
    assert max(map(abs, gaps.values())) <= TOLERANCE, gaps
