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
_KNOWN |= {"auth"}  # principals, permissions, audit: AuthSettings below
# `quarantine: {gc_interval_seconds: 3600}`: how often `featureline serve` and `featureline stream`
# remove orphan quarantine files (`quality.quarantine.gc_in_background`; unset: its default, 1 h)
_KNOWN |= {"quarantine"}
_QUARANTINE_KEYS = {"gc_interval_seconds"}


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
    auth: AuthSettings = field(default_factory=lambda: AuthSettings())
    quarantine_gc_seconds: float | None = None  # None: quality.quarantine.GC_INTERVAL_SECONDS

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
        auth = _auth_settings(raw.get("auth"), problems)
        quarantine_gc = _quarantine_gc(raw.get("quarantine"), problems)
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
            auth=auth,
            quarantine_gc_seconds=quarantine_gc,
        )


def _quarantine_gc(raw: Any, problems: list[str]) -> float | None:
    """`quarantine.gc_interval_seconds`: a positive number of seconds, or None when unset."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(
            "`quarantine` must be a mapping, e.g. `quarantine: {gc_interval_seconds: 3600}`."
        )
        return None
    problems += [
        f"unknown setting `quarantine.{k}`.{did_you_mean(str(k), _QUARANTINE_KEYS)} "
        f"Valid: {', '.join(sorted(_QUARANTINE_KEYS))}."
        for k in raw
        if k not in _QUARANTINE_KEYS
    ]
    if raw.get("gc_interval_seconds") is None:
        return None
    value: float | None = _number(
        raw["gc_interval_seconds"], "quarantine.gc_interval_seconds", problems
    )
    return value


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


# -- auth: principals, credentials, permissions, audit (featureline.auth) ---------------------------


@dataclass(frozen=True)
class OidcSettings:
    """`auth.oidc:` bearer JWTs from an OIDC identity provider, verified against `jwks` (a file
    path, relative to the repo, or an http(s) URL); issuer, audience and expiry are all checked.
    Roles come from `roles_claim` (a dotted path, e.g. `realm_access.roles`), the principal's
    name from `principal_claim`."""

    jwks: str
    issuer: str
    audience: str
    roles_claim: str = "roles"
    principal_claim: str = "sub"
    algorithms: tuple[str, ...] = ("RS256",)
    leeway_seconds: float = 0.0


@dataclass(frozen=True)
class AuditSettings:
    """`auth.audit:` every apply and write is recorded, reads with probability
    `read_sample_rate` (denials always); JSONL segments under data/audit/ rotate at
    `max_segment_bytes`, the oldest deleted beyond `max_segments` (None: kept)."""

    enabled: bool = True
    read_sample_rate: float = 0.01
    max_segment_bytes: int = 16 * 2**20
    max_segments: int | None = 64


@dataclass(frozen=True)
class AuthSettings:
    """`auth:` in featureline.yaml. Off by default. When `enabled`, every HTTP route and every SDK
    read, write and apply needs a principal a permission grants the action to; `admin_roles` are
    granted every action (the bootstrap: `featureline token create root --roles admin`);
    `public_paths` (of /health, /metrics, /docs, /openapi.json) answer without a credential."""

    enabled: bool = False
    admin_roles: tuple[str, ...] = ("admin",)
    public_paths: tuple[str, ...] = ()
    oidc: OidcSettings | None = None
    audit: AuditSettings = field(default_factory=lambda: AuditSettings(enabled=False))


PUBLIC_PATH_CHOICES = ("/health", "/metrics", "/docs", "/openapi.json")
_AUTH_KEYS = {"enabled", "admin_roles", "public_paths", "oidc", "audit"}
_OIDC_KEYS = {
    "jwks",
    "issuer",
    "audience",
    "roles_claim",
    "principal_claim",
    "algorithms",
    "leeway_seconds",
}
_AUDIT_KEYS = {"enabled", "read_sample_rate", "max_segment_bytes", "max_segments"}


def _unknown_keys(raw: dict[str, Any], valid: set[str], prefix: str) -> list[str]:
    return [
        f"unknown setting `{prefix}.{k}`.{did_you_mean(str(k), valid)} Valid: {', '.join(sorted(valid))}."
        for k in raw
        if k not in valid
    ]


def _str_list(value: Any, name: str, problems: list[str], example: str) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"`{name}` must be a list of names, e.g. `{example}`, got `{value!r}`.")
        return None
    return tuple(v.strip() for v in value)


def _auth_settings(raw: Any, problems: list[str]) -> AuthSettings:
    if raw is None:
        return AuthSettings()
    if not isinstance(raw, dict):
        problems.append(
            "`auth` must be a mapping, e.g. `auth: {enabled: true, public_paths: [/health]}`."
        )
        return AuthSettings()
    problems += _unknown_keys(raw, _AUTH_KEYS, "auth")
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        problems.append(f"`auth.enabled` must be true or false, got `{enabled!r}`.")
        enabled = False
    kw: dict[str, Any] = {"enabled": enabled}
    if "admin_roles" in raw:
        roles = _str_list(raw["admin_roles"], "auth.admin_roles", problems, "[admin]")
        if roles is not None:
            kw["admin_roles"] = roles
    if "public_paths" in raw:
        paths = _str_list(raw["public_paths"], "auth.public_paths", problems, "[/health]")
        for p in paths or ():
            if p not in PUBLIC_PATH_CHOICES:
                problems.append(
                    f"`auth.public_paths`: `{p}` cannot be public.{did_you_mean(p, PUBLIC_PATH_CHOICES)} "
                    f"Valid: {', '.join(PUBLIC_PATH_CHOICES)} (data routes always need a credential)."
                )
        kw["public_paths"] = tuple(p for p in paths or () if p in PUBLIC_PATH_CHOICES)
    oidc = raw.get("oidc")
    if oidc is not None:
        kw["oidc"] = _oidc_settings(oidc, problems)
    audit = raw.get("audit")
    base = AuditSettings(enabled=enabled)
    if audit is None:
        kw["audit"] = base
    elif not isinstance(audit, dict):
        problems.append("`auth.audit` must be a mapping, e.g. `{read_sample_rate: 0.01}`.")
    else:
        problems += _unknown_keys(audit, _AUDIT_KEYS, "auth.audit")
        on = audit.get("enabled", enabled)
        if not isinstance(on, bool):
            problems.append(f"`auth.audit.enabled` must be true or false, got `{on!r}`.")
            on = enabled
        rate = audit.get("read_sample_rate", base.read_sample_rate)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            problems.append(
                f"`auth.audit.read_sample_rate` must be a number from 0 to 1, got `{rate!r}`."
            )
            rate = base.read_sample_rate
        kw["audit"] = AuditSettings(
            enabled=on,
            read_sample_rate=float(rate),
            max_segment_bytes=_number(
                audit.get("max_segment_bytes", base.max_segment_bytes),
                "auth.audit.max_segment_bytes",
                problems,
                integer=True,
            )
            or base.max_segment_bytes,
            max_segments=_number(
                audit.get("max_segments", base.max_segments),
                "auth.audit.max_segments",
                problems,
                integer=True,
                optional=True,
            ),
        )
    return AuthSettings(**kw)


def _oidc_settings(raw: Any, problems: list[str]) -> OidcSettings | None:
    example = "`auth.oidc: {jwks: https://idp/.well-known/jwks.json, issuer: https://idp, audience: featureline}`"
    if not isinstance(raw, dict):
        problems.append(f"`auth.oidc` must be a mapping, e.g. {example}.")
        return None
    problems += _unknown_keys(raw, _OIDC_KEYS, "auth.oidc")
    missing = [k for k in ("jwks", "issuer", "audience") if not raw.get(k)]
    if missing:
        problems.append(
            f"`auth.oidc` needs {', '.join(f'`{k}`' for k in missing)} (issuer, audience and expiry are "
            f"always checked), e.g. {example}."
        )
        return None
    bad = [
        k
        for k in ("jwks", "issuer", "audience", "roles_claim", "principal_claim")
        if k in raw and not isinstance(raw[k], str)
    ]
    if bad:
        problems.append(f"`auth.oidc`: {', '.join(f'`{k}`' for k in bad)} must be strings.")
        return None
    algorithms = _str_list(
        raw.get("algorithms", ["RS256"]), "auth.oidc.algorithms", problems, "[RS256]"
    )
    for a in algorithms or ():
        if a.upper() == "NONE" or a.startswith("HS"):
            problems.append(
                f"`auth.oidc.algorithms`: `{a}` is not allowed (unsigned or shared-secret tokens). "
                "Fix: use the provider's asymmetric algorithm, e.g. RS256 or ES256."
            )
    leeway = raw.get("leeway_seconds", 0)
    if isinstance(leeway, bool) or not isinstance(leeway, int | float) or leeway < 0:
        problems.append(f"`auth.oidc.leeway_seconds` must be a number >= 0, got `{leeway!r}`.")
        leeway = 0
    return OidcSettings(
        raw["jwks"],
        raw["issuer"],
        raw["audience"],
        raw.get("roles_claim", "roles"),
        raw.get("principal_claim", "sub"),
        algorithms or ("RS256",),
        float(leeway),
    )
