"""Hyperparameters of the rule: their checks, their kinds, and the values derived from them.

A hyperparameter is a Python number, a scalar array (also a tracer, as
``optax.inject_hyperparams`` and ``jax.vmap`` pass them) or a schedule of the step
count. The rule reads them through :func:`derive`, which also computes what the
equations need besides them (:math:`1 - \\rho`, :math:`\\eta\\lambda`, ...):

* from Python numbers, in float64 on the host, each rounded once to the arithmetic's
  dtype where it meets an array (as optax, PyTorch and Keras compute ``1 - decay``);
  float32 cannot hold most decays (0.999 is 0.99900001287), so ``1 - decay`` taken
  from the rounded decay would carry that error magnified: 1.3e-5 at 0.999, 1.7e-4 at
  0.9999;
* from arrays and schedules' values, in their own dtype, as optax does.

:func:`leaky_average` and :func:`bias_correction` are the two places where that
rounding decides how close to exact the trajectory stays at decays near 1.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__: list[str] = []  # internal to the package

LIMITS = {  # name: (lowest, highest) allowed for a concrete value
    "learning_rate": (0.0, math.inf),
    "decay": (0.0, 1.0),
    "eps": (0.0, math.inf),
    "momentum": (0.0, 1.0),  # above 1 the momentum buffer grows without bound
    "weight_decay": (0.0, math.inf),
    "initial_scale": (0.0, math.inf),
    "corrected_weight_decay": (0.0, math.inf),  # η_max, also > 0: checked in validation
}


def is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def is_schedule(x: Any) -> bool:
    return callable(x) and not isinstance(x, (jax.Array, np.ndarray))


def is_constant(x: Any) -> bool:
    """A Python or NumPy number (or concrete NumPy array): a compile-time constant."""
    return isinstance(x, (numbers.Real, np.generic, np.ndarray))


def check(name: str, value: Any) -> None:
    """Raises for a hyperparameter of the wrong type or a concrete value out of range."""
    if is_schedule(value):
        return  # its values are checked (for shape) when it is called: see schedule_value
    if isinstance(value, bool) or not isinstance(
        value, (numbers.Real, jax.Array, np.ndarray, np.generic)
    ):
        raise TypeError(
            f"{name} must be a real number, a scalar array or a schedule (a callable "
            f"of the step count); got {value!r} of type {type(value).__name__}."
        )
    untyped: Any = value  # a number or an array: jnp.ndim takes either
    if is_tracer(value):
        if jnp.ndim(untyped) != 0:
            raise ValueError(f"{name} must be a scalar; got shape {jnp.shape(untyped)}.")
        return  # values of tracers are unknown here
    array = np.asarray(value)
    if array.ndim != 0:
        raise ValueError(f"{name} must be a scalar; got an array of shape {array.shape}.")
    # bfloat16 is no NumPy number; a complex scalar with no imaginary part is what
    # optax.inject_hyperparams makes of a number for complex params.
    if not (jnp.issubdtype(array.dtype, jnp.integer) or jnp.issubdtype(array.dtype, jnp.inexact)):
        raise TypeError(f"{name} must be real; got dtype {array.dtype}.")
    if np.iscomplexobj(array) and array.imag != 0:
        raise TypeError(f"{name} must be real; got {array.item()} (dtype {array.dtype}).")
    low, high = LIMITS[name]
    number = float(array.real)
    if not (low <= number <= high and math.isfinite(number)):  # also catches NaN
        raise ValueError(f"{name} must be a finite number in [{low}, {high}]; got {number}.")


def is_concrete_zero(value: Any) -> bool:
    return (
        not callable(value)
        and not is_tracer(value)
        and not isinstance(value, bool)
        and np.ndim(value) == 0
        and float(np.asarray(value).real) == 0.0
    )


def as_constant(value: Any) -> float:
    """A constant hyperparameter as a Python float (-0.0 as 0.0)."""
    return float(np.real(value)) + 0.0


def schedule_value(name: str, value: Any) -> Any:
    """Raises unless a schedule's ``value`` is a real scalar; returns it."""
    if isinstance(value, bool) or not (
        isinstance(value, numbers.Real)
        or (
            isinstance(value, (jax.Array, np.ndarray, np.generic))
            and jnp.issubdtype(value.dtype, jnp.number)
            and not jnp.iscomplexobj(value)
        )
    ):
        raise TypeError(
            f"the schedule for {name} must return a real scalar; got {value!r} of type "
            f"{type(value).__name__}."
        )
    untyped: Any = value  # a number or an array: jnp.ndim takes either
    if jnp.ndim(untyped) != 0:
        raise ValueError(
            f"the schedule for {name} must return a scalar; got shape {jnp.shape(untyped)}."
        )
    return value


