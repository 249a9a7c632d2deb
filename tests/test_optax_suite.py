"""optax's own RMSProp tests, from the installed wheel, with ours in optax's place.

optax ships its test files in its wheel. ``optax_suite/optax_rmsprop_substitute.py``,
a pytest plugin, cuts their optimizer lists to RMSProp's entries and, when asked,
puts ``optax_rmsprop.rmsprop`` / ``scale_by_rms`` / ``scale_by_rms(centered=True)`` in
the place of ``optax.rmsprop`` / ``optax.scale_by_rms`` / ``optax.scale_by_stddev``.
The files run twice in subprocesses, once as shipped and once substituted, and every
test that passes with optax must pass with ours, bar the one listed in ``DIFFERS``.
Nothing is copied into this repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

MODULES = [
    "optax._src.alias_test",
    "optax._src.transform_test",
    "optax._src.float64_test",
    "optax._src.sharding_test",
    "optax.contrib._common_test",
]
PLUGIN = Path(__file__).parent / "optax_suite"

# Tests that pass with optax and, by design, not with ours (see each reason).
DIFFERS = {
    # Asserts scale_by_rms(decay=0.999, eps_in_sqrt=False, bias_correction=True) equals
    # optax.scale_by_adam(b1=0) to 1e-6. Both of optax's compute the bias correction as
    # 1 - 0.999**t in float32, which cancels: at t = 1 it is 1.3e-5 off (1 - 0.99900001).
    # Ours is exact (-expm1(t log1p(-(1 - ρ)))), so it is 6e-6 from optax's Adam;
    # test_fidelity.py::test_as_close_to_the_exact_rule_as_optax[bias_correction-eps_outside-
    # decay_0.999] measures that rule (Adam with b1 = 0) closer to exact than optax.
    "optax._src.transform_test::TransformTest::test_rms_match_adam",
}


def _run(tmp_path: Path, substitute: bool) -> tuple[dict[str, str], dict[str, int]]:
    """{test id: outcome} and the substitutes' call counts for one run of the files."""
    pytest.importorskip("sklearn")  # alias_test imports it
    pytest.importorskip("scipy")
    name = "ours" if substitute else "optax"
    report, calls = tmp_path / f"{name}.xml", tmp_path / f"{name}-calls.json"
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this repository's config
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")]),
        "OPTAX_RMSPROP_SUBSTITUTE": "1" if substitute else "0",
        "OPTAX_RMSPROP_CALLS": str(calls),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "optax_rmsprop_substitute", f"--junitxml={report}", "--rootdir=/"]
    command += ["--pyargs", *MODULES]  # with / as the root, test ids hold the module path
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200
    )
    if not report.exists():
        pytest.fail(f"optax's tests did not run:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        children = {child.tag for child in case}
        if children & {"failure", "error"}:
            outcomes[test_id] = "failed"
        elif "skipped" in children:
            outcomes[test_id] = "skipped"
        else:
            outcomes[test_id] = "passed"
    return outcomes, json.loads(calls.read_text()) if calls.exists() else {}


def _normalize(test_id: str) -> str:
    """junit's ``site-packages.optax._src.transform_test.TransformTest::name`` as
    ``optax._src.transform_test::TransformTest::name``."""
    classname, name = test_id.rsplit("::", 1)
    parts = classname.split(".")
    start = parts.index("optax")
    return f"{'.'.join(parts[start:-1])}::{parts[-1]}::{name}"


@pytest.mark.slow  # runs optax's own test files in two subprocesses
def test_every_optax_rmsprop_test_that_passes_with_optax_passes_with_ours(tmp_path):
    theirs, _ = _run(tmp_path, substitute=False)
    ours, calls = _run(tmp_path, substitute=True)
    theirs = {_normalize(k): v for k, v in theirs.items()}
    ours = {_normalize(k): v for k, v in ours.items()}
    # The selection is RMSProp's entries of each file, and it is not empty.
    assert {k.split("::")[0] for k in theirs} == set(MODULES)
    assert sum(outcome == "passed" for outcome in theirs.values()) >= 50
    assert set(ours) == set(theirs)
    # Ours really ran in optax's place: each substitute was called.
    assert calls["rmsprop"] > 0 and calls["scale_by_rms"] > 0 and calls["scale_by_stddev"] > 0
    passed = {k for k, v in theirs.items() if v == "passed"}
    lost = {k for k in passed if ours[k] != "passed"}
    assert lost == DIFFERS & passed, f"pass with optax, not with ours: {sorted(lost - DIFFERS)}"
