"""Predictions: entity keys -> the model's online features (as trained) -> model -> logged answer.

The prediction log (`PredictionLog`) is one JSON line per request, per model, in size-bounded
segments under the log folder (data/predictions/ for the server):

    <model>.jsonl                       the current segment, appended to
    <model>.<UTC time>.jsonl            rotated segments, by the time they were rotated

A current segment rotates once it holds `max_segment_bytes`; rotated segments are deleted oldest
first (over all models) while the log is over `max_total_bytes` or `max_segments`, or once older
than `max_age_days` (featureline.yaml `server.prediction_log`). `read_prediction_log(folder)`
reads every segment back as one pyarrow table, oldest first. Several processes (server workers)
may append to one log: lines are appended whole, and rotation and pruning hold a file lock.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from featureline.config import PredictionLogSettings
from featureline.errors import ConflictError, ModelHookError, NotFoundError, ValidationError

if TYPE_CHECKING:
    import pyarrow as pa

    from featureline.models.registry import ModelRegistry, ModelVersion, ModelWithHooks

__all__ = [
    "DefinitionLookup",
    "FeatureReader",
    "OnlineVectors",
    "PredictionLog",
    "Predictor",
    "read_prediction_log",
]


# -- what the predictor needs from the store (FeatureStore satisfies these structurally) ---------


class OnlineVectors(Protocol):
    """The part of an online read's response the predictor uses."""

    @property
    def keys(self) -> dict[str, list[Any]]: ...

    @property
    def values(self) -> dict[str, list[Any]]: ...

    @property
    def statuses(self) -> dict[str, list[str]]: ...


class DefinitionLookup(Protocol):
    """The current definitions: a feature view (or on-demand view) by name and version."""

    def view(self, name: str, version: int | None = None) -> Any: ...


class FeatureReader(Protocol):
    """Where the predictor reads features: online vectors, and the definitions they are served with."""

    def catalog(self) -> DefinitionLookup: ...

    def get_online_features(
        self, features: Any, entity_rows: Any, full_feature_names: bool = False
    ) -> OnlineVectors: ...


