"""The RMSProp update rule: its state, ``scale_by_rms`` and ``rmsprop``.

:func:`_rule` is the rule, one parameter's step under the equations it follows. Around
it, :func:`_leaf_update` handles how the buffers are stored (8-bit blocks, (re, im)
pairs, narrow dtypes); ``_init`` and ``_update`` are the transformation's two halves.
Everything else in the package (presets, demos) builds on this module; this module
imports nothing from the rest of the package but the hyperparameters, the checks and
the 8-bit format.
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
from optax_rmsprop import validation as check

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
class _Config:
    """The static part of a configuration: everything that shapes the computation.

    It is hashable, so one compiled update serves every transformation built with
    the same configuration, whatever the values of its array hyperparameters (as
    ``optax.inject_hyperparams`` passes them). Python numbers are part of it:
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
    mu_dtype: Any  # None, a float dtype, or a quantize.Int8 (signed codes)
    schedules: tuple[tuple[str, Callable[[jax.Array], Any]], ...]
    constants: tuple[tuple[str, float], ...]  # hyperparameters given as Python numbers


class _Stored(NamedTuple):
    """For each buffer, its new value rounded to what the state will hold, kept in the
    arithmetic's dtype: the rule goes on from exactly what a resumed run would read."""

    nu: Callable[[jax.Array], jax.Array]
    mu: Callable[[jax.Array], jax.Array]
    momentum: Callable[[jax.Array], jax.Array]


# ---------------------------------------------------------------------------
# The rule.


