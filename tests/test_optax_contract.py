"""The optax contract: what any optax ``GradientTransformation`` must honour.

For :func:`optax_rmsprop.rmsprop` (every variant) and the presets: ``jax.jit``,
``optax.inject_hyperparams``, ``optax.MultiSteps``, ``optax.chain`` with
clipping and a schedule, extra arguments, dtype and shape stability under
``lax.cond``/``lax.scan`` (also for bfloat16), no recompilation, ``jax.vmap``
over parameters and over hyperparameters, ``optax.apply_if_finite`` and
``optax.masked``.

Compilations are counted with :mod:`jax.monitoring`'s backend-compile event (one
per XLA compilation, whatever triggers it), and the eager path's compiled step
with ``optax_rmsprop.core._jitted_step._cache_size()``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from helpers import (
    assert_trees_close,
    fixed,
    jitted,
    make_tree,
    oracle,
    preset_makers,
    run,
    run_jitted,
    stack,
    variants,
    vmapped,
    with_lr,
)

import optax_rmsprop
from optax_rmsprop import core, presets

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compilations() -> Iterator[list[str]]:
    """Yields a list that collects the name of each XLA compilation in the block."""
    names: list[str] = []

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        del duration
        if event == BACKEND_COMPILE_EVENT:
            names.append(str(kwargs.get("fun_name")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


# ---------------------------------------------------------------------------
# Parameters, gradients and the transformations under test.


def make_params(seed: int = 0, dtype: Any = jnp.float32) -> dict:
    return jax.tree.map(jnp.asarray, make_tree(seed, dtype))


def make_grads(seed: int, like: Any, scale: float = 1.0) -> Any:
    rng = np.random.default_rng(1000 + seed)
    return jax.tree.map(lambda p: jnp.asarray(scale * rng.normal(size=p.shape), p.dtype), like)


VARIANTS = variants(
    "plain",
    "centered",
    "momentum",
    "momentum-nesterov",
    "centered-momentum-eps_outside",
    "momentum-lr_outside_momentum",
    "weight_decay_coupled",
    "weight_decay_decoupled-mask_prefix",
    "bias_correction",
    "centered-momentum-nu_int8-mu_bfloat16",  # w (12 values) in 8-bit blocks of 4
    "centered-momentum-nu_int8-mu_int8",  # v, m̄ and b of w in 8-bit blocks of 4
    "momentum-nesterov-mu_int8",
    "momentum-caution-lr_schedule-lr_outside_momentum-weight_decay_corrected",
    "centered-momentum-caution-nu_int8",
    "everything",
)

PRESETS = preset_makers("torch", "keras", "tf1", "gluon", "gluon-rescaled-clipped", "d2l")

TRANSFORMS: dict[str, Callable[[], optax.GradientTransformation]] = {
    **{
        f"rmsprop-{name}": functools.partial(optax_rmsprop.rmsprop, **with_lr(kwargs, 0.01))
        for name, kwargs in VARIANTS.items()
    },
    **{f"preset-{name}": make for name, make in PRESETS.items()},
}

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# For the slower tests (eager optax wrappers, one compilation per case): the variant
# with every feature, the plain one, a masked one, and the presets that are a chain.
REPRESENTATIVE = [
    "rmsprop-plain",
    "rmsprop-everything",
    "rmsprop-weight_decay_decoupled-mask_prefix",
    "rmsprop-centered-momentum-nu_int8-mu_bfloat16",
    "rmsprop-centered-momentum-nu_int8-mu_int8",
    "preset-torch",
    "preset-gluon-rescaled-clipped",
]


def cases(*pairs: tuple[str, ...]) -> list[Any]:
    """``pytest.param``s with ids such as ``rmsprop-plain-float32``."""
    return [pytest.param(*pair, id="-".join(pair)) for pair in pairs]


def named(names: Any) -> list[tuple[str, str]]:
    """``parameterized.named_parameters`` for a test of one argument, each name its own."""
    return [(name, name) for name in names]


# float32 rounding: another compilation may fuse and round differently
assert_close = functools.partial(assert_trees_close, rtol=1e-5, atol=1e-7)


def assert_trees_differ(a: Any, b: Any) -> None:
    assert any(
        not np.allclose(np.asarray(x, np.float64), np.asarray(y, np.float64))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_compilation_counter_sees_a_compilation():
    """The counter the no-recompilation tests rely on does count compilations."""

    def affine(x):
        return x * 3 + 1

    x, y = jnp.ones(5), jnp.zeros(5)
    with count_compilations() as compiled:
        jax.jit(affine)(x)
        jax.jit(affine)(y)  # cached: no second compilation
    assert compiled == ["jit(affine)"]


# ---------------------------------------------------------------------------
# jax.jit, and no recompilation of a jitted train step


@pytest.mark.parametrize("name", TRANSFORMS)
def test_jit_equals_eager_and_the_train_step_compiles_once(name):
    tx = TRANSFORMS[name]()
    params = make_params()
    grads_seq = [make_grads(i, params) for i in range(3)]
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(None)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    jit_state = jax.jit(tx.init)(params)
    # Same avals (weak types included) whether init runs eagerly or under jit,
    # so a train step first fed either state is not traced again for the next.
    assert jax.tree.map(jax.typeof, jit_state) == jax.tree.map(jax.typeof, tx.init(params))
    jit_params, jit_state = step(params, jit_state, grads_seq[0])  # compiles
    with count_compilations() as compiled:
        for grads in grads_seq[1:]:  # new values, and a state made by update: cached
            jit_params, jit_state = step(jit_params, jit_state, grads)
        jax.block_until_ready(jit_params)
    assert compiled == []
    assert len(traces) == 1
    eager = run(tx, params, grads_seq)  # the reference every other path must equal
    assert_close(jit_params, eager.params[-1])
    assert_close(jit_state, eager.state)
    assert_trees_differ(jit_params, params)


# ---------------------------------------------------------------------------
# optax.inject_hyperparams

INJECTABLE = {  # factory, the names of its learning rate and of one more hyperparameter
    "rmsprop": (optax_rmsprop.rmsprop, "learning_rate", "momentum"),
    "rmsprop-centered-decay": (
        functools.partial(optax_rmsprop.rmsprop, centered=True),
        "learning_rate",
        "decay",
    ),
    "preset-torch": (presets.torch, "lr", "momentum"),
    "preset-keras": (presets.keras, "learning_rate", "rho"),
    "preset-tf1": (presets.tf1, "learning_rate"),
    "preset-timm": (functools.partial(presets.timm, momentum=0.9, caution=True), "lr", "alpha"),
    "preset-d2l": (presets.d2l, "lr", "gamma"),
    "preset-gluon": (presets.gluon, "learning_rate", "gamma1"),
}
# The values injected, then the new ones: the learning rate's, then the other's.
VALUES, NEW_VALUES = (0.1, 0.9), (0.02, 0.5)

# Numbers that decide the structure of the transformation rather than its
# arithmetic: inject_hyperparams must leave them as they are.
STATIC_ARGS = {"preset-gluon": ("rescale_grad", "clip_gradient", "clip_weights")}


def inject(name: str) -> tuple[Callable, dict, dict, optax.GradientTransformation]:
    """The factory, its values, new values, and the injected transformation."""
    factory, *names = INJECTABLE[name]
    values = dict(zip(names, VALUES, strict=False))
    new_values = dict(zip(names, NEW_VALUES, strict=False))
    injected = optax.inject_hyperparams(factory, static_args=STATIC_ARGS.get(name, ()))
    return factory, values, new_values, injected(**values)


class InjectHyperparamsTest(chex.TestCase):
    """``optax.inject_hyperparams`` around the rule and the presets, each test with and
    without ``jax.jit``."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(named(INJECTABLE))
    def test_inject_hyperparams_equals_the_plain_transformation(self, name):
        factory, values, _, tx = inject(name)
        plain = factory(**values)
        params = make_params()
        grads_seq = [make_grads(i, params) for i in range(3)]
        expected = run(plain, params, grads_seq).params[-1]
        injected = self.variant(run, static_argnums=0, static_argnames="apply")
        assert_close(injected(tx, params, grads_seq).params[-1], expected)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(named(INJECTABLE))
    def test_changing_injected_hyperparams_changes_the_update_without_recompiling(self, name):
        factory, _, new_values, tx = inject(name)
        traces = []

        def update(grads, state, params):
            traces.append(None)
            return tx.update(grads, state, params)

        update = self.variant(update)
        params = make_params()
        state = tx.init(params)
        _, state = update(make_grads(0, params), state, params)  # compiles, if it does
        _, state = update(make_grads(1, params), state, params)  # state made by update
        grads = make_grads(2, params)
        eager_size = core._jitted_step._cache_size()
        with count_compilations() as compiled:
            old, _ = update(grads, state, params)
            for key, value in new_values.items():  # as optax's docs change them
                state.hyperparams[key] = jnp.asarray(value, state.hyperparams[key].dtype)
            new, new_state = update(grads, state, params)
            jax.block_until_ready(new)
        assert compiled == []
        assert core._jitted_step._cache_size() == eager_size
        if jitted(self.variant):
            assert len(traces) == 1
        expected, _ = factory(**state.hyperparams).update(grads, state.inner_state, params)
        assert_close(new, expected)
        assert_trees_differ(new, old)
        for key, value in new_values.items():
            np.testing.assert_allclose(new_state.hyperparams[key], value, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        ("bfloat16", jnp.bfloat16), ("float16", jnp.float16), ("complex64", jnp.complex64)
    )
    def test_inject_hyperparams_with_narrow_or_complex_params(self, dtype):
        """optax.inject_hyperparams casts numbers to the params' dtype: bfloat16 was refused
        ("decay must be real"), and so was complex64 with no imaginary part. The result is
        the plain transformation's with those cast values."""
        params = jnp.linspace(0.5, 1.5, 6).astype(dtype)
        grads = jnp.linspace(-1.0, 2.0, 6).astype(dtype)
        injected = optax.inject_hyperparams(optax_rmsprop.rmsprop)(0.1, decay=0.9, momentum=0.5)
        state = injected.init(params)
        cast = {k: jnp.real(v) for k, v in state.hyperparams.items()}
        plain = optax_rmsprop.rmsprop(**cast)
        got, _ = self.variant(injected.update)(grads, state, params)
        want, _ = plain.update(grads, plain.init(params), params)
        assert got.dtype == dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# PyTorch and MXNet have weight decay on by default (a 0 that inject_hyperparams traces);
