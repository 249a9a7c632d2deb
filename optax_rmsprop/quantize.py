"""8-bit block storage for RMSProp's buffers: the second moment, and the first-moment
buffers (the momentum ``b`` and the centered average ``m̄``) in signed codes.

The second moment ``v`` is non-negative and spans many orders of magnitude, so a
linear 8-bit code loses the small values (and a linear int8 ``v`` is known to
make training diverge). Here each block of ``block_size`` values keeps a scale
``m`` in float32, its maximum (or, in the update with stochastic rounding, a bound
of it within a factor 2), and each value an 8-bit floating-point code relative to
it: 5 bits of exponent, 3 of mantissa, no sign::

    code 0        ->  0
    code c >= 1   ->  m * 2**(e - 31) * (1 + k / 8)   where c - 7 = 8 * e + k, 0 <= k < 8

so code 255 is ``m`` itself and code 1 is ``m * 1.25 * 2**-32``: the codes are the
float32 numbers of ``[1.25 * 2**-32, 1]`` with three mantissa bits, and encoding
is integer arithmetic on the bits of ``v / m`` (no logarithm, no exponential),
decoding a shift of the code back into place.

Rounding is stochastic by default (``rounding="stochastic"``): up or down with
the probabilities that make the stored value right on average (within one code,
1/8 of ``v``), so a ``v`` that falls by less than a code's width each step still
falls. Or it is to the nearest code (``rounding="nearest"``): the relative error
of a round trip is then at most 1/16 (6.25 % of ``v``, about 3 % of ``sqrt(v)``)
for any ``v`` in ``[m * 1.25 * 2**-32, m]``, but a ``v`` that moves by less than
half a code per step keeps its old code. A positive value below the range is
stored as the smallest positive code, so it comes back larger, never as 0: the
step it scales only gets smaller. Exact zeros stay zero.

The first-moment buffers change sign, and a step is as large as they are, so their
codes are signed (:func:`quantize_signed`, int8 ``codes``): a sign and a 7-bit
magnitude relative to the block's largest ``|x|``, 4 bits of exponent and 3 of
mantissa::

    magnitude 0        ->  0
    magnitude c >= 1   ->  m * 2**(e - 15) * (1 + k / 8)   where c - 7 = 8 * e + k

from ``m * 1.25 * 2**-16`` to ``m``, with the same relative error as above. Below that
range a value rounds to 0 or to the smallest magnitude (stochastically: right on
average), so a momentum that decays towards 0 gets there.

Blocks run along the leaf's trailing axes, flattened: the fewest trailing axes
whose size splits into whole blocks of ``block_size`` values, or of the most values
short of it down to 4/5 of it (960 values: blocks of 240); where none do, blocks of
``block_size`` along the fewest trailing axes that fill them with at most a quarter
of padding (all the axes otherwise). Padding costs XLA a copy of the leaf, so it is
the last resort; either way the scales cost at most 1.25 * 4 / ``block_size`` bytes
per value, and every leaf the default quantizes at most 1.02 bytes per value. A leaf
``(rows, 512)`` has blocks along its last axis, ``(rows, 960)`` blocks of 240 along
it, a conv kernel ``(3, 3, 64, 64)`` along its last two. The scales, of shape
``(*leading axes, blocks)``, shard like the leading axes of the leaf, so the
update needs no communication when a leaf is split along leading axes (or along
a blocked last axis whose every shard holds whole blocks).

Everything is plain ``jnp``, so quantizing and dequantizing fuse into the
jitted update, and work under ``vmap`` and sharding.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

__all__ = [
    "Int8",
    "QuantizedArray",
    "block_max",
    "block_max_abs",
    "dequantize",
    "full",
    "quantize",
    "quantize_signed",
    "relative_error_bound",
    "scales_shape",
    "smallest_code_value",
]

_MANTISSA_BITS = 3
_SHIFT = 23 - _MANTISSA_BITS  # a code is a float32's bits shifted right by this
# The bits of 1.0 are those of code 255: code c stands for the float32 whose bits are
# _BASE + c << _SHIFT, times the block's maximum.
_BASE = int(np.float32(1).view(np.int32)) - (255 << _SHIFT)
# Signed codes: the magnitude 127 stands for 1.0 (4 bits of exponent, 3 of mantissa).
_SIGNED_BASE = int(np.float32(1).view(np.int32)) - (127 << _SHIFT)


@dataclasses.dataclass(frozen=True)
class Int8:
    """Storage of ``v`` as 8-bit codes in blocks; ``nu_dtype="int8"`` is ``Int8()``.

    Attributes:
      block_size: values per float32 scale (256: 1.0156 bytes per value); fewer, down
        to 4/5 of it, where that splits the leaf into whole blocks without padding.
      min_size: leaves with fewer elements stay float32 (their state is small).
      rounding: ``"stochastic"`` (unbiased, so ``v`` follows an average that moves by
        less than a code's width per step; blocks scaled by an upper bound of their
        maximum, which takes no extra pass) or ``"nearest"`` (blocks scaled by their
        maximum; a value that moves by less than half a code per step stays put).

    Raises:
      ValueError: ``block_size`` or ``min_size`` not a positive int; ``rounding``
        neither "stochastic" nor "nearest".

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax_rmsprop
      >>> nu_dtype = optax_rmsprop.Int8(block_size=128, rounding="nearest")
      >>> tx = optax_rmsprop.rmsprop(1e-3, nu_dtype=nu_dtype)
      >>> state = tx.init({"w": jnp.ones((64, 128)), "b": jnp.ones(128)})
      >>> state.nu["w"].codes.dtype, state.nu["w"].scales.shape  # a block per row
      (dtype('uint8'), (64, 1))
      >>> state.nu["b"].dtype  # 128 values, fewer than min_size: float32
      dtype('float32')
    """

    block_size: int = 256
    min_size: int = 4096
    rounding: str = "stochastic"

    def __post_init__(self):
        for name in ("block_size", "min_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Int8.{name} must be a positive int; got {value!r}.")
        if self.rounding not in ("nearest", "stochastic"):
            raise ValueError(
                f"Int8.rounding must be 'nearest' or 'stochastic'; got {self.rounding!r}."
            )

    def applies_to(self, shape: tuple[int, ...]) -> bool:
        return math.prod(shape) >= self.min_size


class QuantizedArray(NamedTuple):
    """A leaf in 8-bit blocks: ``codes`` has the leaf's shape; uint8 for ``v``, int8
    (signed) for the first-moment buffers.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import quantize
      >>> config = quantize.Int8(block_size=4, rounding="nearest")
      >>> q = quantize.quantize(jnp.array([0.0, 1.0, 2.0, 4.0]), config)
      >>> q.codes.dtype, q.codes.shape, q.scales  # a code per value, a scale per block
      (dtype('uint8'), (4,), Array([4.], dtype=float32))
      >>> quantize.quantize_signed(jnp.array([-1.0, 1.0]), config).codes.dtype
      dtype('int8')
    """

    codes: jax.Array  # uint8 or int8, the leaf's shape
    scales: jax.Array  # float32, scales_shape(codes.shape): block maxima


def relative_error_bound(config: Int8) -> float:
    """The largest relative error of a nearest-rounding round trip within the range.

    Stochastic rounding can err by up to a whole code's width (1/8 of the value).

    Examples:
      >>> from optax_rmsprop import quantize
      >>> quantize.relative_error_bound(quantize.Int8(rounding="nearest"))  # 1/16
      0.0625
      >>> quantize.relative_error_bound(quantize.Int8(rounding="stochastic"))  # 1/8
      0.125
    """
    return 2.0 ** -(_MANTISSA_BITS + 1) if config.rounding == "nearest" else 2.0**-_MANTISSA_BITS


def smallest_code_value(signed: bool = False) -> float:
    """The smallest positive value a code stands for, as a fraction of its block's maximum.

    Examples:
      >>> from optax_rmsprop import quantize
      >>> quantize.smallest_code_value() == 1.25 * 2**-32
      True
      >>> quantize.smallest_code_value(signed=True) == 1.25 * 2**-16
      True
    """
    return float(np.int32((_SIGNED_BASE if signed else _BASE) + (1 << _SHIFT)).view(np.float32))


@functools.cache
def _layout(shape: tuple[int, ...], block_size: int) -> tuple[int, int]:
    """``(k, n)``: blocks of ``n`` values run along the ``k`` trailing axes (flattened).

    The fewest trailing axes whose size splits into whole blocks of ``n`` values, ``n``
    the largest in ``[4/5 block_size, block_size]`` that does; where none do, blocks of
    ``block_size`` along the fewest trailing axes that pad to whole blocks by at most a
    quarter, all of them otherwise. Either way the scales cost at most
    1.25 * 4 / block_size bytes per value.
    """
    shape = shape or (1,)
    smallest = -(-4 * block_size // 5)
    for k in range(1, len(shape) + 1):
        size = math.prod(shape[-k:])
        for n in range(block_size, smallest - 1, -1):
            if size % n == 0:
                return k, n
    for k in range(1, len(shape) + 1):
        size = math.prod(shape[-k:])
        if 4 * (-size % block_size) <= size:
            return k, block_size
    return len(shape), block_size


def scales_shape(shape: tuple[int, ...], config: Int8) -> tuple[int, ...]:
    """The shape of the block maxima of a leaf: its leading axes, then its blocks.

    Examples:
      >>> from optax_rmsprop.quantize import Int8, scales_shape
      >>> scales_shape((8, 512), Int8())  # two blocks of 256 per row
      (8, 2)
      >>> scales_shape((8, 960), Int8())  # four blocks of 240 per row, no padding
      (8, 4)
      >>> scales_shape((3, 3, 64, 64), Int8())  # along the last two axes
      (3, 3, 16)
    """
    shape = shape or (1,)
    k, n = _layout(shape, config.block_size)
    return (*shape[:-k], -(-math.prod(shape[-k:]) // n))


def _spec(x: jax.Array) -> tuple:
    """The explicit sharding of ``x``, one entry per axis (all None when automatic)."""
    spec = tuple(jax.typeof(x).sharding.spec)
    return spec + (None,) * (x.ndim - len(spec))


def _reshard(x: jax.Array, spec: tuple) -> jax.Array:
    return jax.sharding.reshard(x, jax.typeof(x).sharding.update(spec=PartitionSpec(*spec)))


def _blocks(x: jax.Array, block_size: int) -> jax.Array:
    """``(*leading axes, blocks, n)``: the blocked axes cut into (zero-padded) blocks.

    Where explicit sharding splits the blocked axes other than along whole blocks of a
    single blocked axis, they are gathered first.
    """
    x = x.reshape(x.shape or (1,))
    k, n = _layout(x.shape, block_size)
    spec = _spec(x)
    if any(s is not None for s in spec[-k:]):
        mesh = jax.typeof(x).sharding.mesh
        parts = math.prod(mesh.shape[a] for a in jax.tree.leaves(spec[-k:]))
        if k > 1 or (x.shape[-1] // parts) % n:
            x = _reshard(x, (*spec[:-k], *(None,) * k))
    x = x.reshape(*x.shape[: x.ndim - k], -1)
    if pad := -x.shape[-1] % n:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    return x.reshape(*x.shape[:-1], -1, n)


def _unblock(blocks: jax.Array, like: jax.Array, block_size: int) -> jax.Array:
    """The inverse of :func:`_blocks`: shaped, and explicitly sharded, like ``like``."""
    shape = like.shape or (1,)
    k, _ = _layout(shape, block_size)
    x = blocks.reshape(*blocks.shape[:-2], -1)
    x = jax.lax.slice_in_dim(x, 0, math.prod(shape[-k:]), axis=-1).reshape(like.shape)
    if _spec(x) != _spec(like):
        x = _reshard(x, _spec(like))
    return x


def _spread(x: jax.Array, like: jax.Array, block_size: int) -> jax.Array:
    """A value per block (shaped like the scales) repeated over its block's values,
    shaped like ``like``. Elementwise work then runs in the leaf's own shape, which
    XLA:CPU vectorizes better than the blocked shape."""
    _, n = _layout(like.shape or (1,), block_size)
    return _unblock(jnp.broadcast_to(x[..., None], (*x.shape, n)), like, block_size)


def _noise(shape: tuple[int, ...], seed: jax.Array) -> jax.Array:
    """Uniform integers in ``[0, 2**_SHIFT)``, one per element, from a hash of ``seed``
    and the element's position (a cheap integer hash: a few multiplies and shifts)."""
    index = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    x = index * jnp.uint32(0x9E3779B1) + jnp.asarray(seed).astype(jnp.uint32)
    for shift, multiplier in ((16, 0x21F0AAAD), (15, 0x735A2D97)):
        x = (x ^ (x >> shift)) * jnp.uint32(multiplier)
    x = x ^ (x >> 15)
    return (x >> (32 - _SHIFT)).astype(jnp.int32)


