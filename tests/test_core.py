"""Tests of the update rule: ``rmsprop``, ``scale_by_rms`` and ``RMSPropState``.

Three kinds of reference, from the most to the least independent of our code:

* ``oracle``, a plain NumPy transcription of the equations in the docstring of
  :func:`optax_rmsprop.rmsprop` (and of ``../shared/REFERENCE.md``), each line citing
  where it comes from, run in float64;
* optax itself (``optax.rmsprop``, ``optax.adam``, ``optax.scale_by_rms``,
  ``optax.scale_by_stddev``), over every combination of ``optax.rmsprop``'s arguments;
* properties that need no reference: dtypes, shapes, validation messages, the clamp.

Every configuration compiles once (schedules are module-level functions, so equal
configurations share one compiled update); trees are small.
"""

from __future__ import annotations

import itertools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optax_rmsprop import RMSPropState, rmsprop, scale_by_rms

STEPS = 30  # length of the trajectories compared with the oracle
OPTAX_STEPS = 20  # length of the trajectories compared with optax


@pytest.fixture
def x64():
    """float64 for the duration of one test; x64 is global, so it is restored after."""
    with jax.enable_x64(True):
        yield


# ---------------------------------------------------------------------------
# Schedules: functions of the step count t - 1. Module-level, so each configuration
# using them compiles once. Plain arithmetic, so the oracle calls them with a Python int.


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


def decays_matrices(params):  # a weight_decay_mask callable: decay the 2-D leaves only
    return jax.tree.map(lambda p: jnp.ndim(p) == 2, params)


# ---------------------------------------------------------------------------
# Trees and trajectories.


def make_tree(rng, dtypes=None, scale=1.0):
    """A small nested tree: a matrix, a vector, a scalar and a vector ``z`` (complex or not).

    ``dtypes`` maps paths to dtypes (default float32).
    """
    shapes = {"dense/w": (3, 2), "dense/b": (2,), "scale": (), "z": (2,)}
    dtypes = dtypes or {}
    flat = {}
    for path, shape in shapes.items():
        dtype = dtypes.get(path, np.float32)
        x = rng.normal(0.0, scale, shape)
        if np.issubdtype(dtype, np.complexfloating):
            x = x + 1j * rng.normal(0.0, scale, shape)
        flat[path] = np.asarray(x, dtype)
    return unflat(flat)


def unflat(flat):
    return {
        "dense": {"w": flat["dense/w"], "b": flat["dense/b"]},
        "scale": flat["scale"],
        "z": flat["z"],
    }


def flat(tree):
    """{path: NumPy array} for the leaves of a tree (paths like ``dense/w``)."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(k, simple=True, separator="/"): np.asarray(x) for k, x in leaves}


def trajectory(tx, grads, params):
    """Runs ``tx`` on a fixed gradient sequence, applying its updates to the params."""
    state = tx.init(params)
    updates = []
    for g in grads:
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
        updates.append(u)
    return updates, state


def small_tree(rng, dtypes=None, scale=1.0):
    """Two leaves: enough for sweeps, where each configuration's compile time counts."""
    del dtypes
    return {
        "w": np.asarray(rng.normal(0.0, scale, (3, 2)), np.float32),
        "b": np.asarray(rng.normal(0.0, scale, (2,)), np.float32),
    }


def gradients(seed, steps, dtypes=None, first_scale=1.0, tree=make_tree):
    rng = np.random.default_rng(seed)
    grads = [tree(rng, dtypes, scale=0.5) for _ in range(steps)]
    grads[0] = jax.tree.map(lambda g: (g * first_scale).astype(g.dtype), grads[0])
    return grads


def assert_trajectories_close(ours, expected, rtol, what="updates"):
    """Each leaf of each step: |ours - expected| <= rtol * (|expected| + max |expected|).

    The absolute part is relative to the largest entry of that leaf over the whole
    trajectory: momentum and maximize make single entries cancel to ~0, where only an
    error relative to the leaf's scale is meaningful.
    """
    ours, expected = [flat(x) for x in ours], [flat(x) for x in expected]
    for path in expected[0]:
        a = np.stack([x[path] for x in ours]).astype(np.complex128)
        b = np.stack([x[path] for x in expected]).astype(np.complex128)
        scale = np.max(np.abs(b))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=f"{what} {path}")


# ---------------------------------------------------------------------------
# The oracle.


