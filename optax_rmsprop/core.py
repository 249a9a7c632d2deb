"""The RMSProp update rule: its state, ``scale_by_rms`` and ``rmsprop``.

Everything else in the package (presets, demos) builds on this module; this
module imports nothing from the rest of the package.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_rmsprop import hyperparameters as hp
from optax_rmsprop import quantize

__all__ = ["RMSPropState", "rmsprop", "scale_by_rms"]

MaskOrFn = Any  # a pytree of bools shaped like the params (or a prefix), or a callable


class RMSPropState(NamedTuple):
    """State of :func:`rmsprop` and :func:`scale_by_rms`.

    Buffers of features that are off are ``None`` (an empty pytree).
    """

    count: jax.Array  # type: ignore[assignment]  # int32 steps taken, saturating at 2**31 - 1
    nu: optax.Updates  # leaky average of |g|^2 (a QuantizedArray per leaf for int8)
    mu: optax.Updates | None  # leaky average of g (``centered=True``)
    momentum: optax.Updates | None  # momentum buffer (``momentum`` not None)


@dataclasses.dataclass(frozen=True)
class _Rule:
    """The static part of a configuration: everything that shapes the computation.

    It is hashable, so one compiled update serves every transformation built with
    the same rule, whatever the values of its array hyperparameters (as
    ``optax.inject_hyperparams`` passes them). Python numbers are part of the rule:
    compile-time constants of the eager step as of a caller's jitted one, so that the
    compiler folds them the same way in both and jit gives the eager step's bits.
    """

    eps_in_sqrt: bool
    centered: bool
    nesterov: bool
    bias_correction: bool
    use_momentum: bool
    lr_in_momentum: bool
    weight_decay: str | None  # None, "coupled" or "decoupled"
    weight_decay_mask: Any  # None, a callable, or (treedef, leaves) of a pytree
    maximize: bool
    split_complex: bool
    scale_only: bool  # scale_by_rms: no learning rate and no sign flip
    nu_dtype: Any  # None, a float dtype, or a quantize.Int8
    mu_dtype: Any
    schedules: tuple[tuple[str, Callable[[jax.Array], Any]], ...]
    constants: tuple[tuple[str, float], ...]  # hyperparameters given as Python numbers


def _hashable_mask(mask: MaskOrFn | None) -> Any:
    if mask is None or callable(mask):
        return mask
    leaves, treedef = jax.tree.flatten(mask)
    for leaf in leaves:
        if not isinstance(leaf, (bool, np.bool_)):
            raise TypeError(
                "weight_decay_mask must be a pytree of Python bools (or a callable "
                f"returning one); found a leaf {leaf!r} of type {type(leaf).__name__}."
            )
    return treedef, tuple(bool(leaf) for leaf in leaves)


def _mask_leaves(rule: _Rule, params: Any, treedef: Any) -> list[bool]:
    """One bool per leaf of ``treedef``: whether weight decay applies to it."""
    mask = rule.weight_decay_mask
    if mask is None:
        return [True] * treedef.num_leaves
    if callable(mask):
        mask = mask(params)
    else:
        mask = jax.tree.unflatten(*mask)
    try:  # the mask may be a prefix of the params: broadcast each flag over its subtree
        full = jax.tree.map(lambda m, p: jax.tree.map(lambda _: m, p), mask, params)
    except ValueError as error:
        raise ValueError(
            f"weight_decay_mask must have the structure of the params (or a prefix of it): {error}"
        ) from None
    return [bool(m) if m is not None else False for m in treedef.flatten_up_to(full)]


# ---------------------------------------------------------------------------
# The rule.


def _real_dtype(dtype: Any) -> np.dtype:
    return jnp.finfo(dtype).dtype  # float32 for complex64, as for float32


def _nu_dtype(dtype: Any) -> np.dtype:
    """The parameter's real dtype, but float32 for float16: |g|^2 overflows it for |g| >= 256."""
    real = _real_dtype(dtype)
    return np.dtype(np.float32) if real == np.float16 else real


def _compute_dtype(*dtypes: Any) -> np.dtype:
    """At least float32, whatever the parameter and state dtypes."""
    return jnp.result_type(jnp.float32, *dtypes)


def _buffer_dtypes(rule: _Rule, param_dtype: Any) -> tuple[np.dtype, np.dtype]:
    """The dtypes init gives v (when not in 8-bit blocks) and the first-moment buffers of a
    parameter of ``param_dtype``: real for (re, im) pairs with ``split_complex``."""
    pairs = rule.split_complex and jnp.issubdtype(param_dtype, jnp.complexfloating)
    nu = rule.nu_dtype
    if nu is None:
        nu = _nu_dtype(param_dtype)
    elif isinstance(nu, quantize.Int8):  # a leaf under min_size
        nu = np.dtype(np.float32)
    mu = rule.mu_dtype
    if mu is None:
        mu = param_dtype
    elif jnp.issubdtype(param_dtype, jnp.complexfloating) and not rule.split_complex:
        mu = jnp.result_type(mu, jnp.complex64)  # keep the imaginary part
    return (_real_dtype(nu), _real_dtype(mu)) if pairs else (np.dtype(nu), np.dtype(mu))


