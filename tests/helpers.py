"""What the test files share: the variants of the rule, the storage choices, the presets,
its float64 oracle, one loop that runs a transformation, one way to compare trees, the trees
and the problems they run on, and one distance of a trajectory to the exact one.

The test modules import it as ``helpers`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks.variants import STORAGE
from optax_rmsprop import Int8, presets, scale_by_rms

# ---------------------------------------------------------------------------
# Schedules: functions of the step count t - 1, at module level so that equal
# configurations share one compiled update. Plain arithmetic, so that the oracle can call
# them with a Python int.


def lr_schedule(count):
    return 0.05 * 0.9**count


def decay_schedule(count):  # 0.5 at the first step, rising towards 0.95
    return 0.95 - 0.45 * 0.7**count


def momentum_schedule(count):  # 0.4 at the first step, rising towards 0.9
    return 0.9 - 0.5 * 0.8**count


def weight_decay_schedule(count):
    return 0.2 / (1 + count)


def eps_schedule(count):  # comparable to v early on, so a wrong count shows
    return 1e-2 * 0.5**count


def decays_matrices(params):
    """A ``weight_decay_mask`` callable: weight decay on the 2-D leaves only."""
    return jax.tree.map(lambda p: jnp.ndim(p) == 2, params)


SCHEDULES = dict(
    learning_rate=lr_schedule,
    decay=decay_schedule,
    momentum=momentum_schedule,
    weight_decay=weight_decay_schedule,
    eps=eps_schedule,
)

# ---------------------------------------------------------------------------
# The variants: keyword arguments of ``rmsprop`` besides the learning rate (which a
# variant sets only as a schedule). The masks are written for ``make_tree``'s tree.

INT8_SMALL = Int8(block_size=4, min_size=8)  # 8-bit blocks of 4 for leaves of 8 values or more
MASK = {"dense": {"w": True, "b": False}, "scale": True, "z": False}
MASK_PREFIX = {"dense": True, "scale": False, "z": True}

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "eps_outside": dict(eps_in_sqrt=False),
    "eps_zero": dict(eps=0.0),
    "initial_scale": dict(initial_scale=1.0),
    "decay_zero": dict(decay=0.0),
    "decay_one-initial_scale": dict(decay=1.0, initial_scale=1.0),
    "centered": dict(centered=True),
    "centered-eps_outside": dict(centered=True, eps_in_sqrt=False),
    "bias_correction": dict(bias_correction=True),
    "bias_correction-eps_outside": dict(bias_correction=True, eps_in_sqrt=False),
    "centered-bias_correction-initial_scale": dict(
        centered=True, bias_correction=True, initial_scale=1.0
    ),
    "centered-bias_correction-eps_outside-initial_scale": dict(
        centered=True, bias_correction=True, eps_in_sqrt=False, initial_scale=1.0
    ),
    "decay_schedule-eps_schedule": dict(decay=decay_schedule, eps=eps_schedule),
    "momentum": dict(momentum=0.9),
    "momentum_zero": dict(momentum=0.0),
    "momentum-nesterov": dict(momentum=0.9, nesterov=True),
    "momentum-nesterov-decay_0.999": dict(momentum=0.9, nesterov=True, decay=0.999),
    "momentum-lr_outside_momentum": dict(momentum=0.9, lr_in_momentum=False),
    "momentum-bias_correction": dict(momentum=0.9, bias_correction=True),
    "momentum-lr_schedule": dict(momentum=0.9, learning_rate=lr_schedule),
    "momentum-lr_schedule-lr_outside_momentum": dict(
        momentum=0.9, learning_rate=lr_schedule, lr_in_momentum=False
    ),
    "momentum-nesterov-lr_schedule-lr_outside_momentum": dict(
        momentum=0.9, nesterov=True, learning_rate=lr_schedule, lr_in_momentum=False
    ),
    "centered-momentum": dict(centered=True, momentum=0.9),
    "centered-momentum-eps_outside": dict(centered=True, momentum=0.9, eps_in_sqrt=False),
    "centered-momentum-nesterov-bias_correction": dict(
        centered=True, momentum=0.9, nesterov=True, bias_correction=True
    ),
    "centered-momentum-nesterov-bias_correction-initial_scale": dict(
        centered=True, momentum=0.9, nesterov=True, bias_correction=True, initial_scale=1.0
    ),
    # Every buffer (v, m̄, b) and the params (weight decay), all hyperparameters numbers.
    "centered-momentum-nesterov-bias_correction-weight_decay_coupled-initial_scale": dict(
        centered=True,
        momentum=0.9,
        nesterov=True,
        bias_correction=True,
        weight_decay=0.01,
        initial_scale=0.1,
    ),
    "weight_decay_coupled": dict(weight_decay=0.1),
    "weight_decay_coupled-mask": dict(weight_decay=0.1, weight_decay_mask=MASK),
    "weight_decay_decoupled-mask_prefix": dict(
        weight_decay=0.1, decoupled_weight_decay=True, weight_decay_mask=MASK_PREFIX
    ),
    "weight_decay_decoupled-mask_fn": dict(
        weight_decay=0.1, decoupled_weight_decay=True, weight_decay_mask=decays_matrices
    ),
    "weight_decay_decoupled-momentum": dict(
        weight_decay=0.1, decoupled_weight_decay=True, momentum=0.9
    ),
    "centered-momentum-weight_decay_decoupled": dict(
        centered=True, momentum=0.9, weight_decay=0.1, decoupled_weight_decay=True
    ),
    "momentum-caution": dict(momentum=0.9, caution=True),
    "momentum-caution-lr_schedule-lr_outside_momentum-weight_decay_corrected": dict(
        momentum=0.9,
        caution=True,
        learning_rate=lr_schedule,
        lr_in_momentum=False,
        weight_decay=0.1,
        decoupled_weight_decay=True,
        corrected_weight_decay=0.1,
    ),
    "centered-momentum-caution-nu_int8": dict(
        centered=True, momentum=0.9, caution=True, nu_dtype=INT8_SMALL
    ),
    "maximize": dict(maximize=True),
    "maximize-weight_decay_coupled": dict(maximize=True, weight_decay=0.1),
    "schedules-momentum-weight_decay_decoupled": dict(**SCHEDULES, decoupled_weight_decay=True),
    "schedules-centered-bias_correction-nesterov-eps_outside-initial_scale": dict(
        **SCHEDULES,
        centered=True,
        bias_correction=True,
        nesterov=True,
        eps_in_sqrt=False,
        initial_scale=1.0,
    ),
    "split_complex": dict(split_complex=True),
    "centered-split_complex": dict(centered=True, split_complex=True),
    "centered-momentum-split_complex": dict(centered=True, momentum=0.9, split_complex=True),
    "nu_bfloat16": dict(nu_dtype=jnp.bfloat16),
    "centered-nu_bfloat16-mu_bfloat16": dict(
        centered=True, nu_dtype=jnp.bfloat16, mu_dtype=jnp.bfloat16
    ),
    "nu_int8": dict(nu_dtype=INT8_SMALL),
    "centered-momentum-mu_bfloat16": dict(centered=True, momentum=0.9, mu_dtype=jnp.bfloat16),
    "centered-momentum-nu_int8-mu_bfloat16": dict(
        centered=True, momentum=0.9, nu_dtype=INT8_SMALL, mu_dtype=jnp.bfloat16
    ),
    "centered-momentum-nu_int8-mu_int8": dict(
        centered=True, momentum=0.9, nu_dtype=INT8_SMALL, mu_dtype=INT8_SMALL
    ),
    "momentum-nesterov-mu_int8": dict(momentum=0.9, nesterov=True, mu_dtype=INT8_SMALL),
    # Every flag and every hyperparameter a schedule; a mask that fits any tree. v₀ = 10
    # keeps the centered variance v̂ − m̂² of the first steps away from 0, where it would
    # amplify the last-place differences of two compilations.
    "everything": dict(
        **SCHEDULES,
        centered=True,
        bias_correction=True,
        initial_scale=10.0,
        eps_in_sqrt=False,
        nesterov=True,
        lr_in_momentum=False,
        maximize=True,
        weight_decay_mask=decays_matrices,
    ),
}


def variants(*names: str) -> dict[str, dict[str, Any]]:
    """The named entries of ``VARIANTS`` (all of them when no name is given)."""
    return {name: VARIANTS[name] for name in names or VARIANTS}


def cases(*names: str) -> list[Any]:
    """``pytest.param(kwargs, id=name)`` for the named variants."""
    return [pytest.param(kwargs, id=name) for name, kwargs in variants(*names).items()]


def storage(*names: str) -> dict[str, Any]:
    """The named storage choices (``nu_dtype``/``mu_dtype`` values) of ``STORAGE``, which
    the benchmarks measure too; all of them when no name is given."""
    return {name: STORAGE[name] for name in names or STORAGE}


# ---------------------------------------------------------------------------
# The presets, each with the options that exercise most of it. ``optax`` transformations
# (gluon's clipping) wrap the rule in some of them.

PRESETS: dict[str, Callable[[], optax.GradientTransformation]] = {
    "torch": lambda: presets.torch(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01),
    "keras": lambda: presets.keras(learning_rate=0.01, momentum=0.9, weight_decay=0.01),
    "tf_keras-legacy": lambda: presets.tf_keras(legacy=True),
    "tf1": lambda: presets.tf1(0.01, momentum=0.9, centered=True),
    "gluon": lambda: presets.gluon(0.01, centered=True, wd=0.01),
    "gluon-rescaled-clipped": lambda: presets.gluon(
        0.01, rescale_grad=0.5, clip_gradient=1.0, clip_weights=2.0, wd=0.01
    ),
    "paddle": lambda: presets.paddle(0.01),
    "chainer": lambda: presets.chainer(),
    "chainer_graves": lambda: presets.chainer_graves(),
    "d2l": lambda: presets.d2l(0.01, 0.9),
    "timm": lambda: presets.timm(
        0.01, momentum=0.9, weight_decay=1e-5, decoupled_decay=True, caution=True
    ),
    "scale_by_rms": lambda: scale_by_rms(centered=True),
}


def preset_makers(*names: str) -> dict[str, Callable[[], optax.GradientTransformation]]:
    """The named entries of ``PRESETS`` (all of them when no name is given)."""
    return {name: PRESETS[name] for name in names or PRESETS}


def with_lr(kwargs: dict[str, Any], learning_rate: Any = 0.05, **more: Any) -> dict[str, Any]:
    """``rmsprop``'s arguments: the learning rate unless the variant has a schedule."""
    return {"learning_rate": learning_rate, **more, **kwargs}