def oracle(
    grads,
    params,
    *,
    learning_rate,
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt=True,
    centered=False,
    momentum=None,
    nesterov=False,
    bias_correction=False,
    weight_decay=0.0,
    decoupled_weight_decay=False,
    decayed=None,
    lr_in_momentum=True,
    maximize=False,
):
    """RMSProp from the equations, in float64 / complex128 NumPy, one leaf at a time.

    ``grads`` is a list of trees (g_1 ... g_T), ``params`` is θ_0, ``decayed`` the set of
    leaf paths weight decay applies to (None: all). "doc" below is the math block of
    ``optax_rmsprop.rmsprop``'s docstring, "REF" the framework table of REFERENCE.md.
    Returns the updates u_1 ... u_T (as trees) and the buffers after step T.
    """

    def at(h, count):  # doc: "each a number or a schedule of the step count t-1"
        return float(h(count)) if callable(h) else float(h)

    def wide(x):
        return np.asarray(x, np.complex128 if np.iscomplexobj(x) else np.float64)

    theta = {k: wide(x) for k, x in flat(params).items()}
    v = {k: np.full(x.shape, float(initial_scale)) for k, x in theta.items()}  # doc: v_0
    m = {k: np.zeros_like(x) for k, x in theta.items()}  # doc: m̄_0 = 0
    b = {k: np.zeros_like(x) for k, x in theta.items()}  # REF optax trace: b starts at 0
    history = []
    for t, grad in enumerate(grads, start=1):
        count = t - 1
        lr = at(learning_rate, count)  # η_t
        rho = at(decay, count)  # ρ_t
        e = at(eps, count)  # ε_t
        lam = at(weight_decay, count)  # λ_t
        mu = None if momentum is None else at(momentum, count)  # μ_t
        u_t = {}
        for k, g in flat(grad).items():
            g = wide(g)
            decays = lam != 0 and (decayed is None or k in decayed)
            if maximize:
                g = -g  # doc line 1; REF torch: "g ← −g if maximize" (before weight decay)
            if decays and not decoupled_weight_decay:
                g = g + lam * theta[k]  # doc line 2; REF torch, MXNet: coupled L2
            v[k] = (1 - rho) * np.abs(g) ** 2 + rho * v[k]  # doc line 3; REF optax |g|²
            if centered:
                m[k] = (1 - rho) * g + rho * m[k]  # doc line 4; REF optax scale_by_stddev
            v_hat, m_hat = v[k], m[k]
            if bias_correction:
                v_hat = v[k] / (1 - rho**t)  # doc line 5; REF optax bias_correction
                m_hat = m[k] / (1 - rho**t)
            if centered:
                sigma2 = np.maximum(v_hat - np.abs(m_hat) ** 2, 0)  # doc line 6: the clamp
            else:
                sigma2 = v_hat  # doc line 6, not centered
            if eps_in_sqrt:
                s = g / np.sqrt(sigma2 + e)  # doc line 7; REF optax, Keras, TF1, MXNet
            else:
                s = g / (np.sqrt(sigma2) + e)  # doc line 7; REF torch: d = √v + ε
            if mu is None:
                u = -lr * s  # doc line 10: no momentum
            elif lr_in_momentum:
                b[k] = -lr * s + mu * b[k]  # doc line 8; REF optax trace: b ← u + μb
                u = -lr * s + mu * b[k] if nesterov else b[k]  # doc line 8, nesterov
            else:
                b[k] = s + mu * b[k]  # doc line 9; REF torch: b ← μb + g/d
                u = -lr * (s + mu * b[k]) if nesterov else -lr * b[k]  # doc line 9
            if decays and decoupled_weight_decay:
                u = u - lr * lam * theta[k]  # doc line 11; REF keras: θ ← θ − ηλθ
            u_t[k] = u
        for k, u in u_t.items():
            theta[k] = theta[k] + u  # optax.apply_updates: θ_t = θ_{t-1} + u_t
        history.append(unflat(u_t))
    return history, {"nu": unflat(v), "mu": unflat(m), "momentum": unflat(b)}


# ---------------------------------------------------------------------------
# The variants checked against the oracle. Keyword arguments of ``rmsprop``, plus
# ``decayed`` for the oracle (the paths the weight-decay mask selects, written out by hand).
#
# centered + bias_correction + initial_scale=0 is left out here: its step-1 variance is
# exactly 0 and its computed value pure rounding noise (see the optax sweep below, which
# covers it); with initial_scale=1 the variance is well away from 0.

