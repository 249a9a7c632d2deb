"""Presets that reproduce each framework's RMSProp, with its own argument names.

Each function takes the framework's argument names and defaults and returns an
:class:`optax.GradientTransformationExtraArgs` whose updates equal that
framework's, to float32 rounding. They only set the arguments of
:func:`optax_rmsprop.rmsprop` (plus, for MXNet/Gluon, the gradient rescaling and
clipping optax already has). The keyword-only ``nu_dtype`` and ``mu_dtype`` (and
``weight_decay_mask`` where the framework has weight decay) are passed on to it.

===========================  ===============  ====  ============  =============  ==============
preset                       ε                v₀    lr/momentum   weight decay   complex
===========================  ===============  ====  ============  =============  ==============
``torch``                    outside √        0     outside       coupled (L2)   (re, im) pairs
``keras``                    inside √         0     inside        decoupled      \\|g\\|²
``tf_keras``                 inside √         0     inside        decoupled      \\|g\\|²
``tf_keras(legacy=True)``    outside √ (μ=0)  0     inside        none           \\|g\\|²
``tf1``                      inside √         1     inside        none           \\|g\\|²
``timm``                     inside √         1     inside        both           \\|g\\|²
``gluon``                    inside √         0     inside        coupled (L2)   \\|g\\|²
``paddle``                   inside √         0     inside        coupled (L2)   \\|g\\|²
``chainer``                  outside √        0     no momentum   none           \\|g\\|²
``chainer_graves``           inside √         0     inside        none           \\|g\\|²
``d2l``                      inside √         0     no momentum   none           \\|g\\|²
===========================  ===============  ====  ============  =============  ==============

With momentum, ``tf_keras(legacy=True)`` puts ε inside the root: TF1's kernels from v₀ = 0.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_rmsprop import hyperparameters as hp
from optax_rmsprop import validation
from optax_rmsprop.core import rmsprop

__all__ = [
    "chainer",
    "chainer_graves",
    "d2l",
    "gluon",
    "keras",
    "paddle",
    "tf1",
    "tf_keras",
    "timm",
    "torch",
]


F = TypeVar("F", bound=Callable[..., Any])


def _their_names(**names: str) -> Callable[[F], F]:
    """Errors raised for an argument name the framework's argument (``alpha``, not our
    ``decay``): ``names`` maps ours to theirs."""
    pattern = re.compile(r"\b(" + "|".join(names) + r")\b(?= must| needs|:)")

    def wrap(preset: F) -> F:
        @functools.wraps(preset)
        def renamed(*args: Any, **kwargs: Any) -> Any:
            try:
                return preset(*args, **kwargs)
            except (TypeError, ValueError) as error:
                message = pattern.sub(lambda m: names[m.group(1)], str(error))
                if message == str(error):
                    raise
                raise type(error)(message) from None

        return renamed  # type: ignore[return-value]

    return wrap


def _momentum_or_none(momentum: Any) -> Any:
    """Frameworks that test ``momentum > 0`` keep no buffer for a plain 0."""
    if isinstance(momentum, (int, float)) and not isinstance(momentum, bool) and momentum == 0:
        return None
    return momentum


@_their_names(learning_rate="lr", decay="alpha")
def torch(
    lr: optax.ScalarOrSchedule = 0.01,
    alpha: optax.ScalarOrSchedule = 0.99,
    eps: optax.ScalarOrSchedule = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0,
    momentum: optax.ScalarOrSchedule = 0,
    centered: bool = False,
    maximize: bool = False,
    *,
    weight_decay_mask: Any = None,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``torch.optim.RMSprop`` (PyTorch 2.x).

    Matches: ε outside the root, :math:`v_0 = 0`, coupled L2 weight decay added
    to the (possibly negated) gradient, the current ``lr`` applied to the whole
    momentum buffer (so a schedule acts as PyTorch's LR schedulers do), and
    complex parameters updated as independent (real, imaginary) pairs.

    Cannot match: ``foreach``/``fused``/``capturable`` (implementation choices
    with the same arithmetic), ``differentiable``, and parameter groups (use
    :func:`optax.multi_transform`). A schedule here is a function of the step
    count, so call ``scheduler.step()`` once per optimizer step in PyTorch to
    compare.

    Raises:
      TypeError: ``lr``, ``alpha``, ``eps``, ``weight_decay`` or ``momentum`` not a real
        number, scalar array or schedule; ``centered`` or ``maximize`` not a bool;
        ``weight_decay_mask`` with a leaf that is not a bool; ``nu_dtype`` or
        ``mu_dtype`` not a dtype.
      ValueError: one of those numbers not a scalar or out of its range (``alpha`` and
        ``momentum`` in [0, 1], the others >= 0); ``alpha=1``, which keeps the mean
        square at its start, 0; ``nu_dtype`` or ``mu_dtype`` refused as by
        :func:`optax_rmsprop.rmsprop`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import presets
      >>> tx = presets.torch(lr=0.01, alpha=0.99, momentum=0.9, centered=True)
      >>> params = jnp.ones(3)
      >>> updates, state = tx.update(jnp.ones(3), tx.init(params), params)
      >>> updates.dtype
      dtype('float32')
    """
    return rmsprop(
        lr,
        decay=alpha,
        eps=eps,
        eps_in_sqrt=False,
        centered=centered,
        momentum=_momentum_or_none(momentum),
        weight_decay=weight_decay,
        lr_in_momentum=False,
        maximize=maximize,
        split_complex=True,
        weight_decay_mask=weight_decay_mask,
        nu_dtype=nu_dtype,
        mu_dtype=mu_dtype,
    )


