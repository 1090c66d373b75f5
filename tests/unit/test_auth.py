"""Auth in the SDK (issue 11, items 3-5): API tokens, OIDC JWTs, permissions with pii fields,
the `auth:` settings, the audit log, and the CLI that explains decisions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

import featureline as fl
from featureline.auth import Principal
from featureline.cli import cli
from featureline.errors import (
    ConfigError,
    DefinitionError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from tests.auth_kit import Keys, auth_yaml, expire_token
from tests.helpers import TS, utc

ADMIN = Principal("root", ("admin",))


def _defs() -> list[Any]:
    driver = fl.Entity("driver", ["driver_id"])
    view = fl.FeatureView(
        "driver_stats",
        entities=[driver],
        schema=[
            fl.Field("driver_id", fl.Int64),
            fl.Field("rate", fl.Float64),
            fl.Field("email", fl.String, tags={"pii": "true"}),
        ],
        tags={"team": "risk"},
    )
    return [
        driver,
        view,
        fl.Permission(
            "read",
            actions=["read_online", "read_offline", "describe"],
            resources="feature_view:driver_*",
            roles=["reader"],
        ),
        fl.Permission(
            "pii",
            actions=["read_online"],
            resources=fl.Resource("feature_view", tags={"team": "risk"}),
            roles=["support"],
            pii=True,
        ),
        fl.Permission(
            "write",
            actions=["write_online", "write_offline"],
            resources="feature_view:*",
            roles=["writer"],
        ),
        fl.Permission("apply", actions=["apply"], resources="*", roles=["writer"]),
    ]


def _batch() -> pa.Table:
    return pa.table(
        {
            "driver_id": pa.array([1, 2], pa.int64()),
            "event_timestamp": pa.array([utc(2025, 1, 1), utc(2025, 1, 1)], TS),
            "rate": [0.5, 0.7],
            "email": ["a@x", "b@x"],
        }
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    fl.init_repo(root, project="t", with_data=False)
    (root / "definitions.py").unlink()
    keys = Keys()
    jwks = keys.write_jwks(root / "data" / "jwks.json")
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml(jwks, extra="  audit:\n    read_sample_rate: 1.0\n"))
    with fl.FeatureStore(root, principal=ADMIN) as s:
        s.apply(_defs())
        s.push("driver_stats", _batch())
    return root


def _as(repo: Path, *roles: str, **kw: Any) -> fl.FeatureStore:
    return fl.FeatureStore(repo, principal=Principal("p", roles), **kw)


def test_auth_off_checks_nothing_and_builds_nothing(tmp_path: Path) -> None:
    root = tmp_path / "r"
    fl.init_repo(root, project="r", with_data=False)
    with fl.FeatureStore(root) as s:
        assert s.authorizer is None and s._caller() is None


def test_anonymous_sdk_is_refused_everything(repo: Path) -> None:
    with fl.FeatureStore(repo) as s:
        with pytest.raises(PermissionDeniedError, match="anonymous"):
            s.get_online_features(["driver_stats:rate"], [{"driver_id": 1}])
        with pytest.raises(PermissionDeniedError):
            s.push("driver_stats", _batch())
        with pytest.raises(PermissionDeniedError):
            s.get_training_set(
                pa.table({"driver_id": [1], "event_timestamp": pa.array([utc(2025, 2, 1)], TS)}),
                ["driver_stats:rate"],
            )
        with pytest.raises(PermissionDeniedError):
            s.preview("driver_stats")
        with pytest.raises(PermissionDeniedError):
            s.materialize()


def test_reader_reads_but_neither_writes_nor_reads_pii(repo: Path) -> None:
    with _as(repo, "reader") as s:
        resp = s.get_online_features(["driver_stats:rate"], [{"driver_id": 1}])
        assert resp.to_dict()["rate"] == [0.5]
        again = s.get_online_features(["driver_stats:rate"], [{"driver_id": 2}])  # cached decision
        assert again.to_dict()["rate"] == [0.7]
        entity = pa.table({"driver_id": [1], "event_timestamp": pa.array([utc(2025, 2, 1)], TS)})
        assert s.get_training_set(entity, ["driver_stats:rate"]).to_arrow().column(
            "rate"
        ).to_pylist() == [0.5]
        with pytest.raises(PermissionDeniedError, match="pii"):
            s.get_online_features(["driver_stats:email"], [{"driver_id": 1}])
        with pytest.raises(PermissionDeniedError, match="pii"):
            s.get_training_set(entity, ["driver_stats:email"])
        with pytest.raises(PermissionDeniedError, match="pii"):
            s.preview("driver_stats")  # every column, the pii one included
        with pytest.raises(PermissionDeniedError, match="write_online"):
            s.push("driver_stats", _batch())
        with pytest.raises(PermissionDeniedError, match="write_offline"):
            s.ingest("driver_stats", _batch())
        with pytest.raises(PermissionDeniedError, match="apply"):
            s.apply([*_defs()[:1], fl.Entity("other", ["other_id"])])


def test_pii_fields_need_a_permission_with_pii_true(repo: Path) -> None:
    with _as(repo, "support") as s:
        assert s.get_online_features(["driver_stats:email"], [{"driver_id": 1}]).to_dict()[
            "email"
        ] == ["a@x"]
    with fl.FeatureStore(repo, principal=ADMIN) as s:  # admin roles get every action, not pii
        assert s.get_online_features(["driver_stats:rate"], [{"driver_id": 1}]).to_dict()[
            "rate"
        ] == [0.5]
        with pytest.raises(PermissionDeniedError, match="pii"):
            s.get_online_features(["driver_stats:email"], [{"driver_id": 1}])


def test_writer_writes_and_applies_but_changing_permissions_needs_admin(repo: Path) -> None:
    with _as(repo, "writer") as s:
        assert s.push("driver_stats", _batch()).rows == 2
        assert s.ingest("driver_stats", _batch()).rows == 2
        defs = _defs()
        s.apply([*defs, fl.Entity("other", ["other_id"])])
        with pytest.raises(PermissionDeniedError, match="admin"):
            s.apply(
                [*defs, fl.Permission("mine", actions=["admin"], resources="*", roles=["writer"])]
            )
        with pytest.raises(PermissionDeniedError):
            s.get_online_features(["driver_stats:rate"], [{"driver_id": 1}])


def test_tokens_are_shown_once_stored_hashed_expire_and_revoke(repo: Path) -> None:
    with fl.FeatureStore(repo, principal=ADMIN) as s:
        tokens = s.authorizer.tokens  # type: ignore[union-attr]
        secret, info = tokens.create("bot", ["reader"], expires_in=3600)
        assert secret.startswith(f"fl_{info.id}_") and info.expires_at is not None
        assert secret.split("_", 2)[2].encode() not in (repo / "data" / "auth.db").read_bytes()
        assert [t.status() for t in tokens.list() if t.id == info.id] == ["active"]
    with fl.FeatureStore(repo, token=secret) as bot:
        assert bot.get_online_features(["driver_stats:rate"], [{"driver_id": 1}]).to_dict()[
            "rate"
        ] == [0.5]
        with fl.FeatureStore(repo) as other:  # another connection revokes: seen within 0.1 s
            other.authorizer.tokens.revoke(info.id)  # type: ignore[union-attr]
        time.sleep(0.11)
        with pytest.raises(UnauthenticatedError, match="revoked"):
            bot.authorizer.authenticate(secret)  # type: ignore[union-attr]
    with pytest.raises(UnauthenticatedError, match="revoked"):
        fl.FeatureStore(repo, token=secret)
    with fl.FeatureStore(repo) as s:
        old, _ = s.authorizer.tokens.create("old", ["reader"])  # type: ignore[union-attr]
        expire_token(repo, old)
        with pytest.raises(UnauthenticatedError, match="expired"):
            s.authorizer.authenticate(old)  # type: ignore[union-attr]
        with pytest.raises(UnauthenticatedError, match="Unknown or wrong"):
            s.authorizer.authenticate(old[:-3] + "xyz")  # type: ignore[union-attr]


def test_jwts_are_checked_for_signature_issuer_audience_and_expiry(repo: Path) -> None:
    keys = Keys()
    keys.write_jwks(repo / "data" / "jwks.json")
    with fl.FeatureStore(repo) as s:
        a = s.authorizer
        assert a is not None
        p = a.authenticate(keys.token(sub="jane", roles=["reader", "x"]))
        assert (p.name, p.roles, p.via) == ("jane", ("reader", "x"), "jwt")
        past = int(time.time()) - 3600
        for claims, needle in (
            ({"aud": "other"}, "audience"),
            ({"iss": "https://evil"}, "issued"),
            ({"exp": past, "iat": past - 10}, "expired"),
            ({"exp": None}, "exp"),
            ({"aud": None}, "aud"),
            ({"key": keys.bad}, "not valid"),
        ):
            with pytest.raises(UnauthenticatedError, match=needle):
                a.authenticate(keys.token(**claims))
    with fl.FeatureStore(repo, token=keys.token(roles=["support"])) as s:
        assert s.get_online_features(["driver_stats:email"], [{"driver_id": 1}]).to_dict()[
            "email"
        ] == ["a@x"]


def test_auth_settings_are_validated_all_at_once(tmp_path: Path) -> None:
    root = tmp_path / "r"
    fl.init_repo(root, project="r", with_data=False)
    base = (root / "featureline.yaml").read_text()
    (root / "featureline.yaml").write_text(
        base
        + "\nauth:\n  enabled: yes please\n  public_paths: [/features/online]\n  oidc: {jwks: k.json, issuer: x}\n"
        "  audit: {read_sample_rate: 2}\n  admins: [x]\n"
    )
    with pytest.raises(ConfigError) as e:
        fl.FeatureStore(root)
    msg = str(e.value)
    for needle in (
        "auth.enabled",
        "cannot be public",
        "`audience`",
        "read_sample_rate",
        "unknown setting `auth.admins`",
        "Valid: admin_roles, audit, enabled, oidc, public_paths",
    ):
        assert needle in msg, (needle, msg)


def test_permission_definitions_are_validated() -> None:
    with pytest.raises(DefinitionError) as e:
        fl.Permission("p", actions=["raed_online"], resources="view:x", roles=[])
    assert len(e.value.problems) == 3
    p = fl.Permission(
        "p",
        actions="read_online",
        resources=["feature_view:a_*", fl.Resource("model", "m")],
        roles="r",
    )
    assert fl.Permission.from_dict(p.to_dict()) == p


def test_permissions_are_versioned_in_the_registry(repo: Path) -> None:
    with fl.FeatureStore(repo, principal=ADMIN) as s:
        assert set(s.catalog().permissions) == {"read", "pii", "write", "apply"}
        plan = s.plan(_defs()[:-1])
        assert [(c["kind"], c["name"], c["op"]) for c in plan.changes] == [
            ("permission", "apply", "remove")
        ]


def test_audit_log_records_who_what_when_and_the_result(repo: Path) -> None:
    with _as(repo, "reader") as s:
        s.get_online_features(["driver_stats:rate"], [{"driver_id": 1}])
        with pytest.raises(PermissionDeniedError):
            s.push("driver_stats", _batch())
    with _as(repo, "writer") as w:
        commit = w.push("driver_stats", _batch()).commit
        with pytest.raises(fl.FeaturelineError):
            w.ingest("driver_stats", pa.table({"driver_id": [1]}))  # no event times: refused
    runner = CliRunner()
    out = runner.invoke(cli, ["--repo", str(repo), "audit", "--principal", "p", "--json"])
    assert out.exit_code == 0, out.output
    events = [json.loads(line) for line in out.output.splitlines()]
    got = [(e["action"], e["resource"], e["result"]) for e in events]
    assert ("read_online", "feature_view:driver_stats", "allowed") in got
    assert ("write_online", "feature_view:driver_stats", "denied") in got
    root_events = runner.invoke(
        cli, ["--repo", str(repo), "audit", "--principal", "root", "--action", "apply", "--json"]
    )
    assert [json.loads(x)["result"] for x in root_events.output.splitlines()][:1] == ["allowed"]
    assert all(
        e["ts"].endswith("+00:00") and e["roles"] in (["reader"], ["writer"]) for e in events
    )
    with _as(repo, "writer") as w:
        writes = [
            (e["action"], e["result"], e.get("detail", {}).get("commit"))
            for e in w.authorizer.audit.query(principal="p")
            if e["roles"] == ["writer"]
        ]  # type: ignore[union-attr]
    assert writes[:2] == [("write_online", "allowed", None), ("write_online", "ok", commit)]
    assert writes[2][:2] == ("write_offline", "allowed") and writes[3][:2] == (
        "write_offline",
        "error",
    )
    since = runner.invoke(
        cli, ["--repo", str(repo), "audit", "--since", "1h", "--result", "denied"]
    )
    assert "write_online" in since.output and "read_online" not in since.output


def test_audit_segments_rotate_and_old_ones_go(tmp_path: Path) -> None:
    from featureline.auth import AuditLog
    from featureline.config import AuditSettings

    log = AuditLog(tmp_path / "audit", AuditSettings(max_segment_bytes=400, max_segments=3))
    for i in range(40):
        log.record(ADMIN, "write_online", f"feature_view:v{i}", "allowed")
    log.close()
    assert len(log.segments()) == 3
    events = log.query()
    assert events and events[-1]["resource"] == "feature_view:v39"
    assert [e["resource"] for e in events] == sorted(
        (e["resource"] for e in events), key=lambda r: int(r[14:])
    )


def test_cli_tokens_and_permissions_check_explain_decisions(repo: Path) -> None:
    runner = CliRunner()
    base = ["--repo", str(repo)]
    made = runner.invoke(
        cli, [*base, "token", "create", "carol", "--roles", "reader", "--expires", "30d"]
    )
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[0]
    assert secret.startswith("fl_")
    listed = runner.invoke(cli, [*base, "token", "list"])
    assert "carol" in listed.output and "active" in listed.output and secret not in listed.output
    ok = runner.invoke(
        cli, [*base, "permissions", "check", "carol", "read_online", "feature_view:driver_stats"]
    )
    assert ok.exit_code == 0 and "ALLOWED" in ok.output and "`read`" in ok.output, ok.output
    pii = runner.invoke(
        cli, [*base, "permissions", "check", "carol", "read_online", "driver_stats:email"]
    )
    assert pii.exit_code == 3 and "pii" in pii.output, pii.output
    no = runner.invoke(
        cli,
        [*base, "permissions", "check", "role:guest", "write_online", "feature_view:driver_stats"],
    )
    assert (
        no.exit_code == 3 and "DENIED" in no.output and "permission `write`: roles" in no.output
    ), no.output
    gone = runner.invoke(cli, [*base, "token", "revoke", "carol"])
    assert gone.exit_code == 0 and "Revoked" in gone.output
    assert "revoked" in runner.invoke(cli, [*base, "token", "list"]).output
    bad = runner.invoke(cli, [*base, "token", "create", "x", "--roles", "r", "--expires", "soon"])
    assert bad.exit_code == 1 and "duration" in bad.output


def test_cli_commands_act_as_featureline_token(repo: Path) -> None:
    runner = CliRunner()
    base = ["--repo", str(repo)]
    (repo / "definitions.py").write_text(
        "from featureline import Entity\n\nrider = Entity('rider', ['rider_id'])\n"
    )
    denied = runner.invoke(cli, [*base, "apply"], env={"FEATURELINE_TOKEN": ""})
    assert denied.exit_code == 1 and "anonymous" in denied.output, denied.output
    with fl.FeatureStore(repo, principal=ADMIN) as s:
        admin, _ = s.authorizer.tokens.create("root", ["admin"])  # type: ignore[union-attr]
    bad = runner.invoke(cli, [*base, "apply"], env={"FEATURELINE_TOKEN": admin + "x"})
    assert bad.exit_code == 1 and "Unknown or wrong API token" in bad.output, bad.output
    done = runner.invoke(cli, [*base, "apply"], env={"FEATURELINE_TOKEN": admin})
    assert done.exit_code == 0, done.output


def test_apply_is_checked_on_the_object_as_it_was_and_as_it_will_be(repo: Path) -> None:
    """A grant on tagged views cannot be used to retag a view into it."""
    with fl.FeatureStore(repo, principal=ADMIN) as s:
        s.apply(
            [
                *_defs(),
                fl.Permission(
                    "team_a",
                    actions=["apply"],
                    resources=fl.Resource("feature_view", tags={"team": "a"}),
                    roles=["team_a"],
                ),
            ]
        )
    entity, view, *perms = _defs()
    retagged = fl.FeatureView(
        "driver_stats", entities=[entity], schema=view.schema, tags={"team": "a"}
    )
    with (
        _as(repo, "team_a") as s,
        pytest.raises(PermissionDeniedError, match="`apply` on feature_view `driver_stats`"),
    ):
        s.apply(
            [
                entity,
                retagged,
                *perms,
                fl.Permission(
                    "team_a",
                    actions=["apply"],
                    resources=fl.Resource("feature_view", tags={"team": "a"}),
                    roles=["team_a"],
                ),
            ]
        )