SCHEDULES = dict(
    learning_rate=lr_schedule,
    decay=decay_schedule,
    momentum=momentum_schedule,
    weight_decay=weight_decay_schedule,
    eps=eps_schedule,
)
VARIANTS = {
    "plain": dict(),
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
    "momentum": dict(momentum=0.9),
    "momentum_zero": dict(momentum=0.0),
    "momentum-nesterov": dict(momentum=0.9, nesterov=True),
    "momentum-lr_schedule": dict(momentum=0.9, learning_rate=lr_schedule),
    "momentum-lr_schedule-lr_outside_momentum": dict(
        momentum=0.9, learning_rate=lr_schedule, lr_in_momentum=False
    ),
    "momentum-nesterov-lr_schedule-lr_outside_momentum": dict(
        momentum=0.9, nesterov=True, learning_rate=lr_schedule, lr_in_momentum=False
    ),
    "weight_decay_coupled": dict(weight_decay=0.1),
    "weight_decay_coupled-mask": dict(
        weight_decay=0.1,
        weight_decay_mask={"dense": {"w": True, "b": False}, "scale": True, "z": False},
        decayed={"dense/w", "scale"},
    ),
    "weight_decay_decoupled-mask_prefix": dict(
        weight_decay=0.1,
        decoupled_weight_decay=True,
        weight_decay_mask={"dense": True, "scale": False, "z": True},
        decayed={"dense/w", "dense/b", "z"},
    ),
    "weight_decay_decoupled-mask_fn": dict(
        weight_decay=0.1,
        decoupled_weight_decay=True,
        weight_decay_mask=decays_matrices,
        decayed={"dense/w"},
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
    "everything": dict(
        **SCHEDULES,
        centered=True,
        bias_correction=True,
        initial_scale=1.0,
        eps_in_sqrt=False,
        nesterov=True,
        lr_in_momentum=False,
        maximize=True,
        weight_decay_mask={"dense": {"w": True, "b": False}, "scale": True, "z": False},
        decayed={"dense/w", "scale"},
    ),
}


def split_oracle_args(variant):
    # eps = 1e-3 is comparable to √v (~0.1), so where ε goes shows in float32 too.
    kwargs = {"learning_rate": 0.05, "eps": 1e-3, **variant}
    oracle_kwargs = {k: v for k, v in kwargs.items() if k != "weight_decay_mask"}
    ours_kwargs = {k: v for k, v in kwargs.items() if k != "decayed"}
    return ours_kwargs, oracle_kwargs


def check_against_oracle(variant, float_dtype, z_dtype, rtol_updates, rtol_state):
    ours_kwargs, oracle_kwargs = split_oracle_args(variant)
    dtypes = {"dense/w": float_dtype, "dense/b": float_dtype, "scale": float_dtype, "z": z_dtype}
    grads = gradients(0, STEPS, dtypes)
    params = make_tree(np.random.default_rng(1), dtypes)
    updates, state = trajectory(rmsprop(**ours_kwargs), grads, params)
    expected, buffers = oracle(grads, params, **oracle_kwargs)
    assert_trajectories_close(updates, expected, rtol_updates)
    assert int(state.count) == STEPS
    assert_trajectories_close([state.nu], [buffers["nu"]], rtol_state, "nu")
    if ours_kwargs.get("centered"):
        assert_trajectories_close([state.mu], [buffers["mu"]], rtol_state, "mu")
    if ours_kwargs.get("momentum") is not None:
        assert_trajectories_close([state.momentum], [buffers["momentum"]], rtol_state, "b")


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_matches_oracle_float64(variant, x64):
    # float64 rounding u = 1.1e-16. Errors are relative to the leaf's scale (see
    # assert_trajectories_close); the worst measured over these variants is 2.5e-16 (~2u):
    # each step's ~20 roundings mostly cancel, and errors carried by v, m̄, b and θ decay
    # (weight <= max(ρ, μ) < 1 per step). 1e-13 (~1000u) leaves a wide margin for other
    # CPUs and XLA versions, and is 10 orders of magnitude below what a wrong formula, a
    # schedule read at the wrong step or a misplaced ε gives here (> 1e-2, see
    # test_oracle_variants_differ).
    check_against_oracle(variant, np.float64, np.float64, 1e-13, 1e-13)


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_matches_oracle_float32(variant):
    # float32 rounding u = 6e-8, against the exact (float64) oracle on the same float32
    # inputs. Same reasoning as for float64: the worst measured is 2.4e-7 (~4u, the
    # "schedules-centered-..." variant); 5e-6 (~80u) is 20x that, and still 2000x below
    # the difference between any two variants (> 1e-2).
    check_against_oracle(variant, np.float32, np.float32, 5e-6, 5e-6)


COMPLEX_VARIANTS = {
    name: VARIANTS[name]
    for name in [
        "plain",
        "eps_outside",
        "centered-bias_correction-initial_scale",
        "momentum-nesterov-lr_schedule-lr_outside_momentum",
        "weight_decay_decoupled-mask_prefix",
        "maximize-weight_decay_coupled",
        "everything",
    ]
}


@pytest.mark.parametrize("variant", COMPLEX_VARIANTS.values(), ids=COMPLEX_VARIANTS.keys())
def test_matches_oracle_complex128(variant, x64):
    # The leaf z is complex: v uses |g|², the centered variance |m̂|² (optax's convention).
    # Tolerance: as for float64.
    check_against_oracle(variant, np.float64, np.complex128, 1e-13, 1e-13)


@pytest.mark.parametrize("variant", COMPLEX_VARIANTS.values(), ids=COMPLEX_VARIANTS.keys())
def test_matches_oracle_complex64(variant):
    check_against_oracle(variant, np.float32, np.complex64, 5e-6, 5e-6)  # as for float32


def test_oracle_variants_differ():
    """The float32 tolerance tells the variants apart: each differs from the plain one by
    far more than 5e-6 of the update's scale (momentum_zero is the plain rule, with a buffer).
    """
    grads = gradients(0, 10)
    params = make_tree(np.random.default_rng(1))
    plain, _ = oracle(grads, params, **split_oracle_args({})[1])
    scale = max(np.max(np.abs(a)) for u in plain for a in flat(u).values())
    for name, variant in VARIANTS.items():
        _, oracle_kwargs = split_oracle_args(variant)
        other, _ = oracle(grads, params, **oracle_kwargs)
        difference = max(
            np.max(np.abs(a - b))
            for x, y in zip(plain, other, strict=True)
            for a, b in zip(flat(x).values(), flat(y).values(), strict=True)
        )
        if name in ("plain", "momentum_zero"):
            assert difference < 1e-12 * scale, name
        else:
            assert difference > 1e-2 * scale, name


def test_lr_in_momentum_differs_only_when_the_learning_rate_changes():
    """Docstring: lr inside or outside the momentum buffer "differ only when η changes"."""
    grads = gradients(0, 10)
    params = make_tree(np.random.default_rng(1))

    def run(**kwargs):
        return [flat(u) for u in trajectory(rmsprop(momentum=0.9, **kwargs), grads, params)[0]]

    inside = run(learning_rate=0.05)
    outside = run(learning_rate=0.05, lr_in_momentum=False)
    for a, b in zip(inside, outside, strict=True):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7)
    inside = run(learning_rate=lr_schedule)
    outside = run(learning_rate=lr_schedule, lr_in_momentum=False)
    assert np.max(np.abs(inside[-1]["dense/w"] - outside[-1]["dense/w"])) > 1e-3


