"""The data the notebooks, the docs and the tests train on.

- The airfoil self-noise data of *Dive into Deep Learning*'s optimization chapter (UCI data
  set 291, CC BY 4.0) ships in the package, in ``optax_rmsprop/data/`` with its citation;
  :func:`airfoil_regression` sets up the book's linear regression on it.
- Fashion-MNIST (Zalando Research, MIT licence): the first 5000 training and 1000 test images
  ship in the package for the small runs (``load_fashion_mnist(split, subset=True)``); the
  full set is read from a folder holding the four original IDX files
  (:func:`find_fashion_mnist`), which :func:`download_fashion_mnist` can fill.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pathlib
import urllib.request
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "AIRFOIL_SHA1",
    "AIRFOIL_URL",
    "FASHION_MNIST_HOW_TO_GET",
    "FASHION_MNIST_URL",
    "AirfoilRegression",
    "airfoil_loss",
    "airfoil_regression",
    "download_fashion_mnist",
    "find_airfoil",
    "find_fashion_mnist",
    "load_airfoil",
    "load_fashion_mnist",
]

DATA = pathlib.Path(__file__).resolve().parent / "data"
#: SHA-1 of the airfoil file d2l publishes; :func:`find_airfoil` checks each copy against it.
AIRFOIL_SHA1 = "76e5be1548fd8222e5074cf0faae75edff8cf93f"
#: Where d2l publishes the airfoil self-noise file (the package ships a copy).
AIRFOIL_URL = "http://d2l-data.s3-accelerate.amazonaws.com/airfoil_self_noise.dat"
#: The folder of the four original Fashion-MNIST IDX files that
#: :func:`download_fashion_mnist` reads.
FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"
FASHION_MNIST_DEBIAN = pathlib.Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_SUBSET = DATA / "fashion-mnist-subset"
#: How to get the full Fashion-MNIST set, as the errors about a missing one say it.
FASHION_MNIST_HOW_TO_GET = (
    "get the full set with `apt-get install dataset-fashion-mnist` (Debian and Ubuntu: "
    f'{FASHION_MNIST_DEBIAN}) or `python -c "from optax_rmsprop import datasets; '
    "datasets.download_fashion_mnist('FOLDER')\"`, then set OPTAX_RMSPROP_FASHION_MNIST=FOLDER"
)
_SPLITS = {"train": 60000, "t10k": 10000}
_KINDS = (("images-idx3", 2051, (28, 28)), ("labels-idx1", 2049, ()))
_FILES = tuple(f"{split}-{kind}-ubyte.gz" for split in _SPLITS for kind, _, _ in _KINDS)


def find_airfoil(path: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The data file: ``path``, else ``$OPTAX_RMSPROP_AIRFOIL``, else the package's copy.

    Raises:
      FileNotFoundError: the file is not there.
      ValueError: its sha1 is not the published file's.

    Examples:
      >>> from optax_rmsprop import datasets
      >>> datasets.find_airfoil(datasets.DATA / "airfoil_self_noise.dat").name
      'airfoil_self_noise.dat'
    """
    path = pathlib.Path(
        path or os.environ.get("OPTAX_RMSPROP_AIRFOIL") or DATA / "airfoil_self_noise.dat"
    )
    if not path.exists():
        raise FileNotFoundError(
            f"airfoil data not found at {path}; pass its path or set OPTAX_RMSPROP_AIRFOIL, or "
            f"leave both unset for the package's copy (download: {AIRFOIL_URL})"
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

    Args:
      path: the data file (see :func:`find_airfoil`); ``None`` for the usual places.
      n: how many rows to keep (the file has 1503).

    Raises:
      FileNotFoundError, ValueError: as :func:`find_airfoil`, for the file at ``path``.

    Examples:
      >>> from optax_rmsprop.datasets import load_airfoil
      >>> features, target = load_airfoil()
      >>> features.shape, target.dtype
      ((1500, 5), dtype('float32'))
    """
    data = np.genfromtxt(find_airfoil(path), dtype=np.float32, delimiter="\t")
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    return data[:n, :-1], data[:n, -1]


class AirfoilRegression(NamedTuple):
    """The starting ``params`` (float32 ``w`` of shape (5, 1) and ``b`` of shape (1,)) and
    the minibatches of every epoch in the order they are used: ``batches_x`` of shape
    (steps, batch_size, 5) and ``batches_y`` of shape (steps, batch_size).

    Examples:
      >>> from optax_rmsprop import datasets
      >>> problem = datasets.airfoil_regression(seed=0, epochs=1)
      >>> problem._fields
      ('params', 'batches_x', 'batches_y')
      >>> len(problem.batches_x) == len(problem.batches_y) == 1500 // 10
      True
    """

    params: dict[str, np.ndarray]
    batches_x: np.ndarray
    batches_y: np.ndarray


def airfoil_regression(
    seed: int = 0,
    *,
    epochs: int = 2,
    batch_size: int = 10,
    bias: str = "zero",
    path: str | os.PathLike[str] | None = None,
) -> AirfoilRegression:
    """*Dive into Deep Learning* 11.8's airfoil linear regression (``train_ch11``), one seed.

    ``w ~ N(0, 0.01²)`` of shape (5, 1) as the book draws it; ``b = 0`` (``train_ch11``,
    Keras's ``Dense``) or, with ``bias="torch"``, ``U(±1/√5)`` as ``torch.nn.Linear(5, 1)``
    draws it; :func:`load_airfoil`'s rows in minibatches of ``batch_size``, reshuffled every
    epoch. Train on :func:`airfoil_loss`.

    Raises:
      ValueError: ``bias`` is neither ``"zero"`` nor ``"torch"``.
      FileNotFoundError: as :func:`load_airfoil`.

    Examples:
      >>> from optax_rmsprop import datasets
      >>> problem = datasets.airfoil_regression(seed=0)
      >>> problem.params["w"].shape, problem.batches_x.shape  # 2 epochs of 1500 rows
      ((5, 1), (300, 10, 5))
    """
    if bias not in ("zero", "torch"):
        raise ValueError(f"bias must be 'zero' or 'torch'; got {bias!r}.")
    features, target = load_airfoil(path)
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.01, size=(5, 1)).astype(np.float32)
    if bias == "zero":
        b = np.zeros(1, np.float32)
    else:
        b = rng.uniform(-(5**-0.5), 5**-0.5, size=1).astype(np.float32)
    order = np.concatenate([rng.permutation(len(features)) for _ in range(epochs)])
    return AirfoilRegression(
        {"w": w, "b": b},
        features[order].reshape(-1, batch_size, 5),
        target[order].reshape(-1, batch_size),
    )


def airfoil_loss(params: dict[str, Any], x: Any, y: Any) -> Any:
    """d2l's ``squared_loss`` averaged over the rows: mean (x·w + b − y)²/2 (NumPy or JAX).

    Examples:
      >>> import numpy as np
      >>> from optax_rmsprop import datasets
      >>> zero = {"w": np.zeros((5, 1)), "b": np.zeros(1)}
      >>> x, y = np.ones((2, 5)), np.array([1.0, 3.0])
      >>> float(datasets.airfoil_loss(zero, x, y))  # (1 + 9) / 2 / 2
      2.5
    """
    return ((x @ params["w"] + params["b"] - y[:, None]) ** 2 / 2).mean()


def find_fashion_mnist(path: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The folder of the full Fashion-MNIST set: ``path``, else ``$OPTAX_RMSPROP_FASHION_MNIST``,
    else Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``).

    The folder must hold the four original files (``train-images-idx3-ubyte.gz`` and so on).

    Raises:
      FileNotFoundError: one of them is missing; the message says how to get them.

    Examples:
      >>> import tempfile
      >>> from optax_rmsprop import datasets
      >>> try:
      ...     datasets.find_fashion_mnist(tempfile.mkdtemp())
      ... except FileNotFoundError as error:
      ...     print(str(error).startswith("Fashion-MNIST not found"), "full set" in str(error))
      True True
    """
    folder = pathlib.Path(
        path or os.environ.get("OPTAX_RMSPROP_FASHION_MNIST") or FASHION_MNIST_DEBIAN
    )
    missing = [name for name in _FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {folder} (missing {', '.join(missing)}): "
            + FASHION_MNIST_HOW_TO_GET
        )
    return folder


def download_fashion_mnist(folder: str | os.PathLike[str]) -> pathlib.Path:
    """Downloads the four files of the full set from Zalando's repository on GitHub into
    ``folder`` (those already there are kept) and returns it; about 30 MB.

    Every file, downloaded or kept, is then read as :func:`load_fashion_mnist` reads it.

    Raises:
      OSError: a file could not be downloaded (``urllib.error.URLError``, ``HTTPError``
        included).
      ValueError: a file is not a Fashion-MNIST IDX file, or holds another number of
        images or labels than the full set's.
      EOFError, OSError: a file is truncated, or not gzip (``gzip.BadGzipFile``).

    Examples:
      Kept files that are not the full set (here the package's copy of the first
      images) are refused:

      >>> import shutil, tempfile
      >>> from optax_rmsprop import datasets
      >>> folder = shutil.copytree(datasets.FASHION_MNIST_SUBSET, tempfile.mkdtemp() + "/f")
      >>> try:
      ...     datasets.download_fashion_mnist(folder)
      ... except ValueError as error:
      ...     print(str(error).split(": ")[-1])
      5000 images and 5000 labels for train
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        if not (folder / name).is_file():
            part = folder / f"{name}.part"
            urllib.request.urlretrieve(FASHION_MNIST_URL + name, part)
            part.replace(folder / name)
    for split in _SPLITS:
        load_fashion_mnist(split, folder)  # a truncated or wrong file fails here
    return folder


def load_fashion_mnist(
    split: str = "train", path: str | os.PathLike[str] | None = None, *, subset: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 28, 28)`` and labels ``(n,)``, both uint8, of ``split`` ("train" or "t10k").

    Args:
      split: "train" (60 000 images in the full set) or "t10k" (the 10 000 test images).
      path: the folder of the full set (see :func:`find_fashion_mnist`).
      subset: read the package's copy of the first 5000 training and 1000 test images
        instead (no ``path`` then).

    Raises:
      ValueError: ``split`` is neither "train" nor "t10k"; both ``path`` and
        ``subset=True`` are given; a file is not a Fashion-MNIST IDX file, or (full set)
        holds another number of images or labels than 60 000 or 10 000.
      FileNotFoundError: as :func:`find_fashion_mnist`, for the full set.
      EOFError, OSError: a file is truncated, or not gzip (``gzip.BadGzipFile``).

    Examples:
      >>> from optax_rmsprop.datasets import load_fashion_mnist
      >>> images, labels = load_fashion_mnist("t10k", subset=True)
      >>> images.shape, images.dtype, labels.shape
      ((1000, 28, 28), dtype('uint8'), (1000,))
      >>> sorted(set(labels.tolist())) == list(range(10))  # the ten classes
      True
    """
    if split not in _SPLITS:
        raise ValueError(f'split must be "train" or "t10k"; got {split!r}')
    if subset and path is not None:
        raise ValueError("pass either path (the full set) or subset=True (the package's copy)")
    folder = FASHION_MNIST_SUBSET if subset else find_fashion_mnist(path)
    arrays = []
    for kind, magic, item_shape in _KINDS:
        file = folder / f"{split}-{kind}-ubyte.gz"
        with gzip.open(file) as f:
            data = f.read()
        ndim = 1 + len(item_shape)
        header = [int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(1 + ndim)]
        if header[0] != magic or tuple(header[2:]) != item_shape:
            raise ValueError(f"{file} is not a Fashion-MNIST IDX file (header {header})")
        array = np.frombuffer(data, np.uint8, offset=4 * (1 + ndim))
        arrays.append(array.reshape(header[1], *item_shape))
    images, labels = arrays
    if len(images) != len(labels) or not (subset or len(labels) == _SPLITS[split]):
        raise ValueError(f"{folder}: {len(images)} images and {len(labels)} labels for {split}")
    return images, labels
