"""The variants the benchmarks measure, and the storage choices of the optimizer state.

A variant is our options by name; ``optax.rmsprop`` gets the same ones but the state dtype.
``STORAGE`` is the one table of what ``nu_dtype`` may be, named as the results name it; the
tests (``tests/helpers.py``) read it from here too.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax

import optax_rmsprop

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "centered": {"centered": True},
    "centered+momentum": {"centered": True, "momentum": 0.9},
    "eps_outside": {"eps_in_sqrt": False},
    "bias_correction": {"bias_correction": True},
    "bias_correction+eps_outside": {"bias_correction": True, "eps_in_sqrt": False},
    "int8": {"nu_dtype": "int8"},
    "bf16": {"nu_dtype": jnp.bfloat16},
    # every buffer in 8 bits: v, and b (and m̄) in signed codes
    "int8+momentum": {"momentum": 0.9, "nu_dtype": "int8", "mu_dtype": "int8"},
    "int8+centered+momentum": {
        "centered": True,
        "momentum": 0.9,
        "nu_dtype": "int8",
        "mu_dtype": "int8",
    },
}
# our options optax.rmsprop lacks: its reference is float32 state
STATE_ONLY = ("nu_dtype", "mu_dtype")
# the variants run.py times and tests/test_cost.py compiles, in the tables' order
SUITE = (
    "plain",
    "momentum",
    "centered+momentum",
    "int8",
    "bf16",
    "int8+momentum",
    "int8+centered+momentum",
)


def transformations(
    variant: str, learning_rate: float = 1e-3, **hyper: float
) -> dict[str, optax.GradientTransformation]:
    """Ours and ``optax.rmsprop`` for a variant, with the same hyperparameters."""
    options = VARIANTS[variant]
    reference = {k: v for k, v in options.items() if k not in STATE_ONLY}
    return {
        "ours": optax_rmsprop.rmsprop(learning_rate, **hyper, **options),
        "optax": optax.rmsprop(learning_rate, **hyper, **reference),
    }


STORAGE: dict[str, Any] = {
    "default": None,  # the params' dtype, at least float32
    "float32": jnp.float32,
    "bfloat16": jnp.bfloat16,
    "int8": optax_rmsprop.Int8(),  # stochastic rounding; leaves of 4096 values or more
    "int8-nearest": optax_rmsprop.Int8(rounding="nearest"),
}