def _rule(
    c: _Config,
    h: hp.Hyperparameters,
    t: jax.Array,
    g: jax.Array,
    theta: jax.Array | None,
    v: jax.Array,
    m: jax.Array | None,
    b: jax.Array | None,
    stored: _Stored,
) -> tuple[jax.Array, jax.Array, jax.Array | None, jax.Array | None]:
    r"""One parameter's step: the update and the new buffers (v, m̄, b).

    ``theta`` is θ where weight decay applies to this parameter, else None; ``m`` and
    ``b`` are None where their feature is off. The arithmetic is in at least float32.

    .. math::

      \begin{align*}
        g_t &\leftarrow -g_t \text{ (maximize)} && (1) \\
        g_t &\leftarrow g_t + \lambda \theta_{t-1}
          \text{ (coupled weight decay)} && (2) \\
        v_t &\leftarrow (1 - \rho) |g_t|^2 + \rho v_{t-1} && (3) \\
        \bar m_t &\leftarrow (1 - \rho) g_t + \rho \bar m_{t-1}
          \text{ (centered)} && (4) \\
        \hat v_t, \hat m_t &\leftarrow
          v_t / (1 - \rho^t), \bar m_t / (1 - \rho^t)
          \text{ (bias correction)} && (5) \\
        \sigma^2_t &\leftarrow \max(\hat v_t - |\hat m_t|^2, 0)
          \text{ (centered), else } \hat v_t && (6) \\
        s_t &\leftarrow g_t / \sqrt{\sigma^2_t + \varepsilon}
          \text{, or } g_t / (\sqrt{\sigma^2_t} + \varepsilon) && (7) \\
        b_t &\leftarrow -\eta s_t + \mu b_{t-1},\; u_t = b_t
          \text{ (nesterov: } -\eta s_t + \mu b_t) && (8) \\
        b_t &\leftarrow s_t + \mu b_{t-1},\; u_t = -\eta b_t
          \text{ (nesterov: } -\eta (s_t + \mu b_t)) && (9) \\
        u_t &\leftarrow -\eta s_t \text{ (no momentum)} && (10) \\
        u_t &\leftarrow u_t - \eta \lambda \theta_{t-1}
          \text{ (decoupled weight decay)} && (11)
      \end{align*}

    (8) keeps η inside the buffer (``lr_in_momentum``), (9) outside it. How the
    hyperparameters and the leaky averages round: see ``hyperparameters``.
    """
    cd = jnp.result_type(jnp.float32, g.dtype, v.dtype)  # at least float32
    real = jnp.finfo(cd).dtype
    g = g.astype(cd)
    if c.maximize:  # (1)
        g = -g
    if c.weight_decay == "coupled" and theta is not None:  # (2)
        g = g + h.weight_decay * theta.astype(cd)
    # |g|^2 beyond what v's dtype holds (less a few roundings) counts as that much, so
    # the state stays finite.
    g_sq = _abs_sq(g)
    v_new = stored.nu(  # (3)
        hp.leaky_average(v.astype(real), jnp.minimum(g_sq, _largest_square(v.dtype)), h)
    )
    v_hat = v_new
    if c.bias_correction:  # (5)
        debias = hp.bias_correction(t, real, h)
        v_hat = v_new / debias
    m_new = None
    if m is not None:
        m_new = stored.mu(hp.leaky_average(m.astype(cd), g, h))  # (4)
        m_hat = m_new / debias if c.bias_correction else m_new  # (5)
        m_sq = _abs_sq(m_hat)  # unclamped, v_hat - |m|^2 compiles to one fused multiply-add
        if c.bias_correction:  # v_hat can overflow: then inf - m_sq is inf, not NaN
            m_sq = jnp.minimum(m_sq, jnp.finfo(cd).max)
        v_hat = jnp.maximum(v_hat - m_sq, 0)  # (6), clamped: no NaN from rounding
    elif c.eps_in_sqrt:
        # v_hat >= 0: the abs is the identity, but it shows the compiler that v_hat + eps
        # >= eps, so the root needs no code for arguments that are 0, negative or subnormal.
        v_hat = jnp.abs(v_hat)
    # Where |g|^2 overflows the arithmetic too, that step's s is 0 (NaN for an infinite
    # g, as in optax).
    g_s = jnp.where(g_sq == jnp.inf, 0 * g, g)
    if c.eps_in_sqrt:  # (7)
        s = jax.lax.rsqrt(v_hat + h.eps) * g_s
    else:
        s = g_s / (jnp.sqrt(v_hat) + h.eps)
    lr, mu = h.learning_rate, h.momentum
    b_new = None
    if c.scale_only:  # scale_by_rms: s
        u = s
    elif b is None:  # (10)
        u = -lr * s
    elif c.lr_in_momentum:  # (8)
        u = -lr * s
        b_new = stored.momentum(u + mu * b.astype(cd))
        u = u + mu * b_new if c.nesterov else b_new
    else:  # (9)
        b_new = stored.momentum(s + mu * b.astype(cd))
        u = -lr * (s + mu * b_new if c.nesterov else b_new)
    if c.weight_decay == "decoupled" and theta is not None:  # (11)
        u = u - h.lr_weight_decay * theta.astype(cd)
    return u, v_new, m_new, b_new


# ---------------------------------------------------------------------------
# Storage: the rule applied to one leaf as its state stores it.


def _real_dtype(dtype: Any) -> np.dtype:
    return jnp.finfo(dtype).dtype  # float32 for complex64, as for float32


def _nu_dtype(dtype: Any) -> np.dtype:
    """The parameter's real dtype, but float32 for float16: |g|^2 overflows it for |g| >= 256."""
    real = _real_dtype(dtype)
    return np.dtype(np.float32) if real == np.float16 else real


def _buffer_dtypes(config: _Config, param_dtype: Any) -> tuple[np.dtype, np.dtype]:
    """The dtypes init gives v (when not in 8-bit blocks) and the first-moment buffers of a
    parameter of ``param_dtype``: real for (re, im) pairs with ``split_complex``."""
    pairs = config.split_complex and jnp.issubdtype(param_dtype, jnp.complexfloating)
    nu = config.nu_dtype
    if nu is None:
        nu = _nu_dtype(param_dtype)
    elif isinstance(nu, quantize.Int8):  # a leaf under min_size
        nu = np.dtype(np.float32)
    mu = config.mu_dtype
    if isinstance(mu, quantize.Int8):  # a leaf under min_size
        mu = np.dtype(np.float32)
    if mu is None:
        mu = param_dtype
    elif jnp.issubdtype(param_dtype, jnp.complexfloating) and not config.split_complex:
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


