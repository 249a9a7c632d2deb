"""The checks of :func:`~optax_rmsprop.rmsprop`'s arguments and of the trees it is given.

Bad input raises a ``ValueError`` or ``TypeError`` that names the argument or the
pytree path, at build time for the arguments and at each ``update`` for the gradients,
the state and the params (tracers included: only their structure, shapes and dtypes
are read).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optax_rmsprop import hyperparameters as hp
from optax_rmsprop import quantize
from optax_rmsprop.options import OPTIONS, REQUIRED, Config

__all__: list[str] = []  # internal to the package


# ---------------------------------------------------------------------------
# Arguments.


def check_arguments(arguments: dict[str, Any]) -> None:
    """Raises for an argument (each of :data:`~optax_rmsprop.options.OPTIONS`) of the
    wrong type or out of range, and for combinations that cannot run. ``weight_decay_mask``
    and the state dtypes are checked where the configuration is built from them."""
    for option in OPTIONS:  # the numbers first: weight_decay is checked before its test for 0
        value = arguments[option.name]
        off = value is None and option.default in (None, REQUIRED)  # momentum=None, ...
        if option.kind in ("hyperparameter", "number") and not off:
            hp.check(option.name, value)
    for option in OPTIONS:
        value = arguments[option.name]
        if option.kind == "flag" and not isinstance(value, (bool, np.bool_)):
            raise TypeError(
                f"{option.name} must be a bool; got {value!r} of type {type(value).__name__}."
            )
    decay, initial_scale = arguments["decay"], arguments["initial_scale"]
    if hp.is_schedule(initial_scale):
        raise TypeError("initial_scale must be a number or a scalar array, not a schedule.")
    # A number's 1 - decay is computed in float64 (so 1 - 1e-9 is no 1); an array's is
    # float32 arithmetic, where a decay within 3e-8 of 1 is 1.
    rho = None if hp.is_schedule(decay) or hp.is_tracer(decay) else hp.as_constant(decay)
    if rho is not None and (rho == 1 or (not hp.is_constant(decay) and np.float32(rho) == 1)):
        one = "decay=1" if rho == 1 else f"decay={rho} (1 in float32)"
        if hp.is_concrete_zero(initial_scale):
            raise ValueError(
                f"{one} with initial_scale=0 keeps the accumulator at 0 forever, so every "
                "step would be learning_rate * g / sqrt(eps); use decay < 1 or initial_scale > 0."
            )
        if arguments["bias_correction"]:
            raise ValueError(
                f"{one} with bias_correction=True divides by 1 - decay**t = 0; use decay < 1."
            )
    if arguments["nesterov"] and arguments["momentum"] is None:
        raise ValueError("nesterov=True needs momentum: pass momentum=0.9, for example.")
    if arguments["caution"] and arguments["momentum"] is None:
        raise ValueError(
            "caution=True needs momentum: without it the update -lr * s always descends "
            "along the gradient, so there is nothing to mask. Pass momentum=0.9, for example."
        )
    peak = arguments["corrected_weight_decay"]
    if peak is not None:
        if not arguments["decoupled_weight_decay"]:
            raise ValueError(
                "corrected_weight_decay corrects the decoupled weight decay: pass "
                "decoupled_weight_decay=True with it."
            )
        if hp.is_constant(peak) and hp.as_constant(peak) <= 0:
            raise ValueError(
                f"corrected_weight_decay must be the peak learning rate, > 0; got {peak!r}."
            )


def hashable_mask(mask: Any) -> Any:
    """``weight_decay_mask`` as a key of jit's cache: None, the callable, or (treedef,
    bools)."""
    if mask is None or callable(mask):
        return mask
    leaves, treedef = jax.tree.flatten(mask)
    for leaf in leaves:
        if not isinstance(leaf, (bool, np.bool_)):
            raise TypeError(
                "weight_decay_mask must be a pytree of Python bools (or a callable "
                f"returning one); found a leaf {leaf!r} of type {type(leaf).__name__}."
            )
    return treedef, tuple(bool(leaf) for leaf in leaves)


def state_dtype(name: str, dtype: Any) -> Any:
    """``nu_dtype`` or ``mu_dtype`` checked: None, a NumPy float dtype, or a quantize.Int8
    (``"int8"``: the default one)."""
    if dtype is None or isinstance(dtype, quantize.Int8):
        return dtype
    if isinstance(dtype, str) and dtype == "int8":
        return quantize.Int8()
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be None, a float dtype or 'int8'; got {dtype!r}.") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a float dtype or 'int8'; got {dtype}.")
    if name == "nu_dtype" and dtype.itemsize < 2:  # float8: too little range for v
        raise ValueError(
            f"{name} must be a float dtype of 16 bits or more, or 'int8'; got {dtype}."
        )
    return dtype


def check_param(path: Any, p: Any) -> None:
    if p is None:
        return
    dtype = jnp.result_type(p)
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"params{jax.tree_util.keystr(path)} has dtype {dtype}: RMSProp updates only "
            "floating-point or complex leaves. Leave the others out with optax.masked or "
            "optax.partition."
        )


# ---------------------------------------------------------------------------
# The state and the trees given to update.


def check_state_type(state: Any, state_type: type) -> None:
    if isinstance(state, state_type):
        return
    hint = ""
    if isinstance(state, dict):  # what orbax restores without a target
        hint = (
            " A checkpoint restored without a target is a dict: restore it with the "
            "state's structure as the target, e.g. "
            "ocp.StandardCheckpointer().restore(path, "
            "jax.tree.map(ocp.utils.to_shape_dtype_struct, tx.init(params)))."
        )
    raise TypeError(
        f"state must be the {state_type.__name__} made by init; got {type(state).__name__}.{hint}"
    )


def check_buffers(state: Any, config: Config) -> None:
    """Raises for a state made by a configuration with other buffers than ``config``'s."""
    for field, wanted, option in (
        ("mu", config.centered, "centered=True"),
        ("momentum", config.use_momentum, "a momentum"),
    ):
        found = getattr(state, field) is not None
        if found and not wanted:
            raise ValueError(
                f"the state has a {field} buffer (made with {option}) but this transformation "
                "has none: the state was made by a different configuration."
            )
        if wanted and not found and state.nu is not None:
            raise ValueError(
                f"the state has no {field} buffer but this transformation, with {option}, "
                "needs one: the state was made by a different configuration."
            )


