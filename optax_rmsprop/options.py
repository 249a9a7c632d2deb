"""The options of :func:`~optax_rmsprop.rmsprop`, declared once, and the static configuration.

:data:`OPTIONS` lists every argument of ``rmsprop`` and ``scale_by_rms``: its name,
default, kind (which says how it is checked and where it goes) and place in each
signature. The two signatures are written out in ``core`` for their readers and their
docs; a test checks them against this table. :class:`Config` is the static part of a
configuration, built from the arguments in ``core`` and read by the rule and the checks.

This module sits at the bottom of the package: it imports only the 8-bit format.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, Final, Literal, TypeAlias

import jax
import optax

from optax_rmsprop import quantize

__all__ = ["MaskOrFn", "StateDtype"]

StateDtype: TypeAlias = jax.typing.DTypeLike | quantize.Int8 | None
"""A dtype a state buffer is stored in: ``None`` (the default for the parameter), a float
dtype (``jnp.bfloat16``, ``"float32"``, ...), or ``"int8"`` or
:class:`~optax_rmsprop.quantize.Int8` (8-bit blocks; signed codes for ``mu_dtype``)."""

MaskOrFn: TypeAlias = optax.Params | Callable[[optax.Params], optax.Params] | None
"""Where weight decay applies: a pytree of bools with the params' structure (or a prefix
of it), or a callable of the params returning one, as in :func:`optax.add_decayed_weights`."""

Kind = Literal["hyperparameter", "number", "flag", "mask", "state_dtype"]
Place = Literal["positional", "keyword", "absent"]
REQUIRED = inspect.Parameter.empty  # the default of an argument that has none


@dataclasses.dataclass(frozen=True)
class Option:
    """One argument of ``rmsprop`` (and ``scale_by_rms``).

    ``kind`` says how it is checked: a ``hyperparameter`` is a number, a scalar array or a
    schedule (``None`` turns its feature off where that is its default); a ``number`` a
    number or scalar array; a ``flag`` a bool; ``mask`` and ``state_dtype`` have their own
    checks. ``rmsprop`` and ``scale_by_rms`` say where it sits in each signature; an
    option absent from ``scale_by_rms`` takes its default there (``learning_rate``: None).
    """

    name: str
    default: Any
    kind: Kind
    annotation: Any  # the type in the signatures: an object, not a string (optax reads it)
    rmsprop: Place
    scale_by_rms: Place


_HP = optax.ScalarOrSchedule
_P: Final = "positional"
_K: Final = "keyword"  # keyword-only
_A: Final = "absent"

# In the order of rmsprop's signature: name, default, kind, type, place in rmsprop's
# signature, place in scale_by_rms's.
OPTIONS: tuple[Option, ...] = (
    Option("learning_rate", REQUIRED, "hyperparameter", _HP, _P, _A),
    Option("decay", 0.9, "hyperparameter", _HP, _P, _P),
    Option("eps", 1e-8, "hyperparameter", _HP, _P, _P),
    Option("initial_scale", 0.0, "number", jax.typing.ArrayLike, _P, _P),
    Option("eps_in_sqrt", True, "flag", bool, _P, _P),
    Option("centered", False, "flag", bool, _P, _K),
    Option("momentum", None, "hyperparameter", _HP | None, _P, _A),
    Option("nesterov", False, "flag", bool, _P, _A),
    Option("bias_correction", False, "flag", bool, _P, _P),
    Option("weight_decay", None, "hyperparameter", _HP | None, _K, _A),
    Option("decoupled_weight_decay", False, "flag", bool, _K, _A),
    Option("corrected_weight_decay", None, "hyperparameter", _HP | None, _K, _A),
    Option("weight_decay_mask", None, "mask", MaskOrFn, _K, _A),
    Option("lr_in_momentum", True, "flag", bool, _K, _A),
    Option("caution", False, "flag", bool, _K, _A),
    Option("maximize", False, "flag", bool, _K, _K),
    Option("split_complex", False, "flag", bool, _K, _K),
    Option("nu_dtype", None, "state_dtype", StateDtype, _K, _K),
    Option("mu_dtype", None, "state_dtype", StateDtype, _K, _K),
)


def defaults() -> dict[str, Any]:
    """Every option at its default, ``learning_rate`` None (as ``scale_by_rms`` has it)."""
    return {o.name: None if o.default is REQUIRED else o.default for o in OPTIONS}


@dataclasses.dataclass(frozen=True)
class Config:
    """The static part of a configuration: everything that shapes the computation.

    The flags are the options of kind ``flag`` as given (``decoupled_weight_decay`` is
    folded into ``weight_decay``). It is hashable, so one compiled update serves every
    transformation built with the same configuration, whatever the values of its array
    hyperparameters (as ``optax.inject_hyperparams`` passes them). Python numbers are part
    of it: compile-time constants of the eager step as of a caller's jitted one, so that
    the compiler folds them the same way in both and jit gives the eager step's bits.
    """

    eps_in_sqrt: bool
    centered: bool
    nesterov: bool
    bias_correction: bool
    lr_in_momentum: bool
    caution: bool
    maximize: bool
    split_complex: bool
    use_momentum: bool
    weight_decay: Literal["coupled", "decoupled"] | None
    weight_decay_mask: Any  # None, a callable, or (treedef, leaves) of a pytree
    scale_only: bool  # scale_by_rms: no learning rate and no sign flip
    nu_dtype: Any  # None, a NumPy float dtype, or a quantize.Int8
    mu_dtype: Any  # None, a NumPy float dtype, or a quantize.Int8 (signed codes)
    schedules: tuple[tuple[str, Callable[[jax.Array], Any]], ...]
    constants: tuple[tuple[str, float], ...]  # hyperparameters given as Python numbers


FLAGS = tuple(o.name for o in OPTIONS if o.kind == "flag" and o.name != "decoupled_weight_decay")
