"""The DuckDB engine's preview (`latest_rows` with a limit): the newest tie winners found from
the event times and row positions of the newest rows, their keys and features then read by row
position, without resolving the ties of every row (see `_newest`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from featureline._sql import CREATED_TS, EVENT_TS, INGESTED_AT, SEQ, lit, q, tie_order_sql
from featureline.offline._pit import (
    JoinSpec,
    PartRef,
    _visible,
    column_or_null,
    feature_source_sql,
)


class _Preview:
    """The preview methods of `DuckDBEngine` (a mixin: it uses the engine's `connection`)."""

    connection: Callable[[], Any]

    def _latest(self, spec: JoinSpec, limit: int | None) -> pa.Table:
        keys = ", ".join(q(k) for k in spec.keys)
        feats = ", ".join(q(out) for _, out in spec.features)
        sql = f"SELECT {keys}, {EVENT_TS} AS event_timestamp, {feats} FROM ({feature_source_sql(spec)}) ORDER BY {EVENT_TS} DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        con = self.connection()
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    def _newest(self, spec: JoinSpec, limit: int, overscan: int) -> pa.Table:
        """The newest `limit` tie winners without resolving ties over every row, nor reading
        more than the event times of every row: first the newest `n` visible rows' event times
        with their part and row position; the rows at the `n`-th newest event time are left
        out (its (keys, event time) groups may have rows beyond the `n`) unless those `n` are
        all the visible rows. A row whose event time no other candidate shares is its group's
        only visible row, so its winner; the others' keys and tie order are read by row
        position and their ties resolved. `n` starts at `limit` * `overscan` and grows while
        that leaves fewer than `limit` winners; then the winners' keys and features are read by
        row position (DuckDB reads only the row groups and pages that hold them)."""
        n = max(limit, 1) * overscan
        union = "\n    UNION ALL ".join(
            f"SELECT epoch_us({EVENT_TS}) AS __t, {i} AS __part, file_row_number AS __row "
            f"FROM read_parquet({lit(p.path)}, file_row_number = true) WHERE {_visible(spec, p)}"
            for i, p in enumerate(spec.parts)
        )
        while True:
            con = self.connection()
            try:
                cand = con.sql(
                    f"SELECT * FROM (\n    {union}\n  ) ORDER BY __t DESC LIMIT {n}"
                ).to_arrow_table()
            finally:
                con.close()
            complete = cand.num_rows < n  # every visible row is among them
            if cand.num_rows == 0:
                return self._latest(spec, limit)
            if cand.column("__t").null_count:  # rows without an event time: the full answer
                return self._latest(spec, limit)
            # (few values; ChunkedArray.to_numpy imports pandas)
            t, part, row = (
                np.array(cand.column(c).to_pylist(), dtype=np.int64)
                for c in ("__t", "__part", "__row")
            )
            keep = np.ones(len(t), dtype=bool) if complete else t > t.min()
            t, part, row = t[keep], part[keep], row[keep]
            _, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
            shared = counts[inverse] > 1
            won = ~shared
            if shared.any():
                won[np.flatnonzero(shared)[self._tie_winners(spec, part[shared], row[shared])]] = (
                    True
                )
            order = np.argsort(-t[won], kind="stable")[:limit]
            if len(order) >= limit or complete:
                return self._fetch_rows(spec, part[won][order], row[won][order], t[won][order])
            n *= 4

    def _read_by_row(
        self,
        spec: JoinSpec,
        part: np.ndarray,
        row: np.ndarray,
        columns: Any,
        where: str = "",
        extra: dict[str, str] | None = None,
    ) -> pa.Table:
        """The rows at (`part` index, file row position) in the columns `columns(part)` (SQL
        terms) after `__part` and `__row`, in the given order, then `extra` (SQL terms over
        `__pos`, each row's 1-based position in that order); `where`: a clause over the union
        of those rows (`QUALIFY ...`) instead, which then come in no given order. (No Arrow
        table registered: DuckDB imports pandas for that.)"""
        by_part: dict[int, list[int]] = {}
        for i, r in zip(part.tolist(), row.tolist(), strict=True):
            by_part.setdefault(int(i), []).append(int(r))
        union = " UNION ALL ".join(
            f"SELECT {i} AS __part, file_row_number AS __row, {', '.join(columns(spec.parts[i]))} "
            f"FROM read_parquet({lit(spec.parts[i].path)}, file_row_number = true) "
            f"WHERE file_row_number IN ({', '.join(str(r) for r in sorted(rows))})"
            for i, rows in sorted(by_part.items())
        )
        sql = f"SELECT * FROM ({union}) {where}"
        if not where:  # in the given order (Table.take would import pandas)
            ids = ", ".join(str((int(i) << 32) + int(r)) for i, r in zip(part, row, strict=True))
            pos = f"list_position([{ids}], (__part::BIGINT << 32) + __row)"
            terms = ", ".join(f"{e} AS {q(name)}" for name, e in (extra or {}).items())
            sql = (
                f"SELECT *{', ' if terms else ''}{terms} FROM "
                f"(SELECT *, {pos} AS __pos FROM ({union})) ORDER BY __pos"
            )
        con = self.connection()
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    def _tie_winners(self, spec: JoinSpec, part: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Of the rows at (`part`, `row`), the positions of those that win their (keys, event
        time) group by the tie order (each group's rows all given)."""

        def columns(p: PartRef) -> list[str]:
            ing = INGESTED_AT if p.compacted else f"{p.ingested_at_us}::BIGINT AS {INGESTED_AT}"
            return [*(q(k) for k in spec.keys), EVENT_TS, CREATED_TS, ing, SEQ]

        keys = ", ".join(q(k) for k in spec.keys)
        won = self._read_by_row(
            spec,
            part,
            row,
            columns,
            f"QUALIFY row_number() OVER (PARTITION BY {keys}, {EVENT_TS} "
            f"ORDER BY {tie_order_sql('DESC')}) = 1",
        )
        at = {(int(i), int(r)): j for j, (i, r) in enumerate(zip(part, row, strict=True))}
        return np.array(
            [
                at[(i, r)]
                for i, r in zip(
                    won.column("__part").to_pylist(), won.column("__row").to_pylist(), strict=True
                )
            ],
            dtype=np.int64,
        )

    def _fetch_rows(
        self, spec: JoinSpec, part: np.ndarray, row: np.ndarray, t: np.ndarray
    ) -> pa.Table:
        """The rows at (`part`, `row`) with event times `t` (µs) as `_latest` returns them
        (keys, event time, features), in the given order."""
        if len(part) == 0:
            return self._latest(spec, 0)
        stored = list(dict.fromkeys(s for s, _ in spec.features))

        def columns(p: PartRef) -> list[str]:
            return [*(q(k) for k in spec.keys), *(column_or_null(p, s) for s in stored)]

        times = ", ".join(str(int(x)) for x in t)  # known: not read again
        when = {"event_timestamp": f"make_timestamptz([{times}][__pos]::BIGINT)"}
        got = self._read_by_row(spec, part, row, columns, extra=when)
        names = [*spec.keys, "event_timestamp"]
        return pa.table(
            [*(got.column(c) for c in names), *(got.column(s) for s, _ in spec.features)],
            names=[*names, *(out for _, out in spec.features)],
        )
