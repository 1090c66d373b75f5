"""The ingestion gate over real HTTP (issue 11 item 2): a push with violations answers 200 with
the counts under a quarantine gate, 422 with the report under a strict one (native and Feast
pushes); the quarantined rows are on /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import featureline as fl
from featureline.server import create_app
from tests.helpers import new_store
from tests.integration.server_kit import ThreadServer

pytestmark = pytest.mark.integration


def _views() -> list[object]:
    card = fl.Entity("card", ["card_id"])

    def view(name: str, gate: str) -> fl.FeatureView:
        return fl.FeatureView(
            name,
            entities=[card],
            schema=[
                fl.Field("card_id", fl.Int64),
                fl.Field("amount", fl.Float64, constraints=[fl.Check.min(0)]),
            ],
            checks=[fl.Check.sql("amount_ok", "amount < 10000")],
            gate=gate,
            ttl=timedelta(days=1),
        )

    return [card, view("payments", "quarantine"), view("payments_strict", "strict")]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    store = new_store(Path(tmp_path_factory.mktemp("qhttp")), *_views())
    with ThreadServer(create_app(store)) as url, httpx.Client(base_url=url, timeout=15) as c:
        yield c
    store.close()


def _quarantined(client: httpx.Client, view: str) -> float:
    """The view's quarantined rows on /metrics (the module's tests share one server)."""
    prefix = f'featureline_view_quarantined_rows{{view="{view}"}} '
    lines = [x for x in client.get("/metrics").text.splitlines() if x.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


def _rows(amounts: list[float]) -> list[dict[str, object]]:
    now = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    return [{"card_id": i, "event_timestamp": now, "amount": a} for i, a in enumerate(amounts)]


def test_quarantine_push_answers_200_with_counts(client: httpx.Client) -> None:
    before = _quarantined(client, "payments")
    resp = client.post("/push/payments", json={"rows": _rows([1.0, -1.0, 20000.0, 2.0])})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["rows"], body["quarantined"]) == (2, 2)
    assert body["violations"] == {"amount.min": 1, "amount_ok": 1}
    read = client.post(
        "/features/online",
        json={"features": ["payments:amount"], "entities": {"card_id": [0, 1, 3]}},
    ).json()
    assert read["features"]["amount"] == [1.0, None, 2.0]
    assert _quarantined(client, "payments") == before + 2


def test_strict_push_answers_422_with_the_report(client: httpx.Client) -> None:
    resp = client.post("/push/payments_strict", json={"rows": _rows([1.0, -1.0, -2.0])})
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "ConstraintViolationError"
    assert "nothing was written" in body["message"]
    (c,) = body["report"]["constraints"]
    assert (c["constraint"], c["rows"]) == ("amount.min", 2)
    assert [s["row"] for s in c["samples"]] == [1, 2]
    feast = client.post(
        "/push",
        json={
            "push_source_name": "payments_strict",
            "df": {
                "card_id": [7],
                "event_timestamp": [datetime.now(UTC).isoformat()],
                "amount": [-5.0],
            },
        },
    )
    assert feast.status_code == 422 and "amount.min" in feast.json()["message"]
    ok = client.post("/push/payments_strict", json={"rows": _rows([1.0])})
    assert ok.status_code == 200 and ok.json()["rows"] == 1
    metrics = client.get("/metrics").text  # nothing of a strict view is ever held
    assert 'featureline_view_quarantined_rows{view="payments_strict"} 0.0' in metrics


def test_feast_write_to_online_store_quarantines_bad_rows(client: httpx.Client) -> None:
    before = _quarantined(client, "payments")
    now = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    resp = client.post(
        "/write-to-online-store",
        json={
            "feature_view_name": "payments",
            "df": {"card_id": [50, 51], "event_timestamp": [now, now], "amount": [4.0, -4.0]},
        },
    )
    assert resp.status_code == 200, resp.text
    read = client.post(
        "/features/online",
        json={"features": ["payments:amount"], "entities": {"card_id": [50, 51]}},
    ).json()
    assert read["features"]["amount"] == [4.0, None]
    assert _quarantined(client, "payments") == before + 1