def _unchanged(x: jax.Array) -> jax.Array:
    return x


Buffer = Any  # a leaf of the state: an array, a quantize.QuantizedArray, or None


def _leaf_update(
    config: _Config,
    values: dict[str, jax.Array],
    t: jax.Array,
    leaf_seed: np.uint32 | None,
    decays_weight: bool,
    g: jax.Array,
    p: jax.Array | None,
    v: Buffer,
    m: jax.Array | None,
    b: jax.Array | None,
) -> tuple[jax.Array | None, Buffer, jax.Array | None, jax.Array | None]:
    """:func:`_rule` on one leaf as stored: (re, im) pairs for ``split_complex``, v in
    8-bit blocks or a narrow dtype, the results cast to the dtypes they are stored in.

    ``values`` holds the hyperparameters that are arrays (and schedules' values); those
    given as Python numbers come from the configuration, as constants. ``leaf_seed``
    tells the leaf's stream of rounding noise apart (8-bit ``v`` only, else None). The
    update is None where it is the new momentum: the caller hands out that one array.
    """
    # Python numbers stay Python floats, and what is derived from them is computed in
    # float64 and rounded once where it meets an array (see hyperparameters.derive).
    h = hp.derive({**{k: jnp.real(x) for k, x in values.items()}, **dict(config.constants)})
    g_given = g
    if config.split_complex:  # PyTorch: real and imaginary parts are separate coordinates
        g, p = _to_pairs(g), None if p is None else _to_pairs(p)
    quantized = isinstance(v, quantize.QuantizedArray)
    v_float = quantize.dequantize(v, config.nu_dtype) if quantized else v
    m_stored, b_stored = m, b
    m, b = _dequantized(config, m, g), _dequantized(config, b, g)
    stored = _Stored(
        nu=_unchanged if quantized else lambda x: _as_stored(x, v_float.dtype),
        mu=_unchanged if m is None else lambda x: _as_stored(x, m.dtype),
        momentum=_unchanged if b is None else lambda x: _as_stored(x, b.dtype),
    )
    theta = p if decays_weight else None
    u, v_new, m_new, b_new = _rule(config, h, t, g, theta, v_float, m, b, stored)

    if config.split_complex:
        u = _from_pairs(u, g_given)
    u = u.astype(g_given.dtype)
    m_new = None if m is None or m_new is None else m_new.astype(m.dtype)
    b_new = None if b is None or b_new is None else b_new.astype(b.dtype)
    # the update is the momentum: one array, no copy (not when the state holds its codes)
    u_or_none = None if u is b_new and b_stored is b else u
    if quantized:
        v_out: Buffer = _requantize(config, h, t, leaf_seed, decays_weight, g_given, v, v_new)
    else:
        v_out = v_new.astype(v_float.dtype)
    m_out = _requantize_signed(config, t, leaf_seed, 1, m_stored, m_new)
    b_out = _requantize_signed(config, t, leaf_seed, 2, b_stored, b_new)
    return u_or_none, v_out, m_out, b_out


def _dequantized(config: _Config, x: Buffer, g: jax.Array) -> jax.Array | None:
    """A first-moment buffer as the rule reads it: float32 where it is in 8-bit blocks
    (complex64 from the (re, im) pairs of a complex ``g``, which the rule takes whole)."""
    if isinstance(x, quantize.QuantizedArray):
        return _from_pairs(quantize.dequantize(x, config.mu_dtype), g)
    return x