def _fraction(codes: jax.Array) -> jax.Array:
    """The values of codes, as fractions of their block's maximum (signed for int8)."""
    if codes.dtype == jnp.int8:
        signed = codes.astype(jnp.int32)
        magnitude = jnp.abs(signed)
        bits = jnp.where(magnitude > 0, _SIGNED_BASE + (magnitude << _SHIFT), 0)
        bits = bits | (signed & jnp.int32(-(2**31)))  # the sign bit
        return jax.lax.bitcast_convert_type(bits, jnp.float32)
    codes = codes.astype(jnp.int32)
    fraction = jax.lax.bitcast_convert_type(_BASE + (codes << _SHIFT), jnp.float32)
    return jnp.where(codes > 0, fraction, 0.0)


def block_max_abs(x: jax.Array, config: Int8) -> jax.Array:
    """The largest ``|x|`` of each block of a real array (shaped like the scales).

    One pass over ``x`` as it is stored: its maximum and minimum in a single reduction,
    which XLA:CPU runs as one vectorized loop (a reduction of ``abs(x)`` would be a
    slow scalar loop, or would first write ``abs(x)`` out).

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import quantize
      >>> quantize.block_max_abs(jnp.array([-3.0, 1.0, 2.0, -0.5]), quantize.Int8(block_size=4))
      Array([3.], dtype=float32)
    """
    blocks = _blocks(x, config.block_size)
    top, bottom = jax.lax.reduce(
        (blocks, blocks),
        (jnp.array(-jnp.inf, x.dtype), jnp.array(jnp.inf, x.dtype)),
        lambda a, b: (jnp.maximum(a[0], b[0]), jnp.minimum(a[1], b[1])),
        (blocks.ndim - 1,),
    )
    return jnp.maximum(top, -bottom)


