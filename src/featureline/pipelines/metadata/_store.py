"""The metadata store boundary: pipelines, runs, steps, artifacts, params, metrics, lineage.

Every backend obeys the same rules, proven by `featureline.testing.metadata_contract`:

* run ids are short (16 chars), unique and sort by creation time;
* timestamps are timezone-aware UTC with microsecond precision;
* several worker processes may write steps, metrics and lineage of one run at once;
* a store pickles to its construction arguments, so it can be sent to a worker process;
* values that are not JSON (datetimes, paths, tuples, numpy scalars) in params and tags are
  kept in a JSON form (ISO strings, strings, lists, numbers); the SQL lives in `_sql.py`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import numbers
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Protocol, runtime_checkable

from featureline.errors import NotFoundError, ValidationError, did_you_mean
from featureline.pipelines.artifacts import ArtifactRef

STEP_STATUSES = ("succeeded", "failed", "cached", "skipped", "cancelled")
RUN_STATUSES = ("succeeded", "failed", "cancelled")
DIRECTIONS = ("up", "down")
MAX_LOG_CHARS = 1_000_000  # the tail is kept: the end of a log explains the failure
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase: sorts like time
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class MetadataCapabilities:
    """What a metadata backend can do. `shared`: several machines may use it at once."""

    shared: bool


@runtime_checkable
class MetadataStore(Protocol):
    """Tracking for pipeline runs. Configure at construction; every call is one operation."""

    capabilities: MetadataCapabilities

    def create_pipeline(self, name: str, spec: dict[str, Any]) -> None:
        """Upsert a pipeline; each distinct spec (by hash) is kept as a version."""

    def get_pipeline(self, name: str) -> dict[str, Any]:
        """name, spec, spec_hash, updated_at and `versions` (spec_hash, created_at), oldest first."""

    def create_run(
        self, pipeline: str, params: dict[str, Any], tags: dict[str, Any] | None = None
    ) -> str:
        """Start a run (status `running`) and return its id."""

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None: ...

    def start_step(self, run_id: str, step: str, cache_key: str, inputs: dict[str, str]) -> None:
        """Mark a step `running` (again, on a retry) with its cache key and input artifact ids."""

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
        """Record a step's end; its outputs are recorded as artifacts, its metrics logged."""

    def record_artifact(self, ref: ArtifactRef) -> None:
        """Catalogue an artifact (idempotent: the first record of an id wins)."""

    def get_artifact(self, id: str) -> ArtifactRef:
        """A recorded artifact by content id; NotFoundError when it was never recorded."""

    def find_cached(self, cache_key: str) -> dict[str, ArtifactRef] | None:
        """Outputs of the most recent succeeded step with this cache key, or None."""

    def log_params(self, run_id: str, params: dict[str, Any]) -> None: ...

    def log_metrics(
        self, run_id: str, metrics: dict[str, float], step: str | None = None
    ) -> None: ...

    def add_lineage(
        self, src_kind: str, src_id: str, dst_kind: str, dst_id: str, relation: str
    ) -> None:
        """Record the edge src -> dst (idempotent)."""

    def lineage(
        self, kind: str, id: str, direction: str = "up", depth: int = 10
    ) -> list[dict[str, Any]]:
        """Edges reachable from (kind, id): `up` follows edges into a node, `down` out of it."""

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Run fields, `params`, `metrics` and `steps`; NotFoundError naming recent runs."""

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Run fields (no steps, params or metrics), newest first."""

    def close(self) -> None:
        """Release connections. Further calls raise StorageError."""


# ---- helpers shared by backends -------------------------------------------------------------


def now() -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=time.time_ns() // 1000)


def to_micros(ts: dt.datetime) -> int:
    return (ts - EPOCH) // dt.timedelta(microseconds=1)