class Predictor:
    """Serve registered models. Models are cached per (name, alias/version) for `refresh` s."""

    def __init__(
        self,
        store: FeatureReader,
        registry: ModelRegistry,
        log_dir: Path | None = None,
        refresh: float = 2.0,
        retention: PredictionLogSettings | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.log_dir = log_dir
        self.log = PredictionLog(log_dir, retention) if log_dir is not None else None
        self.refresh = refresh
        self._cache: dict[tuple[str, Any], tuple[float, ModelVersion, ModelWithHooks]] = {}
        self._lock = threading.Lock()

    def check(self, mv: ModelVersion) -> None:
        """Refuse a model whose features are no longer served as it was trained."""
        cat = self.store.catalog()
        types = mv.card.get("training", {}).get("feature_types", {})
        problems = []
        for ref in mv.features:
            from featureline.definitions import parse_ref

            r = parse_ref(ref)
            try:
                view = cat.view(r.view, r.version)
            except NotFoundError as e:
                problems.append(f"`{ref}`: {e}")
                continue
            f = view.feature(r.feature) if hasattr(view, "feature") else None
            if f is None:
                problems.append(
                    f"`{ref}`: view `{r.view}` v{view.version} no longer has feature `{r.feature}`"
                )
            elif ref in types and types[ref] != str(f.dtype):
                problems.append(f"`{ref}`: trained as {types[ref]}, now {f.dtype}")
            elif not getattr(view, "online", True):
                problems.append(f"`{ref}`: view `{r.view}` is not served online (online=False)")
        if problems:
            raise ConflictError(
                f"Model `{mv.ref}` cannot predict: its features are no longer served as it was trained: "
                + "; ".join(problems)
                + ". Fix: retrain and register a new version on the current features, or restore the views."
            )

    def model(self, name: str, ref: int | str | None = None) -> tuple[ModelVersion, ModelWithHooks]:
        """The version served for `ref` (None: the `production` alias, else the latest) and its
        model with its hooks."""
        key = (name, ref)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.refresh:
            return hit[1], hit[2]
        if ref is None:
            try:
                mv = self.registry.get(name, "production")
            except NotFoundError:
                mv = self.registry.get(name, None)
        else:
            mv = self.registry.get(name, ref)
        if hit is not None and hit[1].version == mv.version:
            obj = hit[2]
        else:
            self.check(mv)
            obj = mv.load_served()
        with self._lock:
            self._cache[key] = (now, mv, obj)
        return mv, obj

    def predict(
        self, name: str, entities: Any, ref: int | str | None = None, proba: bool | None = None
    ) -> dict[str, Any]:
        """Predict for `entities` with features read online, pinned to the versions trained on.

        The model sees a frame with the training set's column names and dtypes when it was
        fitted on named columns (a scikit-learn Pipeline with encoders works), else a float
        matrix. A row missing a feature gets a null prediction, unless the card declares
        `handles_missing` (the model then sees NaN). `proba=True` (or the card's
        `predict_proba`) also returns `predict_proba` per row.

        A version registered with hooks: `preprocess` gets the features frame (always a pandas
        frame with the training set's names and dtypes, of the rows predicted) and returns what
        the model takes, one row per row; `postprocess` gets the model's predictions and returns
        the values answered, one per row. An error in a hook is a `ModelHookError` (HTTP 422).
        """
        mv, served = self.model(name, ref)
        model = served.model
        feats = mv.features
        resp = self.store.get_online_features(feats, entities, full_feature_names=True)
        cols = [resp.values[_out(r)] for r in feats]
        n = len(cols[0]) if cols else 0
        training = mv.card.get("training") or {}
        names = list(training.get("feature_columns") or [_out(r) for r in feats])
        types = training.get("feature_types") or {}
        dtypes = [str(types.get(r, "Float64")) for r in feats]
        handles_missing = bool(mv.card.get("handles_missing") or training.get("handles_missing"))
        want_proba = bool(mv.card.get("predict_proba")) if proba is None else proba
        complete = [all(c[i] is not None for c in cols) for i in range(n)]
        rows = [i for i in range(n) if handles_missing or complete[i]]
        preds: list[Any] = [None] * n
        probas: list[Any] = [None] * n
        if rows:
            picked = [[c[i] for i in rows] for c in cols]
            if served.preprocess is not None:
                x = _run_hook(mv, "preprocess", served.preprocess, _frame(names, dtypes, picked))
                _check_rows(mv, "preprocess", x, len(rows), "rows")
            else:
                x = _model_input(model, names, dtypes, picked)
            try:
                y = model.predict(x)
                p = model.predict_proba(x) if want_proba else None
            except Exception as e:
                raise ValidationError(
                    f"Model `{mv.ref}` failed to predict: {type(e).__name__}: {e}"
                ) from e
            if served.postprocess is not None:
                y = _run_hook(mv, "postprocess", served.postprocess, y)
                y = _check_rows(mv, "postprocess", y, len(rows), "values")
                for v in y:
                    _check_json(mv, _plain(v))
            for k, i in enumerate(rows):
                preds[i] = _plain(y[k])
                if p is not None:
                    probas[i] = [_plain(v) for v in p[k]]
        out = {
            "model": mv.name,
            "version": mv.version,
            "predictions": preds,
            "entities": resp.keys,
            "features": {r: resp.values[_out(r)] for r in feats},
            "statuses": {r: resp.statuses[_out(r)] for r in feats},
        }
        if want_proba:
            out["probabilities"] = probas
            classes = getattr(model, "classes_", None)
            out["classes"] = [_plain(c) for c in classes] if classes is not None else None
        self._log(mv, out)
        return out

    def _log(self, mv: ModelVersion, out: dict[str, Any]) -> None:
        """One JSON line per prediction request: model version, feature vectors, predictions."""
        if self.log is not None:
            self.log.append(mv.name, {"ts": time.time(), **out})


_NUMERIC = ("Float64", "Int64", "Bool")


def _run_hook(mv: ModelVersion, kind: str, fn: Any, value: Any) -> Any:
    """`fn(value)` inside an error boundary: the user's exception becomes a ModelHookError."""
    try:
        return fn(value)
    except Exception as e:
        import traceback

        where = traceback.extract_tb(e.__traceback__)[-1]
        name = getattr(fn, "__qualname__", type(fn).__qualname__)
        raise ModelHookError(
            f"The {kind} hook `{name}` of model `{mv.ref}` raised {type(e).__name__}: {e} "
            f"(at {Path(where.filename).name}:{where.lineno}). Fix the function `{name}` and "
            "register a new version of the model with it."
        ) from e


def _check_rows(mv: ModelVersion, kind: str, value: Any, n: int, what: str) -> Any:
    """`value` if it has one entry per predicted row (as a list for `postprocess`)."""
    try:
        got = len(value)
    except TypeError:
        got = None
    if got != n:
        shown = f"{got} {what}" if got is not None else f"`{type(value).__name__}` (no length)"
        raise ModelHookError(
            f"The {kind} hook of model `{mv.ref}` returned {shown} for {n} rows. Fix: return one "
            f"{'row' if what == 'rows' else 'value'} per row it was given."
        )
    return value if kind == "preprocess" else list(value)


_JSON_SCALARS = (str, int, float, bool, type(None))


def _check_json(mv: ModelVersion, v: Any) -> None:
    """A post-processed prediction must be JSON: a string, number, bool, null, or a list of them."""
    if isinstance(v, _JSON_SCALARS) or (
        isinstance(v, list | tuple) and all(isinstance(x, _JSON_SCALARS) for x in v)
    ):
        return
    raise ModelHookError(
        f"The postprocess hook of model `{mv.ref}` returned a value of type `{type(v).__name__}` "
        f"(`{v!r:.80}`); a prediction must be a string, number, boolean, null or a list of them."
    )


def _frame(names: list[str], dtypes: list[str], cols: list[list[Any]]) -> Any:
    """The features as a pandas frame: the training set's names and dtypes, NaN/None if missing."""
    import numpy as np
    import pandas as pd

    data: dict[str, Any] = {}
    for name, dtype, values in zip(names, dtypes, cols, strict=True):
        if dtype in _NUMERIC:
            data[name] = pd.Series([np.nan if v is None else v for v in values], dtype=float)
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data)


