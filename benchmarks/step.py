"""The step every benchmark times, ``jit(update + apply_updates)``, and XLA's accounting of
it (bytes accessed, flops, compiled memory): what ``tests/test_cost.py`` tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax


def jitted_step(tx: optax.GradientTransformation, name: str = "step") -> Callable:
    """``jit(update + apply_updates)`` with params and state donated; a fresh jit each call
    (``name``: the function's, which names XLA's module)."""

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    step.__name__ = name
    return jax.jit(step, donate_argnums=(0, 1))


def compile_step(tx: optax.GradientTransformation, params: Any) -> Any:
    """The compiled step for ``params`` (arrays or shapes), its state from ``tx.init``."""
    state = jax.eval_shape(tx.init, params)
    return jitted_step(tx).lower(params, state, params).compile()


def xla_cost(compiled: Any) -> dict[str, float]:
    """XLA's bytes accessed and flops, and the compiled memory sizes, of a compiled function."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0]
    memory = compiled.memory_analysis()
    return {
        "bytes_accessed": float(cost.get("bytes accessed", float("nan"))),
        "flops": float(cost.get("flops", float("nan"))),
        "temp_bytes": int(memory.temp_size_in_bytes),
        "argument_bytes": int(memory.argument_size_in_bytes),
        "output_bytes": int(memory.output_size_in_bytes),
    }
