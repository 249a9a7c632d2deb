"""``torch.optim.RMSprop`` state (and its LR scheduler's position) to and from JAX."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_rmsprop import presets
from optax_rmsprop.interop import _state
from optax_rmsprop.interop._state import Leaves

# What a converter understands, by optimizer (an allowlist: anything else is refused by name).
# Each kind's group options and their defaults (a checkpoint of an older version may lack some).
_KINDS = {
    "torch.optim.RMSprop": dict(
        lr=None,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0.0,
        momentum=0.0,
        centered=False,
        maximize=False,
    ),
    "timm.optim.RMSpropTF": dict(
        lr=None,
        alpha=0.9,
        eps=1e-10,
        weight_decay=0.0,
        momentum=0.0,
        centered=False,
        decoupled_decay=False,
        corrected_weight_decay=False,
        max_lr_snapshot=None,
        lr_in_momentum=True,
        caution=False,
    ),
}
# Group keys that change how torch computes, not what, and the LR schedulers' keys (read by
# torch_schedules; initial_lr says a scheduler was attached).
_HOW_KEYS = ("params", "param_names", "foreach", "fused", "capturable", "differentiable")
_SCHEDULER_GROUP_KEYS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")
_BUFFERS = {"square_avg": "nu", "grad_avg": "mu", "momentum_buffer": "momentum"}
_STATE_KEYS = ("step", *_BUFFERS)
NAMES = {"nu": "square_avg", "mu": "grad_avg", "momentum": "momentum_buffer"}


def _numpy_of_tensor(x: Any) -> np.ndarray:
    """A torch tensor (or anything array-like) as a NumPy array, without importing torch."""
    for method in ("detach", "cpu", "resolve_conj", "resolve_neg"):
        if hasattr(x, method):
            x = getattr(x, method)()
    if hasattr(x, "numpy"):
        try:
            return np.array(x.numpy())  # a copy: torch may step the tensor in place later
        except TypeError:  # bfloat16 has no NumPy dtype in torch
            return np.array(x.float().numpy())
    return np.array(x)


def _kind(group: Mapping) -> str:
    """Which optimizer a group is from: RMSpropTF's groups say ``lr_in_momentum``."""
    return "timm.optim.RMSpropTF" if "lr_in_momentum" in group else "torch.optim.RMSprop"


def _hyperparameters(group: Mapping, g: int) -> dict:
    """A group's options, with ``"kind"`` the optimizer; every key must be understood."""
    kind = _kind(group)
    options = _KINDS[kind]
    unknown = [k for k in group if k not in options and k not in _HOW_KEYS + _SCHEDULER_GROUP_KEYS]
    if unknown:
        raise ValueError(
            f"param_groups[{g}] has {unknown[0]!r}, which {kind} does not have"
            + (f" (nor {unknown[1:]})" if unknown[1:] else "")
            + ": this state_dict is from another optimizer, or an option is set that the "
            "conversion does not know. from_torch carries torch.optim.RMSprop and "
            "timm.optim.RMSpropTF; for anything else, convert the state by hand."
        )
    if "lr" not in group:
        raise ValueError(f"param_groups[{g}] has no 'lr': this is not a {kind} state_dict.")
    h: dict[str, Any] = {key: group.get(key, default) for key, default in options.items()}
    for key in ("lr", "alpha", "eps", "weight_decay", "momentum"):
        value = h[key]
        if hasattr(value, "item"):  # a tensor lr
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"param_groups[{g}][{key!r}] must be a number; got {value!r}.")
        h[key] = float(value)
    for key, default in options.items():
        if isinstance(default, bool):
            h[key] = bool(h[key])
    if kind == "timm.optim.RMSpropTF":
        snapshot = h["max_lr_snapshot"]
        h["max_lr_snapshot"] = h["lr"] if snapshot is None else float(snapshot)
    h["kind"] = kind
    return h


def _preset(h: Mapping, schedules: Mapping) -> Any:
    """The preset that continues a group: ``presets.torch`` or ``presets.timm``."""
    given = {**{k: v for k, v in h.items() if k != "kind"}, **schedules}
    if h["kind"] == "torch.optim.RMSprop":
        return presets.torch(**given)
    snapshot = given.pop("max_lr_snapshot")
    if given["corrected_weight_decay"]:
        given["corrected_weight_decay"] = snapshot
    return presets.timm(**given)