def _model_input(model: Any, names: list[str], dtypes: list[str], cols: list[list[Any]]) -> Any:
    """A frame with the training set's names and dtypes if the model was fitted on named
    columns (or a feature is not numeric), else a float matrix (NaN for a missing value)."""
    import numpy as np

    numeric = all(d in _NUMERIC for d in dtypes)
    if numeric and getattr(model, "feature_names_in_", None) is None:
        rows = len(cols[0]) if cols else 0
        x = np.array([[np.nan if v is None else v for v in c] for c in cols], dtype=float)
        return x.T.reshape(rows, len(cols))
    return _frame(names, dtypes, cols)


def _plain(v: Any) -> Any:
    """A numpy scalar or array (a multi-output row) as plain Python values."""
    return v.tolist() if hasattr(v, "tolist") else v.item() if hasattr(v, "item") else v


def _out(ref: str) -> str:
    """The output column of a pinned ref with full_feature_names=True."""
    view, feat = ref.split(":")
    return f"{view.split('@')[0]}__{feat}"


# -- the prediction log -------------------------------------------------------------------------

_STAMP = re.compile(r"\d{8}T\d{12}Z(?:-\d+)?")
_PRUNE_EVERY = 60.0  # seconds between retention checks when nothing rotates (for max_age_days)


def _segments(root: Path) -> tuple[list[tuple[str, str, Path]], list[tuple[str, Path]]]:
    """(rotated segments as (stamp, model, path), current segments as (model, path)); rotated oldest first."""
    rotated: list[tuple[str, str, Path]] = []
    current: list[tuple[str, Path]] = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return [], []
    for name in names:
        if not name.endswith(".jsonl") or name.startswith("."):
            continue
        stem = name[: -len(".jsonl")]
        model, _, stamp = stem.rpartition(".")
        if model and _STAMP.fullmatch(stamp):
            rotated.append((stamp, model, root / name))
        else:
            current.append((stem, root / name))
    rotated.sort()
    return rotated, current


