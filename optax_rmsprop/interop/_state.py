"""What both frameworks share: leaves and their paths, the leaf map, layouts, and the
filling and reading of the RMSPropStates inside a transformation's state."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_rmsprop import quantize
from optax_rmsprop.core import RMSPropState

FIELDS = ("nu", "mu", "momentum")


class _Unset:
    """``Leaf.axes`` not given: the layout is kept, where the shapes leave no doubt."""

    def __repr__(self) -> str:
        return "not given"


UNSET = _Unset()


@dataclasses.dataclass(frozen=True)
class Leaf:
    """Where one leaf of the JAX params lives in the framework, for ``leaf_map``.

    Attributes:
      key: the framework's parameter: a torch index (its place in the order of
        ``param_groups``) or parameter name, or a Keras variable's path
        (``"dense/kernel"``, or any unique ending of it) or its position among the
        optimizer's variables.
      axes: a permutation that turns the framework's array into the leaf, as
        ``np.transpose(array, axes)``: ``(1, 0)`` for a ``torch.nn.Linear`` weight
        (out, in) used as (in, out), ``(2, 3, 1, 0)`` for a ``Conv2d`` weight (O, I, H, W)
        used as (H, W, I, O). ``None`` keeps the layout. Not given, the layout is kept
        too, but a square 2-D leaf matched to a torch parameter is refused: a Linear
        weight (out, in) and its transpose have the same shape, so say which.

    A ``Leaf`` is checked where it is used: a ``key`` that names no parameter, or
    ``axes`` that are not a permutation of its axes, make the conversion raise a
    ``ValueError`` that names the leaf.

    Examples:
      A ``torch.nn.Linear(3, 2)`` weight, (2, 3) in torch, is a (3, 2) kernel in JAX:

      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import interop
      >>> state_dict = {  # torch.optim.RMSprop(linear.parameters()).state_dict(), weight only
      ...     "state": {0: {"step": 1.0, "square_avg": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}},
      ...     "param_groups": [dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0,
      ...                           momentum=0, centered=False, params=[0])]}
      >>> kernel = jnp.zeros((3, 2))
      >>> leaf_map = interop.Leaf(0, axes=(1, 0))  # np.transpose(weight, (1, 0))
      >>> tx, state = interop.from_torch(state_dict, kernel, leaf_map=leaf_map)
      >>> state.nu
      Array([[1., 4.],
             [2., 5.],
             [3., 6.]], dtype=float32)
    """

    key: int | str
    axes: tuple[int, ...] | None = UNSET  # type: ignore[assignment]  # not given: see above


@dataclasses.dataclass(frozen=True)
class Slot:
    """One leaf's buffers from the framework, in the JAX layout (None: zeros, a parameter
    not stepped yet)."""

    where: str  # "torch index 3", "keras variable 'dense/kernel'"
    group: int  # the framework's parameter group
    count: int
    keeps: dict  # field -> (whether the framework keeps it, the setting that says so)
    buffers: dict  # field -> np.ndarray


def _path(keys: Sequence[Any]) -> str:
    """``a/b`` for the keys of a leaf, without the ``.value`` of a flax NNX Variable (an
    ``nnx.State`` of params has ``params['fc']['kernel'].value`` where a dict has
    ``params['fc']['kernel']``)."""
    if keys and isinstance(keys[-1], jax.tree_util.GetAttrKey) and keys[-1].name == "value":
        keys = keys[:-1]
    return jax.tree_util.keystr(tuple(keys), simple=True, separator="/")


class Leaves:
    """The leaves of ``params``: messages name them as ``params['a']['b']``, and paths
    are matched as ``a/b``."""

    def __init__(self, params: Any):
        keyed, treedef = jax.tree_util.tree_flatten_with_path(params)
        self.treedef: Any = treedef
        if not keyed:
            raise ValueError("params has no leaves: pass the JAX pytree of the parameters.")
        self.names = [jax.tree_util.keystr(path) for path, _ in keyed]
        self.paths = [_path(path) for path, _ in keyed]
        self.values = [x for _, x in keyed]

    def __len__(self) -> int:
        return len(self.values)


def path_matches(theirs: str, mine: str) -> bool:
    """The one rule for paths: the framework's path is ``mine``, or ends in ``/`` and
    ``mine`` (a model's prefixes such as ``sequential/`` aside)."""
    return theirs == mine or theirs.endswith("/" + mine)


def match_paths(leaves: Leaves, theirs: Sequence[str], what: str) -> list[int]:
    """Each leaf's framework parameter (its position in ``theirs``) by path: the one whose
    path is the leaf's, or ends in ``/`` and the leaf's (model prefixes such as
    ``sequential/``). A leaf or a parameter matched by none or by two is refused, with the
    names on both sides."""
    taken: dict[int, int] = {}
    out = []
    for j, mine in enumerate(leaves.paths):
        found = [i for i, p in enumerate(theirs) if path_matches(p, mine)]
        if not found:
            left = [theirs[i] for i in range(len(theirs)) if i not in taken]
            raise ValueError(
                f"params{leaves.names[j]} (path {mine!r}) matches no {what}; those not yet "
                f"matched are {left}. Pass leaf_map to say which is which, or match='order' "
                "to take them in the order of params' leaves."
            )
        if len(found) > 1:
            raise ValueError(
                f"params{leaves.names[j]} (path {mine!r}) matches {len(found)} {what}s: "
                f"{[theirs[i] for i in found]}. Pass leaf_map to say which."
            )
        if found[0] in taken:
            raise ValueError(
                f"params{leaves.names[taken[found[0]]]} and params{leaves.names[j]} both match "
                f"{what} {theirs[found[0]]!r}. Pass leaf_map to say which is which."
            )
        taken[found[0]] = j
        out.append(found[0])
    return out


def resolve(
    leaf_map: Any,
    leaves: Leaves,
    keys: Sequence[Any],
    lookup: Callable[[Any, str], int],
    what: str,
    square_needs_axes: bool = False,
) -> list[tuple[int, tuple[int, ...] | None]]:
    """For each leaf, the position in ``keys`` (the framework's parameters, in its order)
    of the parameter it takes, and the axes of its transform.

    ``leaf_map`` is a pytree with the structure of params, or a list with one entry per
    leaf, of :class:`Leaf` or keys; ``lookup(key, leaf_name)`` gives a key's position.
    Every parameter must go to exactly one leaf. With ``square_needs_axes`` (torch), a
    square 2-D leaf whose axes are not given is refused.
    """
    n = len(leaves)
    if isinstance(leaf_map, Sequence) and not isinstance(leaf_map, str) and len(leaf_map) == n:
        specs = list(leaf_map)
    else:
        try:
            specs = leaves.treedef.flatten_up_to(leaf_map)
        except (ValueError, TypeError) as error:
            specs = _by_path(leaf_map, leaves, error)
    out: list[tuple[int, tuple[int, ...] | None]] = []
    used: dict[int, str] = {}
    for j, (name, spec) in enumerate(zip(leaves.names, specs, strict=True)):
        if isinstance(spec, tuple) and len(spec) == 2 and not isinstance(spec, Leaf):
            spec = Leaf(*spec)
        if not isinstance(spec, Leaf):
            spec = Leaf(spec)
        key = spec.key
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (numbers.Integral, str)):
            raise TypeError(f"leaf_map{name} must be a Leaf, an index or a path; got {key!r}.")
        position = lookup(key, name)
        if position in used:
            raise ValueError(
                f"leaf_map{name} and leaf_map{used[position]} both take {what} {keys[position]!r}."
            )
        used[position] = name
        shape = np.shape(leaves.values[j])
        if (
            square_needs_axes
            and isinstance(spec.axes, _Unset)
            and len(shape) == 2
            and shape[0] == shape[1]
        ):
            raise ValueError(
                f"params{name} is square {shape} and matched to {what} {keys[position]!r} "
                "without axes: a torch.nn.Linear weight is (out, in), a JAX Dense kernel (in, "
                "out), and the shapes cannot tell them apart. Say which in leaf_map: "
                f"Leaf({keys[position]!r}, axes=(1, 0)) for a Linear weight, or "
                f"Leaf({keys[position]!r}, axes=None) to keep torch's layout."
            )
        given = spec.axes
        axes = None if given is None or isinstance(given, _Unset) else tuple(int(a) for a in given)
        out.append((position, axes))
    missing = [keys[i] for i in range(len(keys)) if i not in used]
    if missing:
        raise ValueError(
            f"{what} {missing[0]!r} goes to no leaf of params: every one must go to one "
            "leaf, so that its state is carried over."
        )
    return out


