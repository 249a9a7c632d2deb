"""Shared test set-up: Keras on the JAX backend, the airfoil data, and skips as failures in CI.

With ``OPTAX_RMSPROP_FAIL_ON_SKIP=1`` (``.ci/run`` sets it) every skipped test, or skipped
module, is reported as a failure that keeps the skip's reason: CI has every extra and every
data set installed, so a skip there means something it should have run did not run. Expected
failures (``xfail``) are not skips and are left alone.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras

import pytest  # noqa: E402

from optax_rmsprop import datasets  # noqa: E402

FAIL_ON_SKIP = "OPTAX_RMSPROP_FAIL_ON_SKIP"


def _fail_on_skip() -> bool:
    return os.environ.get(FAIL_ON_SKIP, "") not in ("", "0")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return f"{longrepr[2]} ({longrepr[0]}:{longrepr[1]})"
    return str(longrepr)


def _as_failure(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped while {FAIL_ON_SKIP}=1: {_skip_reason(report)}"


def pytest_configure(config):
    if _fail_on_skip():  # a skipped module is an error then: report it, run the rest
        config.option.continue_on_collection_errors = True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if _fail_on_skip():
        _as_failure(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    if _fail_on_skip():  # a module-level importorskip or pytest.skip(allow_module_level=True)
        _as_failure(outcome.get_result())


@pytest.fixture(scope="session")
def airfoil():
    """(features, target) as d2l's ``get_data_ch11`` makes them; sha1 checked."""
    return datasets.load_airfoil()
