"""``keras.optimizers.RMSprop`` (Keras 3) state (and its learning-rate schedule) to and
from JAX."""

from __future__ import annotations

import inspect
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_rmsprop import presets
from optax_rmsprop.interop import _state
from optax_rmsprop.interop._state import Leaves

NAMES = {"nu": "velocity", "mu": "average_gradient", "momentum": "momentum"}
# Every option of RMSprop.__init__ (an allowlist: anything else is refused by name).
_OPTIONS = (
    "name",
    "learning_rate",
    "rho",
    "momentum",
    "epsilon",
    "centered",
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
)


class _Internals(NamedTuple):
    learning_rate: Any  # a Variable, a LearningRateSchedule or a callable
    variables: list[Any]  # the variables the optimizer was built on, in its order
    slots: dict[str, list[Any]]  # field -> its slot variables, one per variable
    excluded: Any  # what exclude_from_weight_decay was given, if anything


def _internals(optimizer: Any) -> _Internals:
    """What the conversion needs and Keras 3 keeps only in private attributes, read here
    and nowhere else: ``_learning_rate`` (the public ``learning_rate`` is the schedule's
    current value, not the schedule), ``_trainable_variables`` (the variables the slots
    belong to), RMSprop.build's slot lists ``_velocities``, ``_momentums`` and
    ``_average_gradients``, and ``_exclude_from_weight_decay`` (and its ``_pattern``),
    which nothing public reports."""
    slot_lists = {"nu": "_velocities", "momentum": "_momentums", "mu": "_average_gradients"}
    return _Internals(
        learning_rate=optimizer._learning_rate,
        variables=list(optimizer._trainable_variables),
        slots={field: list(getattr(optimizer, attr, [])) for field, attr in slot_lists.items()},
        excluded=getattr(optimizer, "_exclude_from_weight_decay", None)
        or getattr(optimizer, "_exclude_from_weight_decay_pattern", None),
    )


