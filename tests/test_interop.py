"""Training runs carried between PyTorch, Keras and JAX by ``optax_rmsprop.interop``.

Each test trains K steps in one framework, converts the weights and the optimizer state,
continues N steps in the other, and compares with the first framework continuing the same N
steps itself. Both sides get, at every step, the gradient of the same NumPy float32 function
at their *own* parameters, so only the optimizers differ.

Tolerance: the conversion itself is exact (a copy, a transpose, a sign: the round-trip tests
check equality), so what is left is the float32 rounding of the steps after it: each step's
formula in another order (g/d vs g·(1/d), lerp vs a·x + b·y) differs by a few ulp. Measured
over the N = 30 continued steps of every case here (O(1) parameters): at most 1.3e-6
absolute for torch and 1.7e-6 for keras (both centered, whose variance v − m̄² cancels),
1e-7 to 5e-7 elsewhere; against RTOL = ATOL = 1e-5. A run resumed from an empty state
instead (what a port that drops the optimizer state does) ends 0.07 to 1.4 away (measured):
the tests check it is more than 100 × ATOL, so they can fail."""

import copy
import inspect
import subprocess
import sys
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close, complex_problem, dense_problem, timm_optim

from optax_rmsprop import RMSPropState, interop, presets

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

K, N = 20, 30  # steps before the conversion, steps after it
RTOL, ATOL = 1e-5, 1e-5
# Non-default lr, alpha and eps, so that dropping one would show.
TORCH_BASE = dict(lr=0.02, alpha=0.9, eps=1e-2)
KERAS_BASE = dict(learning_rate=0.02, rho=0.8, epsilon=1e-2)


# ---------------------------------------------------------------------------
# The problems (helpers.py: a weight stored (out, in) by torch, and a complex one), and a conv.


def _conv_least_squares(seed=2):
    """A conv kernel k (H, W, I, O) = (2, 3, 4, 5), JAX's layout, used as the linear map
    from the 24 values of an (H, W, I) patch to O outputs: ``½ mean ‖X vec(k) + b − Y‖²``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, 24)).astype(np.float32)
    k_true = rng.normal(size=(24, 5))
    y = (x @ k_true + 0.1 * rng.normal(size=(32, 5))).astype(np.float32)
    params0 = {
        "k": (k_true + 3 * rng.choice([-1.0, 1.0], size=(24, 5))).astype(np.float32),
        "b": np.full(5, 1.5, np.float32),
    }
    params0["k"] = params0["k"].reshape(2, 3, 4, 5)

    def grad(p):
        r = x @ p["k"].reshape(24, 5) + p["b"] - y
        return {"k": ((x.T @ r) / np.float32(len(x))).reshape(2, 3, 4, 5), "b": r.mean(axis=0)}

    return params0, grad


# torch's parameters, in order, and the permutation that turns each from torch's layout
# into JAX's (as interop.Leaf's axes): torch.nn.Linear keeps its weight as (out, in), so
# leaf "w" is torch parameter 0 transposed; torch.nn.Conv2d keeps (O, I, H, W) where JAX
# keeps (H, W, I, O), a permutation that is not its own inverse.
TORCH_LAYOUT = {
    "real": (("w", (1, 0)), ("b", None)),
    "complex": (("z", None),),
    "conv": (("k", (2, 3, 1, 0)), ("b", None)),
}
LEAF_MAPS = {
    "real": {"w": interop.Leaf(0, axes=(1, 0)), "b": 1},
    "complex": None,
    "conv": {"k": interop.Leaf(0, axes=(2, 3, 1, 0)), "b": 1},
}


def _torch_array(x, axes):
    return np.ascontiguousarray(x if axes is None else x.transpose(np.argsort(axes)))


def _to_torch_layout(params, layout):
    return [
        torch.tensor(_torch_array(params[k], axes)).clone().requires_grad_(True)
        for k, axes in layout
    ]


def _from_torch_layout(tensors, layout):
    out = {}
    for t, (k, axes) in zip(tensors, layout, strict=True):
        x = t.detach().numpy().copy()
        out[k] = x if axes is None else x.transpose(axes)
    return out


def _torch_steps(optimizer, tensors, layout, grad, steps):
    trajectory = []
    for _ in range(steps):
        g = grad(_from_torch_layout(tensors, layout))
        for t, (k, axes) in zip(tensors, layout, strict=True):
            t.grad = torch.from_numpy(_torch_array(g[k], axes))
        optimizer.step()
        trajectory.append(_from_torch_layout(tensors, layout))
    return trajectory


def _jax_steps(tx, state, params, grad, steps):
    params = {k: jnp.asarray(v) for k, v in params.items()}
    trajectory = []
    for _ in range(steps):
        g = grad({k: np.asarray(v) for k, v in params.items()})
        updates, state = tx.update({k: jnp.asarray(v) for k, v in g.items()}, state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append({k: np.asarray(v) for k, v in params.items()})
    return trajectory, state


def _keras_steps(optimizer, variables, grad, steps):
    trajectory = []
    for _ in range(steps):
        g = grad({k: np.asarray(v.value) for k, v in variables.items()})
        optimizer.apply_gradients([(jnp.asarray(g[k]), v) for k, v in variables.items()])
        trajectory.append({k: np.array(v.value) for k, v in variables.items()})
    return trajectory


def _assert_same(ours, theirs):
    """Two trajectories of params, step by step, to the frameworks' rounding."""
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True), start=1):
        assert_trees_close(a, b, RTOL, ATOL, same_dtypes=False, what=f"step {step}: params")


def _max_difference(ours, theirs):
    return max(
        float(np.max(np.abs(a[k] - b[k]))) for a, b in zip(ours, theirs, strict=True) for k in a
    )


def _assert_continues(tx, state, params, grad, theirs):
    """From the converted ``state``, ``tx`` follows the framework's steps ``theirs`` to its
    rounding; from a fresh state it does not (the state carried what counts)."""
    ours, _ = _jax_steps(tx, state, params, grad, len(theirs))
    _assert_same(ours, theirs)
    restarted, _ = _jax_steps(tx, tx.init(params), params, grad, len(theirs))
    assert _max_difference(restarted, theirs) > 100 * ATOL


# ---------------------------------------------------------------------------
# PyTorch.


def _groups(ts):
    """Two groups with different lr and momentum (and the same alpha, eps)."""
    return [
        {"params": [ts[0]], "lr": 0.02, "momentum": 0.9},
        {"params": [ts[1]], "lr": 0.05, "momentum": 0.0, "centered": True},
    ]


TORCH_CASES = {
    "plain": ("real", 1.0, lambda ts: torch.optim.RMSprop(ts, **TORCH_BASE)),
    "momentum": ("real", 1.0, lambda ts: torch.optim.RMSprop(ts, **TORCH_BASE, momentum=0.9)),
    "centered": ("real", 1.0, lambda ts: torch.optim.RMSprop(ts, **TORCH_BASE, centered=True)),
    "weight_decay": (
        "real",
        1.0,
        lambda ts: torch.optim.RMSprop(ts, **TORCH_BASE, weight_decay=0.1),
    ),
    "centered-momentum-weight_decay-maximize": (
        "real",
        -1.0,  # the gradient of -loss, ascended
        lambda ts: torch.optim.RMSprop(
            ts, **TORCH_BASE, momentum=0.9, centered=True, weight_decay=0.1, maximize=True
        ),
    ),
    "two_groups": ("real", 1.0, lambda ts: torch.optim.RMSprop(_groups(ts), alpha=0.9, eps=1e-2)),
    "conv-centered-momentum": (
        "conv",
        1.0,
        lambda ts: torch.optim.RMSprop(ts, **TORCH_BASE, momentum=0.9, centered=True),
    ),
    "complex-momentum": (
        "complex",
        1.0,
        lambda ts: torch.optim.RMSprop(ts, **TORCH_BASE, momentum=0.9, centered=True),
    ),
    # timm's RMSpropTF keeps its state under torch's names, with other meanings.
    "timm-efficientnet": (  # the recipe's eps and momentum, a larger weight decay
        "real",
        1.0,
        lambda ts: timm_optim().RMSpropTF(ts, lr=0.02, eps=1e-3, momentum=0.9, weight_decay=1e-2),
    ),
    "timm-centered-decoupled-corrected-caution": (
        "real",
        1.0,
        lambda ts: timm_optim().RMSpropTF(
            ts,
            **TORCH_BASE,
            momentum=0.9,
            centered=True,
            weight_decay=0.1,
            decoupled_decay=True,
            corrected_weight_decay=True,
            caution=True,
        ),  # fmt: skip
    ),
    "timm-lr_outside_momentum": (
        "real",
        1.0,
        lambda ts: timm_optim().RMSpropTF(ts, **TORCH_BASE, momentum=0.9, lr_in_momentum=False),
    ),
}


