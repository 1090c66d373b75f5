"""THE write path (DESIGN §2): every way data enters goes through `write`.

In order: check the principal (a hook; permissions plug in here) → read the batch → row
checks (`check_rows`: constraints and quarantine plug in here) → schema check, with the
checks that need the parsed batch (keys, timestamps, the bound on future event times), and
offline commit (one atomic commit, `offline.store`) → online apply of the committed batch. The commit is the point of no return: nothing after it reports the
write as failed. A failed online apply is a `PartialWriteError` naming the commit, and a
retry with the same idempotency key completes it without storing the batch twice.

`write_online_only` is the one exception, for Feast's `write_to_online_store` (its server's
`POST /write-to-online-store`): the same checks, then the online apply with no offline commit.
Such rows are served online but are in no training set (online = offline at now does not hold
for them, by request), and a later materialize never removes them (the winner order decides).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from featureline.errors import (
    FeaturelineError,
    PartialWriteError,
    StorageError,
    ValidationError,
)

if TYPE_CHECKING:
    from featureline.definitions import FeatureView
    from featureline.offline.store import IngestResult, OfflineStore
    from featureline.online import OnlineStore
    from featureline.quality import Gated


@dataclass(frozen=True)
class WriteTarget:
    """What a write reaches: the offline store, the online store (opened on first use), settings."""

    offline: OfflineStore
    online: Callable[[], OnlineStore]
    repo_path: Path
    max_future_seconds: float | None


def check_principal(target: WriteTarget, principal: Any, action: str, view: FeatureView) -> None:
    """Whether `principal` may do `action` on `view`: None with auth off (nothing to check), else
    a `featureline.auth.Caller` (PermissionDeniedError, 403; the decision is audited)."""
    if principal is not None:
        principal.check_write(action, view)


def check_rows(
    target: WriteTarget,
    view: FeatureView,
    table: pa.Table,
    idempotency_key: str | None = None,
    across: Any = None,
    refusal: Any = None,
) -> Gated:
    """Row checks before anything is written: the view's constraints under its ingestion gate
    (`featureline.quality`). Returns the rows to land and the rows to quarantine; a strict gate
    raises `ConstraintViolationError` instead. Checks that need the parsed batch (keys,
    timestamps, the bound on future event times) run once, in the schema check
    (`offline.batch.prepare_batch`), and refuse the whole batch."""
    from featureline.quality import gate

    stored = None
    if any(c.kind == "unique" and c.value == "view" for c in view.checks):
        replay = idempotency_key is not None and (
            target.offline.log(view.name, view.version).find_key(idempotency_key) is not None
        )  # a retry of a committed batch is that commit again, not a duplicate of it
        if not replay:

            def stored(pairs: pa.Table) -> Any:
                return target.offline.holds(view, pairs)

    # a chunk of a larger batch: `across`, the unique key over it; `refusal`, a strict report
    return gate(view, table, stored, across, refusal)


def _quarantine_hook(
    target: WriteTarget, view: FeatureView, gated: Gated, key: str | None
) -> Callable[[], dict[str, str]] | None:
    """Store the bad rows inside the offline commit (`before_append`: under the view's writer
    lock, just before the commit line; not called when the idempotency key was seen). The
    commit names the quarantine batch, so a file whose commit line never followed (a writer
    killed between the two) is not counted, and its retry does not quarantine the rows twice."""
    if not gated.quarantined:
        return None
    from featureline._time import now_us
    from featureline.quality import quarantine

    name = quarantine.batch_name(key)

    def before_append() -> dict[str, str]:
        last = target.offline.log(view.name, view.version).last()
        seq = last.seq + 1 if last else 1
        quarantine.store(target.offline.root, view, gated, seq, name, now_us())
        return {quarantine.COMMIT_META: name}

    return before_append


def _all_quarantined(
    target: WriteTarget,
    view: FeatureView,
    gated: Gated,
    key: str | None,
    spool: Any = None,
) -> IngestResult:
    """Every row failed: nothing lands, so no commit (commit 0); the rows are in quarantine
    (those of `gated`, or of `spool`: a chunked file's, on disk).

    The schema check still runs on them: a batch the store could never take (a missing column,
    a wrong type, naive times) is refused whole, as when some rows land. (A spool's first rows
    stand for all: the chunks of one file share its schema.)"""
    from featureline._time import from_us, now_us
    from featureline.offline.batch import prepare_batch
    from featureline.offline.store import IngestResult
    from featureline.quality import quarantine

    bad = spool.first() if spool is not None else gated.bad
    bad = bad if bad is not None else gated.land
    rows = bad.drop_columns([c for c in bad.column_names if c.startswith("__")])
    prepare_batch(
        view,
        rows,
        target.offline.key_types(view.name, view.version),
        max_future_seconds=target.max_future_seconds,
    )
    at = now_us()
    name = quarantine.batch_name(key)
    if spool is not None:
        n = spool.store(None, name, at)
    else:
        n = quarantine.store(target.offline.root, view, gated, None, name, at)
    return IngestResult(
        view.name,
        view.version,
        0,
        0,
        from_us(at),
        0,
        quarantined=n,
        violations=gated.violations,
    )


def csv_types(view: FeatureView) -> dict[str, pa.DataType]:
    """Declared Arrow types of a view's keys and non-timestamp features, for reading CSV."""
    out = {k: d.to_arrow() for k, d in view.key_fields.items()}
    out.update(
        {
            f.name: f.dtype.to_arrow()
            for f in view.features
            if f.dtype.name != "Timestamp" and not f.dtype.is_array
        }
    )
    return out


def write(
    target: WriteTarget,
    view: FeatureView,
    data: Any,
    *,
    online: bool,
    idempotency_key: str | None = None,
    principal: Any = None,
) -> IngestResult:
    """Write `data` (a frame, a file path, or None for the view's source) to `view`.

    `online=True` (push) also applies the committed rows to the online store before
    returning, when the view is served online.
    """
    from featureline._frames import to_arrow

    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not idempotency_key or len(idempotency_key) > 200
    ):
        raise ValidationError(
            f"Idempotency key `{idempotency_key}` is not usable. Fix: pass a non-empty string of at most 200 characters."
        )
    check_principal(target, principal, "write_online" if online else "write_offline", view)
    if data is None:
        if view.source is None:
            raise ValidationError(
                f"Feature view `{view.name}` has no source to read. Fix: pass the data, e.g. store.ingest('{view.name}', df)."
            )
        path = view.source.path
        data = (
            path if os.path.isabs(path) else str(target.repo_path / path)
        )  # a source is relative to the repo
    elif (
        isinstance(data, str | os.PathLike) and not os.path.isabs(data) and not os.path.exists(data)
    ):
        data = str(target.repo_path / data)
    if isinstance(data, str | os.PathLike):
        from featureline.offline import chunked

        rows = chunked.file_rows(str(data))
        if (
            rows is not None and rows > chunked.LARGE_FILE_ROWS
        ):  # large file: bounded memory, no online apply
            return _chunked(target, view, str(data), idempotency_key)
    gated = check_rows(
        target,
        view,
        to_arrow(data, f"batch for feature view `{view.name}`", csv_types(view)),
        idempotency_key,
    )
    table = gated.land
    if table.num_rows == 0 and gated.quarantined:
        return _all_quarantined(target, view, gated, idempotency_key)
    result, stored = target.offline.ingest_stored(
        view,
        table,
        before_commit=_quarantine_hook(target, view, gated, idempotency_key),
        idempotency_key=idempotency_key,
        max_future_seconds=target.max_future_seconds,
        housekeeping=False,
    )
    try:
        if online and view.online:
            apply_online(target, view, stored, result)
    finally:  # after the value is servable: merging small commits never delays it
        if not result.replayed:
            target.offline.after_commit(view)
    return _reported(result, view, table, gated)


