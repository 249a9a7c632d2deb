"""The airfoil self-noise data the d2l optimization chapter trains on.

UCI Machine Learning Repository data set 291 (CC BY 4.0). The package does not
ship it: pass a path, set ``OPTAX_RMSPROP_AIRFOIL``, or keep the project's
``../shared/data`` beside the checkout.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np

__all__ = ["AIRFOIL_SHA1", "AIRFOIL_URL", "find_airfoil", "load_airfoil"]

AIRFOIL_SHA1 = "76e5be1548fd8222e5074cf0faae75edff8cf93f"
AIRFOIL_URL = "http://d2l-data.s3-accelerate.amazonaws.com/airfoil_self_noise.dat"
_DEFAULT = pathlib.Path(__file__).resolve().parents[2] / "shared/data/airfoil_self_noise.dat"


def find_airfoil(path: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The data file: ``path``, else ``$OPTAX_RMSPROP_AIRFOIL``, else ``../shared/data``."""
    path = pathlib.Path(path or os.environ.get("OPTAX_RMSPROP_AIRFOIL") or _DEFAULT)
    if not path.exists():
        raise FileNotFoundError(
            f"airfoil data not found at {path}; pass its path or set OPTAX_RMSPROP_AIRFOIL "
            f"(download: {AIRFOIL_URL})"
        )
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    if digest != AIRFOIL_SHA1:
        raise ValueError(f"{path} has sha1 {digest}, expected {AIRFOIL_SHA1}")
    return path


def load_airfoil(
    path: str | os.PathLike[str] | None = None, n: int = 1500
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(n, 5)`` and target ``(n,)`` as d2l's ``get_data_ch11`` makes them.

    All six columns are standardized over the whole file (population std), then
    the first ``n`` rows are kept; float32 like the book.
    """
    data = np.genfromtxt(find_airfoil(path), dtype=np.float32, delimiter="\t")
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    return data[:n, :-1], data[:n, -1]
