"""The numbers *Dive into Deep Learning*, section 11.8 (RMSProp), prints.

(a) The 2-D trace of f = 0.1 x₁² + 2 x₂², from scratch and with ``presets.d2l``.
(b) The airfoil linear regression of ``train_ch11`` (from scratch) and
    ``train_concise_ch11`` (the framework optimizers), as the book prints them
    (https://d2l.ai/chapter_optimization/rmsprop.html), with ``presets.d2l``, ``presets.torch``
    and ``presets.keras``.
"""

import math

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest
import torch

from optax_rmsprop import datasets, presets

# ---------------------------------------------------------------------------
# (a) The 2-D trace: eta 0.4, gamma 0.9, 20 steps from (-5, -2) (the book, section 11.8.2).

BOOK_TRACE = "epoch 20, x1: -0.010599, x2: 0.000000"


def _train_2d(step, steps=20):
    """d2l's ``train_2d``: the iterates, and the line it prints after the last one."""
    x1, x2, s1, s2 = -5.0, -2.0, 0.0, 0.0
    results = []
    for _ in range(steps):
        x1, x2, s1, s2 = step(x1, x2, s1, s2)
        results.append((x1, x2))
    print(f"epoch {steps}, x1: {float(x1):f}, x2: {float(x2):f}")
    return results


def _rmsprop_2d(x1, x2, s1, s2, eta=0.4, gamma=0.9):
    """d2l's from-scratch ``rmsprop_2d``, in Python floats as the book runs it."""
    g1, g2, eps = 0.2 * x1, 4 * x2, 1e-6
    s1 = gamma * s1 + (1 - gamma) * g1**2
    s2 = gamma * s2 + (1 - gamma) * g2**2
    x1 -= eta / math.sqrt(s1 + eps) * g1
    x2 -= eta / math.sqrt(s2 + eps) * g2
    return x1, x2, s1, s2


def _preset_2d():
    """The same loop with ``presets.d2l``; its state stands in for (s1, s2)."""
    tx = presets.d2l(lr=0.4, gamma=0.9)
    state = None

    def step(x1, x2, s1, s2):
        nonlocal state
        x = jnp.array([x1, x2], jnp.float32)
        state = tx.init(x) if state is None else state
        updates, state = tx.update(jnp.array([0.2, 4.0]) * x, state)
        x1, x2 = np.asarray(optax.apply_updates(x, updates))
        return x1, x2, s1, s2

    return step


def test_trace_from_scratch_prints_the_book(capsys):
    _train_2d(_rmsprop_2d)
    assert capsys.readouterr().out == BOOK_TRACE + "\n"


def test_trace_with_preset_prints_the_book(capsys):
    scratch = _train_2d(_rmsprop_2d)
    capsys.readouterr()
    ours = _train_2d(_preset_2d())
    assert capsys.readouterr().out == BOOK_TRACE + "\n"
    # Every iterate, float32 against Python floats: 20 steps of a few float32 ulp each.
    np.testing.assert_allclose(ours, scratch, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# (b) Airfoil: linear regression on the first 1500 rows, all columns standardized (the
# ``airfoil`` fixture), minibatches of 10 reshuffled every epoch, w ~ N(0, 0.01²) of shape
# (5, 1): ``datasets.airfoil_regression``. The book's printed loss is ``evaluate_loss`` on
# the whole data set at n = 3000 (or 6000) examples, i.e. once training has ended: the mean
# of (ŷ − y)²/2 over all rows.

BATCH = 10


def _mse(params, x, y):
    """nn.MSELoss / keras MeanSquaredError averaged: mean (ŷ − y)², no ½
    (``train_concise_ch11`` trains on it and halves it to report it)."""
    return jnp.mean((x @ params["w"] + params["b"] - y[:, None]) ** 2)


def _trainer(tx, loss):
    """Jitted: the params after every minibatch step, and the loss the book reports."""

    @jax.jit
    def train(params, batches_x, batches_y, features, target):
        def step(carry, batch):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params, *batch), state, params)
            params = optax.apply_updates(params, updates)
            return (params, state), params

        (final, _), trajectory = jax.lax.scan(
            step, (params, tx.init(params)), (batches_x, batches_y)
        )
        return trajectory, datasets.airfoil_loss(final, features, target)

    return train


# (name, preset, training loss, epochs, bias init, the book's range of printed losses)
AIRFOIL = {
    # train_ch11(rmsprop, ..., {'lr': 0.01, 'gamma': 0.9}, data_iter, feature_dim): 2 epochs
    "from_scratch": (presets.d2l(0.01, 0.9), datasets.airfoil_loss, 2, "zero", (0.243, 0.246)),
    # train_concise_ch11(torch.optim.RMSprop, {'lr': 0.01, 'alpha': 0.9}, data_iter): its
    # PyTorch version trains 4 epochs (num_epochs=4) on nn.MSELoss.
    "torch": (presets.torch(lr=0.01, alpha=0.9), _mse, 4, "torch", (0.243, 0.244)),
    # Its TensorFlow version trains 2 epochs on MeanSquaredError, Dense bias 0.
    "keras": (presets.keras(learning_rate=0.01, rho=0.9), _mse, 2, "zero", (0.243, 0.246)),
}
SEEDS = range(8)


