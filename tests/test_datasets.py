"""The data ships in the package, is found there, and nothing names a folder beside the checkout."""

import hashlib
import pathlib

import numpy as np
import pytest

from optax_rmsprop import datasets

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "optax_rmsprop" / "data"


def test_airfoil_is_the_package_copy_by_default(monkeypatch):
    monkeypatch.delenv("OPTAX_RMSPROP_AIRFOIL", raising=False)
    path = datasets.find_airfoil()
    assert path == DATA / "airfoil_self_noise.dat"
    assert hashlib.sha1(path.read_bytes()).hexdigest() == datasets.AIRFOIL_SHA1
    features, target = datasets.load_airfoil(n=1503)
    assert features.shape == (1503, 5) and target.shape == (1503,)
    # Standardized over the whole file, as d2l's get_data_ch11.
    np.testing.assert_allclose(features.mean(axis=0), 0, atol=1e-4)  # float32 sums
    np.testing.assert_allclose(features.std(axis=0), 1, rtol=1e-5)


def test_airfoil_elsewhere_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTAX_RMSPROP_AIRFOIL", str(tmp_path / "absent.dat"))
    with pytest.raises(FileNotFoundError, match="OPTAX_RMSPROP_AIRFOIL"):
        datasets.find_airfoil()
    changed = tmp_path / "changed.dat"
    changed.write_bytes((DATA / "airfoil_self_noise.dat").read_bytes().replace(b"800", b"801", 1))
    with pytest.raises(ValueError, match="sha1"):
        datasets.find_airfoil(changed)


def test_fashion_mnist_subset_ships_in_the_package():
    for split, n in (("train", 5000), ("t10k", 1000)):
        images, labels = datasets.load_fashion_mnist(split, subset=True)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8, split
        assert labels.shape == (n,) and labels.dtype == np.uint8, split
        counts = np.bincount(labels, minlength=10)
        assert len(counts) == 10 and counts.min() >= n // 20, counts  # every class, roughly even
        assert 60 < images.mean() < 80, images.mean()  # Fashion-MNIST's mean grey level is ~73


def test_fashion_mnist_subset_is_the_start_of_the_full_set():
    try:
        folder = datasets.find_fashion_mnist()
    except FileNotFoundError as error:
        pytest.skip(f"needs the full Fashion-MNIST set: {error}")
    for split in ("train", "t10k"):
        images, labels = datasets.load_fashion_mnist(split, folder)
        assert len(labels) == {"train": 60000, "t10k": 10000}[split]
        small_images, small_labels = datasets.load_fashion_mnist(split, subset=True)
        np.testing.assert_array_equal(small_images, images[: len(small_images)])
        np.testing.assert_array_equal(small_labels, labels[: len(small_labels)])


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTAX_RMSPROP_FASHION_MNIST", str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        datasets.load_fashion_mnist("train")
    message = str(error.value)
    assert str(tmp_path) in message and "train-images-idx3-ubyte.gz" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download_fashion_mnist" in message and "OPTAX_RMSPROP_FASHION_MNIST" in message


def test_fashion_mnist_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split"):
        datasets.load_fashion_mnist("test", subset=True)
    with pytest.raises(ValueError, match="subset"):
        datasets.load_fashion_mnist("train", "/somewhere", subset=True)


def test_the_data_folder_names_its_sources_and_licences():
    readme = (DATA / "README.md").read_text()
    for needed in ("CC BY 4.0", "10.24432/C5VW2C", "MIT", "Zalando", datasets.AIRFOIL_SHA1):
        assert needed in readme, needed


def test_nothing_names_a_folder_beside_the_checkout():
    """A user's clone has no ../shared: the package, notebooks, pages and examples never name
    it, and no test reads data from it."""
    beside, data = "../" + "shared", "shared/" + "data"  # apart: this file must not match
    for place in ("optax_rmsprop", "docs", "colab", "examples", "tests"):
        for path in sorted((ROOT / place).rglob("*")):
            # Built pages, data, and bytecode (its constants fold "shared/" + "data" into one).
            built = {"_build", "__pycache__"} & set(path.parts)
            if built or not path.is_file() or path.suffix in (".gz", ".dat"):
                continue
            text = path.read_text(errors="replace")
            assert data not in text, path
            assert place == "tests" or beside not in text, path