# ---------------------------------------------------------------------------
# Trees.

TREE_SHAPES = {"dense": {"w": (3, 4), "b": (4,)}, "scale": (), "z": (2,)}


def make_tree(seed: Any = 0, dtype: Any = np.float32, scale: float = 1.0, z_dtype: Any = None):
    """A small nested tree of normal numbers: a matrix ``dense/w`` (12 values: 8-bit with
    ``INT8_SMALL``), a vector, a scalar and a vector ``z`` (``z_dtype``: complex or not)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def leaf(shape, dtype):
        x = rng.normal(0.0, scale, shape)
        if np.issubdtype(dtype, np.complexfloating):
            x = x + 1j * rng.normal(0.0, scale, shape)
        return np.asarray(x).astype(dtype)

    return {
        "dense": {"w": leaf((3, 4), dtype), "b": leaf((4,), dtype)},
        "scale": leaf((), dtype),
        "z": leaf((2,), z_dtype or dtype),
    }


def stack(trees: list[Any]) -> Any:
    """A list of trees of one structure as one tree of stacked NumPy arrays."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


# ---------------------------------------------------------------------------
# Running a transformation.


class Trajectory(NamedTuple):
    """θ₀ … θ_T, u₁ … u_T and the state after each step (``state``: the last one)."""

    params: list[Any]
    updates: list[Any]
    states: list[Any]
    state: Any