def _optimizer(optimizer: Any) -> tuple[dict, list[str], dict[str, list[Any]], Any]:
    """The RMSprop's config, the paths of the variables it was built on, its slots, and
    what it excludes from weight decay."""
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
    options = [
        name
        for name, p in inspect.signature(type(optimizer).__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    unknown = [option for option in options if option not in _OPTIONS]
    if unknown:
        raise ValueError(
            f"the optimizer ({type(optimizer).__name__}) takes {unknown[0]!r}, an option this "
            f"conversion does not know (it knows {', '.join(_OPTIONS)}): convert its state by "
            "hand."
        )
    # get_config() would read the learning rate with np.array (NumPy 2 warns), and fails for
    # a schedule without get_config: the options are read as attributes.
    config = {
        o: getattr(optimizer, o, None) for o in _OPTIONS if o not in ("name", "learning_rate")
    }
    internals = _internals(optimizer)
    lr = internals.learning_rate
    if isinstance(lr, keras.Variable):
        lr = float(keras.ops.convert_to_numpy(lr.value))
    config["learning_rate"] = lr
    for option in ("use_ema", "gradient_accumulation_steps"):
        if config.get(option):
            raise ValueError(
                f"the optimizer has {option}={config[option]!r}, whose state (EMA weights, "
                "accumulated gradients) RMSPropState does not hold."
            )
    variables = internals.variables
    for field, found in internals.slots.items():
        if found and len(found) != len(variables):
            raise TypeError(
                f"the optimizer has {len(found)} {NAMES[field]} variables for {len(variables)} "
                "variables: a keras.optimizers.RMSprop built as in Keras 3."
            )
    paths = [variable.path for variable in variables]
    return config, paths, internals.slots, internals.excluded


def _numpy(variable: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable.value))


def _hyperparameters(config: dict, excluded: Any, given_tx: bool) -> dict:
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
    if h["weight_decay"] and excluded:
        problems.append("exclude_from_weight_decay (pass weight_decay_mask to presets.keras)")
    if problems:
        raise ValueError(
            "presets.keras alone cannot reproduce this optimizer's "
            + "; ".join(problems)
            + ": pass tx= that does."
        )
    if not isinstance(h["learning_rate"], numbers.Real):
        h["learning_rate"] = keras_schedule(h["learning_rate"])
    return h


def _keeps(h: dict) -> dict:
    return {
        "momentum": (h["momentum"] > 0, f"the optimizer has momentum={h['momentum']:g}"),
        "mu": (h["centered"], f"the optimizer has centered={h['centered']}"),
    }


def _mapping(
    leaf_map: Any, match: str, leaves: Leaves, paths: list[str]
) -> list[tuple[int, tuple[int, ...] | None]]:
    """Leaves to the optimizer's variables: by ``leaf_map`` (paths, or ends of paths, and
    positions), else by path (a model's prefixes such as ``sequential/`` aside), or by order
    where asked for."""
    if match not in ("path", "order"):
        raise ValueError(f"match must be 'path' or 'order'; got {match!r}.")

    def lookup(key: Any, name: str) -> int:
        if isinstance(key, str):
            found = [i for i, p in enumerate(paths) if _state.path_matches(p, key)]
            if len(found) != 1:
                raise ValueError(
                    f"leaf_map{name} names {key!r}, which is "
                    + (f"the end of {[paths[i] for i in found]}" if found else "no variable's path")
                    + f": the optimizer's variables are {paths}."
                )
            return found[0]
        if not 0 <= int(key) < len(paths):
            raise ValueError(
                f"leaf_map{name} is index {int(key)}, but the optimizer has variables "
                f"0 to {len(paths) - 1}."
            )
        return int(key)

    if leaf_map is None:
        if match == "order":
            if len(leaves) != len(paths):
                raise ValueError(
                    f"params has {len(leaves)} leaves but the optimizer has {len(paths)} variables."
                )
            leaf_map = list(range(len(paths)))
        else:
            leaf_map = _state.match_paths(leaves, paths, "Keras variable")
    return _state.resolve(leaf_map, leaves, paths, lookup, "Keras variable")


def from_keras(
    optimizer: Any,
    params: Any,
    *,
    tx: Any = None,
    leaf_map: Any = None,
    match: str = "path",
) -> tuple[optax.GradientTransformationExtraArgs, Any]:
    r"""A built ``keras.optimizers.RMSprop``'s state as the transformation and state that
    continue it.

    Args:
      optimizer: the Keras 3 RMSprop, built (after a step, or
        ``optimizer.build(model.trainable_variables)``).
      params: the JAX pytree of the parameters.
      tx: the transformation to fill a state for, instead of the default:
        ``presets.keras`` with the optimizer's ``learning_rate`` (a built-in schedule
        carried as :func:`keras_schedule`), ``rho``, ``momentum``, ``epsilon``,
        ``centered`` and ``weight_decay``. Needed for what the preset alone does not do:
        clipping, ``loss_scale_factor``, ``exclude_from_weight_decay``, other schedules.
      leaf_map: which variable each leaf is: a pytree with the structure of ``params`` (or
        a list, one per leaf) of variable paths (or unique ends of them), positions among
        the variables the optimizer was built on, or :class:`Leaf`.
      match: without ``leaf_map``: ``"path"`` matches each leaf to the variable whose path
        is the leaf's joined with ``/``, or ends with it: ``params["dense"]["kernel"]`` is
        ``sequential/dense/kernel`` (also under nested models' names); ``"order"`` takes
        the variables in the order the optimizer was built on (JAX sorts dict keys, Keras
        keeps the layers' order). A leaf or variable matched by none or by two is refused
        with both names.

    Returns:
      ``(tx, state)`` with ``count`` = ``iterations``, ``nu`` = the velocities, ``mu`` =
      the average gradients and ``momentum`` = minus Keras's momentums (Keras's holds
      +ηg/√(v + ε) and subtracts it; ours holds the update and adds it).

    Raises:
      TypeError: ``optimizer`` is not a Keras 3 ``keras.optimizers.RMSprop``; a
        ``leaf_map`` entry is not a :class:`Leaf`, an index or a path; ``tx``'s state
        holds no :class:`~optax_rmsprop.RMSPropState` for these ``params``.
      ValueError: ``optimizer`` is not built, or has an option this conversion does not
        know, ``use_ema`` or ``gradient_accumulation_steps``; without ``tx``, clipping,
        ``loss_scale_factor``, ``exclude_from_weight_decay`` (with weight decay) or a
        learning-rate schedule that :func:`keras_schedule` refuses; ``match`` neither
        "path" nor "order"; a leaf or a variable matched by none or by two, or a
        ``leaf_map`` entry that names none (each named); ``Leaf.axes`` not a
        permutation of the variable's axes; a leaf whose shape does not fit its
        variable's; a ``tx`` whose state lacks a buffer the optimizer keeps, or keeps
        a buffer in 8-bit blocks.

    Examples:
      >>> import jax.numpy as jnp, keras
      >>> from optax_rmsprop import interop
      >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
      >>> optimizer = keras.optimizers.RMSprop(learning_rate=0.01, momentum=0.9)
      >>> optimizer.build(model.trainable_variables)
      >>> params = {"dense": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}}
      >>> tx, state = interop.from_keras(optimizer, params)  # "dense/kernel" by path
      >>> int(state.count), state.momentum["dense"]["kernel"].shape
      (0, (3, 2))
    """
    config, paths, slots, excluded = _optimizer(optimizer)
    h = _hyperparameters(config, excluded, given_tx=tx is not None)
    leaves = Leaves(params)
    mapping = _mapping(leaf_map, match, leaves, paths)
    count = int(_numpy(optimizer.iterations))
    out = []
    for name, (position, axes) in zip(leaves.names, mapping, strict=True):
        where = f"keras variable {paths[position]!r}"
        buffers = {}
        for field, on in (("nu", True), ("momentum", h["momentum"] > 0), ("mu", h["centered"])):
            if on:
                x = _numpy(slots[field][position])
                _state.check_axes(axes, x.ndim, name, where)
                buffers[field] = _state.to_jax_layout(-x if field == "momentum" else x, axes, False)
        out.append(_state.Slot(where, 0, count, _keeps(h), buffers))
    if tx is None:
        tx = presets.keras(**h)
    return tx, _state.fill(tx, params, leaves, out, NAMES)


def to_keras(
    state: Any,
    tx: Any,
    params: Any,
    optimizer: Any,
    *,
    leaf_map: Any = None,
    match: str = "path",
) -> None:
    r"""Writes a state of ``tx`` into a built ``keras.optimizers.RMSprop``, in place.

    Works alike for any ``tx`` from this package (a preset, :func:`from_keras`'s, a chain
    holding them). The optimizer, built over the model's variables
    (``optimizer.build(model.trainable_variables)``), must keep the buffers the state has
    (checked). Leaves are matched to variables as in :func:`from_keras`. Sets
    ``iterations`` to the count, the velocities, the average gradients and the momentums
    (minus ours).

    Raises:
      TypeError: ``optimizer`` is not a Keras 3 ``keras.optimizers.RMSprop``; a
        ``leaf_map`` entry is not a :class:`Leaf`, an index or a path; ``tx``'s state
        holds no :class:`~optax_rmsprop.RMSPropState` for these ``params``.
      ValueError: ``optimizer`` is not built, or has an option this conversion does not
        know, ``use_ema`` or ``gradient_accumulation_steps``; ``state`` does not have
        the structure of ``tx.init(params)``, its leaves have different counts, it keeps
        a buffer in 8-bit blocks, or it has a buffer the optimizer does not keep (or lacks
        one it keeps); leaves matched as :func:`from_keras` refuses; a buffer whose shape
        does not fit its variable's. Nothing is written then.

    Examples:
      >>> import jax.numpy as jnp, keras, numpy as np
      >>> from optax_rmsprop import interop, presets
      >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
      >>> optimizer = keras.optimizers.RMSprop(learning_rate=0.01, rho=0.9)
      >>> optimizer.build(model.trainable_variables)
      >>> tx = presets.keras(learning_rate=0.01, rho=0.9)
      >>> params = {"dense": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}}
      >>> grads = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)}}
      >>> _, state = tx.update(grads, tx.init(params), params)
      >>> interop.to_keras(state, tx, params, optimizer)
      >>> int(keras.ops.convert_to_numpy(optimizer.iterations.value))
      1
      >>> velocities = optimizer.variables[2:]  # [iterations, learning_rate, *velocities]
      >>> [bool(np.allclose(keras.ops.convert_to_numpy(v.value), 1 - 0.9)) for v in velocities]
      [True, True]
    """
    config, paths, slots, excluded = _optimizer(optimizer)
    h = _hyperparameters(config, excluded, given_tx=True)
    leaves = Leaves(params)
    mapping = _mapping(leaf_map, match, leaves, paths)
    read = _state.read(state, tx, params, leaves)
    counts = {buffers["count"] for buffers in read}
    if len(counts) > 1:
        raise ValueError(
            f"the state's leaves have different counts ({sorted(counts)}), but a Keras "
            "optimizer has one iterations count."
        )
    writes = []
    for name, (position, axes), buffers in zip(leaves.names, mapping, read, strict=True):
        where = f"params{name} (keras variable {paths[position]!r})"
        has = {field: buffers[field] is not None for field in ("mu", "momentum")}
        _state.check_buffers(where, "the state", has, _keeps(h), NAMES)
        for field in ("nu", "momentum", "mu"):
            if buffers[field] is None:
                continue
            variable = slots[field][position]
            x = _state.from_jax_layout(buffers[field], axes, False)
            if field == "momentum":
                x = -x
            if tuple(x.shape) != tuple(variable.shape):
                raise ValueError(
                    f"{where}: the state's {field} has shape {x.shape} in Keras's layout "
                    f"but {variable.name!r} has shape {tuple(variable.shape)}."
                )
            writes.append((variable, x.astype(variable.dtype)))
    for variable, x in writes:  # only once everything fits
        variable.assign(x)
    optimizer.iterations.assign(counts.pop())


# ---------------------------------------------------------------------------
# Learning-rate schedules: Keras's formulas of the iteration count, from get_config().

_SCHEDULES = (
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "CosineDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
)


def _quotient(count: Any, d: Any, rounding: Any) -> jax.Array:
    """``rounding(count / d)`` (floor or ceil) as Keras computes it eagerly, in float32; in
    integers where ``d`` is whole (the same value), since under jit XLA may take a
    quotient by a constant as a product by its reciprocal, which can round past a whole
    number."""
    if float(d).is_integer() and d > 0:
        n, k = jnp.asarray(count).astype(jnp.int32), int(d)
        q = n // k if rounding is jnp.floor else -((-n) // k)
        return q.astype(jnp.float32)
    return rounding(jnp.asarray(count).astype(jnp.float32) / jnp.float32(d))


def keras_schedule(schedule: Any) -> optax.Schedule:
    """A Keras built-in ``LearningRateSchedule`` as an optax schedule.

    Keras evaluates it at the optimizer's ``iterations`` before each step, and
    :func:`from_keras` sets the state's ``count`` to ``iterations``, so the schedule goes
    on from where the Keras run is. ``ExponentialDecay``, ``PiecewiseConstantDecay``,
    ``CosineDecay`` (with its warm-up), ``PolynomialDecay`` and ``InverseTimeDecay`` are
    computed from their ``get_config()`` in float32, as Keras does; others are refused by
    name.

    Raises:
      ValueError: ``schedule`` is of another class than those five (or has no
        ``get_config``).

    Examples:
      >>> import keras
      >>> from optax_rmsprop import interop
      >>> decay = keras.optimizers.schedules.ExponentialDecay(
      ...     0.1, decay_steps=10, decay_rate=0.5, staircase=True
      ... )
      >>> schedule = interop.keras_schedule(decay)
      >>> print(f"{schedule(25):.4f}")  # 0.1 * 0.5 ** (25 // 10)
      0.0250
      >>> bool(schedule(25) == keras.ops.convert_to_numpy(decay(25)))  # as Keras computes it
      True
    """
    name = type(schedule).__name__
    if name not in _SCHEDULES or not hasattr(schedule, "get_config"):
        raise ValueError(
            f"from_keras cannot carry the learning rate {name} (it carries "
            f"{', '.join(_SCHEDULES)}): pass tx=presets.keras(learning_rate=schedule, ...) "
            "with an optax schedule of the step count (the state's count is Keras's "
            "iterations), e.g. optax.warmup_cosine_decay_schedule."
        )
    c = schedule.get_config()
    f32 = jnp.float32

    def step(count: Any) -> jax.Array:
        return jnp.asarray(count).astype(f32)

    if name == "PiecewiseConstantDecay":
        boundaries = jnp.asarray(c["boundaries"])
        values = jnp.asarray(c["values"], f32)
        # values[i] while boundaries[i-1] < step <= boundaries[i]
        return lambda count: values[jnp.searchsorted(boundaries, jnp.asarray(count), side="left")]
    lr0 = f32(c["initial_learning_rate"])
    if name in ("ExponentialDecay", "InverseTimeDecay"):
        decay_steps, rate = f32(c["decay_steps"]), f32(c["decay_rate"])

        def decayed(count: Any) -> jax.Array:
            p = _quotient(count, c["decay_steps"], jnp.floor) if c["staircase"] else None
            p = step(count) / decay_steps if p is None else p
            return lr0 * rate**p if name == "ExponentialDecay" else lr0 / (1 + rate * p)

        return decayed
    if name == "PolynomialDecay":
        decay_steps, power = f32(c["decay_steps"]), f32(c["power"])
        end = f32(c["end_learning_rate"])

        def polynomial(count: Any) -> jax.Array:
            t, steps = step(count), decay_steps
            if c["cycle"]:
                steps = steps * jnp.where(
                    t == 0, f32(1), _quotient(count, c["decay_steps"], jnp.ceil)
                )
            else:
                t = jnp.minimum(t, steps)
            return (lr0 - end) * (1 - t / steps) ** power + end

        return polynomial
    decay_steps, alpha = f32(c["decay_steps"]), f32(c["alpha"])
    target, warmup = c.get("warmup_target"), f32(c.get("warmup_steps") or 0)

    def cosine(t: jax.Array, peak: Any) -> jax.Array:
        decayed = (1 - alpha) * (0.5 * (1 + jnp.cos(f32(np.pi) * (t / decay_steps)))) + alpha
        return peak * decayed

    if target is None:
        return lambda count: cosine(jnp.minimum(step(count), decay_steps), lr0)
    target = f32(target)

    def warm_cosine(count: Any) -> jax.Array:
        t = jnp.minimum(step(count), decay_steps + warmup)
        rising = (target - lr0) * (t / warmup) + lr0
        return jnp.where(t < warmup, rising, cosine(t - warmup, target))

    return warm_cosine
