"""How much memory an optimizer state takes, known before anything is allocated."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["StateSize", "state_size"]


class StateSize(NamedTuple):
    """Bytes of an optimizer state against the parameters it serves, as
    :func:`state_size` reports them.

    Attributes:
      state_bytes: the bytes of every array of the state, step counts included.
      num_params: the number of parameter elements (a complex element counts once).

    Examples:
      >>> from optax_rmsprop import StateSize
      >>> size = StateSize(state_bytes=4100, num_params=1024)
      >>> size.bytes_per_param  # 4100 / 1024
      4.00390625
    """

    state_bytes: int
    num_params: int

    @property
    def bytes_per_param(self) -> float:
        """``state_bytes / num_params`` (``state_bytes`` for no parameters)."""
        return self.state_bytes / max(self.num_params, 1)


def _nbytes(x: Any) -> int:
    return math.prod(x.shape) * x.dtype.itemsize


def state_size(tx: optax.GradientTransformation, params: Any) -> StateSize:
    """The size of ``tx.init(params)``, from shapes only (``jax.eval_shape``).

    ``params`` may hold arrays, ``jax.ShapeDtypeStruct`` objects or Python numbers;
    nothing is allocated. Scalars of the state (the step count) are included.

    Args:
      tx: any optax transformation, e.g. :func:`optax_rmsprop.rmsprop`.
      params: the parameters ``tx.init`` would be given.

    Returns:
      A :class:`StateSize`.

    Raises:
      TypeError, ValueError: whatever ``tx.init`` raises for ``params`` (for
        :func:`optax_rmsprop.rmsprop`, a ``TypeError`` naming an integer leaf).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import optax_rmsprop
      >>> params = {"w": jax.ShapeDtypeStruct((4096, 1024), jnp.float32)}
      >>> optax_rmsprop.state_size(optax_rmsprop.rmsprop(1e-3), params).bytes_per_param
      4.000000953674316
      >>> size = optax_rmsprop.state_size(optax_rmsprop.rmsprop(1e-3, nu_dtype="int8"), params)
      >>> round(size.bytes_per_param, 4)
      1.0156
      >>> optax_rmsprop.state_size(optax_rmsprop.rmsprop(1e-3), {"w": jnp.zeros(3), "b": 0.0})
      StateSize(state_bytes=20, num_params=4)
    """
    state = jax.eval_shape(tx.init, params)
    return StateSize(
        state_bytes=sum(_nbytes(x) for x in jax.tree.leaves(state)),
        num_params=sum(math.prod(jnp.shape(x)) for x in jax.tree.leaves(params)),
    )