def run(
    tx: optax.GradientTransformation,
    params: Any,
    grads: list[Any],
    *,
    update: Callable[..., Any] | None = None,
    apply: bool = True,
) -> Trajectory:
    """``tx`` over the gradients g₁ … g_T from ``tx.init(params)``, in a Python loop.

    ``update`` replaces ``tx.update`` (``jax.jit(tx.update)``, say); with ``apply=False`` the
    params stay θ₀. Traceable: :func:`run_jitted` runs it as one compiled program.
    """
    update = update or tx.update
    state = tx.init(params)
    trajectory = Trajectory([params], [], [], state)
    for g in grads:
        u, state = update(g, state, params)
        params = optax.apply_updates(params, u) if apply else params
        trajectory.params.append(params)
        trajectory.updates.append(u)
        trajectory.states.append(state)
    return trajectory._replace(state=state)


def vmapped(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` over a leading batch axis of the params, the gradients and the state."""
    return optax.GradientTransformation(jax.vmap(tx.init), jax.vmap(tx.update))


def run_jitted(
    tx: optax.GradientTransformation, params: Any, grads: list[Any], **kwargs: Any
) -> Trajectory:
    """:func:`run` compiled as one program (``jax.jit``, ``tx`` static)."""
    return jax.jit(run, static_argnums=0, static_argnames="apply")(tx, params, grads, **kwargs)


def jitted(variant: Any) -> bool:
    """Whether a ``chex.variants`` test (``self.variant``) runs under ``jax.jit`` now."""
    return variant.type is chex.ChexVariantType.WITH_JIT


# ---------------------------------------------------------------------------
# Comparing trees.


def _bits(x: Any) -> tuple[Any, ...]:
    x = np.asarray(x)
    return x.dtype, x.shape, x.tobytes()


def assert_trees_close(
    actual: Any,
    expected: Any,
    rtol: float = 0.0,
    atol: float = 0.0,
    *,
    leaf_scale: bool = False,
    same_dtypes: bool = True,
    codes: tuple[int, float] = (0, 0.0),
    what: str = "",
) -> None:
    """The same structure, shapes and (``same_dtypes``) dtypes, and close values.

    Floating leaves: ``|a − e| <= atol + rtol·|e|``, plus ``rtol·max|e|`` of the leaf with
    ``leaf_scale`` (where entries cancel to ~0, only an error relative to the leaf's scale
    means anything); ``rtol = atol = 0`` asks for the same bits. Integer leaves (8-bit
    codes): ``codes = (d, f)`` lets at most a fraction ``f`` of them differ, by at most ``d``.
    """
    chex.assert_trees_all_equal_structs(actual, expected)
    chex.assert_trees_all_equal_shapes(actual, expected)
    if same_dtypes:
        chex.assert_trees_all_equal_dtypes(actual, expected)
    leaves = zip(jax.tree.leaves_with_path(actual), jax.tree.leaves(expected), strict=True)
    for (path, a), e in leaves:
        where = f"{what}{jax.tree_util.keystr(path)}"
        if not jnp.issubdtype(jnp.result_type(e), jnp.inexact):
            diff = np.abs(np.asarray(a, np.int64) - np.asarray(e, np.int64))
            largest, fraction = codes
            assert diff.max(initial=0) <= largest, f"{where}: codes {diff.max()} apart"
            assert (diff > 0).mean() <= fraction if diff.size else True, where
            continue
        if rtol == 0 and atol == 0 and same_dtypes:
            if _bits(a) != _bits(e):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(e), err_msg=where)
                raise AssertionError(f"{where}: equal values, different bits (a signed zero?)")
            continue
        a, e = np.asarray(a, np.complex128), np.asarray(e, np.complex128)
        tolerance = atol
        if leaf_scale:
            tolerance += rtol * np.max(np.abs(e[np.isfinite(e)]), initial=0.0)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=tolerance, err_msg=where)


# ---------------------------------------------------------------------------
# The exact rule.


class Exact(NamedTuple):
    """The oracle's trajectory: θ₀ … θ_T, u₁ … u_T, and the buffers after step T."""

    params: list[Any]
    updates: list[Any]
    nu: Any
    mu: Any
    momentum: Any


def decayed_leaves(mask: Any, params: Any) -> list[bool]:
    """Per leaf of ``params``, whether ``mask`` (None, a tree, a prefix of the tree or a
    callable of the params, as ``optax.masked`` reads it) selects it."""
    if mask is None:
        return [True] * len(jax.tree.leaves(params))
    if callable(mask):
        mask = mask(params)
    spread = jax.tree.map(lambda m, sub: jax.tree.map(lambda _: bool(m), sub), mask, params)
    return jax.tree.leaves(spread)


def oracle(
    gradient: Callable[[int, Any], Any],
    params: Any,
    steps: int,
    *,
    learning_rate: Any,
    decay: Any = 0.9,
    eps: Any = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: Any = None,
    nesterov: bool = False,
    bias_correction: bool = False,
    weight_decay: Any = None,
    decoupled_weight_decay: bool = False,
    corrected_weight_decay: Any = None,
    weight_decay_mask: Any = None,
    lr_in_momentum: bool = True,
    caution: bool = False,
    maximize: bool = False,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> Exact:
    """RMSProp from the equations of :func:`optax_rmsprop.rmsprop`'s docstring ("doc"
    below), in float64 / complex128 NumPy, one leaf at a time.

    ``gradient(t, θ_{t-1})`` gives g_t as a tree like ``params`` (θ₀): a fixed sequence, or
    the gradient of a problem at the current iterate. A hyperparameter is a number or a
    schedule of t - 1. The storage dtypes are ignored: the exact rule stores nothing
    rounded.
    """
    del nu_dtype, mu_dtype

    def at(h, count):  # doc: "each a number or a schedule of the step count t-1"
        return float(h(count)) if callable(h) else float(h)

    def wide(x):
        return np.asarray(x, np.complex128 if np.iscomplexobj(x) else np.float64)

    leaves, treedef = jax.tree.flatten(params)
    theta = [wide(x) for x in leaves]
    decays = decayed_leaves(weight_decay_mask, params)
    v = [np.full(x.shape, float(initial_scale)) for x in theta]  # doc: v_0
    m = [np.zeros_like(x) for x in theta]  # doc: m̄_0 = 0
    b = [np.zeros_like(x) for x in theta]  # optax's trace: b_0 = 0
    path, history = [treedef.unflatten(theta)], []
    for t in range(1, steps + 1):
        count = t - 1
        lr, rho, e = at(learning_rate, count), at(decay, count), at(eps, count)
        lam = 0.0 if weight_decay is None else at(weight_decay, count)
        mu = None if momentum is None else at(momentum, count)
        grads = treedef.flatten_up_to(gradient(t, treedef.unflatten(theta)))
        u_t = []
        for k, g in enumerate(grads):
            g = wide(g)
            decayed = lam != 0 and decays[k]
            if maximize:
                g = -g  # doc line 1 (PyTorch: before weight decay)
            if decayed and not decoupled_weight_decay:
                g = g + lam * theta[k]  # doc line 2: coupled (L2) weight decay
            v[k] = (1 - rho) * np.abs(g) ** 2 + rho * v[k]  # doc line 3
            if centered:
                m[k] = (1 - rho) * g + rho * m[k]  # doc line 4
            v_hat, m_hat = v[k], m[k]
            if bias_correction:
                v_hat, m_hat = v[k] / (1 - rho**t), m[k] / (1 - rho**t)  # doc line 5
            sigma2 = np.maximum(v_hat - np.abs(m_hat) ** 2, 0) if centered else v_hat  # line 6
            if eps_in_sqrt:
                s = g / np.sqrt(sigma2 + e)  # doc line 7: optax, Keras, TF1, MXNet
            else:
                s = g / (np.sqrt(sigma2) + e)  # doc line 7: PyTorch
            if mu is None:
                u = -lr * s  # doc line 10
            elif lr_in_momentum:
                b[k] = -lr * s + mu * b[k]  # doc line 8: optax's trace
                u = -lr * s + mu * b[k] if nesterov else b[k]
            else:
                b[k] = s + mu * b[k]  # doc line 9: PyTorch
                u = -lr * (s + mu * b[k]) if nesterov else -lr * b[k]
            if caution:  # doc line 11: φ = [Re(ū g) < 0], u φ / max(mean φ, 1e-3)
                phi = ((np.conj(u) * g).real < 0).astype(np.float64)
                u = u * phi / max(phi.mean() if phi.size else 0.0, 1e-3)
            if decayed and decoupled_weight_decay:
                peak = None if corrected_weight_decay is None else at(corrected_weight_decay, count)
                scale = lr if peak is None else lr * lr / peak  # doc line 12 (corrected)
                u = u - scale * lam * theta[k]  # doc line 12
            u_t.append(u)
        theta = [x + u for x, u in zip(theta, u_t, strict=True)]  # optax.apply_updates
        path.append(treedef.unflatten(theta))
        history.append(treedef.unflatten(u_t))
    return Exact(path, history, *(treedef.unflatten(x) for x in (v, m, b)))


def fixed(grads: list[Any]) -> Callable[[int, Any], Any]:
    """The gradient function of a fixed sequence g₁ … g_T."""
    return lambda t, theta: grads[t - 1]


# ---------------------------------------------------------------------------
# Problems.


class LeastSquares(NamedTuple):
    """0.5 |A x − b|² / n for each seed (the leading axis), and where to start."""

    a: np.ndarray
    b: np.ndarray
    x0: np.ndarray

    def gradient(self, x: Any, xp: Any = np, a: Any = None, b: Any = None) -> Any:
        """∇ at ``x`` for each seed, in ``xp`` (NumPy, jnp, torch) and ``a``, ``b``'s dtype."""
        a = self.a if a is None else a
        b = self.b if b is None else b
        residual = xp.einsum("snd,sd->sn", a, x) - b
        return xp.einsum("snd,sn->sd", a, residual) / a.shape[1]


def least_squares(seeds: int = 16, n: int = 64, d: int = 16, spread: float = 1.0) -> LeastSquares:
    """Columns scaled by e^(spread·N(0, 1)), over e^±2·spread; each coordinate of x₀ 3 to 5
    away from the minimum. The same draws, in the same order, whatever ``spread``."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(seeds, n, d)) * np.exp(spread * rng.normal(size=(seeds, 1, d)))
    b = rng.normal(size=(seeds, n))
    minimum = np.stack(
        [np.linalg.lstsq(a_, b_, rcond=None)[0] for a_, b_ in zip(a, b, strict=True)]
    )
    x0 = minimum + rng.choice([-1, 1], size=(seeds, d)) * rng.uniform(3, 5, size=(seeds, d))
    return LeastSquares(a, b, x0)


def distances(path: Any, exact: Any) -> np.ndarray:
    """Per problem, how far a trajectory θ₀ … θ_T strays from the exact one:
    ``max_t |θ_t − θ*_t|∞ / max_t |θ*_t|∞``.

    Each of ``path`` and ``exact`` is a (T + 1, S, d) array, S problems side by side, or a
    tree of (T + 1, ...) leaves, one problem (S = 1); real or complex.
    """

    def by_problem(path: Any) -> np.ndarray:  # (T + 1, S, d), in float64 or complex128
        if isinstance(path, np.ndarray) and path.ndim == 3:
            leaves = [path]
        else:
            leaves = [np.reshape(x, (np.shape(x)[0], 1, -1)) for x in jax.tree.leaves(path)]
        joined = np.concatenate([np.asarray(x) for x in leaves], axis=2)
        return joined.astype(np.result_type(joined.dtype, np.float64))

    path, exact = by_problem(path), by_problem(exact)
    return np.max(np.abs(path - exact), axis=(0, 2)) / np.max(np.abs(exact), axis=(0, 2))


def dense_problem(sign: float = 1.0, seed: int = 0) -> tuple[Any, Callable[[Any], Any]]:
    """A Linear layer's params in JAX's layout and the gradient of ``sign * ½ mean ‖X w + b − Y‖²``,
    in float32 NumPy: what the framework tests feed torch, Keras and our transformation alike."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    w_true = rng.normal(size=(4, 3))
    y = (x @ w_true + 1.0 + 0.1 * rng.normal(size=(16, 3))).astype(np.float32)
    params0 = {
        "w": (w_true + 3 * rng.choice([-1.0, 1.0], size=(4, 3))).astype(np.float32),
        "b": np.full(3, -2.0, np.float32),
    }

    def grad(p):
        r = x @ p["w"] + p["b"] - y
        return {
            "w": np.float32(sign) * (x.T @ r) / np.float32(len(x)),
            "b": np.float32(sign) * r.mean(axis=0),
        }

    return params0, grad


def complex_problem(seed: int = 1) -> tuple[Any, Callable[[Any], Any]]:
    """``mean |A z − y|²`` in complex64; the gradient as torch defines it, 2 Aᴴ(A z − y) / n."""
    rng = np.random.default_rng(seed)

    def cnormal(*shape):
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)

    a, z_true = cnormal(8, 4), cnormal(4)
    y = a @ z_true + np.complex64(0.1) * cnormal(8)
    signs = rng.choice([-1.0, 1.0], size=(2, 4))
    params0 = {"z": (z_true + 3 * (signs[0] + 1j * signs[1])).astype(np.complex64)}

    def grad(p):
        return {"z": np.complex64(2 / len(a)) * (a.conj().T @ (a @ p["z"] - y))}

    return params0, grad


def is_finite(tree: Any) -> bool:
    """Every inexact leaf of ``tree`` is finite."""
    return all(
        np.all(np.isfinite(np.asarray(x, np.complex128 if jnp.iscomplexobj(x) else np.float64)))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    )


def pieces(*texts: str) -> str:
    """A ``match`` pattern requiring every text, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(text)})" for text in texts)


# ---------------------------------------------------------------------------
# timm.optim, loaded without timm's package __init__: that imports torchvision, whose PyPI
# builds do not load beside a CPU build of torch, and timm.optim's modules need only torch.
# CI installs timm with ``pip install --no-deps`` (.ci/run).


@functools.cache
def timm_optim() -> types.SimpleNamespace:
    """timm's optimizer classes (``RMSpropTF``, ``Lion``...) and its ``version``; skips the
    test, saying how to install timm, where it is absent."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("timm is not installed: pip install --no-deps timm (it needs only torch here)")
    folder = Path(spec.submodule_search_locations[0]) / "optim"
    package = types.ModuleType("_timm_optim")
    package.__path__ = [str(folder)]
    sys.modules.setdefault("_timm_optim", package)
    import torch

    found: dict[str, Any] = {}
    for file in sorted(folder.glob("*.py")):
        if file.stem in ("__init__", "_optim_factory", "_param_groups", "optim_factory"):
            continue  # the factory and the param groups import timm.models
        module = importlib.import_module(f"_timm_optim.{file.stem}")
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, torch.optim.Optimizer)
                and value.__module__ == module.__name__
            ):
                found[name] = value
    return types.SimpleNamespace(version=importlib.metadata.version("timm"), **found)