def _is_none(x: Any) -> bool:
    return x is None


def _largest_square(dtype: Any) -> Any:
    """Where |g|^2 saturates for a v of ``dtype``: its largest value, less a few roundings."""
    return jnp.finfo(dtype).max * (1 - 4 * jnp.finfo(dtype).eps)


def _to_pairs(x: jax.Array) -> jax.Array:
    return jnp.stack([x.real, x.imag], axis=-1) if jnp.iscomplexobj(x) else x


def _from_pairs(x: jax.Array, like: jax.Array) -> jax.Array:
    return jax.lax.complex(x[..., 0], x[..., 1]) if jnp.iscomplexobj(like) else x


def _abs_sq(x: jax.Array) -> jax.Array:
    return (x.conj() * x).real if jnp.iscomplexobj(x) else x * x


def _as_stored(x: jax.Array, dtype: Any) -> jax.Array:
    """``x`` rounded to the dtype its buffer is stored in, kept in ``x``'s dtype.

    The update then uses exactly what is stored (what a resumed run would read), and
    XLA needs no copy of a narrow buffer that one pass reads and another overwrites.
    """
    return x if x.dtype == dtype else x.astype(dtype).astype(x.dtype)


def _leaf_update(rule, values, t, leaf_seed, decays_weight, g, p, v, m, b):
    """One leaf of the update; see :func:`rmsprop` for the equations it follows.

    ``values`` holds the hyperparameters that are arrays (and schedules' values); those
    given as Python numbers come from the rule, as constants. ``leaf_seed`` tells the
    leaf's stream of rounding noise apart (8-bit ``v`` only, else None).
    """
    # Python numbers stay Python floats, and what is derived from them is computed in
    # float64 and rounded once where it meets an array (see hyperparameters.derive).
    h = hp.derive({**{k: jnp.real(x) for k, x in values.items()}, **dict(rule.constants)})
    out_dtype, g_stored = g.dtype, g
    if rule.split_complex:  # PyTorch: real and imaginary parts are separate coordinates
        g_in, g, p = g, _to_pairs(g), None if p is None else _to_pairs(p)
    stored_v = v
    if isinstance(v, quantize.QuantizedArray):
        v = quantize.dequantize(v, rule.nu_dtype)
    cd = _compute_dtype(g.dtype, v.dtype)
    g = g.astype(cd)
    lr, eps, wd, mu_ = h.get("learning_rate"), h["eps"], h.get("weight_decay"), h.get("momentum")

    if rule.maximize:
        g = -g
    if rule.weight_decay == "coupled" and decays_weight:
        g = g + wd * p.astype(cd)

    # |g|^2 beyond what v's dtype holds (less a few roundings) counts as that much, so the
    # state stays finite.
    g_sq, big = _abs_sq(g), _largest_square(v.dtype)
    new_v = hp.leaky_average(v.astype(_real_dtype(cd)), jnp.minimum(g_sq, big), h)
    if not isinstance(stored_v, quantize.QuantizedArray):
        new_v = _as_stored(new_v, v.dtype)
    v_hat = new_v
    if rule.bias_correction:
        debias = hp.bias_correction(t, _real_dtype(cd), h)
        v_hat = new_v / debias
    if rule.centered:
        new_m = _as_stored(hp.leaky_average(m.astype(cd), g, h), m.dtype)
        m_hat = new_m / debias if rule.bias_correction else new_m
        m_sq = _abs_sq(m_hat)  # unclamped, v_hat - |m|^2 compiles to one fused multiply-add
        if rule.bias_correction:  # v_hat can overflow: then inf - m_sq is inf, not NaN
            m_sq = jnp.minimum(m_sq, jnp.finfo(cd).max)
        v_hat = jnp.maximum(v_hat - m_sq, 0)  # clamp: no NaN from rounding
    elif rule.eps_in_sqrt:
        # v_hat >= 0: the abs is the identity, but it shows the compiler that v_hat + eps
        # >= eps, so the root needs no code for arguments that are 0, negative or subnormal.
        v_hat = jnp.abs(v_hat)

    # Where |g|^2 overflows the arithmetic too, that step's s is 0 (NaN for an infinite g,
    # as in optax).
    g_s = jnp.where(g_sq == jnp.inf, 0 * g, g)
    if rule.eps_in_sqrt:
        s = jax.lax.rsqrt(v_hat + eps) * g_s
    else:
        s = g_s / (jnp.sqrt(v_hat) + eps)

    if rule.scale_only:
        u = s
    elif not rule.use_momentum:
        u = -lr * s
    elif rule.lr_in_momentum:  # optax, Keras, TF1: b <- -lr s + mu b
        u = -lr * s
        new_b = _as_stored(u + mu_ * b.astype(cd), b.dtype)
        u = u + mu_ * new_b if rule.nesterov else new_b
    else:  # PyTorch: b <- s + mu b; u = -lr b
        new_b = _as_stored(s + mu_ * b.astype(cd), b.dtype)
        u = -lr * (s + mu_ * new_b if rule.nesterov else new_b)
    if rule.weight_decay == "decoupled" and decays_weight:
        u = u - h["lr_weight_decay"] * p.astype(cd)

    if rule.split_complex:
        u = _from_pairs(u, g_in)
    u = u.astype(out_dtype)
    new_m = new_m.astype(m.dtype) if rule.centered else None
    new_b = new_b.astype(b.dtype) if rule.use_momentum else None
    if u is new_b:  # the update is the momentum: the caller hands out one array, not a copy
        u = None
    if isinstance(stored_v, quantize.QuantizedArray):
        new_v = _requantize(rule, h, t, leaf_seed, decays_weight, g_stored, stored_v, new_v)
    else:
        new_v = new_v.astype(v.dtype)
    return u, new_v, new_m, new_b