# ---------------------------------------------------------------------------
# Derived values.


Scalar = float | jax.Array  # a Python float (a compile-time constant) or a real JAX scalar


class Hyperparameters(NamedTuple):
    """One step's hyperparameters, and what the rule derives from them.

    Each is a Python float (a constant, derived in float64) or a real JAX scalar (an
    array or a schedule's value, used in its own dtype, as optax does). Those of
    features that are off keep their defaults, which the rule never reads.
    """

    decay: Scalar  # ρ
    one_minus_decay: Scalar  # 1 - ρ
    eps: Scalar  # ε
    learning_rate: Scalar = 1.0  # η (scale_by_rms applies none)
    momentum: Scalar = 0.0  # μ
    weight_decay: Scalar = 0.0  # λ
    lr_weight_decay: Scalar = 0.0  # ηλ


def derive(values: Mapping[str, Scalar]) -> Hyperparameters:
    """The hyperparameters, by name, with what the rule computes from them, for one step.

    ``values`` maps names to Python floats (constants) or real JAX scalars (arrays,
    schedules' values). ``one_minus_decay`` (1 - ρ) and, where weight decay is on,
    ``lr_weight_decay`` (ηλ) are Python floats, computed in float64, where their inputs
    are; arrays otherwise. (log ρ, for the bias correction, is taken there.)
    """
    rho = values["decay"]
    if isinstance(rho, float):
        one_minus_decay: Scalar = 1.0 - rho  # float64: the decay's own precision
    else:
        one_minus_decay = 1 - rho  # float32 arithmetic on a float32 decay, as optax
    lr, wd = values.get("learning_rate"), values.get("weight_decay")
    peak = values.get("corrected_weight_decay")  # η_max: the decay is η²λ/η_max
    return Hyperparameters(
        decay=rho,
        one_minus_decay=one_minus_decay,
        eps=values["eps"],
        learning_rate=1.0 if lr is None else lr,
        momentum=values.get("momentum", 0.0),
        weight_decay=0.0 if wd is None else wd,
        lr_weight_decay=(
            0.0 if lr is None or wd is None else lr * wd * (1.0 if peak is None else lr / peak)
        ),  # float64 for numbers
    )


def leaky_average(old: jax.Array, new: jax.Array, h: Hyperparameters) -> jax.Array:
    """(1 - ρ)·new + ρ·old.

    For a constant decay, as ``old + (1 - ρ)(new - old)``, or from the other end as
    ``new + ρ(old - new)`` for ρ < 1/2: one weight, computed in float64 and rounded
    once, where two separately rounded weights would not sum to 1 (at ρ = 0.9999
    their float32 sum is 1 - 1.7e-8, a relative bias of 1.7e-4 in the average's
    fixed point); from the nearer end, so that the rounding is relative to the result
    (ρ = 0 gives ``new``, ρ = 1 ``old``, exactly). For an array decay, optax's form.
    """
    c, rho = h.one_minus_decay, h.decay
    if isinstance(c, float):
        return old + c * (new - old) if c <= 0.5 else new + rho * (old - new)
    return c * new + rho * old


def bias_correction(t: jax.Array, dtype: Any, h: Hyperparameters) -> jax.Array:
    """1 - ρᵗ, as -expm1(t log ρ) with log ρ = log1p(-(1 - ρ)): no cancellation for ρ
    near 1 (1 - ρ¹ from a float32 ρ keeps ρ's rounding error, relatively magnified)."""
    c = h.one_minus_decay
    if isinstance(c, float):  # log ρ in float64 on the host
        log_decay: Scalar = math.log1p(-c) if c < 1 else -math.inf
    else:
        log_decay = jnp.log1p(-c)
    return -jnp.expm1(t.astype(dtype) * log_decay)


def momentum_average(b: jax.Array, x: jax.Array, h: Hyperparameters, exact_gain: bool) -> jax.Array:
    """x + μ·b, the momentum buffer's step.

    With ``exact_gain`` and a constant μ, as ``b + (x − (1 − μ)·b)`` with 1 − μ computed in
    float64 and rounded once: the buffer's gain 1/(1 − μ) is then off by that one rounding
    (1.5e-8 at 0.9), where a float32 μ makes it (μ₃₂ − μ)/(1 − μ) off (−2.4e-7 at 0.9,
    +9.5e-7 at 0.99), a bias every step repeats in the same direction while the rest of
    the rounding is noise. The rule asks for it with bias correction, which no framework
    preset uses; otherwise, and for an array μ, ``x + μ·b``, as optax, PyTorch and Keras
    compute it.
    """
    mu = h.momentum
    if exact_gain and isinstance(mu, float):
        return b + (x - (1.0 - mu) * b)
    return x + mu * b
