"""Constraints, the ingestion gate and the quarantine (issue 11 items 1-2): rows in = landed +
quarantined, landed rows satisfy every constraint, a strict gate leaves the store byte-for-byte
unchanged, a replay lands exactly the fixed rows, and names cannot inject SQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.cli import cli
from featureline.definitions import validate_definitions
from featureline.errors import ConstraintViolationError, DefinitionError, ValidationError
from featureline.quality import quarantine
from tests.helpers import TS, new_store, utc

CITIES = ["ams", "ber", "cdg"]


def _view(gate: str | None = None, name: str = "payments") -> tuple[fl.Entity, fl.FeatureView]:
    card = fl.Entity("card", ["card_id"])
    view = fl.FeatureView(
        name,
        entities=[card],
        schema=[
            fl.Field("card_id", fl.Int64),
            fl.Field("amount", fl.Float64, constraints=[fl.Check.not_null(), fl.Check.min(0)]),
            fl.Field(
                "city", fl.String, constraints=[fl.Check.isin(CITIES), fl.Check.max_length(3)]
            ),
            fl.Field("n", fl.Int64),  # the row's position in its batch: tells rows apart
        ],
        checks=[fl.Check.sql("amount_ok", "amount < 10000"), fl.Check.unique()],
        gate=gate,
        ttl=timedelta(days=3650),
    )
    return card, view


def _batch(
    cards: list[int], times: list[datetime], amounts: list[float | None], cities: list[str | None]
) -> pa.Table:
    return pa.table(
        {
            "card_id": pa.array(cards, pa.int64()),
            "event_timestamp": pa.array(times, TS),
            "amount": pa.array(amounts, pa.float64()),
            "city": pa.array(cities, pa.string()),
            "n": pa.array(range(len(cards)), pa.int64()),
        }
    )


def _expected_bad(t: pa.Table) -> set[int]:
    """The reference: which rows violate a constraint, in plain Python."""
    rows = t.to_pylist()
    keys = [(r["card_id"], r["event_timestamp"]) for r in rows]
    bad = set()
    for i, r in enumerate(rows):
        a, c = r["amount"], r["city"]
        if a is None or a < 0 or (a is not None and not a < 10000):
            bad.add(i)
        if c is not None and (c not in CITIES or len(c) > 3):
            bad.add(i)
        if keys.count(keys[i]) > 1:
            bad.add(i)
    return bad


def _commit_rows(store: fl.FeatureStore, view: fl.FeatureView, commit: int) -> pa.Table:
    log = store.offline.log(view.name, view.version)
    (c,) = [c for c in log.commits() if c.seq == commit]
    return pa.concat_tables([pq.read_table(log.root / p.file) for p in c.parts])


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under the repo's data folder, by content hash."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


amounts = st.one_of(
    st.none(), st.floats(-50, 20_000, allow_nan=False), st.sampled_from([0.0, 9999.9, 10000.0])
)
cities = st.one_of(st.none(), st.sampled_from([*CITIES, "zzz", "amsx", ""]))
rows_st = st.lists(
    st.tuples(st.integers(1, 4), st.integers(0, 3), amounts, cities), min_size=1, max_size=30
)


@pytest.fixture(scope="module")
def quarantine_store(tmp_path_factory: pytest.TempPathFactory) -> fl.FeatureStore:
    return new_store(tmp_path_factory.mktemp("q"), *_view())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows_st)
def test_rows_in_equal_landed_plus_quarantined(
    quarantine_store: fl.FeatureStore, rows: list[tuple[int, int, float | None, str | None]]
) -> None:
    store = quarantine_store
    view = store.get_feature_view("payments")
    t = _batch(
        [r[0] for r in rows],
        [utc(2025, 1, 1) + timedelta(minutes=r[1]) for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )
    held_before = quarantine.read(store.offline.root, "payments")
    seen = set() if held_before is None else set(held_before.column("__quarantine_id").to_pylist())
    result = store.ingest("payments", t)
    assert result.rows + result.quarantined == t.num_rows  # nothing dropped
    bad = _expected_bad(t)
    assert result.quarantined == len(bad)
    held = quarantine.read(store.offline.root, "payments")
    new = [] if held is None else [r for r in held.to_pylist() if r["__quarantine_id"] not in seen]
    assert sorted(r["n"] for r in new) == sorted(bad)  # exactly the bad rows, each once
    assert {r["__commit"] for r in new} <= {result.commit or None}
    if result.rows:  # the landed rows: the others, and they satisfy every constraint
        landed = _commit_rows(store, view, result.commit)
        assert sorted(landed.column("n").to_pylist()) == sorted(set(range(len(rows))) - bad)
        back = pa.table(
            {
                "card_id": landed.column("card_id"),
                "event_timestamp": landed.column("__event_ts"),
                "amount": landed.column("amount"),
                "city": landed.column("city"),
            }
        )
        assert _expected_bad(back) == set()
    else:
        assert result.commit == 0 and len(bad) == len(rows)


def test_quarantine_records_reasons_batch_commit_and_time(tmp_path: Path) -> None:
    store = new_store(tmp_path, *_view())
    t0 = datetime.now(UTC)
    t = _batch([1, 2, 3], [utc(2025, 1, 1)] * 3, [5.0, -1.0, 20000.0], ["ams", "xyz", "ber"])
    r = store.ingest("payments", t)
    assert (r.rows, r.quarantined) == (1, 2)
    assert r.violations == {"amount.min": 1, "city.isin": 1, "amount_ok": 1}
    assert "2 row(s) quarantined" in str(r)
    held = store.quarantined_rows("payments")
    assert held is not None
    by_n = {row["n"]: row for row in held.to_pylist()}
    assert by_n[1]["__violations"] == ["amount.min", "city.isin"]
    assert by_n[2]["__violations"] == ["amount_ok"]
    assert {row["__commit"] for row in by_n.values()} == {r.commit}
    assert len({row["__batch_id"] for row in by_n.values()}) == 1
    assert all(row["__quarantined_at"] >= t0 for row in by_n.values())
    assert store.quarantine()["payments"]["rows"] == 2
    assert store.freshness()["payments"]["quarantined"] == 2
    files = list(quarantine.folder(store.offline.root, "payments").glob("*.parquet"))
    assert len(files) == 1 and not list(files[0].parent.glob("*.tmp"))


def test_idempotent_retry_quarantines_once_and_all_bad_batch_has_no_commit(tmp_path: Path) -> None:
    store = new_store(tmp_path, *_view())
    t = _batch([1, 2], [utc(2025, 1, 1)] * 2, [5.0, -1.0], ["ams", "ams"])
    first = store.ingest("payments", t, idempotency_key="b1")
    again = store.ingest("payments", t, idempotency_key="b1")
    assert again.replayed and again.commit == first.commit
    assert quarantine.count(store.offline.root) == {"payments": 1}
    allbad = _batch([1, 2], [utc(2025, 1, 2)] * 2, [-5.0, None], ["ams", "ams"])
    r = store.ingest("payments", allbad, idempotency_key="b2")
    assert (r.rows, r.commit, r.quarantined) == (0, 0, 2)
    store.ingest("payments", allbad, idempotency_key="b2")  # the same file, rewritten
    assert quarantine.count(store.offline.root) == {"payments": 3}
    assert len(store.commits("payments")) == 1


def test_strict_gate_refuses_atomically_with_a_report(tmp_path: Path) -> None:
    store = new_store(tmp_path, *_view(gate="strict"))
    store.ingest("payments", _batch([9], [utc(2025, 1, 1)], [1.0], ["ams"]))
    data = store.offline.root.parent
    before = _snapshot(data)
    log_before = (store.offline.log("payments", 1).log_path).read_bytes()
    t = _batch(
        [1, 2, 3, 3], [utc(2025, 1, 2)] * 4, [5.0, -1.0, 3.0, 4.0], ["ams", "ams", "ams", "xx"]
    )
    with pytest.raises(ConstraintViolationError) as e:
        store.push("payments", t)
    assert e.value.http_status == 422
    rep = e.value.report
    assert (rep["rows"], rep["violating_rows"], rep["gate"]) == (4, 3, "strict")
    by = {c["constraint"]: c for c in rep["constraints"]}
    assert set(by) == {"amount.min", "city.isin", "unique"}
    assert by["unique"]["rows"] == 2 and by["amount.min"]["samples"][0]["row"] == 1
    assert by["amount.min"]["samples"][0]["values"]["amount"] == -1.0
    assert "`amount.min` (min 0)" in e.value.message and "nothing was written" in e.value.message
    assert _snapshot(data) == before  # offline parts, commit log, online, quarantine
    assert store.offline.log("payments", 1).log_path.read_bytes() == log_before
    assert not quarantine.folder(store.offline.root, "payments").exists()


def test_warn_gate_lands_everything_and_reports(tmp_path: Path) -> None:
    store = new_store(tmp_path, *_view(gate="warn"))
    r = store.ingest("payments", _batch([1, 2], [utc(2025, 1, 1)] * 2, [-1.0, 1.0], ["ams"] * 2))
    assert (r.rows, r.quarantined, r.violations) == (2, 0, {"amount.min": 1})
    assert store.quarantine() == {}


def test_push_lands_good_rows_online_and_keeps_bad_ones_out(tmp_path: Path) -> None:
    store = new_store(tmp_path, *_view())
    now = datetime.now(UTC) - timedelta(seconds=1)
    r = store.push("payments", _batch([1, 2], [now] * 2, [3.0, -3.0], ["ams", "ams"]))
    assert (r.rows, r.quarantined) == (1, 1)
    got = store.get_online_features(["payments:amount"], {"card_id": [1, 2]})
    assert got.to_dict()["amount"] == [3.0, None]


def test_replay_after_fixing_lands_exactly_the_fixed_rows(tmp_path: Path) -> None:
    store = new_store(tmp_path, *_view())
    view = store.get_feature_view("payments")
    t = _batch(
        [1, 2, 3, 4], [utc(2025, 1, 1)] * 4, [1.0, -1.0, -2.0, 50000.0], ["ams", "ams", "x", "ber"]
    )
    assert store.ingest("payments", t).quarantined == 3
    held = store.quarantined_rows("payments")
    assert held is not None
    # fix rows n=1 and n=3; "fix" n=2 badly (still an unknown city)
    fixes = {1: (7.0, "ams"), 2: (8.0, "nop"), 3: (9.0, "cdg")}
    rows = held.to_pylist()
    for row in rows:
        row["amount"], row["city"] = fixes[row["n"]]
    fixed = pa.Table.from_pylist(rows, schema=held.schema)
    out = tmp_path / "fixed.parquet"
    pq.write_table(fixed, out)
    result = store.replay_quarantine("payments", str(out))
    assert (result.replayed, result.landed, result.still_quarantined) == (3, 2, 1)
    assert result.violations == {"city.isin": 1}
    landed = _commit_rows(store, view, result.commit or -1)
    assert sorted(
        zip(landed.column("n").to_pylist(), landed.column("amount").to_pylist(), strict=True)
    ) == [
        (1, 7.0),
        (3, 9.0),
    ]
    left = store.quarantined_rows("payments")
    assert left is not None and left.column("n").to_pylist() == [2]
    assert left.column("city").to_pylist() == ["x"]  # the stored row is unchanged
    with pytest.raises(ValidationError, match="already replayed"):
        store.replay_quarantine("payments", str(out))  # the landed rows cannot land twice
    assert int(store.describe("payments")["rows"]) == 3


def test_replay_retried_after_a_crash_is_one_commit(tmp_path: Path, monkeypatch: Any) -> None:
    store = new_store(tmp_path, *_view(gate="quarantine"))
    store.ingest("payments", _batch([1], [utc(2025, 1, 1)], [-1.0], ["ams"]))
    store.apply(list(_relaxed()))  # now -1 passes: replay the rows as stored
    real = quarantine.remove

    def crash(*a: Any, **k: Any) -> int:
        raise OSError("disk gone")

    monkeypatch.setattr(quarantine, "remove", crash)
    with pytest.raises(OSError):
        store.replay_quarantine("payments")
    monkeypatch.setattr(quarantine, "remove", real)
    result = store.replay_quarantine("payments")
    assert result.landed == 1
    assert len(store.commits("payments")) == 1  # the retry's commit is the first one's
    assert store.quarantine() == {}


def _relaxed() -> tuple[fl.Entity, fl.FeatureView]:
    card, v = _view(gate="quarantine")
    schema = [
        fl.Field(f.name, f.dtype, constraints=[c for c in f.constraints if c.kind != "min"])
        for f in v.schema
    ]
    return card, fl.FeatureView(
        v.name, entities=v.entities, schema=schema, checks=v.checks, gate=v.gate, ttl=v.ttl
    )


def test_cli_quarantine_list_show_replay(tmp_path: Path) -> None:
    store = new_store(tmp_path, *_view())
    store.ingest("payments", _batch([1, 2], [utc(2025, 1, 1)] * 2, [1.0, -1.0], ["ams", "ams"]))
    repo = str(store.repo_path)
    run = CliRunner()
    out = run.invoke(cli, ["--repo", repo, "quarantine", "list"])
    assert out.exit_code == 0 and "payments" in out.output and "amount.min 1" in out.output
    out = run.invoke(cli, ["--repo", repo, "quarantine", "show", "payments"])
    assert out.exit_code == 0 and "amount.min" in out.output
    dump = tmp_path / "bad.parquet"
    out = run.invoke(cli, ["--repo", repo, "quarantine", "show", "payments", "--out", str(dump)])
    assert out.exit_code == 0, out.output
    t = pq.read_table(dump)
    t = t.set_column(t.schema.get_field_index("amount"), "amount", pa.array([2.5]))
    pq.write_table(t, dump)
    out = run.invoke(
        cli, ["--repo", repo, "quarantine", "replay", "payments", "--fixed", str(dump)]
    )
    assert out.exit_code == 0 and "1 of 1 quarantined row(s) of payments landed" in out.output
    out = run.invoke(cli, ["--repo", repo, "describe", "payments"])
    assert out.exit_code == 0, out.output
    assert "quarantine (default)" in out.output and "amount: not_null, min 0" in out.output
    assert "amount_ok: amount < 10000" in out.output


# -- definitions --------------------------------------------------------------------------------


def test_constraints_round_trip_and_leave_other_views_unchanged() -> None:
    card, view = _view(gate="strict")
    again = fl.FeatureView.from_dict(view.to_dict(), {"card": card})
    assert again == view and again.gate_mode == "strict"
    assert again.schema[1].constraints == [fl.Check.not_null(), fl.Check.min(0)]
    plain = fl.FeatureView("p", entities=[card], schema=[fl.Field("x", fl.Float64)])
    d = plain.to_dict()
    assert "checks" not in d and "gate" not in d and "constraints" not in d["schema"][0]
    assert plain.gate_mode is None and view.gate_mode == "strict"
    when = fl.Check.min(datetime(2020, 1, 1, tzinfo=UTC))
    assert fl.Check.from_dict(when.to_dict()) == when


def test_constraint_problems_are_collected_at_once() -> None:
    card = fl.Entity("card", ["card_id"])
    view = fl.FeatureView(
        "v",
        entities=[card],
        schema=[
            fl.Field("card_id", fl.Int64),
            fl.Field("amount", fl.Float64, constraints=[fl.Check.regex("x"), fl.Check.min("0")]),
            fl.Field("city", fl.String, constraints=[fl.Check.isin([1]), fl.Check.regex("(")]),
        ],
        checks=[fl.Check.min(0), fl.Check.sql("ok", "amont < 1"), fl.Check.sql("t", "amount + 1")],
        gate="stritc",
    )
    with pytest.raises(DefinitionError) as e:
        validate_definitions([card], [view], [])
    text = str(e.value)
    for part in (
        "regex applies to String fields",
        "`'0'` is not a number",
        "`1` is not a String",
        "not valid RE2",
        "not a view check",
        "Did you mean `amount`?",
        "not a boolean",
        "Did you mean `strict`?",
    ):
        assert part in text, part
    assert len(e.value.problems) == 8


BAD_NAMES = ["a'b", 'a"b', "a;b", "x; DROP TABLE t", "a b", "a)--", "__rows"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_names_with_quotes_semicolons_are_refused_everywhere(bad: str) -> None:
    card = fl.Entity("card", ["card_id"])

    def view(**names: str) -> fl.FeatureView:
        return fl.FeatureView(
            names.get("view", "v"),
            entities=[fl.Entity(names.get("entity", "card"), [names.get("key", "card_id")])],
            schema=[
                fl.Field(names.get("key", "card_id"), fl.Int64),
                fl.Field(names.get("field", "amount"), fl.Float64, constraints=[fl.Check.min(0)]),
            ],
            checks=[fl.Check.sql(names.get("check", "ok"), "true")],
        )

    for where in ("view", "entity", "key", "field", "check"):
        v = view(**{where: bad})
        ents = v.entities if where in ("entity", "key") else [card]
        with pytest.raises(DefinitionError, match=r"not a safe identifier|reserved"):
            validate_definitions(ents, [v], [])


@pytest.mark.parametrize(
    "expr",
    [
        "amount < 1; DROP TABLE x",
        "amount < 1) FROM __rows; SELECT (1",
        "amount < 1) OR (SELECT true",
        "amount < (SELECT max(amount) FROM __rows)",
        "(SELECT count(*) FROM read_csv('/etc/passwd')) > 0",
        "read_text('/etc/passwd') IS NULL",
        "sum(amount) > 0",
        "row_number() OVER () > 1",
        "amount < 1 -- ",  # a comment would swallow what follows the expression
        "",
    ],
)
def test_sql_check_expressions_cannot_inject(expr: str) -> None:
    card = fl.Entity("card", ["card_id"])
    view = fl.FeatureView(
        "v",
        entities=[card],
        schema=[fl.Field("card_id", fl.Int64), fl.Field("amount", fl.Float64)],
        checks=[fl.Check.sql("ok", expr)],
    )
    with pytest.raises(DefinitionError):
        validate_definitions([card], [view], [])


def test_sql_keywords_as_names_are_quoted_not_executed(tmp_path: Path) -> None:
    sel = fl.Entity("select", ["drop"])
    view = fl.FeatureView(
        "table",
        entities=[sel],
        schema=[
            fl.Field("drop", fl.Int64),
            fl.Field("from", fl.Float64, constraints=[fl.Check.min(0)]),
        ],
        checks=[fl.Check.sql("delete", '"from" < 100'), fl.Check.unique()],
    )
    store = new_store(tmp_path, sel, view)
    t = pa.table(
        {
            "drop": pa.array([1, 2, 2], pa.int64()),
            "event_timestamp": pa.array([utc(2025, 1, 1), utc(2025, 1, 1), utc(2025, 1, 2)], TS),
            "from": pa.array([1.0, -1.0, 200.0]),
        }
    )
    r = store.ingest("table", t)
    assert (r.rows, r.quarantined) == (1, 2)
    assert r.violations == {"from.min": 1, "delete": 1}
    assert int(store.describe("table")["rows"]) == 1


def test_constraints_are_versioned_with_the_view(tmp_path: Path) -> None:
    card, view = _view()
    plain = fl.FeatureView(
        view.name,
        entities=view.entities,
        schema=[fl.Field(f.name, f.dtype) for f in view.schema],
        ttl=view.ttl,
    )
    store = new_store(tmp_path, card, plain)
    plan = store.plan([card, view])
    (change,) = plan.changes
    assert change["op"] == "update" and not change["breaking"]
    assert "field `amount`: constraints none -> not_null, min 0" in change["details"]
    store.apply([card, view])
    assert store.get_feature_view("payments").gate_mode == "quarantine"
    assert store.get_feature_view("payments").version == 1  # not a breaking change
    first = store.registry.get(1).snapshot["views"]["payments"][0]
    assert "constraints" not in first["schema"][1]  # the earlier registry version is kept


def test_a_batch_the_store_cannot_take_is_refused_whole_even_when_every_row_fails(
    tmp_path: Path,
) -> None:
    store = new_store(tmp_path, *_view())
    t = _batch([1, 2], [utc(2025, 1, 1)] * 2, [-1.0, -2.0], ["ams", "ams"]).drop_columns(["n"])
    with pytest.raises(ValidationError, match="column `n` is missing"):
        store.ingest("payments", t)
    assert store.quarantine() == {} and store.commits("payments") == []


def test_quarantine_reads_and_replays_are_checked_when_auth_is_on(tmp_path: Path) -> None:
    from featureline.auth import Principal
    from featureline.errors import PermissionDeniedError
    from tests.auth_kit import auth_yaml

    root = tmp_path / "repo"
    fl.init_repo(root, project="t", with_data=False)
    (root / "definitions.py").unlink()
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml())
    card, view = _view()
    perms = [
        fl.Permission(
            "read", actions=["read_offline", "describe"], resources="*", roles=["reader"]
        ),
        fl.Permission(
            "write", actions=["write_online", "write_offline"], resources="*", roles=["writer"]
        ),
    ]
    with fl.FeatureStore(root, principal=Principal("root", ("admin",))) as s:
        s.apply([card, view, *perms])
        s.ingest("payments", _batch([1, 2], [utc(2025, 1, 1)] * 2, [1.0, -1.0], ["ams"] * 2))
    with fl.FeatureStore(root) as anon:
        assert anon.quarantine() == {}
        with pytest.raises(PermissionDeniedError):
            anon.quarantined_rows("payments")
    with fl.FeatureStore(root, principal=Principal("r", ("reader",))) as reader:
        assert reader.quarantine()["payments"]["rows"] == 1
        held = reader.quarantined_rows("payments")
        assert held is not None and held.num_rows == 1
        with pytest.raises(PermissionDeniedError, match="write_online"):
            reader.replay_quarantine("payments")


def test_bounds_nan_fractional_bounds_and_times() -> None:
    from featureline.quality import evaluate

    card = fl.Entity("card", ["card_id"])
    view = fl.FeatureView(
        "v",
        entities=[card],
        schema=[
            fl.Field("card_id", fl.Int64),
            fl.Field("x", fl.Float64, constraints=[fl.Check.min(0), fl.Check.max(10)]),
            fl.Field("n", fl.Int64, constraints=[fl.Check.min(0.5)]),
            fl.Field("at", fl.Timestamp, constraints=[fl.Check.min(utc(2025, 1, 1))]),
        ],
    )
    validate_definitions([card], [view], [])
    t = pa.table(
        {
            "card_id": pa.array([1, 2, 3, 4], pa.int64()),
            "event_timestamp": pa.array([utc(2025, 1, 1)] * 4, TS),
            "x": pa.array([float("nan"), None, 10.0, 10.5]),
            "n": pa.array([0, 1, None, 1], pa.int64()),
            "at": pa.array([utc(2025, 1, 1), utc(2024, 12, 31), None, utc(2026, 1, 1)], TS),
        }
    )
    v = evaluate(view, t)
    got = {n: m.tolist() for n, m in zip(v.names, v.masks, strict=True)}
    assert got == {
        "x.min": [True, False, False, False],  # NaN is within no bounds; null passes
        "x.max": [True, False, False, True],
        "n.min": [True, False, False, False],
        "at.min": [False, True, False, False],
    }


def test_a_large_file_is_gated_chunk_by_chunk_in_one_commit(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from featureline.offline import chunked

    monkeypatch.setattr(chunked, "LARGE_FILE_ROWS", 4)
    monkeypatch.setattr(chunked, "CHUNK_ROWS", 3)
    store = new_store(tmp_path, *_view())
    t = _batch(
        list(range(8)),
        [utc(2025, 1, 1)] * 8,
        [1.0, -1.0, 2.0, 3.0, -4.0, 5.0, 6.0, -7.0],
        ["ams"] * 8,
    )
    path = tmp_path / "big.parquet"
    pq.write_table(t, path)
    r = store.ingest("payments", str(path))
    assert (r.rows, r.quarantined, r.violations) == (5, 3, {"amount.min": 3})
    (c,) = store.commits("payments")
    assert c.seq == r.commit and c.rows == 5
    held = store.quarantined_rows("payments")
    assert held is not None
    assert sorted(held.column("__row").to_pylist()) == [1, 4, 7]  # positions in the file
    assert set(held.column("__commit").to_pylist()) == {r.commit}


def test_a_writer_killed_between_quarantine_and_commit_line_counts_nothing_and_retries_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bad rows are stored just before the commit line; a writer killed between the two
    left them counted although nothing was acknowledged, and a retry (no key: a new batch
    name) quarantined them twice: rows in != landed + quarantined."""
    from featureline.offline._log import ViewLog

    store = new_store(tmp_path, *_view())
    t = _batch([1, 2, 3], [utc(2025, 1, 1)] * 3, [5.0, -1.0, None], ["ams", "ams", "ber"])
    real_store = quarantine.store

    def store_then_die(*a: Any, **k: Any) -> int:
        real_store(*a, **k)
        raise KeyboardInterrupt("killed after the quarantine file, before the commit line")

    monkeypatch.setattr(quarantine, "store", store_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.ingest("payments", t)
    monkeypatch.setattr(quarantine, "store", real_store)
    assert quarantine.count(store.offline.root) == {"payments": 0}  # nothing acknowledged
    assert quarantine.read(store.offline.root, "payments") is None
    r = store.ingest("payments", t)  # the client's retry
    assert (r.rows, r.quarantined) == (1, 2)
    assert quarantine.count(store.offline.root) == {"payments": 2}  # once
    assert quarantine.summary(store.offline.root)["payments"]["rows"] == 2
    view = store.get_feature_view("payments")
    (c,) = ViewLog(store.offline.root / "payments" / f"v{view.version}").commits()
    assert c.meta[quarantine.COMMIT_META]  # the commit names its quarantine batch


def test_unique_across_the_view_quarantines_a_row_already_stored(tmp_path: Path) -> None:
    """`Check.unique()` alone holds within a batch; `Check.unique(scope="view")` also refuses
    a row whose key and event time the view already stores (a retried batch is not one)."""
    card = fl.Entity("card", ["card_id"])

    def view(scope: str) -> fl.FeatureView:
        return fl.FeatureView(
            f"u_{scope}",
            entities=[card],
            schema=[fl.Field("card_id", fl.Int64), fl.Field("amount", fl.Float64)],
            checks=[fl.Check.unique(scope)],
            ttl=timedelta(days=3650),
        )

    store = new_store(tmp_path, card, view("batch"), view("view"))
    t0 = utc(2025, 1, 1)

    def batch(cards: list[int], hours: list[int]) -> pa.Table:
        return pa.table(
            {
                "card_id": pa.array(cards, pa.int64()),
                "event_timestamp": pa.array([t0 + timedelta(hours=h) for h in hours], TS),
                "amount": pa.array([float(c) for c in cards], pa.float64()),
            }
        )

    for name in ("u_batch", "u_view"):
        first = store.ingest(name, batch([1, 2], [0, 0]), idempotency_key=f"{name}-1")
        assert (first.rows, first.quarantined) == (2, 0)
        again = store.ingest(name, batch([1, 2], [0, 0]), idempotency_key=f"{name}-1")
        assert again.replayed and again.quarantined == 0  # a retry, not a duplicate
    by_batch = store.ingest("u_batch", batch([1, 3], [0, 0]))
    assert (by_batch.rows, by_batch.quarantined) == (2, 0)  # a correction of card 1 lands
    by_view = store.ingest("u_view", batch([1, 3, 2], [0, 0, 1]))
    assert (by_view.rows, by_view.quarantined) == (2, 1)  # card 1 at hour 0 is stored already
    held = quarantine.read(store.offline.root, "u_view")
    assert held is not None and held.column("card_id").to_pylist() == [1]
    assert held.column("__violations").to_pylist() == [["unique"]]
    assert store.describe("u_view")["definition"]["checks"] == [{"kind": "unique", "value": "view"}]
    assert fl.Check.unique("view").describe() == "unique (within the view)"
    with pytest.raises(DefinitionError, match="scope `everywhere` is unknown"):
        validate_definitions([card], [view("everywhere")], [])