def _requantize(rule, h, t, leaf_seed, decays_weight, g, stored_v, new_v):
    """``new_v`` in 8-bit blocks.

    Rounded to nearest, each block is scaled by its maximum. Rounded stochastically,
    by an upper bound of it: the update of v applied to the blocks' maxima of the old
    v and of |g|, read from the stored codes and gradients. That takes no pass over
    the new v, which XLA:CPU would first write out to memory. The bound is at most
    twice the maximum (one octave of range, nothing in precision) and never below it:
    the leaky average is monotone in both its inputs, and the few roundings by which
    the elementwise one can exceed the maxima's are covered by a margin of 2**-20. Complex
    gradients, and gradients with coupled weight decay (whose |g + wd p| has no such
    cheap bound), take the exact maximum.
    """
    config, f32 = rule.nu_dtype, new_v.dtype
    scales = None
    coupled = rule.weight_decay == "coupled" and decays_weight
    if config.rounding == "stochastic" and not jnp.iscomplexobj(g) and not coupled:
        g_max = quantize.block_max_abs(g, config).astype(f32)
        big = _largest_square(f32)  # as in _leaf_update
        old_max = quantize.block_max(stored_v, config)
        scales = hp.leaky_average(old_max, jnp.minimum(g_max * g_max, big), h)
        scales = scales * (1 + 2.0**-20)
    # A different stream of rounding noise for each step and leaf.
    seed = t.astype(jnp.uint32) * jnp.uint32(0x632BE5AB) + leaf_seed
    return quantize.quantize(new_v, config, seed, scales)


def _flatten_like(tree: Any, treedef: Any, name: str, paths: list[str]) -> list[Any]:
    """The subtrees of ``tree`` at the leaves of ``treedef``, whose paths are ``paths``."""
    try:
        return treedef.flatten_up_to(tree)
    except (ValueError, TypeError) as error:
        is_leaf = lambda x: x is None or isinstance(x, quantize.QuantizedArray)  # noqa: E731
        keyed, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
        theirs = [jax.tree_util.keystr(path) for path, _ in keyed]
        ours, known = set(paths), set(theirs)
        extra = [path for path in paths if path not in known]
        missing = [path for path in theirs if path not in ours]
        if extra:
            detail = f"updates{extra[0]} is not in {name}"
        elif missing:
            detail = f"{name}{missing[0]} is not in the updates"
        else:
            detail = str(error)
        raise ValueError(
            f"the tree structure of {name} does not match the updates': {detail}."
        ) from None


def _check_buffers(state: RMSPropState, rule: _Rule) -> None:
    """Raises for a state made by a configuration with other buffers than ``rule``'s."""
    for field, wanted, option in (
        ("mu", rule.centered, "centered=True"),
        ("momentum", rule.use_momentum, "a momentum"),
    ):
        found = getattr(state, field) is not None
        if found and not wanted:
            raise ValueError(
                f"the state has a {field} buffer (made with {option}) but this transformation "
                "has none: the state was made by a different configuration."
            )
        if wanted and not found and state.nu is not None:
            raise ValueError(
                f"the state has no {field} buffer but this transformation, with {option}, "
                "needs one: the state was made by a different configuration."
            )


