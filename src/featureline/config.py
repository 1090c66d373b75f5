"""featureline.yaml plus FEATURELINE_* environment overrides, validated once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featureline.errors import ConfigError, NotFoundError, did_you_mean

CONFIG_FILE = "featureline.yaml"
_KNOWN = {
    "project",
    "registry",
    "offline_store",
    "online_store",
    "description",
    "metadata",
    "artifacts",
    "writes",
}
_WRITE_KEYS = {"max_future_seconds"}
DEFAULT_MAX_FUTURE_SECONDS = 300.0  # how far past now an event time may be when written
_KNOWN |= {"server"}  # the feature server's settings: ServerSettings below
_KNOWN |= {"streams"}  # brokers of `featureline stream`: BrokerSettings below


@dataclass(frozen=True)
class RepoConfig:
    repo_path: Path
    project: str
    registry: str
    offline_path: Path
    online: dict[str, Any]
    metadata: str = "data/metadata.db"
    artifacts: str = "data/artifacts"
    max_future_seconds: float | None = DEFAULT_MAX_FUTURE_SECONDS  # None: no bound
    server: ServerSettings = field(default_factory=lambda: ServerSettings())
    offline_engine: dict[str, Any] = field(default_factory=dict)  # `offline_store:` minus its path
    streams: dict[str, BrokerSettings] = field(default_factory=lambda: _stream_settings(None, []))

    @classmethod
    def load(cls, repo_path: str | os.PathLike[str]) -> RepoConfig:
        root = Path(repo_path).resolve()
        f = root / CONFIG_FILE
        if not f.exists():
            raise NotFoundError(
                f"No `{CONFIG_FILE}` in `{root}`: this is not a feature repo. "
                f"Fix: run `featureline init {repo_path}` or pass the repo folder (--repo / FEATURELINE_REPO)."
            )
        import yaml

        try:
            raw = yaml.safe_load(f.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"`{f}` is not valid YAML: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"`{f}` must be a mapping with at least `project:`.")
        problems = [
            f"unknown setting `{k}`.{did_you_mean(k, _KNOWN)}" for k in raw if k not in _KNOWN
        ]
        project = raw.get("project")
        if not isinstance(project, str) or not project:
            problems.append("`project` must be set to a name, e.g. `project: fraud`.")
        writes = raw.get("writes") or {}
        max_future: float | None = DEFAULT_MAX_FUTURE_SECONDS
        if not isinstance(writes, dict):
            problems.append("`writes` must be a mapping, e.g. `writes: {max_future_seconds: 300}`.")
        else:
            problems += [
                f"unknown setting `writes.{k}`.{did_you_mean(k, _WRITE_KEYS)}"
                for k in writes
                if k not in _WRITE_KEYS
            ]
            if "max_future_seconds" in writes:
                v = writes["max_future_seconds"]
                if v is None:
                    max_future = None
                elif isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
                    max_future = float(v)
                else:
                    problems.append(
                        f"`writes.max_future_seconds` must be a number of seconds >= 0 or null (no bound), got `{v}`."
                    )
        server = _server_settings(raw.get("server"), problems)
        streams = _stream_settings(raw.get("streams"), problems)
        offline = raw.get("offline_store") or {}
        if not isinstance(offline, dict):
            problems.append(
                "`offline_store` must be a mapping, e.g. `offline_store: {type: duckdb, path: data/offline}`."
            )
            offline = {}
        else:
            from featureline.offline.engines import validate_engine_config

            problems += validate_engine_config(offline)
        if problems:
            raise ConfigError(f"Problems in `{f}`:\n" + "\n".join(f"  - {p}" for p in problems))
        online = raw.get("online_store") or {"type": "sqlite", "path": "data/online.db"}
        registry = os.environ.get("FEATURELINE_REGISTRY") or str(
            raw.get("registry", "data/registry.db")
        )
        offline_path = Path(
            os.environ.get("FEATURELINE_OFFLINE_PATH") or offline.get("path", "data/offline")
        )
        if not offline_path.is_absolute():
            offline_path = root / offline_path
        metadata = os.environ.get("FEATURELINE_METADATA") or str(
            raw.get("metadata", "data/metadata.db")
        )
        artifacts = str(raw.get("artifacts", "data/artifacts"))
        if "://" not in artifacts and not Path(artifacts).is_absolute():
            artifacts = str(root / artifacts)
        return cls(
            root,
            str(project),
            registry,
            offline_path,
            dict(online),
            metadata,
            artifacts,
            max_future,
            server=server,
            offline_engine={k: v for k, v in offline.items() if k != "path"},
            streams=streams,
        )


# -- server: settings of `featureline serve` (and of the read-plan cache every store keeps) --------


@dataclass(frozen=True)
class PredictionLogSettings:
    """Retention of the prediction log (data/predictions/): size-bounded JSONL segments.

    The current segment of a model rotates once it holds `max_segment_bytes`; rotated segments
    are deleted oldest first while the whole log is over `max_total_bytes`, there are more than
    `max_segments` of them, or one is older than `max_age_days` (None: no such bound)."""

    max_segment_bytes: int = 64 * 2**20
    max_total_bytes: int | None = 2**30
    max_segments: int | None = None
    max_age_days: float | None = None


@dataclass(frozen=True)
class ServerSettings:
    """`server:` in featureline.yaml. `allowed_hosts` adds to the Host names the server always
    accepts (localhost, 127.0.0.1, ::1 and the address it is reached at, with its port): `name`
    (any port), `name:port`, `*.domain`, or `*` (no Host check). Timeouts are seconds."""

    allowed_hosts: tuple[str, ...] = ()
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    read_plan_cache: int = (
        1024  # read plans kept for distinct feature lists (least recently used go)
    )
    prediction_log: PredictionLogSettings = field(default_factory=PredictionLogSettings)


_SERVER_KEYS = {
    "allowed_hosts",
    "header_timeout",
    "body_timeout",
    "read_plan_cache",
    "prediction_log",
}
_LOG_KEYS = {"max_segment_bytes", "max_total_bytes", "max_segments", "max_age_days"}


def _number(
    value: Any, name: str, problems: list[str], *, integer: bool = False, optional: bool = False
) -> Any:
    """`value` if it is a positive number (an integer if `integer`; None if `optional`), else a problem."""
    if value is None and optional:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, kinds) and not isinstance(value, bool) and value > 0:
        return value if integer else float(value)
    what = "a positive integer" if integer else "a positive number"
    problems.append(
        f"`{name}` must be {what}{' or null (no bound)' if optional else ''}, got `{value!r}`."
    )
    return None


def _server_settings(raw: Any, problems: list[str]) -> ServerSettings:
    if raw is None:
        return ServerSettings()
    if not isinstance(raw, dict):
        problems.append(
            "`server` must be a mapping, e.g. `server: {allowed_hosts: [features.internal]}`."
        )
        return ServerSettings()
    problems += [
        f"unknown setting `server.{k}`.{did_you_mean(str(k), _SERVER_KEYS)}"
        for k in raw
        if k not in _SERVER_KEYS
    ]
    default = ServerSettings()
    kw: dict[str, Any] = {}
    hosts = raw.get("allowed_hosts", [])
    if isinstance(hosts, str):
        hosts = [hosts]
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h.strip() for h in hosts):
        problems.append(
            f"`server.allowed_hosts` must be a list of host names, e.g. `[features.internal, 10.0.0.5:6566]`, got `{hosts!r}`."
        )
    else:
        kw["allowed_hosts"] = tuple(h.strip().lower() for h in hosts)
    for name in ("header_timeout", "body_timeout"):
        if name in raw:
            kw[name] = _number(raw[name], f"server.{name}", problems) or getattr(default, name)
    if "read_plan_cache" in raw:
        kw["read_plan_cache"] = (
            _number(raw["read_plan_cache"], "server.read_plan_cache", problems, integer=True)
            or default.read_plan_cache
        )
    log = raw.get("prediction_log")
    if log is not None:
        if not isinstance(log, dict):
            problems.append(
                "`server.prediction_log` must be a mapping, e.g. `{max_segment_bytes: 67108864, max_total_bytes: 1073741824}`."
            )
        else:
            problems += [
                f"unknown setting `server.prediction_log.{k}`.{did_you_mean(str(k), _LOG_KEYS)}"
                for k in log
                if k not in _LOG_KEYS
            ]
            base = PredictionLogSettings()
            kw["prediction_log"] = PredictionLogSettings(
                max_segment_bytes=_number(
                    log.get("max_segment_bytes", base.max_segment_bytes),
                    "server.prediction_log.max_segment_bytes",
                    problems,
                    integer=True,
                )
                or base.max_segment_bytes,
                max_total_bytes=_number(
                    log.get("max_total_bytes", base.max_total_bytes),
                    "server.prediction_log.max_total_bytes",
                    problems,
                    integer=True,
                    optional=True,
                ),
                max_segments=_number(
                    log.get("max_segments"),
                    "server.prediction_log.max_segments",
                    problems,
                    integer=True,
                    optional=True,
                ),
                max_age_days=_number(
                    log.get("max_age_days"),
                    "server.prediction_log.max_age_days",
                    problems,
                    optional=True,
                ),
            )
    return ServerSettings(**kw)


# -- streams: the brokers `featureline stream` reads (definitions name the broker type) -------------


@dataclass(frozen=True)
class BrokerSettings:
    """`streams: {redis: {...}, nats: {...}}` in featureline.yaml. `url` may be overridden by
    FEATURELINE_STREAMS_REDIS_URL / FEATURELINE_STREAMS_NATS_URL. A message delivered but not
    acknowledged for `redeliver_after_seconds` (its worker died) goes to another worker; one
    delivered more than `max_deliveries` times is dead-lettered."""

    url: str
    redeliver_after_seconds: float = 30.0
    max_deliveries: int = 20


_BROKER_DEFAULT_URLS = {"redis": "redis://127.0.0.1:6379/0", "nats": "nats://127.0.0.1:4222"}
_BROKER_KEYS = {"url", "redeliver_after_seconds", "max_deliveries"}


def _stream_settings(raw: Any, problems: list[str]) -> dict[str, BrokerSettings]:
    given: dict[str, Any] = {}
    if isinstance(raw, dict):
        given = raw
    elif raw is not None:
        problems.append(
            "`streams` must be a mapping, e.g. `streams: {redis: {url: redis://127.0.0.1:6379/0}}`."
        )
    problems += [
        f"unknown setting `streams.{k}`.{did_you_mean(str(k), _BROKER_DEFAULT_URLS)} "
        f"Valid: {', '.join(_BROKER_DEFAULT_URLS)}."
        for k in given
        if k not in _BROKER_DEFAULT_URLS
    ]
    out: dict[str, BrokerSettings] = {}
    for broker, default_url in _BROKER_DEFAULT_URLS.items():
        b = given.get(broker) or {}
        name = f"streams.{broker}"
        if not isinstance(b, dict):
            problems.append(f"`{name}` must be a mapping, e.g. `{name}: {{url: {default_url}}}`.")
            b = {}
        problems += [
            f"unknown setting `{name}.{k}`.{did_you_mean(str(k), _BROKER_KEYS)} "
            f"Valid: {', '.join(sorted(_BROKER_KEYS))}."
            for k in b
            if k not in _BROKER_KEYS
        ]
        url = os.environ.get(f"FEATURELINE_STREAMS_{broker.upper()}_URL") or b.get(
            "url", default_url
        )
        if not isinstance(url, str) or "://" not in url:
            problems.append(f"`{name}.url` must be a URL like `{default_url}`, got `{url!r}`.")
            url = default_url
        base = BrokerSettings(url)
        redeliver = (
            _number(b["redeliver_after_seconds"], f"{name}.redeliver_after_seconds", problems)
            if "redeliver_after_seconds" in b
            else None
        )
        deliveries = (
            _number(b["max_deliveries"], f"{name}.max_deliveries", problems, integer=True)
            if "max_deliveries" in b
            else None
        )
        out[broker] = BrokerSettings(
            url, redeliver or base.redeliver_after_seconds, deliveries or base.max_deliveries
        )
    return out
