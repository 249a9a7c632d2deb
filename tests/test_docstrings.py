"""Every public function and class of the package shows how it is called: its docstring
has an "Examples:" section that pytest's ``--doctest-modules`` runs."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

MODULES = (
    "optax_rmsprop",
    "optax_rmsprop.datasets",
    "optax_rmsprop.interop",
    "optax_rmsprop.memory",
    "optax_rmsprop.presets",
    "optax_rmsprop.quantize",
    "optax_rmsprop.sharding",
)


def _public_callables():
    for name in MODULES:
        module = importlib.import_module(name)
        for attribute in module.__all__:
            obj = getattr(module, attribute)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield pytest.param(obj, id=f"{name}.{attribute}")


@pytest.mark.parametrize("obj", list(_public_callables()))
def test_public_object_has_an_example_that_runs(obj):
    docstring = inspect.getdoc(obj) or ""
    assert "\nExamples:\n" in docstring, f"{obj.__qualname__} has no Examples: section"
    examples = doctest.DocTestParser().get_examples(docstring)
    assert examples, f"{obj.__qualname__}'s Examples: section holds no >>> line"