# their optimizers always hold the params, so the presets always need them under jit.
FRAMEWORK_WEIGHT_DECAY = ("preset-torch", "preset-gluon", "preset-timm")


@pytest.mark.parametrize("name", [n for n in INJECTABLE if n not in FRAMEWORK_WEIGHT_DECAY])
def test_inject_hyperparams_jit_without_params(name):
    """``update(grads, state)``, as for ``optax.rmsprop``, also under jit.

    ``rmsprop``'s ``weight_decay`` defaults to ``None``, which inject_hyperparams leaves
    static: weight decay stays off and needs no params.
    """
    tx = inject(name)[-1]
    params = make_params()
    grads = make_grads(0, params)
    state = tx.init(params)
    expected, _ = tx.update(grads, state)
    assert_close(jax.jit(tx.update)(grads, state)[0], expected)


@pytest.mark.parametrize("name", FRAMEWORK_WEIGHT_DECAY)
def test_inject_hyperparams_jit_without_params_says_why(name):
    tx = inject(name)[-1]
    params = make_params()
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"weight_decay needs the params.*inject_hyperparams"):
        jax.jit(tx.update)(make_grads(0, params), state)
    update, _ = jax.jit(tx.update)(make_grads(0, params), state, params)  # with params: fine
    assert_close(update, tx.update(make_grads(0, params), state, params)[0])