def _requantize_signed(
    config: _Config, t: jax.Array, leaf_seed: Any, buffer: int, stored: Buffer, new: Any
) -> Buffer:
    """``new`` in signed 8-bit blocks where ``stored`` is (each block scaled by its largest
    ``|x|``), else as it is. ``buffer`` tells the streams of rounding noise of m̄ (1) and
    b (2) apart from v's and from each other."""
    if not isinstance(stored, quantize.QuantizedArray):
        return new
    seed = t.astype(jnp.uint32) * jnp.uint32(0x632BE5AB) + leaf_seed
    seed = seed + jnp.uint32(buffer * 0x9E3779B9 % 2**32)
    return quantize.quantize_signed(_to_pairs(new), config.mu_dtype, seed)


def _requantize(
    config: _Config,
    h: hp.Hyperparameters,
    t: jax.Array,
    leaf_seed: Any,
    decays_weight: bool,
    g: jax.Array,
    stored_v: quantize.QuantizedArray,
    new_v: jax.Array,
) -> quantize.QuantizedArray:
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
    int8, f32 = config.nu_dtype, new_v.dtype
    scales = None
    coupled = config.weight_decay == "coupled" and decays_weight
    if int8.rounding == "stochastic" and not jnp.iscomplexobj(g) and not coupled:
        g_max = quantize.block_max_abs(g, int8).astype(f32)
        big = _largest_square(f32)  # as in _rule
        old_max = quantize.block_max(stored_v, int8)
        scales = hp.leaky_average(old_max, jnp.minimum(g_max * g_max, big), h)
        scales = scales * (1 + 2.0**-20)
    # A different stream of rounding noise for each step and leaf.
    seed = t.astype(jnp.uint32) * jnp.uint32(0x632BE5AB) + leaf_seed
    return quantize.quantize(new_v, int8, seed, scales)


# ---------------------------------------------------------------------------
# The step over a tree, init and update.


def _mask_leaves(config: _Config, params: Any, treedef: Any) -> list[bool]:
    """One bool per leaf of ``treedef``: whether weight decay applies to it."""
    mask = config.weight_decay_mask
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


def _jittable(config: _Config) -> bool:
    """Whether ``config`` can key jit's cache: not with an unhashable schedule object (then
    the rule runs op by op)."""
    try:
        hash(config)
    except TypeError:
        return False
    return True


def _step(
    updates: optax.Updates,
    state: RMSPropState,
    params: optax.Params | None,
    values: dict[str, Any],
    config: _Config,
) -> tuple[optax.Updates, RMSPropState]:
    """The update, with None for each leaf whose update is its new momentum (the caller
    hands out the momentum's array there: outside jit one array, not a copy)."""
    count = state.count
    values = dict(values)
    for name, schedule in config.schedules:
        values[name] = hp.schedule_value(name, schedule(count))
    t = optax.safe_increment(count)
    # Leaves of one shape and dtype share one trace of the leaf's update (and XLA
    # inlines it): tracing a thousand-leaf tree costs what tracing a few leaves does.
    leaf_update = _jitted_leaf_update if _jittable(config) else _leaf_update

    keyed, treedef = jax.tree_util.tree_flatten_with_path(updates, is_leaf=_is_none)
    n, paths = len(keyed), [jax.tree_util.keystr(path) for path, _ in keyed]
    check.check_buffers(state, config)
    vs = check.flatten_like(state.nu, treedef, "the state's nu", paths)
    ms = [None] * n
    if config.centered:
        ms = check.flatten_like(state.mu, treedef, "the state's mu", paths)
    bs = [None] * n
    if config.use_momentum:
        bs = check.flatten_like(state.momentum, treedef, "the state's momentum", paths)
    ps, decays = [None] * n, [False] * n
    if params is not None:  # also to check the gradients' dtypes against
        ps = check.flatten_like(params, treedef, "params", paths)
    check.check_params_given(config, params)
    if config.weight_decay:
        decays = _mask_leaves(config, params, treedef)

    out: list[tuple[Any, Any, Any, Any]] = []
    for where, (_, g), p, v, m, b, d in zip(paths, keyed, ps, vs, ms, bs, decays, strict=True):
        if g is None:
            check.check_no_buffer(where, v)
            out.append((None, None, None, None))
            continue
        dtypes = None if p is None else _buffer_dtypes(config, jnp.result_type(p))
        check.check_leaf(config, where, g, p, v, m, b, dtypes)
        seed = None  # a different stream of rounding noise for each leaf
        if any(isinstance(x, quantize.QuantizedArray) for x in (v, m, b)):
            seed = np.uint32(len(out) * 0x85EBCA77 % 2**32)
        out.append(leaf_update(config, values, t, seed, d, g, p, v, m, b))
    new_u, new_v, new_m, new_b = ([o[i] for o in out] for i in range(4))
    unflatten = lambda leaves: jax.tree.unflatten(treedef, leaves)  # noqa: E731
    return unflatten(new_u), RMSPropState(
        count=t,
        nu=unflatten(new_v),
        mu=unflatten(new_m) if config.centered else None,
        momentum=unflatten(new_b) if config.use_momentum else None,
    )