def block_max(q: QuantizedArray, config: Int8) -> jax.Array:
    """The largest value of each block, read from the codes (one byte per value).

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import quantize
      >>> config = quantize.Int8(block_size=4, rounding="nearest")
      >>> q = quantize.quantize(jnp.array([0.0, 1.0, 2.0, 4.0]), config)
      >>> quantize.block_max(q, config)
      Array([4.], dtype=float32)
    """
    return _fraction(jnp.max(_blocks(q.codes, config.block_size), axis=-1)) * q.scales


def _per_block_factors(scales: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The two factors that take a value to its ratio to its block's scale (0 for a zero
    scale).

    ``v / scale`` as XLA computes it is ``v * (1 / scale)``; above 2**126 that inverse
    would be subnormal, which XLA flushes to 0, so large scales are first divided by
    2**64 (and the ratio after): both exact. Each factor ends in a division, which XLA
    computes once per block, in a pass of its own: a cheaper expression would be fused
    into the elementwise pass and recomputed, with whatever the scales are computed from,
    for every value of the block.
    """
    big = scales > 2.0**64
    shift = 1 / jnp.where(big, 2.0**64, 1.0)
    inverse = (scales > 0).astype(scales.dtype) / jnp.where(
        scales > 0, jnp.where(big, scales * 2.0**-64, scales), 1.0
    )
    return inverse, shift


def quantize(
    v: jax.Array, config: Int8, seed: jax.Array | None = None, scales: jax.Array | None = None
) -> QuantizedArray:
    """Codes and block scales of a non-negative array.

    ``scales``: the blocks' maxima (computed when None) or upper bounds of them; a bound
    at most twice the maximum costs one octave of range, nothing in precision.
    ``seed`` (an integer scalar, e.g. the step mixed with the leaf's index) drives
    stochastic rounding; nearest rounding ignores it.

    Raises:
      ValueError: ``config.rounding`` is "stochastic" and ``seed`` is None.

    Examples:
      Powers of two below the block's maximum have codes of their own:

      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import quantize
      >>> config = quantize.Int8(block_size=4, rounding="nearest")
      >>> q = quantize.quantize(jnp.array([0.0, 1.0, 2.0, 4.0]), config)
      >>> q.codes  # 255 is the maximum; 8 codes per octave below it
      Array([  0, 239, 247, 255], dtype=uint8)
      >>> quantize.dequantize(q, config)
      Array([0., 1., 2., 4.], dtype=float32)
    """
    v = v.astype(jnp.float32)
    if scales is None:
        scales = jnp.max(_blocks(v, config.block_size), axis=-1)
    inverse, shift = _per_block_factors(scales)
    spread = functools.partial(_spread, like=v, block_size=config.block_size)
    ratio = v * spread(inverse) * spread(shift)
    bits = jax.lax.bitcast_convert_type(ratio, jnp.int32) - _BASE
    if config.rounding == "stochastic":
        if seed is None:
            raise ValueError("stochastic rounding needs a seed.")
        bits = bits + _noise(v.shape, seed)
    else:
        bits = bits + (1 << (_SHIFT - 1))
    codes = jnp.clip(bits >> _SHIFT, 1, 255)
    codes = jnp.where(v > 0, codes, 0).astype(jnp.uint8)
    return QuantizedArray(codes=codes, scales=scales)


def quantize_signed(x: jax.Array, config: Int8, seed: jax.Array | None = None) -> QuantizedArray:
    """Signed codes and block scales of a real array (the first-moment buffers).

    Each block is scaled by its largest ``|x|``; a code is a sign and a 7-bit magnitude,
    the magnitude 4 bits of exponent and 3 of mantissa (127 is the block's maximum, 1 is
    ``1.25 * 2**-16`` of it). A value below the smallest magnitude rounds to it or to 0,
    with the probability that keeps it right on average (stochastic rounding), or to the
    nearer of the two; exact zeros stay zero.

    Raises:
      ValueError: ``config.rounding`` is "stochastic" and ``seed`` is None.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import quantize
      >>> config = quantize.Int8(block_size=4, rounding="nearest")
      >>> q = quantize.quantize_signed(jnp.array([-4.0, -1.0, 0.0, 2.0]), config)
      >>> q.codes  # 127 is the largest |x|; 8 codes per octave below it
      Array([-127, -111,    0,  119], dtype=int8)
      >>> quantize.dequantize(q, config)
      Array([-4., -1.,  0.,  2.], dtype=float32)
    """
    x = x.astype(jnp.float32)
    scales = block_max_abs(x, config)
    inverse, shift = _per_block_factors(scales)
    spread = functools.partial(_spread, like=x, block_size=config.block_size)
    ratio = jnp.abs(x) * spread(inverse) * spread(shift)
    if config.rounding == "stochastic":
        if seed is None:
            raise ValueError("stochastic rounding needs a seed.")
        noise = _noise(x.shape, seed)
    else:
        noise = jnp.int32(1 << (_SHIFT - 1))
    magnitude = jnp.clip(
        (jax.lax.bitcast_convert_type(ratio, jnp.int32) - _SIGNED_BASE + noise) >> _SHIFT, 0, 127
    )
    # Below the smallest magnitude s: 1 with probability ratio / s (noise / 2**_SHIFT is
    # uniform in [0, 1)), else 0; for nearest rounding, 1 from s / 2 up.
    smallest = smallest_code_value(signed=True)
    below = ratio * float(1 << _SHIFT) > noise.astype(jnp.float32) * smallest
    magnitude = jnp.where(ratio < smallest, below.astype(jnp.int32), magnitude)
    codes = jnp.where(x < 0, -magnitude, magnitude).astype(jnp.int8)
    return QuantizedArray(codes=codes, scales=scales)


def dequantize(q: QuantizedArray, config: Int8) -> jax.Array:
    """The float32 values the codes stand for (signed codes for int8 ``codes``).

    Examples:
      A round trip errs by at most :func:`relative_error_bound`:

      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import quantize
      >>> config = quantize.Int8(rounding="nearest")
      >>> v = jnp.linspace(0.01, 1.0, 1000)
      >>> back = quantize.dequantize(quantize.quantize(v, config), config)
      >>> bool(jnp.all(jnp.abs(back - v) <= quantize.relative_error_bound(config) * v))
      True
    """
    return _fraction(q.codes) * _spread(q.scales, q.codes, config.block_size)


def full(shape: tuple[int, ...], fill: jax.typing.ArrayLike, config: Int8) -> QuantizedArray:
    """The quantized form of ``jnp.full(shape, fill)`` for ``fill >= 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import quantize
      >>> config = quantize.Int8()
      >>> quantize.dequantize(quantize.full((2, 3), 0.5, config), config)
      Array([[0.5, 0.5, 0.5],
             [0.5, 0.5, 0.5]], dtype=float32)
    """
    fill = jnp.asarray(fill, jnp.float32)
    return QuantizedArray(
        codes=jnp.full(shape, jnp.where(fill > 0, 255, 0), jnp.uint8),
        scales=jnp.full(scales_shape(shape, config), fill, jnp.float32),
    )
