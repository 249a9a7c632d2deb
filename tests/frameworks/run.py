"""Runs RMSProp of a real framework on least squares, for tests/test_presets.py.

Runs inside the framework's own environment (the test's Python for torch and Keras, a venv
built by .ci/frameworks.sh for the others), so it imports nothing from the project and only
NumPy besides the framework::

    python run.py --versions        # JSON: the versions of the packages importable here
    python run.py --signatures tf1 gluon ...  # JSON: those optimizers' arguments, defaults
    python run.py IN.npz OUT.npz    # runs the cases in IN, writes the trajectories to OUT

IN holds the problem (``a`` (S, n, d), ``b`` (S, n), ``x0`` (S, d), float32: S independent
least-squares problems in one parameter array) and ``cases``, a JSON list of
``{"framework", "kwargs", "steps", "scale"}``. Each step the gradient of
``scale * 0.5 |A x − b|² / n`` is computed in float32 NumPy at the framework's own current
parameters and handed to the optimizer; OUT holds, for case ``i``, ``i/grads`` (T, S, d),
the gradients handed over, and ``i/params`` (T + 1, S, d), the parameters before the first
and after every step.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys

import numpy as np

DISTRIBUTIONS = {
    "torch": "torch",
    "keras": "keras",
    "tensorflow": "tensorflow",
    "tf_keras": "tf_keras",
    "paddle": "paddlepaddle",
    "mxnet": "mxnet",
    "chainer": "chainer",
}


def versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": sys.version.split()[0], "numpy": np.__version__}
    for module, distribution in DISTRIBUTIONS.items():
        if importlib.util.find_spec(module) is not None:
            found[distribution] = metadata.version(distribution)
    return found


def _defaults(fn) -> dict:
    """Each argument's default (``"<required>"`` when it has none), in order."""
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or name in ("self", "params"):
            continue
        out[name] = "<required>" if p.default is p.empty else p.default
    return out


def _jsonable(value):
    return value if isinstance(value, (bool, int, float, str, type(None))) else repr(value)


def signatures(keys) -> dict[str, dict]:
    """The optimizers' own signatures: ``tf1``, ``tf_keras``, ``gluon``, ... as in ``keys``."""

    def read(key):
        if key == "torch":
            import torch

            return torch.optim.RMSprop.__init__
        if key == "keras":
            import keras

            return keras.optimizers.RMSprop.__init__
        if key == "tf1":
            import tensorflow as tf

            return tf.compat.v1.train.RMSPropOptimizer.__init__
        if key in ("tf_keras", "tf_keras_legacy"):
            import tf_keras

            optimizers = (
                tf_keras.optimizers.legacy if key.endswith("legacy") else tf_keras.optimizers
            )
            return optimizers.RMSprop.__init__
        if key == "paddle":
            import paddle

            return paddle.optimizer.RMSProp.__init__
        if key == "gluon":
            import mxnet as mx

            return mx.optimizer.RMSProp.__init__
        if key == "gluon/kwargs":  # the keyword arguments RMSProp passes on to Optimizer
            import mxnet as mx

            return mx.optimizer.Optimizer.__init__
        if key in ("chainer", "chainer_graves"):
            import chainer

            return getattr(chainer.optimizers, "RMSpropGraves" if "graves" in key else "RMSprop")
        raise KeyError(key)

    return {k: {n: _jsonable(v) for n, v in _defaults(read(k)).items()} for k in keys}


# ---------------------------------------------------------------------------
# One driver per framework: make(x0, kwargs) returns step(g) -> new params (NumPy float32).


def _torch(x0, kwargs):
    import torch

    x = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.RMSprop([x], **kwargs)

    def step(g):
        x.grad = torch.from_numpy(g)
        opt.step()
        return x.detach().numpy().copy()

    return step


def _keras(x0, kwargs):
    import keras

    x = keras.Variable(x0)
    opt = keras.optimizers.RMSprop(**kwargs)

    def step(g):
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), x)])
        return np.array(x.value)

    return step


def _tf_eager(make_optimizer):
    def make(x0, kwargs):
        import tensorflow as tf

        x = tf.Variable(x0)
        opt = make_optimizer(**kwargs)

        def step(g):
            opt.apply_gradients([(tf.constant(g), x)])
            return x.numpy().copy()

        return step

    return make