@_their_names(decay="rho", eps="epsilon")
def keras(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    rho: optax.ScalarOrSchedule = 0.9,
    momentum: optax.ScalarOrSchedule = 0.0,
    epsilon: optax.ScalarOrSchedule = 1e-7,
    centered: bool = False,
    weight_decay: optax.ScalarOrSchedule | None = None,
    *,
    weight_decay_mask: Any = None,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``keras.optimizers.RMSprop`` (Keras 3, any backend).

    Matches: ε inside the root, :math:`v_0 = 0`, ``learning_rate`` inside the
    momentum buffer, and Keras's decoupled weight decay
    :math:`\theta \leftarrow \theta - \eta\lambda\theta` (pass
    ``weight_decay_mask`` for ``exclude_from_weight_decay``).

    Cannot match: ``clipnorm``/``clipvalue``/``global_clipnorm`` (chain
    :func:`optax.clip_by_global_norm` and friends before it), ``use_ema``,
    ``loss_scale_factor`` and ``gradient_accumulation_steps`` (use
    :class:`optax.MultiSteps`). Keras does not support complex variables; here
    they use :math:`|g|^2`.

    Without weight decay it is :func:`optax.rmsprop` under Keras's names.

    Raises:
      TypeError: ``learning_rate``, ``rho``, ``momentum``, ``epsilon`` or
        ``weight_decay`` not a real number, scalar array or schedule; ``centered`` not a
        bool; ``weight_decay_mask`` with a leaf that is not a bool; ``nu_dtype`` or
        ``mu_dtype`` not a dtype.
      ValueError: one of those numbers not a scalar or out of its range (``rho`` and
        ``momentum`` in [0, 1], the others >= 0); ``rho=1``, which keeps the mean square
        at its start, 0; ``nu_dtype`` or ``mu_dtype`` refused as by
        :func:`optax_rmsprop.rmsprop`.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from optax_rmsprop import presets
      >>> ours = presets.keras(learning_rate=0.01, rho=0.9, momentum=0.5, epsilon=1e-7)
      >>> theirs = optax.rmsprop(0.01, decay=0.9, eps=1e-7, momentum=0.5)
      >>> params, grads = jnp.ones(3), jnp.array([0.1, -2.0, 30.0])
      >>> a, _ = ours.update(grads, ours.init(params), params)
      >>> b, _ = theirs.update(grads, theirs.init(params), params)
      >>> bool(jnp.allclose(a, b, rtol=1e-6))
      True
    """
    return rmsprop(
        learning_rate,
        decay=rho,
        eps=epsilon,
        eps_in_sqrt=True,
        centered=centered,
        momentum=_momentum_or_none(momentum),
        weight_decay=0.0 if weight_decay is None else weight_decay,
        decoupled_weight_decay=True,
        weight_decay_mask=weight_decay_mask,
        nu_dtype=nu_dtype,
        mu_dtype=mu_dtype,
    )


@_their_names(decay="rho", eps="epsilon")
def tf_keras(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    rho: optax.ScalarOrSchedule = 0.9,
    momentum: optax.ScalarOrSchedule = 0.0,
    epsilon: optax.ScalarOrSchedule | None = 1e-7,
    centered: bool = False,
    weight_decay: optax.ScalarOrSchedule | None = None,
    *,
    legacy: bool = False,
    weight_decay_mask: Any = None,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``tf_keras.optimizers.RMSprop`` (Keras 2 for TensorFlow 2.16+), or with
    ``legacy=True`` ``tf_keras.optimizers.legacy.RMSprop`` (``tf.keras`` before 2.11).

    Matches, ``legacy=False``: the same rule as :func:`keras` (ε inside the root,
    :math:`v_0 = 0`, ``learning_rate`` inside the momentum buffer, decoupled
    ``weight_decay``).

    Matches, ``legacy=True``: :math:`v_0 = 0` (TF1 starts at 1); with ``momentum``
    0 the step is :math:`\eta g / (\sqrt{v} + \varepsilon)`, ε **outside** the
    root; with ``momentum`` > 0 (or a schedule) it is TF1's kernel, ε inside the
    root and ``learning_rate`` inside the buffer; ``epsilon`` of ``None`` or 0 is
    the backend's 1e-7.

    Cannot match: ``clipnorm``/``clipvalue``/``global_clipnorm`` (chain
    :func:`optax.clip_by_global_norm` and friends before it), ``use_ema`` and
    ``jit_compile``; the legacy optimizer's ``decay`` (give ``learning_rate`` as a
    schedule) and its sparse updates, which decay only the rows a batch touches.
    The legacy optimizer has no ``weight_decay``: passing one raises ``ValueError``.

    Raises:
      TypeError: ``learning_rate``, ``rho``, ``momentum``, ``epsilon`` or
        ``weight_decay`` not a real number, scalar array or schedule; ``centered`` not a
        bool; ``weight_decay_mask`` with a leaf that is not a bool; ``nu_dtype`` or
        ``mu_dtype`` not a dtype.
      ValueError: one of those numbers not a scalar or out of its range (``rho`` and
        ``momentum`` in [0, 1], the others >= 0); ``rho=1``, which keeps the mean square
        at its start, 0; ``weight_decay`` with ``legacy=True``; ``epsilon=None``
        without it; ``nu_dtype`` or ``mu_dtype`` refused as by
        :func:`optax_rmsprop.rmsprop`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import presets
      >>> params, grads = jnp.ones(3), jnp.array([0.1, -2.0, 30.0])
      >>> steps = []
      >>> for tx in (presets.tf_keras(0.01, momentum=0.5), presets.keras(0.01, momentum=0.5)):
      ...     steps.append(tx.update(grads, tx.init(params), params)[0])
      >>> bool(jnp.array_equal(*steps))  # the same rule as Keras 3
      True
      >>> try:
      ...     presets.tf_keras(0.01, weight_decay=1e-4, legacy=True)
      ... except ValueError as error:
      ...     print(str(error).split(";")[0])
      weight_decay: tf_keras.optimizers.legacy.RMSprop has none
    """
    if legacy:
        if weight_decay is not None:
            raise ValueError(
                "weight_decay: tf_keras.optimizers.legacy.RMSprop has none; "
                f"got {weight_decay!r} with legacy=True."
            )
        eps = (
            1e-7
            if epsilon is None or (isinstance(epsilon, (int, float)) and epsilon == 0)
            else epsilon
        )
        momentum = _momentum_or_none(momentum)
        return rmsprop(
            learning_rate,
            decay=rho,
            eps=eps,
            eps_in_sqrt=momentum is not None,
            centered=centered,
            momentum=momentum,
            nu_dtype=nu_dtype,
            mu_dtype=mu_dtype,
        )
    if epsilon is None:
        raise ValueError("epsilon: None is allowed only with legacy=True.")
    return keras(
        learning_rate,
        rho,
        momentum,
        epsilon,
        centered,
        weight_decay,
        weight_decay_mask=weight_decay_mask,
        nu_dtype=nu_dtype,
        mu_dtype=mu_dtype,
    )


@_their_names(eps="epsilon")
def tf1(
    learning_rate: optax.ScalarOrSchedule,
    decay: optax.ScalarOrSchedule = 0.9,
    momentum: optax.ScalarOrSchedule = 0.0,
    epsilon: optax.ScalarOrSchedule = 1e-10,
    centered: bool = False,
    *,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``tf.compat.v1.train.RMSPropOptimizer`` (the ``ApplyRMSProp`` kernels).

    Matches: the mean square starts at **1** (not 0), ε inside the root, and
    ``learning_rate`` inside the momentum buffer:
    :math:`mom \leftarrow \mu\, mom + \eta g / \sqrt{ms + \varepsilon}`.

    Cannot match: the sparse kernels for ``IndexedSlices`` gradients, which
    decay only the rows a batch touches (here every row decays every step), and
    ``use_locking``. The centered variance is clamped at zero here, so where TF1
    would produce NaN from rounding this stays finite.

    Raises:
      TypeError: ``learning_rate``, ``decay``, ``momentum`` or ``epsilon`` not a real
        number, scalar array or schedule; ``centered`` not a bool; ``nu_dtype`` or
        ``mu_dtype`` not a dtype.
      ValueError: one of those numbers not a scalar or out of its range (``decay`` and
        ``momentum`` in [0, 1], the others >= 0); ``nu_dtype`` or ``mu_dtype`` refused
        as by :func:`optax_rmsprop.rmsprop`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import presets
      >>> tx = presets.tf1(learning_rate=0.1, momentum=0.9)
      >>> tx.init(jnp.zeros(3)).nu  # the mean square starts at 1
      Array([1., 1., 1.], dtype=float32)
    """
    return rmsprop(
        learning_rate,
        decay=decay,
        eps=epsilon,
        initial_scale=1.0,
        eps_in_sqrt=True,
        centered=centered,
        momentum=_momentum_or_none(momentum),
        nu_dtype=nu_dtype,
        mu_dtype=mu_dtype,
    )


@_their_names(learning_rate="lr", decay="alpha", decoupled_weight_decay="decoupled_decay")
def timm(
    lr: optax.ScalarOrSchedule = 1e-2,
    alpha: optax.ScalarOrSchedule = 0.9,
    eps: optax.ScalarOrSchedule = 1e-10,
    weight_decay: optax.ScalarOrSchedule = 0,
    momentum: optax.ScalarOrSchedule = 0.0,
    centered: bool = False,
    decoupled_decay: bool = False,
    corrected_weight_decay: bool | float = False,
    lr_in_momentum: bool = True,
    caution: bool = False,
    *,
    weight_decay_mask: Any = None,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``timm.optim.RMSpropTF`` (PyTorch Image Models 1.0), TF-style RMSProp in PyTorch,
    used by timm's EfficientNet, MobileNet and MNASNet recipes
    (``--opt rmsproptf --opt-eps .001``).

    Matches: ε inside the root, the mean square starting at **1**, ``lr`` inside the
    momentum buffer (``lr_in_momentum=True``; ``False`` applies the current ``lr`` to the
    whole buffer, as :func:`torch`), coupled L2 ``weight_decay`` added to the gradient or,
    with ``decoupled_decay``, :math:`\theta \leftarrow \theta - \eta\lambda\theta`; with
    ``corrected_weight_decay`` too, :math:`\eta^2/\eta_{max}` in place of :math:`\eta`,
    where :math:`\eta_{max}` is the ``lr`` RMSpropTF was built with (``True`` takes
    ``lr``; with a schedule, pass that peak lr as the number); ``caution`` (Cautious
    Optimizers), which masks the momentum update where it and the gradient disagree in
    sign and rescales the rest by the mean of the mask, keeping the buffer unmasked; timm
    applies it only with momentum, and so does this preset.

    Cannot match: ``foreach`` (the same arithmetic in another order) and parameter groups
    (use :func:`optax.multi_transform`; :func:`optax_rmsprop.interop.from_torch` builds
    one from a state_dict). The centered variance is clamped at zero here, so where timm
    would produce NaN from rounding this stays finite. timm's schedulers
    (``timm.scheduler``) set the lr per epoch or per update: give ``lr`` as an optax
    schedule of the step count that does the same.

    Raises:
      TypeError: ``lr``, ``alpha``, ``eps``, ``weight_decay`` or ``momentum`` not a real
        number, scalar array or schedule; ``centered``, ``decoupled_decay``,
        ``lr_in_momentum`` or ``caution`` not a bool; ``weight_decay_mask`` with a leaf
        that is not a bool; ``nu_dtype`` or ``mu_dtype`` not a dtype.
      ValueError: one of those numbers not a scalar or out of its range (``alpha`` and
        ``momentum`` in [0, 1], the others >= 0); with ``decoupled_decay``,
        ``corrected_weight_decay=True`` and a schedule as ``lr`` (pass the peak lr as
        the number), or a number that is not > 0; ``nu_dtype`` or ``mu_dtype`` refused
        as by :func:`optax_rmsprop.rmsprop`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import presets
      >>> tx = presets.timm(lr=0.016, eps=1e-3, momentum=0.9, weight_decay=1e-5)
      >>> tx.init(jnp.ones(3)).nu  # square_avg starts at 1
      Array([1., 1., 1.], dtype=float32)
    """
    momentum = _momentum_or_none(momentum)
    if not isinstance(caution, (bool, np.bool_)):  # it is passed on only with momentum
        kind = type(caution).__name__
        raise TypeError(f"caution must be a bool; got {caution!r} of type {kind}.")
    peak = None
    if corrected_weight_decay is not False and corrected_weight_decay is not None:
        if not decoupled_decay:
            corrected_weight_decay = False  # timm corrects only the decoupled decay
        elif corrected_weight_decay is True:
            if callable(lr):
                raise ValueError(
                    "corrected_weight_decay=True takes the peak lr from lr, which is a "
                    "schedule here: pass corrected_weight_decay=<the lr RMSpropTF was built "
                    "with> as a number."
                )
            peak = lr
        else:
            peak = corrected_weight_decay
    return rmsprop(
        lr,
        decay=alpha,
        eps=eps,
        initial_scale=1.0,
        eps_in_sqrt=True,
        centered=centered,
        momentum=momentum,
        weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_decay,
        corrected_weight_decay=peak,
        lr_in_momentum=lr_in_momentum,
        caution=bool(caution) and momentum is not None,
        weight_decay_mask=weight_decay_mask,
        nu_dtype=nu_dtype,
        mu_dtype=mu_dtype,
    )


def _clip_weights(bound: float) -> optax.GradientTransformation:
    """Changes the update so that the new parameters lie in ``[-bound, bound]``."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("clip_weights needs the params: call update(grads, state, params).")
        updates = jax.tree.map(
            lambda u, p: (jnp.clip(p + u, -bound, bound) - p).astype(u.dtype), updates, params
        )
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def _clips(name: str, value: Any) -> bool:
    """MXNet clips only for a value > 0: ``None``, 0 and negative values mean no clipping."""
    if value is None:
        return False
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be None or a number; got {value!r}.")
    return float(value) > 0


@_their_names(decay="gamma1", eps="epsilon", momentum="gamma2", weight_decay="wd")
def gluon(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    gamma1: optax.ScalarOrSchedule = 0.9,
    gamma2: optax.ScalarOrSchedule = 0.9,
    epsilon: optax.ScalarOrSchedule = 1e-8,
    centered: bool = False,
    clip_weights: float | None = None,
    wd: optax.ScalarOrSchedule = 0.0,
    rescale_grad: float = 1.0,
    clip_gradient: float | None = None,
    *,
    weight_decay_mask: Any = None,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""MXNet 1.x ``mx.optimizer.RMSProp`` (``gluon.Trainer(..., 'rmsprop')``).

    Matches: the gradient is ``rescale_grad * g + wd * θ``, then clipped to
    ±``clip_gradient``; ε inside the root; non-centered it has no momentum
    (``gamma2`` is unused); centered it is Graves's variant with momentum
    ``gamma2`` and the learning rate inside the buffer; the new weights are
    clipped to ±``clip_weights``. As in MXNet, a clip value of ``None``, 0 or
    less means no clipping. The Chinese edition of d2l uses it with ``gamma1``.

    Cannot match: per-parameter ``lr_mult``/``wd_mult`` (use
    :func:`optax.multi_transform`) and multi-precision master weights.
    Returns a single :func:`optax_rmsprop.rmsprop` when no rescaling or
    clipping is asked for, otherwise an :func:`optax.chain` around it.

    Raises:
      TypeError: ``learning_rate``, ``gamma1``, ``gamma2``, ``epsilon`` or ``wd`` not a
        real number, scalar array or schedule; ``centered`` not a bool;
        ``weight_decay_mask`` with a leaf that is not a bool; ``nu_dtype`` or
        ``mu_dtype`` not a dtype.
      ValueError: one of those numbers not a scalar or out of its range (``gamma1`` and
        ``gamma2`` in [0, 1], the others >= 0); ``gamma1=1``, which keeps the mean
        square at its start, 0; ``clip_weights`` or ``clip_gradient`` not ``None`` or
        a number; ``nu_dtype`` or ``mu_dtype`` refused as by
        :func:`optax_rmsprop.rmsprop`.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from optax_rmsprop import presets
      >>> tx = presets.gluon(learning_rate=0.5, clip_weights=1.0)
      >>> params = jnp.array([0.9, -0.9])
      >>> updates, _ = tx.update(jnp.array([-1.0, 1.0]), tx.init(params), params)
      >>> optax.apply_updates(params, updates)  # a step of 0.5 / sqrt(0.1), clipped to ±1
      Array([ 1., -1.], dtype=float32)
    """
    clip_gradient = clip_gradient if _clips("clip_gradient", clip_gradient) else None
    clip_weights = clip_weights if _clips("clip_weights", clip_weights) else None
    core = dict(
        decay=gamma1,
        eps=epsilon,
        eps_in_sqrt=True,
        centered=centered,
        momentum=gamma2 if centered else None,
        nu_dtype=nu_dtype,
        mu_dtype=mu_dtype,
    )
    if clip_gradient is None and rescale_grad == 1.0 and clip_weights is None:
        return rmsprop(learning_rate, weight_decay=wd, weight_decay_mask=weight_decay_mask, **core)
    # wd and its mask go to optax.add_decayed_weights here, which checks neither.
    hp.check("weight_decay", wd)
    validation.hashable_mask(weight_decay_mask)
    parts = []
    if rescale_grad != 1.0:
        parts.append(optax.scale(rescale_grad))
    parts.append(optax.add_decayed_weights(wd, weight_decay_mask))
    if clip_gradient is not None:
        parts.append(optax.clip(clip_gradient))
    parts.append(rmsprop(learning_rate, **core))
    if clip_weights is not None:
        parts.append(_clip_weights(clip_weights))
    return optax.chain(*parts)


@_their_names(decay="rho", eps="epsilon")
def paddle(
    learning_rate: optax.ScalarOrSchedule,
    rho: optax.ScalarOrSchedule = 0.95,
    epsilon: optax.ScalarOrSchedule = 1e-6,
    momentum: optax.ScalarOrSchedule = 0.0,
    centered: bool = False,
    weight_decay: optax.ScalarOrSchedule | None = None,
    *,
    weight_decay_mask: Any = None,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``paddle.optimizer.RMSProp`` (Paddle 2.x and 3.x).

    Matches: ε inside the root, :math:`v_0 = 0`, ``learning_rate`` inside the
    momentum buffer (as :func:`keras`), Paddle's defaults ``rho=0.95``,
    ``epsilon=1e-6``, and a float ``weight_decay`` as Paddle applies it, coupled
    L2 (:math:`g + \lambda\theta`, as ``paddle.regularizer.L2Decay``).

    Cannot match: ``paddle.regularizer.L1Decay`` (give ``L2Decay``'s ``coeff`` as
    the number), ``grad_clip`` (chain :func:`optax.clip_by_global_norm` or
    :func:`optax.clip` before it), per-parameter attributes (use
    :func:`optax.multi_transform`) and multi-precision master weights.

    Raises:
      TypeError: ``learning_rate``, ``rho``, ``epsilon``, ``momentum`` or
        ``weight_decay`` not a real number, scalar array or schedule; ``centered`` not a
        bool; ``weight_decay_mask`` with a leaf that is not a bool; ``nu_dtype`` or
        ``mu_dtype`` not a dtype.
      ValueError: one of those numbers not a scalar or out of its range (``rho`` and
        ``momentum`` in [0, 1], the others >= 0); ``rho=1``, which keeps the mean square
        at its start, 0; ``nu_dtype`` or ``mu_dtype`` refused as by
        :func:`optax_rmsprop.rmsprop`.

    Examples:
      Coupled L2 weight decay is :func:`optax.add_decayed_weights` before the rule:

      >>> import jax.numpy as jnp, optax
      >>> from optax_rmsprop import presets
      >>> ours = presets.paddle(learning_rate=0.1, weight_decay=0.01)
      >>> theirs = optax.chain(
      ...     optax.add_decayed_weights(0.01), optax.rmsprop(0.1, decay=0.95, eps=1e-6)
      ... )
      >>> params, grads = jnp.array([1.0, -2.0]), jnp.array([0.5, 0.0])
      >>> a, _ = ours.update(grads, ours.init(params), params)
      >>> b, _ = theirs.update(grads, theirs.init(params), params)
      >>> bool(jnp.allclose(a, b, rtol=1e-6))
      True
    """
    return rmsprop(
        learning_rate,
        decay=rho,
        eps=epsilon,
        eps_in_sqrt=True,
        centered=centered,
        momentum=_momentum_or_none(momentum),
        weight_decay=weight_decay,
        weight_decay_mask=weight_decay_mask,
        nu_dtype=nu_dtype,
        mu_dtype=mu_dtype,
    )


@_their_names(learning_rate="lr", decay="alpha")
def chainer(
    lr: optax.ScalarOrSchedule = 0.01,
    alpha: optax.ScalarOrSchedule = 0.99,
    eps: optax.ScalarOrSchedule = 1e-8,
    eps_inside_sqrt: bool = False,
    *,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``chainer.optimizers.RMSprop`` (Chainer 7).

    Matches: :math:`v_0 = 0`, no momentum, ε outside the root
    (:math:`\eta g / (\sqrt{v} + \varepsilon)`) or, with
    ``eps_inside_sqrt=True``, inside it.

    Cannot match: optimizer hooks are not arguments here; chain their optax
    counterparts before it (``WeightDecay(rate)``: :func:`optax.add_decayed_weights`;
    ``GradientClipping``: :func:`optax.clip_by_global_norm`).

    Raises:
      TypeError: ``lr``, ``alpha`` or ``eps`` not a real number, scalar array or
        schedule; ``eps_inside_sqrt`` not a bool; ``nu_dtype`` or ``mu_dtype`` not a
        dtype.
      ValueError: one of those numbers not a scalar or out of its range (``alpha`` in
        [0, 1], the others >= 0); ``alpha=1``, which keeps the mean square at its
        start, 0; ``nu_dtype`` or ``mu_dtype`` refused as by
        :func:`optax_rmsprop.rmsprop`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import presets
      >>> tx, g = presets.chainer(lr=0.01, alpha=0.99, eps=1e-8), jnp.array([0.5, -3.0])
      >>> updates, _ = tx.update(g, tx.init(g))
      >>> v = (1 - 0.99) * g**2  # one step from v = 0
      >>> bool(jnp.allclose(updates, -0.01 * g / (jnp.sqrt(v) + 1e-8), rtol=1e-6))
      True
    """
    return rmsprop(
        lr, decay=alpha, eps=eps, eps_in_sqrt=eps_inside_sqrt, nu_dtype=nu_dtype, mu_dtype=mu_dtype
    )


@_their_names(learning_rate="lr", decay="alpha")
def chainer_graves(
    lr: optax.ScalarOrSchedule = 1e-4,
    alpha: optax.ScalarOrSchedule = 0.95,
    momentum: optax.ScalarOrSchedule = 0.9,
    eps: optax.ScalarOrSchedule = 1e-4,
    *,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``chainer.optimizers.RMSpropGraves`` (Chainer 7), the variant of Graves
    (2013) used by DQN ports such as chainerrl's.

    Matches: centered, ε inside the root,
    :math:`\Delta \leftarrow \mu\Delta - \eta g / \sqrt{v - \bar m^2 + \varepsilon}`
    (``lr`` inside the momentum buffer), all state starting at 0, and its defaults.
    The same rule as ``gluon(centered=True)`` under Chainer's names.

    Cannot match: optimizer hooks, as in :func:`chainer`. The variance
    :math:`v - \bar m^2` is clamped at zero here, so where Chainer would produce
    NaN from rounding this stays finite.

    Raises:
      TypeError: ``lr``, ``alpha``, ``momentum`` or ``eps`` not a real number, scalar
        array or schedule; ``nu_dtype`` or ``mu_dtype`` not a dtype.
      ValueError: one of those numbers not a scalar or out of its range (``alpha`` and
        ``momentum`` in [0, 1], the others >= 0); ``alpha=1``, which keeps the mean
        square at its start, 0; ``nu_dtype`` or ``mu_dtype`` refused as by
        :func:`optax_rmsprop.rmsprop`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optax_rmsprop import presets
      >>> graves = presets.chainer_graves(lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4)
      >>> gluon = presets.gluon(1e-4, gamma1=0.95, gamma2=0.9, epsilon=1e-4, centered=True)
      >>> g = jnp.array([0.5, -3.0])
      >>> a, _ = graves.update(g, graves.init(g))
      >>> b, _ = gluon.update(g, gluon.init(g))
      >>> bool(jnp.array_equal(a, b))
      True
    """
    return rmsprop(
        lr,
        decay=alpha,
        eps=eps,
        eps_in_sqrt=True,
        centered=True,
        momentum=_momentum_or_none(momentum),
        nu_dtype=nu_dtype,
        mu_dtype=mu_dtype,
    )


@_their_names(learning_rate="lr", decay="gamma")
def d2l(
    lr: optax.ScalarOrSchedule,
    gamma: optax.ScalarOrSchedule,
    eps: optax.ScalarOrSchedule = 1e-6,
    *,
    nu_dtype: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""The from-scratch rule of *Dive into Deep Learning*, section 11.8.

    :math:`s \leftarrow \gamma s + (1-\gamma) g^2`,
    :math:`\theta \leftarrow \theta - \eta\, g / \sqrt{s + \epsilon}`, with
    ``eps=1e-6`` as in the book. Its "concise" versions use the framework
    optimizers: :func:`gluon`, :func:`torch` and :func:`keras`.

    Raises:
      TypeError: ``lr``, ``gamma`` or ``eps`` not a real number, scalar array or
        schedule; ``nu_dtype`` or ``mu_dtype`` not a dtype.
      ValueError: one of those numbers not a scalar or out of its range (``gamma`` in
        [0, 1], the others >= 0); ``gamma=1``, which keeps the mean square at its
        start, 0; ``nu_dtype`` or ``mu_dtype`` refused as by
        :func:`optax_rmsprop.rmsprop`.

    Examples:
      The book's run on :math:`f(x) = 0.1 x_1^2 + 2 x_2^2` with ``eta=0.4`` and
      ``gamma=0.9`` prints the same after 20 epochs:

      >>> import jax.numpy as jnp, optax
      >>> from optax_rmsprop import presets
      >>> grad = lambda x: jnp.array([0.2 * x[0], 4 * x[1]])  # f = 0.1 x1² + 2 x2²
      >>> tx, x = presets.d2l(lr=0.4, gamma=0.9), jnp.array([-5.0, -2.0])
      >>> state = tx.init(x)
      >>> for _ in range(20):
      ...     updates, state = tx.update(grad(x), state)
      ...     x = optax.apply_updates(x, updates)
      >>> print(f"epoch 20, x1: {x[0]:f}, x2: {x[1]:f}")
      epoch 20, x1: -0.010599, x2: 0.000000
    """
    return rmsprop(lr, decay=gamma, eps=eps, eps_in_sqrt=True, nu_dtype=nu_dtype, mu_dtype=mu_dtype)