def _chunked(target: WriteTarget, view: FeatureView, path: str, key: str | None) -> IngestResult:
    """A large file in chunks, in bounded memory: each chunk gated; the bad rows of all chunks
    spooled to disk as they come (`quarantine.Spool`) and stored as one batch in the one commit.
    A unique key holds across the whole file (`chunked.unique_across`: a first pass over its keys
    and event times only). A strict gate reads the file to its end once a chunk fails (landing
    nothing more) and refuses it with the report of the whole file (`quality.Refusal`)."""
    import dataclasses

    from featureline._time import now_us
    from featureline.offline import chunked
    from featureline.quality import Gated, Refusal, quarantine

    spool = quarantine.Spool(target.offline.root, view)
    refusal = Refusal(view) if view.gate_mode == "strict" else None
    counts: dict[str, int] = {}
    landed: list[int] = []  # rows landed per chunk, then -1 once the file is read whole

    def batches() -> Any:
        seen = 0
        for b in chunked.file_batches(path):
            g = check_rows(target, view, b, key, across, refusal)
            seen, rows = seen + b.num_rows, seen
            if refusal is not None and refusal.violating:
                continue  # refused: read on for the report, land nothing
            if g.bad is not None:  # positions in the file, not in the chunk
                i = g.bad.schema.get_field_index("__row")
                spool.add(g.bad.set_column(i, "__row", pc.add(g.bad.column(i), rows)))
            for k, n in g.violations.items():
                counts[k] = counts.get(k, 0) + n
            landed.append(g.land.num_rows)
            yield g.land
        if across is not None:
            across.finish()  # before the commit
        refused = refusal.error() if refusal is not None else None
        if refused is not None:
            raise refused
        landed.append(-1)

    def before_append() -> dict[str, str] | None:
        if not spool.rows:
            return None
        last = target.offline.log(view.name, view.version).last()
        seq = last.seq + 1 if last else 1
        name = quarantine.batch_name(key)
        spool.store(seq, name, now_us())
        return {quarantine.COMMIT_META: name}

    try:
        with chunked.unique_across(target.offline, view, path) as across:
            try:
                result = chunked.ingest_chunks(
                    target.offline,
                    view,
                    batches(),
                    before_commit=before_append,
                    idempotency_key=key,
                    max_future_seconds=target.max_future_seconds,
                )
            except ValidationError:
                if landed[-1:] != [-1] or any(n > 0 for n in landed) or not spool.rows:
                    raise
                # every row failed: as for one frame, no commit, the rows in quarantine
                gated = Gated(pa.table({}), None, counts)
                return _all_quarantined(target, view, gated, key, spool)
    finally:
        spool.discard()
    return dataclasses.replace(result, quarantined=spool.rows, violations=counts)