def _check_leaf(rule: _Rule, where: str, g: Any, p: Any, v: Any) -> tuple[int, ...]:
    """Raises for a gradient that does not fit its state or parameter; returns v's shape."""
    if not (isinstance(v, quantize.QuantizedArray) or hasattr(v, "dtype")):
        found = "None" if v is None else f"a {type(v).__name__}"
        raise ValueError(
            f"updates{where} is an array but the state's nu{where} is {found}: the tree "
            "structure of the updates does not match the state's."
        )
    dtype = jnp.result_type(g)
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"updates{where} has dtype {dtype}: RMSProp needs floating-point or complex gradients."
        )
    if p is not None and jnp.iscomplexobj(g) != jnp.iscomplexobj(p):
        raise TypeError(
            f"updates{where} has dtype {dtype} but params{where} has dtype "
            f"{jnp.result_type(p)}: a gradient is complex exactly when its parameter is."
        )
    quantized = isinstance(v, quantize.QuantizedArray)
    shape = v.codes.shape if quantized else v.shape
    int8 = isinstance(rule.nu_dtype, quantize.Int8) and rule.nu_dtype.applies_to(shape)
    if quantized != int8:
        raise ValueError(
            f"the state's nu{where} is {'8-bit' if quantized else v.dtype} but this "
            f"transformation has nu_dtype={rule.nu_dtype!r}: the state was made by a "
            "different configuration."
        )
    if quantized and v.scales.shape != quantize.scales_shape(shape, rule.nu_dtype):
        raise ValueError(
            f"the state's nu{where} has 8-bit blocks of shape {v.scales.shape} but this "
            f"transformation, with nu_dtype={rule.nu_dtype!r}, makes "
            f"{quantize.scales_shape(shape, rule.nu_dtype)}: the state was made by a "
            "different configuration."
        )
    return shape


def _check_buffer_dtypes(rule: _Rule, where: str, p: Any, v: Any, m: Any, b: Any) -> None:
    """Raises for buffers of other dtypes than this configuration gives the parameter."""
    nu_dtype, mu_dtype = _buffer_dtypes(rule, jnp.result_type(p))
    buffers = [
        ("nu", v, nu_dtype, "nu_dtype"),
        ("mu", m, mu_dtype, "mu_dtype"),
        ("momentum", b, mu_dtype, "mu_dtype"),
    ]
    for name, buffer, wanted, option in buffers:
        if buffer is None or isinstance(buffer, quantize.QuantizedArray):
            continue
        if buffer.dtype != wanted:
            raise ValueError(
                f"the state's {name}{where} is {buffer.dtype} but this transformation, with "
                f"{option}={getattr(rule, option)!r}, keeps {wanted} for params{where} of dtype "
                f"{jnp.result_type(p)}: the state was made by a different configuration."
            )


def _jittable(rule: _Rule) -> bool:
    """Whether ``rule`` can key jit's cache: not with an unhashable schedule object (then
    the rule runs op by op)."""
    try:
        hash(rule)
    except TypeError:
        return False
    return True


def _step(updates, state, params, values, rule):
    """The update, with None for each leaf whose update is its new momentum (the caller
    hands out the momentum's array there: outside jit one array, not a copy)."""
    count = state.count
    values = dict(values)
    for name, schedule in rule.schedules:
        values[name] = hp.schedule_value(name, schedule(count))
    t = optax.safe_increment(count)
    # Leaves of one shape and dtype share one trace of the leaf's update (and XLA
    # inlines it): tracing a thousand-leaf tree costs what tracing a few leaves does.
    leaf_update = _jitted_leaf_update if _jittable(rule) else _leaf_update

    keyed, treedef = jax.tree_util.tree_flatten_with_path(updates, is_leaf=_is_none)
    n, paths = len(keyed), [jax.tree_util.keystr(path) for path, _ in keyed]
    _check_buffers(state, rule)
    vs = _flatten_like(state.nu, treedef, "the state's nu", paths)
    ms = [None] * n
    if rule.centered:
        ms = _flatten_like(state.mu, treedef, "the state's mu", paths)
    bs = [None] * n
    if rule.use_momentum:
        bs = _flatten_like(state.momentum, treedef, "the state's momentum", paths)
    ps, decays = [None] * n, [False] * n
    if params is not None:  # also to check the gradients' dtypes against
        ps = _flatten_like(params, treedef, "params", paths)
    if rule.weight_decay:
        if params is None:
            raise ValueError(
                "weight_decay needs the params: call update(grads, state, params). (Under "
                "optax.inject_hyperparams a weight decay of 0 is a traced value; leave it "
                "None to turn weight decay off.)"
            )
        decays = _mask_leaves(rule, params, treedef)

    out = []
    for where, (_, g), p, v, m, b, d in zip(paths, keyed, ps, vs, ms, bs, decays, strict=True):
        if g is None:
            if v is not None:
                raise ValueError(
                    f"updates{where} is None but the state has a buffer for it: None is for "
                    "leaves whose parameter was None at init."
                )
            out.append((None, None, None, None))
            continue
        shape = _check_leaf(rule, where, g, p, v)
        pairs = rule.split_complex and jnp.iscomplexobj(g)  # (re, im) pairs: one more axis
        if shape != ((*g.shape, 2) if pairs else g.shape):
            needs = f"; split_complex=True needs {(*g.shape, 2)}" if pairs else ""
            raise ValueError(
                f"updates{where} has shape {g.shape} but its state has shape {shape}{needs}."
            )
        if p is not None:
            _check_buffer_dtypes(rule, where, p, v, m, b)
        seed = None  # a different stream of rounding noise for each leaf
        if isinstance(v, quantize.QuantizedArray):
            seed = np.uint32(len(out) * 0x85EBCA77 % 2**32)
        out.append(leaf_update(rule, values, t, seed, d, g, p, v, m, b))
    new_u, new_v, new_m, new_b = ([o[i] for o in out] for i in range(4))
    unflatten = lambda leaves: jax.tree.unflatten(treedef, leaves)  # noqa: E731
    return unflatten(new_u), RMSPropState(
        count=t,
        nu=unflatten(new_v),
        mu=unflatten(new_m) if rule.centered else None,
        momentum=unflatten(new_b) if rule.use_momentum else None,
    )


