"""RMSProp for JAX as an optax ``GradientTransformation``, with every variant and
presets that reproduce PyTorch, Keras, TF1, MXNet/Gluon and the d2l textbook."""

from optax_rmsprop import presets
from optax_rmsprop.core import RMSPropState, rmsprop, scale_by_rms

__all__ = ["RMSPropState", "presets", "rmsprop", "scale_by_rms"]
__version__ = "0.1.0"