def _is_spec(x: Any) -> bool:
    return isinstance(x, (Leaf, str, numbers.Integral)) or (
        isinstance(x, tuple) and len(x) == 2 and not hasattr(x, "_fields")
    )


def _by_path(leaf_map: Any, leaves: Leaves, error: Exception) -> list[Any]:
    """The leaf map's entries by path, for a ``leaf_map`` of another tree type than the
    params (a dict for an ``nnx.State``): each leaf's path must be the map's."""
    keyed, _ = jax.tree_util.tree_flatten_with_path(leaf_map, is_leaf=_is_spec)
    by_path = {_path(path): spec for path, spec in keyed}
    missing = [name for name, path in zip(leaves.names, leaves.paths, strict=True)
               if path not in by_path]  # fmt: skip
    if missing or len(by_path) != len(leaves):
        raise ValueError(
            "leaf_map must have the structure of params (or the same paths, as a dict for an "
            f"nnx.State), with a Leaf, an index or a path at each leaf: {error}"
            + (f"; params{missing[0]} has no entry" if missing else "")
        ) from None
    return [by_path[path] for path in leaves.paths]


def check_axes(axes: tuple[int, ...] | None, ndim: int, name: str, where: str) -> None:
    if axes is not None and sorted(axes) != list(range(ndim)):
        raise ValueError(
            f"params{name} ({where}): axes {axes} is not a permutation of the {ndim} axes of "
            "the framework's array."
        )