def _momentum_sign(h: Mapping) -> float:
    """torch's buffer is ours (b ← μb + g/d, θ ← θ − ηb); RMSpropTF's with lr_in_momentum
    holds +ηg/d and subtracts it, where ours holds the update: minus ours."""
    return -1.0 if h.get("lr_in_momentum") else 1.0


def _keeps(h: dict, g: int) -> dict:
    """Which optional buffers torch keeps for a group, and the setting that says so."""
    return {
        "momentum": (h["momentum"] > 0, f"param_groups[{g}] has momentum={h['momentum']:g}"),
        "mu": (h["centered"], f"param_groups[{g}] has centered={h['centered']}"),
    }


def _optimizer_state_dict(optimizer_state_dict: Any) -> Mapping:
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


def _mapping(
    leaf_map: Any,
    match: str,
    leaves: Leaves,
    indices: list[int],
    names: list[str] | None,
) -> list[tuple[int, tuple[int, ...] | None]]:
    """Leaves to torch parameters: by ``leaf_map``, else by the parameter names the
    state_dict holds (``fc.weight`` is the leaf at ``fc/weight``), else by order where
    asked for (``match='order'``) or where there is one of each."""
    if match not in ("path", "order"):
        raise ValueError(f"match must be 'path' or 'order'; got {match!r}.")

    def lookup(key: Any, name: str) -> int:
        if isinstance(key, str):
            if names is None or key not in names:
                raise ValueError(
                    f"leaf_map{name} names {key!r}, but the optimizer has no parameter of that "
                    f"name ({'it names none' if names is None else names})."
                )
            return names.index(key)
        if int(key) not in indices:
            raise ValueError(
                f"leaf_map{name} is index {int(key)}, which the state_dict does not have "
                f"(it has {min(indices)} to {max(indices)})."
            )
        return indices.index(int(key))

    keys: list[Any] = list(indices) if names is None else list(names)
    if leaf_map is None:
        if len(leaves) != len(indices):
            raise ValueError(
                f"params has {len(leaves)} leaves but the optimizer has {len(indices)} "
                "parameters: pass leaf_map to say which parameter goes to each leaf."
            )
        if match == "order" or len(indices) == 1:
            leaf_map = list(indices)
        elif names is not None:
            dotted = [name.replace(".", "/") for name in names]
            found = _state.match_paths(leaves, dotted, "torch parameter")
            leaf_map = [indices[i] for i in found]
        else:
            raise ValueError(
                "the state_dict names no parameters (an optimizer made from "
                "model.named_parameters() would), so which leaf is which is unknown: pass "
                "leaf_map (a torch index or Leaf per leaf), or match='order' to take them in "
                f"the order of params' leaves: {', '.join('params' + n for n in leaves.names)}."
            )
    return _state.resolve(leaf_map, leaves, keys, lookup, "torch parameter", square_needs_axes=True)