_jitted_leaf_update = jax.jit(_leaf_update, static_argnames=("config", "decays_weight"))
_jitted_step = jax.jit(_step, static_argnames="config")
_jitted_quantize = jax.jit(quantize.quantize, static_argnames="config")
_jitted_quantize_signed = jax.jit(quantize.quantize_signed, static_argnames="config")


def _init(config: _Config, initial_scale: Any, params: optax.Params) -> RMSPropState:
    """The state for ``params``: v at ``initial_scale``, the other buffers at 0."""

    def like(p: jax.Array, fill: Any, dtype: Any) -> jax.Array:
        """``jnp.full_like(p, fill, dtype)``, sharded like ``p``; (re, im) pairs of
        reals for a complex ``p`` with ``split_complex``.

        ``full_like`` keeps the sharding of a concrete ``p`` (and of a traced one
        under explicit sharding); under ``jit`` with automatic sharding, adding
        zeros computed from ``p`` (0 also where ``p`` is inf or NaN) lets the
        partitioner shard the buffer like ``p``.
        """
        pairs = config.split_complex and jnp.iscomplexobj(p)
        x = jnp.full_like(p, fill, dtype)
        if hp.is_tracer(p):
            x = x + jnp.where(jnp.isfinite(p), jnp.abs(p) * 0, 0).astype(dtype)
        return jnp.stack([x, x], axis=-1) if pairs else x

    def nu(path: Any, p: Any) -> Any:
        check.check_param(path, p)
        if p is None:
            return None
        v = like(p, jnp.real(initial_scale), _buffer_dtypes(config, p.dtype)[0])
        if isinstance(config.nu_dtype, quantize.Int8) and config.nu_dtype.applies_to(v.shape):
            # quantized from v, so that the scales come sharded like it
            return (quantize.quantize if hp.is_tracer(v) else _jitted_quantize)(
                v, config.nu_dtype, jnp.uint32(0)
            )
        return v

    def zeros(path: Any, p: Any) -> Any:
        if p is None:
            return None
        x = like(p, 0, _buffer_dtypes(config, p.dtype)[1])
        int8 = config.mu_dtype
        if isinstance(int8, quantize.Int8) and int8.applies_to(x.shape):
            # quantized from x, so that the scales come sharded like it; a complex buffer
            # as (re, im) pairs of real codes
            return (quantize.quantize_signed if hp.is_tracer(x) else _jitted_quantize_signed)(
                _to_pairs(x), int8, jnp.uint32(0)
            )
        return x

    nus = jax.tree_util.tree_map_with_path(nu, params, is_leaf=_is_none)  # checks params
    first_moment = lambda: jax.tree_util.tree_map_with_path(zeros, params, is_leaf=_is_none)  # noqa: E731
    return RMSPropState(
        count=jnp.zeros([], jnp.int32),
        nu=nus,
        mu=first_moment() if config.centered else None,
        momentum=first_moment() if config.use_momentum else None,
    )