def test_inject_hyperparams_rmsprop_equals_optax_under_jit_without_params():
    tx = optax.inject_hyperparams(optax_rmsprop.rmsprop)(learning_rate=0.1, momentum=0.9)
    reference = optax.inject_hyperparams(optax.rmsprop)(learning_rate=0.1, momentum=0.9)
    params = make_params()
    grads = make_grads(0, params)
    expected, _ = jax.jit(reference.update)(grads, reference.init(params))
    assert_close(jax.jit(tx.update)(grads, tx.init(params))[0], expected)


# ---------------------------------------------------------------------------
# optax.MultiSteps


class MultiStepsTest(chex.TestCase):
    """``optax.MultiSteps`` around the rule and the presets, with and without ``jax.jit``."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        named(["rmsprop-plain", "rmsprop-everything", "preset-torch", "preset-keras"])
    )
    def test_multi_steps_equals_manual_accumulation(self, name):
        k = 3
        multi = optax.MultiSteps(TRANSFORMS[name](), every_k_schedule=k)
        inner = TRANSFORMS[name]()
        params = make_params()
        multi_update = self.variant(multi.update)
        multi_state, inner_state = multi.init(params), inner.init(params)
        accumulated = []
        for i in range(2 * k):
            grads = make_grads(i, params)
            updates, multi_state = multi_update(grads, multi_state, params)
            accumulated.append(grads)
            if len(accumulated) == k:
                mean = jax.tree.map(lambda *gs: sum(gs) / k, *accumulated)
                expected, inner_state = inner.update(mean, inner_state, params)
                accumulated = []
                assert_trees_differ(updates, jax.tree.map(jnp.zeros_like, updates))
            else:
                expected = jax.tree.map(jnp.zeros_like, grads)
            assert_close(updates, expected, rtol=1e-5, atol=1e-7)
            params = optax.apply_updates(params, updates)
        assert_close(multi_state.inner_opt_state, inner_state, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------
# optax.chain with clipping and a schedule (against the oracle) or extra arguments


def clipped_by_global_norm(tree, max_norm):
    """optax.clip_by_global_norm in float64: g · max_norm / max(|g|, max_norm)."""
    tree = jax.tree.map(lambda g: np.asarray(g, np.float64), tree)
    norm = np.sqrt(sum(np.sum(g * g) for g in jax.tree.leaves(tree)))
    return jax.tree.map(lambda g: g * max_norm / max(norm, max_norm), tree)


# ---------------------------------------------------------------------------
# Extra arguments


class ExtraArgsTest(chex.TestCase):
    """Extra keyword arguments to ``update``, with and without ``jax.jit``."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(named(TRANSFORMS))
    def test_update_accepts_and_ignores_extra_args(self, name):
        tx = TRANSFORMS[name]()
        params = make_params()
        grads = make_grads(0, params)
        state = tx.init(params)
        with_extra = self.variant(functools.partial(tx.update, some_extra=1, loss=jnp.float32(2.5)))
        assert_close(with_extra(grads, state, params), tx.update(grads, state, params))