def to_jax_layout(x: np.ndarray, axes: tuple[int, ...] | None, pairs: bool) -> np.ndarray:
    if axes is not None:
        x = np.transpose(x, axes)
    if pairs:  # torch.view_as_real
        x = np.stack([x.real, x.imag], axis=-1)
    return x


def from_jax_layout(x: np.ndarray, axes: tuple[int, ...] | None, pairs: bool) -> np.ndarray:
    if pairs:  # torch.view_as_complex
        z = np.empty(x.shape[:-1], np.result_type(x.dtype, np.complex64))
        z.real, z.imag = x[..., 0], x[..., 1]
        x = z
    if axes is not None:
        x = np.transpose(x, np.argsort(axes))
    return x


def host(x: Any) -> np.ndarray:
    """A JAX buffer on the host, in a dtype every framework takes (bfloat16 -> float32)."""
    x = np.asarray(x)
    if x.dtype.kind not in "fc" or x.dtype.itemsize < 2 or x.dtype.name == "bfloat16":
        x = x.astype(np.float32)
    return x


def check_buffers(where: str, whose: str, has: dict, keeps: dict, names: dict) -> None:
    """The one check that a state and the framework keep the same buffers.

    ``has``: field -> whether the state has that buffer; ``keeps``: field -> (whether the
    framework keeps it, the setting that says so); ``names``: the framework's names.
    """
    for field, (wanted, setting) in keeps.items():
        if has[field] != wanted:
            raise ValueError(
                f"{where}: {whose} {'has a' if has[field] else 'has no'} {field} buffer but "
                f"{setting} (the framework {'keeps' if wanted else 'keeps no'} {names[field]})."
            )


# ---------------------------------------------------------------------------
# The RMSPropStates inside a transformation's state.


def _is_rms_state(x: Any) -> bool:
    return isinstance(x, RMSPropState)