# ---------------------------------------------------------------------------
# optax.rmsprop, over every combination of its arguments.

MOMENTA = {  # (momentum, nesterov)
    "no_momentum": (None, False),
    "momentum_zero": (0.0, False),
    "momentum_zero-nesterov": (0.0, True),
    "momentum": (0.9, False),
    "momentum-nesterov": (0.9, True),
}
OPTAX_CASES = {}
for (
    eps_in_sqrt,
    centered,
    momentum_name,
    bias_correction,
    initial_scale,
    lr_name,
) in itertools.product(
    [True, False], [False, True], MOMENTA, [False, True], [0.0, 1.0], ["lr", "lr_schedule"]
):
    name = "-".join(
        part
        for part in [
            "centered" if centered else "",
            momentum_name,
            "eps_inside" if eps_in_sqrt else "eps_outside",
            "bias_correction" if bias_correction else "",
            f"initial_scale_{initial_scale:g}",
            lr_name,
        ]
        if part
    )
    momentum, nesterov = MOMENTA[momentum_name]
    OPTAX_CASES[name] = dict(
        learning_rate=lr_schedule if lr_name == "lr_schedule" else 0.05,
        decay=0.9,
        eps=1e-8,
        initial_scale=initial_scale,
        eps_in_sqrt=eps_in_sqrt,
        centered=centered,
        momentum=momentum,
        nesterov=nesterov,
        bias_correction=bias_correction,
    )


@pytest.mark.parametrize("kwargs", OPTAX_CASES.values(), ids=OPTAX_CASES.keys())
def test_matches_optax_rmsprop(kwargs):
    first_scale = 1.0
    if kwargs["centered"] and kwargs["bias_correction"] and kwargs["initial_scale"] == 0:
        # The degenerate case: at step 1, v̂ = g² and m̂ = g, so the variance is exactly 0
        # and its computed value is rounding noise of size ~ulp(g²), different in every
        # implementation (optax eager and optax jitted disagree with each other by orders of
        # magnitude; optax can even go NaN, see test_centered_variance_is_clamped). The step
        # is g / √(noise + ε) or, with ε outside, g / (√noise + ε): there √noise ~ 3e-4 |g|
        # is not negligible next to any usable ε. So ε = 1e-2 and a first gradient 1e4x
        # smaller (|g₁| ~ 5e-5): √noise ~ 2e-8 << ε, and what is compared is arithmetic, not
        # noise. From step 2 on the variance of two different gradients is well away from 0.
        kwargs = {**kwargs, "eps": 1e-2}
        first_scale = 1e-4
    grads = gradients(2, OPTAX_STEPS, first_scale=first_scale, tree=small_tree)
    params = small_tree(np.random.default_rng(3))
    ours, _ = trajectory(rmsprop(**kwargs), grads, params)
    expected, _ = trajectory(optax.rmsprop(**kwargs), grads, params)
    # Both run in float32, the same formulas in a different order (ours fused by XLA), so
    # they differ by float32 rounding only: worst measured over the 160 cases 1.8e-7 of the
    # leaf's scale (~3 ulp); 5e-6 (~80 ulp) is 25x that, and far below any difference of
    # formula (> 1e-2).
    assert_trajectories_close(ours, expected, 5e-6)


def test_optax_sweep_is_complete():
    """Every combination of optax.rmsprop's arguments is in the sweep: 2*2*5*2*2*2."""
    assert len(OPTAX_CASES) == 160
    assert (
        len({tuple(sorted((k, repr(v)) for k, v in c.items())) for c in OPTAX_CASES.values()})
        == 160
    )


# ---------------------------------------------------------------------------
# Equivalences stated in the docstrings.


@pytest.mark.parametrize(
    "learning_rate, b2, eps",
    [(0.05, 0.999, 1e-8), (0.05, 0.9, 1e-3), (lr_schedule, 0.95, 1e-6)],
    ids=["b2_0.999", "b2_0.9-eps_1e-3", "lr_schedule"],
)
def test_equals_adam_with_b1_zero(learning_rate, b2, eps):
    grads = gradients(4, OPTAX_STEPS)
    params = make_tree(np.random.default_rng(5))
    ours, _ = trajectory(
        rmsprop(learning_rate, decay=b2, eps=eps, eps_in_sqrt=False, bias_correction=True),
        grads,
        params,
    )
    adam, _ = trajectory(optax.adam(learning_rate, b1=0.0, b2=b2, eps=eps), grads, params)
    assert_trajectories_close(ours, adam, 5e-6)  # float32 rounding, as for optax.rmsprop


SCALE_CASES = {
    "plain": dict(),
    "eps_outside-bias_correction": dict(eps_in_sqrt=False, bias_correction=True),
    "initial_scale": dict(initial_scale=1.0),
    "centered": dict(centered=True),
    "centered-eps_outside-bias_correction-initial_scale": dict(
        centered=True, eps_in_sqrt=False, bias_correction=True, initial_scale=1.0
    ),
    "schedules": dict(decay=decay_schedule, eps=eps_schedule),
    "maximize": dict(maximize=True),
}


