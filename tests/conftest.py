"""Shared test set-up: Keras on the JAX backend, and the airfoil data from ../shared/data."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras

import pytest  # noqa: E402

from optax_rmsprop import datasets  # noqa: E402


@pytest.fixture(scope="session")
def airfoil():
    """(features, target) as d2l's ``get_data_ch11`` makes them; sha1 checked."""
    return datasets.load_airfoil()
