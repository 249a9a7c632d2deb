"""How much memory an optimizer state takes, known before anything is allocated."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import optax

__all__ = ["StateSize", "state_size"]


class StateSize(NamedTuple):
    """Bytes of an optimizer state against the parameters it serves."""

    state_bytes: int
    num_params: int

    @property
    def bytes_per_param(self) -> float:
        return self.state_bytes / max(self.num_params, 1)


def _nbytes(x: Any) -> int:
    return math.prod(x.shape) * x.dtype.itemsize


def state_size(tx: optax.GradientTransformation, params: Any) -> StateSize:
    """The size of ``tx.init(params)``, from shapes only (``jax.eval_shape``).

    ``params`` may hold arrays or ``jax.ShapeDtypeStruct`` objects; nothing is allocated.
    Scalars of the state (the step count) are included.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import optax_rmsprop
      >>> params = {"w": jax.ShapeDtypeStruct((4096, 1024), jnp.float32)}
      >>> optax_rmsprop.state_size(optax_rmsprop.rmsprop(1e-3), params).bytes_per_param
      4.000000953674316
      >>> size = optax_rmsprop.state_size(optax_rmsprop.rmsprop(1e-3, nu_dtype="int8"), params)
      >>> round(size.bytes_per_param, 4)
      1.0156
    """
    state = jax.eval_shape(tx.init, params)
    return StateSize(
        state_bytes=sum(_nbytes(x) for x in jax.tree.leaves(state)),
        num_params=sum(math.prod(x.shape) for x in jax.tree.leaves(params)),
    )
