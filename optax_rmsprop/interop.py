"""Optimizer state to and from PyTorch and Keras: resume a training run, not only a step.

``from_torch`` reads a ``torch.optim.RMSprop`` ``state_dict()`` and ``from_keras`` a built
``keras.optimizers.RMSprop``; each returns the transformation (a preset built from the
framework's own hyperparameters) and an :class:`~optax_rmsprop.RMSPropState` for it, so that
the run continues in JAX as it would have in the framework. ``to_torch`` and ``to_keras``
go back. The conversions are exact (a copy, a transpose, a sign); the steps after them
agree to float32 rounding (``tests/test_interop.py``).

=====================  ========================  ===============================
ours                   ``torch.optim.RMSprop``   ``keras.optimizers.RMSprop``
=====================  ========================  ===============================
``count``              ``state[i]["step"]``      ``iterations``
``nu``                 ``square_avg``            ``*_velocity``
``mu``                 ``grad_avg``              ``*_average_gradient``
``momentum``           ``momentum_buffer``       minus ``*_momentum``
=====================  ========================  ===============================

PyTorch keeps the learning rate out of its buffer, b ← μb + g/(√v + ε) and θ ← θ − ηb, as
``presets.torch`` does (``lr_in_momentum=False``), with ``g`` already negated for
``maximize``: the buffers are equal. Keras keeps it in, m ← μm + ηg/√(v + ε) and θ ← θ − m,
while ours holds the update itself, b ← −ηs + μb and θ ← θ + b: b = −m. Complex parameters
are (real, imaginary) pairs in PyTorch (``split_complex=True``): its complex buffers are our
buffers' trailing axis of 2 (``torch.view_as_real``).

Only jax, optax and numpy are imported here: the torch state_dict is read by duck typing, and
torch and keras are imported by the functions that need them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_rmsprop import presets, quantize
from optax_rmsprop.core import RMSPropState

__all__ = ["Leaf", "from_keras", "from_torch", "to_keras", "to_torch"]


@dataclasses.dataclass(frozen=True)
class Leaf:
    """Where one leaf of the JAX params lives in the framework, for ``leaf_map``.

    Attributes:
      key: the framework's parameter: its index in the torch optimizer (the order of
        its ``param_groups``), or a Keras variable's path (``"dense/kernel"``) or index.
      axes: a permutation that turns the framework's array into the leaf, as
        ``np.transpose(array, axes)``: ``(1, 0)`` for a ``torch.nn.Linear`` weight
        (out, in) used as (in, out), ``(2, 3, 1, 0)`` for a ``Conv2d`` weight (O, I, H, W)
        used as (H, W, I, O). ``None`` keeps the layout.
    """

    key: int | str
    axes: tuple[int, ...] | None = None


# What from_torch and from_keras learned about the transformations they return, so that
# to_torch and to_keras need not be told the hyperparameters again. Keyed by tx.update.
_RECORDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class _Slot:
    """One leaf's buffers, in the JAX layout (None: zeros, a parameter not stepped yet)."""

    where: str  # "torch index 3", "keras variable 'dense/kernel'"
    group: int  # the framework's parameter group
    count: int
    momentum: bool  # whether the framework keeps a momentum buffer for it
    centered: bool
    nu: np.ndarray | None = None
    mu: np.ndarray | None = None
    b: np.ndarray | None = None


# ---------------------------------------------------------------------------
# Leaves, paths and layouts.


def _leaves(params: Any) -> tuple[list[str], list[Any], Any]:
    keyed, treedef = jax.tree_util.tree_flatten_with_path(params)
    if not keyed:
        raise ValueError("params has no leaves: pass the JAX pytree of the parameters.")
    return [jax.tree_util.keystr(path) for path, _ in keyed], [x for _, x in keyed], treedef


