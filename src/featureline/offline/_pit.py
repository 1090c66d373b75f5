"""The point-in-time join, as SQL for DuckDB (DESIGN §3). Pure string building, golden-tested.

The entity side is a relation `__entities(__rid, <join keys>, __ts)`. Each stored part holds
rows of one view version; rows that lose a tie inside their own batch were marked once, at
ingestion (`__shadowed_until`), so a view with a single visible part needs no tie handling
at query time: the join is one ASOF LEFT JOIN plus a TTL test. With several parts, ties
across parts are resolved first by (created, ingested, write sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

from featureline._sql import (
    CREATED_TS,
    EVENT_TS,
    INGESTED_AT,
    SEQ,
    SHADOWED_UNTIL,
    lit,
    q,
    tie_order_sql,
    winner_order_sql,
)

__all__ = [
    "CREATED_TS",
    "EVENT_TS",
    "INGESTED_AT",
    "SEQ",
    "SHADOWED_UNTIL",
    "JoinSpec",
    "PartRef",
    "lit",
    "q",
]


@dataclass(frozen=True)
class PartRef:
    path: str
    ingested_at_us: int
    compacted: bool = False  # carries its own per-row __ingested_at column
    commit: int = 0  # parts of one commit were tie-resolved together
    columns: tuple[str, ...] | None = None  # feature columns the part holds (None: all requested)


@dataclass(frozen=True)
class JoinSpec:
    parts: list[PartRef]
    keys: list[str]
    features: list[tuple[str, str]]  # (stored column, output column)
    ttl_us: int | None = None
    as_of_us: int | None = None
    min_event_us: int | None = None  # only rows with an event time from here on (a preview)


def _visible(spec: JoinSpec, part: PartRef) -> str:
    if spec.as_of_us is None:
        cond = f"{SHADOWED_UNTIL} IS NULL"
    else:
        cond = f"({SHADOWED_UNTIL} IS NULL OR {SHADOWED_UNTIL} > {spec.as_of_us})"
        if part.compacted:
            cond += f" AND {INGESTED_AT} <= {spec.as_of_us}"
    if spec.min_event_us is not None:  # every row of a (keys, event time) group is kept or not
        cond += f" AND {EVENT_TS} >= make_timestamptz({int(spec.min_event_us)}::BIGINT)"
    return cond


def _part_select(spec: JoinSpec, parts: list[PartRef], with_order: bool) -> str:
    part = parts[0]
    cols = [q(k) for k in spec.keys] + [EVENT_TS]
    if with_order:
        ing = INGESTED_AT if part.compacted else f"{part.ingested_at_us}::BIGINT AS {INGESTED_AT}"
        cols += [CREATED_TS, ing, SEQ]
    cols += [column_or_null(part, s) for s, _ in dict.fromkeys(spec.features)]
    files = ", ".join(lit(p.path) for p in parts)
    return f"SELECT {', '.join(cols)} FROM read_parquet([{files}]) WHERE {_visible(spec, part)}"


def column_or_null(part: PartRef, name: str) -> str:
    """The column, or NULL when the part was written before the feature existed."""
    if part.columns is None or name in part.columns:
        return q(name)
    return f"NULL AS {q(name)}"


def _by_commit(parts: list[PartRef]) -> list[list[PartRef]]:
    groups: dict[int, list[PartRef]] = {}
    for p in parts:
        groups.setdefault(p.commit, []).append(p)
    return list(groups.values())


def event_times_sql(spec: JoinSpec) -> str:
    """The event times (`__event_ts`) of every visible row (ties not resolved): a bound for
    a preview of the newest rows."""
    return "\n    UNION ALL ".join(
        f"SELECT {EVENT_TS} FROM read_parquet([{', '.join(lit(p.path) for p in ps)}]) "
        f"WHERE {_visible(spec, ps[0])}"
        for ps in _by_commit(spec.parts)
    )


def feature_source_sql(spec: JoinSpec) -> str:
    """A relation with at most one row per (keys, event time): the tie winners visible at as_of."""
    if not spec.parts:
        cols = [f"NULL AS {q(k)}" for k in spec.keys] + [f"NULL::TIMESTAMPTZ AS {EVENT_TS}"]
        cols += [f"NULL AS {q(s)}" for s, _ in dict.fromkeys(spec.features)]
        return f"SELECT {', '.join(cols)} WHERE false"
    commits = _by_commit(spec.parts)
    if len(commits) == 1:
        # one commit has at most one visible row per (keys, event time) at any system time:
        # its ties were resolved when it was written (ingest or compaction)
        return _part_select(spec, commits[0], with_order=False)
    union = "\n    UNION ALL ".join(_part_select(spec, c, with_order=True) for c in commits)
    part_by = ", ".join([*(q(k) for k in spec.keys), EVENT_TS])
    return (
        f"SELECT * FROM (\n    {union}\n  )\n  QUALIFY row_number() OVER (PARTITION BY {part_by} "
        f"ORDER BY {tie_order_sql('DESC')}) = 1"
    )


def pit_join_sql(spec: JoinSpec, entities: str = "__entities") -> str:
    """SELECT __rid and the requested features for every entity row (order not guaranteed)."""
    outs = []
    for stored, out in spec.features:
        col = f"f.{q(stored)}"
        if spec.ttl_us:
            col = f"CASE WHEN f.{EVENT_TS} >= e.__ts - to_microseconds({spec.ttl_us}::BIGINT) THEN {col} END"
        outs.append(f"{col} AS {q(out)}")
    on = " AND ".join([*(f"e.{q(k)} = f.{q(k)}" for k in spec.keys), f"e.__ts >= f.{EVENT_TS}"])
    return (
        f"SELECT e.__rid, {', '.join(outs)}\n"
        f"FROM {entities} AS e\n"
        f"ASOF LEFT JOIN (\n  {feature_source_sql(spec)}\n) AS f\n"
        f"ON {on}"
    )


def _part_rows(
    view_keys: list[str], features: list[str], p: PartRef, where: list[str], shadow: bool
) -> str:
    ing = INGESTED_AT if p.compacted else f"{p.ingested_at_us}::BIGINT AS {INGESTED_AT}"
    cols = [
        *(q(k) for k in view_keys),
        EVENT_TS,
        CREATED_TS,
        ing,
        SEQ,
        *(column_or_null(p, f) for f in features),
    ]
    if shadow:
        cols.append(SHADOWED_UNTIL)
    sql = f"SELECT {', '.join(cols)} FROM read_parquet([{lit(p.path)}])"
    return sql + (f" WHERE {' AND '.join(where)}" if where else "")


def winners_sql(keys: list[str], features: list[str], union: str, now_us: int | None = None) -> str:
    """Per key, the row of `union` with the greatest winner order (materialization).

    With `now_us`, the winner is taken among rows whose event time has arrived, and every row
    whose event time is still ahead is returned as well: each becomes the winner from its own
    event time on (the online store stages it until then)."""
    row = ", ".join(
        [
            f"__event_us := epoch_us({EVENT_TS})",
            f"__created_us := epoch_us({CREATED_TS})",
            f"__ingested_us := {INGESTED_AT}",
            f"__seq := {SEQ}",
            *(f"{q(f)} := {q(f)}" for f in features),
        ]
    )
    k = ", ".join(q(x) for x in keys)
    if now_us is None:
        return f"SELECT {k}, unnest(arg_max(struct_pack({row}), {winner_order_sql()})) FROM (\n  {union}\n) GROUP BY {k}"
    arrived = f"{EVENT_TS} <= make_timestamptz({int(now_us)}::BIGINT)"
    ahead = ", ".join(
        [
            k,
            f"epoch_us({EVENT_TS}) AS __event_us",
            f"epoch_us({CREATED_TS}) AS __created_us",
            f"{INGESTED_AT} AS __ingested_us",
            f"{SEQ} AS __seq",
            *(q(f) for f in features),
        ]
    )
    return (
        f"SELECT {k}, unnest(arg_max(struct_pack({row}), {winner_order_sql()})) FROM (\n  {union}\n) "
        f"WHERE {arrived} GROUP BY {k}\nUNION ALL\nSELECT {ahead} FROM (\n  {union}\n) WHERE NOT ({arrived})"
    )


def scan_winners_sql(
    keys: list[str],
    features: list[str],
    parts: list[PartRef],
    since_us: int | None,
    start_us: int | None,
    end_us: int | None,
    now_us: int | None = None,
) -> str:
    """`winners_sql` over stored parts: rows of compacted parts ingested after `since_us`, event time in [start, end]."""
    selects = []
    for p in parts:
        where = []
        if p.compacted and since_us is not None:
            where.append(f"{INGESTED_AT} > {int(since_us)}")
        if start_us is not None:
            where.append(f"{EVENT_TS} >= make_timestamptz({int(start_us)}::BIGINT)")
        if end_us is not None:
            where.append(f"{EVENT_TS} <= make_timestamptz({int(end_us)}::BIGINT)")
        selects.append(_part_rows(keys, features, p, where, shadow=False))
    return winners_sql(keys, features, "\n  UNION ALL ".join(selects), now_us)


def merge_parts_sql(keys: list[str], features: list[str], parts: list[PartRef]) -> str:
    """All rows of `parts`, each with its ingested time and the system time from which a later
    tie beats it (`__shadowed_until`) — a compacted part.

    A row already merged keeps the earlier of its time and the one found among these rows: a
    size-tiered merge may combine commits that are not adjacent (1 and 3 while 2 waits in
    another tier), so a row's time from an earlier merge can be later than the time a row of a
    commit merged now beats it."""
    union = " UNION ALL ".join(_part_rows(keys, features, p, [], shadow=True) for p in parts)
    part_by = ", ".join([*(q(k) for k in keys), EVENT_TS])
    beaten = (
        f"min({INGESTED_AT}) OVER (PARTITION BY {part_by} ORDER BY {tie_order_sql('ASC')} "
        "ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)"
    )
    return (
        f"SELECT * EXCLUDE ({SHADOWED_UNTIL}), CASE WHEN {SHADOWED_UNTIL} IS NULL THEN {beaten} "
        f"ELSE least({SHADOWED_UNTIL}, coalesce({beaten}, {SHADOWED_UNTIL})) END AS "
        f"{SHADOWED_UNTIL} FROM ({union})"
    )
