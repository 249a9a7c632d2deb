"""Shared test set-up: Keras on the JAX backend, and the shared data folder."""

import hashlib
import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras

import pytest  # noqa: E402

AIRFOIL_SHA1 = "76e5be1548fd8222e5074cf0faae75edff8cf93f"
SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def airfoil_path() -> pathlib.Path:
    """The UCI airfoil self-noise file from ../shared/data (or $OPTAX_RMSPROP_AIRFOIL)."""
    path = pathlib.Path(os.environ.get("OPTAX_RMSPROP_AIRFOIL", SHARED_DATA / "airfoil_self_noise.dat"))
    if not path.exists():
        pytest.fail(f"airfoil data not found at {path}; the tests need ../shared/data")
    assert hashlib.sha1(path.read_bytes()).hexdigest() == AIRFOIL_SHA1
    return path