def write_online_only(
    target: WriteTarget, view: FeatureView, data: Any, *, principal: Any = None
) -> int:
    """Write `data` (a frame) to the online store only: no offline commit (module docstring).

    The rows are checked as by `write` and ordered as a commit ingested now would be. Returns the
    number of rows written."""
    from featureline._frames import to_arrow
    from featureline._time import now_us
    from featureline.offline.batch import prepare_batch
    from featureline.online.materialize import apply_batch

    if not view.online:
        raise ValidationError(
            f"Feature view `{view.name}` is not served online (online=False), so nothing can be written "
            "to the online store for it. Fix: set online=True and apply, or write it offline."
        )
    check_principal(target, principal, "write_online", view)
    gated = check_rows(
        target, view, to_arrow(data, f"batch for feature view `{view.name}`", csv_types(view))
    )
    table = gated.land
    if gated.quarantined:  # no commit: the bad rows are stored at once
        from featureline._time import now_us as _now
        from featureline.quality import quarantine

        quarantine.store(
            target.offline.root, view, gated, None, quarantine.batch_name(None), _now()
        )
        if table.num_rows == 0:
            return 0
    known = target.offline.key_types(view.name, view.version)
    stored, key_types = prepare_batch(
        view, table, known, max_future_seconds=target.max_future_seconds
    )
    # the online key encoding follows the key types of the view's first commit (Int64 when none)
    odd = [k for k in view.join_keys if key_types.get(k) != known.get(k, "Int64")]
    if odd:
        raise ValidationError(
            f"Feature view `{view.name}` has no offline commit yet, and its key "
            + ", ".join(f"`{k}` ({key_types.get(k)})" for k in odd)
            + " is not Int64, so it cannot be written online only. Fix: ingest or push the view "
            "once (that records the key types), then write online only."
        )
    try:
        apply_batch(target.offline, target.online(), view, stored, now_us())
    except FeaturelineError:
        raise
    except Exception as e:  # nothing was committed offline: the write simply failed
        raise StorageError(
            f"Writing {stored.num_rows} rows of `{view.name}` v{view.version} to the online store failed: {e}. "
            "Nothing was written offline (an online-only write). Fix: retry the write."
        ) from e
    return stored.num_rows


def _reported(
    result: IngestResult, view: FeatureView, table: pa.Table, gated: Gated
) -> IngestResult:
    """The result with what was not silently kept: undeclared columns, NaN / Inf values, rows
    quarantined and constraint violations."""
    import dataclasses

    if gated.quarantined or gated.violations:
        result = dataclasses.replace(
            result, quarantined=gated.quarantined, violations=dict(gated.violations)
        )

    from featureline.offline.batch import timestamp_columns

    ts_col, created_col = timestamp_columns(view)
    declared = {*view.join_keys, ts_col, created_col, *(f.name for f in view.features)}
    ignored = tuple(c for c in table.column_names if c not in declared)
    non_finite = {}
    for f in view.features:
        if f.dtype.name == "Float64" and f.name in table.column_names:
            col = table.column(f.name)
            if pa.types.is_floating(col.type):
                n = pc.sum(pc.invert(pc.is_finite(col))).as_py() or 0
                if n:
                    non_finite[f.name] = int(n)
    if not ignored and not non_finite:
        return result
    return dataclasses.replace(result, ignored_columns=ignored, non_finite=non_finite)


def apply_online(
    target: WriteTarget, view: FeatureView, stored: pa.Table, result: IngestResult
) -> None:
    """Apply a committed batch online; a failure here never un-acknowledges the commit."""
    from featureline.offline.store import dt_to_us
    from featureline.online.materialize import apply_batch

    try:
        apply_batch(target.offline, target.online(), view, stored, dt_to_us(result.ingested_at))
    except Exception as e:  # the commit stands; say so
        raise PartialWriteError(
            f"The batch was committed offline to `{view.name}` v{view.version} (commit {result.commit}, {result.rows} rows), "
            f"but writing it to the online store failed: {e}. Fix: retry with the same idempotency key (it is not stored "
            "twice), or run `featureline materialize`.",
            result.commit,
        ) from e
