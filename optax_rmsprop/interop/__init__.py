"""Optimizer state to and from PyTorch and Keras: resume a training run, not only a step.

``from_torch`` reads a ``torch.optim.RMSprop`` or ``timm.optim.RMSpropTF`` ``state_dict()``
(and its LR scheduler's) and ``from_keras`` a built ``keras.optimizers.RMSprop`` (and its
learning-rate schedule);
each returns the transformation (a preset built from the framework's own hyperparameters)
and an :class:`~optax_rmsprop.RMSPropState` for it, so that the run continues in JAX as it
would have in the framework. ``to_torch`` and ``to_keras`` go back, for any transformation
of this package: they take the framework's optimizer (or its ``param_groups``), which says
the hyperparameters. Nothing is remembered between calls. The conversions are exact (a
copy, a transpose, a sign); the steps after them agree to float32 rounding
(``tests/test_interop.py``).

=====================  ========================  ===============================
ours                   ``torch.optim.RMSprop``   ``keras.optimizers.RMSprop``
=====================  ========================  ===============================
``count``              ``state[i]["step"]``      ``iterations``
``nu``                 ``square_avg``            ``*_velocity``
``mu``                 ``grad_avg``              ``*_average_gradient``
``momentum``           ``momentum_buffer``       minus ``*_momentum``
=====================  ========================  ===============================

Each converter keeps a list of what it understands (the group keys and state entries of
each optimizer, Keras's constructor options) and refuses anything else by name.

Leaves are matched to the framework's parameters by path (Keras variable paths, or the
names of a torch optimizer built from ``named_parameters()``), by an explicit
``leaf_map``, or by order only with ``match="order"``; a leaf or parameter left unmatched,
or matched twice, is refused with its name.

PyTorch keeps the learning rate out of its buffer, b ← μb + g/(√v + ε) and θ ← θ − ηb, as
``presets.torch`` does (``lr_in_momentum=False``), with ``g`` already negated for
``maximize``: the buffers are equal, and a scheduled η acts on the whole buffer in both.
Keras keeps it in, m ← μm + ηg/√(v + ε) and θ ← θ − m, while ours holds the update itself,
b ← −ηs + μb and θ ← θ + b: b = −m. Complex parameters are (real, imaginary) pairs in
PyTorch (``split_complex=True``): its complex buffers are our buffers' trailing axis of 2
(``torch.view_as_real``).

Only jax, optax and numpy are imported here: the torch state_dict is read by duck typing, and
torch and keras are imported by the functions that need them.
"""

from optax_rmsprop.interop._keras import from_keras, keras_schedule, to_keras
from optax_rmsprop.interop._state import Leaf
from optax_rmsprop.interop._torch import from_torch, to_torch, torch_schedules

__all__ = [
    "Leaf",
    "from_keras",
    "from_torch",
    "keras_schedule",
    "to_keras",
    "to_torch",
    "torch_schedules",
]