def from_micros(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


_last_id = [0]  # the last id made by this process, as an integer (guarded by _id_lock)
_id_lock = threading.Lock()


def new_run_id() -> str:
    """16 chars: 10 of milliseconds since the epoch, 6 random; sorts by creation time.

    Within a process ids strictly increase (as ULIDs do: same millisecond -> previous + 1).
    """
    value = (time.time_ns() // 1_000_000) << 30 | int.from_bytes(os.urandom(4), "big") >> 2
    with _id_lock:
        value = _last_id[0] = max(value, _last_id[0] + 1)
    chars = []
    for _ in range(16):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def jsonable(value: Any) -> Any:
    """A JSON form of a param/tag value; never fails (unknown objects become their str)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return items if isinstance(value, list | tuple) else sorted(items, key=str)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return str(value)


def dump(value: Any) -> str:
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: dict[str, Any]) -> str:
    try:
        text = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValidationError(
            f"Pipeline spec is not JSON-serialisable: {e}. Fix: describe the pipeline with "
            "dicts, lists, strings, numbers, booleans and None."
        ) from e
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(
            f"{what} must be a non-empty string, got `{value!r}`. Fix: pass e.g. `'train'`."
        )
    return value


def check_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"{what} must be a dict, got `{type(value).__name__}`. Fix: pass e.g. `{{}}`."
        )
    return {check_name(k, f"{what} key"): v for k, v in value.items()}


def check_status(status: Any, valid: tuple[str, ...], what: str) -> str:
    if status not in valid:
        hint = did_you_mean(str(status), valid)
        raise ValidationError(
            f"Unknown {what} status `{status}`.{hint} Valid: {', '.join(f'`{s}`' for s in valid)}."
        )
    return str(status)


def check_metrics(metrics: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in check_dict(metrics, "metrics").items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValidationError(
                f"Metric `{name}` must be a number, got `{value!r}` ({type(value).__name__}). "
                "Fix: log `float(...)` of it, or log it as a param."
            )
        out[name] = float(value)
    return out


def check_outputs(outputs: Any) -> dict[str, ArtifactRef]:
    for name, ref in check_dict(outputs, "outputs").items():
        if not isinstance(ref, ArtifactRef):
            raise ValidationError(
                f"Output `{name}` must be an ArtifactRef, got `{type(ref).__name__}`. "
                "Fix: store the value with `ArtifactStore.put` and pass the returned ref."
            )
    return dict(outputs)


def check_attempts(attempts: Any) -> int:
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise ValidationError(f"`attempts` must be an integer >= 0, got `{attempts!r}`.")
    return attempts


def tail(logs: str | None) -> str | None:
    if logs is None or len(logs) <= MAX_LOG_CHARS:
        return logs
    return "[... truncated ...]\n" + logs[-MAX_LOG_CHARS:]


def refs_to_json(outputs: Mapping[str, ArtifactRef]) -> str:
    return json.dumps({k: dataclasses.asdict(r) for k, r in outputs.items()}, sort_keys=True)


def refs_from_json(text: str) -> dict[str, ArtifactRef]:
    return {k: ArtifactRef(**v) for k, v in json.loads(text).items()}


def run_fields(row: tuple[Any, ...], from_db: Callable[[Any], dt.datetime]) -> dict[str, Any]:
    """A run row (run_id, pipeline, spec_hash, status, tags, error, created_at, finished_at)."""
    run_id, pipeline, spec, status, tags, error, created, finished = row
    return {
        "run_id": run_id,
        "pipeline": pipeline,
        "spec_hash": spec,
        "status": status,
        "tags": json.loads(tags),
        "error": error,
        "created_at": from_db(created),
        "finished_at": None if finished is None else from_db(finished),
    }


def missing_run(run_id: str, recent: Iterable[str], where: str) -> NotFoundError:
    ids = list(recent)
    listing = ", ".join(f"`{r}`" for r in ids) if ids else "none yet"
    return NotFoundError(
        f"Run `{run_id}` does not exist in {where}.{did_you_mean(str(run_id), ids)} "
        f"Recent runs: {listing}. Fix: pass an id from `list_runs()`."
    )


def missing_pipeline(name: str, known: Iterable[str], where: str) -> NotFoundError:
    names = sorted(known)
    listing = ", ".join(f"`{n}`" for n in names[:20]) or "none yet"
    return NotFoundError(
        f"Pipeline `{name}` does not exist in {where}.{did_you_mean(name, names)} "
        f"Known pipelines: {listing}. Fix: run the pipeline once to register it."
    )


# ---- schema (portable SQL; `{ts}` is the backend's timestamp type) ---------------------------

P = "featureline_meta_"
_NAMES = ("pipelines", "pipeline_versions", "runs", "steps", "artifacts", "params", "metrics")
TABLES = (*(P + name for name in (*_NAMES, "lineage")), P + "model_versions", P + "model_aliases")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {P}pipelines (
    namespace TEXT NOT NULL, name TEXT NOT NULL, spec_hash TEXT NOT NULL, spec TEXT NOT NULL,
    created_at {{ts}} NOT NULL, updated_at {{ts}} NOT NULL, PRIMARY KEY (namespace, name));
CREATE TABLE IF NOT EXISTS {P}pipeline_versions (
    namespace TEXT NOT NULL, name TEXT NOT NULL, spec_hash TEXT NOT NULL, spec TEXT NOT NULL,
    created_at {{ts}} NOT NULL, PRIMARY KEY (namespace, name, spec_hash));
CREATE TABLE IF NOT EXISTS {P}runs (
    namespace TEXT NOT NULL, run_id TEXT NOT NULL, pipeline TEXT NOT NULL, spec_hash TEXT,
    status TEXT NOT NULL, tags TEXT NOT NULL, error TEXT, created_at {{ts}} NOT NULL,
    finished_at {{ts}}, PRIMARY KEY (namespace, run_id));
CREATE INDEX IF NOT EXISTS {P}runs_by_pipeline ON {P}runs (namespace, pipeline, created_at);
CREATE INDEX IF NOT EXISTS {P}runs_by_time ON {P}runs (namespace, created_at);
CREATE TABLE IF NOT EXISTS {P}steps (
    namespace TEXT NOT NULL, run_id TEXT NOT NULL, step TEXT NOT NULL, status TEXT NOT NULL,
    cache_key TEXT NOT NULL, inputs TEXT NOT NULL, outputs TEXT NOT NULL, error TEXT,
    logs TEXT, attempts INTEGER NOT NULL, started_at {{ts}} NOT NULL, finished_at {{ts}},
    PRIMARY KEY (namespace, run_id, step));
CREATE INDEX IF NOT EXISTS {P}steps_by_cache_key
    ON {P}steps (namespace, cache_key, status, finished_at);
CREATE TABLE IF NOT EXISTS {P}artifacts (
    namespace TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, uri TEXT NOT NULL,
    size BIGINT NOT NULL, materializer TEXT NOT NULL, created_at {{ts}} NOT NULL,
    PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS {P}params (
    namespace TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (namespace, run_id, key));
CREATE TABLE IF NOT EXISTS {P}metrics (
    namespace TEXT NOT NULL, run_id TEXT NOT NULL, step TEXT NOT NULL, key TEXT NOT NULL,
    value DOUBLE PRECISION, logged_at {{ts}} NOT NULL, PRIMARY KEY (namespace, run_id, step, key));
CREATE TABLE IF NOT EXISTS {P}lineage (
    namespace TEXT NOT NULL, src_kind TEXT NOT NULL, src_id TEXT NOT NULL,
    dst_kind TEXT NOT NULL, dst_id TEXT NOT NULL, relation TEXT NOT NULL,
    created_at {{ts}} NOT NULL,
    PRIMARY KEY (namespace, src_kind, src_id, dst_kind, dst_id, relation));
CREATE INDEX IF NOT EXISTS {P}lineage_by_dst ON {P}lineage (namespace, dst_kind, dst_id);
"""


Node = tuple[str, str]
Edge = tuple[str, str, str, str, str]


def walk_lineage(
    fetch: Callable[[list[Node], str], list[Edge]],
    kind: str,
    id_: str,
    direction: str,
    depth: int,
) -> list[dict[str, Any]]:
    """Breadth-first walk; `fetch(nodes, direction)` returns the edges touching `nodes`.

    Each edge appears once, with `depth` = its distance (1 = touches the start node); cycles
    end the walk instead of looping.
    """
    check_name(kind, "Lineage kind")
    check_name(id_, "Lineage id")
    check_status(direction, DIRECTIONS, "lineage direction")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValidationError(f"Lineage `depth` must be an integer >= 1, got `{depth!r}`.")
    seen_nodes: set[Node] = {(kind, id_)}
    seen_edges: set[Edge] = set()
    frontier: list[Node] = [(kind, id_)]
    out: list[dict[str, Any]] = []
    for level in range(1, depth + 1):
        if not frontier:
            break
        found = sorted(set(fetch(frontier, direction)) - seen_edges)
        seen_edges.update(found)
        following: list[Node] = []
        for edge in found:
            src_kind, src_id, dst_kind, dst_id, relation = edge
            out.append(
                {
                    "src_kind": src_kind,
                    "src_id": src_id,
                    "dst_kind": dst_kind,
                    "dst_id": dst_id,
                    "relation": relation,
                    "depth": level,
                }
            )
            node = (src_kind, src_id) if direction == "up" else (dst_kind, dst_id)
            if node not in seen_nodes:
                seen_nodes.add(node)
                following.append(node)
        frontier = following
    return out


__all__ = [
    "RUN_STATUSES",
    "STEP_STATUSES",
    "MetadataCapabilities",
    "MetadataStore",
]