def check_params_given(config: Config, params: Any) -> None:
    if config.weight_decay and params is None:
        raise ValueError(
            "weight_decay needs the params: call update(grads, state, params). (Under "
            "optax.inject_hyperparams a weight decay of 0 is a traced value; leave it "
            "None to turn weight decay off.)"
        )


def flatten_like(tree: Any, treedef: Any, name: str, paths: list[str]) -> list[Any]:
    """The subtrees of ``tree`` at the leaves of ``treedef``, whose paths are ``paths``."""
    try:
        return treedef.flatten_up_to(tree)
    except (ValueError, TypeError) as error:
        is_leaf = lambda x: x is None or isinstance(x, quantize.QuantizedArray)  # noqa: E731
        keyed, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
        theirs = [jax.tree_util.keystr(path) for path, _ in keyed]
        ours, known = set(paths), set(theirs)
        extra = [path for path in paths if path not in known]
        missing = [path for path in theirs if path not in ours]
        if extra:
            detail = f"updates{extra[0]} is not in {name}"
        elif missing:
            detail = f"{name}{missing[0]} is not in the updates"
        else:
            detail = str(error)
        raise ValueError(
            f"the tree structure of {name} does not match the updates': {detail}."
        ) from None


def check_no_buffer(where: str, v: Any) -> None:
    """For a None gradient: its state holds no buffer either."""
    if v is not None:
        raise ValueError(
            f"updates{where} is None but the state has a buffer for it: None is for "
            "leaves whose parameter was None at init."
        )


