"""The MetadataStore in portable SQL; a backend supplies connections and transactions.

The statements run unchanged on SQLite (>= 3.24) and PostgreSQL: `?` placeholders are
rewritten to the backend's style, upserts use `ON CONFLICT`, and every table carries a
`namespace` column so several projects can share one database.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from featureline.errors import NotFoundError, StorageError, ValidationError
from featureline.pipelines.artifacts import ArtifactRef
from featureline.pipelines.metadata._model_records import ModelRegistryMixin
from featureline.pipelines.metadata._store import (
    RUN_STATUSES,
    STEP_STATUSES,
    Edge,
    MetadataCapabilities,
    Node,
    P,
    check_attempts,
    check_dict,
    check_metrics,
    check_name,
    check_outputs,
    check_status,
    dump,
    missing_pipeline,
    missing_run,
    new_run_id,
    now,
    refs_from_json,
    refs_to_json,
    run_fields,
    spec_hash,
    tail,
    walk_lineage,
)

T = TypeVar("T")
_RUN_COLS = "run_id, pipeline, spec_hash, status, tags, error, created_at, finished_at"
_STEP_COLS = (
    "step, status, cache_key, inputs, outputs, error, logs, attempts, started_at, finished_at"
)
_WHERE_RUN = "WHERE namespace = ? AND run_id = ?"
_BATCH = 200  # lineage nodes per query: stays far below any backend's parameter limit


class SqlMetadataStore(ModelRegistryMixin, ABC):
    """Shared implementation. Subclasses set `capabilities`, `namespace`, `placeholder` and
    implement `_write`/`_read` (run `fn(connection)` in a transaction), `_to_db`/`_from_db`
    (timestamps) and `_where` (a description for messages)."""

    capabilities: MetadataCapabilities
    namespace: str
    placeholder = "?"

    @abstractmethod
    def _write(self, fn: Callable[[Any], T]) -> T:
        """Backend hook."""

    @abstractmethod
    def _read(self, fn: Callable[[Any], T]) -> T:
        """Backend hook."""

    @abstractmethod
    def _to_db(self, ts: datetime) -> Any:
        """Backend hook."""

    @abstractmethod
    def _from_db(self, value: Any) -> datetime:
        """Backend hook."""

    @abstractmethod
    def _where(self) -> str:
        """Backend hook."""

    # ---- plumbing ---------------------------------------------------------------------------

    def _x(self, db: Any, sql: str, *params: Any) -> Any:
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        return db.execute(sql, params)

    def _insert(
        self, db: Any, table: str, row: dict[str, Any], key: tuple[str, ...], update: str = ""
    ) -> Any:
        """INSERT a row of this namespace; on a key conflict update the columns in `update`
        (space-separated) from the new row, or do nothing."""
        cols = ", ".join(["namespace", *row])
        marks = ", ".join("?" * (len(row) + 1))
        sets = ", ".join(f"{c} = excluded.{c}" for c in update.split())
        action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
        sql = f"INSERT INTO {P}{table} ({cols}) VALUES ({marks}) "
        sql += f"ON CONFLICT (namespace, {', '.join(key)}) {action}"
        return self._x(db, sql, self.namespace, *row.values())

    def _ts(self, value: Any) -> datetime | None:
        return None if value is None else self._from_db(value)

    def _require_run(self, db: Any, run_id: str) -> None:
        check_name(run_id, "Run id")
        sql = f"SELECT 1 FROM {P}runs {_WHERE_RUN}"
        if self._x(db, sql, self.namespace, run_id).fetchone() is None:
            recent = self._x(
                db,
                f"SELECT run_id FROM {P}runs WHERE namespace = ? "
                "ORDER BY created_at DESC, run_id DESC LIMIT 10",
                self.namespace,
            ).fetchall()
            raise missing_run(run_id, [r[0] for r in recent], self._where())

    def _insert_artifact(self, db: Any, ref: ArtifactRef, ts: Any) -> None:
        row = {"id": ref.id, "kind": ref.kind, "uri": ref.uri, "size": ref.size}
        self._insert(
            db, "artifacts", {**row, "materializer": ref.materializer, "created_at": ts}, ("id",)
        )

    def _insert_metrics(
        self, db: Any, run_id: str, step: str, metrics: dict[str, float], ts: Any
    ) -> None:
        for key, value in sorted(metrics.items()):  # fixed order: no deadlocks between writers
            number = None if math.isnan(value) else value  # SQLite has no NaN: NULL reads as NaN
            row = {"run_id": run_id, "step": step, "key": key, "value": number, "logged_at": ts}
            self._insert(db, "metrics", row, ("run_id", "step", "key"), "value logged_at")

    def _insert_params(self, db: Any, run_id: str, params: dict[str, Any]) -> None:
        for key, value in sorted(params.items()):
            row = {"run_id": run_id, "key": key, "value": dump(value)}
            self._insert(db, "params", row, ("run_id", "key"), "value")

    # ---- pipelines and runs -----------------------------------------------------------------

    def create_pipeline(self, name: str, spec: dict[str, Any]) -> None:
        check_name(name, "Pipeline name")
        spec = check_dict(spec, "Pipeline spec")
        digest, text, ts = spec_hash(spec), json.dumps(spec, sort_keys=True), self._to_db(now())
        row = {"name": name, "spec_hash": digest, "spec": text, "created_at": ts}

        def run(db: Any) -> None:
            self._insert(db, "pipeline_versions", row, ("name", "spec_hash"))
            update = "spec_hash spec updated_at"
            self._insert(db, "pipelines", {**row, "updated_at": ts}, ("name",), update)

        self._write(run)

    def get_pipeline(self, name: str) -> dict[str, Any]:
        check_name(name, "Pipeline name")
        key = (self.namespace, name)
        where = "WHERE namespace = ? AND name = ?"

        def run(db: Any) -> dict[str, Any]:
            sql = f"SELECT spec_hash, spec, created_at, updated_at FROM {P}pipelines {where}"
            row = self._x(db, sql, *key).fetchone()
            if row is None:
                sql = f"SELECT name FROM {P}pipelines WHERE namespace = ?"
                names = [n[0] for n in self._x(db, sql, self.namespace).fetchall()]
                raise missing_pipeline(name, names, self._where())
            sql = f"SELECT spec_hash, created_at FROM {P}pipeline_versions {where} "
            versions = self._x(db, sql + "ORDER BY created_at, spec_hash", *key).fetchall()
            return {
                "name": name,
                "spec_hash": row[0],
                "spec": json.loads(row[1]),
                "created_at": self._from_db(row[2]),
                "updated_at": self._from_db(row[3]),
                "versions": [{"spec_hash": h, "created_at": self._from_db(t)} for h, t in versions],
            }

        return self._read(run)

    def create_run(
        self, pipeline: str, params: dict[str, Any], tags: dict[str, Any] | None = None
    ) -> str:
        check_name(pipeline, "Pipeline name")
        params = check_dict(params, "Run params")
        tags_text = dump(check_dict(tags or {}, "Run tags"))

        def run(db: Any) -> str:
            sql = f"SELECT spec_hash FROM {P}pipelines WHERE namespace = ? AND name = ?"
            found = self._x(db, sql, self.namespace, pipeline).fetchone()
            for _ in range(10):
                row = {
                    "run_id": new_run_id(),
                    "pipeline": pipeline,
                    "spec_hash": found and found[0],
                    "status": "running",
                    "tags": tags_text,
                    "created_at": self._to_db(now()),
                }
                if self._insert(db, "runs", row, ("run_id",)).rowcount == 1:
                    self._insert_params(db, row["run_id"], params)
                    return str(row["run_id"])
            raise StorageError(f"Could not allocate a unique run id in {self._where()}.")

        return self._write(run)

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        check_status(status, RUN_STATUSES, "run")

        def run(db: Any) -> None:
            self._require_run(db, run_id)
            sql = f"UPDATE {P}runs SET status = ?, error = ?, finished_at = ? {_WHERE_RUN}"
            self._x(db, sql, status, error, self._to_db(now()), self.namespace, run_id)

        self._write(run)

    # ---- steps, artifacts, params, metrics --------------------------------------------------

    def start_step(self, run_id: str, step: str, cache_key: str, inputs: dict[str, str]) -> None:
        check_name(step, "Step name")
        if not isinstance(cache_key, str):
            raise ValidationError(f"`cache_key` must be a string, got `{cache_key!r}`.")
        inputs = check_dict(inputs, "Step inputs")
        if not all(isinstance(v, str) for v in inputs.values()):
            raise ValidationError(
                f"Step inputs must map names to artifact ids (strings), got `{inputs!r:.120}`. "
                "Fix: pass `{name: ref.id}`."
            )

        def run(db: Any) -> None:
            self._require_run(db, run_id)
            row = {
                **{"run_id": run_id, "step": step, "status": "running", "cache_key": cache_key},
                **{"inputs": json.dumps(inputs, sort_keys=True), "outputs": "{}", "error": None},
                **{"logs": None, "attempts": 0, "started_at": self._to_db(now())},
                "finished_at": None,
            }
            update = "status cache_key inputs outputs error logs started_at finished_at"
            self._insert(db, "steps", row, ("run_id", "step"), update)

        self._write(run)

    def finish_step(
        self,
        run_id: str,
        step: str,
        status: str,
        outputs: dict[str, ArtifactRef],
        metrics: dict[str, float] | None,
        error: str | None,
        logs: str | None,
        attempts: int,
    ) -> None:
        check_name(step, "Step name")
        check_status(status, STEP_STATUSES, "step")
        outputs = check_outputs(outputs)
        numbers = check_metrics(metrics or {})
        attempts = check_attempts(attempts)

        def run(db: Any) -> None:
            self._require_run(db, run_id)
            ts = self._to_db(now())
            row = {
                **{"run_id": run_id, "step": step, "status": status, "cache_key": ""},
                **{"inputs": "{}", "outputs": refs_to_json(outputs), "error": error},
                **{"logs": tail(logs), "attempts": attempts, "started_at": ts},
                "finished_at": ts,
            }
            update = "status outputs error logs attempts finished_at"
            self._insert(db, "steps", row, ("run_id", "step"), update)
            for ref in sorted(outputs.values(), key=lambda r: r.id):
                self._insert_artifact(db, ref, ts)
            self._insert_metrics(db, run_id, step, numbers, ts)

        self._write(run)

    def record_artifact(self, ref: ArtifactRef) -> None:
        check_outputs({"ref": ref})
        self._write(lambda db: self._insert_artifact(db, ref, self._to_db(now())))

    def get_artifact(self, id: str) -> ArtifactRef:
        check_name(id, "Artifact id")
        sql = f"SELECT id, kind, uri, size, materializer FROM {P}artifacts "
        sql += "WHERE namespace = ? AND id = ?"
        row = self._read(lambda db: self._x(db, sql, self.namespace, id).fetchone())
        if row is None:
            raise NotFoundError(
                f"Artifact `{id}` is not recorded in {self._where()}. Fix: pass the `id` of "
                "an ArtifactRef from a step's outputs (`get_run(run_id)['steps']`)."
            )
        return ArtifactRef(row[0], row[1], row[2], int(row[3]), row[4])

    def find_cached(self, cache_key: str) -> dict[str, ArtifactRef] | None:
        check_name(cache_key, "Cache key")
        sql = (
            f"SELECT outputs FROM {P}steps WHERE namespace = ? AND cache_key = ? "
            "AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1"
        )
        row = self._read(lambda db: self._x(db, sql, self.namespace, cache_key).fetchone())
        return None if row is None else refs_from_json(row[0])

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        params = check_dict(params, "Params")

        def run(db: Any) -> None:
            self._require_run(db, run_id)
            self._insert_params(db, run_id, params)

        self._write(run)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: str | None = None) -> None:
        numbers = check_metrics(metrics)
        if step is not None:
            check_name(step, "Step name")

        def run(db: Any) -> None:
            self._require_run(db, run_id)
            self._insert_metrics(db, run_id, step or "", numbers, self._to_db(now()))

        self._write(run)

    # ---- lineage ----------------------------------------------------------------------------

    def add_lineage(
        self, src_kind: str, src_id: str, dst_kind: str, dst_id: str, relation: str
    ) -> None:
        names = ("src_kind", "src_id", "dst_kind", "dst_id", "relation")
        row = dict(zip(names, (src_kind, src_id, dst_kind, dst_id, relation), strict=True))
        for what, value in row.items():
            check_name(value, f"Lineage `{what}`")
        key = tuple(row)
        self._write(
            lambda db: self._insert(db, "lineage", {**row, "created_at": self._to_db(now())}, key)
        )

    def lineage(
        self, kind: str, id: str, direction: str = "up", depth: int = 10
    ) -> list[dict[str, Any]]:
        def fetch(db: Any, nodes: list[Node], way: str) -> list[Edge]:
            kind_col, id_col = ("dst_kind", "dst_id") if way == "up" else ("src_kind", "src_id")
            edges: list[Edge] = []
            for i in range(0, len(nodes), _BATCH):
                chunk = nodes[i : i + _BATCH]
                cond = " OR ".join([f"({kind_col} = ? AND {id_col} = ?)"] * len(chunk))
                sql = (
                    f"SELECT src_kind, src_id, dst_kind, dst_id, relation FROM {P}lineage "
                    f"WHERE namespace = ? AND ({cond})"
                )
                args = [v for node in chunk for v in node]
                edges.extend(tuple(r) for r in self._x(db, sql, self.namespace, *args).fetchall())
            return edges

        return self._read(
            lambda db: walk_lineage(lambda n, w: fetch(db, n, w), kind, id, direction, depth)
        )

    # ---- reading runs -----------------------------------------------------------------------

    def get_run(self, run_id: str) -> dict[str, Any]:
        def run(db: Any) -> dict[str, Any]:
            self._require_run(db, run_id)
            key = (self.namespace, run_id)
            sql = f"SELECT {_RUN_COLS} FROM {P}runs {_WHERE_RUN}"
            out = run_fields(self._x(db, sql, *key).fetchone(), self._from_db)
            sql = f"SELECT key, value FROM {P}params {_WHERE_RUN}"
            out["params"] = {k: json.loads(v) for k, v in sorted(self._x(db, sql, *key))}
            step_metrics: dict[str, dict[str, float]] = {}
            run_metrics: dict[str, float] = {}
            sql = f"SELECT step, key, value FROM {P}metrics {_WHERE_RUN} ORDER BY step, key"
            for step, name, value in self._x(db, sql, *key).fetchall():
                number = math.nan if value is None else float(value)
                if step:
                    step_metrics.setdefault(step, {})[name] = number
                    run_metrics[f"{step}.{name}"] = number
                else:
                    run_metrics[name] = number
            out["metrics"] = run_metrics
            sql = f"SELECT {_STEP_COLS} FROM {P}steps {_WHERE_RUN} ORDER BY started_at, step"
            names = _STEP_COLS.split(", ")
            out["steps"] = steps = [
                dict(zip(names, s, strict=True)) for s in self._x(db, sql, *key)
            ]
            for s in steps:
                s["inputs"], s["outputs"] = json.loads(s["inputs"]), refs_from_json(s["outputs"])
                s["metrics"] = step_metrics.get(s["step"], {})
                s["started_at"], s["finished_at"] = (
                    self._from_db(s["started_at"]),
                    self._ts(s["finished_at"]),
                )
            return out

        return self._read(run)

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"`limit` must be an integer >= 1, got `{limit!r}`.")
        where, args = "namespace = ?", [self.namespace]
        if pipeline is not None:
            where, args = where + " AND pipeline = ?", [*args, check_name(pipeline, "Pipeline")]
        sql = f"SELECT {_RUN_COLS} FROM {P}runs WHERE {where} "
        sql += "ORDER BY created_at DESC, run_id DESC LIMIT ?"
        rows = self._read(lambda db: self._x(db, sql, *args, limit).fetchall())
        return [run_fields(r, self._from_db) for r in rows]


__all__ = ["SqlMetadataStore"]