@pytest.mark.parametrize("name", AIRFOIL)
def test_airfoil_loss_in_the_book_range(airfoil, name):
    """The median over seeds of the reported loss lies in the book's range.

    The book prints one run. The reported loss is taken right after the last minibatch
    step, so it carries that step's noise: over 40 seeds its spread is about 0.002 (as wide
    as the book's range) and about a quarter of single runs print a value outside it. This is
    how d2l computes it too (``evaluate_loss`` on the full data after the last step, checked
    in its ``train_ch11``), so the range applies to the typical run, the median over seeds.
    """
    tx, loss, epochs, bias, (low, high) = AIRFOIL[name]
    features, target = airfoil
    train = _trainer(tx, loss)
    losses = []
    for seed in SEEDS:
        problem = datasets.airfoil_regression(seed, epochs=epochs, bias=bias)
        _, reported = train(*problem, features, target)
        losses.append(float(reported))
    assert low <= np.median(losses) <= high, losses
    # Above the least-squares optimum, computed without any optimizer.
    design = np.c_[features, np.ones(len(features))]
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    assert min(losses) > np.mean((design @ solution - target) ** 2) / 2


def test_airfoil_preset_follows_the_from_scratch_rule(airfoil):
    """Every step of ``presets.d2l`` against d2l's from-scratch ``rmsprop`` in NumPy.

    The minibatch gradients keep √s well above 0, so the trajectories stay together: 300
    steps of a few float32 ulp each (measured: 6e-8).
    """
    features, target = airfoil
    tx, loss, epochs, bias, _ = AIRFOIL["from_scratch"]
    params, batches_x, batches_y = datasets.airfoil_regression(0, epochs=epochs, bias=bias)
    trajectory, _ = _trainer(tx, loss)(params, batches_x, batches_y, features, target)

    f32 = np.float32
    lr, gamma, eps = f32(0.01), f32(0.9), f32(1e-6)
    w, b = params["w"].copy(), params["b"].copy()
    s = {"w": np.zeros_like(w), "b": np.zeros_like(b)}
    for i, (x, y) in enumerate(zip(batches_x, batches_y, strict=True)):
        residual = x @ w + b - y[:, None]  # gradient of mean (ŷ − y)²/2
        grads = {"w": x.T @ residual / f32(BATCH), "b": residual.mean(axis=0)}
        for k, p in (("w", w), ("b", b)):
            s[k] = gamma * s[k] + (1 - gamma) * np.square(grads[k])  # s ← γs + (1−γ)g²
            p -= lr * grads[k] / np.sqrt(s[k] + eps)  # p ← p − η g / √(s + ε)
        for k, p in (("w", w), ("b", b)):
            np.testing.assert_allclose(
                trajectory[k][i], p, rtol=1e-5, atol=1e-6, err_msg=f"{k} after step {i + 1}"
            )


def test_airfoil_concise_torch_matches_torch(airfoil):
    """d2l's PyTorch ``train_concise_ch11`` loop with the real ``torch.optim.RMSprop``, and
    ``presets.torch`` on the same minibatches: the same parameters after every step."""
    features, target = airfoil
    tx, loss, epochs, bias, _ = AIRFOIL["torch"]
    params, batches_x, batches_y = datasets.airfoil_regression(0, epochs=epochs, bias=bias)
    trajectory, _ = _trainer(tx, loss)(params, batches_x, batches_y, features, target)

    net = torch.nn.Sequential(torch.nn.Linear(5, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(params["w"].T))
        net[0].bias.copy_(torch.from_numpy(params["b"]))
    optimizer = torch.optim.RMSprop(net.parameters(), lr=0.01, alpha=0.9)
    mse = torch.nn.MSELoss(reduction="none")
    for i, (x, y) in enumerate(zip(batches_x, batches_y, strict=True)):
        optimizer.zero_grad()
        out = net(torch.from_numpy(x))
        mse(out, torch.from_numpy(y).reshape(out.shape)).mean().backward()
        optimizer.step()
        # Different code computes the gradient on each side (autograd vs jax.grad), so the
        # steps differ by a few ulp; over 600 steps they stay within 1e-5 (measured 1e-7).
        np.testing.assert_allclose(
            trajectory["w"][i], net[0].weight.detach().numpy().T, rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            trajectory["b"][i], net[0].bias.detach().numpy(), rtol=1e-5, atol=1e-5
        )


def test_airfoil_concise_keras_matches_keras(airfoil):
    """d2l's TensorFlow ``train_concise_ch11`` loop, with the real Keras 3 RMSprop (JAX
    backend) fed the gradient of the same MSE, and ``presets.keras``: every step."""
    features, target = airfoil
    tx, loss, epochs, bias, _ = AIRFOIL["keras"]
    params, batches_x, batches_y = datasets.airfoil_regression(0, epochs=epochs, bias=bias)
    trajectory, _ = _trainer(tx, loss)(params, batches_x, batches_y, features, target)

    variables = {k: keras.Variable(v, name=k) for k, v in params.items()}
    optimizer = keras.optimizers.RMSprop(learning_rate=0.01, rho=0.9)
    grad = jax.jit(jax.grad(_mse))
    for i, (x, y) in enumerate(zip(batches_x, batches_y, strict=True)):
        g = grad({k: v.value for k, v in variables.items()}, x, y)
        optimizer.apply_gradients([(g[k], v) for k, v in variables.items()])
        for k, v in variables.items():
            np.testing.assert_allclose(trajectory[k][i], np.asarray(v.value), rtol=1e-5, atol=1e-5)