def _slash_path(path: Any) -> str:
    """``{'dense': {'kernel': x}}``'s leaf as ``dense/kernel`` (Keras's variable paths)."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def _resolve_leaf_map(
    leaf_map: Any, treedef: Any, paths: list[str], keys: Sequence[int | str]
) -> list[tuple[int, tuple[int, ...] | None]]:
    """For each leaf, the position in ``keys`` of its framework parameter and its axes."""
    n = len(paths)
    if leaf_map is None:
        if len(keys) != n:
            raise ValueError(
                f"params has {n} leaves but the optimizer has {len(keys)} parameters: pass "
                "leaf_map to say which parameter goes to each leaf."
            )
        return [(i, None) for i in range(n)]
    if isinstance(leaf_map, Sequence) and not isinstance(leaf_map, str) and len(leaf_map) == n:
        specs = list(leaf_map)  # the resolved form, one entry per leaf
    else:
        try:
            specs = treedef.flatten_up_to(leaf_map)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"leaf_map must have the structure of params, with a Leaf, an index or a "
                f"path at each leaf: {error}"
            ) from None
    out: list[Any] = []
    used: dict[Any, str] = {}
    for path, spec in zip(paths, specs, strict=True):
        if isinstance(spec, tuple) and len(spec) == 2 and not isinstance(spec, Leaf):
            spec = Leaf(*spec)
        if not isinstance(spec, Leaf):
            spec = Leaf(spec)
        key = spec.key
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (numbers.Integral, str)):
            raise TypeError(f"leaf_map{path} must be a Leaf, an index or a path; got {spec.key!r}.")
        if isinstance(key, str):
            if key not in keys:
                raise ValueError(
                    f"leaf_map{path} names {key!r}, which the optimizer does not have."
                )
            position = list(keys).index(key)
        elif keys and isinstance(keys[0], numbers.Integral):  # torch: the state_dict's index
            if int(key) not in keys:
                raise ValueError(
                    f"leaf_map{path} is index {int(key)}, which the state_dict does not have "
                    f"(it has {min(keys)} to {max(keys)})."
                )
            position = list(keys).index(int(key))
        else:  # Keras: the position among the optimizer's variables
            position = int(key)
            if not 0 <= position < len(keys):
                raise ValueError(
                    f"leaf_map{path} is index {position}, but the optimizer has variables "
                    f"0 to {len(keys) - 1}."
                )
        if position in used:
            raise ValueError(
                f"leaf_map{path} and leaf_map{used[position]} both take parameter "
                f"{keys[position]!r}."
            )
        used[position] = path
        axes = None if spec.axes is None else tuple(int(a) for a in spec.axes)
        out.append((position, axes))
    missing = [keys[i] for i in range(len(keys)) if i not in used]
    if missing:
        raise ValueError(
            f"the optimizer's parameter {missing[0]!r} is not in leaf_map: every parameter must "
            "go to one leaf, so that its state is carried over."
        )
    return out


def _check_axes(axes: tuple[int, ...] | None, ndim: int, path: str, where: str) -> None:
    if axes is not None and sorted(axes) != list(range(ndim)):
        raise ValueError(
            f"params{path} ({where}): axes {axes} is not a permutation of the {ndim} axes of "
            "the framework's array."
        )


def _to_jax_layout(x: np.ndarray, axes: tuple[int, ...] | None, pairs: bool) -> np.ndarray:
    if axes is not None:
        x = np.transpose(x, axes)
    if pairs:  # torch.view_as_real
        x = np.stack([x.real, x.imag], axis=-1)
    return x


def _from_jax_layout(x: np.ndarray, axes: tuple[int, ...] | None, pairs: bool) -> np.ndarray:
    if pairs:  # torch.view_as_complex
        z = np.empty(x.shape[:-1], np.result_type(x.dtype, np.complex64))
        z.real, z.imag = x[..., 0], x[..., 1]
        x = z
    if axes is not None:
        x = np.transpose(x, np.argsort(axes))
    return x


def _numpy_of_tensor(x: Any) -> np.ndarray:
    """A torch tensor (or anything array-like) as a NumPy array, without importing torch."""
    for method in ("detach", "cpu", "resolve_conj", "resolve_neg"):
        if hasattr(x, method):
            x = getattr(x, method)()
    if hasattr(x, "numpy"):
        try:
            return np.asarray(x.numpy())
        except TypeError:  # bfloat16 has no NumPy dtype in torch
            return np.asarray(x.float().numpy())
    return np.asarray(x)


def _host(x: Any) -> np.ndarray:
    """A JAX buffer on the host, in a dtype every framework takes (bfloat16 -> float32)."""
    x = np.asarray(x)
    if x.dtype.kind not in "fc" or x.dtype.itemsize < 2 or x.dtype.name == "bfloat16":
        x = x.astype(np.float32)
    return x


# ---------------------------------------------------------------------------
# Filling the state of a transformation, and reading it back.


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
    for leaf in leaves:
        if isinstance(leaf, quantize.QuantizedArray):
            raise ValueError(
                "tx keeps nu in 8-bit blocks (nu_dtype='int8'), which the frameworks do not "
                "have: convert with a float nu_dtype (the default)."
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


def _place(value: np.ndarray, like: Any, path: str, where: str, name: str, field: str) -> Any:
    if value.shape != like.shape:
        raise ValueError(
            f"params{path} ({where}): the framework's {name} has shape {value.shape} after the "
            f"leaf's transform, but tx's {field} for the leaf has shape {like.shape}."
        )
    out = jnp.asarray(value, dtype=like.dtype)
    sharding = getattr(like, "sharding", None)
    return out if sharding is None else jax.device_put(out, sharding)


def _fill(tx: Any, params: Any, paths: list[str], slots: list[_Slot], names: dict) -> Any:
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
                    f"params{paths[j]} has buffers in two RMSPropStates of tx's state."
                )
            covered[j] = k
        counts = {slots[j].count for j in held}
        if len(counts) > 1:
            raise ValueError(
                f"one RMSPropState of tx holds params{paths[held[0]]} and others whose "
                f"framework step counts differ ({sorted(counts)}): it has one count."
            )
        for j in held:
            slot = slots[j]
            for field, option, wanted in (
                ("mu", "centered", slot.centered),
                ("momentum", "momentum", slot.momentum),
            ):
                if (getattr(s, field) is not None) != wanted:
                    theirs = "keeps" if wanted else "keeps no"
                    ours = "has" if getattr(s, field) is not None else "has no"
                    raise ValueError(
                        f"params{paths[j]} ({slot.where}): the framework {theirs} "
                        f"{names[field]} (its {option} option) but tx's state {ours} {field} "
                        "buffer: tx is another configuration."
                    )

        def fill(tree, field, held=held):
            if tree is None:
                return None
            leaves, treedef = _buffer_leaves(tree, n, field)
            for j in held:
                value = getattr(slots[j], {"nu": "nu", "mu": "mu", "momentum": "b"}[field])
                if value is not None:
                    leaves[j] = _place(
                        value, leaves[j], paths[j], slots[j].where, names[field], field
                    )
            return jax.tree.unflatten(treedef, leaves)

        steps = counts.pop() if counts else 0
        filled[k] = RMSPropState(
            count=jnp.asarray(min(steps, 2**31 - 1), jnp.int32),
            nu=fill(s.nu, "nu"),
            mu=fill(s.mu, "mu"),
            momentum=fill(s.momentum, "momentum"),
        )
    for j in range(n):
        if j not in covered:
            raise ValueError(
                f"params{paths[j]} ({slots[j].where}) has no RMSPropState in tx's state, so its "
                "state would be dropped."
            )
    leaves, treedef = jax.tree.flatten(initial, is_leaf=_is_rms_state)
    order = iter(range(len(states)))
    leaves = [filled[next(order)] if isinstance(x, RMSPropState) else x for x in leaves]
    return jax.tree.unflatten(treedef, leaves)


def _read(state: Any, tx: Any, params: Any, paths: list[str]) -> list[dict]:
    """Per leaf: the count and the buffers (NumPy, JAX layout, None where off) of ``state``."""
    n = len(paths)
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
                raise ValueError(f"params{paths[j]} has buffers in two RMSPropStates of the state.")
            read: dict[str, Any] = {"count": int(s.count)}
            for field, leaves in buffers.items():
                read[field] = None if leaves is None else _host(leaves[j])
            out[j] = read
    for j in range(n):
        if out[j] is None:
            raise ValueError(f"params{paths[j]} has no RMSPropState in the state.")
    return [x for x in out if x is not None]


def _record(tx: Any, **record: Any) -> None:
    try:
        _RECORDS[tx.update] = record
    except TypeError:  # an update that cannot be weakly referenced: nothing remembered
        pass


# ---------------------------------------------------------------------------
# PyTorch.

_TORCH_OPTIONS = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
_TORCH_DEFAULTS = dict(
    alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False
)
_TORCH_BUFFERS = {"square_avg": "nu", "grad_avg": "mu", "momentum_buffer": "momentum"}
_TORCH_NAMES = {"nu": "square_avg", "mu": "grad_avg", "momentum": "momentum_buffer"}
# Keys that other torch.optim optimizers keep, and which of them keep them.
_FOREIGN_GROUP_KEYS = {
    "betas": "Adam, AdamW, NAdam, RAdam or Adamax",
    "amsgrad": "Adam or AdamW",
    "nesterov": "SGD",
    "dampening": "SGD",
    "lr_decay": "Adagrad",
    "initial_accumulator_value": "Adagrad",
    "rho": "Adadelta",
    "lambd": "ASGD",
    "etas": "Rprop",
    "step_sizes": "Rprop",
    "momentum_decay": "NAdam",
}
_FOREIGN_STATE_KEYS = {
    "exp_avg": "Adam, AdamW, NAdam, RAdam or Adamax",
    "exp_avg_sq": "Adam, AdamW, NAdam or RAdam",
    "max_exp_avg_sq": "Adam or AdamW with amsgrad",
    "exp_inf": "Adamax",
    "sum": "Adagrad",
    "acc_delta": "Adadelta",
    "eta": "ASGD",
    "ax": "ASGD",
    "prev": "Rprop",
    "step_size": "Rprop",
}


def _torch_hyperparameters(group: Mapping, g: int) -> dict:
    for key, who in _FOREIGN_GROUP_KEYS.items():
        if key in group:
            raise ValueError(
                f"param_groups[{g}] has {key!r}, which torch.optim.RMSprop does not have: this "
                f"state_dict is from another optimizer ({who})."
            )
    missing = [key for key in _TORCH_OPTIONS if key not in group]
    if missing:
        raise ValueError(
            f"param_groups[{g}] has no {missing[0]!r}: this is not a torch.optim.RMSprop "
            "state_dict."
        )
    h = {key: group.get(key, default) for key, default in _TORCH_DEFAULTS.items()}
    h["lr"] = group["lr"]
    for key in ("lr", "alpha", "eps", "weight_decay", "momentum"):
        value = h[key]
        if hasattr(value, "item"):  # a tensor lr
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"param_groups[{g}][{key!r}] must be a number; got {value!r}.")
        h[key] = float(value)
    h["centered"], h["maximize"] = bool(h["centered"]), bool(h["maximize"])
    return h


def _torch_state_dict(optimizer_state_dict: Any) -> Mapping:
    if hasattr(optimizer_state_dict, "state_dict") and not isinstance(
        optimizer_state_dict, Mapping
    ):
        optimizer_state_dict = optimizer_state_dict.state_dict()  # the optimizer itself
    if not (
        isinstance(optimizer_state_dict, Mapping)
        and "state" in optimizer_state_dict
        and "param_groups" in optimizer_state_dict
    ):
        raise TypeError(
            "expected a torch optimizer's state_dict(): a dict with 'state' and 'param_groups'; "
            f"got {type(optimizer_state_dict).__name__}."
        )
    return optimizer_state_dict


def _step_count(step: Any, where: str) -> int:
    value = float(_numpy_of_tensor(step)) if not isinstance(step, numbers.Real) else float(step)
    if not (value >= 0 and value == math.floor(value) and math.isfinite(value)):
        raise ValueError(f"{where}: step must be a whole number >= 0; got {value}.")
    return int(value)


def from_torch(
    optimizer_state_dict: Any,
    params: Any,
    *,
    tx: Any = None,
    leaf_map: Any = None,
) -> tuple[optax.GradientTransformationExtraArgs, Any]:
    r"""A ``torch.optim.RMSprop`` state as the transformation and state that continue it.

    Args:
      optimizer_state_dict: ``optimizer.state_dict()`` of a ``torch.optim.RMSprop`` (or the
        optimizer itself), e.g. from a checkpoint.
      params: the JAX pytree of the parameters the run continues from; its leaves
        correspond, in order, to the torch parameters (the order of ``param_groups``, as in
        the state_dict's indices), unless ``leaf_map`` says otherwise.
      tx: the transformation to fill a state for. Default: ``presets.torch`` with each
        group's ``lr``, ``alpha``, ``eps``, ``weight_decay``, ``momentum``, ``centered``
        and ``maximize``; groups with different hyperparameters (or step counts) become an
        :func:`optax.multi_transform` whose labels are ``"group0"``, ``"group1"``, ... .
        Pass one to continue with a schedule or narrower buffers (``nu_dtype``); its
        RMSPropStates must have the buffers the torch groups have.
      leaf_map: a pytree with the structure of ``params`` whose leaves are each a torch
        index or a :class:`Leaf` (index and axis permutation), or a list with one per leaf.

    Returns:
      ``(tx, state)``: the state has ``count`` = torch's ``step``, ``nu`` = ``square_avg``,
      ``mu`` = ``grad_avg`` and ``momentum`` = ``momentum_buffer`` (equal buffers: torch's is
      b ← μb + g/(√v + ε), with g negated for ``maximize``, and θ ← θ − ηb, as
      ``presets.torch``'s). A parameter with no state yet (never stepped) gets zeros, as
      torch would give it. ``foreach``, ``fused``, ``capturable`` and ``differentiable``
      change how torch computes, not what: they are ignored. The learning rate is the
      group's current one; under an LR scheduler pass ``tx`` with the schedule.

    Raises:
      TypeError: for something that is not a state_dict.
      ValueError: for another optimizer's state_dict (Adam's ``exp_avg``, SGD's
        ``nesterov``...), a missing buffer, step counts that differ within one group, a
        leaf whose shape does not fit (naming the leaf and the torch index), or a leaf
        map that misses or repeats a parameter.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import interop
      >>> state_dict = {  # torch.optim.RMSprop(ps, lr=0.01, momentum=0.9).state_dict()
      ...     "state": {0: {"step": 3.0, "square_avg": [0.5, 2.0],
      ...                   "momentum_buffer": [0.1, -0.2]}},
      ...     "param_groups": [dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0,
      ...                           momentum=0.9, centered=False, params=[0])]}
      >>> tx, state = interop.from_torch(state_dict, jnp.zeros(2))
      >>> int(state.count), state.momentum
      (3, Array([ 0.1, -0.2], dtype=float32))
    """
    sd = _torch_state_dict(optimizer_state_dict)
    paths, leaves, treedef = _leaves(params)
    groups, index_group = [], {}
    for g, group in enumerate(sd["param_groups"]):
        if not isinstance(group, Mapping) or "params" not in group:
            raise TypeError(f"param_groups[{g}] must be a dict with 'params' (a list of indices).")
        groups.append(_torch_hyperparameters(group, g))
        for index in group["params"]:
            if not isinstance(index, numbers.Integral) or index in index_group:
                raise ValueError(
                    f"param_groups[{g}]['params'] holds {index!r}: a state_dict's params are "
                    "distinct integer indices."
                )
            index_group[int(index)] = g
    indices = sorted(index_group)  # torch numbers them in order across groups
    state = sd["state"]
    for index, entry in state.items():
        if index not in index_group:
            raise ValueError(f"state[{index!r}] belongs to no parameter group.")
        for key in entry:
            if key in _FOREIGN_STATE_KEYS:
                raise ValueError(
                    f"state[{index}] has {key!r}, which torch.optim.RMSprop does not keep: this "
                    f"state_dict is from another optimizer ({_FOREIGN_STATE_KEYS[key]})."
                )
            if key != "step" and key not in _TORCH_BUFFERS:
                raise ValueError(
                    f"state[{index}] has {key!r}, which torch.optim.RMSprop does not keep."
                )

    steps = {}
    for g in range(len(groups)):
        counts = {
            _step_count(state[i]["step"], f"state[{i}]")
            for i in indices
            if index_group[i] == g and i in state and "step" in state[i]
        }
        if len(counts) > 1:
            raise ValueError(
                f"the parameters of param_groups[{g}] have taken different numbers of steps "
                f"({sorted(counts)}), which one count cannot hold."
            )
        steps[g] = counts.pop() if counts else 0

    mapping = _resolve_leaf_map(leaf_map, treedef, paths, indices)
    slots = []
    for path, leaf, (position, axes) in zip(paths, leaves, mapping, strict=True):
        index = indices[position]
        g = index_group[index]
        h, entry = groups[g], dict(state.get(index, {}))
        where = f"torch index {index}"
        pairs = jnp.iscomplexobj(leaf)
        needed = (
            ["square_avg"]
            + ["momentum_buffer"] * (h["momentum"] > 0)
            + ["grad_avg"] * h["centered"]
        )
        if entry:
            for key in needed:
                if key not in entry:
                    raise ValueError(
                        f"state[{index}] (for params{path}) has no {key!r}, which param_groups[{g}]"
                        f" (momentum={h['momentum']}, centered={h['centered']}) needs."
                    )
        buffers = {}
        for key in needed:
            if key in entry:
                x = _numpy_of_tensor(entry[key])
                _check_axes(axes, x.ndim, path, where)
                buffers[_TORCH_BUFFERS[key]] = _to_jax_layout(x, axes, pairs)
        slots.append(
            _Slot(
                where=where,
                group=g,
                count=steps[g],
                momentum=h["momentum"] > 0,
                centered=h["centered"],
                nu=buffers.get("nu"),
                mu=buffers.get("mu"),
                b=buffers.get("momentum"),
            )
        )

    if tx is None:
        tx = _torch_tx(groups, steps, slots, treedef)
    out = _fill(tx, params, paths, slots, _TORCH_NAMES)
    record_groups = [
        dict(groups[g], params=[i for i in indices if index_group[i] == g])
        for g in range(len(groups))
    ]
    _record(tx, framework="torch", param_groups=record_groups, leaf_map=mapping)
    return tx, out


def _torch_tx(groups: list[dict], steps: dict, slots: list[_Slot], treedef: Any) -> Any:
    """``presets.torch`` per set of groups with the same hyperparameters and step count."""
    labels: dict[tuple, str] = {}
    for g, h in enumerate(groups):
        labels.setdefault((tuple(sorted(h.items())), steps[g]), f"group{g}")
    label_of = {g: labels[(tuple(sorted(h.items())), steps[g])] for g, h in enumerate(groups)}
    used = {label_of[slot.group] for slot in slots}
    transforms = {
        label_of[g]: presets.torch(**groups[g]) for g in range(len(groups)) if label_of[g] in used
    }
    if len(transforms) == 1:
        return next(iter(transforms.values()))
    param_labels = jax.tree.unflatten(treedef, [label_of[slot.group] for slot in slots])
    return optax.multi_transform(transforms, param_labels)


def to_torch(
    state: Any,
    tx: Any,
    params: Any,
    *,
    param_groups: Sequence[Mapping] | None = None,
    leaf_map: Any = None,
) -> dict:
    r"""A state of ``tx`` as a ``torch.optim.RMSprop`` ``state_dict()``.

    Load it with ``optimizer.load_state_dict(...)`` into a ``torch.optim.RMSprop`` over the
    same parameters (set to ``params``' values), in the same groups.

    Args:
      state: the state of ``tx`` (an RMSPropState, or a state holding some, e.g. of
        :func:`optax.multi_transform`).
      tx: the transformation; if :func:`from_torch` made it, its param groups and leaf
        map are known and need not be given.
      params: the JAX parameters the state is for.
      param_groups: the torch groups' hyperparameters (``lr`` and any of ``alpha``,
        ``eps``, ``weight_decay``, ``momentum``, ``centered``, ``maximize``, torch's
        defaults otherwise), e.g. ``torch_optimizer.param_groups``; each group's
        ``params`` (indices or tensors) says how many parameters it holds, in order.
        Needed unless :func:`from_torch` made ``tx``, and checked against it if so.
      leaf_map: as for :func:`from_torch` (default: the one :func:`from_torch` was given,
        else leaf i is torch parameter i).

    Returns:
      ``{"state": {index: {"step", "square_avg", ...}}, "param_groups": [...]}`` with
      torch tensors (``step`` a float tensor, as torch keeps it; complex parameters'
      buffers complex, from the (real, imaginary) pairs).
    """
    import torch

    paths, leaves, treedef = _leaves(params)
    record = _RECORDS.get(tx.update) if hasattr(tx, "update") else None
    record = record if record and record["framework"] == "torch" else None
    if param_groups is None:
        if record is None:
            raise ValueError(
                "tx's torch hyperparameters are unknown (from_torch did not make it): pass "
                "param_groups, e.g. torch_optimizer.param_groups or [dict(lr=0.01, ...)]."
            )
        groups = [dict(group) for group in record["param_groups"]]
    else:
        groups = _given_torch_groups(param_groups, len(leaves))
        if record is not None:
            _check_same_groups(groups, record["param_groups"])
    indices, index_group = [], {}
    for g, group in enumerate(groups):
        for index in group["params"]:
            indices.append(index)
            index_group[index] = g
    if leaf_map is None and record is not None:
        mapping = record["leaf_map"]
        if len(mapping) != len(leaves):
            raise ValueError("params has other leaves than those from_torch converted.")
    else:
        mapping = _resolve_leaf_map(leaf_map, treedef, paths, indices)
    read = _read(state, tx, params, paths)

    out_state: dict[int, Any] = {}
    group_counts: dict[Any, Any] = {}
    for path, leaf, (position, axes), buffers in zip(paths, leaves, mapping, read, strict=True):
        index = indices[position]
        g = index_group[index]
        h = groups[g]
        where = f"params{path} (torch index {index})"
        for field, option, wanted in (
            ("momentum", "momentum", h["momentum"] > 0),
            ("mu", "centered", h["centered"]),
        ):
            if (buffers[field] is not None) != wanted:
                raise ValueError(
                    f"{where}: the state {'has' if buffers[field] is not None else 'has no'} "
                    f"{field} buffer but param_groups[{g}] has {option}={h[option]}."
                )
        if group_counts.setdefault(g, buffers["count"]) != buffers["count"]:
            raise ValueError(
                f"{where}: the leaves of param_groups[{g}] have different counts "
                f"({group_counts[g]} and {buffers['count']}), but torch steps a group together."
            )
        pairs = jnp.iscomplexobj(leaf)
        entry = {"step": torch.tensor(float(buffers["count"]))}
        for field in ("nu", "momentum", "mu"):
            if buffers[field] is not None:
                x = _from_jax_layout(buffers[field], axes, pairs)
                entry[_TORCH_NAMES[field]] = torch.tensor(np.ascontiguousarray(x))
        out_state[index] = entry
    out_groups = []
    for group in groups:
        group = dict(group)
        for key in ("foreach", "capturable", "differentiable"):
            group.setdefault(key, None if key == "foreach" else False)
        out_groups.append(group)
    return {"state": out_state, "param_groups": out_groups}


def _given_torch_groups(param_groups: Sequence[Mapping], n: int) -> list[dict]:
    if isinstance(param_groups, Mapping):
        param_groups = [param_groups]
    groups, offset = [], 0
    for g, group in enumerate(param_groups):
        if "lr" not in group:
            raise ValueError(f"param_groups[{g}] has no 'lr'.")
        h = _torch_hyperparameters({**_TORCH_DEFAULTS, **group}, g)
        extra = {
            key: value
            for key, value in group.items()
            if key not in h and key not in ("params", "param_names")
        }
        if "params" in group:
            size = len(group["params"])
        elif len(param_groups) == 1:
            size = n
        else:
            raise ValueError(
                f"param_groups[{g}] has no 'params': with several groups each must say how many "
                "parameters it holds."
            )
        groups.append({**extra, **h, "params": list(range(offset, offset + size))})
        offset += size
    return groups


def _check_same_groups(given: list[dict], recorded: list[dict]) -> None:
    if len(given) != len(recorded):
        raise ValueError(
            f"param_groups has {len(given)} groups but tx was made from {len(recorded)}."
        )
    for g, (a, b) in enumerate(zip(given, recorded, strict=True)):
        for key in ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"):
            if a[key] != b[key]:
                raise ValueError(
                    f"param_groups[{g}] has {key}={a[key]!r} but tx was made with {b[key]!r}."
                )
        if len(a["params"]) != len(b["params"]):
            raise ValueError(
                f"param_groups[{g}] holds {len(a['params'])} parameters but tx's group held "
                f"{len(b['params'])}."
            )


# ---------------------------------------------------------------------------
# Keras 3.

_KERAS_SUFFIXES = {"nu": "_velocity", "momentum": "_momentum", "mu": "_average_gradient"}
_KERAS_NAMES = {"nu": "velocity", "mu": "average_gradient", "momentum": "momentum"}


def _keras_optimizer(optimizer: Any) -> tuple[dict, dict[str, Any], list[str]]:
    """The RMSprop's config, its variables by name, and the slot names in order."""
    import keras

    if not isinstance(optimizer, keras.optimizers.RMSprop):
        raise TypeError(
            f"expected a keras.optimizers.RMSprop; got {type(optimizer).__name__}: its state "
            "does not map onto RMSProp's."
        )
    if not optimizer.built:
        raise ValueError(
            "the optimizer has no state yet: build it first, "
            "optimizer.build(model.trainable_variables)."
        )
    lr = optimizer.learning_rate  # a Variable, or a schedule's current value
    config = {
        option: getattr(optimizer, option, None)
        for option in (
            "rho",
            "momentum",
            "epsilon",
            "centered",
            "weight_decay",
            "clipnorm",
            "clipvalue",
            "global_clipnorm",
            "use_ema",
            "loss_scale_factor",
            "gradient_accumulation_steps",
        )
    }  # get_config() reads the learning rate with np.array, which NumPy 2 warns about
    config["learning_rate"] = (
        float(keras.ops.convert_to_numpy(lr.value)) if isinstance(lr, keras.Variable) else lr
    )
    for option in ("use_ema", "gradient_accumulation_steps"):
        if config.get(option):
            raise ValueError(
                f"the optimizer has {option}={config[option]!r}, whose state (EMA weights, "
                "accumulated gradients) RMSPropState does not hold."
            )
    by_name = {variable.name: variable for variable in optimizer.variables}
    bases = [
        name[: -len(_KERAS_SUFFIXES["nu"])]
        for name in by_name
        if name.endswith(_KERAS_SUFFIXES["nu"])
    ]
    return config, by_name, bases


