"""Shared kernel: the stored column names, identifier quoting and the winner order (DESIGN §3).

The tie rule is written once, here: among candidate rows the winner has the greatest
(event time, created time, ingested time, write sequence), a null created time sorting lowest.
SQL (point-in-time joins, materialization, compaction), the online codec and the Redis
compare-and-write all take it from this module.
"""

from __future__ import annotations

EVENT_TS = "__event_ts"
CREATED_TS = "__created_ts"
SEQ = "__seq"
SHADOWED_UNTIL = (
    "__shadowed_until"  # int64 us system time from which a later tie wins; null = never
)
INGESTED_AT = "__ingested_at"
NULL_CREATED = -(2**63)  # a null created time sorts lowest
WINNER_ORDER = ("event", "created", "ingested", "seq")  # greatest wins, compared left to right


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(s: str) -> str:
    """Quote a string literal."""
    return "'" + s.replace("'", "''") + "'"


def winner_order_sql() -> str:
    """A DuckDB value that sorts rows by the winner order (for arg_max)."""
    return (
        f"struct_pack(a := epoch_us({EVENT_TS}), b := coalesce(epoch_us({CREATED_TS}), {NULL_CREATED + 1}::BIGINT - 1), "
        f"c := {INGESTED_AT}, d := {SEQ})"
    )


def tie_order_sql(direction: str = "DESC") -> str:
    """ORDER BY terms among rows with equal keys and event time (the winner first with DESC)."""
    nulls = "NULLS LAST" if direction == "DESC" else "NULLS FIRST"
    return f"{CREATED_TS} {direction} {nulls}, {INGESTED_AT} {direction}, {SEQ} {direction}"
