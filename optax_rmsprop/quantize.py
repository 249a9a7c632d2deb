"""8-bit block storage for RMSProp's second moment.

The second moment ``v`` is non-negative and spans many orders of magnitude, so a
linear 8-bit code loses the small values (and a linear int8 ``v`` is known to
make training diverge). Here each block of ``block_size`` consecutive values
along the leaf's last axis keeps its maximum ``m`` in float32 and each value a
uint8 code on a logarithmic scale::

    code 0        ->  0
    code c >= 1   ->  m * 2 ** ((c - 255) * octaves / 254)

Codes are rounded to nearest in log space, so for any ``v`` in
``[m * 2**-octaves, m]`` the round trip's relative error is at most
``2 ** (octaves / 508) - 1`` (4.5 % for the default 32 octaves, i.e. 2.2 % on
``sqrt(v)``). A positive value below that range is stored as the smallest
positive code, so it comes back larger, never as 0: the step it scales only
gets smaller. Exact zeros stay zero.

Everything is plain ``jnp``, so quantizing and dequantizing fuse into the
jitted update, and work under ``vmap`` and sharding. Blocks never cross rows, so
the scales, of shape ``(*shape[:-1], ceil(shape[-1] / block_size))``, shard
like the leaf itself: along any leading axis, and along the last one when each
shard holds whole blocks; then the update needs no communication.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

__all__ = [
    "Int8",
    "QuantizedArray",
    "dequantize",
    "full",
    "quantize",
    "relative_error_bound",
    "scales_shape",
]


@dataclasses.dataclass(frozen=True)
class Int8:
    """Storage of ``v`` as 8-bit log codes in blocks; ``nu_dtype="int8"`` is ``Int8()``.

    Attributes:
      block_size: values per float32 scale (256: 1.0156 bytes per value), along the
        last axis; a shorter last axis makes shorter blocks, one per row.
      min_size: leaves with fewer elements stay float32 (their state is small).
      octaves: the dynamic range below each block's maximum, in powers of 2.
    """

    block_size: int = 256
    min_size: int = 4096
    octaves: float = 32.0

    def __post_init__(self):
        for name in ("block_size", "min_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Int8.{name} must be a positive int; got {value!r}.")
        if not (isinstance(self.octaves, (int, float)) and 1 <= self.octaves <= 120):
            raise ValueError(f"Int8.octaves must be in [1, 120]; got {self.octaves!r}.")

    def applies_to(self, shape: tuple[int, ...]) -> bool:
        return math.prod(shape) >= self.min_size


class QuantizedArray(NamedTuple):
    """A leaf of ``v`` in 8-bit blocks: ``codes`` has the leaf's shape."""

    codes: jax.Array  # uint8, the leaf's shape
    scales: jax.Array  # float32, (*shape[:-1], ceil(shape[-1] / block_size)): block maxima


def relative_error_bound(config: Int8) -> float:
    """The largest relative error of a round trip for values within the range."""
    return 2.0 ** (config.octaves / 508.0) - 1.0


def scales_shape(shape: tuple[int, ...], config: Int8) -> tuple[int, ...]:
    """The shape of the block maxima of a leaf: its last axis counts blocks."""
    *leading, last = shape or (1,)
    return (*leading, -(-last // config.block_size))


def _spec(x: jax.Array) -> tuple:
    """The explicit sharding of ``x``, one entry per axis (all None when automatic)."""
    spec = tuple(jax.typeof(x).sharding.spec)
    return spec + (None,) * (x.ndim - len(spec))


def _reshard(x: jax.Array, spec: tuple) -> jax.Array:
    return jax.sharding.reshard(x, jax.typeof(x).sharding.update(spec=PartitionSpec(*spec)))


def _blocks(x: jax.Array, block_size: int) -> jax.Array:
    """``(*leading axes, blocks, block_size)``: the last axis cut into zero-padded blocks.

    Where explicit sharding splits the last axis inside blocks, it is gathered first.
    """
    x = x.reshape(x.shape or (1,))
    *leading, last = _spec(x)
    if last is not None:
        parts = math.prod(jax.typeof(x).sharding.mesh.shape[a] for a in jax.tree.leaves(last))
        if (x.shape[-1] // parts) % block_size:
            x = _reshard(x, (*leading, None))
    if pad := -x.shape[-1] % block_size:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    return x.reshape(*x.shape[:-1], -1, block_size)


def _unblock(blocks: jax.Array, like: jax.Array) -> jax.Array:
    """The inverse of :func:`_blocks`: shaped, and explicitly sharded, like ``like``."""
    x = blocks.reshape(*blocks.shape[:-2], -1)
    x = jax.lax.slice_in_dim(x, 0, (like.shape or (1,))[-1], axis=-1).reshape(like.shape)
    if _spec(x) != _spec(like):
        x = _reshard(x, _spec(like))
    return x


def quantize(v: jax.Array, config: Int8) -> QuantizedArray:
    """Codes and block maxima of a non-negative array."""
    v = v.astype(jnp.float32)
    blocks = _blocks(v, config.block_size)
    scales = jnp.max(blocks, axis=-1)
    safe = jnp.where(scales > 0, scales, 1.0)[..., None]
    # log2(v / max) in [-inf, 0]; 254 steps cover `octaves` powers of two.
    steps = jnp.round(255 + jnp.log2(blocks / safe) * (254 / config.octaves))
    codes = jnp.where(blocks > 0, jnp.clip(steps, 1, 255), 0).astype(jnp.uint8)
    return QuantizedArray(codes=_unblock(codes, v), scales=scales)


def dequantize(q: QuantizedArray, config: Int8) -> jax.Array:
    """The float32 values the codes stand for."""
    codes = _blocks(q.codes, config.block_size).astype(jnp.float32)
    values = q.scales[..., None] * jnp.exp2((codes - 255) * (config.octaves / 254))
    values = jnp.where(codes > 0, values, 0.0)
    return _unblock(values, q.codes)


def full(shape: tuple[int, ...], fill: jax.typing.ArrayLike, config: Int8) -> QuantizedArray:
    """The quantized form of ``jnp.full(shape, fill)`` for ``fill >= 0``."""
    fill = jnp.asarray(fill, jnp.float32)
    return QuantizedArray(
        codes=jnp.full(shape, jnp.where(fill > 0, 255, 0), jnp.uint8),
        scales=jnp.full(scales_shape(shape, config), fill, jnp.float32),
    )