_jitted_leaf_update = jax.jit(_leaf_update, static_argnames=("rule", "decays_weight"))
_jitted_step = jax.jit(_step, static_argnames="rule")
_jitted_quantize = jax.jit(quantize.quantize, static_argnames="config")


def _build(
    *,
    learning_rate,
    decay,
    eps,
    initial_scale,
    eps_in_sqrt,
    centered,
    momentum,
    nesterov,
    bias_correction,
    weight_decay,
    decoupled_weight_decay,
    weight_decay_mask,
    lr_in_momentum,
    maximize,
    split_complex,
    nu_dtype,
    mu_dtype,
) -> optax.GradientTransformationExtraArgs:
    hyperparameters = {"decay": decay, "eps": eps}
    if learning_rate is not None:
        hyperparameters["learning_rate"] = learning_rate
    if momentum is not None:
        hyperparameters["momentum"] = momentum
    checked = {**hyperparameters, "initial_scale": initial_scale}
    if weight_decay is not None:  # checked before the test for zero reads its value
        checked["weight_decay"] = weight_decay
    for name, value in checked.items():
        hp.check(name, value)
    use_weight_decay = weight_decay is not None and not hp.is_concrete_zero(weight_decay)
    if use_weight_decay:
        hyperparameters["weight_decay"] = weight_decay
    flags = dict(
        eps_in_sqrt=eps_in_sqrt,
        centered=centered,
        nesterov=nesterov,
        bias_correction=bias_correction,
        decoupled_weight_decay=decoupled_weight_decay,
        lr_in_momentum=lr_in_momentum,
        maximize=maximize,
        split_complex=split_complex,
    )
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool; got {value!r} of type {type(value).__name__}.")
    if hp.is_schedule(initial_scale):
        raise TypeError("initial_scale must be a number or a scalar array, not a schedule.")
    # A number's 1 - decay is computed in float64 (so 1 - 1e-9 is no 1); an array's is
    # float32 arithmetic, where a decay within 3e-8 of 1 is 1.
    rho = None if hp.is_schedule(decay) or hp.is_tracer(decay) else hp.as_constant(decay)
    if rho is not None and (rho == 1 or (not hp.is_constant(decay) and np.float32(rho) == 1)):
        one = "decay=1" if rho == 1 else f"decay={rho} (1 in float32)"
        if hp.is_concrete_zero(initial_scale):
            raise ValueError(
                f"{one} with initial_scale=0 keeps the accumulator at 0 forever, so every "
                "step would be learning_rate * g / sqrt(eps); use decay < 1 or initial_scale > 0."
            )
        if bias_correction:
            raise ValueError(
                f"{one} with bias_correction=True divides by 1 - decay**t = 0; use decay < 1."
            )
    if nesterov and momentum is None:
        raise ValueError("nesterov=True needs momentum: pass momentum=0.9, for example.")

    rule = _Rule(
        eps_in_sqrt=bool(eps_in_sqrt),
        centered=bool(centered),
        nesterov=bool(nesterov),
        bias_correction=bool(bias_correction),
        use_momentum=momentum is not None,
        lr_in_momentum=bool(lr_in_momentum),
        weight_decay=(
            ("decoupled" if decoupled_weight_decay else "coupled") if use_weight_decay else None
        ),
        weight_decay_mask=_hashable_mask(weight_decay_mask),
        maximize=bool(maximize),
        split_complex=bool(split_complex),
        scale_only=learning_rate is None,
        nu_dtype=_state_dtype("nu_dtype", nu_dtype, allow_int8=True),
        mu_dtype=_state_dtype("mu_dtype", mu_dtype, allow_int8=False),
        schedules=tuple(
            (name, value) for name, value in hyperparameters.items() if hp.is_schedule(value)
        ),
        constants=tuple(
            (name, hp.as_constant(value))
            for name, value in hyperparameters.items()
            if hp.is_constant(value)
        ),
    )
    values = {  # arrays: arguments of the compiled step
        name: value
        for name, value in hyperparameters.items()
        if name not in dict(rule.schedules) and name not in dict(rule.constants)
    }
    jittable = _jittable(rule)

    def init_fn(params: optax.Params) -> RMSPropState:
        def like(p, fill, dtype):
            """``jnp.full_like(p, fill, dtype)``, sharded like ``p``; (re, im) pairs of
            reals for a complex ``p`` with ``split_complex``.

            ``full_like`` keeps the sharding of a concrete ``p`` (and of a traced one
            under explicit sharding); under ``jit`` with automatic sharding, adding
            zeros computed from ``p`` (0 also where ``p`` is inf or NaN) lets the
            partitioner shard the buffer like ``p``.
            """
            pairs = rule.split_complex and jnp.iscomplexobj(p)
            x = jnp.full_like(p, fill, dtype)
            if hp.is_tracer(p):
                x = x + jnp.where(jnp.isfinite(p), jnp.abs(p) * 0, 0).astype(dtype)
            return jnp.stack([x, x], axis=-1) if pairs else x

        def nu(path, p):
            _check_param(path, p)
            if p is None:
                return None
            v = like(p, jnp.real(initial_scale), _buffer_dtypes(rule, p.dtype)[0])
            if isinstance(rule.nu_dtype, quantize.Int8) and rule.nu_dtype.applies_to(v.shape):
                # quantized from v, so that the scales come sharded like it
                return (quantize.quantize if hp.is_tracer(v) else _jitted_quantize)(
                    v, rule.nu_dtype, jnp.uint32(0)
                )
            return v

        def zeros(p):
            return like(p, 0, _buffer_dtypes(rule, p.dtype)[1])

        nus = jax.tree_util.tree_map_with_path(nu, params, is_leaf=_is_none)  # checks params
        mu = jax.tree.map(zeros, params) if rule.centered else None
        return RMSPropState(
            count=jnp.zeros([], jnp.int32),
            nu=nus,
            mu=mu,
            momentum=(jax.tree.map(zeros, params) if rule.use_momentum else None),
        )

    def update_fn(
        updates: optax.Updates,
        state: RMSPropState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, RMSPropState]:
        del extra_args
        if not isinstance(state, RMSPropState):
            raise TypeError(
                f"state must be the RMSPropState made by init; got {type(state).__name__}."
            )
        traced = any(hp.is_tracer(x) for x in jax.tree.leaves((state.count, updates, values)))
        if traced or not jittable:  # inside the caller's trace the rule simply inlines
            updates, state = _step(updates, state, params, values, rule)
        else:
            updates, state = _jitted_step(updates, state, params, values, rule=rule)
        if rule.use_momentum:  # where the update is the new momentum: one array, not a copy
            updates = jax.tree.map(
                lambda u, b: b if u is None else u, updates, state.momentum, is_leaf=_is_none
            )
        return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _state_dtype(name: str, dtype: Any, allow_int8: bool) -> Any:
    if dtype is None or isinstance(dtype, quantize.Int8):
        if isinstance(dtype, quantize.Int8) and not allow_int8:
            raise ValueError(f"{name} must be None or a float dtype; 8-bit storage is for nu.")
        return dtype
    if isinstance(dtype, str) and dtype == "int8":
        if not allow_int8:
            raise ValueError(f"{name} must be None or a float dtype; 8-bit storage is for nu.")
        return quantize.Int8()
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be None, a float dtype or 'int8'; got {dtype!r}.") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a float dtype (or 'int8' for nu_dtype); got {dtype}.")
    if allow_int8 and dtype.itemsize < 2:  # float8: too little range for v
        raise ValueError(
            f"{name} must be a float dtype of 16 bits or more, or 'int8'; got {dtype}."
        )
    return dtype


