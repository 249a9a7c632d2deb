"""RMSProp for JAX as an optax ``GradientTransformation``, with every variant and
presets that reproduce PyTorch, Keras, TF1, MXNet/Gluon and the d2l textbook."""

from optax_rmsprop import interop, presets, quantize, sharding  # interop imports no torch/keras
from optax_rmsprop.core import RMSPropState, rmsprop, scale_by_rms
from optax_rmsprop.memory import StateSize, state_size
from optax_rmsprop.options import MaskOrFn, StateDtype
from optax_rmsprop.quantize import Int8

__all__ = [
    "Int8",
    "MaskOrFn",
    "RMSPropState",
    "StateDtype",
    "StateSize",
    "interop",
    "presets",
    "quantize",
    "rmsprop",
    "scale_by_rms",
    "sharding",
    "state_size",
]
__version__ = "0.1.0"