def from_torch(
    optimizer_state_dict: Any,
    params: Any,
    *,
    scheduler: Any = None,
    steps_per_scheduler_step: int | None = None,
    tx: Any = None,
    leaf_map: Any = None,
    match: str = "path",
) -> tuple[optax.GradientTransformationExtraArgs, Any]:
    r"""A ``torch.optim.RMSprop`` or ``timm.optim.RMSpropTF`` state as the transformation and
    state that continue it.

    Which optimizer it is, the groups say (RMSpropTF's have ``lr_in_momentum``); every key
    of a group and of a parameter's state must be one that optimizer has, or it is refused
    by name.

    Args:
      optimizer_state_dict: ``optimizer.state_dict()`` of a ``torch.optim.RMSprop`` or a
        ``timm.optim.RMSpropTF`` (or the optimizer itself), e.g. from a checkpoint.
      params: the JAX pytree of the parameters the run continues from.
      scheduler: the run's LR scheduler or its ``state_dict()``: ``StepLR``,
        ``MultiStepLR``, ``ExponentialLR``, ``CosineAnnealingLR``, ``LinearLR``,
        ``OneCycleLR`` (its momentum cycling too) or a ``SequentialLR`` of these. The
        returned ``tx``'s learning rate continues from the scheduler's position (see
        :func:`torch_schedules`). Groups with ``initial_lr`` (which only a scheduler
        leaves) and no scheduler are refused; ``scheduler="constant"`` keeps each group's
        current lr.
      steps_per_scheduler_step: how many optimizer steps the run takes per
        ``scheduler.step()`` (the steps per epoch, for a scheduler stepped once per
        epoch); without it, the scheduler's position must equal the step count.
      tx: the transformation to fill a state for, instead of the default:
        ``presets.torch`` with each group's ``lr``, ``alpha``, ``eps``, ``weight_decay``,
        ``momentum``, ``centered`` and ``maximize`` (``presets.timm`` with RMSpropTF's
        options for an RMSpropTF); groups with different hyperparameters
        (or step counts, or a scheduler) become an :func:`optax.multi_transform` whose
        labels are ``"group0"``, ``"group1"``, ... . Pass one for narrower buffers
        (``nu_dtype``); its RMSPropStates must have the buffers the torch groups have.
      leaf_map: which torch parameter each leaf is: a pytree with the structure of
        ``params`` (or a list, one per leaf) of torch indices, parameter names or
        :class:`Leaf` (with an axis permutation). Every torch parameter goes to exactly one
        leaf; shapes are checked after the permutation.
      match: without ``leaf_map``: ``"path"`` matches the parameter names that an
        optimizer built from ``model.named_parameters()`` keeps (``fc.weight`` is the leaf
        at ``params["fc"]["weight"]``) and refuses otherwise, unless there is one parameter;
        ``"order"`` takes the torch parameters in the order of ``params``' leaves (JAX
        sorts dict keys).

    Returns:
      ``(tx, state)``: the state has ``count`` = torch's ``step``, ``nu`` = ``square_avg``,
      ``mu`` = ``grad_avg`` and ``momentum`` = ``momentum_buffer`` (equal buffers: torch's is
      b ← μb + g/(√v + ε), with g negated for ``maximize``, and θ ← θ − ηb, as
      ``presets.torch``'s; RMSpropTF's with ``lr_in_momentum`` holds ηg/√(v + ε) and
      subtracts it: minus ours). A parameter with no state yet (never stepped) gets what
      the optimizer would start it at (zeros; RMSpropTF's ``square_avg`` ones).
      ``foreach``, ``fused``, ``capturable`` and ``differentiable`` change how torch
      computes, not what: they are ignored.

    Raises:
      TypeError: for something that is not a state_dict.
      ValueError: for another optimizer's state_dict, or any group key or state entry
        the optimizer does not have (naming it), a missing buffer, step counts that
        differ within one group, a leaf whose shape does not fit (naming the leaf and the
        torch index), a leaf map that misses or repeats a parameter, a square 2-D leaf
        without axes, a scheduler it cannot carry or whose position does not fit the step
        count, or groups with ``initial_lr`` and no scheduler.

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
    if scheduler is not None and tx is not None:
        raise ValueError(
            "pass scheduler or tx, not both: build tx with the schedules of "
            "interop.torch_schedules(scheduler, optimizer_state_dict)."
        )
    sd = _optimizer_state_dict(optimizer_state_dict)
    leaves = Leaves(params)
    groups, index_group = [], {}
    for g, group in enumerate(sd["param_groups"]):
        if not isinstance(group, Mapping) or "params" not in group:
            raise TypeError(f"param_groups[{g}] must be a dict with 'params' (a list of indices).")
        groups.append(_hyperparameters(group, g))
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
        unknown = [key for key in entry if key not in _STATE_KEYS]
        if unknown:
            kind = groups[index_group[index]]["kind"]
            raise ValueError(
                f"state[{index}] has {unknown[0]!r}, which {kind} does not keep (it keeps "
                f"{', '.join(_STATE_KEYS)}): this state_dict is from another optimizer; "
                "convert its state by hand."
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

    mapping = _mapping(leaf_map, match, leaves, indices, _param_names(sd["param_groups"]))
    slots = []
    for name, leaf, (position, axes) in zip(leaves.names, leaves.values, mapping, strict=True):
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
                        f"state[{index}] (for params{name}) has no {key!r}, which param_groups[{g}]"
                        f" (momentum={h['momentum']}, centered={h['centered']}) needs."
                    )
        buffers = {}
        for key in needed:
            if key in entry:
                x = _numpy_of_tensor(entry[key])
                _state.check_axes(axes, x.ndim, name, where)
                buffers[_BUFFERS[key]] = _state.to_jax_layout(x, axes, pairs)
        if "momentum" in buffers:
            buffers["momentum"] = _momentum_sign(h) * buffers["momentum"]
        slots.append(_state.Slot(where, g, steps[g], _keeps(h, g), buffers))

    if tx is None:
        schedules: list[dict] = [{} for _ in groups]
        if isinstance(scheduler, str):
            if scheduler != "constant":
                raise ValueError(
                    f"scheduler must be a scheduler, None or 'constant'; got {scheduler!r}."
                )
        elif scheduler is not None:
            schedules = torch_schedules(scheduler, sd, steps_per_scheduler_step)
        else:
            traced = [g for g, group in enumerate(sd["param_groups"]) if "initial_lr" in group]
            if traced:
                raise ValueError(
                    f"param_groups[{traced[0]}] has 'initial_lr', which only an LR scheduler "
                    "leaves: pass scheduler= (the scheduler or its state_dict()) so that the "
                    "lr goes on changing as it would in torch, or scheduler='constant' to keep "
                    "each group's current lr."
                )
        tx = _default_tx(groups, schedules, steps, slots, leaves)
    return tx, _state.fill(tx, params, leaves, slots, NAMES)


def _param_names(param_groups: Sequence[Mapping]) -> list[str] | None:
    if all(isinstance(g, Mapping) and "param_names" in g for g in param_groups):
        return [str(name) for g in param_groups for name in g["param_names"]]
    return None


def _default_tx(
    groups: list[dict], schedules: list[dict], steps: dict, slots: list, leaves: Leaves
) -> Any:
    """``presets.torch`` per set of groups with the same hyperparameters and step count
    (each group its own where a scheduler gives it a schedule)."""
    labels: dict[tuple, str] = {}
    label_of = {}
    for g, h in enumerate(groups):
        key = (tuple(sorted(h.items())), steps[g], g if schedules[g] else None)
        label_of[g] = labels.setdefault(key, f"group{g}")
    used = {label_of[slot.group] for slot in slots}
    transforms = {
        label_of[g]: _preset(groups[g], schedules[g])
        for g in range(len(groups))
        if label_of[g] in used
    }
    if len(transforms) == 1:
        return next(iter(transforms.values()))
    param_labels = jax.tree.unflatten(leaves.treedef, [label_of[slot.group] for slot in slots])
    return optax.multi_transform(transforms, param_labels)


def to_torch(
    state: Any,
    tx: Any,
    params: Any,
    *,
    param_groups: Sequence[Mapping] | Mapping,
    leaf_map: Any = None,
    match: str = "path",
) -> dict:
    r"""A state of ``tx`` as a ``torch.optim.RMSprop`` (or ``timm.optim.RMSpropTF``)
    ``state_dict()``.

    Load it with ``optimizer.load_state_dict(...)`` into the ``torch.optim.RMSprop`` whose
    ``param_groups`` are given, over the same parameters (set to ``params``' values). Works
    alike for any ``tx`` from this package: a preset, :func:`from_torch`'s, a chain or
    :func:`optax.multi_transform` holding them.

    Args:
      state: the state of ``tx`` (an RMSPropState, or a state holding some).
      tx: the transformation.
      params: the JAX parameters the state is for.
      param_groups: the torch optimizer's groups, ``optimizer.param_groups`` (or a
        checkpoint's, or ``[dict(lr=0.01, ...)]``; torch's defaults fill what a group does
        not say). Each group's ``params`` (tensors or indices) says how many parameters it
        holds, in order; the state_dict carries these groups, since ``load_state_dict``
        sets them, but for their ``lr``: each group gets the learning rate ``tx``
        applies at the state's count (read from one probe step of ``tx``), so that a
        fresh optimizer, whose groups hold its first lr, resumes on ``tx``'s schedule;
        where the probe cannot tell (a clip chained before the rule), the given lr is
        kept. A state whose buffers do not fit the groups (a momentum buffer where
        ``momentum=0``) is refused. Groups with ``lr_in_momentum`` are RMSpropTF's.
      leaf_map, match: as for :func:`from_torch` (names from the groups' ``param_names``).

    Returns:
      ``{"state": {index: {"step", "square_avg", ...}}, "param_groups": [...]}`` with
      torch tensors (``step`` a float tensor, as torch keeps it; complex parameters'
      buffers complex, from the (real, imaginary) pairs). An LR scheduler keeps its own
      state: step it, or load its ``state_dict()``, in torch.

    Raises:
      TypeError: a group's hyperparameter is not a number; a ``leaf_map`` entry is not
        a :class:`Leaf`, an index or a path; ``tx``'s state holds no
        :class:`~optax_rmsprop.RMSPropState` for these ``params``.
      ValueError: a group without ``lr``, or with a key its optimizer
        (``torch.optim.RMSprop``, or RMSpropTF) does not have; one of several groups
        without ``params``; groups that hold another number of parameters than
        ``params`` has leaves; ``state`` does not have the structure of
        ``tx.init(params)``, keeps a buffer in 8-bit blocks, or has a buffer its group
        does not keep (or lacks one it keeps); leaves of one group with different counts
        or learning rates; leaves matched as :func:`from_torch` refuses.

    Examples:
      >>> import jax.numpy as jnp, torch
      >>> from optax_rmsprop import interop, presets
      >>> tx, params = presets.torch(lr=0.01, alpha=0.99, momentum=0.9), jnp.ones(2)
      >>> _, state = tx.update(jnp.array([0.5, -1.0]), tx.init(params), params)
      >>> groups = [dict(lr=0.01, alpha=0.99, momentum=0.9, params=[0])]
      >>> state_dict = interop.to_torch(state, tx, params, param_groups=groups)
      >>> state_dict["state"][0]["square_avg"]  # (1 - alpha) * g**2
      tensor([0.0025, 0.0100])
      >>> optimizer = torch.optim.RMSprop([torch.nn.Parameter(torch.ones(2))], lr=0.01,
      ...                                 momentum=0.9)
      >>> optimizer.load_state_dict(state_dict)
    """
    import torch

    leaves = Leaves(params)
    groups = _given_groups(param_groups, len(leaves))
    indices, index_group = [], {}
    for g, group in enumerate(groups):
        for index in group["params"]:
            indices.append(index)
            index_group[index] = g
    mapping = _mapping(leaf_map, match, leaves, indices, _param_names(groups))
    read = _state.read(state, tx, params, leaves)

    out_state: dict[int, Any] = {}
    group_counts: dict[Any, Any] = {}
    for name, leaf, (position, axes), buffers in zip(
        leaves.names, leaves.values, mapping, read, strict=True
    ):
        index = indices[position]
        g = index_group[index]
        where = f"params{name} (torch index {index})"
        has = {field: buffers[field] is not None for field in ("mu", "momentum")}
        _state.check_buffers(where, "the state", has, _keeps(groups[g], g), NAMES)
        if group_counts.setdefault(g, buffers["count"]) != buffers["count"]:
            raise ValueError(
                f"{where}: the leaves of param_groups[{g}] have different counts "
                f"({group_counts[g]} and {buffers['count']}), but torch steps a group together."
            )
        pairs = jnp.iscomplexobj(leaf)
        entry = {"step": torch.tensor(float(buffers["count"]))}
        for field in ("nu", "momentum", "mu"):
            if buffers[field] is not None:
                x = _state.from_jax_layout(buffers[field], axes, pairs)
                if field == "momentum":
                    x = _momentum_sign(groups[g]) * x
                entry[NAMES[field]] = torch.tensor(np.ascontiguousarray(x))
        out_state[index] = entry
    lrs = _state.learning_rates(state, tx, params, leaves)
    out_groups = []
    for g, group in enumerate(groups):
        group = dict(group)
        kind = group.pop("kind")
        found = {lr for (position, _), lr in zip(mapping, lrs, strict=True)
                 if index_group[indices[position]] == g and lr is not None}  # fmt: skip
        if len(found) > 1 and max(found) - min(found) > 1e-5 * max(found):
            raise ValueError(
                f"the leaves of param_groups[{g}] have different learning rates in tx "
                f"({sorted(found)}), but torch gives a group one lr."
            )
        lr = found.pop() if found else None
        if lr is not None and not math.isclose(lr, group["lr"], rel_tol=1e-5, abs_tol=1e-12):
            group["lr"] = lr  # tx's at the state's count: a fresh optimizer's is its first
        if kind == "torch.optim.RMSprop":
            for key in ("foreach", "capturable", "differentiable"):
                group.setdefault(key, None if key == "foreach" else False)
        out_groups.append(group)
    return {"state": out_state, "param_groups": out_groups}


def _given_groups(param_groups: Sequence[Mapping] | Mapping, n: int) -> list[dict]:
    if isinstance(param_groups, Mapping):
        param_groups = [param_groups]
    groups, offset = [], 0
    for g, group in enumerate(param_groups):
        if "lr" not in group:
            raise ValueError(f"param_groups[{g}] has no 'lr'.")
        h = _hyperparameters(group, g)
        extra = {key: value for key, value in group.items() if key not in h and key != "params"}
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


# ---------------------------------------------------------------------------
# LR schedulers: torch's value at each of its steps, in closed form.

_SCHEDULERS = (
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
    "OneCycleLR",
    "SequentialLR",
)
# How the state_dicts of torch.optim.lr_scheduler's classes are told apart: keys only one has.
_SCHEDULER_KEYS = (
    ("SequentialLR", ("_schedulers", "_milestones")),
    ("ChainedScheduler", ("_schedulers",)),
    ("OneCycleLR", ("total_steps", "_schedule_phases")),
    ("CosineAnnealingWarmRestarts", ("T_0",)),
    ("CosineAnnealingLR", ("T_max", "eta_min")),
    ("LinearLR", ("start_factor", "end_factor")),
    ("PolynomialLR", ("total_iters", "power")),
    ("ConstantLR", ("factor", "total_iters")),
    ("MultiStepLR", ("milestones", "gamma")),
    ("StepLR", ("step_size", "gamma")),
    ("CyclicLR", ("max_lrs",)),
    ("ReduceLROnPlateau", ("patience",)),
    ("LambdaLR or MultiplicativeLR", ("lr_lambdas",)),
    ("ExponentialLR", ("gamma",)),
)


def _refuse(name: str) -> ValueError:
    return ValueError(
        f"from_torch cannot carry a {name} (it carries {', '.join(_SCHEDULERS)}): pass "
        "tx=presets.torch(lr=schedule, ...) with an optax schedule of the step count, e.g. "
        "optax.join_schedules, that gives at count c the lr torch would use at its step c "
        "(the state's count is torch's step)."
    )


def _scheduler_state(scheduler: Any) -> tuple[str, Mapping]:
    if isinstance(scheduler, Mapping):
        for name, keys in _SCHEDULER_KEYS:  # noqa: B007 (name is the one found)
            if all(key in scheduler for key in keys):
                break
        else:
            raise ValueError(
                f"scheduler: a state_dict of no LR scheduler known here (keys "
                f"{sorted(scheduler)}): pass the scheduler itself or its state_dict()."
            )
        state = scheduler
    else:
        name = type(scheduler).__name__
        if name not in _SCHEDULERS or not hasattr(scheduler, "state_dict"):
            raise _refuse(name)
        state = scheduler.state_dict()
    if name not in _SCHEDULERS:
        raise _refuse(name)
    return name, state


def _half_cos(e: jax.Array, a: float, b: float) -> jax.Array:
    """(1 + cos(π (e − a) / (b − a))) / 2 at an int32 ``e``, as sin²(π/2 · (b − e)/(b − a)):
    the same function, without 1 + cos's cancellation in float32 as it nears 0."""
    return jnp.sin(jnp.pi / 2 * ((b - e.astype(jnp.float32)) / (b - a))) ** 2


def _anneal(kind: str, start: float, end: float, e: jax.Array, a: float, b: float) -> jax.Array:
    """OneCycleLR's anneal from ``start`` at step ``a`` to ``end`` at step ``b``."""
    if kind == "cos":
        return end + (start - end) * _half_cos(e, a, b)
    return (end - start) * ((e.astype(jnp.float32) - a) / (b - a)) + start


def _one_cycle(sd: Mapping, group: Mapping, g: int, key: str) -> Callable[[jax.Array], jax.Array]:
    kind = sd.get("_anneal_func_type", "cos")
    names = [f"start_{key}", f"end_{key}"]
    try:
        phases = [
            (float(p["end_step"]), float(group[p[names[0]]]), float(group[p[names[1]]]))
            for p in sd["_schedule_phases"]
        ]
    except KeyError as error:
        raise ValueError(
            f"OneCycleLR: param_groups[{g}] has no {error.args[0]!r}, which OneCycleLR keeps "
            "there: pass the optimizer's state_dict from the same run."
        ) from None
    total = int(sd["total_steps"])

    def value(e: jax.Array) -> jax.Array:
        e = jnp.minimum(e, total)  # torch refuses steps past total_steps
        out = jnp.zeros([], jnp.float32)
        start, done = 0.0, jnp.zeros([], bool)
        for i, (end, a, b) in enumerate(phases):
            here = ~done & ((e <= end) | (i == len(phases) - 1))
            out = jnp.where(here, _anneal(kind, a, b, e, start, end), out)
            done, start = done | here, end
        return out

    return value


def _closed_form(name: str, sd: Mapping, group: Mapping, g: int) -> Callable[[jax.Array], Any]:
    """The lr of group ``g`` at scheduler step ``e`` (an int32 array)."""
    if name == "OneCycleLR":
        return _one_cycle(sd, group, g, "lr")
    if name != "SequentialLR":
        base = float(sd["base_lrs"][g])
    if name in ("StepLR", "MultiStepLR", "ExponentialLR"):
        # base · γⁿ as base · exp(n log γ), log γ taken in float64: a float32 γ raised to n
        # would carry n times its rounding.
        log_gamma = math.log(float(sd["gamma"]))
        if name == "StepLR":
            step_size = int(sd["step_size"])
            times = lambda e: e // step_size  # noqa: E731
        elif name == "MultiStepLR":
            milestones = sorted(int(m) for m, k in dict(sd["milestones"]).items() for _ in range(k))
            times = lambda e: jnp.searchsorted(jnp.asarray(milestones, jnp.int32), e, side="right")  # noqa: E731
        else:
            times = lambda e: e  # noqa: E731
        return lambda e: base * jnp.exp(times(e).astype(jnp.float32) * log_gamma)
    if name == "CosineAnnealingLR":
        t_max, eta_min = float(sd["T_max"]), float(sd["eta_min"])
        return lambda e: eta_min + (base - eta_min) * _half_cos(e, 0.0, t_max)
    if name == "LinearLR":
        a, b, total = float(sd["start_factor"]), float(sd["end_factor"]), int(sd["total_iters"])
        return lambda e: base * (a + (b - a) * jnp.minimum(e, total).astype(jnp.float32) / total)
    # SequentialLR: the scheduler of e's stretch, restarted at 0 at its milestone.
    milestones = [int(m) for m in sd["_milestones"]]
    parts = []
    for k, inner in enumerate(sd["_schedulers"]):
        inner_name, inner_sd = _scheduler_state(inner)
        if inner_name == "SequentialLR":
            raise ValueError("scheduler: a SequentialLR inside a SequentialLR is not carried.")
        if inner_name == "OneCycleLR" and inner_sd.get("cycle_momentum"):
            raise ValueError(
                f"scheduler: the SequentialLR's scheduler {k} is a OneCycleLR with "
                "cycle_momentum=True, whose momentum torch leaves where it stopped at the next "
                "milestone; this is not carried: pass tx with optax schedules for lr and "
                "momentum."
            )
        parts.append(_closed_form(inner_name, inner_sd, group, g))

    def value(e: jax.Array) -> jax.Array:
        which = jnp.searchsorted(jnp.asarray(milestones, jnp.int32), e, side="right")
        starts = jnp.asarray([0, *milestones], jnp.int32)
        local = jnp.maximum(e - starts[which], 0)
        return jnp.select(
            [which == k for k in range(len(parts))],
            [jnp.asarray(part(local), jnp.float32) for part in parts],
        )

    return value


def torch_schedules(
    scheduler: Any, optimizer_state_dict: Any, steps_per_scheduler_step: int | None = None
) -> list[dict[str, optax.Schedule]]:
    """Optax schedules of the step count that continue a torch LR scheduler, per group.

    The schedule gives at count c (the group's torch ``step``, as in the state
    :func:`from_torch` makes) the lr that the scheduler gives at its step
    ``c // steps_per_scheduler_step``: the lr torch uses for its step c + 1 when
    ``scheduler.step()`` follows every k-th ``optimizer.step()`` (k = 1 by default; the
    steps per epoch for torch's usual once-per-epoch loop). Values are computed in float32
    from the schedulers' closed forms.

    Args:
      scheduler: a ``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``CosineAnnealingLR``,
        ``LinearLR``, ``OneCycleLR`` or a ``SequentialLR`` of these (not a OneCycleLR that
        cycles momentum inside it), or its ``state_dict()``. Others are refused by name.
      optimizer_state_dict: the optimizer's ``state_dict()`` (or the optimizer), from the
        same moment: its groups' step counts, and what ``OneCycleLR`` keeps in them.
      steps_per_scheduler_step: k, the optimizer steps per scheduler step. The
        scheduler's position e (``last_epoch``) and the step count c must agree:
        e = c without it, e = c // k with it; otherwise the call is refused.

    Returns:
      One dict per parameter group with ``"lr"``, and ``"momentum"`` for a ``OneCycleLR``
      with ``cycle_momentum=True``: keyword arguments for
      :func:`optax_rmsprop.presets.torch`.

    Raises:
      TypeError: ``optimizer_state_dict`` is not an optimizer or its state_dict.
      ValueError: ``steps_per_scheduler_step`` not a whole number >= 1; a scheduler of
        another class than those above (named), or a ``SequentialLR`` inside a
        ``SequentialLR``; a scheduler with another number of groups than the optimizer;
        a scheduler position that does not fit the step count.

    Examples:
      >>> import torch
      >>> from optax_rmsprop import interop, presets
      >>> optimizer = torch.optim.RMSprop([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
      >>> scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
      >>> [schedules] = interop.torch_schedules(scheduler, optimizer)
      >>> print(f"{schedules['lr'](25):.4f}")  # 0.1 * 0.5 ** (25 // 10)
      0.0250
      >>> tx = presets.torch(**schedules)
    """
    every = 1 if steps_per_scheduler_step is None else steps_per_scheduler_step
    if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
        raise ValueError(
            "steps_per_scheduler_step must be a whole number >= 1; got "
            f"{steps_per_scheduler_step!r}."
        )
    every = int(every)
    name, sd = _scheduler_state(scheduler)
    osd = _optimizer_state_dict(optimizer_state_dict)
    groups = list(osd["param_groups"])
    if name != "OneCycleLR" and name != "SequentialLR" and len(sd["base_lrs"]) != len(groups):
        raise ValueError(
            f"scheduler has {len(sd['base_lrs'])} groups but the optimizer has {len(groups)}: "
            "pass the state_dicts of one run."
        )
    position = int(sd["last_epoch"])
    out = []
    for g, group in enumerate(groups):
        steps = {
            _step_count(osd["state"][i]["step"], f"state[{i}]")
            for i in group["params"]
            if i in osd["state"] and "step" in osd["state"][i]
        }
        count = max(steps) if steps else 0
        if count // every != position:
            advice = (
                "pass steps_per_scheduler_step, the optimizer steps per scheduler.step() "
                "(the steps per epoch for a scheduler stepped once per epoch)"
                if steps_per_scheduler_step is None
                else f"they do not fit {every} optimizer steps per scheduler step"
            )
            raise ValueError(
                f"the scheduler is at step {position} (last_epoch) but param_groups[{g}] has "
                f"taken {count} optimizer steps: {advice}. A scheduler attached part way "
                "through is not carried: pass tx with an optax schedule of the step count."
            )
        schedules: dict[str, optax.Schedule] = {}
        parts = {"lr": _closed_form(name, sd, group, g)}
        if name == "OneCycleLR" and sd.get("cycle_momentum"):
            if sd.get("use_beta1"):
                raise ValueError("scheduler: a OneCycleLR that cycles betas is not RMSprop's.")
            parts["momentum"] = _one_cycle(sd, group, g, "momentum")
        for key, part in parts.items():

            def schedule(count: Any, part: Callable = part) -> jax.Array:
                e = jnp.asarray(count, jnp.int32) // every
                return jnp.asarray(part(e), jnp.float32)

            schedules[key] = schedule
        out.append(schedules)
    return out
