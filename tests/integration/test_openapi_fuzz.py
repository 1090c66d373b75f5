"""Schemathesis over every operation of /openapi.json (issue 9, item 9), against the real server
on a small repo with real feature names, views and two registered models (one with hooks).

Each operation gets a few positive (valid by the document) and negative (invalid) requests.
Every response must be no 5xx, a documented status code with the documented content type and
body schema, and an invalid request must be refused (4xx). Bounded (about 900 requests, 20-30 s): a
failing example is recorded, not shrunk, and all failures are reported at once."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

import hypothesis  # noqa: E402
from hypothesis import HealthCheck, Phase, given  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

import featureline as fl  # noqa: E402
from featureline.server import create_app  # noqa: E402
from tests.integration.server_kit import MAX_BODY, MAX_ENTITIES, ThreadServer  # noqa: E402

# per operation and generation mode; FEATURELINE_FUZZ_EXAMPLES=500 for a longer hunt by hand
EXAMPLES = int(os.environ.get("FEATURELINE_FUZZ_EXAMPLES", "60"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
FEATURES = ["driver_stats@v1:conv_rate", "driver_stats@v1:acc_rate"]


class Trips:
    """A small model on two driver features (no training needed: the fuzz is about the server)."""

    classes_ = [0, 1]

    def predict(self, x: Any) -> list[int]:
        return [int(a > b) for a, b in x]

    def predict_proba(self, x: Any) -> list[list[float]]:
        return [[0.25, 0.75] for _ in x]


def as_labels(predictions: Any) -> list[str]:
    return ["high" if p else "low" for p in predictions]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz") / "drivers"
    fl.init_repo(root, project="drivers")
    with fl.FeatureStore(root) as store:
        store.apply(message="first")
        store.ingest("driver_stats")
        store.materialize_incremental()
        training = {
            "features": FEATURES,
            "feature_types": dict.fromkeys(FEATURES, "Float64"),
        }
        store.models.register(
            "trips", Trips(), features=FEATURES, training=training, alias="production"
        )
        store.models.register(
            "trips_labelled", Trips(), features=FEATURES, training=training, postprocess=as_labels
        )
    app = create_app(root, max_entities=MAX_ENTITIES, max_body_bytes=MAX_BODY)
    with ThreadServer(app) as url:
        yield url


def _fuzz(operation: Any, mode: GenerationMode, url: str, failures: list[str]) -> int:
    """Up to EXAMPLES requests of `mode` to `operation`; the first failure is recorded."""
    sent = 0

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal sent
        if len(failures) and failures[-1].startswith(f"{operation.label} [{mode.value}]"):
            return  # one failure per operation and mode is enough to report
        sent += 1
        try:
            case.call_and_validate(base_url=url, checks=CHECKS, timeout=30)
        except (Exception, BaseExceptionGroup) as e:  # schemathesis's FailureGroup too
            failures.append(
                f"{operation.label} [{mode.value}]: {type(e).__name__}: {e}\n  {case.as_curl_command()}"
            )

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # nothing to make invalid (e.g. GET /health: no parameters, no body)
    return sent


@pytest.mark.slow
def test_every_operation_conforms_to_the_openapi_document(server: str) -> None:
    document = httpx.get(f"{server}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)  # (from_url would skip /openapi.json itself)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert len(labels) == sum(len(methods) for methods in document["paths"].values())
    assert {"GET /models", "POST /models/{name}/predict", "POST /push/{view}"} <= labels
    failures: list[str] = []
    sent, started = 0, time.monotonic()
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            t0, n = time.monotonic(), _fuzz(op, mode, server, failures)
            print(f"  {op.label} [{mode.value}]: {n} requests, {time.monotonic() - t0:.1f} s")
            sent += n
    took = time.monotonic() - started
    print(f"schemathesis: {len(operations)} operations, {sent} requests in {took:.1f} s")
    assert sent >= len(operations) * 2
    assert not failures, f"{len(failures)} failure(s):\n\n" + "\n\n".join(failures)