def check_leaf(
    config: Config,
    where: str,
    g: Any,
    p: Any,
    v: Any,
    m: Any,
    b: Any,
    dtypes: tuple[np.dtype, np.dtype] | None,
) -> None:
    """Raises for a gradient that does not fit its state or parameter. ``dtypes``: those
    of v and the first-moment buffers that init gives ``p`` (None without params)."""
    if not (isinstance(v, quantize.QuantizedArray) or hasattr(v, "dtype")):
        found = "None" if v is None else f"a {type(v).__name__}"
        raise ValueError(
            f"updates{where} is an array but the state's nu{where} is {found}: the tree "
            "structure of the updates does not match the state's."
        )
    dtype = jnp.result_type(g)
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"updates{where} has dtype {dtype}: RMSProp needs floating-point or complex gradients."
        )
    if p is not None and jnp.iscomplexobj(g) != jnp.iscomplexobj(p):
        raise TypeError(
            f"updates{where} has dtype {dtype} but params{where} has dtype "
            f"{jnp.result_type(p)}: a gradient is complex exactly when its parameter is."
        )
    quantized = isinstance(v, quantize.QuantizedArray)
    shape = v.codes.shape if quantized else v.shape
    int8 = isinstance(config.nu_dtype, quantize.Int8) and config.nu_dtype.applies_to(shape)
    if quantized != int8:
        raise ValueError(
            f"the state's nu{where} is {'8-bit' if quantized else v.dtype} but this "
            f"transformation has nu_dtype={config.nu_dtype!r}: the state was made by a "
            "different configuration."
        )
    if quantized and v.scales.shape != quantize.scales_shape(shape, config.nu_dtype):
        raise ValueError(
            f"the state's nu{where} has 8-bit blocks of shape {v.scales.shape} but this "
            f"transformation, with nu_dtype={config.nu_dtype!r}, makes "
            f"{quantize.scales_shape(shape, config.nu_dtype)}: the state was made by a "
            "different configuration."
        )
    for field, buffer in (("mu", m), ("momentum", b)):
        _check_first_moment(config, where, field, buffer, g)
    pairs = config.split_complex and jnp.iscomplexobj(g)  # (re, im) pairs: one more axis
    if shape != ((*g.shape, 2) if pairs else g.shape):
        needs = f"; split_complex=True needs {(*g.shape, 2)}" if pairs else ""
        raise ValueError(
            f"updates{where} has shape {g.shape} but its state has shape {shape}{needs}."
        )
    if dtypes is not None:
        _check_buffer_dtypes(config, where, p, v, m, b, dtypes)


def _check_first_moment(config: Config, where: str, field: str, x: Any, g: Any) -> None:
    """Raises for a first-moment buffer in 8-bit blocks where this configuration keeps it
    in a float dtype, or the other way round, or in blocks of another shape."""
    if x is None:
        return
    quantized = isinstance(x, quantize.QuantizedArray)
    shape = x.codes.shape if quantized else jnp.shape(x)
    if quantized and jnp.iscomplexobj(g) and not config.split_complex:
        shape = shape[:-1]  # (re, im) pairs of codes: the buffer has the gradient's shape
    int8 = config.mu_dtype
    wanted = isinstance(int8, quantize.Int8) and int8.applies_to(shape)
    if quantized != wanted or (quantized and x.codes.dtype != jnp.int8):
        found = "in 8-bit blocks" if quantized else f"{jnp.result_type(x)}"
        raise ValueError(
            f"the state's {field}{where} is {found} but this transformation has "
            f"mu_dtype={config.mu_dtype!r}: the state was made by a different configuration."
        )
    if quantized and x.scales.shape != quantize.scales_shape(x.codes.shape, int8):
        raise ValueError(
            f"the state's {field}{where} has 8-bit blocks of shape {x.scales.shape} but this "
            f"transformation, with mu_dtype={int8!r}, makes "
            f"{quantize.scales_shape(x.codes.shape, int8)}: the state was made by a different "
            "configuration."
        )


def _check_buffer_dtypes(
    config: Config,
    where: str,
    p: Any,
    v: Any,
    m: Any,
    b: Any,
    dtypes: tuple[np.dtype, np.dtype],
) -> None:
    """Raises for buffers of other dtypes than this configuration gives the parameter."""
    nu_dtype, mu_dtype = dtypes
    buffers = [
        ("nu", v, nu_dtype, "nu_dtype"),
        ("mu", m, mu_dtype, "mu_dtype"),
        ("momentum", b, mu_dtype, "mu_dtype"),
    ]
    for name, buffer, wanted, option in buffers:
        if buffer is None or isinstance(buffer, quantize.QuantizedArray):
            continue
        if buffer.dtype != wanted:
            raise ValueError(
                f"the state's {name}{where} is {buffer.dtype} but this transformation, with "
                f"{option}={getattr(config, option)!r}, keeps {wanted} for params{where} of "
                f"dtype {jnp.result_type(p)}: the state was made by a different configuration."
            )