def _problem(kind, sign):
    if kind == "conv":
        return _conv_least_squares()
    return dense_problem(sign) if kind == "real" else complex_problem()


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_from_torch_continues_the_torch_run(case):
    kind, sign, make = TORCH_CASES[case]
    params0, grad = _problem(kind, sign)
    layout = TORCH_LAYOUT[kind]
    tensors = _to_torch_layout(params0, layout)
    optimizer = make(tensors)
    _torch_steps(optimizer, tensors, layout, grad, K)
    checkpoint = copy.deepcopy(optimizer.state_dict())
    params_k = _from_torch_layout(tensors, layout)
    theirs = _torch_steps(optimizer, tensors, layout, grad, N)

    tx, state = interop.from_torch(checkpoint, params_k, leaf_map=LEAF_MAPS[kind])
    assert jax.tree.structure(state) == jax.tree.structure(tx.init(params_k))
    _assert_continues(tx, state, params_k, grad, theirs)


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_to_torch_continues_the_jax_run(case):
    kind, sign, make = TORCH_CASES[case]
    params0, grad = _problem(kind, sign)
    layout = TORCH_LAYOUT[kind]
    # The JAX run is set up from an untouched torch optimizer's hyperparameters.
    template = make(_to_torch_layout(params0, layout))
    groups = template.param_groups
    if case.startswith("timm"):
        options = inspect.signature(presets.timm).parameters
        tx = presets.timm(**{k: v for k, v in groups[0].items() if k in options})
    elif len(groups) == 1:
        h = {k: groups[0][k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum")}
        tx = presets.torch(**h, centered=groups[0]["centered"], maximize=groups[0]["maximize"])
    else:
        tx = optax.multi_transform(
            {
                "a": presets.torch(lr=0.02, alpha=0.9, eps=1e-2, momentum=0.9),
                "b": presets.torch(lr=0.05, alpha=0.9, eps=1e-2, centered=True),
            },
            {"w": "a", "b": "b"},
        )
    params = {k: jnp.asarray(v) for k, v in params0.items()}
    trajectory, state = _jax_steps(tx, tx.init(params), params0, grad, K)
    params_k = trajectory[-1]
    ours, _ = _jax_steps(tx, state, params_k, grad, N)

    tensors = _to_torch_layout(params_k, layout)
    optimizer = make(tensors)
    state_dict = interop.to_torch(
        state, tx, params_k, param_groups=optimizer.param_groups, leaf_map=LEAF_MAPS[kind]
    )
    optimizer.load_state_dict(state_dict)
    theirs = _torch_steps(optimizer, tensors, layout, grad, N)
    _assert_same(ours, theirs)

    tensors = _to_torch_layout(params_k, layout)
    fresh = _torch_steps(make(tensors), tensors, layout, grad, N)
    assert _max_difference(fresh, ours) > 100 * ATOL


def test_torch_round_trip_is_exact():
    """state_dict -> (tx, state) -> state_dict gives torch's own tensors back, bit for bit,
    with the checkpoint's own param_groups (nothing is remembered between the calls)."""
    params0, grad = dense_problem()
    layout = TORCH_LAYOUT["real"]
    tensors = _to_torch_layout(params0, layout)
    optimizer = TORCH_CASES["two_groups"][2](tensors)
    _torch_steps(optimizer, tensors, layout, grad, K)
    checkpoint = copy.deepcopy(optimizer.state_dict())
    params_k = _from_torch_layout(tensors, layout)
    tx, state = interop.from_torch(checkpoint, params_k, leaf_map=LEAF_MAPS["real"])

    assert isinstance(state, optax.MultiTransformState)
    inner = {label: s.inner_state for label, s in state.inner_states.items()}
    assert sorted(inner) == ["group0", "group1"]
    assert all(isinstance(s, RMSPropState) for s in inner.values())
    assert isinstance(inner["group0"].nu["b"], optax.MaskedNode)  # b is in the other group
    assert inner["group0"].mu is None and inner["group1"].momentum is None
    np.testing.assert_array_equal(
        inner["group0"].momentum["w"], checkpoint["state"][0]["momentum_buffer"].numpy().T
    )
    assert int(inner["group1"].count) == K

    back = interop.to_torch(
        state, tx, params_k, param_groups=checkpoint["param_groups"], leaf_map=LEAF_MAPS["real"]
    )
    assert back["param_groups"] == checkpoint["param_groups"]
    assert back["state"].keys() == checkpoint["state"].keys()
    for index, entry in checkpoint["state"].items():
        assert back["state"][index].keys() == entry.keys()
        for key, value in entry.items():
            assert back["state"][index][key].dtype == value.dtype, (index, key)
            torch.testing.assert_close(back["state"][index][key], value, rtol=0, atol=0)
    optimizer.load_state_dict(back)  # torch takes it


def test_conv_kernels_take_the_permutation_one_way_and_its_inverse_back():
    """A Conv2d weight (O, I, H, W) is the leaf (H, W, I, O): from_torch applies Leaf.axes
    (2, 3, 1, 0), to_torch its inverse (3, 2, 0, 1). With all four sizes equal a wrong
    inverse keeps the shape, so only the values can tell: both are checked exactly."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, kernel_size=3, bias=False)
    optimizer = torch.optim.RMSprop(conv.parameters(), **TORCH_BASE, momentum=0.9, centered=True)
    for _ in range(3):
        conv.weight.grad = torch.randn_like(conv.weight)
        optimizer.step()
    checkpoint = copy.deepcopy(optimizer.state_dict())
    kernel = conv.weight.detach().numpy().transpose(2, 3, 1, 0)  # HWIO
    leaf_map = {"kernel": interop.Leaf(0, axes=(2, 3, 1, 0))}
    tx, state = interop.from_torch(checkpoint, {"kernel": kernel}, leaf_map=leaf_map)
    for field, name in (("nu", "square_avg"), ("mu", "grad_avg"), ("momentum", "momentum_buffer")):
        theirs = checkpoint["state"][0][name]
        assert len(set(theirs.shape)) == 1 and not torch.equal(theirs, theirs.permute(3, 2, 0, 1))
        np.testing.assert_array_equal(
            getattr(state, field)["kernel"], theirs.permute(2, 3, 1, 0).numpy(), err_msg=field
        )
    back = interop.to_torch(
        state, tx, {"kernel": kernel}, param_groups=optimizer.param_groups, leaf_map=leaf_map
    )
    for name, value in checkpoint["state"][0].items():
        torch.testing.assert_close(back["state"][0][name], value, rtol=0, atol=0, msg=name)


def _named_linears(seed, steps, **layers):
    """A torch ``Sequential`` of the ``Linear`` layers ``name=(in, out)``, in that order, its
    RMSprop (momentum 0.9) built from ``named_parameters()``, and that optimizer's
    ``state_dict`` after ``steps`` steps of random gradients."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential()
    for name, (fan_in, fan_out) in layers.items():
        model.add_module(name, torch.nn.Linear(fan_in, fan_out))
    optimizer = torch.optim.RMSprop(model.named_parameters(), **TORCH_BASE, momentum=0.9)
    for _ in range(steps):
        for t in model.parameters():
            t.grad = torch.randn_like(t)
        optimizer.step()
    return model, optimizer, copy.deepcopy(optimizer.state_dict())


def test_from_torch_matches_named_parameters_by_path():
    """An optimizer built from named_parameters() keeps the names: "z.weight" is the leaf at
    params["z"]["weight"], whatever the order (here z before a in torch, a before z in JAX),
    checked value by value; without names, several leaves need leaf_map or match='order'."""
    # z before a; not square: see the test below
    model, optimizer, checkpoint = _named_linears(1, 3, z=(3, 2), a=(3, 2))
    assert checkpoint["param_groups"][0]["param_names"][0] == "z.weight"
    params = {
        name: {kind: getattr(layer, kind).detach().numpy().copy() for kind in ("weight", "bias")}
        for name, layer in model.named_children()
    }
    tx, state = interop.from_torch(checkpoint, params)
    for index, name in enumerate(checkpoint["param_groups"][0]["param_names"]):
        layer, kind = name.split(".")
        for field, key in (("nu", "square_avg"), ("momentum", "momentum_buffer")):
            np.testing.assert_array_equal(
                getattr(state, field)[layer][kind], checkpoint["state"][index][key].numpy()
            )
    back = interop.to_torch(state, tx, params, param_groups=optimizer.param_groups)
    for index, entry in checkpoint["state"].items():
        for key, value in entry.items():
            torch.testing.assert_close(back["state"][index][key], value, rtol=0, atol=0)

    transposed = {"z": {"weight": params["z"]["weight"].T, "bias": params["z"]["bias"]}}
    transposed["a"] = params["a"]
    with pytest.raises(ValueError, match=r"params\['x'\]\['bias'\] \(path 'x/bias'\) matches no"):
        interop.from_torch(checkpoint, {"x": params["z"], "a": params["a"]})
    named = {"z": {"weight": interop.Leaf("z.weight", (1, 0)), "bias": "z.bias"}}
    named["a"] = {"weight": "a.weight", "bias": "a.bias"}
    _, by_name = interop.from_torch(checkpoint, transposed, leaf_map=named)
    np.testing.assert_array_equal(by_name.nu["z"]["weight"], state.nu["z"]["weight"].T)

    for group in checkpoint["param_groups"]:
        del group["param_names"]
    with pytest.raises(ValueError, match=r"names no parameters.*pass leaf_map.*match='order'"):
        interop.from_torch(checkpoint, params)
    with pytest.raises(ValueError, match=r"params\['a'\]\['bias'\] \(torch index 0\).*shape"):
        interop.from_torch(checkpoint, params, match="order")  # JAX's order: a, then z
    listed = [
        params["z"]["weight"],
        params["z"]["bias"],
        params["a"]["weight"],
        params["a"]["bias"],
    ]
    _, in_order = interop.from_torch(checkpoint, listed, match="order")
    np.testing.assert_array_equal(in_order.nu[1], state.nu["z"]["bias"])


def test_to_torch_is_the_same_for_a_preset_and_a_converted_tx():
    """to_torch needs nothing from_torch remembered: a preset with the same
    hyperparameters gives the same state_dict, and interop keeps no module-level state."""
    import optax_rmsprop.interop._keras as interop_keras
    import optax_rmsprop.interop._state as interop_state
    import optax_rmsprop.interop._torch as interop_torch

    def module_state():
        return {
            (module.__name__, name): copy.deepcopy(value)
            for module in (interop, interop_keras, interop_state, interop_torch)
            for name, value in vars(module).items()
            if isinstance(value, (dict, list, set)) and not name.startswith("__")
        }

    before = module_state()
    checkpoint, params = _torch_checkpoint(momentum=0.9, centered=True)
    tx, state = interop.from_torch(checkpoint, params, leaf_map=LEAF_MAPS["real"])
    preset = presets.torch(**TORCH_BASE, momentum=0.9, centered=True)
    groups = checkpoint["param_groups"]
    ours = interop.to_torch(state, tx, params, param_groups=groups, leaf_map=LEAF_MAPS["real"])
    theirs = interop.to_torch(
        state, preset, params, param_groups=groups, leaf_map=LEAF_MAPS["real"]
    )
    assert ours["param_groups"] == theirs["param_groups"] == groups
    for index, entry in checkpoint["state"].items():
        for key, value in entry.items():
            torch.testing.assert_close(ours["state"][index][key], value, rtol=0, atol=0)
            torch.testing.assert_close(theirs["state"][index][key], value, rtol=0, atol=0)
    assert module_state().keys() == before.keys()
    for key, value in module_state().items():
        assert value == before[key], key
    assert not any(
        isinstance(value, (weakref.WeakKeyDictionary, weakref.WeakValueDictionary))
        for module in (interop, interop_keras, interop_state, interop_torch)
        for value in vars(module).values()
    )


def test_torch_complex_buffers_are_pairs():
    params0, grad = complex_problem()
    layout = TORCH_LAYOUT["complex"]
    tensors = _to_torch_layout(params0, layout)
    optimizer = torch.optim.RMSprop(tensors, **TORCH_BASE, momentum=0.9)
    _torch_steps(optimizer, tensors, layout, grad, 3)
    tx, state = interop.from_torch(optimizer.state_dict(), _from_torch_layout(tensors, layout))
    square_avg = optimizer.state[tensors[0]]["square_avg"]
    assert square_avg.dtype == torch.complex64 and state.nu["z"].shape == (4, 2)
    np.testing.assert_array_equal(state.nu["z"], torch.view_as_real(square_avg).numpy())


def test_a_parameter_never_stepped_gets_zeros():
    """torch keeps no state for a parameter that never had a gradient; torch would start it at
    zeros, and so does the converted state."""
    params0, grad = dense_problem()
    tensors = _to_torch_layout(params0, TORCH_LAYOUT["real"])
    optimizer = torch.optim.RMSprop(tensors, **TORCH_BASE, momentum=0.9)
    tensors[0].grad = torch.ones_like(tensors[0])
    optimizer.step()  # only w has a gradient
    assert len(optimizer.state_dict()["state"]) == 1
    _, state = interop.from_torch(optimizer.state_dict(), params0, leaf_map=LEAF_MAPS["real"])
    assert int(state.count) == 1 and not np.any(state.nu["b"]) and not np.any(state.momentum["b"])
    assert np.all(np.asarray(state.nu["w"]) > 0)


def test_from_torch_fills_a_given_tx():
    """A tx of one's own (here with a bfloat16 momentum buffer) gets torch's state, cast."""
    params0, grad = dense_problem()
    tensors = _to_torch_layout(params0, TORCH_LAYOUT["real"])
    optimizer = torch.optim.RMSprop(tensors, **TORCH_BASE, momentum=0.9)
    _torch_steps(optimizer, tensors, TORCH_LAYOUT["real"], grad, 3)
    params = _from_torch_layout(tensors, TORCH_LAYOUT["real"])
    tx = presets.torch(**TORCH_BASE, momentum=0.9, mu_dtype=jnp.bfloat16)
    same, state = interop.from_torch(
        optimizer.state_dict(), params, tx=tx, leaf_map=LEAF_MAPS["real"]
    )
    assert same is tx and state.momentum["w"].dtype == jnp.bfloat16
    tx.update(jax.tree.map(jnp.asarray, grad(params)), state, params)  # a state tx accepts


# PyTorch LR schedulers: the lr continues from the scheduler's position.

LR = torch.optim.lr_scheduler
# (optimizer, scheduler) makers; K + N = 50 steps, with each scheduler's changes on both
# sides of the conversion at step K = 20.
TORCH_SCHEDULERS = {
    "StepLR": lambda o: LR.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda o: LR.MultiStepLR(o, milestones=[5, 30, 30, 41], gamma=0.5),
    "ExponentialLR": lambda o: LR.ExponentialLR(o, gamma=0.95),
    "CosineAnnealingLR": lambda o: LR.CosineAnnealingLR(o, T_max=35, eta_min=0.002),
    "LinearLR": lambda o: LR.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=30),
    "OneCycleLR": lambda o: LR.OneCycleLR(o, max_lr=0.05, total_steps=K + N),  # cycles momentum
    "OneCycleLR-linear-three_phase": lambda o: LR.OneCycleLR(
        o,
        0.05,
        total_steps=K + N + 5,
        anneal_strategy="linear",
        three_phase=True,
        cycle_momentum=False,
    ),
    "SequentialLR": lambda o: LR.SequentialLR(
        o, [LR.LinearLR(o, 0.1, total_iters=5), LR.CosineAnnealingLR(o, T_max=30)], [10]
    ),
    "SequentialLR-milestones_after": lambda o: LR.SequentialLR(
        o,
        [
            LR.OneCycleLR(o, 0.05, total_steps=25, cycle_momentum=False),
            LR.ExponentialLR(o, 0.9),
            LR.StepLR(o, 5, 0.5),
        ],
        [25, 35],
    ),
}
# Ours is the closed form computed in float32 (a quotient, π·x, sin or exp, the products:
# each a rounding of up to an ulp), torch's in float64 (recursively for some): 4 float32 ulp.
LR_RTOL = 2.0**-21


@pytest.mark.parametrize("groups", ["one_group", "two_groups"])
@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_from_torch_continues_the_scheduler(name, groups):
    """Train K steps in torch under the scheduler, convert, continue N steps: every step's lr
    (and OneCycleLR's momentum) is torch's, and the weights are torch's continuation."""
    params0, grad = dense_problem()
    layout = TORCH_LAYOUT["real"]
    tensors = _to_torch_layout(params0, layout)
    if groups == "one_group":
        optimizer = torch.optim.RMSprop(tensors, **TORCH_BASE, momentum=0.9)
    else:
        optimizer = torch.optim.RMSprop(_groups(tensors), alpha=0.9, eps=1e-2)
    scheduler = TORCH_SCHEDULERS[name](optimizer)

    def steps(n):
        trajectory, lrs = [], []
        for _ in range(n):
            lrs.append([(g["lr"], g["momentum"]) for g in optimizer.param_groups])
            trajectory += _torch_steps(optimizer, tensors, layout, grad, 1)
            scheduler.step()
        return trajectory, lrs

    steps(K)
    params_k = _from_torch_layout(tensors, layout)
    tx, state = interop.from_torch(
        optimizer, params_k, scheduler=scheduler, leaf_map=LEAF_MAPS["real"]
    )
    checkpoint = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
    theirs, lrs = steps(N)

    schedules = interop.torch_schedules(checkpoint[1], checkpoint[0])
    cycles = name == "OneCycleLR"
    assert [sorted(s) for s in schedules] == [["lr", "momentum"] if cycles else ["lr"]] * len(
        optimizer.param_groups
    )
    jitted = [jax.jit(s["lr"]) for s in schedules]  # as tx.update calls them
    for i, step_lrs in enumerate(lrs):
        for g, (lr, momentum) in enumerate(step_lrs):
            np.testing.assert_allclose(
                jitted[g](K + i), np.float32(lr), rtol=LR_RTOL, atol=0, err_msg=f"jit {K + i}"
            )
            np.testing.assert_allclose(
                schedules[g]["lr"](K + i),
                np.float32(lr),
                rtol=LR_RTOL,
                atol=0,
                err_msg=f"group {g}, step {K + i}",
            )
            if cycles:
                np.testing.assert_allclose(
                    schedules[g]["momentum"](K + i), np.float32(momentum), rtol=LR_RTOL, atol=0
                )
    assert len({lr for step_lrs in lrs for lr, _ in step_lrs}) > 2  # the lr does change
    ours, _ = _jax_steps(tx, state, params_k, grad, N)
    _assert_same(ours, theirs)


def test_from_torch_refuses_other_schedulers_by_name():
    _, params = _torch_checkpoint()
    tensors = _to_torch_layout(params, TORCH_LAYOUT["real"])
    optimizer = torch.optim.RMSprop(tensors, **TORCH_BASE)
    for make, name in (
        (lambda: LR.CosineAnnealingWarmRestarts(optimizer, T_0=5), "CosineAnnealingWarmRestarts"),
        (lambda: LR.ConstantLR(optimizer, factor=0.5), "ConstantLR"),
        (lambda: LR.LambdaLR(optimizer, lambda e: 0.9**e), "LambdaLR"),
    ):
        scheduler = make()
        for given in (scheduler, scheduler.state_dict()):
            with pytest.raises(ValueError, match=rf"cannot carry a {name}.*optax schedule"):
                interop.from_torch(optimizer, params, scheduler=given, leaf_map=LEAF_MAPS["real"])
    with pytest.raises(ValueError, match="pass scheduler or tx, not both"):
        interop.from_torch(
            optimizer,
            params,
            scheduler=LR.StepLR(optimizer, 5),
            tx=presets.torch(),
            leaf_map=LEAF_MAPS["real"],
        )


def _per_epoch(optimizer, scheduler, tensors, grad, epochs, steps_per_epoch):
    """torch's documented loop: scheduler.step() once per epoch, after its optimizer steps."""
    trajectory = []
    for _ in range(epochs):
        trajectory += _torch_steps(optimizer, tensors, TORCH_LAYOUT["real"], grad, steps_per_epoch)
        scheduler.step()
    return trajectory


@pytest.mark.parametrize("extra", [0, 2], ids=["at_an_epoch", "mid_epoch"])
def test_a_scheduler_stepped_per_epoch_continues_when_its_cadence_is_given(extra):
    """StepLR(step_size=2, gamma=0.5) stepped once per epoch of 5 steps: the position (3)
    and the step count (15, or 17 mid-epoch) disagree, so without the cadence the call is
    refused; with it, the run continues on torch's path."""
    params0, grad = dense_problem()
    layout = TORCH_LAYOUT["real"]
    tensors = _to_torch_layout(params0, layout)
    optimizer = torch.optim.RMSprop(tensors, **TORCH_BASE, momentum=0.9)
    scheduler = LR.StepLR(optimizer, step_size=2, gamma=0.5)
    _per_epoch(optimizer, scheduler, tensors, grad, 3, 5)
    _torch_steps(optimizer, tensors, layout, grad, extra)
    checkpoint = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
    params_k = _from_torch_layout(tensors, layout)
    theirs = _torch_steps(optimizer, tensors, layout, grad, 5 - extra)
    scheduler.step()
    theirs += _per_epoch(optimizer, scheduler, tensors, grad, 3, 5)

    with pytest.raises(
        ValueError, match=r"at step 3 .* taken 1[57] optimizer steps: pass steps_per_scheduler_step"
    ):
        interop.from_torch(
            *checkpoint[:1], params_k, scheduler=checkpoint[1], leaf_map=LEAF_MAPS["real"]
        )
    with pytest.raises(ValueError, match=r"do not fit 3 optimizer steps per scheduler step"):
        interop.from_torch(
            checkpoint[0], params_k, scheduler=checkpoint[1], steps_per_scheduler_step=3,
            leaf_map=LEAF_MAPS["real"],
        )  # fmt: skip
    tx, state = interop.from_torch(
        checkpoint[0], params_k, scheduler=checkpoint[1], steps_per_scheduler_step=5,
        leaf_map=LEAF_MAPS["real"],
    )  # fmt: skip
    ours, _ = _jax_steps(tx, state, params_k, grad, len(theirs))
    _assert_same(ours, theirs)
    constant, _ = interop.from_torch(
        checkpoint[0], params_k, scheduler="constant", leaf_map=LEAF_MAPS["real"]
    )
    kept, _ = _jax_steps(constant, state, params_k, grad, len(theirs))
    assert _max_difference(kept, theirs) > 100 * ATOL  # the schedule shows


def test_from_torch_refuses_a_schedulers_traces_without_the_scheduler():
    """Groups with initial_lr were under a scheduler: without scheduler= the lr would stay
    constant, silently; scheduler='constant' says that is meant."""
    params0, grad = dense_problem()
    layout = TORCH_LAYOUT["real"]
    tensors = _to_torch_layout(params0, layout)
    optimizer = torch.optim.RMSprop(tensors, **TORCH_BASE)
    scheduler = LR.ExponentialLR(optimizer, gamma=0.9)
    for _ in range(3):
        _torch_steps(optimizer, tensors, layout, grad, 1)
        scheduler.step()
    params = _from_torch_layout(tensors, layout)
    with pytest.raises(ValueError, match=r"'initial_lr'.*pass scheduler=.*scheduler='constant'"):
        interop.from_torch(optimizer.state_dict(), params, leaf_map=LEAF_MAPS["real"])
    tx, state = interop.from_torch(
        optimizer.state_dict(), params, scheduler="constant", leaf_map=LEAF_MAPS["real"]
    )
    updates, _ = tx.update(jax.tree.map(jnp.asarray, grad(params)), state, params)
    scale = presets.torch(**dict(TORCH_BASE, lr=optimizer.param_groups[0]["lr"]))
    expected, _ = scale.update(jax.tree.map(jnp.asarray, grad(params)), state, params)
    np.testing.assert_array_equal(updates["w"], expected["w"])


def test_to_torch_resumes_into_a_fresh_optimizer_and_scheduler():
    """Resuming builds a new optimizer (lr = its first lr) and scheduler, then loads both
    state_dicts: the groups to_torch returns carry tx's lr at the state's count, so the run
    goes on as torch's own; the fresh group's lr (the control) does not."""
    params0, grad = dense_problem()
    layout = TORCH_LAYOUT["real"]

    def make(tensors):
        optimizer = torch.optim.RMSprop(tensors, **TORCH_BASE, momentum=0.9)
        return optimizer, LR.CosineAnnealingLR(optimizer, T_max=K)  # lr 0 at step K

    tensors = _to_torch_layout(params0, layout)
    optimizer, scheduler = make(tensors)
    for _ in range(K - 2):
        _torch_steps(optimizer, tensors, layout, grad, 1)
        scheduler.step()
    checkpoint = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
    params_k = _from_torch_layout(tensors, layout)

    def continued(state_dict):
        tensors = _to_torch_layout(params_k, layout)
        fresh, fresh_scheduler = make(tensors)
        fresh.load_state_dict(copy.deepcopy(state_dict))  # torch keeps the tensors given
        fresh_scheduler.load_state_dict(checkpoint[1])
        trajectory = []
        for _ in range(N):
            trajectory += _torch_steps(fresh, tensors, layout, grad, 1)
            fresh_scheduler.step()
        return trajectory

    theirs = continued(checkpoint[0])
    tx, state = interop.from_torch(
        checkpoint[0], params_k, scheduler=checkpoint[1], leaf_map=LEAF_MAPS["real"]
    )
    fresh_groups = make(_to_torch_layout(params_k, layout))[0].param_groups
    back = interop.to_torch(
        state, tx, params_k, param_groups=fresh_groups, leaf_map=LEAF_MAPS["real"]
    )
    assert back["param_groups"][0]["lr"] != fresh_groups[0]["lr"]
    _assert_same(continued(back), theirs)
    back["param_groups"][0]["lr"] = fresh_groups[0]["lr"]
    assert _max_difference(continued(back), theirs) > 100 * ATOL


def test_a_square_linear_weight_needs_its_axes():
    """A square Linear weight and its transpose have one shape: matched without axes it is
    refused, naming both ways to say which; with axes it converts, transposed."""
    model, optimizer, checkpoint = _named_linears(0, 2, fc=(3, 3))
    kernel = model.fc.weight.detach().numpy().T  # JAX's (in, out)
    params = {"fc": {"weight": kernel, "bias": model.fc.bias.detach().numpy()}}
    refusal = r"params\['fc'\]\['weight'\] is square \(3, 3\).*axes=\(1, 0\).*axes=None"
    with pytest.raises(ValueError, match=refusal):
        interop.from_torch(checkpoint, params)
    with pytest.raises(ValueError, match=refusal):
        interop.from_torch(checkpoint, params, leaf_map={"fc": {"weight": 0, "bias": 1}})
    leaf_map = {"fc": {"weight": interop.Leaf("fc.weight", axes=(1, 0)), "bias": "fc.bias"}}
    tx, state = interop.from_torch(checkpoint, params, leaf_map=leaf_map)
    np.testing.assert_array_equal(
        state.nu["fc"]["weight"], checkpoint["state"][0]["square_avg"].numpy().T
    )
    with pytest.raises(ValueError, match=refusal):
        interop.to_torch(state, tx, params, param_groups=optimizer.param_groups)
    kept = {"fc": {"weight": interop.Leaf("fc.weight", axes=None), "bias": "fc.bias"}}
    _, untransposed = interop.from_torch(checkpoint, params, leaf_map=kept)
    np.testing.assert_array_equal(untransposed.nu["fc"]["weight"], state.nu["fc"]["weight"].T)


# flax NNX: a CNN carried from torch into nnx.Optimizer and back.


def _cnn_problem(seed=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 1, 6, 6)).astype(np.float32)  # torch's (N, C, H, W)
    y = rng.normal(size=(8, 3)).astype(np.float32)
    return x, y