def _tf1_graph(x0, kwargs):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.Variable(x0, use_resource=False)  # a ref variable: TF1's own kernels
        g_in = tf.compat.v1.placeholder(tf.float32, x0.shape)
        train = tf.compat.v1.train.RMSPropOptimizer(**kwargs).apply_gradients([(g_in, x)])
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())

    def step(g):
        session.run(train, {g_in: g})
        return session.run(x).copy()

    return step


def _paddle(x0, kwargs):
    import paddle

    paddle.set_device("cpu")
    x = paddle.create_parameter(
        list(x0.shape), "float32", default_initializer=paddle.nn.initializer.Assign(x0)
    )
    opt = paddle.optimizer.RMSProp(parameters=[x], **kwargs)

    def step(g):
        (x * paddle.to_tensor(g)).sum().backward()  # x.grad = g exactly
        opt.step()
        opt.clear_grad()
        return x.numpy().copy()

    return step


def _mxnet(x0, kwargs):
    import mxnet as mx

    x = mx.nd.array(x0, dtype="float32")
    updater = mx.optimizer.get_updater(mx.optimizer.RMSProp(**kwargs))

    def step(g):
        updater(0, mx.nd.array(g, dtype="float32"), x)  # what gluon.Trainer.step calls
        return x.asnumpy().copy()

    return step


def _chainer(optimizer_name):
    def make(x0, kwargs):
        import chainer

        kwargs = dict(kwargs)
        weight_decay = kwargs.pop("weight_decay_hook", None)
        link = chainer.Link()
        with link.init_scope():
            link.x = chainer.Parameter(x0.copy())
        opt = getattr(chainer.optimizers, optimizer_name)(**kwargs)
        opt.setup(link)
        if weight_decay is not None:
            opt.add_hook(chainer.optimizer_hooks.WeightDecay(weight_decay))

        def step(g):
            link.x.grad = g.copy()
            opt.update()
            return link.x.array.copy()

        return step

    return make


def _drivers():
    def tf1(**kwargs):
        import tensorflow as tf

        return tf.compat.v1.train.RMSPropOptimizer(**kwargs)

    def tf_keras(**kwargs):
        import tf_keras

        return tf_keras.optimizers.RMSprop(**kwargs)

    def tf_keras_legacy(**kwargs):
        import tf_keras

        return tf_keras.optimizers.legacy.RMSprop(**kwargs)

    return {
        "torch": _torch,
        "keras": _keras,
        "tf1_eager": _tf_eager(tf1),
        "tf1_graph": _tf1_graph,
        "tf_keras": _tf_eager(tf_keras),
        "tf_keras_legacy": _tf_eager(tf_keras_legacy),
        "paddle": _paddle,
        "mxnet": _mxnet,
        "chainer": _chainer("RMSprop"),
        "chainer_graves": _chainer("RMSpropGraves"),
    }


def trajectories(a, b, x0, cases) -> dict[str, np.ndarray]:
    """``{"i/grads": (T, S, d), "i/params": (T + 1, S, d)}`` for each case ``i``."""
    a, b, x0 = (np.asarray(z, np.float32) for z in (a, b, x0))
    drivers = _drivers()
    out = {}
    for i, case in enumerate(cases):
        scale = np.float32(case.get("scale", 1.0))
        step = drivers[case["framework"]](x0.copy(), case["kwargs"])
        x, path, grads = x0.copy(), [x0.copy()], []
        for _ in range(case["steps"]):
            residual = np.einsum("snd,sd->sn", a, x) - b
            g = scale * np.einsum("snd,sn->sd", a, residual) / np.float32(a.shape[1])
            g = np.asarray(g, np.float32)
            grads.append(g)
            x = np.asarray(step(g), np.float32)
            path.append(x)
        out[f"{i}/grads"] = np.stack(grads)
        out[f"{i}/params"] = np.stack(path)
    return out


def run(source: str, target: str) -> None:
    data = np.load(source)
    cases = json.loads(str(data["cases"]))
    np.savez(target, **trajectories(data["a"], data["b"], data["x0"], cases))


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if sys.argv[1:] == ["--versions"]:
        print(json.dumps(versions()))
    elif sys.argv[1:2] == ["--signatures"]:
        print(json.dumps(signatures(sys.argv[2:])))
    else:
        run(*sys.argv[1:])