def _update(
    config: _Config,
    values: dict[str, Any],
    updates: optax.Updates,
    state: RMSPropState,
    params: optax.Params | None,
) -> tuple[optax.Updates, RMSPropState]:
    """One step: compiled once per configuration, or inlined into the caller's trace."""
    check.check_state_type(state, RMSPropState)
    traced = any(hp.is_tracer(x) for x in jax.tree.leaves((state.count, updates, values)))
    if traced or not _jittable(config):  # inside the caller's trace the rule simply inlines
        updates, state = _step(updates, state, params, values, config)
    else:
        updates, state = _jitted_step(updates, state, params, values, config=config)
    if config.use_momentum:  # where the update is the new momentum: one array, not a copy
        updates = jax.tree.map(
            lambda u, b: b if u is None else u, updates, state.momentum, is_leaf=_is_none
        )
    return updates, state


def _build(
    *,
    learning_rate: optax.ScalarOrSchedule | None,
    decay: optax.ScalarOrSchedule,
    eps: optax.ScalarOrSchedule,
    initial_scale: jax.typing.ArrayLike,
    eps_in_sqrt: bool,
    centered: bool,
    momentum: optax.ScalarOrSchedule | None,
    nesterov: bool,
    bias_correction: bool,
    weight_decay: optax.ScalarOrSchedule | None,
    decoupled_weight_decay: bool,
    weight_decay_mask: MaskOrFn | None,
    lr_in_momentum: bool,
    maximize: bool,
    split_complex: bool,
    nu_dtype: Any,
    mu_dtype: Any,
) -> optax.GradientTransformationExtraArgs:
    """Checks the arguments, splits them into the static configuration and the array
    values, and returns the transformation."""
    hyperparameters: dict[str, Any] = {"decay": decay, "eps": eps}
    if learning_rate is not None:
        hyperparameters["learning_rate"] = learning_rate
    if momentum is not None:
        hyperparameters["momentum"] = momentum
    check.check_arguments(
        hyperparameters,
        initial_scale=initial_scale,
        weight_decay=weight_decay,
        bias_correction=bias_correction,
        nesterov=nesterov,
        momentum=momentum,
        flags=dict(
            eps_in_sqrt=eps_in_sqrt,
            centered=centered,
            nesterov=nesterov,
            bias_correction=bias_correction,
            decoupled_weight_decay=decoupled_weight_decay,
            lr_in_momentum=lr_in_momentum,
            maximize=maximize,
            split_complex=split_complex,
        ),
    )
    use_weight_decay = weight_decay is not None and not hp.is_concrete_zero(weight_decay)
    if use_weight_decay:
        hyperparameters["weight_decay"] = weight_decay
    config = _Config(
        eps_in_sqrt=bool(eps_in_sqrt),
        centered=bool(centered),
        nesterov=bool(nesterov),
        bias_correction=bool(bias_correction),
        use_momentum=momentum is not None,
        lr_in_momentum=bool(lr_in_momentum),
        weight_decay=(
            ("decoupled" if decoupled_weight_decay else "coupled") if use_weight_decay else None
        ),
        weight_decay_mask=check.hashable_mask(weight_decay_mask),
        maximize=bool(maximize),
        split_complex=bool(split_complex),
        scale_only=learning_rate is None,
        nu_dtype=check.state_dtype("nu_dtype", nu_dtype),
        mu_dtype=check.state_dtype("mu_dtype", mu_dtype),
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
        if name not in dict(config.schedules) and name not in dict(config.constants)
    }

    def init_fn(params: optax.Params) -> RMSPropState:
        return _init(config, initial_scale, params)

    def update_fn(
        updates: optax.Updates,
        state: RMSPropState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, RMSPropState]:
        del extra_args
        return _update(config, values, updates, state, params)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


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
      mu_dtype: dtype of :math:`\bar m` and :math:`b` (default: the parameter's), or
        ``"int8"`` (an :class:`~optax_rmsprop.Int8`) for signed 8-bit codes in blocks.

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
