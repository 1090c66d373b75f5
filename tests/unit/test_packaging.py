"""`pip install 'featureline[all]'` installs every optional backend (issue 9, item 13)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_all_extra_names_every_backend_extra() -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    backends = set(extras) - {"all", "dev"}
    (spec,) = extras["all"]
    m = re.fullmatch(r"featureline\[([a-z,]+)\]", spec)
    assert m is not None, spec
    assert set(m.group(1).split(",")) == backends


def test_dev_holds_every_backend_requirement() -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    dev = set(extras["dev"])
    for name in set(extras) - {"all", "dev"}:
        assert set(extras[name]) <= dev, f"dev lacks the `{name}` extra's requirements"
