"""An unmodified Feast 0.67 SDK (`online_store: {type: remote}`) against `featureline serve`.

Runs `bench/feast_sdk_check.py`, which starts the server and drives the SDK in a child process
on a Python that has Feast — `/tmp/feastenv/bin/python` or `$FEAST_PYTHON`, made with

    python3 -m venv /tmp/feastenv && /tmp/feastenv/bin/pip install 'feast==0.67.*'

Feast is never a dependency of the package or of the test suite: without that Python the test
is skipped, with CI=true too (Feast is an optional peer to compare against, not a service the
suite needs, so the conftest rule "a missing service fails under CI" does not apply).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHECK = Path(__file__).resolve().parents[2] / "bench" / "feast_sdk_check.py"
FEAST_PYTHON = os.environ.get("FEAST_PYTHON", "/tmp/feastenv/bin/python")


def _feast_version(python: str) -> str | None:
    if not Path(python).exists():
        return None
    try:
        out = subprocess.run(
            [python, "-c", "import feast; print(feast.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "FEAST_USAGE": "False", "PYTHONPATH": ""},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def test_unmodified_feast_sdk_against_featureline_serve() -> None:
    version = _feast_version(FEAST_PYTHON)
    if version is None:
        pytest.skip(
            f"no Python with Feast at `{FEAST_PYTHON}` (set FEAST_PYTHON, or: python3 -m venv "
            "/tmp/feastenv && /tmp/feastenv/bin/pip install 'feast==0.67.*'). Skipped under CI=true "
            "too: Feast is an optional peer to compare against, not a service the suite depends on."
        )
    run = subprocess.run(
        [sys.executable, str(CHECK), "--feast-python", FEAST_PYTHON],
        capture_output=True,
        text=True,
        timeout=280,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert f"Feast {version} SDK" in report and "OK: the unmodified Feast SDK works" in report
    assert " FAIL" not in report, report
