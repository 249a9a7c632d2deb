"""``OPTAX_RMSPROP_FAIL_ON_SKIP=1`` (tests/conftest.py) turns every skip into a failure."""

import os
import pathlib
import subprocess
import sys
import textwrap

TESTS = pathlib.Path(__file__).resolve().parent

SKIPPING = textwrap.dedent(
    """
    import pytest

    def test_passes():
        pass

    def test_skips_in_its_body():
        pytest.skip("needs the body's data: get it")

    @pytest.mark.skipif(True, reason="the marker's reason")
    def test_skipped_by_a_marker():
        pass

    @pytest.mark.xfail(reason="an expected failure", strict=True)
    def test_expected_failure():
        assert False
    """
)
SKIPPED_MODULE = textwrap.dedent(
    """
    import pytest

    pytest.importorskip("a_module_nobody_has_zz", reason="install the zz extra")

    def test_never_runs():
        pass
    """
)


def _run(tmp_path, flag):
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "test_skipped_module.py").write_text(SKIPPED_MODULE)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OPTAX_RMSPROP_FAIL_ON_SKIP": flag}
    command = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider"]
    command += ["-p", "no:randomly", "-q", "-rA", "--rootdir", str(tmp_path), str(tmp_path)]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)


def test_without_the_variable_skips_stay_skips(tmp_path):
    result = _run(tmp_path, "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 3 skipped, 1 xfailed" in result.stdout


def test_with_the_variable_every_skip_fails_with_its_reason(tmp_path):
    result = _run(tmp_path, "1")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 1 passed, 1 xfailed, 2 errors" in out  # the module, the marker's setup
    for reason in ("needs the body's data: get it", "the marker's reason", "install the zz extra"):
        assert f"skipped while OPTAX_RMSPROP_FAIL_ON_SKIP=1: Skipped: {reason}" in out
    assert "XFAIL" in out and "Interrupted" not in out  # the rest of the session still ran