def scale_by_loss_scale() -> optax.GradientTransformationExtraArgs:
    """Multiplies the updates by the extra argument ``loss_scale`` (a user transform)."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, loss_scale, **extra_args):
        del params, extra_args
        return jax.tree.map(lambda u: loss_scale * u, updates), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class ChainTest(chex.TestCase):
    """``optax.chain`` around the rule, each test with and without ``jax.jit``."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("plain", None), ("momentum", 0.9))
    def test_chain_with_clipping_and_schedule_matches_the_oracle(self, momentum):
        schedule = optax.warmup_cosine_decay_schedule(
            init_value=0.01, peak_value=0.1, warmup_steps=2, decay_steps=6, end_value=0.001
        )
        tx = optax.chain(
            optax.clip_by_global_norm(1.0), optax_rmsprop.rmsprop(schedule, momentum=momentum)
        )
        params = make_params()
        # alternate large gradients (clipped) and small ones (left alone)
        grads_seq = [make_grads(i, params, scale=3.0 if i % 2 == 0 else 0.05) for i in range(6)]
        update = self.variant(tx.update)
        state = tx.init(params)
        clipped = [clipped_by_global_norm(g, 1.0) for g in grads_seq]
        exact = oracle(fixed(clipped), params, 6, learning_rate=schedule, momentum=momentum)
        for grads, want in zip(grads_seq, exact.updates, strict=True):
            updates, state = update(grads, state, params)
            assert_trees_close(updates, want, 2e-5, 1e-9, same_dtypes=False)

    @chex.variants(with_jit=True, without_jit=True)
    def test_chain_with_transformations_that_use_extra_args(self):
        tx = optax.chain(
            scale_by_loss_scale(),
            optax.with_extra_args_support(optax.clip_by_global_norm(100.0)),
            optax_rmsprop.rmsprop(0.1, momentum=0.9),
            optax.contrib.reduce_on_plateau(
                factor=0.5, patience=1, cooldown=0, accumulation_size=1
            ),
        )
        plain = optax_rmsprop.rmsprop(0.1, momentum=0.9)
        update = self.variant(tx.update)
        params = make_params()
        state, plain_state = tx.init(params), plain.init(params)
        scales = []
        for i, loss in enumerate([3.0, 2.0, 2.5, 2.7]):  # the loss stops improving: lr halves
            grads = make_grads(i, params)
            updates, state = update(grads, state, params, loss_scale=0.5, value=jnp.float32(loss))
            expected, plain_state = plain.update(
                jax.tree.map(lambda g: 0.5 * g, grads), plain_state, params
            )
            scale = float(state[-1].scale)
            scales.append(scale)
            assert_close(updates, jax.tree.map(lambda u, s=scale: s * u, expected), rtol=1e-5)
        assert scales[0] == 1.0 and scales[-1] < 1.0