def _check_param(path: Any, p: Any) -> None:
    if p is None:
        return
    dtype = jnp.result_type(p)
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"params{jax.tree_util.keystr(path)} has dtype {dtype}: RMSProp updates only "
            "floating-point or complex leaves. Leave the others out with optax.masked or "
            "optax.partition."
        )


def scale_by_rms(
    decay: optax.ScalarOrSchedule = 0.9,
    eps: optax.ScalarOrSchedule = 1e-8,
    initial_scale: jax.typing.ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    *,
    centered: bool = False,
    maximize: bool = False,
    split_complex: bool = False,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Rescales updates by the root of a leaky average of their squares.

    The learning-rate-free part of :func:`rmsprop`: it returns
    :math:`s_t = g_t / \sqrt{\hat v_t + \varepsilon}` (or
    :math:`g_t / (\sqrt{\hat v_t} + \varepsilon)`), without the step size or the
    sign, like :func:`optax.scale_by_rms` (and :func:`optax.scale_by_stddev` with
    ``centered=True``), whose five positional arguments it keeps, in their order.
    Chain it with :func:`optax.scale_by_learning_rate`.

    Args: as :func:`rmsprop`.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`RMSPropState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax_rmsprop
      >>> tx = optax_rmsprop.scale_by_rms(decay=0.0, eps=0.0)
      >>> updates, _ = tx.update(jnp.array([-2.0, 3.0]), tx.init(jnp.zeros(2)))
      >>> updates  # with decay 0 the step is g / |g|
      Array([-1.,  1.], dtype=float32)
    """
    return _build(
        learning_rate=None,
        decay=decay,
        eps=eps,
        initial_scale=initial_scale,
        eps_in_sqrt=eps_in_sqrt,
        centered=centered,
        momentum=None,
        nesterov=False,
        bias_correction=bias_correction,
        weight_decay=None,
        decoupled_weight_decay=False,
        weight_decay_mask=None,
        lr_in_momentum=True,
        maximize=maximize,
        split_complex=split_complex,
        nu_dtype=nu_dtype,
        mu_dtype=mu_dtype,
    )


def rmsprop(
    learning_rate: optax.ScalarOrSchedule,
    decay: optax.ScalarOrSchedule = 0.9,
    eps: optax.ScalarOrSchedule = 1e-8,
    initial_scale: jax.typing.ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: optax.ScalarOrSchedule | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
    *,
    weight_decay: optax.ScalarOrSchedule | None = None,
    decoupled_weight_decay: bool = False,
    weight_decay_mask: MaskOrFn | None = None,
    lr_in_momentum: bool = True,
    maximize: bool = False,
    split_complex: bool = False,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSProp, with every variant in one update rule.

    A drop-in for :func:`optax.rmsprop`: the nine positional arguments have its
    names, order and defaults, and give its updates. At step :math:`t` (from 1),
    with :math:`\eta_t, \rho_t, \mu_t, \lambda_t, \varepsilon_t` the values of the
    hyperparameters (each a number or a schedule of the step count :math:`t-1`):

    .. math::

      \begin{align*}
        g_t &\leftarrow -g_t \text{ if maximize} \\
        g_t &\leftarrow g_t + \lambda_t \theta_{t-1}
          \text{ (coupled weight decay)} \\
        v_t &\leftarrow (1 - \rho_t) |g_t|^2 + \rho_t v_{t-1},
          \quad v_0 = \text{initial\_scale} \\
        \bar m_t &\leftarrow (1 - \rho_t) g_t + \rho_t \bar m_{t-1}
          \text{ (centered)}, \quad \bar m_0 = 0 \\
        \hat v_t, \hat m_t &\leftarrow v_t / (1 - \rho_t^t),\;
          \bar m_t / (1 - \rho_t^t) \text{ (bias correction)} \\
        \sigma^2_t &\leftarrow \max(\hat v_t - |\hat m_t|^2, 0)
          \text{ (centered) else } \hat v_t \\
        s_t &\leftarrow g_t / \sqrt{\sigma^2_t + \varepsilon_t}
          \text{ (eps\_in\_sqrt) else } g_t / (\sqrt{\sigma^2_t} + \varepsilon_t) \\
        b_t &\leftarrow -\eta_t s_t + \mu_t b_{t-1},\; u_t = b_t
          \text{ (nesterov: } u_t = -\eta_t s_t + \mu_t b_t) \\
        b_t &\leftarrow s_t + \mu_t b_{t-1},\; u_t = -\eta_t b_t
          \text{ (lr\_in\_momentum=False;} \\
          &\qquad \text{nesterov: } u_t = -\eta_t(s_t + \mu_t b_t)) \\
        u_t &\leftarrow -\eta_t s_t \text{ (no momentum)} \\
        u_t &\leftarrow u_t - \eta_t \lambda_t \theta_{t-1}
          \text{ (decoupled weight decay)}
      \end{align*}

    The arithmetic runs in at least float32 and the update is cast back to the
    gradient's dtype. For hyperparameters given as Python numbers, :math:`1 - \rho`,
    :math:`\log\rho` and :math:`\eta\lambda` are computed in float64 and rounded once;
    the leaky averages use the one weight :math:`1 - \rho` (their weights sum to 1
    exactly) and the bias correction is :math:`-\mathrm{expm1}(t \log\rho)`, which
    does not cancel for :math:`\rho` near 1. Arrays and schedules' values are used in
    their own dtype, as optax does. Unlike every framework, the centered variance is clamped at
    zero, so rounding cannot make it negative and the step NaN.

    Finite gradients keep the state finite, and the update too wherever its exact
    value fits the update's dtype: :math:`|g|^2` beyond the largest value of
    :math:`v`'s dtype counts as that value (where it overflows float32 too, that
    step's :math:`s` is 0), and :math:`v` decays back. With ``eps=0`` the step
    divides by :math:`\sqrt{\hat v_t}`, which is 0 where every gradient so far was
    0 (0/0 is NaN) or too small to square. Skip non-finite gradients with
    :func:`optax.apply_if_finite` (or :class:`optax.MultiSteps` with
    :func:`optax.skip_not_finite`); leaves never mix, so a NaN reaches only its own
    leaf's state.

    With ``bias_correction=True`` and ``eps_in_sqrt=False`` this is Adam with
    ``b1=0``: ``rmsprop(lr, decay=b2, eps=eps, eps_in_sqrt=False,
    bias_correction=True)`` equals ``optax.adam(lr, b1=0.0, b2=b2, eps=eps)``.

    Args:
      learning_rate: :math:`\eta`, a number, a scalar array or a schedule.
      decay: :math:`\rho` in [0, 1], the leaky average's decay.
      eps: :math:`\varepsilon` >= 0, keeps the denominator away from zero.
      initial_scale: :math:`v_0`; PyTorch, Keras and optax use 0, TF1 uses 1.
      eps_in_sqrt: add ``eps`` inside the root (optax, Keras, TF1, MXNet) or
        outside it (PyTorch).
      centered: divide by the root of the variance (Graves, 2013) instead of the
        second moment.
      momentum: :math:`\mu` in [0, 1], or ``None`` for no momentum buffer at all.
      nesterov: Nesterov momentum (needs ``momentum``).
      bias_correction: divide the leaky averages by :math:`1 - \rho^t`.
      weight_decay: :math:`\lambda` >= 0; ``None`` (or a plain 0) turns weight
        decay off, so ``update`` needs no params.
      decoupled_weight_decay: ``False`` adds :math:`\lambda\theta` to the
        gradient (PyTorch, MXNet); ``True`` subtracts :math:`\eta\lambda\theta`
        from the update (Keras, AdamW).
      weight_decay_mask: a pytree of bools with the params' structure (or a
        prefix), or a callable of the params returning one, as in
        :func:`optax.add_decayed_weights`: weight decay applies where True.
      lr_in_momentum: keep :math:`\eta` inside the momentum buffer (optax,
        Keras, TF1) or apply the current :math:`\eta` to the whole buffer
        (PyTorch); they differ only when :math:`\eta` changes.
      maximize: ascend instead of descend (PyTorch's ``maximize``).
      split_complex: treat the real and imaginary part of a complex parameter as
        two coordinates (PyTorch) instead of using :math:`|g|^2` (optax).
      nu_dtype: dtype of :math:`v` (default: the parameter's real dtype, but float32
        for float16, whose range cannot hold :math:`|g|^2` for :math:`|g| \ge 256`).
      mu_dtype: dtype of :math:`\bar m` and :math:`b` (default: the parameter's).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`RMSPropState`.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> import optax_rmsprop
      >>> f = lambda x: jnp.sum(x**2)
      >>> tx = optax_rmsprop.rmsprop(learning_rate=0.1)
      >>> params = jnp.array([1.0, 2.0, 3.0])
      >>> state = tx.init(params)
      >>> for _ in range(3):
      ...     updates, state = tx.update(jax.grad(f)(params), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> print(f"{f(params):.4f}")
      7.1012
    """
    if learning_rate is None:
        raise TypeError("learning_rate must be a number, a scalar array or a schedule; got None.")
    return _build(
        learning_rate=learning_rate,
        decay=decay,
        eps=eps,
        initial_scale=initial_scale,
        eps_in_sqrt=eps_in_sqrt,
        centered=centered,
        momentum=momentum,
        nesterov=nesterov,
        bias_correction=bias_correction,
        weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay,
        weight_decay_mask=weight_decay_mask,
        lr_in_momentum=lr_in_momentum,
        maximize=maximize,
        split_complex=split_complex,
        nu_dtype=nu_dtype,
        mu_dtype=mu_dtype,
    )