@pytest.mark.parametrize("kwargs", SCALE_CASES.values(), ids=SCALE_CASES.keys())
@pytest.mark.parametrize("learning_rate", [0.05, lr_schedule], ids=["lr", "lr_schedule"])
def test_scale_by_rms_then_learning_rate_is_rmsprop(kwargs, learning_rate):
    grads = gradients(6, 10)
    params = make_tree(np.random.default_rng(7))
    chained, _ = trajectory(
        optax.chain(scale_by_rms(**kwargs), optax.scale_by_learning_rate(learning_rate)),
        grads,
        params,
    )
    alias, _ = trajectory(rmsprop(learning_rate, **kwargs), grads, params)
    assert_trajectories_close(chained, alias, 1e-6)  # same arithmetic, one extra rounding


@pytest.mark.parametrize("centered", [False, True], ids=["scale_by_rms", "scale_by_stddev"])
@pytest.mark.parametrize("eps_in_sqrt", [True, False], ids=["eps_inside", "eps_outside"])
@pytest.mark.parametrize(
    "bias_correction", [False, True], ids=["no_bias_correction", "bias_correction"]
)
def test_scale_by_rms_matches_optax(centered, eps_in_sqrt, bias_correction):
    kwargs = dict(
        decay=0.9,
        eps=1e-8,
        initial_scale=1.0,
        eps_in_sqrt=eps_in_sqrt,
        bias_correction=bias_correction,
    )
    reference = optax.scale_by_stddev if centered else optax.scale_by_rms
    grads = gradients(8, OPTAX_STEPS)
    params = make_tree(np.random.default_rng(9))
    ours, _ = trajectory(scale_by_rms(centered=centered, **kwargs), grads, params)
    expected, _ = trajectory(reference(**kwargs), grads, params)
    assert_trajectories_close(ours, expected, 5e-6)  # float32 rounding, as for optax.rmsprop


# ---------------------------------------------------------------------------
# The clamp.


@pytest.mark.parametrize("eps_in_sqrt", [False, True], ids=["eps_outside", "eps_inside"])
def test_centered_variance_is_clamped(eps_in_sqrt):
    # A constant gradient with bias correction: v̂_t = g² and m̂_t = g at every step, so the
    # variance v̂ - |m̂|² is exactly 0 and rounding makes it negative for many entries. With
    # decay 0.99 optax's rounding is negative for these: sqrt gives NaN.
    g = jnp.asarray(np.random.default_rng(0).uniform(0.1, 1.0, 64), jnp.float32)
    kwargs = dict(decay=0.99, eps=1e-8, centered=True, bias_correction=True)
    reference = optax.rmsprop(0.01, eps_in_sqrt=False, **kwargs)
    state = reference.init(g)
    nan = []
    for _ in range(5):
        u, state = reference.update(g, state)
        nan.append(np.isnan(u).any())
    assert all(nan), "optax no longer goes NaN here: the test does not test the clamp"

    tx = rmsprop(0.01, eps_in_sqrt=eps_in_sqrt, **kwargs)
    state = tx.init(g)
    # With the variance σ² >= 0, |u| = η|g| / √(σ² + ε) <= η|g| / √ε, or η|g| / (σ + ε) <= η|g| / ε.
    bound = 0.01 * np.asarray(g) / (np.sqrt(1e-8) if eps_in_sqrt else 1e-8)
    for _ in range(5):
        u, state = tx.update(g, state)
        u = np.asarray(u)
        assert np.all(np.isfinite(u))
        assert np.all(u < 0)  # a descent step
        assert np.all(-u <= bound * (1 + 1e-6))
        assert np.all(np.isfinite(state.nu)) and np.all(np.isfinite(state.mu))


# ---------------------------------------------------------------------------
# Validation.