def _keras_numpy(variable: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable.value))


def _keras_hyperparameters(config: dict, optimizer: Any, given_tx: bool) -> dict:
    h = dict(
        learning_rate=config["learning_rate"],
        rho=float(config["rho"]),
        momentum=float(config["momentum"]),
        epsilon=float(config["epsilon"]),
        centered=bool(config["centered"]),
        weight_decay=None if config["weight_decay"] is None else float(config["weight_decay"]),
    )
    if given_tx:
        return h
    problems = [
        f"{option}={config[option]!r} (chain optax's clipping before presets.keras)"
        for option in ("clipnorm", "clipvalue", "global_clipnorm")
        if config.get(option) is not None
    ]
    if config.get("loss_scale_factor") is not None:
        problems.append(f"loss_scale_factor={config['loss_scale_factor']!r}")
    if not isinstance(h["learning_rate"], numbers.Real):
        problems.append("a learning-rate schedule (pass it as presets.keras's learning_rate)")
    excluded = getattr(optimizer, "_exclude_from_weight_decay", None) or getattr(
        optimizer, "_exclude_from_weight_decay_pattern", None
    )
    if h["weight_decay"] and excluded:
        problems.append("exclude_from_weight_decay (pass weight_decay_mask to presets.keras)")
    if problems:
        raise ValueError(
            "presets.keras alone cannot reproduce this optimizer's "
            + "; ".join(problems)
            + ": pass tx= that does."
        )
    h["learning_rate"] = float(h["learning_rate"])
    return h