# ---------------------------------------------------------------------------
# dtype and shape stability: lax.cond inside lax.scan, bfloat16 too


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", TRANSFORMS)
def test_update_keeps_dtypes_and_shapes(name, dtype):
    tx = TRANSFORMS[name]()
    params = make_params(dtype=DTYPES[dtype])
    state = tx.init(params)
    updates, new_state = jax.eval_shape(tx.update, make_grads(0, params), state, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)


@pytest.mark.parametrize(
    ("name", "dtype"),
    cases(
        *((name, "float32") for name in TRANSFORMS),
        *((name, "bfloat16") for name in REPRESENTATIVE),
    ),
)
def test_update_inside_cond_inside_scan_matches_python_loop(name, dtype):
    """Each scanned step either updates or keeps the state (``lax.cond``, both branches)."""
    tx = TRANSFORMS[name]()
    params = make_params(dtype=DTYPES[dtype])
    n = 5
    grads_seq = [make_grads(i, params) for i in range(n)]
    take_step = np.array([True, False, True, True, False])

    def body(carry, xs):
        grads, pred = xs

        def update(carry):
            params, state = carry
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return jax.lax.cond(pred, update, lambda carry: carry, carry), None

    stacked = jax.tree.map(lambda *gs: jnp.stack(gs), *grads_seq)
    (got_params, got_state), _ = jax.lax.scan(
        body, (params, tx.init(params)), (stacked, jnp.asarray(take_step))
    )
    want = run(tx, params, [g for g, take in zip(grads_seq, take_step, strict=True) if take])
    tolerance = {"rtol": 1e-5, "atol": 1e-7} if dtype == "float32" else {"rtol": 2e-2}
    assert_close(got_params, want.params[-1], **tolerance)
    assert_close(got_state, want.state, **tolerance)
    assert int(jax.tree.leaves(got_state)[0]) == int(take_step.sum()) or name.startswith(
        "preset-gluon-rescaled"  # a chain: its first state leaf is not the count
    )


# ---------------------------------------------------------------------------
# No recompilation on the eager path


def _as_arrays(kwargs: dict[str, Any], factor: float = 1.0) -> dict[str, Any]:
    """``kwargs`` with every float hyperparameter a scalar array, times ``factor``."""
    return {
        key: jnp.asarray(value * factor) if isinstance(value, float) else value
        for key, value in kwargs.items()
    }


