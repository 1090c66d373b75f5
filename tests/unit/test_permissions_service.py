"""Permissions on feature services (issue 11, item 4): `read_online` granted on
`feature_service:NAME` lets a principal read the features of that service without a grant on
each view it reads — as registered (a look-alike service object gets nothing through it), pii
fields only through a permission with pii=True, and nothing beyond the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import featureline as fl
from featureline.auth import Principal, http_authenticator
from featureline.errors import PermissionDeniedError
from tests.auth_kit import auth_yaml
from tests.helpers import TS, utc

ADMIN = Principal("root", ("admin",))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    fl.init_repo(root, project="t", with_data=False)
    (root / "definitions.py").unlink()
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml())
    driver = fl.Entity("driver", ["driver_id"])
    stats = fl.FeatureView(
        "driver_stats",
        entities=[driver],
        schema=[
            fl.Field("driver_id", fl.Int64),
            fl.Field("rate", fl.Float64),
            fl.Field("email", fl.String, tags={"pii": "true"}),
        ],
    )
    trips = fl.FeatureView(
        "driver_trips",
        entities=[driver],
        schema=[fl.Field("driver_id", fl.Int64), fl.Field("trips", fl.Int64)],
    )
    defs = [
        driver,
        stats,
        trips,
        fl.FeatureService("scoring", ["driver_stats:rate", "driver_trips:trips"]),
        fl.FeatureService("contact", ["driver_stats:email"], tags={"team": "support"}),
        fl.Permission(
            "scoring",
            actions=["read_online"],
            resources="feature_service:scoring",
            roles=["model"],
        ),
        fl.Permission(
            "contact",
            actions=["read_online"],
            resources=fl.Resource("feature_service", tags={"team": "support"}),
            roles=["model"],
        ),
        fl.Permission(
            "contact-pii",
            actions=["read_online"],
            resources="feature_service:contact",
            roles=["support"],
            pii=True,
        ),
    ]
    when = pa.array([utc(2025, 1, 1)], TS)
    one = pa.array([1], pa.int64())
    with fl.FeatureStore(root, principal=ADMIN) as s:
        s.apply(defs)
        s.push(
            "driver_stats",
            pa.table({"driver_id": one, "event_timestamp": when, "rate": [0.5], "email": ["a@x"]}),
        )
        s.push("driver_trips", pa.table({"driver_id": one, "event_timestamp": when, "trips": [7]}))
    return root


def _check(s: fl.FeatureStore, service: Any, refs: list[str]) -> None:
    """The read path's check of an online read of `refs` (through `service`, or not)."""
    cat = s.catalog()
    pairs = cat.resolve(refs)
    caller = s.authorizer.caller(s.authorizer.default.principal)  # type: ignore[union-attr]
    caller.check_read(
        "read_online",
        [v for _, v in pairs],
        lambda: [(v, [r.feature]) for r, v in pairs],
        None,
        None,
        service,
    )


def test_a_grant_on_a_service_covers_the_views_it_reads(repo: Path) -> None:
    with fl.FeatureStore(repo, principal=Principal("m", ("model",))) as s:
        scoring = s.catalog().service("scoring")
        _check(s, scoring, scoring.refs())
        with pytest.raises(PermissionDeniedError, match="feature_view `driver_stats`"):
            _check(s, None, scoring.refs())  # the same views, not through the service: denied
        # a look-alike service object: the registered definition decides, not the caller's
        bigger = fl.FeatureService("scoring", [*scoring.refs(), "driver_stats:email"])
        with pytest.raises(PermissionDeniedError, match="registered one does not"):
            _check(s, bigger, bigger.refs())
        retagged = fl.FeatureService("nope", ["driver_stats:rate"], tags={"team": "support"})
        with pytest.raises(PermissionDeniedError, match="not registered"):
            _check(s, retagged, retagged.refs())


def test_pii_fields_through_a_service_need_pii_true(repo: Path) -> None:
    with fl.FeatureStore(repo, principal=Principal("m", ("model",))) as s:
        contact = s.catalog().service("contact")
        with pytest.raises(PermissionDeniedError, match="pii"):
            _check(s, contact, contact.refs())  # granted by tag, but without pii=True
    with fl.FeatureStore(repo, principal=Principal("h", ("support",))) as s:
        _check(s, s.catalog().service("contact"), ["driver_stats:email"])
        with pytest.raises(PermissionDeniedError):
            _check(s, s.catalog().service("scoring"), ["driver_stats:rate"])  # not its grant


class _Call:
    def __init__(self, token: str) -> None:
        self.scope = {"headers": [(b"authorization", f"Bearer {token}".encode())]}
        self.path_params: dict[str, str] = {}


def test_over_http_a_service_grant_passes_the_data_routes_first_check(repo: Path) -> None:
    with fl.FeatureStore(repo, principal=ADMIN) as s:
        a = s.authorizer
        assert a is not None
        hook = http_authenticator(a)
        model = _Call(a.tokens.create("m", ["model"])[0])
        guest = _Call(a.tokens.create("g", ["guest"])[0])
        for route in ("/features/online", "/get-online-features"):
            assert hook(model, route).principal.name == "m"
            with pytest.raises(PermissionDeniedError, match="feature_view or feature_service"):
                hook(guest, route)
        with pytest.raises(PermissionDeniedError):
            hook(model, "/push")  # a read grant is no write grant


def test_an_sdk_read_through_a_granted_service_is_allowed(repo: Path) -> None:
    with fl.FeatureStore(repo, principal=Principal("m", ("model",))) as s:
        got = s.get_online_features("scoring", [{"driver_id": 1}]).to_dict()
        assert (got["rate"], got["trips"]) == ([0.5], [7])
