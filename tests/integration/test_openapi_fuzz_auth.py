"""Schemathesis over /openapi.json with auth enabled (issue 11): with no credential, a principal
granted nothing, and an admin token, no operation answers 5xx, and without a grant every
operation but the public /health answers 401 or 403. Small on purpose (a few examples per
operation and credential, a few seconds); the full conformance run is test_openapi_fuzz.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

import hypothesis  # noqa: E402
from hypothesis import HealthCheck, Phase, given  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

import featureline as fl  # noqa: E402
from featureline.auth import Principal  # noqa: E402
from featureline.server import create_app  # noqa: E402
from tests.auth_kit import auth_yaml  # noqa: E402
from tests.integration.server_kit import ThreadServer  # noqa: E402

pytestmark = pytest.mark.integration
EXAMPLES = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("fuzzauth") / "drivers"
    fl.init_repo(root, project="drivers")
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml())
    with fl.FeatureStore(root, principal=Principal("root", ("admin",))) as store:
        store.apply(message="first")
        store.ingest("driver_stats")
        store.materialize_incremental()
        tokens = store.authorizer.tokens  # type: ignore[union-attr]
        creds = {
            "admin": tokens.create("root", ["admin"])[0],
            "guest": tokens.create("g", ["guest"])[0],
        }
    with ThreadServer(create_app(root)) as url:
        yield url, creds


def _fuzz(op: Any, url: str, who: str, headers: dict[str, str], failures: list[str]) -> int:
    sent = 0

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        try:
            resp = case.call_and_validate(
                base_url=url, headers=headers, checks=[not_a_server_error], timeout=30
            )
        except (Exception, BaseExceptionGroup) as e:
            failures.append(f"{op.label} as {who}: {type(e).__name__}: {e}")
            return
        if who != "admin" and op.path != "/health" and resp.status_code not in (401, 403):
            failures.append(f"{op.label} as {who}: {resp.status_code} {resp.text[:200]}")

    run()
    return sent


@pytest.mark.slow
def test_no_5xx_and_no_data_without_a_grant(served: tuple[str, dict[str, str]]) -> None:
    url, creds = served
    admin = {"authorization": f"Bearer {creds['admin']}"}
    document = httpx.get(f"{url}/openapi.json", headers=admin).json()
    operations = [r.ok() for r in schemathesis.openapi.from_dict(document).get_all_operations()]
    failures: list[str] = []
    sent = 0
    for op in operations:
        for who in ("none", "guest", "admin"):
            headers = {} if who == "none" else {"authorization": f"Bearer {creds[who]}"}
            sent += _fuzz(op, url, who, headers, failures)
    assert sent >= len(operations) * 3
    assert not failures, "\n".join(failures[:20])