def pieces(*texts):
    """A ``match`` pattern requiring every text, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(text)})" for text in texts)


@pytest.mark.parametrize(
    "name, value, bounds",
    [
        ("decay", -0.1, "[0.0, 1.0]"),
        ("decay", 1.5, "[0.0, 1.0]"),
        ("decay", math.nan, "[0.0, 1.0]"),
        ("learning_rate", -0.5, "[0.0, inf]"),
        ("eps", -0.5, "[0.0, inf]"),
        ("momentum", -0.5, "[0.0, 1.0]"),
        ("momentum", 1.5, "[0.0, 1.0]"),  # the buffer would grow without bound
        ("weight_decay", -0.5, "[0.0, inf]"),
        ("initial_scale", -0.5, "[0.0, inf]"),
        ("decay", np.float32(1.5), "[0.0, 1.0]"),
        ("learning_rate", jnp.asarray(-0.5), "[0.0, inf]"),
    ],
    ids=[
        "decay_negative",
        "decay_above_one",
        "decay_nan",
        "learning_rate",
        "eps",
        "momentum",
        "momentum_above_one",
        "weight_decay",
        "initial_scale",
        "numpy_scalar",
        "jax_scalar",
    ],
)
def test_out_of_range_values_raise(name, value, bounds):
    kwargs = {"learning_rate": 0.1, name: value}
    with pytest.raises(ValueError, match=pieces(name, str(float(value)), bounds)):
        rmsprop(**kwargs)


def test_decay_one_without_initial_scale_raises():
    with pytest.raises(ValueError, match=r"(?s)(?=.*decay=1)(?=.*initial_scale)(?=.*accumulator)"):
        rmsprop(0.1, decay=1.0, initial_scale=0.0)
    with pytest.raises(ValueError, match="accumulator"):
        scale_by_rms(decay=1.0)
    rmsprop(0.1, decay=1.0, initial_scale=1.0)  # allowed: v stays at 1


def test_nesterov_without_momentum_raises():
    with pytest.raises(ValueError, match=pieces("nesterov", "momentum")):
        rmsprop(0.1, nesterov=True)
    rmsprop(0.1, momentum=0.0, nesterov=True)  # allowed: a buffer with μ = 0


HYPERPARAMETERS = ["learning_rate", "decay", "eps", "momentum", "weight_decay", "initial_scale"]


@pytest.mark.parametrize("name", HYPERPARAMETERS)
@pytest.mark.parametrize(
    "value",
    ["0.1", "0.0", "fast", [0.1], True],
    ids=["str", "str_zero", "str_word", "list", "bool"],
)
def test_wrong_types_raise_type_error(name, value):
    # "0.0" must not read as "weight decay off", nor "fast" fail in float() unnamed.
    kwargs = {"learning_rate": 0.1, name: value}
    with pytest.raises(TypeError, match=re.escape(name)):
        rmsprop(**kwargs)


@pytest.mark.parametrize("name", ["learning_rate", "decay", "eps", "initial_scale"])
def test_none_raises_type_error(name):
    # None means "off" for momentum and weight_decay only. For learning_rate it must not
    # silently become scale_by_rms (updates of the wrong sign).
    kwargs = {"learning_rate": 0.1, name: None}
    with pytest.raises(TypeError, match=re.escape(name)):
        rmsprop(**kwargs)


def test_weight_decay_none_is_off():
    """Docstring: ``None`` (or a plain 0) turns weight decay off, so update needs no params."""
    params, grads = jnp.linspace(-1.0, 1.0, 4), jnp.linspace(0.5, -0.3, 4)
    off = rmsprop(0.1, weight_decay=None)
    zero = rmsprop(0.1, weight_decay=0.0)
    on = rmsprop(0.1, weight_decay=0.5)
    expected, _ = zero.update(grads, zero.init(params))
    np.testing.assert_array_equal(off.update(grads, off.init(params))[0], expected)
    assert np.max(np.abs(on.update(grads, on.init(params), params)[0] - expected)) > 1e-3


@pytest.mark.parametrize("name", HYPERPARAMETERS)
def test_non_scalar_arrays_raise(name):
    kwargs = {"learning_rate": 0.1, name: jnp.full((2,), 0.5)}
    with pytest.raises(ValueError, match=pieces(name, "scalar", "(2,)")):
        rmsprop(**kwargs)


@pytest.mark.parametrize("name", ["learning_rate", "decay", "eps", "momentum", "weight_decay"])
def test_schedule_returning_non_scalar_raises_at_update(name):
    def schedule(count):
        return jnp.full((3,), 0.5) * count

    tx = rmsprop(**{"learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.1, name: schedule})
    params = jnp.ones(3)
    state = tx.init(params)  # init does not call schedules
    with pytest.raises(ValueError, match=pieces(name, "scalar", "(3,)")):
        tx.update(jnp.ones(3), state, params)


def test_initial_scale_cannot_be_a_schedule():
    with pytest.raises(TypeError, match="initial_scale"):
        rmsprop(0.1, initial_scale=lambda count: 1.0)


def test_tracers_pass_unchecked():
    """Built inside jit, hyperparameters are tracers: no check, and the same updates."""
    params = jnp.linspace(-1.0, 1.0, 4)
    grads = jnp.linspace(0.5, -0.3, 4)

    @jax.jit
    def step(learning_rate, decay, momentum):
        tx = rmsprop(learning_rate, decay=decay, momentum=momentum, centered=True)
        return tx.update(grads, tx.init(params), params)[0]

    concrete = rmsprop(0.1, decay=0.8, momentum=0.9, centered=True)
    expected = concrete.update(grads, concrete.init(params), params)[0]
    np.testing.assert_allclose(step(0.1, 0.8, 0.9), expected, rtol=1e-6)
    step(-0.1, 1.5, -1.0)  # out of range, but unknowable while tracing: no error


@pytest.mark.parametrize(
    "params, path",
    [
        ({"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)}, "['step']"),
        ([jnp.ones(2), jnp.array([True, False])], "[1]"),
        ({"layer": {"b": jnp.ones(2), "mask": np.ones(2, np.uint8)}}, "['layer']['mask']"),
    ],
    ids=["int32", "bool", "nested_uint8"],
)
def test_integer_and_bool_params_raise_at_init(params, path):
    with pytest.raises(TypeError, match=pieces(path, "optax.masked", "optax.partition")):
        rmsprop(0.1).init(params)


# ---------------------------------------------------------------------------
# dtypes, shapes, None leaves, empty trees, extra arguments.

# Between them, every branch of the rule: eps inside and outside, centered or not, bias
# correction, each momentum form, coupled and decoupled weight decay, schedules, maximize.
DTYPE_VARIANTS = {
    name: VARIANTS[name] for name in ["plain", "bias_correction-eps_outside", "everything"]
}
DTYPE_VARIANTS["centered-momentum-weight_decay_decoupled"] = dict(
    centered=True, momentum=0.9, weight_decay=0.1, decoupled_weight_decay=True
)
DTYPE_VARIANTS["split_complex"] = dict(split_complex=True)
DTYPE_VARIANTS["centered-momentum-split_complex"] = dict(
    centered=True, momentum=0.9, split_complex=True
)


def kwargs_for_any_tree(variant):
    """``rmsprop``'s arguments for a variant, without a mask written for the oracle's tree."""
    kwargs, _ = split_oracle_args(variant)
    if not callable(kwargs.get("weight_decay_mask")):
        kwargs.pop("weight_decay_mask", None)
    return kwargs


def real_dtype(dtype):
    return jnp.finfo(dtype).dtype


def mixed_tree(rng, dtypes, scale=1.0):
    return {
        jnp.dtype(d).name: jnp.asarray(
            rng.normal(0, scale, (2, 3))
            + (1j * rng.normal(0, scale, (2, 3)) if jnp.issubdtype(d, jnp.complexfloating) else 0),
            d,
        )
        for d in dtypes
    }


def check_dtypes(variant, dtypes):
    tx = rmsprop(**kwargs_for_any_tree(variant))
    rng = np.random.default_rng(0)
    params = mixed_tree(rng, dtypes)
    split = variant.get("split_complex", False)

    def expected_shape(p):
        return (*p.shape, 2) if split and jnp.iscomplexobj(p) else p.shape

    def describe(state):
        return jax.tree.map(lambda x: (x.dtype, x.shape), state)

    state = tx.init(params)
    initial = describe(state)
    assert state.count.dtype == jnp.int32 and state.count.shape == ()
    for k, p in params.items():
        # float16 parameters get a float32 nu: |g|² overflows float16 for |g| >= 256.
        nu_dtype = jnp.float32 if p.dtype == jnp.float16 else real_dtype(p.dtype)
        assert state.nu[k].dtype == nu_dtype, k
        assert state.nu[k].shape == expected_shape(p), k
        for buffer in (state.mu, state.momentum):
            if buffer is not None:
                # split_complex keeps (real, imaginary) pairs: a real buffer, like nu
                want = real_dtype(p.dtype) if split else p.dtype
                assert buffer[k].dtype == want, k
                assert buffer[k].shape == expected_shape(p), k
    for _ in range(3):
        grads = mixed_tree(rng, dtypes, scale=0.5)
        updates, state = tx.update(grads, state, params)
        for k, p in params.items():
            assert updates[k].dtype == p.dtype, k
            assert updates[k].shape == p.shape, k
            assert np.all(np.isfinite(np.asarray(updates[k], np.complex128))), k
        assert describe(state) == initial
        params = optax.apply_updates(params, updates)
    assert int(state.count) == 3


@pytest.mark.parametrize("variant", DTYPE_VARIANTS.values(), ids=DTYPE_VARIANTS.keys())
def test_dtypes_and_shapes(variant):
    check_dtypes(variant, [jnp.bfloat16, jnp.float16, jnp.float32, jnp.complex64])


@pytest.mark.parametrize("variant", DTYPE_VARIANTS.values(), ids=DTYPE_VARIANTS.keys())
def test_dtypes_and_shapes_x64(variant, x64):
    check_dtypes(variant, [jnp.float32, jnp.float64, jnp.complex64, jnp.complex128])


@pytest.mark.parametrize(
    "nu_dtype, mu_dtype",
    [(jnp.bfloat16, jnp.bfloat16), (jnp.float32, jnp.float32)],
    ids=["bfloat16", "float32"],
)
def test_nu_dtype_and_mu_dtype(nu_dtype, mu_dtype):
    """The buffers take the requested dtypes, keep them, and a complex leaf keeps its
    imaginary part: m̄ and b of a complex parameter are complex whatever mu_dtype says."""
    kwargs = dict(learning_rate=0.05, eps=1e-3, centered=True, momentum=0.9)
    tx = rmsprop(**kwargs, nu_dtype=nu_dtype, mu_dtype=mu_dtype)
    rng = np.random.default_rng(0)
    params = mixed_tree(rng, [jnp.bfloat16, jnp.float16, jnp.float32, jnp.complex64])
    grads = [mixed_tree(rng, list(map(jnp.dtype, params)), scale=0.5) for _ in range(3)]
    updates, state = trajectory(tx, grads, params)
    for k, p in params.items():
        assert state.nu[k].dtype == nu_dtype, k
        for buffer in (state.mu, state.momentum):
            if jnp.iscomplexobj(p):
                assert jnp.iscomplexobj(buffer[k]), k
            else:
                assert buffer[k].dtype == mu_dtype, k
    for u in updates:
        assert {k: x.dtype for k, x in u.items()} == {k: p.dtype for k, p in params.items()}
    # float32 buffers for a complex64 leaf: the same numbers as the default buffers.
    if mu_dtype == jnp.float32:
        default, _ = trajectory(rmsprop(**kwargs), grads, params)
        for u, d in zip(updates, default, strict=True):
            np.testing.assert_allclose(u["complex64"], d["complex64"], rtol=1e-6, atol=1e-7)


FLOAT16_VARIANTS = {
    name: {**VARIANTS, **DTYPE_VARIANTS}[name]
    for name in [
        "plain",
        "eps_outside",
        "centered-eps_outside",
        "bias_correction-eps_outside",
        "centered-momentum-weight_decay_decoupled",
        "everything",
    ]
}


@pytest.mark.parametrize("variant", FLOAT16_VARIANTS.values(), ids=FLOAT16_VARIANTS.keys())
def test_float16_zero_gradients_give_finite_updates(variant):
    # optax's float16 NaN (REFERENCE.md): ε = 1e-8 underflows in float16, so √0 + ε = 0 and
    # the step 0/0. Here the arithmetic runs in float32. (eps=0 is left out: 0 / √0 is NaN
    # by definition.)
    tx = rmsprop(**{**kwargs_for_any_tree(variant), "eps": 1e-8})
    params = {"w": jnp.ones((2, 3), jnp.float16)}
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update({"w": jnp.zeros((2, 3), jnp.float16)}, state, params)
        assert updates["w"].dtype == jnp.float16
        assert np.all(np.isfinite(np.asarray(updates["w"], np.float32)))
        if "weight_decay" not in variant:
            assert np.all(np.asarray(updates["w"], np.float32) == 0)


@pytest.mark.parametrize(
    "variant", [VARIANTS["plain"], VARIANTS["everything"]], ids=["plain", "everything"]
)
def test_none_leaves(variant):
    tx = rmsprop(**kwargs_for_any_tree(variant))
    rng = np.random.default_rng(0)
    params = {"a": jnp.asarray(rng.normal(size=3), jnp.float32), "frozen": None}
    grads = [{"a": jnp.asarray(rng.normal(size=3), jnp.float32), "frozen": None} for _ in range(3)]
    with_none, state = trajectory(tx, grads, params)
    without, _ = trajectory(tx, [{"a": g["a"]} for g in grads], {"a": params["a"]})
    for u, w in zip(with_none, without, strict=True):
        assert u["frozen"] is None
        np.testing.assert_array_equal(u["a"], w["a"])
    for buffer in (state.nu, state.mu, state.momentum):
        assert buffer is None or buffer["frozen"] is None


@pytest.mark.parametrize(
    "variant", [VARIANTS["plain"], VARIANTS["everything"]], ids=["plain", "everything"]
)
def test_empty_tree(variant):
    tx = rmsprop(**kwargs_for_any_tree(variant))
    state = tx.init({})
    updates, state = tx.update({}, state, {})
    updates, state = tx.update({}, state, {})
    assert updates == {}
    assert isinstance(state, RMSPropState) and int(state.count) == 2


def test_extra_keyword_arguments_are_accepted():
    tx = rmsprop(0.1, momentum=0.9)
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    params = jnp.ones(3)
    state = tx.init(params)
    plain, _ = tx.update(jnp.ones(3), state, params)
    extra, _ = tx.update(jnp.ones(3), state, params, value=jnp.asarray(2.0), key=None)
    np.testing.assert_array_equal(plain, extra)


SPLIT_CASES = {
    "plain": dict(),
    "eps_outside-weight_decay_coupled": dict(eps_in_sqrt=False, weight_decay=0.1),
    "maximize-weight_decay_decoupled": dict(
        maximize=True, weight_decay=0.1, decoupled_weight_decay=True
    ),
    "centered": dict(centered=True),
    "momentum": dict(momentum=0.9),
    "centered-momentum-eps_outside-lr_outside_momentum": dict(
        centered=True, momentum=0.9, eps_in_sqrt=False, lr_in_momentum=False
    ),
}


@pytest.mark.parametrize("variant", SPLIT_CASES.values(), ids=SPLIT_CASES.keys())
def test_split_complex_equals_real_pairs(variant):
    rng = np.random.default_rng(0)

    def pairs(z):
        return jnp.stack([z.real, z.imag], axis=-1)

    params = jnp.asarray(rng.normal(size=3) + 1j * rng.normal(size=3), jnp.complex64)
    grads = [
        jnp.asarray(rng.normal(size=3) + 1j * rng.normal(size=3), jnp.complex64) for _ in range(5)
    ]
    complex_updates, complex_state = trajectory(
        rmsprop(0.05, split_complex=True, **variant), grads, params
    )
    real_updates, real_state = trajectory(
        rmsprop(0.05, **variant), [pairs(g) for g in grads], pairs(params)
    )
    for u, r in zip(complex_updates, real_updates, strict=True):
        assert u.dtype == jnp.complex64
        np.testing.assert_allclose(pairs(u), r, rtol=1e-6, atol=1e-7)
    for name in ("nu", "mu", "momentum"):
        ours, expected = getattr(complex_state, name), getattr(real_state, name)
        if expected is None:
            assert ours is None
        else:
            assert ours.dtype == expected.dtype and ours.shape == expected.shape, name
            np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-7)


class _UnhashableSchedule:
    """A schedule object that cannot key jit's cache (a dataclass with eq=True, say)."""

    __hash__ = None

    def __call__(self, count):
        return 0.1 / (1.0 + count)


def test_an_unhashable_schedule_runs_op_by_op_and_gives_the_same_updates():
    params = {"w": jnp.linspace(-1.0, 1.0, 6), "b": jnp.ones(3)}
    grads = jax.tree.map(lambda p: jnp.cos(3.0 * p) + 0.5, params)
    expected_tx = rmsprop(lambda count: 0.1 / (1.0 + count), momentum=0.9)
    tx = rmsprop(_UnhashableSchedule(), momentum=0.9)
    for update in (tx.update, jax.jit(tx.update)):
        state, expected_state = tx.init(params), expected_tx.init(params)
        for _ in range(3):
            updates, state = update(grads, state, params)
            expected, expected_state = expected_tx.update(grads, expected_state, params)
            for k in params:
                np.testing.assert_allclose(updates[k], expected[k], rtol=1e-6)