def _buffer_leaves(tree: Any, n: int, what: str) -> tuple[list[Any], Any]:
    """The per-leaf entries of one buffer of an RMSPropState: arrays or MaskedNode."""
    is_leaf = lambda x: isinstance(x, (optax.MaskedNode, quantize.QuantizedArray))  # noqa: E731
    leaves, treedef = jax.tree.flatten(tree, is_leaf=is_leaf)
    if len(leaves) != n:
        raise TypeError(
            f"the {what} of an RMSPropState in tx's state has {len(leaves)} leaves but params "
            f"has {n}: tx must be initialized with these params."
        )
    if any(isinstance(leaf, quantize.QuantizedArray) for leaf in leaves):
        option = "nu_dtype" if what == "nu" else "mu_dtype"
        raise ValueError(
            f"tx keeps {what} in 8-bit blocks ({option}='int8'), which the frameworks do not "
            f"have: convert with a float {option} (the default)."
        )
    return leaves, treedef


def _states_of(tx_state: Any, n: int) -> list[tuple[RMSPropState, list[int]]]:
    """Each RMSPropState in a transformation's state, with the leaves it holds buffers for."""
    found = []
    for s in jax.tree.leaves(tx_state, is_leaf=_is_rms_state):
        if isinstance(s, RMSPropState):
            nus, _ = _buffer_leaves(s.nu, n, "nu")
            found.append((s, [j for j, x in enumerate(nus) if not isinstance(x, optax.MaskedNode)]))
    if not found:
        raise TypeError("tx's state holds no RMSPropState: tx must be made by optax_rmsprop.")
    return found


def _place(value: np.ndarray, like: Any, name: str, where: str, theirs: str, field: str) -> Any:
    if value.shape != like.shape:
        raise ValueError(
            f"params{name} ({where}): the framework's {theirs} has shape {value.shape} after "
            f"the leaf's transform, but tx's {field} for the leaf has shape {like.shape}."
        )
    out = jnp.asarray(value, dtype=like.dtype)
    sharding = getattr(like, "sharding", None)
    return out if sharding is None else jax.device_put(out, sharding)


def fill(tx: Any, params: Any, leaves: Leaves, slots: list[Slot], names: dict) -> Any:
    """``tx.init(params)`` with every RMSPropState's buffers and count set from ``slots``."""
    n = len(slots)
    initial = tx.init(params)
    states = _states_of(initial, n)
    covered: dict[int, int] = {}
    filled = {}
    for k, (s, held) in enumerate(states):
        for j in held:
            if j in covered:
                raise ValueError(
                    f"params{leaves.names[j]} has buffers in two RMSPropStates of tx's state."
                )
            covered[j] = k
        counts = {slots[j].count for j in held}
        if len(counts) > 1:
            raise ValueError(
                f"one RMSPropState of tx holds params{leaves.names[held[0]]} and others whose "
                f"framework step counts differ ({sorted(counts)}): it has one count."
            )
        for j in held:
            has = {field: getattr(s, field) is not None for field in ("mu", "momentum")}
            check_buffers(
                f"params{leaves.names[j]} ({slots[j].where})",
                "tx's state",
                has,
                slots[j].keeps,
                names,
            )

        def filled_buffer(tree: Any, field: str, held: list[int] = held) -> Any:
            if tree is None:
                return None
            arrays, treedef = _buffer_leaves(tree, n, field)
            for j in held:
                value = slots[j].buffers.get(field)
                if value is not None:
                    arrays[j] = _place(
                        value, arrays[j], leaves.names[j], slots[j].where, names[field], field
                    )
            return jax.tree.unflatten(treedef, arrays)

        steps = counts.pop() if counts else 0
        filled[k] = RMSPropState(
            count=jnp.asarray(min(steps, 2**31 - 1), jnp.int32),
            nu=filled_buffer(s.nu, "nu"),
            mu=filled_buffer(s.mu, "mu"),
            momentum=filled_buffer(s.momentum, "momentum"),
        )
    for j in range(n):
        if j not in covered:
            raise ValueError(
                f"params{leaves.names[j]} ({slots[j].where}) has no RMSPropState in tx's state, "
                "so its state would be dropped."
            )
    flat, treedef = jax.tree.flatten(initial, is_leaf=_is_rms_state)
    order = iter(range(len(states)))
    flat = [filled[next(order)] if isinstance(x, RMSPropState) else x for x in flat]
    return jax.tree.unflatten(treedef, flat)