class _TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.fc = torch.nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))  # flattens (C, H, W)


def _nnx_cnn(torch_model):
    from flax import nnx

    class CNN(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(1, 2, (3, 3), padding="VALID", rngs=rngs)
            self.fc = nnx.Linear(2 * 4 * 4, 3, rngs=rngs)

        def __call__(self, x):  # x is NHWC; torch's flatten order is (C, H, W)
            h = jnp.tanh(self.conv(x)).transpose(0, 3, 1, 2)
            return self.fc(h.reshape(h.shape[0], -1))

    model = CNN(nnx.Rngs(0))
    weights = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
    model.conv.kernel[...] = weights["conv.weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
    model.conv.bias[...] = weights["conv.bias"]
    model.fc.kernel[...] = weights["fc.weight"].T
    model.fc.bias[...] = weights["fc.bias"]
    return model


def test_a_cnn_goes_into_nnx_optimizer_and_back():
    """The NNX recipe of the porting guide: from_torch with the model's nnx.State of params
    and a dict leaf_map, nnx.update into nnx.Optimizer's opt_state, steps in NNX, then
    nnx.as_pure(opt_state) out through to_torch: each side continues the other's run."""
    from flax import nnx

    x, y = _cnn_problem()
    torch.manual_seed(0)
    model_t = _TorchCNN()
    optimizer_t = torch.optim.RMSprop(model_t.named_parameters(), **TORCH_BASE, momentum=0.9)

    def torch_steps(model, optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            ((model(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean().backward()
            optimizer.step()
        return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    torch_steps(model_t, optimizer_t, 5)
    checkpoint = copy.deepcopy(optimizer_t.state_dict())
    model = _nnx_cnn(model_t)
    theirs = torch_steps(model_t, optimizer_t, 10)

    leaf_map = {
        "conv": {"kernel": interop.Leaf("conv.weight", (2, 3, 1, 0)), "bias": "conv.bias"},
        "fc": {"kernel": interop.Leaf("fc.weight", (1, 0)), "bias": "fc.bias"},
    }
    params = nnx.state(model, nnx.Param)
    tx, state = interop.from_torch(checkpoint, params, leaf_map=leaf_map)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    nnx.update(optimizer.opt_state, nnx.state(state))
    inside = nnx.as_pure(optimizer.opt_state)
    assert int(inside.count) == 5  # the converted state went in, not a fresh one
    np.testing.assert_array_equal(inside.momentum["fc"]["kernel"], state.momentum["fc"]["kernel"])

    @nnx.jit
    def nnx_step(model, optimizer):
        loss = lambda m: ((m(jnp.asarray(x.transpose(0, 2, 3, 1))) - y) ** 2).mean()  # noqa: E731
        optimizer.update(model, nnx.grad(loss)(model))

    def nnx_steps(steps):
        for _ in range(steps):
            nnx_step(model, optimizer)

    nnx_steps(10)
    ours = _TorchCNN()
    kernel = np.asarray(model.conv.kernel[...]).transpose(3, 2, 0, 1).copy()  # HWIO -> OIHW
    ours.load_state_dict({
        "conv.weight": torch.from_numpy(kernel),
        "conv.bias": torch.from_numpy(np.array(model.conv.bias[...])),
        "fc.weight": torch.from_numpy(np.asarray(model.fc.kernel[...]).T.copy()),
        "fc.bias": torch.from_numpy(np.array(model.fc.bias[...])),
    })  # fmt: skip
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(value.numpy(), theirs[key], rtol=RTOL, atol=ATOL, err_msg=key)

    # And back: the NNX run continued in torch.
    state = nnx.as_pure(optimizer.opt_state)
    params = nnx.as_pure(nnx.state(model, nnx.Param))
    optimizer_t = torch.optim.RMSprop(ours.named_parameters(), **TORCH_BASE, momentum=0.9)
    optimizer_t.load_state_dict(
        interop.to_torch(
            state, tx, params, param_groups=optimizer_t.param_groups, leaf_map=leaf_map
        )
    )
    back = torch_steps(ours, optimizer_t, 10)
    nnx_steps(10)
    np.testing.assert_allclose(
        back["fc.weight"], np.asarray(model.fc.kernel[...]).T, rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        back["conv.weight"],
        np.asarray(model.conv.kernel[...]).transpose(3, 2, 0, 1),
        rtol=RTOL,
        atol=ATOL,
    )


# ---------------------------------------------------------------------------
# Keras 3.

KERAS_CASES = {
    "plain": dict(KERAS_BASE),
    "momentum": dict(KERAS_BASE, momentum=0.9),
    "centered": dict(KERAS_BASE, centered=True),
    "centered-momentum-weight_decay": dict(
        KERAS_BASE, momentum=0.9, centered=True, weight_decay=0.1
    ),
}


def _keras_variables(params):
    return {k: keras.Variable(np.array(v), name=k) for k, v in params.items()}


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_from_keras_continues_the_keras_run(case):
    kwargs = KERAS_CASES[case]
    params0, grad = dense_problem()
    variables = _keras_variables(params0)
    optimizer = keras.optimizers.RMSprop(**kwargs)
    _keras_steps(optimizer, variables, grad, K)
    params_k = {k: np.array(v.value) for k, v in variables.items()}
    tx, state = interop.from_keras(optimizer, params_k)  # leaves matched by path: "w", "b"
    assert int(state.count) == K
    theirs = _keras_steps(optimizer, variables, grad, N)
    _assert_continues(tx, state, params_k, grad, theirs)


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_to_keras_continues_the_jax_run(case):
    kwargs = KERAS_CASES[case]
    params0, grad = dense_problem()
    tx = presets.keras(**kwargs)
    params = {k: jnp.asarray(v) for k, v in params0.items()}
    trajectory, state = _jax_steps(tx, tx.init(params), params0, grad, K)
    params_k = trajectory[-1]
    ours, _ = _jax_steps(tx, state, params_k, grad, N)

    variables = _keras_variables(params_k)
    optimizer = keras.optimizers.RMSprop(**kwargs)
    optimizer.build(list(variables.values()))
    interop.to_keras(state, tx, params_k, optimizer)
    assert int(optimizer.iterations.value) == K
    theirs = _keras_steps(optimizer, variables, grad, N)
    _assert_same(ours, theirs)

    variables = _keras_variables(params_k)
    fresh = _keras_steps(keras.optimizers.RMSprop(**kwargs), variables, grad, N)
    assert _max_difference(fresh, ours) > 100 * ATOL


def test_keras_momentum_is_minus_ours():
    """Keras's momentum holds +ηg/√(v + ε) and is subtracted; ours is the update, added."""
    params0, grad = dense_problem()
    variables = _keras_variables(params0)
    optimizer = keras.optimizers.RMSprop(**KERAS_BASE, momentum=0.9)
    _keras_steps(optimizer, variables, grad, 1)
    _, state = interop.from_keras(optimizer, params0)
    by_name = {v.name: np.asarray(v.value) for v in optimizer.variables}
    np.testing.assert_array_equal(state.momentum["w"], -by_name["w_momentum"])
    assert np.all(np.sign(state.momentum["w"]) == -np.sign(grad(params0)["w"]))


def test_keras_round_trip_is_exact():
    params0, grad = dense_problem()
    variables = _keras_variables(params0)
    optimizer = keras.optimizers.RMSprop(**KERAS_CASES["centered-momentum-weight_decay"])
    _keras_steps(optimizer, variables, grad, 3)
    tx, state = interop.from_keras(optimizer, params0)
    other = keras.optimizers.RMSprop(**KERAS_CASES["centered-momentum-weight_decay"])
    other.build(list(_keras_variables(params0).values()))
    interop.to_keras(state, tx, params0, other)
    assert [v.name for v in other.variables] == [v.name for v in optimizer.variables]
    for a, b in zip(other.variables, optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value), err_msg=a.name)


def test_keras_leaves_by_nested_path_and_by_leaf_map():
    """``params["dense"]["kernel"]`` is the variable ``dense/kernel``; a leaf_map can say it."""
    params0, _ = dense_problem()
    variables = [
        keras.Variable(params0["w"], name="kernel"),
        keras.Variable(params0["b"], name="bias"),
    ]
    optimizer = keras.optimizers.RMSprop(**KERAS_BASE)
    optimizer.apply_gradients([(jnp.ones_like(v.value), v) for v in variables])
    _, by_path = interop.from_keras(optimizer, {"bias": params0["b"], "kernel": params0["w"]})
    _, by_map = interop.from_keras(
        optimizer, {"x": params0["w"], "y": params0["b"]}, leaf_map={"x": "kernel", "y": "bias"}
    )
    np.testing.assert_array_equal(by_path.nu["kernel"], by_map.nu["x"])
    assert by_path.nu["bias"].shape == (3,) and by_map.nu["y"].shape == (3,)


# ---------------------------------------------------------------------------
# Keras learning-rate schedules: continued at the optimizer's iterations.

SCHEDULES = keras.optimizers.schedules
KERAS_SCHEDULES = {
    "ExponentialDecay": lambda: SCHEDULES.ExponentialDecay(0.05, 10, 0.5),
    "ExponentialDecay-staircase": lambda: SCHEDULES.ExponentialDecay(0.05, 7, 0.5, True),
    "PiecewiseConstantDecay": lambda: SCHEDULES.PiecewiseConstantDecay(
        [15, 30], [0.05, 0.02, 0.01]
    ),
    "CosineDecay": lambda: SCHEDULES.CosineDecay(0.05, decay_steps=40, alpha=0.1),
    "CosineDecay-warmup": lambda: SCHEDULES.CosineDecay(
        0.01, decay_steps=30, alpha=0.1, warmup_target=0.05, warmup_steps=25
    ),
    "PolynomialDecay": lambda: SCHEDULES.PolynomialDecay(0.05, 40, 0.005, power=2.0),
    "PolynomialDecay-cycle": lambda: SCHEDULES.PolynomialDecay(
        0.05, 15, 0.005, power=0.5, cycle=True
    ),
    "InverseTimeDecay": lambda: SCHEDULES.InverseTimeDecay(0.05, 10, 0.5, staircase=True),
}


@pytest.mark.parametrize("name", sorted(KERAS_SCHEDULES))
def test_from_keras_continues_the_schedule(name):
    """Train K steps in Keras under the schedule, convert, continue N steps: every step's
    learning rate is Keras's, and the weights are Keras's continuation."""
    params0, grad = dense_problem()
    variables = _keras_variables(params0)
    schedule = KERAS_SCHEDULES[name]()
    kwargs = dict(KERAS_BASE, learning_rate=schedule, momentum=0.9)
    optimizer = keras.optimizers.RMSprop(**kwargs)
    _keras_steps(optimizer, variables, grad, K)
    params_k = {k: np.array(v.value) for k, v in variables.items()}
    tx, state = interop.from_keras(optimizer, params_k)
    theirs, lrs = [], []
    for _ in range(N):
        lrs.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        theirs += _keras_steps(optimizer, variables, grad, 1)

    ours_lr = interop.keras_schedule(schedule)
    jitted = jax.jit(ours_lr)  # as tx.update calls it
    for i, lr in enumerate(lrs):
        np.testing.assert_allclose(jitted(K + i), lr, rtol=LR_RTOL, atol=0, err_msg=f"jit {K + i}")
        np.testing.assert_allclose(
            ours_lr(K + i), lr, rtol=LR_RTOL, atol=0, err_msg=f"step {K + i}"
        )
    assert len(set(lrs)) > 1  # the learning rate does change
    ours, _ = _jax_steps(tx, state, params_k, grad, N)
    _assert_same(ours, theirs)


def test_from_keras_refuses_other_schedules_by_name():
    class Halving(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.1 * 0.5 ** keras.ops.cast(step, "float32")

    params0, _ = dense_problem()
    for schedule, name in (
        (SCHEDULES.CosineDecayRestarts(0.1, 10), "CosineDecayRestarts"),
        (Halving(), "Halving"),
    ):
        optimizer = keras.optimizers.RMSprop(learning_rate=schedule)
        optimizer.build(list(_keras_variables(params0).values()))
        with pytest.raises(ValueError, match=rf"cannot carry the learning rate {name}.*optax"):
            interop.from_keras(optimizer, params0)
        tx = presets.keras(learning_rate=optax.constant_schedule(0.1))
        interop.from_keras(optimizer, params0, tx=tx)


# ---------------------------------------------------------------------------
# Keras models: variables matched to leaves by path, whatever the order.


def _dense_model(kind):
    """A two-layer model whose layers' names sort against their order (z before a), all
    kernels (3, 3) and biases (3,), so that leaves taken in the wrong order fit their
    shapes. Returns the model and, per layer in model order, its leaf's path in params."""
    if kind == "sequential":
        layers = [keras.layers.Dense(3, name="z"), keras.layers.Dense(3, name="a")]
        return keras.Sequential([keras.Input((3,)), *layers]), [("z",), ("a",)]
    if kind == "functional":
        x = keras.Input((3,))
        y = keras.layers.Dense(3, name="a")(keras.layers.Dense(3, name="z")(x))
        return keras.Model(x, y), [("z",), ("a",)]
    inner = keras.Sequential([keras.layers.Dense(3, name="z")], name="inner")
    model = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(3, name="a")])
    return model, [("inner", "z"), ("a",)]


def _model_problem(where, seed=3):
    """``½ mean ‖tanh(X K₀ + b₀) K₁ + b₁ − Y‖²`` over the layers in model order, with params
    keyed by the layers' paths; the gradient by jax.grad at the given (NumPy) params."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = rng.normal(size=(16, 3)).astype(np.float32)

    def get(p, path):
        for key in path:
            p = p[key]
        return p

    def loss(p):
        h = jnp.tanh(x @ get(p, where[0])["kernel"] + get(p, where[0])["bias"])
        return 0.5 * jnp.mean(
            jnp.sum((h @ get(p, where[1])["kernel"] + get(p, where[1])["bias"] - y) ** 2, -1)
        )

    def grad(p):
        return jax.tree.map(np.asarray, jax.grad(loss)(jax.tree.map(jnp.asarray, p)))

    return grad


def _model_variables(model, where):
    """The model's variables by the path of their leaf in params."""
    out = {}
    for k, path in enumerate(where):
        kernel, bias = model.trainable_variables[2 * k : 2 * k + 2]
        out[(*path, "kernel")], out[(*path, "bias")] = kernel, bias
    return out


def _nested(flat):
    out = {}
    for path, value in flat.items():
        d = out
        for key in path[:-1]:
            d = d.setdefault(key, {})
        d[path[-1]] = value
    return out


def _keras_model_steps(optimizer, variables, grad, steps):
    trajectory = []
    for _ in range(steps):
        g = grad(_nested({k: np.asarray(v.value) for k, v in variables.items()}))
        flat_g = {k: _get(g, k) for k in variables}
        optimizer.apply_gradients([(jnp.asarray(flat_g[k]), v) for k, v in variables.items()])
        trajectory.append(_nested({k: np.array(v.value) for k, v in variables.items()}))
    return trajectory


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _jax_tree_steps(tx, state, params, grad, steps):
    params = jax.tree.map(jnp.asarray, params)
    trajectory = []
    for _ in range(steps):
        g = grad(jax.tree.map(np.asarray, params))
        updates, state = tx.update(jax.tree.map(jnp.asarray, g), state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append(jax.tree.map(np.asarray, params))
    return trajectory, state


@pytest.mark.parametrize("kind", ["sequential", "functional", "nested"])
def test_from_keras_matches_a_models_variables_by_path(kind):
    """Each leaf gets its own variable's slots (checked value by value, with layer names that
    sort against the layers' order), and the run continues as Keras's."""
    keras.utils.set_random_seed(0)
    model, where = _dense_model(kind)
    grad = _model_problem(where)
    variables = _model_variables(model, where)
    optimizer = keras.optimizers.RMSprop(**KERAS_BASE, momentum=0.9, centered=True)
    _keras_model_steps(optimizer, variables, grad, K)
    params_k = _nested({k: np.array(v.value) for k, v in variables.items()})
    tx, state = interop.from_keras(optimizer, params_k)

    slots = {v.name: np.asarray(v.value) for v in optimizer.variables}
    for path, variable in variables.items():
        base = variable.path.replace("/", "_")
        for field, suffix, sign in (
            ("nu", "velocity", 1),
            ("mu", "average_gradient", 1),
            ("momentum", "momentum", -1),
        ):
            np.testing.assert_array_equal(
                _get(getattr(state, field), path),
                sign * slots[f"{base}_{suffix}"],
                err_msg=str(path),
            )
    z, a = variables[(*where[0], "kernel")], variables[(*where[1], "kernel")]
    assert not np.array_equal(
        slots[z.path.replace("/", "_") + "_velocity"], slots[a.path.replace("/", "_") + "_velocity"]
    )

    theirs = _keras_model_steps(optimizer, variables, grad, N)
    ours, _ = _jax_tree_steps(tx, state, params_k, grad, N)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("kind", ["sequential", "functional", "nested"])
def test_to_keras_writes_a_models_slots_by_path(kind):
    """A JAX run (a preset's tx) continued by Keras on a model: each leaf's buffers land on
    its own variable's slots, and from_keras's tx round-trips them bit for bit."""
    keras.utils.set_random_seed(1)
    model, where = _dense_model(kind)
    grad = _model_problem(where)
    variables = _model_variables(model, where)
    params0 = _nested({k: np.array(v.value) for k, v in variables.items()})
    kwargs = dict(KERAS_BASE, momentum=0.9, centered=True)
    tx = presets.keras(**kwargs)
    trajectory, state = _jax_tree_steps(
        tx, tx.init(jax.tree.map(jnp.asarray, params0)), params0, grad, K
    )
    params_k = trajectory[-1]
    ours, _ = _jax_tree_steps(tx, state, params_k, grad, N)

    for k, v in variables.items():
        v.assign(_get(params_k, k))
    optimizer = keras.optimizers.RMSprop(**kwargs)
    optimizer.build(model.trainable_variables)
    interop.to_keras(state, tx, params_k, optimizer)
    other_tx, other_state = interop.from_keras(optimizer, params_k)
    for a, b in zip(jax.tree.leaves(other_state), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    again = keras.optimizers.RMSprop(**kwargs)
    again.build(model.trainable_variables)
    interop.to_keras(other_state, other_tx, params_k, again)
    for a, b in zip(again.variables, optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value), err_msg=a.name)

    theirs = _keras_model_steps(optimizer, variables, grad, N)
    _assert_same(ours, theirs)


def test_keras_paths_that_do_not_match_are_refused_by_name():
    keras.utils.set_random_seed(2)
    model, where = _dense_model("sequential")
    optimizer = keras.optimizers.RMSprop()
    optimizer.build(model.trainable_variables)
    params = _nested({k: np.array(v.value) for k, v in _model_variables(model, where).items()})
    renamed = {"z": params["z"], "b": params["a"]}  # "b" is no layer's name
    with pytest.raises(
        ValueError,
        match=r"params\['b'\]\['bias'\] \(path 'b/bias'\) matches no Keras variable"
        r".*'sequential\w*/a/bias'",
    ):
        interop.from_keras(optimizer, renamed)
    with pytest.raises(ValueError, match=r"params\['b'\]\['bias'\].*matches no Keras variable"):
        interop.to_keras(presets.keras().init(renamed), presets.keras(), renamed, optimizer)
    with pytest.raises(ValueError, match=r"Keras variable 'sequential\w*/a/bias' goes to no leaf"):
        interop.from_keras(optimizer, {"z": params["z"], "a": {"kernel": params["a"]["kernel"]}})
    with pytest.raises(
        ValueError,
        match=r"params\['bias'\] \(path 'bias'\) matches 2 Keras variables: "
        r"\['sequential\w*/z/bias', 'sequential\w*/a/bias'\]",
    ):
        interop.from_keras(optimizer, {"bias": params["a"]["bias"]})

    # Two layers called "z", in two nested models: a path matches both.
    twins = keras.Sequential(
        [
            keras.Input((3,)),
            keras.Sequential([keras.layers.Dense(3, name="z")], name="p"),
            keras.Sequential([keras.layers.Dense(3, name="z")], name="q"),
        ]
    )
    both = keras.optimizers.RMSprop()
    both.build(twins.trainable_variables)
    z = {"z": {"kernel": np.zeros((3, 3), np.float32), "bias": np.zeros(3, np.float32)}}
    with pytest.raises(
        ValueError,
        match=r"params\['z'\]\['bias'\].*matches 2 Keras variables: "
        r"\['sequential\w*/p/z/bias', 'sequential\w*/q/z/bias'\]",
    ):
        interop.from_keras(both, z)
    interop.from_keras(both, {"p": z, "q": z})  # the models' names tell them apart


def test_keras_matches_by_order_only_when_asked():
    """match='order' takes the variables in the optimizer's order (Keras's layer order: z,
    then a), which a list of leaves in that order fits; a dict of layers is flattened a
    before z, and taking it in order is refused as soon as a shape does not fit."""
    keras.utils.set_random_seed(3)
    model, where = _dense_model("sequential")
    optimizer = keras.optimizers.RMSprop(**KERAS_BASE)
    variables = _model_variables(model, where)
    _keras_model_steps(optimizer, variables, _model_problem(where), 2)
    params = _nested({k: np.array(v.value) for k, v in variables.items()})
    _, by_path = interop.from_keras(optimizer, params)
    z, a = params["z"], params["a"]
    listed = [z["kernel"], z["bias"], a["kernel"], a["bias"]]
    with pytest.raises(ValueError, match=r"params\[0\] \(path '0'\) matches no Keras variable"):
        interop.from_keras(optimizer, listed)
    _, in_order = interop.from_keras(optimizer, listed, match="order")
    for j, leaf in enumerate([("z", "kernel"), ("z", "bias"), ("a", "kernel"), ("a", "bias")]):
        np.testing.assert_array_equal(in_order.nu[j], _get(by_path.nu, leaf))
    with pytest.raises(
        ValueError, match=r"params\['a'\]\['bias'\] \(keras variable '\w+/z/kernel'\)"
    ):
        interop.from_keras(optimizer, params, match="order")


# ---------------------------------------------------------------------------
# What cannot map.


def _torch_checkpoint(steps=2, **kwargs):
    params0, grad = dense_problem()
    tensors = _to_torch_layout(params0, TORCH_LAYOUT["real"])
    optimizer = torch.optim.RMSprop(tensors, **{**TORCH_BASE, **kwargs})
    _torch_steps(optimizer, tensors, TORCH_LAYOUT["real"], grad, steps)
    return copy.deepcopy(optimizer.state_dict()), _from_torch_layout(tensors, TORCH_LAYOUT["real"])


def _other_optimizers():
    """Every optimizer class of torch.optim and timm.optim but the RMSProps."""
    found = {
        f"torch.optim.{name}": value
        for name, value in vars(torch.optim).items()
        if isinstance(value, type) and issubclass(value, torch.optim.Optimizer)
    }
    found.update({f"timm.optim.{n}": v for n, v in vars(timm_optim()).items() if n != "version"})
    for name in ("torch.optim.Optimizer", "torch.optim.RMSprop", "timm.optim.RMSpropTF"):
        del found[name]
    return found


def _state_dict_of(make, tensors, grad):
    """A state_dict after one step where the optimizer can take one with plain gradients
    (Adahessian wants a graph, SparseAdam sparse gradients: their groups are refused too;
    Muon takes only the matrix)."""

    def build(ts):
        if make is timm_optim().Lookahead:
            return make(torch.optim.SGD(ts, lr=0.1))
        return make(ts, lr=0.01) if "lr" in inspect.signature(make).parameters else make(ts)

    try:
        optimizer = build(tensors)
    except ValueError:  # Muon takes only matrices
        optimizer = build(tensors[:1])
    try:
        _torch_steps(optimizer, tensors, TORCH_LAYOUT["real"], grad, 1)
    except (RuntimeError, TypeError, ValueError):
        pass
    return optimizer.state_dict()


def test_from_torch_refuses_every_other_optimizer_by_a_key_it_names():
    """Each optimizer of torch.optim and timm.optim that is not RMSProp has a group key or a
    state entry that torch.optim.RMSprop and RMSpropTF do not: the error names it."""
    params0, grad = dense_problem()
    accepted = []
    for name, make in sorted(_other_optimizers().items()):
        tensors = _to_torch_layout(params0, TORCH_LAYOUT["real"])
        state_dict = _state_dict_of(make, tensors, grad)
        with pytest.raises(ValueError, match=r"(param_groups\[0\]|state\[\d+\]) has '\w+'") as info:
            interop.from_torch(state_dict, params0, leaf_map=LEAF_MAPS["real"])
        accepted += [name] if "another optimizer" not in str(info.value) else []
    assert not accepted, accepted
    assert len(_other_optimizers()) > 30  # both packages' lists were read


def test_from_torch_refuses_an_unknown_key_by_name():
    """An allowlist: a key no RMSProp has, in a group or in a parameter's state, is refused
    by name, with what to do."""
    state_dict, params = _torch_checkpoint()
    state_dict["param_groups"][0]["lookahead_k"] = 5
    with pytest.raises(ValueError, match=r"param_groups\[0\] has 'lookahead_k'.*by hand"):
        interop.from_torch(state_dict, params, leaf_map=LEAF_MAPS["real"])
    state_dict, params = _torch_checkpoint()
    state_dict["state"][0]["exp_avg"] = state_dict["state"][0]["square_avg"]
    with pytest.raises(ValueError, match=r"state\[0\] has 'exp_avg'.*by hand"):
        interop.from_torch(state_dict, params, leaf_map=LEAF_MAPS["real"])
    groups = [dict(TORCH_BASE, lookahead_k=5)]
    tx = presets.torch(**TORCH_BASE)
    with pytest.raises(ValueError, match=r"param_groups\[0\] has 'lookahead_k'"):
        interop.to_torch(
            tx.init(params), tx, params, param_groups=groups, leaf_map=LEAF_MAPS["real"]
        )


def test_keras_refuses_an_unknown_option_by_name():
    class Lookahead(keras.optimizers.RMSprop):
        def __init__(self, sync_period=5, **kwargs):
            super().__init__(**kwargs)
            self.sync_period = sync_period

    params0, _ = dense_problem()
    optimizer = Lookahead()
    optimizer.build(list(_keras_variables(params0).values()))
    with pytest.raises(ValueError, match=r"takes 'sync_period', an option .* does not know"):
        interop.from_keras(optimizer, params0)


def test_from_torch_refuses_a_missing_buffer():
    state_dict, params = _torch_checkpoint(momentum=0.9)
    del state_dict["state"][1]["momentum_buffer"]
    with pytest.raises(
        ValueError, match=r"state\[1\] \(for params\['b'\]\) has no 'momentum_buffer'"
    ):
        interop.from_torch(state_dict, params, leaf_map=LEAF_MAPS["real"])


def test_from_torch_names_the_leaf_whose_shape_does_not_fit():
    state_dict, params = _torch_checkpoint()
    with pytest.raises(ValueError, match=r"params\['w'\] \(torch index 0\).*\(3, 4\).*\(4, 3\)"):
        interop.from_torch(state_dict, params, leaf_map={"w": 0, "b": 1})  # no transpose
    with pytest.raises(ValueError, match=r"params\['w'\] \(torch index 0\): axes \(1, 0, 2\)"):
        interop.from_torch(state_dict, params, leaf_map={"w": interop.Leaf(0, (1, 0, 2)), "b": 1})


def test_from_torch_refuses_leaf_maps_that_do_not_cover_the_parameters():
    state_dict, params = _torch_checkpoint()
    with pytest.raises(ValueError, match="params has 3 leaves but the optimizer has 2"):
        interop.from_torch(state_dict, {**params, "c": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match=r"both take torch parameter 1"):
        interop.from_torch(state_dict, params, leaf_map={"w": 1, "b": 1})
    with pytest.raises(ValueError, match=r"index 5, which the state_dict does not have"):
        interop.from_torch(state_dict, params, leaf_map={"w": interop.Leaf(0, (1, 0)), "b": 5})


def test_from_torch_refuses_step_counts_one_count_cannot_hold():
    state_dict, params = _torch_checkpoint()
    state_dict["state"][1]["step"] = torch.tensor(5.0)
    with pytest.raises(ValueError, match=r"different numbers of steps \(\[2, 5\]\)"):
        interop.from_torch(state_dict, params, leaf_map=LEAF_MAPS["real"])


def test_from_torch_refuses_what_is_not_a_state_dict():
    with pytest.raises(TypeError, match="'state' and 'param_groups'"):
        interop.from_torch({"w": torch.zeros(3)}, {"w": np.zeros(3, np.float32)})


def test_from_torch_refuses_a_tx_of_another_configuration():
    state_dict, params = _torch_checkpoint(momentum=0.9)
    with pytest.raises(
        ValueError,
        match=r"tx's state has no momentum buffer but param_groups\[0\] has momentum=0.9 "
        r"\(the framework keeps momentum_buffer\)",
    ):
        interop.from_torch(state_dict, params, tx=presets.torch(), leaf_map=LEAF_MAPS["real"])


def test_to_torch_takes_the_groups_and_checks_the_buffers_against_them():
    """to_torch is told the groups (the torch optimizer's), whoever made tx, and refuses a
    state whose buffers they do not keep."""
    params0, grad = dense_problem()
    tx = presets.torch(**TORCH_BASE, momentum=0.9)
    _, state = _jax_steps(tx, tx.init(jax.tree.map(jnp.asarray, params0)), params0, grad, 2)
    with pytest.raises(TypeError, match="param_groups"):
        interop.to_torch(state, tx, params0, leaf_map=LEAF_MAPS["real"])
    with pytest.raises(
        ValueError, match=r"has a momentum buffer but param_groups\[0\] has momentum=0"
    ):
        interop.to_torch(
            state, tx, params0, param_groups=[dict(lr=0.02)], leaf_map=LEAF_MAPS["real"]
        )
    with pytest.raises(ValueError, match="another transformation or for other params"):
        interop.to_torch(
            state,
            presets.torch(),
            params0,
            param_groups=[dict(lr=0.02)],
            leaf_map=LEAF_MAPS["real"],
        )
    groups = [dict(TORCH_BASE, alpha=0.5, lr=0.5, momentum=0.9)]
    back = interop.to_torch(state, tx, params0, param_groups=groups, leaf_map=LEAF_MAPS["real"])
    assert back["param_groups"][0]["alpha"] == 0.5  # the groups given are what torch loads,
    assert back["param_groups"][0]["lr"] == pytest.approx(0.02, rel=1e-6)  # with tx's lr


def test_keras_refusals():
    params0, _ = dense_problem()
    variables = list(_keras_variables(params0).values())
    with pytest.raises(TypeError, match="expected a keras.optimizers.RMSprop; got Adam"):
        interop.from_keras(keras.optimizers.Adam(), params0)
    with pytest.raises(ValueError, match="build it first"):
        interop.from_keras(keras.optimizers.RMSprop(), params0)
    clipped = keras.optimizers.RMSprop(clipnorm=1.0)
    clipped.build(variables)
    with pytest.raises(ValueError, match=r"clipnorm=1.0 .*pass tx="):
        interop.from_keras(clipped, params0)
    interop.from_keras(clipped, params0, tx=optax.chain(optax.clip(1.0), presets.keras()))

    tx = presets.keras(momentum=0.9)
    state = tx.init(jax.tree.map(jnp.asarray, params0))
    plain = keras.optimizers.RMSprop()
    plain.build(variables)
    with pytest.raises(ValueError, match=r"has a momentum buffer but the optimizer has momentum=0"):
        interop.to_keras(state, tx, params0, plain)
    with pytest.raises(ValueError, match="names 'nope'"):
        interop.from_keras(plain, params0, leaf_map={"w": "nope", "b": "b"})


def test_the_readme_interop_example_runs_as_written():
    """The README's interop block, run with the names its comments describe."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "interop." in b]
    params0, grad = dense_problem()
    layout = TORCH_LAYOUT["real"]
    tensors = _to_torch_layout(params0, layout)
    torch_optimizer = torch.optim.RMSprop(tensors, **TORCH_BASE, momentum=0.9)
    scheduler = LR.CosineAnnealingLR(torch_optimizer, T_max=30)
    for _ in range(3):
        _torch_steps(torch_optimizer, tensors, layout, grad, 1)
        scheduler.step()
    checkpoint = copy.deepcopy(
        {"optimizer": torch_optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    )
    keras_params = {"dense": {"kernel": params0["w"], "bias": params0["b"]}}
    dense = keras.layers.Dense(3, name="dense")
    model = keras.Sequential([keras.Input((4,)), dense], name="net")
    keras_optimizer = keras.optimizers.RMSprop(**KERAS_BASE)
    keras_optimizer.apply_gradients(
        [(jnp.ones_like(v.value), v) for v in model.trainable_variables]
    )
    names = dict(
        checkpoint=checkpoint,
        params=_from_torch_layout(tensors, layout),
        torch_optimizer=torch_optimizer,
        keras_optimizer=keras_optimizer,
        keras_params=keras_params,
    )
    exec(compile(block, "README.md", "exec"), names)
    assert torch_optimizer.state_dict()["state"][0]["step"] == 3
    velocity = {v.name: np.asarray(v.value) for v in keras_optimizer.variables}
    np.testing.assert_array_equal(
        names["state"].nu["dense"]["kernel"], velocity["net_dense_kernel_velocity"]
    )


def test_the_timm_guides_resumed_run_is_timms_continuation():
    """docs/porting/timm.md's block, run as written with timm's RMSpropTF: the 10 steps in
    JAX are those timm takes from the same checkpoint."""
    import pathlib
    import re

    page = (pathlib.Path(__file__).parents[1] / "docs" / "porting" / "timm.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "from_torch" in b]
    RMSpropTF = timm_optim().RMSpropTF
    torch.manual_seed(0)
    names = dict(torch=torch, RMSpropTF=RMSpropTF, x=torch.randn(64, 4), y=torch.randn(64, 3))
    exec(compile(block, "timm.md", "exec"), names)
    model = torch.nn.Linear(4, 3)
    model.load_state_dict(names["checkpoint"]["model"])
    optimizer = RMSpropTF(model.parameters(), lr=0.02, eps=1e-3, momentum=0.9, weight_decay=1e-5)
    optimizer.load_state_dict(names["checkpoint"]["optimizer"])
    for _ in range(10):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(names["x"]), names["y"]).backward()
        optimizer.step()
    np.testing.assert_allclose(names["params"]["w"], model.weight.detach().numpy().T, RTOL, ATOL)
    np.testing.assert_allclose(names["params"]["b"], model.bias.detach().numpy(), RTOL, ATOL)
    assert not np.allclose(names["params"]["w"], names["checkpoint"]["model"]["weight"].numpy().T)


def test_importing_interop_imports_neither_torch_nor_keras():
    code = (
        "import sys, optax_rmsprop, optax_rmsprop.interop; "
        "assert 'torch' not in sys.modules and 'keras' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