def _keras_mapping(
    leaf_map: Any, params: Any, treedef: Any, paths: list[str], bases: list[str]
) -> list[tuple[int, tuple[int, ...] | None]]:
    """Leaves to slot names: by the leaves' paths joined with '/' (Keras's variable paths),
    else by order; or as ``leaf_map`` says (variable paths or indices)."""
    base_of_path = lambda path: path.replace("/", "_")  # noqa: E731 (Keras's slot names)

    def by_path(key):
        return bases.index(base_of_path(key)) if isinstance(key, str) else key

    if leaf_map is None:
        slash = [_slash_path(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
        if all(base_of_path(p) in bases for p in slash):
            leaf_map = list(slash)
    if leaf_map is not None:
        specs = (
            list(leaf_map)
            if isinstance(leaf_map, Sequence) and len(leaf_map) == len(paths)
            else None
        )
        if specs is None:
            try:
                specs = treedef.flatten_up_to(leaf_map)
            except (ValueError, TypeError) as error:
                raise ValueError(f"leaf_map must have the structure of params: {error}") from None
        resolved = []
        for path, spec in zip(paths, specs, strict=True):
            spec = spec if isinstance(spec, Leaf) else Leaf(spec)
            if isinstance(spec.key, str) and base_of_path(spec.key) not in bases:
                raise ValueError(
                    f"leaf_map{path} names {spec.key!r}, but the optimizer has no velocity for "
                    f"a variable of that path (it has {len(bases)}: "
                    f"{', '.join(repr(b + '_velocity') for b in bases[:4])}...)."
                )
            resolved.append(Leaf(by_path(spec.key), spec.axes))
        leaf_map = resolved
    return _resolve_leaf_map(leaf_map, treedef, paths, bases)


def from_keras(
    optimizer: Any, params: Any, *, tx: Any = None, leaf_map: Any = None
) -> tuple[optax.GradientTransformationExtraArgs, RMSPropState]:
    r"""A built ``keras.optimizers.RMSprop``'s state as the transformation and state that
    continue it.

    Args:
      optimizer: the Keras 3 RMSprop, built (after a step, or
        ``optimizer.build(model.trainable_variables)``).
      params: the JAX pytree of the parameters. Its leaves are matched to the Keras
        variables by path: a leaf at ``params["dense"]["kernel"]`` (or
        ``params["dense/kernel"]``) is the variable whose ``path`` is ``dense/kernel``;
        where not every leaf's path is a variable's, by order (the optimizer's variables).
      tx: the transformation to fill a state for (default: ``presets.keras`` with the
        optimizer's ``learning_rate``, ``rho``, ``momentum``, ``epsilon``, ``centered`` and
        ``weight_decay``). Needed for what the preset alone does not do: clipping,
        ``loss_scale_factor``, a learning-rate schedule, ``exclude_from_weight_decay``.
      leaf_map: a pytree with the structure of ``params`` (or a list, one per leaf) of
        variable paths, indices or :class:`Leaf`.

    Returns:
      ``(tx, state)`` with ``count`` = ``iterations``, ``nu`` = the velocities, ``mu`` =
      the average gradients and ``momentum`` = minus Keras's momentums (Keras's holds
      +ηg/√(v + ε) and subtracts it; ours holds the update and adds it).
    """
    config, by_name, bases = _keras_optimizer(optimizer)
    h = _keras_hyperparameters(config, optimizer, given_tx=tx is not None)
    paths, leaves, treedef = _leaves(params)
    mapping = _keras_mapping(leaf_map, params, treedef, paths, bases)
    count = int(_keras_numpy(optimizer.iterations))
    slots = []
    for path, (position, axes) in zip(paths, mapping, strict=True):
        base = bases[position]
        where = f"keras variable {base + '_velocity'!r}"
        buffers = {}
        for field, on in (("nu", True), ("momentum", h["momentum"] > 0), ("mu", h["centered"])):
            if not on:
                continue
            name = base + _KERAS_SUFFIXES[field]
            if name not in by_name:
                raise ValueError(f"params{path}: the optimizer has no variable {name!r}.")
            x = _keras_numpy(by_name[name])
            _check_axes(axes, x.ndim, path, where)
            buffers[field] = _to_jax_layout(-x if field == "momentum" else x, axes, False)
        slots.append(
            _Slot(
                where=where,
                group=0,
                count=count,
                momentum=h["momentum"] > 0,
                centered=h["centered"],
                nu=buffers["nu"],
                mu=buffers.get("mu"),
                b=buffers.get("momentum"),
            )
        )
    if tx is None:
        tx = presets.keras(**h)
    state = _fill(tx, params, paths, slots, _KERAS_NAMES)
    _record(tx, framework="keras", hyperparameters=h, leaf_map=mapping)
    return tx, state


def to_keras(state: Any, tx: Any, params: Any, optimizer: Any, *, leaf_map: Any = None) -> None:
    r"""Writes a state of ``tx`` into a built ``keras.optimizers.RMSprop``, in place.

    The optimizer must have the configuration of ``tx`` (checked: the buffers it keeps,
    and, where :func:`from_keras` made ``tx``, every hyperparameter); build it over the
    model's variables first (``optimizer.build(model.trainable_variables)``). Leaves are
    matched to variables as in :func:`from_keras`. Sets ``iterations`` to the count, the
    velocities, the average gradients and the momentums (minus ours).
    """
    config, by_name, bases = _keras_optimizer(optimizer)
    h = _keras_hyperparameters(config, optimizer, given_tx=True)
    record = _RECORDS.get(tx.update) if hasattr(tx, "update") else None
    if record is not None and record["framework"] == "keras":
        for key, value in record["hyperparameters"].items():
            if h[key] != value and not (
                key == "learning_rate" and not isinstance(h[key], numbers.Real)
            ):
                raise ValueError(
                    f"the optimizer has {key}={h[key]!r} but tx was made with {value!r}."
                )
    paths, leaves, treedef = _leaves(params)
    mapping = _keras_mapping(leaf_map, params, treedef, paths, bases)
    read = _read(state, tx, params, paths)
    counts = {buffers["count"] for buffers in read}
    if len(counts) > 1:
        raise ValueError(
            f"the state's leaves have different counts ({sorted(counts)}), but a Keras "
            "optimizer has one iterations count."
        )
    writes = []
    for path, (position, axes), buffers in zip(paths, mapping, read, strict=True):
        base = bases[position]
        for field, option, wanted in (
            ("momentum", "momentum", h["momentum"] > 0),
            ("mu", "centered", h["centered"]),
        ):
            if (buffers[field] is not None) != wanted:
                raise ValueError(
                    f"params{path} (keras variable {base + '_velocity'!r}): the state "
                    f"{'has' if buffers[field] is not None else 'has no'} {field} buffer but "
                    f"the optimizer has {option}={h[option]}."
                )
        for field in ("nu", "momentum", "mu"):
            if buffers[field] is None:
                continue
            variable = by_name[base + _KERAS_SUFFIXES[field]]
            x = _from_jax_layout(buffers[field], axes, False)
            if field == "momentum":
                x = -x
            if tuple(x.shape) != tuple(variable.shape):
                raise ValueError(
                    f"params{path}: the state's {field} has shape {x.shape} in Keras's layout "
                    f"but {variable.name!r} has shape {tuple(variable.shape)}."
                )
            writes.append((variable, x.astype(variable.dtype)))
    for variable, x in writes:  # only once everything fits
        variable.assign(x)
    optimizer.iterations.assign(counts.pop())