def read(state: Any, tx: Any, params: Any, leaves: Leaves) -> list[dict]:
    """Per leaf: the count and the buffers (NumPy, JAX layout, None where off) of ``state``."""
    n = len(leaves)
    expected: Any = jax.tree.structure(jax.eval_shape(tx.init, params))
    if jax.tree.structure(state) != expected:
        raise ValueError(
            "state does not have the structure of tx.init(params): it was made by another "
            "transformation or for other params."
        )
    out: list[dict | None] = [None] * n
    for s, held in _states_of(state, n):
        buffers = {
            field: None if tree is None else _buffer_leaves(tree, n, field)[0]
            for field, tree in (("nu", s.nu), ("mu", s.mu), ("momentum", s.momentum))
        }
        for j in held:
            if out[j] is not None:
                raise ValueError(
                    f"params{leaves.names[j]} has buffers in two RMSPropStates of the state."
                )
            entry: dict[str, Any] = {"count": int(s.count)}
            for field, arrays in buffers.items():
                entry[field] = None if arrays is None else host(arrays[j])
            out[j] = entry
    for j in range(n):
        if out[j] is None:
            raise ValueError(f"params{leaves.names[j]} has no RMSPropState in the state.")
    return [x for x in out if x is not None]


def learning_rates(state: Any, tx: Any, params: Any, leaves: Leaves) -> list[float | None]:
    """Per leaf, the learning rate η that ``tx`` applies at ``state``'s count (None where
    a probe step cannot tell it).

    The probe is one ``tx.update`` from ``state`` with its buffers replaced: v = G² (G
    large, so that ε does not show), m̄ = 0 and b = 0, the gradient G and the params 0 (so
    that weight decay adds nothing). The rule then gives u = −η s with s = G / σ, and σ²
    (v − |m̄|² of the new buffers) is read back from the new state: η = |u| σ / G. Where
    the gradient reaching the rule is not G (a clip chained before it), v moves off G²,
    and the leaf gives None.
    """
    n = len(leaves)
    gain: dict[int, float] = {}
    for s, held in _states_of(state, n):
        nus, _ = _buffer_leaves(s.nu, n, "nu")
        for k in held:
            largest = min(jnp.finfo(nus[k].dtype).max, jnp.finfo(leaves.values[k].dtype).max)
            gain[k] = float(np.sqrt(float(largest))) / 8

    def probe(s: Any) -> Any:
        if not isinstance(s, RMSPropState):
            return s

        def each(tree: Any, value: Callable[[int], float]) -> Any:
            if tree is None:
                return None
            arrays, treedef = _buffer_leaves(tree, n, "buffer")
            arrays = [
                x if isinstance(x, optax.MaskedNode) else jnp.full_like(x, value(k))
                for k, x in enumerate(arrays)
            ]
            return jax.tree.unflatten(treedef, arrays)

        return RMSPropState(
            count=s.count,
            nu=each(s.nu, lambda k: gain[k] ** 2),
            mu=each(s.mu, lambda k: 0.0),
            momentum=each(s.momentum, lambda k: 0.0),
        )

    probe_state = jax.tree.map(probe, state, is_leaf=_is_rms_state)
    grads = jax.tree.unflatten(
        leaves.treedef, [jnp.full_like(x, gain[k]) for k, x in enumerate(leaves.values)]
    )
    zeros = jax.tree.unflatten(leaves.treedef, [jnp.zeros_like(x) for x in leaves.values])
    updates, new_state = tx.update(grads, probe_state, zeros)
    flat_updates = leaves.treedef.flatten_up_to(updates)
    out: list[float | None] = [None] * n
    for s, held in _states_of(new_state, n):
        nus, _ = _buffer_leaves(s.nu, n, "nu")
        mus = None if s.mu is None else _buffer_leaves(s.mu, n, "mu")[0]
        for k in held:
            g = gain[k]
            v = float(np.asarray(nus[k], np.float64).ravel()[0])
            m = 0.0 if mus is None else abs(complex(np.asarray(mus[k]).ravel()[0])) ** 2
            u = abs(complex(np.asarray(flat_updates[k]).ravel()[0]).real)
            if not abs(v - g * g) <= 1e-3 * g * g:  # the rule did not see the gradient G
                continue
            out[k] = u * float(np.sqrt(max(v - m, 0.0))) / g
    return out