@pytest.mark.parametrize("name", VARIANTS)
def test_eager_update_reuses_the_compiled_step(name):
    """Eager ``update`` runs one cached executable: for a new instance with the same
    numbers, and for one with new values given as arrays (as ``inject_hyperparams``
    passes them). Python numbers are compile-time constants (so that jit gives the eager
    step's bits): a new number compiles once."""
    kwargs = {"learning_rate": 0.1, "decay": 0.9, "eps": 1e-6, **VARIANTS[name]}
    params = make_params()
    grads = make_grads(0, params)
    before = core._jitted_step._cache_size()
    numbers = optax_rmsprop.rmsprop(**kwargs)
    arrays = optax_rmsprop.rmsprop(**_as_arrays(kwargs))
    for tx in (numbers, arrays):  # the first calls may compile the step
        tx.update(grads, tx.init(params), params)
    size = core._jitted_step._cache_size()
    assert size - before <= 2
    same_numbers = optax_rmsprop.rmsprop(**kwargs)
    new_arrays = optax_rmsprop.rmsprop(**_as_arrays(kwargs, 0.5))
    with count_compilations() as compiled:
        updates, _ = arrays.update(grads, arrays.init(params), params)
        other_updates, _ = new_arrays.update(grads, new_arrays.init(params), params)
        same_updates, _ = same_numbers.update(grads, same_numbers.init(params), params)
        jax.block_until_ready((updates, other_updates, same_updates))
    assert [c for c in compiled if "step" in c] == [], compiled
    assert core._jitted_step._cache_size() == size
    assert_trees_differ(updates, other_updates)  # the new values were used, not baked in
    new_numbers = optax_rmsprop.rmsprop(**{**kwargs, "learning_rate": 0.05})
    new_numbers.update(grads, new_numbers.init(params), params)
    assert core._jitted_step._cache_size() == size + 1


# ---------------------------------------------------------------------------
# jax.vmap


@pytest.mark.parametrize(
    "name",
    [
        *REPRESENTATIVE,
        "rmsprop-centered-momentum-eps_outside",
        "rmsprop-centered-momentum-caution-nu_int8",  # the mask's mean: per member
    ],
)
def test_vmap_over_parameter_sets_equals_loop(name):
    tx = TRANSFORMS[name]()
    batch = 3
    params_list = [make_params(seed) for seed in range(batch)]
    grads_lists = [
        [make_grads(10 * seed + i, params_list[0]) for i in range(2)] for seed in range(batch)
    ]
    batched = run_jitted(
        vmapped(tx), stack(params_list), [stack([g[i] for g in grads_lists]) for i in range(2)]
    )
    got_params, got_state = batched.params[-1], batched.state
    for b in range(batch):
        want = run(tx, params_list[b], grads_lists[b])
        take = functools.partial(jax.tree.map, lambda x, b=b: x[b])
        assert_close(take(got_params), want.params[-1], rtol=1e-5)
        assert_close(take(got_state), want.state, rtol=1e-5)


VMAPPED_HYPERPARAMS = {  # factory of the traced values, and a batch of values
    "rmsprop-lr-decay": (
        lambda lr, decay: optax_rmsprop.rmsprop(lr, decay=decay),
        {"lr": [0.1, 0.01, 0.05], "decay": [0.9, 0.5, 0.99]},
    ),
    "rmsprop-centered-momentum": (
        lambda lr, decay, momentum: optax_rmsprop.rmsprop(
            lr, decay=decay, momentum=momentum, centered=True
        ),
        {"lr": [0.1, 0.01, 0.05], "decay": [0.9, 0.5, 0.99], "momentum": [0.9, 0.0, 0.5]},
    ),
    "rmsprop-everything": (
        lambda lr, decay, momentum, eps, wd: optax_rmsprop.rmsprop(
            lr,
            decay=decay,
            eps=eps,
            momentum=momentum,
            nesterov=True,
            bias_correction=True,
            weight_decay=wd,
        ),
        {
            "lr": [0.1, 0.01, 0.05],
            "decay": [0.9, 0.5, 0.99],
            "momentum": [0.9, 0.0, 0.5],
            "eps": [1e-8, 1e-3, 1e-6],
            "wd": [0.0, 0.1, 0.01],
        },
    ),
    "preset-torch": (
        lambda lr, alpha, momentum, wd: presets.torch(
            lr, alpha=alpha, momentum=momentum, weight_decay=wd, centered=True
        ),
        {
            "lr": [0.1, 0.01, 0.05],
            "alpha": [0.99, 0.5, 0.9],
            "momentum": [0.9, 0.1, 0.5],
            "wd": [0.0, 0.1, 0.01],
        },
    ),
    "preset-keras": (
        lambda lr, rho, momentum, wd: presets.keras(
            lr, rho=rho, momentum=momentum, weight_decay=wd
        ),
        {
            "lr": [0.1, 0.01, 0.05],
            "rho": [0.9, 0.5, 0.99],
            "momentum": [0.9, 0.1, 0.5],
            "wd": [0.0, 0.1, 0.01],
        },
    ),
}


