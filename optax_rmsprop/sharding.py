"""Where the optimizer state lives on a mesh: like the parameters, or split over an axis.

``tx.init`` already puts each buffer of the state where its parameter is (eagerly and
under ``jit``, with explicit or automatic sharding), and ``update`` keeps it there.
This module answers the questions that come before: which shardings will the state
have (to pass to ``jit`` as ``in_shardings``/``out_shardings``, or to restore a
checkpoint onto), how to split it over a data-parallel axis while the parameters stay
replicated (ZeRO stage 1), and how many bytes each device then holds.
"""

from __future__ import annotations

import collections
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

__all__ = ["device_bytes", "state_shardings"]


def _entries(entry: Any) -> tuple[str, ...]:
    """The mesh axes of one entry of a ``PartitionSpec``."""
    if entry is None or entry is PartitionSpec.UNCONSTRAINED:
        return ()
    return tuple(entry) if isinstance(entry, (tuple, list)) else (entry,)


def _param_spec(param: Any, mesh: Mesh) -> tuple[Any, ...]:
    """The parameter's ``PartitionSpec`` on ``mesh``, one entry per dimension."""
    sharding = getattr(param, "sharding", None)
    spec = sharding.spec if isinstance(sharding, NamedSharding) else PartitionSpec()
    for name in (axis for entry in spec for axis in _entries(entry)):
        if name not in mesh.axis_names:
            raise ValueError(
                f"a parameter is sharded over the mesh axis {name!r}, which the mesh "
                f"{mesh.axis_names} lacks."
            )
    entries = tuple(entry if _entries(entry) else None for entry in spec)
    return entries + (None,) * (jnp.ndim(param) - len(entries))


def _split_over(spec: tuple[Any, ...], shape: tuple[int, ...], axes: tuple[str, ...], size: int):
    """``spec`` with ``axes`` on the first free dimension that ``size`` divides."""
    if any(set(_entries(entry)) & set(axes) for entry in spec):
        return spec  # already split over these axes
    for dim, (entry, n) in enumerate(zip(spec, shape, strict=True)):
        if entry is None and n % size == 0:
            return (*spec[:dim], axes if len(axes) > 1 else axes[0], *spec[dim + 1 :])
    return spec  # no dimension fits: this buffer stays whole on every device of the axis


def state_shardings(
    tx: optax.GradientTransformation,
    params: Any,
    mesh: Mesh,
    axis: str | tuple[str, ...] | None = None,
) -> Any:
    """The ``NamedSharding`` of each array of ``tx.init(params)`` on ``mesh``.

    Without ``axis``, every buffer that mirrors a parameter (RMSProp's ``nu``, ``mu``
    and ``momentum``, those of any other optax transformation in a chain) is sharded
    like its parameter, as ``tx.init`` makes it: the 8-bit ``nu``'s codes like the
    parameter and its block scales along with them. Scalars (step counts) are
    replicated. This is what ``jax.eval_shape(tx.init, params)`` reports under
    explicit sharding, here also for meshes with automatic axes.

    With ``axis`` (a mesh axis name, or a tuple of names), each buffer is also split
    over that axis, along the first of its parameter's dimensions that is not sharded
    yet and that the axis size divides: ZeRO stage 1. The parameters and gradients
    may stay replicated over a data-parallel axis; each device then keeps and updates
    only its part of the state, and XLA gathers the updates. A buffer with no such
    dimension stays replicated over the axis.

    Args:
      tx: the optimizer, e.g. :func:`optax_rmsprop.rmsprop` (or a chain holding it).
      params: the parameters, as arrays or ``jax.ShapeDtypeStruct``; a leaf's
        ``sharding``, where it is a ``NamedSharding``, tells how it is sharded, and
        anything else (none, one device) means replicated.
      mesh: the mesh the state lives on.
      axis: the mesh axis (or axes) to split the state over, or ``None``.

    Returns:
      A pytree with the structure of ``tx.init(params)`` whose leaves are
      ``NamedSharding`` on ``mesh``: ``out_shardings`` for ``jax.jit(tx.init)``, and
      ``in_shardings``/``out_shardings`` for the state in the training step.

    Raises:
      ValueError: ``axis`` names an axis that ``mesh`` lacks, or a leaf of ``params``
        is sharded over a mesh axis that ``mesh`` lacks.
      TypeError, ValueError: whatever ``tx.init`` raises for ``params`` (for
        :func:`optax_rmsprop.rmsprop`, a ``TypeError`` naming an integer leaf).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import optax_rmsprop
      >>> from optax_rmsprop.sharding import state_shardings
      >>> mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
      >>> params = {"w": jnp.zeros((8, 4)), "b": jnp.zeros(3)}
      >>> tx = optax_rmsprop.rmsprop(0.01, momentum=0.9)
      >>> shardings = state_shardings(tx, params, mesh, axis="data")
      >>> [tuple(s.spec) for s in (shardings.nu["w"], shardings.momentum["b"], shardings.count)]
      [('data', None), ('data',), ()]
      >>> state = jax.jit(tx.init, out_shardings=shardings)(params)
      >>> jax.tree.map(lambda x, s: x.sharding == s, state, shardings).nu
      {'b': True, 'w': True}
    """
    axes = (axis,) if isinstance(axis, str) else tuple(axis or ())
    for name in axes:
        if name not in mesh.axis_names:
            raise ValueError(f"axis: the mesh {mesh.axis_names} has no axis {name!r}.")
    size = math.prod(mesh.shape[name] for name in axes)

    def param_struct(param):
        shape, spec = jnp.shape(param), _param_spec(param, mesh)
        if axes:
            spec = _split_over(spec, shape, axes, size)
        sharding = NamedSharding(explicit, PartitionSpec(*spec))
        return jax.ShapeDtypeStruct(shape, jnp.result_type(param), sharding=sharding)

    # Under explicit sharding every abstract value carries its sharding: trace init there.
    explicit = mesh.abstract_mesh.update(axis_types=(AxisType.Explicit,) * len(mesh.axis_names))
    with jax.sharding.use_abstract_mesh(explicit):
        state = jax.eval_shape(tx.init, jax.tree.map(param_struct, params))

    def concrete(leaf):
        sharding = getattr(leaf, "sharding", None)
        spec = sharding.spec if isinstance(sharding, NamedSharding) else PartitionSpec()
        return NamedSharding(mesh, spec)

    return jax.tree.map(concrete, state)


def device_bytes(tree: Any) -> int:
    """The most bytes of ``tree`` that any one device holds.

    ``tree`` holds ``jax.Array`` or ``jax.ShapeDtypeStruct`` with a concrete
    ``sharding`` (planning before anything is allocated); a shard that several
    devices replicate counts on each of them.

    Raises:
      ValueError: a leaf of ``tree`` has no sharding (a ``jax.ShapeDtypeStruct``
        made without one).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from optax_rmsprop.sharding import device_bytes
      >>> device_bytes({"w": jnp.zeros((8, 4)), "count": jnp.zeros([], jnp.int32)})  # 32*4 + 4
      132
    """
    held: collections.Counter = collections.Counter()
    for leaf in jax.tree.leaves(tree):
        sharding = leaf.sharding
        if sharding is None:
            raise ValueError(f"{leaf} has no sharding: it is not placed on any device yet.")
        nbytes = math.prod(sharding.shard_shape(leaf.shape)) * leaf.dtype.itemsize
        for device in sharding.device_set:
            held[device] += nbytes
    return max(held.values(), default=0)
