"""A pytest plugin that runs optax's own RMSProp tests, optionally on optax_rmsprop.

Loaded with ``-p optax_rmsprop_substitute`` (this folder on ``PYTHONPATH``) by
``tests/test_optax_suite.py`` on the test files of the installed optax wheel:

* it keeps only the tests of RMSProp's entries (the parameterized cases whose
  parameters name ``rmsprop``, ``scale_by_rms`` or ``scale_by_stddev``, and the tests
  named after them), so the optax suite's other optimizers are not run;
* with ``OPTAX_RMSPROP_SUBSTITUTE=1`` it puts ``optax_rmsprop.rmsprop`` in the place
  of ``optax.rmsprop``, ``optax_rmsprop.scale_by_rms`` in that of
  ``optax.scale_by_rms``, and ``scale_by_rms(centered=True)`` in that of
  ``optax.scale_by_stddev``, before optax's test modules are imported (their
  parameter lists hold the functions themselves), and writes how often each was
  called to ``OPTAX_RMSPROP_CALLS`` at the end.
"""

from __future__ import annotations

import functools
import json
import os
import re

import optax
from optax._src import alias, transform

SUBSTITUTE = os.environ.get("OPTAX_RMSPROP_SUBSTITUTE") == "1"
CALLS = {"rmsprop": 0, "scale_by_rms": 0, "scale_by_stddev": 0}
OURS = re.compile(r"rmsprop|scale_by_rms|stddev|test_rms_match_adam")


def _counted(name, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        CALLS[name] += 1
        return fn(*args, **kwargs)

    return wrapper


if SUBSTITUTE:
    import optax_rmsprop

    _substitutes = {
        "rmsprop": _counted("rmsprop", optax_rmsprop.rmsprop),
        "scale_by_rms": _counted("scale_by_rms", optax_rmsprop.scale_by_rms),
        "scale_by_stddev": _counted(
            "scale_by_stddev", functools.partial(optax_rmsprop.scale_by_rms, centered=True)
        ),
    }
    for _name, _fn in _substitutes.items():
        for _module in (optax, alias, transform):
            if hasattr(_module, _name):
                setattr(_module, _name, _fn)


def _about_rmsprop(item) -> bool:
    function = getattr(item, "obj", None)
    described = getattr(function, "__x_params_repr__", "") or ""
    return bool(OURS.search(item.name) or OURS.search(described))


def pytest_collection_modifyitems(config, items):
    keep = [item for item in items if _about_rmsprop(item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("OPTAX_RMSPROP_CALLS")
    if path:
        with open(path, "w") as f:
            json.dump(CALLS, f)