@pytest.mark.parametrize("name", VMAPPED_HYPERPARAMS)
def test_vmap_over_hyperparameters_equals_separate_runs(name):
    """The transformation is built inside the vmapped function, from traced values."""
    make, values = VMAPPED_HYPERPARAMS[name]
    params = make_params()
    grads_seq = [make_grads(i, params) for i in range(3)]

    def train(hyperparams):
        return run(make(**hyperparams), params, grads_seq).params[-1]

    batched = {key: np.asarray(value, np.float32) for key, value in values.items()}
    got = jax.jit(jax.vmap(train))(batched)
    runs = []
    for b in range(len(values["lr"])):
        want = train({key: float(value[b]) for key, value in batched.items()})
        assert_close(jax.tree.map(lambda x, b=b: x[b], got), want, rtol=1e-5)
        runs.append(want)
    assert_trees_differ(runs[0], runs[1])


# ---------------------------------------------------------------------------
# optax.apply_if_finite and optax.masked


class WrappersTest(chex.TestCase):
    """``optax.apply_if_finite`` and ``optax.masked`` around the rule and the presets, each
    test with and without ``jax.jit``."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(named(["rmsprop-plain", "rmsprop-everything", "preset-torch"]))
    def test_apply_if_finite_skips_non_finite_steps(self, name):
        tx = optax.apply_if_finite(TRANSFORMS[name](), max_consecutive_errors=3)
        plain = TRANSFORMS[name]()
        update = self.variant(tx.update)
        params = make_params()
        state, plain_state = tx.init(params), plain.init(params)

        grads = make_grads(0, params)
        updates, state = update(grads, state, params)
        expected, plain_state = plain.update(grads, plain_state, params)
        assert_close(updates, expected)

        bad = jax.tree.map(lambda g: g.at[(0,) * g.ndim].set(jnp.nan), make_grads(1, params))
        updates, bad_state = update(bad, state, params)
        assert all(not np.any(u) for u in jax.tree.leaves(updates))
        assert_close(bad_state.inner_state, state.inner_state)
        assert int(bad_state.notfinite_count) == 1

        grads = make_grads(2, params)
        updates, _ = update(grads, bad_state, params)
        expected, _ = plain.update(grads, plain_state, params)
        assert_close(updates, expected)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(named(["rmsprop-plain", "rmsprop-everything", "preset-keras"]))
    def test_masked_updates_only_the_masked_leaves(self, name):
        params = {**make_params(), "step": jnp.array(7, jnp.int32)}  # an int leaf rmsprop rejects
        mask = {"dense": {"w": True, "b": False}, "scale": True, "z": False, "step": False}
        make = TRANSFORMS[name]
        with pytest.raises(TypeError, match="dtype int32"):
            make().init(params)
        tx = optax.masked(make(), mask)
        update = self.variant(tx.update)
        grads = {
            "dense": make_grads(0, params["dense"]),
            "scale": make_grads(1, params["scale"]),
            "z": make_grads(2, params["z"]),
            "step": jnp.array(0, jnp.int32),
        }
        selected = {"w": params["dense"]["w"], "scale": params["scale"]}
        selected_grads = {"w": grads["dense"]["w"], "scale": grads["scale"]}
        inner = make()
        state, inner_state = tx.init(params), inner.init(selected)
        for _ in range(2):
            updates, state = update(grads, state, params)
            expected, inner_state = inner.update(selected_grads, inner_state, selected)
            assert_close(updates["dense"]["w"], expected["w"])
            assert_close(updates["scale"], expected["scale"])
            assert_close(updates["dense"]["b"], grads["dense"]["b"])  # passed through
            assert int(updates["step"]) == 0