class _FileLock:
    """An exclusive lock on `path` between processes (flock); a no-op where flock is missing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def __enter__(self) -> _FileLock:
        self._fh = open(self.path, "a")
        try:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()  # closing releases the lock


class PredictionLog:
    """Append-only JSONL per model, in size-bounded segments with retention (module docstring)."""

    def __init__(self, root: Path, retention: PredictionLogSettings | None = None) -> None:
        self.root = Path(root)
        self.retention = retention or PredictionLogSettings()
        self._lock = threading.Lock()
        self._ready = False
        self._pruned_at = 0.0

    def append(self, model: str, record: dict[str, Any]) -> None:
        data = (json.dumps(record, default=str) + "\n").encode()
        path = self.root / f"{model}.jsonl"
        with self._lock:
            if not self._ready:
                self.root.mkdir(parents=True, exist_ok=True)
                self._ready = True
            with open(path, "ab") as fh:
                fh.write(data)
                size = fh.tell()
            now = time.monotonic()
            if size >= self.retention.max_segment_bytes:
                self._rotate(model, path)
            elif now - self._pruned_at > _PRUNE_EVERY:
                with _FileLock(self.root / ".lock"):
                    self.prune()
            else:
                return
            self._pruned_at = now

    def _rotate(self, model: str, path: Path) -> None:
        with _FileLock(self.root / ".lock"):
            try:
                if path.stat().st_size < self.retention.max_segment_bytes:
                    return  # another process rotated it meanwhile
            except FileNotFoundError:
                return
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            dest, n = self.root / f"{model}.{stamp}.jsonl", 1
            while dest.exists():
                dest, n = self.root / f"{model}.{stamp}-{n}.jsonl", n + 1
            os.rename(path, dest)
            self.prune()

    def prune(self) -> list[Path]:
        """Delete rotated segments, oldest first, until the retention bounds hold (call under the file lock)."""
        r = self.retention
        rotated, current = _segments(self.root)
        sizes: dict[Path, int] = {}
        mtimes: dict[Path, float] = {}
        for p in [p for *_, p in rotated] + [p for _, p in current]:
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            sizes[p], mtimes[p] = st.st_size, st.st_mtime
        total = sum(sizes.values())
        oldest_kept = time.time() - r.max_age_days * 86400 if r.max_age_days is not None else None
        removed = []
        count = len(rotated)
        for _, _, p in rotated:
            if p not in sizes:
                count -= 1
                continue
            over = (r.max_total_bytes is not None and total > r.max_total_bytes) or (
                r.max_segments is not None and count > r.max_segments
            )
            old = oldest_kept is not None and mtimes[p] < oldest_kept
            if not (over or old):
                break
            p.unlink(missing_ok=True)
            total -= sizes[p]
            count -= 1
            removed.append(p)
        return removed


def read_prediction_log(root: str | os.PathLike[str], model: str | None = None) -> pa.Table:
    """Every segment of the prediction log in `root` (of one `model`, or all) as one table, oldest first.

    One row per logged request: `ts` (timestamp[us, UTC]), `model`, `version`, `predictions`,
    `entities`, `features` and `statuses` (structs of lists, by key column or feature ref; models
    and versions with other features add fields, null elsewhere)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    rotated, current = _segments(Path(root))
    paths = [p for _, m, p in rotated if model is None or m == model]
    paths += sorted(p for m, p in current if model is None or m == model)
    tables = []
    for p in paths:
        try:
            if p.stat().st_size == 0:
                continue
            tables.append(pj.read_json(p))
        except FileNotFoundError:  # pruned meanwhile
            continue
        except pa.ArrowInvalid as e:
            raise ValidationError(
                f"Prediction log segment `{p.name}` is not JSON lines: {e}. Fix: move the file out of `{root}`."
            ) from e
    if not tables:
        return pa.table(
            {
                "ts": pa.array([], pa.timestamp("us", tz="UTC")),
                "model": pa.array([], pa.string()),
                "version": pa.array([], pa.int64()),
            }
        )
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValidationError(
            f"The prediction log segments in `{root}` do not share one schema ({e}). Fix: read one model at a time: "
            "read_prediction_log(folder, model=...)."
        ) from e
    if "ts" in table.column_names:
        us = pc.cast(pc.round(pc.multiply(pc.cast(table["ts"], pa.float64()), 1e6)), pa.int64())
        table = table.set_column(
            table.column_names.index("ts"), "ts", us.cast(pa.timestamp("us", tz="UTC"))
        )
        table = table.sort_by("ts")
    return table
